import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../helpers/php.js';
import { load, makeBinary, startSupervisor, swapCli, type Supervisor } from './swap-harness.js';

// A broken v2 never takes traffic: it is killed, blue keeps serving with zero failed requests, and
// `warmpool-swap swap` exits 1 with the reason.
let dir: string;
let supervisor: Supervisor | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-swap-rb-'));
  const v1 = await makeBinary(dir, 'v1', { APP_VERSION: 'v1' });
  supervisor = await startSupervisor(dir, v1, ['--ready-timeout', '3s']);
});
afterAll(async () => {
  await supervisor?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function brokenSwap(name: string, env: Record<string, string>) {
  const s = supervisor!;
  const bluePid = s.state().active!.pid;
  const binary = await makeBinary(dir, name, { APP_VERSION: 'v2', ...env });
  const traffic = load(s.httpPort);
  await new Promise((r) => setTimeout(r, 200));
  const swap = await swapCli(['swap', '--binary', binary, '--state', s.stateDir]);
  await new Promise((r) => setTimeout(r, 200));
  const result = await traffic.stop();
  expect(swap.code).toBe(1);
  expect(result.errors.slice(0, 5)).toEqual([]);
  expect(result.failed).toBe(0);
  expect(result.retried).toBe(0);
  expect([...result.versions.keys()]).toEqual(['v1']);
  expect(s.state().active!.pid).toBe(bluePid);
  expect(s.state().children).toHaveLength(1);
  const after = await request(`http://127.0.0.1:${s.httpPort}/`);
  expect(await after.body.text()).toBe('v1');
  expect(swap.stdout + swap.stderr).toMatch(/keeps serving/);
  return swap;
}

describe('warmpool-swap rollback of a broken green', () => {
  it('bad config: config check fails, green never starts', async () => {
    const swap = await brokenSwap('v2-bad-config', { NUM_WORKERS: 'banana' });
    expect(swap.stderr).toMatch(/WP_SWAP_CHECK_FAILED: `.*v2-bad-config\.mjs config check -c .*swap\.yaml` failed \(exit 2\)/);
    expect(swap.stderr).toContain('num_workers');
    expect(swap.stdout).not.toMatch(/green pid \d+ starting/);
  });

  it('crash at boot: the workers exit, so does green', async () => {
    const swap = await brokenSwap('v2-crash', { APP_BOOT: 'crash' });
    expect(swap.stdout).toMatch(/green pid \d+ starting/);
    // the server retries failed worker boots with backoff: it exits (BOOT_FAILED) or never gets ready (NOT_READY)
    expect(swap.stderr).toMatch(/WP_SWAP_BOOT_FAILED: green pid \d+ exit code \d+ while booting|WP_SWAP_NOT_READY: .* not ready within 3000 ms/);
    const greenPid = Number(/green pid (\d+) starting/.exec(swap.stdout)![1]);
    expect(isAlive(greenPid)).toBe(false);
  });
});
