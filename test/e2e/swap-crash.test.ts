import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES, runCli } from '../helpers/warmpool-server.js';
import { makeBinary, startSupervisor, SWAP_YAML, type Supervisor } from './swap-harness.js';

// The active server killed (kill -9, a crash) under warmpool-swap: the supervisor exited with it and
// closed the listening sockets it holds, so every request was refused until systemd restarted it all.
// Now it starts the release again on the same sockets; connections meanwhile wait in the backlog.
let dir: string;
let supervisor: Supervisor | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-swap-crash-'));
});
afterAll(async () => {
  await supervisor?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('warmpool-swap and an active server that dies', () => {
  it('kill -9 of the active server: the release is started again on the same sockets, and a request sent meanwhile is answered', async () => {
    const v1 = await makeBinary(dir, 'v1', { APP_VERSION: 'v1' });
    supervisor = await startSupervisor(dir, v1);
    const killed = supervisor.state().active!.pid;
    const offset = supervisor.output.length;
    process.kill(killed, 'SIGKILL');
    // sent while nothing accepts: it waits in the listen backlog for the server started again
    const res = await request(`http://127.0.0.1:${supervisor.httpPort}/`, { reset: true });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('v1');
    await supervisor.waitFor(`• blue pid ${killed} killed by SIGKILL`, 15_000, offset);
    await supervisor.waitFor(
      `✗ the active server (blue pid ${killed}) killed by SIGKILL; starting ${v1} again now (restart 1 of 5 within 60000 ms)`,
      15_000,
      offset,
    );
    const active = supervisor.state().active!;
    expect(active).toMatchObject({ colour: 'blue', binary: v1 });
    expect(active.pid).not.toBe(killed);
    expect(supervisor.child.exitCode).toBeNull();

    // the CLI run by hand (no WARMPOOL_SWAP_COLOUR) finds the colour's admin socket from the config
    const env = {
      FIXTURES,
      SWAP_DIR: dir,
      HTTP_PORT: String(supervisor.httpPort),
      STATUS_PORT: String(supervisor.statusPort),
    };
    const workers = await runCli(['workers', '-c', SWAP_YAML, '--json'], { env });
    expect(workers.stderr).toBe('');
    expect(workers.code).toBe(0);
    const [site] = JSON.parse(workers.stdout) as Array<{ workers: unknown[] }>;
    expect(site!.workers.length).toBeGreaterThan(0);
  });
});
