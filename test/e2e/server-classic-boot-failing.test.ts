// `warmpool serve` running php-cgi itself when php-cgi stops starting (a broken deploy, a removed
// binary): once no process runs, requests get 502 at once with the start failure in the log, not
// a 503 "overloaded" after allocate_timeout (60 s); once php-cgi starts again they are served.
// The command is a wrapper that runs php-cgi only while a flag file exists.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { startServer, stopAllServers } from '../helpers/warmpool-server.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-boot-failing-'));
afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

describe('classic PHP whose php-cgi cannot start any more', () => {
  it('answers 502 at once with the start failure, and serves again once php-cgi starts', async () => {
    const flag = join(dir, 'php-cgi-works');
    const wrapper = join(dir, 'cgiwrap.sh');
    writeFileSync(
      wrapper,
      `#!/bin/sh\nif [ -e ${flag} ]; then exec php-cgi "$@"; fi\necho "cgiwrap: ${flag} is missing" >&2\nexit 1\n`,
    );
    chmodSync(wrapper, 0o755);
    const root = join(dir, 'root');
    mkdirSync(root);
    writeFileSync(join(root, 'hello.php'), '<?php echo "hello ", getmypid();');
    writeFileSync(join(root, 'die.php'), '<?php posix_kill(getmypid(), 9);');
    writeFileSync(flag, '');
    const port = await freePort();
    const config = join(dir, 'warmpool.yaml');
    writeFileSync(
      config,
      [
        'version: "3"',
        'http:',
        `  address: 127.0.0.1:${port}`,
        // allocate_timeout stays the default 60 s: a request that waited for it fails the test
        '  pool: { num_workers: 2 }',
        'logs: { mode: production, level: warn }',
        `admin: { socket: ${join(dir, 'admin.sock')} }`,
        'fastcgi:',
        `  root: ${root}`,
        `  command: ${wrapper}`,
        '',
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', config]);
    try {
      await server.ready(30_000);
      const get = async (path: string) => {
        const res = await request(`http://127.0.0.1:${port}${path}`);
        return { status: res.statusCode, body: await res.body.text() };
      };
      expect((await get('/hello.php')).status).toBe(200);
      // php-cgi cannot start from now on; both processes die (one request each)
      rmSync(flag);
      expect((await get('/die.php')).status).toBe(502);
      expect((await get('/die.php')).status).toBe(502);
      const started = performance.now();
      const down = await get('/hello.php');
      expect(down.status).toBe(502);
      expect(performance.now() - started).toBeLessThan(10_000);
      await server.waitFor(/WP_POOL_WORKERS_DOWN/);
      const log = server.stdout + server.stderr;
      expect(log).toMatch(/no worker is running and workers cannot boot.*cgiwrap: .* is missing/);
      expect(log).not.toMatch(/overloaded/);
      // php-cgi starts again: the next retry brings the processes back (backoff at most 10 s)
      writeFileSync(flag, '');
      for (;;) {
        const now = await get('/hello.php');
        if (now.status === 200) {
          expect(now.body).toMatch(/^hello \d+$/);
          break;
        }
        expect(now.status).toBe(502);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    } finally {
      await server.stop('SIGTERM');
    }
  });
});
