// Two sites of one `warmpool serve` passing PHP to the same php-fpm pool (Debian's one www pool
// serves every site by default). php-fpm serves one kept connection per child, so one site's
// kept-alive connections could hold every child: the other site's requests then waited in
// php-fpm's accept queue until those connections idled out (60 s), and got 504 first.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { connectFastCgi, parseFastCgiAddress } from '@warmpool/pool/fastcgi';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { type PassServer, phpFpmConnections, startPassServer } from '../helpers/pass-server.js';
import { startPhpFpm } from '../helpers/php-fpm.js';
import { until } from '../helpers/until.js';
import { FIXTURES, startServer, stopAllServers } from '../helpers/warmpool-server.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-shared-fpm-'));
afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

describe('two sites passing to one php-fpm pool', () => {
  it('one site holding every child on idle connections leaves the other answering at once; both busy, all answered', async () => {
    const fpm = await startPhpFpm({ maxChildren: 2 });
    const port = await freePort();
    const config = join(dir, 'warmpool.yaml');
    const root = join(FIXTURES, 'php', 'fastcgi');
    // max_connections unset: its default (8) is above the 2 children, as with Debian's pool file
    const site = (host: string) => [
      `  - hosts: [${host}]`,
      '    fastcgi:',
      `      root: ${root}`,
      `      pass: ${fpm.pass}`,
      // kept for the whole test: the other site gets a child because the sites share, not by age
      '      keepalive_time: 0',
    ];
    writeFileSync(
      config,
      [
        'version: "3"',
        'http:',
        `  address: 127.0.0.1:${port}`,
        // a request stuck in php-fpm's accept queue fails in 5 s (504) instead of hanging the test
        '  pool: { supervisor: { exec_ttl: 5s } }',
        'logs: { mode: production, level: warn }',
        `admin: { socket: ${join(dir, 'admin.sock')} }`,
        'sites:',
        ...site('a.test'),
        ...site('b.test'),
        '',
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', config]);
    const get = async (host: string) => {
      const response = await request(`http://127.0.0.1:${port}/hello.php`, { headers: { host } });
      return { status: response.statusCode, text: await response.body.text() };
    };
    const connections = (site: string) => phpFpmConnections(join(dir, 'admin.sock'), site);
    try {
      await server.ready(30_000);
      // a.test runs a script on each child, then keeps both connections idle: every child is held
      const flag = join(dir, 'held.flag');
      const held = [1, 2].map(() =>
        request(`http://127.0.0.1:${port}/wait-for-flag.php?flag=${flag}`, { headers: { host: 'a.test' } }),
      );
      await until(async () => (await connections('a.test')).busy === 2, 'a.test running a script on both children');
      writeFileSync(flag, '');
      for (const response of await Promise.all(held)) {
        expect(response.statusCode).toBe(200);
        await response.body.dump();
      }
      await until(async () => (await connections('a.test')).idle === 2, "a.test's two connections to idle");
      const other = await get('b.test');
      expect(other.status).toBe(200);
      expect(other.text).toMatch(/^hello from fpm-fcgi pid \d+$/);
      // both sites busy at once
      for (let round = 0; round < 5; round++) {
        const mixed = await Promise.all(Array.from({ length: 16 }, (_, i) => get(i % 2 === 0 ? 'a.test' : 'b.test')));
        expect(mixed.map((r) => r.status)).toEqual(Array(16).fill(200));
      }
    } finally {
      await server.stop('SIGTERM');
      await fpm.stop();
    }
  });
  it('a client outside warmpool gets a child of the same pool while a site stays busy (keepalive_time)', async () => {
    const fpm = await startPhpFpm({ maxChildren: 2 });
    const root = join(FIXTURES, 'php', 'fastcgi');
    let site: PassServer | undefined;
    let busy = true;
    let served = 0;
    const load = async () => {
      while (busy) {
        const response = await request(`${site!.url}/hello.php`);
        expect(response.statusCode).toBe(200);
        await response.body.dump();
        served++;
      }
    };
    try {
      // keepalive_time at its default
      site = await startPassServer(dir, 'outside', fpm.pass);
      const clients = [load(), load(), load(), load()];
      await until(async () => {
        const { busy, idle } = await phpFpmConnections(site!.socket);
        return served > 20 && busy + idle === 2;
      }, 'the site to hold both children on its two connections');
      // a monitoring check or nginx serving another site, straight to php-fpm: before, it waited in
      // php-fpm's accept queue for as long as the site stayed busy (its connections were kept)
      const outside = await connectFastCgi(parseFastCgiAddress(fpm.pass, 'pass'));
      const call = outside.request({
        params: {
          GATEWAY_INTERFACE: 'CGI/1.1',
          REQUEST_METHOD: 'GET',
          SCRIPT_FILENAME: join(root, 'hello.php'),
          SCRIPT_NAME: '/hello.php',
          REQUEST_URI: '/hello.php',
          SERVER_PROTOCOL: 'HTTP/1.1',
          REDIRECT_STATUS: '200',
        },
        readTimeoutMs: 15_000,
      });
      expect(await text(call.stdout)).toMatch(/hello from fpm-fcgi pid \d+$/);
      await call.done;
      outside.close();
      busy = false;
      await Promise.all(clients);
    } finally {
      busy = false;
      await site?.server.stop('SIGTERM');
      await fpm.stop();
    }
  });
});
