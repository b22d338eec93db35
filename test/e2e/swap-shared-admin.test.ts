import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, runCli } from '../helpers/warmpool-server.js';
import { makeBinary, startSupervisor, swapCli, type Supervisor } from './swap-harness.js';

// Both colours given one admin.socket (the docs advise one per colour, but a config copied from a
// lone server has one path): the new server takes the socket over once the old one has drained.
// Before, it logged "another warmpool is running" and ran without an admin socket for good:
// `warmpool workers`, reset, tune and cert status failed until the next swap.
const SHARED_YAML = join(FIXTURES, 'server', 'swap-shared-admin.yaml');
let dir: string;
let supervisor: Supervisor | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-swap-admin-'));
});
afterAll(async () => {
  await supervisor?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('warmpool-swap with one admin.socket for both colours', () => {
  it('the new server takes the admin socket over once the old one has drained', async () => {
    const v1 = await makeBinary(dir, 'v1', { APP_VERSION: 'v1' }, SHARED_YAML);
    const v2 = await makeBinary(dir, 'v2', { APP_VERSION: 'v2' }, SHARED_YAML);
    supervisor = await startSupervisor(dir, v1);
    const socket = join(dir, 'admin-shared.sock');
    const before = await runCli(['workers', '--socket', socket, '--json']);
    expect(before.code).toBe(0);
    const bluePids = (JSON.parse(before.stdout) as Array<{ workers: Array<{ pid: number }> }>)[0]!.workers.map(
      (w) => w.pid,
    );

    const offset = supervisor.output.length;
    const swap = await swapCli(['swap', '--binary', v2, '--state', supervisor.stateDir]);
    expect(swap.code).toBe(0);
    await supervisor.waitFor('held by the server this one replaces', 15_000, offset);
    await supervisor.waitFor(`admin socket ${socket} taken over (`, 15_000, offset);
    const after = await runCli(['workers', '--socket', socket, '--json']);
    expect(after.code).toBe(0);
    const greenPids = (JSON.parse(after.stdout) as Array<{ workers: Array<{ pid: number }> }>)[0]!.workers.map(
      (w) => w.pid,
    );
    expect(greenPids.length).toBeGreaterThan(0);
    for (const pid of greenPids) expect(bluePids).not.toContain(pid);
  });
});
