import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../helpers/php.js';
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

const brokenSwap = (name: string, env: Record<string, string>) => brokenSwapUnderLoad(supervisor!, dir, name, env);

describe('warmpool-swap rollback of an unhealthy green', () => {
  it('unhealthy: /ready never answers 200 within --ready-timeout; green and its PHP are killed', async () => {
    const swap = await brokenSwap('v2-hang', { APP_BOOT: 'hang' });
    expect(swap.stderr).toMatch(/WP_SWAP_NOT_READY: http:\/\/127\.0\.0\.1:\d+\/ready not ready within 3000 ms/);
    const greenPid = Number(/green pid (\d+) starting/.exec(swap.stdout)![1]);
    expect(isAlive(greenPid)).toBe(false);
  });

  it('status records the failed swaps and rollback has nothing to go back to', async () => {
    const s = supervisor!;
    expect(s.state().history.map((h) => h.ok)).toEqual([false]);
    const back = await swapCli(['rollback', '--state', s.stateDir]);
    expect(back.code).toBe(1);
    expect(back.stderr).toContain('WP_SWAP_NO_PREVIOUS');
  });
});
