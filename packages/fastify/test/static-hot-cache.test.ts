import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type InjectOptions } from 'fastify';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { InvalidOptionError } from '../src/errors.js';
import { registerStatic, resolveStaticOptions, type StaticOptions } from '../src/static/static.js';

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const counted = <F extends (...args: never[]) => unknown>(name: string, fn: F): F =>
    ((...args: Parameters<F>) => {
      fsCalls.push(name);
      return fn(...args);
    }) as F;
  return {
    ...real,
    stat: counted('stat', real.stat),
    realpath: counted('realpath', real.realpath),
    open: counted('open', real.open),
  };
});
const fsCalls: string[] = [];

const METHODS = ['GET', 'HEAD', 'POST'];
// Long enough that a hit right after a miss is fresh even on a loaded machine; tests that need
// an entry to go stale use SHORT.
const LONG = 60_000;
const SHORT = 300;
const short = { hot_cache: { revalidate_ms: SHORT } };

let dir: string;
let pub: string;
let outside: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'warmpool-hot-'));
  pub = join(dir, 'public');
  outside = join(dir, 'outside');
  mkdirSync(pub);
  mkdirSync(outside);
  mkdirSync(join(pub, 'docs'));
  writeFileSync(join(pub, 'a.css'), 'body { color: red }\n');
  writeFileSync(join(pub, 'app.js'), 'console.log(1)\n');
  writeFileSync(join(pub, 'docs', 'index.html'), '<h1>docs</h1>\n');
  writeFileSync(join(pub, 'big.txt'), 'x'.repeat(1024 * 1024 + 1)); // just over the default max_file_bytes
  writeFileSync(join(pub, 'zipped.txt'), 'zipped\n');
  writeFileSync(join(pub, 'zipped.txt.gz'), 'not really gzip');
  writeFileSync(join(outside, 'secret.txt'), 'TOP SECRET\n');
  writeFileSync(join(pub, 'target.txt'), 'inside\n');
  for (let i = 0; i < 6; i++) writeFileSync(join(pub, `f${i}.txt`), String(i).repeat(1000));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function appWith(options: Partial<StaticOptions> = {}): Promise<FastifyInstance> {
  const resolved = resolveStaticOptions({ root: pub, hot_cache: { revalidate_ms: LONG }, ...options })!;
  const app = Fastify();
  apps.push(app);
  await app.register(async (child) => {
    const serveStatic = await registerStatic(child, resolved);
    const handler = async (req: FastifyRequest, reply: FastifyReply) => {
      if (await serveStatic(req, reply)) return reply;
      return `PHP:${req.method}:${req.url}`;
    };
    child.route({ method: METHODS, url: '/', handler, exposeHeadRoute: false });
    child.route({ method: METHODS, url: '/*', handler, exposeHeadRoute: false });
  });
  await app.ready();
  return app;
}

const inject = (
  app: FastifyInstance,
  url: string,
  headers: InjectOptions['headers'] = {},
  method: 'GET' | 'HEAD' = 'GET',
) => app.inject({ method, url, headers });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function headersOf(res: { headers: Record<string, unknown> }): Record<string, unknown> {
  const { date: _date, connection: _c, 'keep-alive': _k, ...rest } = res.headers;
  return rest;
}

describe('static.hot_cache options', () => {
  it('defaults on, false turns it off, bad values name the key', () => {
    expect(resolveStaticOptions({ root: pub })!.hotCache).toEqual({
      maxBytes: 16 * 1024 * 1024,
      maxFileBytes: 1024 * 1024,
      revalidateMs: 1000,
    });
    expect(resolveStaticOptions({ root: pub, hot_cache: false })!.hotCache).toBeNull();
    expect(resolveStaticOptions({ root: pub, hot_cache: { max_bytes: 1000, max_file_bytes: 10 } })!.hotCache).toEqual({
      maxBytes: 1000,
      maxFileBytes: 10,
      revalidateMs: 1000,
    });
    const bad: [unknown, string][] = [
      [{ max_bytes: -1 }, 'static.hot_cache.max_bytes'],
      [{ max_file_bytes: 1.5 }, 'static.hot_cache.max_file_bytes'],
      [{ revalidate_ms: '1s' }, 'static.hot_cache.revalidate_ms'],
      [{ nope: 1 }, 'static.hot_cache.nope'],
      [{ max_bytes: 10, max_file_bytes: 20 }, 'static.hot_cache.max_file_bytes'],
      ['yes', 'static.hot_cache'],
    ];
    for (const [value, key] of bad) {
      expect(() => resolveStaticOptions({ root: pub, hot_cache: value as never })).toThrow(InvalidOptionError);
      expect(() => resolveStaticOptions({ root: pub, hot_cache: value as never })).toThrow(key);
    }
  });
});

