import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type InjectOptions } from 'fastify';
import { request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../src/errors.js';
import {
  DEFAULT_STATIC_FORBID,
  registerStatic,
  resolveStaticOptions,
  type StaticOptions,
} from '../src/static/static.js';

const SITES = fileURLToPath(new URL('../../../test/fixtures/sites/', import.meta.url));
// The committed root, for option checks that run at collection time (before beforeAll).
const BASIC = join(SITES, 'static-basic', 'public');
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

// static-basic copied to a temp dir, plus what git does not hold: compressed siblings, a 100 KB
// file, .git/config and symlinks (see the fixture's README).
let site: string;
let pub: string;
let overlay: string;
let css: Buffer;
let big: Buffer;

beforeAll(() => {
  site = mkdtempSync(join(tmpdir(), 'warmpool-static-'));
  cpSync(join(SITES, 'static-basic'), site, { recursive: true });
  pub = join(site, 'public');
  overlay = join(SITES, 'static-overlay', 'public');
  css = readFileSync(join(pub, 'style.css'));
  writeFileSync(join(pub, 'style.css.br'), brotliCompressSync(css));
  writeFileSync(join(pub, 'style.css.gz'), gzipSync(css));
  big = Buffer.alloc(100 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 8)) & 0xff;
  writeFileSync(join(pub, 'big.bin'), big);
  mkdirSync(join(pub, '.git'));
  writeFileSync(join(pub, '.git', 'config'), '[core]\n\t# GIT-CONFIG-MARKER\n');
  symlinkSync('../outside/top-secret.txt', join(pub, 'escape.txt'));
  symlinkSync('../outside', join(pub, 'escape-dir'));
  symlinkSync('/etc/passwd', join(pub, 'passwd.txt'));
  symlinkSync('/', join(pub, 'root-link'));
  symlinkSync('.env', join(pub, 'alias.txt'));
  symlinkSync('style.css', join(pub, 'style-link.css'));
  symlinkSync('../outside/top-secret.txt', join(pub, 'evil.css.br'));
  writeFileSync(join(pub, 'sneaky.css'), 'sneaky.css: public\n');
  symlinkSync('.env', join(pub, 'sneaky.css.gz'));
  // a folder outside the root that links lead into, as Debian's packaged apps link their
  // JavaScript into /usr/share/javascript
  const shared = join(site, 'shared');
  mkdirSync(join(shared, 'jquery'), { recursive: true });
  writeFileSync(join(shared, 'jquery', 'jquery.min.js'), 'SHARED-LIBRARY-MARKER\n');
  writeFileSync(join(shared, '.env'), 'SHARED-ENV-MARKER\n');
  writeFileSync(join(shared, 'settings.php'), '<?php // SHARED-SOURCE-MARKER\n');
  symlinkSync('../shared/jquery/jquery.min.js', join(pub, 'jquery.min.js'));
  symlinkSync('../shared/jquery', join(pub, 'vendor'));
  symlinkSync('../shared/.env', join(pub, 'shared-env.txt'));
  symlinkSync('../shared/settings.php', join(pub, 'shared-source.txt'));
  // RFC 8615's folder, as certbot's webroot mode and a security.txt fill it, and what must not leave it
  mkdirSync(join(pub, '.well-known', 'acme-challenge'), { recursive: true });
  writeFileSync(join(pub, '.well-known', 'security.txt'), 'Contact: mailto:security@example.com\n');
  writeFileSync(join(pub, '.well-known', 'acme-challenge', 'tok'), 'tok.thumbprint');
  writeFileSync(join(pub, '.well-known', '.hidden'), 'HIDDEN-FOLDER-MARKER\n');
  writeFileSync(join(pub, '.well-known', 'shell.php'), '<?php // planted\n');
  symlinkSync('../.env', join(pub, '.well-known', 'env-link.txt'));
});

afterAll(() => {
  rmSync(site, { recursive: true, force: true });
});

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

/**
 * What the integrator wires: the static handler in the catch-all's encapsulated context, and PHP
 * (here an echo) for whatever it does not answer.
 */
async function appWith(
  options: Partial<StaticOptions> = {},
  setup?: (app: FastifyInstance) => Promise<void>,
): Promise<FastifyInstance> {
  const resolved = resolveStaticOptions({ root: pub, ...options })!;
  const app = Fastify();
  apps.push(app);
  await setup?.(app);
  await app.register(async (child) => {
    const serveStatic = await registerStatic(child, resolved);
    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      if (await serveStatic(request, reply)) return reply;
      return `PHP:${request.method}:${request.url}`;
    };
    child.route({ method: METHODS, url: '/', handler, exposeHeadRoute: false });
    child.route({ method: METHODS, url: '/*', handler, exposeHeadRoute: false });
  });
  await app.ready();
  return app;
}

const get = (app: FastifyInstance, url: string, headers: InjectOptions['headers'] = {}) =>
  app.inject({ method: 'GET', url, headers });

