// A drain with several sites: their pools stop at the same time, so the drain is bounded by the
// longest destroy_timeout however many sites there are (one after another, each site added two
// destroy_timeouts and a drain could outlast systemd's TimeoutStopSec). Told by what serve prints:
// with a request on each site that outlasts the drain, both sites' pools start stopping before
// either is done.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { isAlive } from '../helpers/php.js';
import { until } from '../helpers/until.js';
import { FIXTURES, runCli, startServer, stopAllServers } from '../helpers/warmpool-server.js';
import { startUpstream } from '../helpers/upstream.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-drain-sites-'));
});
afterAll(async () => {
  await stopAllServers();
  await rm(dir, { recursive: true, force: true });
});

interface SiteWorkers {
  site: string;
  workers: Array<{ pid: number; state: string }>;
}

describe('drain with several sites', () => {
  it("stops every site's pool at the same time, saying so for each site", async () => {
    const port = await freePort();
    const socket = join(dir, 'admin.sock');
    const file = join(dir, 'warmpool.yaml');
    const site = (host: string) => [
      `  - hosts: [${host}]`,
      '    server:',
      `      command: php ${FIXTURES}/php/sleep.php`,
      '    http:',
      '      pool: { num_workers: 2, destroy_timeout: 3s }',
    ];
    await writeFile(
      file,
      [
        'version: "3"',
        'server:',
        `  command: php ${FIXTURES}/php/sleep.php`,
        'http:',
        `  address: 127.0.0.1:${port}`,
        '  pool: { num_workers: 1, destroy_timeout: 3s }',
        `admin: { socket: ${socket} }`,
        'sites:',
        ...site('a.test'),
        ...site('b.test'),
        '',
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', file]);
    await server.ready(30_000);
    // a request on each site that outlasts the whole drain (60 s of sleep)
    for (const host of ['a.test', 'b.test']) {
      void request(`http://127.0.0.1:${port}/`, { method: 'POST', body: '60000', headers: { host } }).catch(() => {});
    }
    const sites = async () =>
      JSON.parse((await runCli(['workers', '--json', '--socket', socket])).stdout) as SiteWorkers[];
    let busy: number[] = [];
    let idle: number[] = [];
    await until(async () => {
      const listed = (await sites()).filter((s) => s.site === 'a.test' || s.site === 'b.test');
      busy = listed.flatMap((s) => s.workers.filter((w) => w.state === 'working').map((w) => w.pid));
      idle = listed.flatMap((s) => s.workers.filter((w) => w.state === 'ready').map((w) => w.pid));
      return busy.length === 2 && idle.length === 2;
    }, 'a long request running on each site, beside an idle worker');

    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
    // each site's pool began to stop before either was done: at the same time, not one after another
    const lines = server.stdout.split('\n');
    const at = (pattern: RegExp) => lines.findIndex((line) => pattern.test(line));
    const stopping = ['a.test', 'b.test'].map((host) =>
      at(new RegExp(`site ${host.replace('.', '\\.')}: stopping its PHP workers`)),
    );
    const stopped = ['a.test', 'b.test'].map((host) =>
      at(new RegExp(`site ${host.replace('.', '\\.')}: PHP workers stopped in`)),
    );
    expect([...stopping, ...stopped].every((index) => index !== -1)).toBe(true);
    expect(Math.max(...stopping)).toBeLessThan(Math.min(...stopped));
    // the long requests were cut at the end of the drain, nothing of them left
    expect(busy.every((pid) => !isAlive(pid))).toBe(true);
    expect(idle.every((pid) => !isAlive(pid))).toBe(true);
  }, 60_000);

  it("a site of no PHP (an event stream through a proxy route) holds the drain for the top level's destroy_timeout, not 60 s", async () => {
    const upstream = await startUpstream();
    try {
      const port = await freePort();
      const file = join(dir, 'no-php.yaml');
      await writeFile(
        file,
        [
          'version: "3"',
          'http:',
          `  address: 127.0.0.1:${port}`,
          '  pool: { destroy_timeout: 1s }',
          `admin: { socket: ${join(dir, 'no-php.sock')} }`,
          'proxy:',
          `  - { prefix: /, upstream: "${upstream.origin}" }`,
          '',
        ].join('\n'),
      );
      const server = startServer(['serve', '-c', file]);
      await server.ready(30_000);
      // an event stream that never ends: its head is here, then nothing
      const stream = await request(`http://127.0.0.1:${port}/events/head-then-silence`);
      expect(stream.statusCode).toBe(200);
      stream.body.on('error', () => {});
      server.child.kill('SIGTERM');
      expect((await server.exited).code).toBe(0);
      // before: "after 60.0 s", whatever destroy_timeout said
      expect(server.stderr + server.stdout).toContain('drain: connections still open after 1.0 s');
    } finally {
      await upstream.close();
    }
  }, 60_000);
});
