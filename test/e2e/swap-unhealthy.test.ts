import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { isAlive } from '../helpers/php.js';
import { FIXTURES } from '../helpers/warmpool-server.js';
import {
  brokenSwap as brokenSwapUnderLoad,
  makeBinary,
  startSupervisor,
  swapCli,
  type Supervisor,
} from './swap-harness.js';

// A broken v2 never takes traffic: it is killed, blue keeps serving with zero failed requests, and
// `warmpool-swap swap` exits 1 with the reason.
let dir: string;
let supervisor: Supervisor | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-swap-uh-'));
  const v1 = await makeBinary(dir, 'v1', { APP_VERSION: 'v1' });
  supervisor = await startSupervisor(dir, v1, ['--ready-timeout', '3s']);
});
afterAll(async () => {
  await supervisor?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const brokenSwap = (name: string, env: Record<string, string>, config?: string) =>
  brokenSwapUnderLoad(supervisor!, dir, name, env, config);

describe('warmpool-swap rollback of an unhealthy green', () => {
  it('unhealthy: /ready never answers 200 within --ready-timeout; green and its PHP are killed', async () => {
    const swap = await brokenSwap('v2-hang', { APP_BOOT: 'hang' });
    expect(swap.stderr).toMatch(/WP_SWAP_NOT_READY: http:\/\/127\.0\.0\.1:\d+\/ready not ready within 3000 ms/);
    const greenPid = Number(/green pid (\d+) starting/.exec(swap.stdout)![1]);
    expect(isAlive(greenPid)).toBe(false);
    // the swap's SIGTERM stops the workers still booting: green exits on its own, no SIGKILL
    await supervisor!.waitFor('SIGTERM during boot: stopped the workers booting');
    expect(swap.stdout).not.toMatch(/killed by SIGKILL/);
  });

  it('booted but not ready (php-fpm does not answer): green takes no connection from the shared sockets', async () => {
    // Green boots, listens on its private status socket and waits; before, it took a share of the
    // new connections at once and answered them 502 until the swap gave up on its /ready.
    const config = join(dir, 'fpm-down.yaml');
    await writeFile(
      config,
      [
        'version: "3"',
        'http: { address: "127.0.0.1:${HTTP_PORT}" }',
        'status: { address: "127.0.0.1:${STATUS_PORT}" }',
        'logs: { mode: production, level: warn }',
        'admin: { socket: "${SWAP_DIR}/admin-fpm-${WARMPOOL_SWAP_COLOUR:-none}.sock" }',
        'fastcgi:',
        `  root: ${join(FIXTURES, 'php', 'fastcgi')}`,
        `  pass: 127.0.0.1:${await freePort()}`,
        '',
      ].join('\n'),
    );
    const swap = await brokenSwap('v2-fpm-down', {}, config);
    expect(swap.stderr).toMatch(/WP_SWAP_NOT_READY: http:\/\/127\.0\.0\.1:\d+\/ready not ready within 3000 ms/);
    expect(supervisor!.output).toMatch(
      /\[green \d+\] • under warmpool-swap: waiting for site default to be ready before taking connections from the shared sockets/,
    );
    expect(supervisor!.output).not.toMatch(/\[green \d+\] • listening on/);
    // the swap's own line says what green waited for
    expect(swap.stdout).toMatch(/✗ .*not ready within 3000 ms: .*: under warmpool-swap: waiting for site default/);
    // the swap's SIGTERM ends the wait: green stops on its own, before the swap's SIGKILL
    await supervisor!.waitFor('SIGTERM before every site was ready: stopping');
    expect(swap.stdout).not.toMatch(/killed by SIGKILL/);
  });

  it('status records the failed swaps and rollback has nothing to go back to', async () => {
    const s = supervisor!;
    expect(s.state().history.map((h) => h.ok)).toEqual([false, false]);
    const back = await swapCli(['rollback', '--state', s.stateDir]);
    expect(back.code).toBe(1);
    expect(back.stderr).toContain('WP_SWAP_NO_PREVIOUS');
  });
});