describe('static: try_files $uri $uri/ then PHP', () => {
  it('If-Match compares strongly: a weak tag never matches (412, as nginx); the strong one does', async () => {
    const app = await appWith();
    const tag = (await get(app, '/style.css')).headers.etag as string;
    expect((await get(app, '/style.css', { 'if-match': tag })).statusCode).toBe(200);
    // before: 200, @fastify/send took W/"x" for "x"
    expect((await get(app, '/style.css', { 'if-match': `W/${tag}` })).statusCode).toBe(412);
    expect((await get(app, '/style.css', { 'if-match': `W/${tag}, ${tag}` })).statusCode).toBe(200);
    expect((await get(app, '/style.css', { 'if-match': '*' })).statusCode).toBe(200);
  });

  it('an empty file asked with a Range is the whole (empty) file, 200, as nginx (was 416)', async () => {
    writeFileSync(join(pub, 'empty.txt'), '');
    const app = await appWith();
    for (const range of ['bytes=0-9', 'bytes=-5', 'bytes=0-']) {
      const res = await get(app, '/empty.txt', { range });
      expect([range, res.statusCode, res.body]).toEqual([range, 200, '']);
    }
  });

  it('serves a file with its type, validators and ranges, and no Cache-Control unless configured', async () => {
    const app = await appWith();
    const res = await get(app, '/style.css?v=3');
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(res.headers['content-length']).toBe(String(css.length));
    expect(res.headers.etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/); // strong by default
    expect(res.headers['last-modified']).toMatch(/GMT$/);
    expect(res.headers['accept-ranges']).toBe('bytes');
    // none by default, as nginx and RoadRunner: browsers then cache by Last-Modified (heuristic
    // freshness); "public, max-age=0" made them revalidate every image on every page view
    expect(res.headers['cache-control']).toBeUndefined();
    expect(res.rawPayload.equals(css)).toBe(true);
    expect((await get(app, '/img.svg')).headers['content-type']).toBe('image/svg+xml');
    expect((await get(app, '/big.bin')).headers['content-type']).toBe('application/octet-stream');
  });

  it('serves index.html for directory paths and redirects a directory without its slash', async () => {
    const app = await appWith();
    expect((await get(app, '/')).body).toContain('static-basic index');
    const nested = await get(app, '/nested/dir/');
    expect(nested.statusCode).toBe(200);
    expect(nested.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(nested.body).toContain('nested dir index');
    const redirect = await get(app, '/nested/dir?x=1');
    expect(redirect.statusCode).toBe(301);
    expect(redirect.headers.location).toBe('/nested/dir/?x=1');
    // HEAD: the same headers as GET, its Content-Length: 0 too (nginx sends its length)
    const head = await app.inject({ method: 'HEAD', url: '/nested/dir?x=1' });
    expect([head.statusCode, head.headers.location, head.headers['content-length']]).toEqual([
      301,
      '/nested/dir/?x=1',
      redirect.headers['content-length'],
    ]);
  });

  it('sends to PHP what is not a file: missing paths, directories without an index, file paths used as directories', async () => {
    const app = await appWith();
    expect((await get(app, '/blog/post-1?page=2')).body).toBe('PHP:GET:/blog/post-1?page=2');
    expect((await get(app, '/missing.css')).body).toBe('PHP:GET:/missing.css');
    expect((await get(app, '/assets/')).body).toBe('PHP:GET:/assets/');
    expect((await get(app, '/assets')).body).toBe('PHP:GET:/assets');
    expect((await get(app, '/style.css/')).body).toBe('PHP:GET:/style.css/');
    expect((await get(app, '/index.php/route')).body).toBe('PHP:GET:/index.php/route');
    expect((await get(app, '/assets/app.js')).statusCode).toBe(200);
  });

  it('with index: false a directory path goes to PHP', async () => {
    const app = await appWith({ index: false });
    expect((await get(app, '/')).body).toBe('PHP:GET:/');
    expect((await get(app, '/nested/dir')).body).toBe('PHP:GET:/nested/dir');
  });

  it('HEAD has the headers and no body', async () => {
    const app = await appWith();
    const res = await app.inject({ method: 'HEAD', url: '/style.css' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(css.length));
    expect(res.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(res.headers.etag).toBeDefined();
    expect(res.body).toBe('');
  });

  it('only GET and HEAD are served: other methods on a file go to PHP', async () => {
    const app = await appWith();
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const) {
      const res = await app.inject({ method, url: '/style.css' });
      expect(res.body, method).toBe(`PHP:${method}:/style.css`);
    }
  });

  it('uses the first root that has the file', async () => {
    const app = await appWith({ root: [overlay, pub] });
    expect((await get(app, '/style.css')).body).toContain('static-overlay');
    expect((await get(app, '/only-overlay.txt')).body).toBe('only in the overlay root\n');
    expect((await get(app, '/img.svg')).headers['content-type']).toBe('image/svg+xml');
    expect((await get(app, '/')).body).toContain('static-basic index');
    const reversed = await appWith({ root: [pub, overlay] });
    expect((await get(reversed, '/style.css')).rawPayload.equals(css)).toBe(true);
  });

  it('coexists with a @fastify/static the host app registered first: ours serves in its own context', async () => {
    const app = await appWith({}, async (host) => {
      await host.register(fastifyStatic, { root: overlay, serve: false, preCompressed: false });
    });
    const res = await get(app, '/style.css', { 'accept-encoding': 'br' });
    expect(res.headers['content-encoding']).toBe('br');
    expect(brotliDecompressSync(res.rawPayload).equals(css)).toBe(true);
  });
});

describe('static: conditional requests', () => {
  it('304 on If-None-Match with the strong tag, with validators, no body and no Cache-Control unless configured', async () => {
    const app = await appWith();
    const first = await get(app, '/style.css');
    const etag = first.headers.etag as string;
    const res = await get(app, '/style.css', { 'if-none-match': etag });
    expect(res.statusCode).toBe(304);
    expect(res.body).toBe('');
    expect(res.headers.etag).toBe(etag);
    expect(res.headers['cache-control']).toBeUndefined();
    expect((await get(app, '/style.css', { 'if-none-match': '"other"' })).statusCode).toBe(200);
    expect((await get(app, '/style.css', { 'if-none-match': `"x", ${etag}` })).statusCode).toBe(304);
  });

  it('304 on If-Modified-Since; 200 when the file is newer, or the date is later than the clock (invalid, as nginx)', async () => {
    for (const app of [await appWith(), await appWith({ hot_cache: false })]) {
      const lastModified = (await get(app, '/style.css')).headers['last-modified'] as string;
      expect((await get(app, '/style.css', { 'if-modified-since': lastModified })).statusCode).toBe(304);
      expect((await get(app, '/style.css', { 'if-modified-since': 'Thu, 01 Jan 1970 00:00:00 GMT' })).statusCode).toBe(
        200,
      );
      const future = new Date(Date.now() + 86_400_000).toUTCString();
      expect((await get(app, '/style.css', { 'if-modified-since': future })).statusCode).toBe(200);
    }
  });

  it('etag "weak" sends W/ tags that still match; false sends none; last_modified false drops Last-Modified', async () => {
    const weak = await appWith({ etag: 'weak' });
    const tag = (await get(weak, '/style.css')).headers.etag as string;
    expect(tag).toMatch(/^W\/"/);
    expect((await get(weak, '/style.css', { 'if-none-match': tag })).statusCode).toBe(304);
    const none = await appWith({ etag: false, last_modified: false });
    const res = await get(none, '/style.css');
    expect(res.headers.etag).toBeUndefined();
    expect(res.headers['last-modified']).toBeUndefined();
    expect((await get(none, '/style.css', { 'if-none-match': tag })).statusCode).toBe(200);
  });
});

describe('static: ranges', () => {
  it('206 with Content-Range for one range, 416 for an unsatisfiable one', async () => {
    const app = await appWith();
    const head = await get(app, '/big.bin', { range: 'bytes=0-99' });
    expect(head.statusCode).toBe(206);
    expect(head.headers['content-range']).toBe(`bytes 0-99/${big.length}`);
    expect(head.rawPayload.equals(big.subarray(0, 100))).toBe(true);
    const tail = await get(app, '/big.bin', { range: 'bytes=-1000' });
    expect(tail.statusCode).toBe(206);
    expect(tail.rawPayload.equals(big.subarray(big.length - 1000))).toBe(true);
    const unsatisfiable = await get(app, '/big.bin', { range: 'bytes=200000-300000' });
    expect(unsatisfiable.statusCode).toBe(416);
    expect(unsatisfiable.headers['content-range']).toBe(`bytes */${big.length}`);
  });

  it('Cache-Control goes on files only: a 416 does not carry a long max-age', async () => {
    const app = await appWith({ cache_control: { '.bin': 'public, max-age=31536000, immutable' } });
    expect((await get(app, '/big.bin', { range: 'bytes=0-0' })).headers['cache-control']).toBe(
      'public, max-age=31536000, immutable',
    );
    expect((await get(app, '/big.bin', { range: 'bytes=200000-' })).headers['cache-control']).toBeUndefined();
  });

  it('If-Range with the current strong tag keeps the range; a stale one gets the whole file', async () => {
    const app = await appWith();
    const etag = (await get(app, '/big.bin')).headers.etag as string;
    expect((await get(app, '/big.bin', { range: 'bytes=10-19', 'if-range': etag })).statusCode).toBe(206);
    const stale = await get(app, '/big.bin', { range: 'bytes=10-19', 'if-range': '"0-0"' });
    expect(stale.statusCode).toBe(200);
    expect(stale.rawPayload.length).toBe(big.length);
  });

  // RFC 9110 13.1.5: If-Range needs a strong match. W/ on our tag is what a body compressed on the
  // fly carries: a range of the plain file must not be joined to compressed bytes
  it('If-Range with a weak tag gets the whole file: ours with W/, or the tag of weak: true', async () => {
    const app = await appWith();
    const etag = (await get(app, '/big.bin')).headers.etag as string;
    const weakened = await get(app, '/big.bin', { range: 'bytes=10-19', 'if-range': `W/${etag}` });
    expect([weakened.statusCode, weakened.headers['content-range']]).toEqual([200, undefined]);
    expect(weakened.rawPayload.equals(big)).toBe(true);
    const weak = await appWith({ weak: true });
    const tag = (await get(weak, '/big.bin')).headers.etag as string;
    expect(tag).toMatch(/^W\//);
    const whole = await get(weak, '/big.bin', { range: 'bytes=10-19', 'if-range': tag });
    expect([whole.statusCode, whole.rawPayload.length]).toEqual([200, big.length]);
    // a Last-Modified date still keeps the range
    const lastModified = (await get(weak, '/big.bin')).headers['last-modified'] as string;
    expect((await get(weak, '/big.bin', { range: 'bytes=10-19', 'if-range': lastModified })).statusCode).toBe(206);
  });
});

describe('static: precompressed siblings', () => {
  it('serves .br or .gz by Accept-Encoding, with the original type and Vary: Accept-Encoding', async () => {
    const app = await appWith();
    const br = await get(app, '/style.css', { 'accept-encoding': 'gzip, deflate, br' });
    expect(br.statusCode).toBe(200);
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(br.headers.vary).toMatch(/accept-encoding/i);
    expect(brotliDecompressSync(br.rawPayload).equals(css)).toBe(true);
    const gz = await get(app, '/style.css', { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(gz.headers['content-type']).toBe('text/css; charset=utf-8');
    expect(gunzipSync(gz.rawPayload).equals(css)).toBe(true);
    expect(gz.headers.etag).not.toBe(br.headers.etag); // another representation, another tag
    const preferGzip = await get(app, '/style.css', { 'accept-encoding': 'br;q=0.5, gzip' });
    expect(preferGzip.headers['content-encoding']).toBe('gzip');
  });

  it('falls back to the file itself, still with Vary, when nothing fits or no sibling exists', async () => {
    const app = await appWith();
    const identity = await get(app, '/style.css', { 'accept-encoding': 'identity' });
    expect(identity.headers['content-encoding']).toBeUndefined();
    expect(identity.headers.vary).toMatch(/accept-encoding/i);
    expect(identity.rawPayload.equals(css)).toBe(true);
    const svg = await get(app, '/img.svg', { 'accept-encoding': 'br, gzip' });
    expect(svg.headers['content-encoding']).toBeUndefined();
    expect(svg.headers['content-type']).toBe('image/svg+xml');
  });

  it('precompressed: false always sends the file itself, without Vary', async () => {
    const app = await appWith({ precompressed: false });
    const res = await get(app, '/style.css', { 'accept-encoding': 'br' });
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.headers.vary).toBeUndefined();
    expect(res.rawPayload.equals(css)).toBe(true);
  });

  it('304 works for the compressed representation', async () => {
    const app = await appWith();
    const etag = (await get(app, '/style.css', { 'accept-encoding': 'br' })).headers.etag as string;
    expect((await get(app, '/style.css', { 'accept-encoding': 'br', 'if-none-match': etag })).statusCode).toBe(304);
  });
});

describe('static: cache_control', () => {
  it('sets Cache-Control by extension (of the original for compressed siblings), "*" for the rest', async () => {
    const app = await appWith({
      cache_control: { '.css': 'public, max-age=31536000, immutable', '.SVG': 'public, max-age=3600', '*': 'no-cache' },
    });
    expect((await get(app, '/style.css')).headers['cache-control']).toBe('public, max-age=31536000, immutable');
    expect((await get(app, '/style.css', { 'accept-encoding': 'br' })).headers['cache-control']).toBe(
      'public, max-age=31536000, immutable',
    );
    expect((await get(app, '/img.svg')).headers['cache-control']).toBe('public, max-age=3600');
    expect((await get(app, '/')).headers['cache-control']).toBe('no-cache');
    expect((await get(app, '/blog')).headers['cache-control']).toBeUndefined(); // PHP's answer is PHP's
  });

  it('sends no Cache-Control for an extension without a rule when "*" is not set, from send and from memory', async () => {
    for (const hot_cache of [undefined, false] as const) {
      const app = await appWith({ cache_control: { '.css': 'public, max-age=2592000' }, hot_cache });
      for (let i = 0; i < 2; i++) {
        // the second request of each is a hot-cache hit when the cache is on
        const svg = await get(app, '/img.svg');
        expect([svg.statusCode, svg.headers['cache-control']]).toEqual([200, undefined]);
        const css = await get(app, '/style.css');
        expect([css.statusCode, css.headers['cache-control']]).toEqual([200, 'public, max-age=2592000']);
      }
      const range = await get(app, '/big.bin', { range: 'bytes=0-0' });
      expect([range.statusCode, range.headers['cache-control']]).toEqual([206, undefined]);
      const brotli = await get(app, '/style.css', { 'accept-encoding': 'br' });
      expect(brotli.headers['content-encoding']).toBe('br');
      expect(brotli.headers['cache-control']).toBe('public, max-age=2592000');
    }
  });
});

describe('static: forbidden files never leave as bytes', () => {
  const forbiddenPaths = [
    '/secret.php',
    '/upper.PHP',
    '/backup.php.bak',
    '/.env',
    '/.git/config',
    '/.hidden/file.txt',
    '/alias.txt',
    // what a deploy leaves behind: a log, a database dump and file, a backup
    '/debug.log',
    '/dump.sql',
    '/site.sqlite',
    '/config.bak',
    // PHP source under Apache's other names: sent as text before
    '/config.inc',
    '/lib.php5',
    // copies named by hand (sent as text before)
    '/config.php_bak',
    '/index.php-',
    '/wp-config.old',
  ];
  const leaked = (body: string) =>
    /<\?php|ENV-FILE-MARKER|GIT-CONFIG-MARKER|HIDDEN-FOLDER-MARKER|LEAKED-[A-Z]+-MARKER/.test(body);

  it('forbidden: "php" (default) passes them to PHP', async () => {
    const app = await appWith();
    for (const path of forbiddenPaths) {
      const res = await get(app, path);
      expect(res.body, path).toBe(`PHP:GET:${path}`);
    }
  });

  // names that look forbidden but are no file: routes of the PHP app (a front controller's
  // /index.php?route=, a legacy /wp-login.php, a log route), never shadowed by forbidden: 403 | 404
  const routes = [
    '/index.php',
    '/index.php?route=home',
    '/wp-login.php',
    '/debug/today.log',
    '/does-not-exist.php',
    '/.nothing',
    '/.hidden/nothing.txt',
    '/secret.php/x.php',
  ];

  it('forbidden: 403 answers 403 for an existing forbidden file or folder; a name that is no file goes to PHP', async () => {
    const app = await appWith({ forbidden: 403 });
    for (const path of [...forbiddenPaths, '/.hidden', '/.hidden/', '/.git/']) {
      const res = await get(app, path);
      expect([path, res.statusCode]).toEqual([path, 403]);
      expect(res.body).toBe('Forbidden\n');
    }
    for (const path of routes) expect((await get(app, path)).body, path).toBe(`PHP:GET:${path}`);
    expect((await app.inject({ method: 'POST', url: '/secret.php' })).body).toBe('PHP:POST:/secret.php');
    // secret.php on a case-insensitive disk (refused), no file on a case-sensitive one (PHP's)
    const upper = await get(app, '/SECRET.PHP');
    expect(upper.statusCode === 403 || upper.body === 'PHP:GET:/SECRET.PHP').toBe(true);
    expect(leaked(upper.body)).toBe(false);
  });

  it('forbidden: 404 answers 404 for an existing forbidden file; a name that is no file goes to PHP', async () => {
    const app = await appWith({ forbidden: 404 });
    for (const path of forbiddenPaths) {
      const res = await get(app, path);
      expect([path, res.statusCode]).toEqual([path, 404]);
      expect(leaked(res.body)).toBe(false);
    }
    for (const path of routes) expect((await get(app, path)).body, path).toBe(`PHP:GET:${path}`);
  });

  it("/.well-known/ is the one dot-folder served (as nginx's `location ~ /\\.(?!well-known)`); its dotfiles and source are not", async () => {
    const app = await appWith({ forbidden: 403 });
    const security = await get(app, '/.well-known/security.txt');
    expect([security.statusCode, security.body]).toEqual([200, 'Contact: mailto:security@example.com\n']);
    expect((await get(app, '/.well-known/acme-challenge/tok')).body).toBe('tok.thumbprint');
    // not a file: PHP's (the front controller answers OIDC discovery, CardDAV, WebFinger)
    expect((await get(app, '/.well-known/openid-configuration')).body).toBe(
      'PHP:GET:/.well-known/openid-configuration',
    );
    expect((await get(app, '/.well-known/carddav')).body).toBe('PHP:GET:/.well-known/carddav');
    for (const path of ['/.well-known/.hidden', '/.well-known/shell.php', '/.well-known/env-link.txt']) {
      const res = await get(app, path);
      expect([path, res.statusCode]).toEqual([path, 403]);
      expect(leaked(res.body), path).toBe(false);
    }
    // a dot-folder deeper down that holds nothing: no file, so PHP's
    expect((await get(app, '/a/.well-known/x')).body).toBe('PHP:GET:/a/.well-known/x');
  });

  it('secret.php with a trailing dot, space or NTFS stream name is not a file name we serve', async () => {
    const app = await appWith({ forbidden: 403 });
    for (const path of [
      '/secret.php.',
      '/secret.php%20',
      '/secret.php%2e',
      '/secret.php::$DATA',
      '/secret.php%00.css',
      '/secret.php/',
    ]) {
      const res = await get(app, path);
      expect(leaked(res.body), path).toBe(false);
      expect(res.body.startsWith('PHP:'), path).toBe(true);
    }
  });

  it('allow serves only the listed extensions; the rest is forbidden', async () => {
    const app = await appWith({ allow: ['.css'], forbidden: 404 });
    expect((await get(app, '/style.css')).statusCode).toBe(200);
    expect((await get(app, '/img.svg')).statusCode).toBe(404);
    expect((await get(app, '/style.css.br')).statusCode).toBe(404);
    expect((await get(app, '/secret.php')).statusCode).toBe(404);
    // The default index does not fit the allow list, so directories go to PHP.
    expect((await get(app, '/')).body).toBe('PHP:GET:/');
    expect((await get(app, '/nested/dir')).body).toBe('PHP:GET:/nested/dir');
    const php = await appWith({ allow: ['.css'] });
    expect((await get(php, '/img.svg')).body).toBe('PHP:GET:/img.svg');
  });

  it('allow with forbidden: 404 or 403 decides which files are sent; every route of the app that names no file still reaches PHP', async () => {
    for (const forbidden of [404, 403] as const) {
      const app = await appWith({ allow: ['.css', '.js', '.html'], forbidden });
      for (const path of [
        '/products',
        '/products?id=7',
        '/blog/hello-world',
        '/api/users.json',
        '/feed.rss',
        '/.well-known/acme-challenge/x',
        '/index.php?route=home',
      ])
        expect((await get(app, path)).body, `${forbidden} ${path}`).toBe(`PHP:GET:${path}`);
      expect((await get(app, '/assets/app.js')).statusCode).toBe(200);
      // a folder has no extension for allow to judge: the slash redirect, then its index
      const folder = await get(app, '/nested/dir?x=1');
      expect([folder.statusCode, folder.headers.location]).toEqual([301, '/nested/dir/?x=1']);
      expect((await get(app, '/nested/dir/')).body).toContain('nested dir index');
      for (const path of ['/img.svg', '/readme.txt', '/secret.php', '/.env']) {
        const res = await get(app, path);
        expect([forbidden, path, res.statusCode]).toEqual([forbidden, path, forbidden]);
        expect(leaked(res.body), path).toBe(false);
      }
    }
  });

  it('a custom forbid list adds to the default one: PHP source, backups, logs and dotfiles stay forbidden', async () => {
    for (const forbid of [['.svg'], ['.php'], [...DEFAULT_STATIC_FORBID, '.svg']]) {
      const app = await appWith({ forbid, forbidden: 403 });
      for (const path of forbiddenPaths) {
        const res = await get(app, path);
        expect([forbid, path, res.statusCode]).toEqual([forbid, path, 403]);
        expect(leaked(res.body), path).toBe(false);
      }
      const svg = await get(app, '/img.svg');
      expect([forbid, svg.statusCode]).toEqual([forbid, forbid.includes('.svg') ? 403 : 200]);
      expect((await get(app, '/style.css')).statusCode).toBe(200);
    }
  });
});

describe('static: symlinks must resolve inside the root', () => {
  const secret = /TOP-SECRET|root:x:0:0/;

  it('links out of the root are never followed (php, 403)', async () => {
    const php = await appWith();
    const strict = await appWith({ forbidden: 403 });
    for (const path of ['/escape.txt', '/escape-dir/top-secret.txt', '/passwd.txt', '/root-link/etc/passwd']) {
      const viaPhp = await get(php, path);
      expect(viaPhp.body, path).toBe(`PHP:GET:${path}`);
      const refused = await get(strict, path);
      expect(refused.statusCode, path).toBe(403);
      expect(secret.test(refused.body)).toBe(false);
    }
  });

  it('a link inside the root to an allowed file is served; to a forbidden one is not', async () => {
    const app = await appWith({ forbidden: 404 });
    expect((await get(app, '/style-link.css')).rawPayload.equals(css)).toBe(true);
    const alias = await get(app, '/alias.txt');
    expect(alias.statusCode).toBe(404);
    expect(alias.body).not.toContain('ENV-FILE-MARKER');
  });

  it('a precompressed sibling that links out of the root is refused, never sent', async () => {
    const app = await appWith();
    const res = await get(app, '/evil.css', { 'accept-encoding': 'br' });
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toMatch(secret);
    const plain = await get(app, '/evil.css');
    expect(plain.statusCode).toBe(200);
    expect(plain.body).toContain('evil.css:');
  });

  it('link_targets: a link into a named folder is served, its target checked by name; every other link out stays refused', async () => {
    const shared = join(site, 'shared');
    const closed = await appWith({ forbidden: 403 });
    expect((await get(closed, '/jquery.min.js')).statusCode).toBe(403);
    const open = await appWith({ forbidden: 403, link_targets: [shared] });
    for (const path of ['/jquery.min.js', '/vendor/jquery.min.js']) {
      const res = await get(open, path);
      expect(res.statusCode, path).toBe(200);
      expect(res.headers['content-type'], path).toBe('application/javascript; charset=utf-8');
      expect(res.body, path).toBe('SHARED-LIBRARY-MARKER\n');
      // the hot cache serves it again; the link is checked again when it goes stale
      expect((await get(open, path)).body, path).toBe('SHARED-LIBRARY-MARKER\n');
    }
    // the name the link resolves to is checked too: a dotfile or a script there is never sent
    for (const path of [
      '/shared-env.txt',
      '/shared-source.txt',
      '/escape.txt',
      '/passwd.txt',
      '/root-link/etc/passwd',
    ]) {
      const res = await get(open, path);
      expect(res.statusCode, path).toBe(403);
      expect(res.body, path).not.toMatch(/SHARED-ENV-MARKER|SHARED-SOURCE-MARKER|TOP-SECRET|root:x:0:0/);
    }
  });

  it('says in the log which link out of the root it did not follow, once per file', async () => {
    const lines: string[] = [];
    const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => void lines.push(line) } } });
    apps.push(app);
    const serveStatic = await registerStatic(app, resolveStaticOptions({ dir: pub, forbidden: 404 })!);
    app.get('/*', async (request, reply) => ((await serveStatic(request, reply)) ? reply : 'PHP'));
    await app.ready();
    expect((await get(app, '/jquery.min.js')).statusCode).toBe(404);
    expect((await get(app, '/jquery.min.js')).statusCode).toBe(404);
    const warnings = lines.map((line) => JSON.parse(line)).filter((entry) => entry.file?.endsWith('jquery.min.js'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      target: join(site, 'shared', 'jquery', 'jquery.min.js'),
      msg: expect.stringContaining('static.link_targets'),
    });
  });

  it('a precompressed sibling that links to a forbidden file inside the root is refused, never sent', async () => {
    // inside the root, so only the sibling's own name check (not the root check) stands in the way
    const app = await appWith();
    const res = await get(app, '/sneaky.css', { 'accept-encoding': 'gzip' });
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toContain('ENV-FILE-MARKER');
    const plain = await get(app, '/sneaky.css');
    expect(plain.statusCode).toBe(200);
    expect(plain.body).toContain('sneaky.css: public');
  });
});

/** One GET written byte for byte: clients (undici included) normalise "/../" before sending. */
function rawGet(port: number, path: string): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
    );
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      resolve({
        status: Number(text.slice(9, 12)),
        head: split < 0 ? text : text.slice(0, split),
        body: split < 0 ? '' : text.slice(split + 4),
      });
    });
  });
}

