// `warmpool serve` passing PHP to a php-fpm that is not running yet (it is not warmpool's to start;
// systemd may start it later, or `fastcgi.pass` has a typo): the boot says so with what to do,
// /ready answers not_ready (a blue-green swap keeps the old server), requests get 502, and once
// php-fpm answers, /ready and the requests recover with no restart.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';
import { FIXTURES, runCli, startServer, stopAllServers } from '../helpers/warmpool-server.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-fpm-down-'));
afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

describe('classic PHP passed to a php-fpm that does not answer', () => {
  it('boot warns with what to do, /ready is not_ready and requests 502, until php-fpm answers', async () => {
    const fpmPort = await freePort();
    const port = await freePort();
    const statusPort = await freePort();
    const config = join(dir, 'warmpool.yaml');
    writeFileSync(
      config,
      [
        'version: "3"',
        'http:',
        `  address: 127.0.0.1:${port}`,
        `status: { address: 127.0.0.1:${statusPort} }`,
        'logs: { mode: production, level: warn }',
        `admin: { socket: ${join(dir, 'admin.sock')} }`,
        'fastcgi:',
        `  root: ${join(FIXTURES, 'php', 'fastcgi')}`,
        `  pass: 127.0.0.1:${fpmPort}`,
        '',
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', config]);
    let fpm: PhpFpm | null = null;
    try {
      await server.ready(30_000);
      expect(server.stdout + server.stderr).toMatch(
        new RegExp(
          `site default: php-fpm at 127\\.0\\.0\\.1:${fpmPort} does not answer \\(.*ECONNREFUSED.*\\); .*start php-fpm .* or fix fastcgi\\.pass`,
        ),
      );
      const ready = await request(`http://127.0.0.1:${statusPort}/ready`);
      expect(ready.statusCode).toBe(503);
      expect(await ready.body.json()).toMatchObject({
        status: 'not_ready',
        sites: { default: { status: 'not_ready' } },
      });
      // liveness is the server's own: php-fpm being down is no reason to restart warmpool
      expect((await request(`http://127.0.0.1:${statusPort}/health`)).statusCode).toBe(200);
      const workers = await runCli(['workers', '--socket', join(dir, 'admin.sock')]);
      expect(workers.stderr).toMatch(
        new RegExp(`site default: php-fpm at 127\\.0\\.0\\.1:${fpmPort} does not answer: .*ECONNREFUSED`),
      );
      const down = await request(`http://127.0.0.1:${port}/hello.php`);
      expect(down.statusCode).toBe(502);
      await down.body.dump();

      fpm = await startPhpFpm({ tcpPort: fpmPort, maxChildren: 1 });
      // no request needed: the server notices php-fpm on its own (what a swap's health check relies on)
      for (;;) {
        const now = await request(`http://127.0.0.1:${statusPort}/ready`);
        await now.body.dump();
        if (now.statusCode === 200) break;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const up = await request(`http://127.0.0.1:${port}/hello.php`);
      expect(up.statusCode).toBe(200);
      expect(await up.body.text()).toMatch(/^hello from fpm-fcgi pid \d+$/);
    } finally {
      await server.stop('SIGTERM');
      await fpm?.stop();
    }
  }, 60_000);
});
