// php-cgi run as another user (server.user) and the temp folders it meets: its socket folder is
// made under the server's TMPDIR, and PHP keeps uploads there. A TMPDIR that user cannot enter or
// write is worked around (the socket) or said at start (PHP's uploads), not left to fail unnamed.
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { userMay } from '../../src/worker/temp-dir.js';
import { scriptParams, streamed } from '../fastcgi/php-servers.js';
import { recordingLogger } from '../php-fixtures.js';
import { withCgiPool } from './cgi-pools.js';

const run = promisify(execFile);
/** The built pool (the server a user runs), imported by the process started as nobody. */
const POOL_DIST = fileURLToPath(new URL('../../dist/index.js', import.meta.url));
const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const base = mkdtempSync(join(tmpdir(), 'warmpool-cgi-tmp-'));
chmodSync(base, 0o755);
afterAll(() => rmSync(base, { recursive: true, force: true }));

/** A folder of root's with this mode, as TMPDIR for the server and PHP alike, while `fn` runs. */
async function withTmpdir<T>(mode: number, fn: (folder: string) => Promise<T>): Promise<T> {
  const folder = mkdtempSync(join(base, 'tmp-'));
  chmodSync(folder, mode);
  const before = process.env.TMPDIR;
  process.env.TMPDIR = folder;
  try {
    return await fn(folder);
  } finally {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
  }
}

const hello = {
  params: scriptParams('hello.php'),
  stdin: null,
  signal: null,
  onStderr: null,
};

describe('php-cgi as another user, and TMPDIR', () => {
  it('userMay reads owner, group and other bits; root may all', () => {
    const folder = { uid: 0, gid: 0, mode: 0o40755 };
    expect(userMay(folder, NOBODY, NOBODY, 0o1)).toBe(true);
    expect(userMay(folder, NOBODY, NOBODY, 0o3)).toBe(false);
    expect(userMay({ ...folder, mode: 0o41777 }, NOBODY, NOBODY, 0o3)).toBe(true);
    expect(userMay({ ...folder, mode: 0o40700 }, NOBODY, NOBODY, 0o1)).toBe(false);
    expect(userMay({ uid: NOBODY, gid: 0, mode: 0o40700 }, NOBODY, NOBODY, 0o3)).toBe(true);
    expect(userMay({ uid: 0, gid: NOBODY, mode: 0o40770 }, NOBODY, NOBODY, 0o3)).toBe(true);
    expect(userMay({ ...folder, mode: 0o40700 }, 0, 0, 0o3)).toBe(true);
  });

  it.skipIf(!isRoot)(
    "a TMPDIR the user cannot enter (0700): php-cgi still boots, and PHP's uploads are warned of",
    async () => {
      await withTmpdir(0o700, async (folder) => {
        const logger = recordingLogger();
        await withCgiPool({ uid: NOBODY, gid: NOBODY, logger }, async (pool) => {
          expect(await text(streamed((await pool.exec(hello)).body))).toMatch(/^hello from cgi-fcgi/);
        });
        const warning = logger.lines.find((l) => l.obj.reason === 'tmpdir');
        expect(warning?.level).toBe('warn');
        expect(warning?.msg).toContain(
          `PHP's TMPDIR ${folder} is not writable by the user PHP runs as (uid ${NOBODY})`,
        );
        expect(warning?.msg).toMatch(/0700, owned by uid 0/);
        expect(warning?.msg).toMatch(/server\.env TMPDIR/);
      });
    },
  );

  it.skipIf(!isRoot)('a TMPDIR the user can enter but not write (0755): warned of', async () => {
    await withTmpdir(0o755, async (folder) => {
      const logger = recordingLogger();
      await withCgiPool({ uid: NOBODY, gid: NOBODY, logger }, async (pool) => {
        expect(await text(streamed((await pool.exec(hello)).body))).toMatch(/^hello from cgi-fcgi/);
      });
      expect(logger.lines.find((l) => l.obj.reason === 'tmpdir')?.msg).toContain(`PHP's TMPDIR ${folder} is not`);
    });
  });

  it.skipIf(!isRoot)('a TMPDIR every user may write (1777), or PHP run as root: nothing to say', async () => {
    await withTmpdir(0o1777, async () => {
      const logger = recordingLogger();
      await withCgiPool({ uid: NOBODY, gid: NOBODY, logger }, async (pool) => {
        expect(await text(streamed((await pool.exec(hello)).body))).toMatch(/^hello from cgi-fcgi/);
      });
      expect(logger.lines.filter((l) => l.obj.reason === 'tmpdir')).toEqual([]);
    });
    await withTmpdir(0o700, async () => {
      const logger = recordingLogger();
      await withCgiPool({ logger }, async () => {});
      expect(logger.lines.filter((l) => l.obj.reason === 'tmpdir')).toEqual([]);
    });
  });

  it.skipIf(!isRoot || !existsSync('/usr/bin/setpriv'))(
    'a boot that fails before php-cgi starts (chown refused: server.user without root) removes its socket folder',
    async () => {
      // the server runs as nobody and asks for PHP as root: each boot's chown fails with EPERM, and
      // each left an empty warmpool-php-cgi-* folder in TMPDIR behind (one per worker)
      const folder = mkdtempSync(join(base, 'nobody-'));
      chownSync(folder, NOBODY, NOBODY);
      chmodSync(folder, 0o700);
      const script = join(base, 'not-root.mjs');
      writeFileSync(
        script,
        [
          `import { createCgiPool, SILENT_LOGGER } from ${JSON.stringify(pathToFileURL(POOL_DIST).href)};`,
          "const pool = createCgiPool({ command: 'php-cgi', num_workers: 2, uid: 0, gid: 0, logger: SILENT_LOGGER });",
          'const failure = await pool.start().then(() => null, (error) => error.message);',
          'await pool.close().catch(() => {});',
          'process.stdout.write(JSON.stringify({ failure }));',
        ].join('\n'),
      );
      chmodSync(script, 0o644);
      const { stdout } = await run(
        'setpriv',
        ['--reuid', `${NOBODY}`, '--regid', `${NOBODY}`, '--clear-groups', '--', process.execPath, script],
        { env: { ...process.env, TMPDIR: folder } },
      );
      expect((JSON.parse(stdout) as { failure: string | null }).failure).toMatch(/EPERM/);
      expect(readdirSync(folder)).toEqual([]);
    },
  );
});