describe('static: raw request targets over a real socket', () => {
  it('traversal in any encoding goes to PHP or is rejected; the outside file never comes back', async () => {
    const app = await appWith({ forbidden: 404 });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    const paths = [
      '/../outside/top-secret.txt',
      '/..%2foutside%2ftop-secret.txt',
      '/%2e%2e/outside/top-secret.txt',
      '/%2E%2e%2foutside/top-secret.txt',
      '/..%5coutside%5ctop-secret.txt',
      '/%c0%ae%c0%ae/outside/top-secret.txt',
      '/%252e%252e/outside/top-secret.txt',
      '/nested/../../outside/top-secret.txt',
      '/escape.txt%00.css',
      '/nested//../../outside/top-secret.txt',
      '/.//../outside/top-secret.txt',
    ];
    for (const path of paths) {
      const res = await rawGet(port, path);
      expect(res.body, path).not.toContain('TOP-SECRET');
      expect([200, 400, 404], path).toContain(res.status);
      if (res.status === 200) expect(res.body, path).toBe(`PHP:GET:${path}`);
    }
  });

  it('merges slashes and drops "." segments as nginx does; a redirect never leaves the host', async () => {
    const app = await appWith({ forbidden: 403 });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    for (const path of ['//style.css', '/./style.css', '/%2e/style.css']) {
      const res = await rawGet(port, path);
      expect([path, res.status, res.body === css.toString('latin1')]).toEqual([path, 200, true]);
    }
    // ".." is not resolved: PHP's, as before
    expect((await rawGet(port, '/assets//../style.css')).body).toBe('PHP:GET:/assets//../style.css');
    expect((await rawGet(port, '//nested//dir/')).body).toContain('nested dir index');
    for (const [path, location] of [
      ['//nested/dir?x=1', '/nested/dir/?x=1'],
      ['/nested/./dir', '/nested/dir/'],
      ['//nested//dir', '/nested/dir/'],
    ] as const) {
      const res = await rawGet(port, path);
      expect([path, res.status, /\r\nlocation: ([^\r]*)/i.exec(res.head)?.[1]]).toEqual([path, 301, location]);
    }
    for (const path of ['//.env', '/.//.git//config', '//secret.php']) {
      expect([path, (await rawGet(port, path)).status]).toEqual([path, 403]);
    }
  });

  it('undici sees the same answers as inject for a served file, a redirect and a fall-through', async () => {
    const app = await appWith();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    const base = `http://127.0.0.1:${port}`;
    const file = await request(`${base}/style.css`, { headers: { 'accept-encoding': 'gzip' } });
    expect(file.statusCode).toBe(200);
    expect(file.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(Buffer.from(await file.body.arrayBuffer())).equals(css)).toBe(true);
    const redirect = await request(`${base}/nested/dir`);
    expect(redirect.statusCode).toBe(301);
    expect(redirect.headers.location).toBe('/nested/dir/');
    await redirect.body.dump();
    const php = await request(`${base}/blog/post-1`);
    expect(await php.body.text()).toBe('PHP:GET:/blog/post-1');
  });
});

