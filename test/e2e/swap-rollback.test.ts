import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../helpers/php.js';
import { brokenSwap as brokenSwapUnderLoad, makeBinary, startSupervisor, type Supervisor } from './swap-harness.js';

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

const brokenSwap = (name: string, env: Record<string, string>) => brokenSwapUnderLoad(supervisor!, dir, name, env);

describe('warmpool-swap rollback of a broken green', () => {
  it('bad config: config check fails, green never starts', async () => {
    const swap = await brokenSwap('v2-bad-config', { NUM_WORKERS: 'banana' });
    expect(swap.stderr).toMatch(
      /WP_SWAP_CHECK_FAILED: `.*v2-bad-config\.mjs config check -c .*swap\.yaml` failed \(exit 2\)/,
    );
    expect(swap.stderr).toContain('num_workers');
    expect(swap.stdout).not.toMatch(/green pid \d+ starting/);
  });

  it('crash at boot: the workers exit, so does green', async () => {
    const swap = await brokenSwap('v2-crash', { APP_BOOT: 'crash' });
    expect(swap.stdout).toMatch(/green pid \d+ starting/);
    // the server retries failed worker boots with backoff: it exits (BOOT_FAILED) or never gets ready (NOT_READY)
    expect(swap.stderr).toMatch(
      /WP_SWAP_BOOT_FAILED: green pid \d+ exit code \d+ while booting|WP_SWAP_NOT_READY: .* not ready within 3000 ms/,
    );
    const greenPid = Number(/green pid (\d+) starting/.exec(swap.stdout)![1]);
    expect(isAlive(greenPid)).toBe(false);
  });
});
