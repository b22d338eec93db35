// Two sites of one `warmpool serve` passing PHP to the same php-fpm pool (Debian's one www pool
// serves every site by default). php-fpm serves one kept connection per child, so one site's
// kept-alive connections could hold every child: the other site's requests then waited in
// php-fpm's accept queue until those connections idled out (60 s), and got 504 first.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { startPhpFpm } from '../helpers/php-fpm.js';
import { until } from '../helpers/until.js';
import { FIXTURES, runCli, startServer, stopAllServers } from '../helpers/warmpool-server.js';

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
    const connections = async (site: string) => {
      const listed = await runCli(['workers', '--json', '--socket', join(dir, 'admin.sock')]);
      const sites = JSON.parse(listed.stdout) as Array<{ site: string; phpFpm: { busy: number; idle: number } }>;
      return sites.find((s) => s.site === site)!.phpFpm;
    };
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
});