describe('static: options', () => {
  it('is off (null) without options, and resolves the defaults', () => {
    expect(resolveStaticOptions(undefined)).toBeNull();
    const resolved = resolveStaticOptions({ root: pub })!;
    expect(resolved).toMatchObject({
      roots: [pub],
      forbidden: 'php',
      index: ['index.html'],
      etag: 'strong',
      lastModified: true,
      precompressed: true,
      cacheControlDefault: null,
    });
    expect([...resolved.policy.forbid]).toEqual([
      ...['.php', '.phtml', '.phar'],
      // PHP source under Apache's other names (lib.php5, config.inc were sent as text before)
      ...['.php3', '.php4', '.php5', '.php7', '.php8', '.phps', '.pht', '.inc'],
      ...['.env', '.htaccess', '.git'],
      ...['.log', '.sql', '.sqlite', '.sqlite3', '.bak', '.old', '.orig', '.swp'],
    ]);
    expect(resolved.policy.allow).toBeNull();
    // Empty lists mean "the default" (forbid) and "no allow list" (allow), as in RoadRunner.
    const empty = resolveStaticOptions({ root: pub, forbid: [], allow: [] })!;
    expect([...empty.policy.forbid]).toEqual([...DEFAULT_STATIC_FORBID]);
    expect(empty.policy.allow).toBeNull();
    // A list adds to the default one (RoadRunner's replaces it): no default extension is ever dropped.
    const added = resolveStaticOptions({ root: pub, forbid: ['.CSV', '.php'] })!;
    expect([...added.policy.forbid]).toEqual([...DEFAULT_STATIC_FORBID, '.csv']);
  });

  it('resolves a relative root from process.cwd()', () => {
    const cwd = process.cwd();
    process.chdir(site);
    try {
      expect(resolveStaticOptions({ root: 'public' })!.roots).toEqual([pub]);
    } finally {
      process.chdir(cwd);
    }
  });

  it.each<[string, unknown]>([
    ['static.root', { root: join(BASIC, 'nope') }],
    ['static.root', { root: join(BASIC, 'style.css') }],
    ['static.root', { root: [] }],
    ['static.root', { root: [BASIC, BASIC] }],
    ['static.dir', {}],
    ['static.forbid', { root: BASIC, forbid: ['php'] }],
    ['static.allow', { root: BASIC, allow: '.css' }],
    ['static.forbidden', { root: BASIC, forbidden: 500 }],
    ['static.index', { root: BASIC, index: ['index.php'] }],
    ['static.index', { root: BASIC, index: ['../index.html'] }],
    ['static.index', { root: BASIC, allow: ['.css'], index: ['index.html'] }],
    ['static.etag', { root: BASIC, etag: 'yes' }],
    ['static.dir', { dir: join(BASIC, 'nope') }],
    ['static.root', { dir: BASIC, root: BASIC }],
    ['static.calculate_etag', { dir: BASIC, calculate_etag: 'yes' }],
    ['static.weak', { dir: BASIC, weak: 1 }],
    ['static.etag', { dir: BASIC, etag: 'weak', weak: true }],
    ['static.precompressed', { root: BASIC, precompressed: 'true' }],
    ['static.cache_control[".css"]', { root: BASIC, cache_control: { '.css': 'a\r\nSet-Cookie: x' } }],
    ['static.cache_control["css"]', { root: BASIC, cache_control: { css: 'public' } }],
    ['static.maxAge', { root: BASIC, maxAge: 10 }],
    ['static.link_targets', { root: BASIC, link_targets: '/usr/share/javascript' }],
    ['static.link_targets', { root: BASIC, link_targets: [join(BASIC, 'nope')] }],
    ['static.link_targets', { root: BASIC, link_targets: [join(BASIC, 'style.css')] }],
    ['static.link_targets', { root: BASIC, link_targets: ['/'] }],
    ['static.link_targets', { root: BASIC, link_targets: [''] }],
  ])('rejects a bad %s', (key, raw) => {
    let error: unknown;
    try {
      resolveStaticOptions(raw as StaticOptions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).code).toBe('WP_FASTIFY_INVALID_OPTION');
    expect((error as InvalidOptionError).message).toContain(`"${key}"`);
  });

  it('takes the YAML names: dir, calculate_etag and weak (root and etag stay as old names)', () => {
    expect(resolveStaticOptions({ dir: BASIC })!.etag).toBe('strong');
    expect(resolveStaticOptions({ dir: BASIC, weak: true })!.etag).toBe('weak');
    expect(resolveStaticOptions({ dir: BASIC, calculate_etag: false })!.etag).toBeNull();
    expect(resolveStaticOptions({ root: BASIC, etag: 'weak' })!.etag).toBe('weak');
    expect(resolveStaticOptions({ dir: [BASIC] })!.roots).toEqual(resolveStaticOptions({ root: BASIC })!.roots);
  });

  it('says which root is missing and where relative roots start', () => {
    expect(() => resolveStaticOptions({ root: 'no-such-public' })).toThrow(
      /"static.root": ".*no-such-public" does not exist; create it or fix the path \(relative roots start at /,
    );
    // an absolute one was resolved by whoever gave it (the config, from its own folder): no word of the working folder
    expect(() => resolveStaticOptions({ dir: '/no/such/public' })).toThrow(
      /"static.dir": "\/no\/such\/public" does not exist; create it or fix the path$/,
    );
  });
});
