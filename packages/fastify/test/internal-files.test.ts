// X-Accel-Redirect and X-Sendfile in both modes (a goridge worker, and classic PHP in php-cgi): the
// server sends the file of the internal folder PHP names, with Range/ETag/304 and PHP's download
// headers, and nothing outside that folder (traversal, dotfiles, links out, absolute paths).
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { warmpool, type WarmpoolOptions } from '../src/index.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures', import.meta.url));
const PRIVATE = join(FIXTURES, 'sites', 'classic-private');
const REPORT = 'quarterly report: all good\n';

let outside: string;
beforeAll(() => {
  // a link in the internal folder to a file outside it
  outside = realpathSync(mkdtempSync(join(tmpdir(), 'warmpool-outside-')));
  symlinkSync('/etc/passwd', join(outside, 'passwd-link'));
  // the static layer's one open dot-folder stays closed here
  mkdirSync(join(outside, '.well-known'));
  writeFileSync(join(outside, '.well-known', 'secret.txt'), 'hunter2 in .well-known\n');
});
afterAll(() => {
  rmSync(outside, { recursive: true, force: true });
});

const modes: Array<[string, (files: WarmpoolOptions['internal_files']) => WarmpoolOptions, string]> = [
  [
    'worker mode',
    (files) => ({
      command: ['php', join(FIXTURES, 'php', 'hands-over-file.php')],
      pool: { num_workers: 1 },
      ...(files === undefined ? {} : { internal_files: files }),
    }),
    '/download',
  ],
  [
    'classic mode',
    (files) => ({
      fastcgi: { root: join(FIXTURES, 'sites', 'classic-app') },
      pool: { num_workers: 1 },
      ...(files === undefined ? {} : { internal_files: files }),
    }),
    '/download.php',
  ],
];

describe.each(modes)('X-Accel-Redirect and X-Sendfile (%s)', (_name, optionsFor, path) => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = Fastify();
    await app.register(warmpool, optionsFor({ root: PRIVATE, prefix: '/protected/' }));
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
  });

  const get = (query: string, headers: Record<string, string> = {}) => app.inject({ url: `${path}?${query}`, headers });

  it('X-Accel-Redirect: sends the file under the prefix, with the download headers PHP set', async () => {
    const res = await get('accel=/protected/report.txt');
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe(REPORT);
    expect(res.headers).toMatchObject({
      'content-type': 'text/plain; charset=utf-8',
      'content-disposition': 'attachment; filename="report.txt"',
      'cache-control': 'private, max-age=60',
      'content-length': String(REPORT.length),
      'accept-ranges': 'bytes',
    });
    expect(res.headers['set-cookie']).toMatch(/^downloaded=1/);
    expect(res.headers['x-accel-redirect']).toBeUndefined();
    expect(res.headers.etag).toBeDefined();
    const nested = await get('accel=/protected/reports/2026.txt');
    expect(nested.body).toBe('nested file\n');
  });

  it('answers Range (206) and If-None-Match (304) as for a static file', async () => {
    const range = await get('accel=/protected/report.txt', { range: 'bytes=0-8' });
    expect([range.statusCode, range.body, range.headers['content-range']]).toEqual([206, 'quarterly', 'bytes 0-8/27']);
    const etag = (await get('accel=/protected/report.txt')).headers.etag as string;
    expect((await get('accel=/protected/report.txt', { 'if-none-match': etag })).statusCode).toBe(304);
  });

  it('X-Sendfile: sends a file by its absolute path inside the internal folder', async () => {
    const res = await get(`sendfile=${encodeURIComponent(join(PRIVATE, 'report.txt'))}`);
    expect([res.statusCode, res.body]).toEqual([200, REPORT]);
    expect(res.headers['x-sendfile']).toBeUndefined();
  });

  it.each([
    ['accel=/protected/../../../../etc/passwd'],
    ['accel=/protected/%2e%2e/%2e%2e/etc/passwd'],
    ['accel=/elsewhere/report.txt'],
    ['accel=/protected/.secret'],
    ['accel=/protected/missing.txt'],
    ['sendfile=/etc/passwd'],
    [`sendfile=${encodeURIComponent(join(PRIVATE, '.secret'))}`],
    [`sendfile=${encodeURIComponent(join(PRIVATE, '..', 'classic-app', 'config.php'))}`],
    ['sendfile=report.txt'],
  ])('%s → 404, nothing of the file nor of PHP', async (query) => {
    const res = await get(query);
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toMatch(/root:x:0|hunter2|PHP body/);
  });

  it('refuses a link in the internal folder that leads out of it, and its .well-known folder', async () => {
    const app2 = Fastify();
    try {
      await app2.register(warmpool, optionsFor({ root: outside }));
      const res = await app2.inject({ url: `${path}?accel=/passwd-link` });
      expect(res.statusCode).toBe(404);
      expect(res.body).not.toContain('root:x:0');
      const wellKnown = await app2.inject({ url: `${path}?accel=/.well-known/secret.txt` });
      expect([wellKnown.statusCode, wellKnown.body.includes('hunter2')]).toEqual([404, false]);
    } finally {
      await app2.close();
    }
  });

  it("without internal_files the headers are dropped (they name private paths, and nginx never passes them on), PHP's body is sent, the log says so once", async () => {
    const lines: string[] = [];
    const plain = Fastify({
      logger: { level: 'warn', stream: { write: (line: string) => void lines.push(line) } },
    });
    try {
      await plain.register(warmpool, optionsFor(undefined));
      for (const query of ['accel=/protected/report.txt', 'sendfile=/srv/private/report.txt']) {
        const res = await plain.inject({ url: `${path}?${query}` });
        expect([res.statusCode, res.body], query).toEqual([200, 'PHP body (the server sends the file instead)']);
        expect(res.headers['x-accel-redirect'], query).toBeUndefined();
        expect(res.headers['x-sendfile'], query).toBeUndefined();
      }
      const said = lines.filter((line) => line.includes('http.internal_files is not set'));
      expect(said).toHaveLength(1);
      expect(said[0]).toContain('X-Accel-Redirect: /protected/report.txt');
    } finally {
      await plain.close();
    }
  });
});

describe('internal_files: options', () => {
  it.each([
    [{ root: '/no/such/dir' }, 'internal_files.root'],
    [{ root: PRIVATE, prefix: 'protected' }, 'internal_files.prefix'],
    [{ root: PRIVATE, alias: '/x' }, 'internal_files.alias'],
  ])('%j → %s', async (files, key) => {
    const app = Fastify();
    let error: unknown;
    try {
      await app.register(warmpool, {
        command: 'php w.php',
        internal_files: files as WarmpoolOptions['internal_files'],
      });
      await app.ready();
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'WP_FASTIFY_INVALID_OPTION', details: { key } });
    await app.close();
  });
});
