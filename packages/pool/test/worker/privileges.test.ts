import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { createPool } from '../../src/pool/pool.js';
import { fixture, recordingLogger, request, withPool } from '../php-fixtures.js';

const run = promisify(execFile);
/** The built pool (the server a user runs), imported by the process started with capabilities. */
const POOL_DIST = fileURLToPath(new URL('../../dist/index.js', import.meta.url));

// server.user / server.group: when the server runs as root, workers run as another user.
const isRoot = process.getuid?.() === 0;

describe('worker privileges', () => {
  it.skipIf(!isRoot)('runs workers as the configured uid/gid (nobody:nogroup here)', async () => {
    await withPool('whoami.php', { uid: 65534, gid: 65534 }, async (pool) => {
      expect(JSON.parse((await pool.exec(request())).body.toString())).toEqual({ uid: 65534, gid: 65534 });
    });
  });

  it.skipIf(!isRoot || !existsSync('/usr/bin/setpriv') || !existsSync('/usr/sbin/useradd'))(
    "runs workers with the user's supplementary groups, as php-fpm's initgroups (before: none); a uid no passwd knows gets none",
    async () => {
      // Debian's icingaweb2 says `usermod -a -G icingaweb2 www-data` so that PHP reads /etc/icingaweb2
      const name = `wp${process.pid}${Math.floor(Math.random() * 1e4)}`;
      await run('groupadd', ['--system', `${name}g`]);
      try {
        await run('useradd', ['--system', '--no-create-home', '--groups', `${name}g`, `${name}u`]);
        try {
          const id = async (flag: string) => Number((await run('id', [flag, `${name}u`])).stdout.trim());
          const [uid, gid] = [await id('-u'), await id('-g')];
          const extra = Number((await run('getent', ['group', `${name}g`])).stdout.split(':')[2]);
          await withPool('groups.php', { uid, gid }, async (pool) => {
            expect(JSON.parse((await pool.exec(request())).body.toString())).toEqual({
              uid,
              gid,
              groups: [gid, extra].sort((a, b) => a - b),
            });
          });
          // server.group: that group and the supplementary ones, not the user's own primary group
          // (php-fpm's initgroups(user, group))
          await withPool('groups.php', { uid, gid: 65_534 }, async (pool) => {
            expect(JSON.parse((await pool.exec(request())).body.toString())).toEqual({
              uid,
              gid: 65_534,
              groups: [extra, 65_534].sort((a, b) => a - b),
            });
          });
        } finally {
          await run('userdel', [`${name}u`]);
        }
      } finally {
        await run('groupdel', [`${name}g`]).catch(() => undefined);
      }
      await withPool('groups.php', { uid: 54_321, gid: 54_321 }, async (pool) => {
        expect(JSON.parse((await pool.exec(request())).body.toString())).toEqual({
          uid: 54_321,
          gid: 54_321,
          groups: [],
        });
      });
    },
  );

  it('without uid/gid, workers run as the server user', async () => {
    await withPool('whoami.php', {}, async (pool) => {
      expect(JSON.parse((await pool.exec(request())).body.toString())).toEqual({
        uid: process.getuid!(),
        gid: process.getgid!(),
      });
    });
  });

  it.skipIf(!isRoot || !existsSync('/usr/bin/setpriv'))(
    "a server with ambient capabilities (systemd's AmbientCapabilities) does not pass them to PHP",
    async () => {
      // the server runs as nobody with CAP_NET_BIND_SERVICE ambient, as warmpool.service gives it to
      // bind port 443; before, every PHP worker had it too (CapAmb and CapEff 0x400)
      const dir = mkdtempSync(join(tmpdir(), 'warmpool-caps-'));
      chmodSync(dir, 0o755);
      const script = join(dir, 'server.mjs');
      writeFileSync(
        script,
        [
          `import { createPool, SILENT_LOGGER } from ${JSON.stringify(pathToFileURL(POOL_DIST).href)};`,
          `const pool = createPool({ command: ['php', ${JSON.stringify(fixture('capabilities.php'))}], num_workers: 1, logger: SILENT_LOGGER });`,
          'await pool.start();',
          "const reply = await pool.exec({ flags: 0, context: JSON.stringify({ method: 'GET', uri: 'http://localhost/' }), body: Buffer.alloc(0) });",
          'const own = /^CapAmb:\\s*(\\w+)$/m.exec((await import("node:fs")).readFileSync("/proc/self/status", "utf8"))[1];',
          'process.stdout.write(JSON.stringify({ server: own, php: JSON.parse(reply.body.toString()) }));',
          'await pool.close();',
        ].join('\n'),
      );
      chmodSync(script, 0o644);
      try {
        const { stdout } = await run('setpriv', [
          ...['--reuid', '65534', '--regid', '65534', '--clear-groups'],
          ...['--inh-caps', '+net_bind_service', '--ambient-caps', '+net_bind_service'],
          '--',
          process.execPath,
          script,
        ]);
        const caps = JSON.parse(stdout) as { server: string; php: Record<string, string> };
        expect(caps.server).toBe('0000000000000400');
        expect(caps.php.CapAmb).toBe('0000000000000000');
        expect(caps.php.CapEff).toBe('0000000000000000');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it.skipIf(!isRoot)(
    'a worker script the user may not reach (a 0700 folder of root): the boot error says that user must read it and enter its folders',
    async () => {
      // PHP says "Could not open input file" as for a wrong path; the hint named only the path
      const dir = mkdtempSync(join(tmpdir(), 'warmpool-private-'));
      writeFileSync(join(dir, 'worker.php'), '<?php\n');
      const hint =
        'Likely cause: PHP could not open the worker script; check the command and its path, and that user "nobody" (server.user) can read it and enter every folder above it.';
      try {
        // pipes: PHP says it on the protocol stream; a socket relay: in its output, as it exits
        for (const relay of ['pipes', `unix://${join(tmpdir(), `warmpool-private-${process.pid}.sock`)}`]) {
          const pool = createPool({
            command: 'php worker.php',
            cwd: dir,
            relay,
            num_workers: 1,
            uid: 65534,
            gid: 65534,
            logger: recordingLogger(),
          });
          const failure = await pool.start().then(
            () => null,
            (error: Error) => error.message,
          );
          await pool.close();
          expect([relay, failure]).toEqual([relay, expect.stringContaining(hint)]);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
