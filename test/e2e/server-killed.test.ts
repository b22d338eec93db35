// A server that is killed outright (SIGKILL, the OOM killer) cannot stop its PHP processes: the
// kernel does (setpriv's parent-death signal). Without it a php-cgi process waiting in accept(),
// or one running a long script, lives on with no parent, and every restart adds more.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { isAlive } from '../helpers/php.js';
import { FIXTURES, runCli, startServer, stopAllServers } from '../helpers/warmpool-server.js';
import { until } from '../helpers/until.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-killed-'));
afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

describe('a server killed with SIGKILL', () => {
  it('takes its php-cgi processes with it: the idle one and the one running a long script', async () => {
    const port = await freePort();
    const socket = join(dir, 'admin.sock');
    const config = join(dir, 'warmpool.yaml');
    writeFileSync(
      config,
      [
        'version: "3"',
        'http:',
        `  address: 127.0.0.1:${port}`,
        '  pool: { num_workers: 2 }',
        'logs: { mode: production, level: warn }',
        `admin: { socket: ${socket} }`,
        'fastcgi:',
        `  root: ${join(FIXTURES, 'sites', 'classic-app')}`,
        '',
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', config]);
    await server.ready(30_000);
    const workers = async () =>
      JSON.parse((await runCli(['workers', '--json', '--socket', socket])).stdout)[0].workers as {
        pid: number;
        state: string;
      }[];
    // one process runs a script that sleeps 30 s, the other waits for a request
    const slow = request(`http://127.0.0.1:${port}/slow.php?s=30`).catch(() => null);
    await until(async () => (await workers()).some((w) => w.state === 'working'), 'the slow script to run');
    const pids = (await workers()).map((w) => w.pid);
    expect(pids).toHaveLength(2);
    expect(pids.every(isAlive)).toBe(true);

    await server.stop('SIGKILL');
    await until(() => !pids.some(isAlive), 'the php-cgi processes to be gone');
    await slow;
  });
});