describe('static: hot cache', () => {
  it('a hit is served with no fs call and the same headers and body as send', async () => {
    for (const etag of [true, 'weak', false] as const) {
      for (const precompressed of [true, false]) {
        for (const last_modified of [true, false]) {
          const options = { etag, precompressed, last_modified, cache_control: { '.css': 'public, max-age=60' } };
          const cached = await appWith(options);
          const plain = await appWith({ ...options, hot_cache: false });
          for (const url of ['/a.css', '/app.js', '/docs/']) {
            const expected = await inject(plain, url);
            const miss = await inject(cached, url);
            fsCalls.length = 0;
            const hit = await inject(cached, url);
            expect(fsCalls, url).toEqual([]);
            for (const res of [miss, hit]) {
              expect(res.statusCode).toBe(200);
              expect(res.body).toBe(expected.body);
              expect(headersOf(res), `${url} ${JSON.stringify(options)}`).toEqual(headersOf(expected));
            }
            const head = await inject(cached, url, {}, 'HEAD');
            const headExpected = await inject(plain, url, {}, 'HEAD');
            expect(head.body).toBe('');
            expect(headersOf(head)).toEqual(headersOf(headExpected));
          }
        }
      }
    }
  });

  it('answers 304 for If-None-Match / If-Modified-Since exactly as send does', async () => {
    for (const etag of [true, 'weak', false] as const) {
      const cached = await appWith({ etag });
      const plain = await appWith({ etag, hot_cache: false });
      const first = await inject(plain, '/a.css');
      const tag = String(first.headers.etag ?? '"x"');
      const bare = tag.replace(/^W\//, '');
      const lm = String(first.headers['last-modified']);
      const cases: InjectOptions['headers'][] = [
        { 'if-none-match': tag },
        { 'if-none-match': `W/${bare}` },
        { 'if-none-match': bare },
        { 'if-none-match': `"nope", ${tag}` },
        { 'if-none-match': '"nope"' },
        { 'if-none-match': '*' },
        { 'if-modified-since': lm },
        { 'if-modified-since': new Date(Date.parse(lm) - 10_000).toUTCString() },
        { 'if-none-match': '"nope"', 'if-modified-since': lm },
        { 'if-none-match': tag, 'cache-control': 'no-cache' },
        { 'if-match': '"nope"' },
        { 'if-unmodified-since': new Date(0).toUTCString() },
      ];
      await inject(cached, '/a.css');
      for (const headers of cases) {
        const expected = await inject(plain, '/a.css', headers);
        const res = await inject(cached, '/a.css', headers);
        expect(res.statusCode, JSON.stringify(headers)).toBe(expected.statusCode);
        expect(res.body).toBe(expected.body);
        expect(headersOf(res), JSON.stringify(headers)).toEqual(headersOf(expected));
      }
    }
  });

  it('Range requests and big files stay with send', async () => {
    const app = await appWith();
    await inject(app, '/a.css');
    fsCalls.length = 0;
    const ranged = await inject(app, '/a.css', { range: 'bytes=0-3' });
    expect(ranged.statusCode).toBe(206);
    expect(ranged.body).toBe('body');
    expect(fsCalls.length).toBeGreaterThan(0);
    await inject(app, '/big.txt');
    fsCalls.length = 0;
    const res = await inject(app, '/big.txt');
    expect(res.statusCode).toBe(200);
    expect(fsCalls.length).toBeGreaterThan(0);
  });

  it('a file with a precompressed sibling: each client gets the variant send would send, from the cache', async () => {
    // before: such a file never entered the cache (3-5x slower than one without a sibling)
    const hot = await appWith();
    const send = await appWith({ hot_cache: false });
    for (const encoding of [undefined, 'gzip', 'br, gzip;q=0.8', 'identity', '*']) {
      const headers = encoding === undefined ? {} : { 'accept-encoding': encoding };
      const expected = await inject(send, '/zipped.txt', headers);
      await inject(hot, '/zipped.txt', headers);
      fsCalls.length = 0;
      const hit = await inject(hot, '/zipped.txt', headers);
      expect({ encoding, fsCalls: fsCalls.length }).toEqual({ encoding, fsCalls: 0 });
      expect({ encoding, headers: headersOf(hit), body: hit.body }).toEqual({
        encoding,
        headers: headersOf(expected),
        body: expected.body,
      });
    }
    expect((await inject(hot, '/zipped.txt', { 'accept-encoding': 'gzip' })).headers['content-encoding']).toBe('gzip');
    expect((await inject(hot, '/zipped.txt')).body).toBe('zipped\n');
    // Without precompressed, the sibling does not matter.
    const plain = await appWith({ precompressed: false });
    await inject(plain, '/zipped.txt');
    fsCalls.length = 0;
    expect((await inject(plain, '/zipped.txt', { 'accept-encoding': 'gzip' })).body).toBe('zipped\n');
    expect(fsCalls).toEqual([]);
  });

  it('picks up a changed file after revalidate_ms, with one stat and one realpath', async () => {
    const file = join(pub, 'changing.txt');
    writeFileSync(file, 'one\n');
    utimesSync(file, new Date(1_000_000), new Date(1_000_000));
    const app = await appWith(short);
    expect((await inject(app, '/changing.txt')).body).toBe('one\n');
    writeFileSync(file, 'two!\n');
    const within = (await inject(app, '/changing.txt')).body;
    expect(['one\n', 'two!\n']).toContain(within);
    await sleep(SHORT + 50);
    const after = await inject(app, '/changing.txt');
    expect(after.body).toBe('two!\n');
    expect(after.headers['content-length']).toBe('5');
    // Unchanged past the window: one stat + one realpath (+ sibling stats, precompressed on), no read.
    await sleep(SHORT + 50);
    fsCalls.length = 0;
    expect((await inject(app, '/changing.txt')).body).toBe('two!\n');
    expect(fsCalls).not.toContain('open');
    expect(fsCalls.filter((c) => c === 'realpath')).toHaveLength(1);
    fsCalls.length = 0;
    await inject(app, '/changing.txt');
    expect(fsCalls).toEqual([]);
  });

  it('picks up a file rewritten in place with its size and mtime put back (cp -p, unzip -o): ctime tells', async () => {
    const file = join(pub, 'same-size.txt');
    const fixed = new Date('2026-01-01T00:00:00Z');
    writeFileSync(file, 'version-1 AAAA\n');
    utimesSync(file, fixed, fixed);
    const app = await appWith(short);
    expect((await inject(app, '/same-size.txt')).body).toBe('version-1 AAAA\n');
    writeFileSync(file, 'version-2 BBBB\n');
    utimesSync(file, fixed, fixed);
    await sleep(SHORT + 50);
    // before: the old bytes until the entry was evicted (inode, size and mtime all the same)
    expect((await inject(app, '/same-size.txt')).body).toBe('version-2 BBBB\n');
  });

  it('refuses a cached symlink swapped to point outside the root, once revalidated', async () => {
    const link = join(pub, 'swap.txt');
    symlinkSync('target.txt', link);
    const app = await appWith({ forbidden: 404, ...short });
    expect((await inject(app, '/swap.txt')).body).toBe('inside\n');
    unlinkSync(link);
    symlinkSync('../outside/secret.txt', link);
    await sleep(SHORT + 50);
    const res = await inject(app, '/swap.txt');
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toContain('SECRET');
    // and a symlink to a dotfile inside the root is refused too
    writeFileSync(join(pub, '.env'), 'DB_PASSWORD=x\n');
    const link2 = join(pub, 'swap2.txt');
    symlinkSync('target.txt', link2);
    expect((await inject(app, '/swap2.txt')).body).toBe('inside\n');
    unlinkSync(link2);
    symlinkSync('.env', link2);
    await sleep(SHORT + 50);
    const res2 = await inject(app, '/swap2.txt');
    expect(res2.statusCode).toBe(404);
    expect(res2.body).not.toContain('DB_PASSWORD');
  });

  it('a deleted file falls through to PHP after revalidation', async () => {
    const file = join(pub, 'gone.txt');
    writeFileSync(file, 'here\n');
    const app = await appWith(short);
    expect((await inject(app, '/gone.txt')).body).toBe('here\n');
    unlinkSync(file);
    await sleep(SHORT + 50);
    expect((await inject(app, '/gone.txt')).body).toBe('PHP:GET:/gone.txt');
  });

  it('never caches what the policy refuses', async () => {
    const app = await appWith({ forbidden: 403 });
    for (const url of ['/.env', '/%2eenv', '/docs/../.env', '/a.css.php']) {
      await inject(app, url);
      const res = await inject(app, url);
      expect(res.body).not.toContain('DB_PASSWORD');
      expect(res.statusCode === 403 || res.body.startsWith('PHP:'), url).toBe(true);
    }
  });

  it('evicts least recently used files past max_bytes', async () => {
    // each f*.txt is 1000 bytes (+256 per entry): room for three
    const app = await appWith({ hot_cache: { max_bytes: 3 * 1256 + 10, max_file_bytes: 2000, revalidate_ms: 60_000 } });
    for (let i = 0; i < 4; i++) await inject(app, `/f${i}.txt`);
    fsCalls.length = 0;
    for (let i = 1; i < 4; i++) expect((await inject(app, `/f${i}.txt`)).body).toBe(String(i).repeat(1000));
    expect(fsCalls).toEqual([]);
    expect((await inject(app, '/f0.txt')).body).toBe('0'.repeat(1000));
    expect(fsCalls.length).toBeGreaterThan(0);
  });

  it('serves hits over a real socket', async () => {
    const app = await appWith();
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    for (let i = 0; i < 2; i++) {
      const res = await request(`${address}/a.css`);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/css; charset=utf-8');
      expect(res.headers['content-length']).toBe('20');
      expect(await res.body.text()).toBe('body { color: red }\n');
    }
    const head = await request(`${address}/a.css`, { method: 'HEAD' });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe('20');
    expect(await head.body.text()).toBe('');
  });
});
