import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type ClientHttp2Stream, connect as connectHttp2, constants as httpConstants } from 'node:http2';
import { createConnection, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { markBackendReply, warmpool, type WarmpoolCommonOptions, type WorkerModeOptions } from '@warmpool/fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { until } from '../../../test/helpers/until.js';
import {
  parseCacheControl,
  phpVariableName,
  registerMicroCache,
  resolveMicroCacheOptions,
  type MicroCache,
  type MicroCacheOptions,
} from '../src/micro-cache.js';

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

/** A site as the server assembles it: micro-cache first, then the warmpool plugin, on one instance. */
async function site(
  options: MicroCacheOptions = {},
  plugin: WarmpoolCommonOptions & Partial<WorkerModeOptions> = {},
  setup?: (app: FastifyInstance) => void,
): Promise<{ app: FastifyInstance; cache: MicroCache }> {
  const app = Fastify();
  apps.push(app);
  const cache = registerMicroCache(app, options);
  setup?.(app);
  await app.register(warmpool, { command: ['php', fixture('cacheable.php')], pool: { num_workers: 1 }, ...plugin });
  await app.ready();
  return { app, cache };
}

/** A classic site (php-cgi on the classic-app fixture) behind a micro-cache that keeps 200s 30 s. */
async function classicSite(plugin: WarmpoolCommonOptions = {}): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  registerMicroCache(app, { default_ttl: '30s' });
  await app.register(warmpool, {
    fastcgi: { root: fileURLToPath(new URL('../../../test/fixtures/sites/classic-app', import.meta.url)) },
    pool: { num_workers: 1 },
    ...plugin,
  });
  return app;
}

const PUBLIC = 'cc=public,%20max-age=60';

/** A clock the test moves (the cache's and its LRU's time). */
function manualClock() {
  let now = 1_000_000;
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

async function get(app: FastifyInstance, url: string, headers: Record<string, string> = {}) {
  const res = await app.inject({ method: 'GET', url, headers });
  return {
    res,
    body:
      res.body === ''
        ? null
        : (res.json() as { count: number; lang: string | null; method: string; ifNoneMatch: string | null }),
  };
}

describe('micro-cache: what is stored', () => {
  it('serves the second GET of a public response from the cache: X-Cache MISS then HIT, with Age, same body', async () => {
    const { app, cache } = await site();
    const first = await get(app, `/page?${PUBLIC}`);
    expect(first.res.headers['x-cache']).toBe('MISS');
    expect(first.body!.count).toBe(1);
    const second = await get(app, `/page?${PUBLIC}`);
    expect(second.res.headers['x-cache']).toBe('HIT');
    expect(second.res.headers.age).toBe('0');
    expect(second.res.headers['content-type']).toBe('application/json');
    expect(second.res.headers['cache-control']).toBe('public, max-age=60');
    expect(second.res.body).toBe(first.res.body);
    expect(cache.entries).toBe(1);
    // PHP really was not asked: its counter moves on from 1 for another URL
    expect((await get(app, `/other?${PUBLIC}`)).body!.count).toBe(2);
  });

  it('never stores a static file (its own ETag and Last-Modified answer, and a deploy shows)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wp-micro-static-'));
    apps.push({ close: async () => rmSync(dir, { recursive: true, force: true }) } as unknown as FastifyInstance);
    writeFileSync(join(dir, 'app.css'), 'body{}');
    const { app, cache } = await site({ default_ttl: '60s' }, { static: { dir: [dir] } });
    const first = await app.inject('/app.css');
    expect(first.body).toBe('body{}');
    const lastModified = first.headers['last-modified'] as string;
    const again = await app.inject({ url: '/app.css', headers: { 'if-modified-since': lastModified } });
    expect(again.statusCode).toBe(304);
    expect(again.headers['x-cache']).toBeUndefined();
    expect((await app.inject('/app.css')).headers['x-cache']).toBeUndefined();
    expect(cache.entries).toBe(0);
    // PHP's page next to it is still cached
    await get(app, `/page?${PUBLIC}`);
    expect((await get(app, `/page?${PUBLIC}`)).res.headers['x-cache']).toBe('HIT');
  });

  it('stores a large reply that reached Node in many chunks, and serves the same bytes from the cache', async () => {
    const { app, cache } = await site();
    const url = `/large?${PUBLIC}&size=900000`;
    const first = await app.inject(url);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(Number(first.headers['content-length'])).toBe(first.rawPayload.length);
    const second = await app.inject(url);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.rawPayload.equals(first.rawPayload)).toBe(true);
    expect(second.json().pad).toHaveLength(900000);
    expect(cache.entries).toBe(1);
  });

  it('stores s-maxage responses (meant for shared caches) even without public', async () => {
    const { app } = await site();
    await get(app, '/s?cc=s-maxage=30');
    expect((await get(app, '/s?cc=s-maxage=30')).res.headers['x-cache']).toBe('HIT');
  });

  it.each([
    ['no Cache-Control', ''],
    ['max-age without public', 'cc=max-age=60'],
    ['public with max-age=0', 'cc=public,%20max-age=0'],
    ['private', 'cc=public,%20private,%20max-age=60'],
    ['no-store', 'cc=public,%20max-age=60,%20no-store'],
    ['no-cache', 'cc=public,%20max-age=60,%20no-cache'],
    ['no-cache with a field name', 'cc=public,%20max-age=60,%20no-cache=%22Set-Cookie%22'],
    ['s-maxage=0 overriding max-age', 'cc=public,%20max-age=60,%20s-maxage=0'],
    ['Set-Cookie', `${PUBLIC}&cookie=1`],
    ['Vary: *', `${PUBLIC}&vary=*`],
    ['a 500', `${PUBLIC}&status=500`],
  ])('never stores a response with %s', async (_, query) => {
    const { app, cache } = await site();
    const a = await get(app, `/n?${query}`);
    const b = await get(app, `/n?${query}`);
    expect([a.res.headers['x-cache'], b.res.headers['x-cache']]).toEqual(['MISS', 'MISS']);
    expect(b.body!.count).toBe(a.body!.count + 1);
    expect(cache.entries).toBe(0);
  });

  it('stores a public 404 (a cacheable status)', async () => {
    const { app } = await site();
    await get(app, `/gone?${PUBLIC}&status=404`);
    const hit = await get(app, `/gone?${PUBLIC}&status=404`);
    expect(hit.res.statusCode).toBe(404);
    expect(hit.res.headers['x-cache']).toBe('HIT');
  });

  it('without default_ttl keeps only what PHP marks shareable: no Cache-Control, `public` alone or a bare max-age is not kept', async () => {
    const { app, cache } = await site();
    for (const query of ['', 'cc=public', 'cc=max-age=60']) {
      await get(app, `/p?${query}`);
      expect((await get(app, `/p?${query}`)).res.headers['x-cache'], query).toBe('MISS');
    }
    expect(cache.entries).toBe(0);
  });

  it("with default_ttl (cache.max_age, nginx's fastcgi_cache_valid) keeps a 200 or 301 that says nothing of its freshness, as a stock WordPress page", async () => {
    const clock = manualClock();
    const { app } = await site({ default_ttl: '30s', clock });
    for (const query of ['', 'cc=public', 'cc=must-revalidate', 'status=301&header=Location:/there']) {
      const first = await get(app, `/wp?${query}`);
      const second = await get(app, `/wp?${query}`);
      expect([first.res.headers['x-cache'], second.res.headers['x-cache']], query).toEqual(['MISS', 'HIT']);
      expect(second.res.body, query).toBe(first.res.body);
    }
    clock.advance(30_000);
    expect((await get(app, '/wp?')).res.headers['x-cache']).toBe('EXPIRED');
  });

  it.each([
    ['max-age, without public', 'cc=max-age=5', 5_000],
    ['s-maxage over max-age', 'cc=s-maxage=7,%20max-age=100', 7_000],
    ['public, max-age', 'cc=public,%20max-age=90', 90_000],
    // the manual clock starts at 1970-01-01T00:16:40Z: this Expires is 200 s later
    ['Expires', `header=${encodeURIComponent('Expires:Thu, 01 Jan 1970 00:20:00 GMT')}`, 200_000],
  ])("with default_ttl PHP's own freshness wins, as nginx reads it: %s", async (_, query, ttlMs) => {
    const clock = manualClock();
    const { app } = await site({ default_ttl: '30s', clock });
    await get(app, `/own?${query}`);
    clock.advance(ttlMs - 1);
    expect((await get(app, `/own?${query}`)).res.headers['x-cache']).toBe('HIT');
    clock.advance(1);
    expect((await get(app, `/own?${query}`)).res.headers['x-cache']).toBe('EXPIRED');
  });

  it("reads nginx's X-Accel-Expires first, with or without default_ttl, and never sends it on", async () => {
    const clock = manualClock(); // 1970-01-01T00:16:40Z, Unix time 1000
    const { app } = await site({ clock });
    const cases = [
      'header=X-Accel-Expires:60', // no Cache-Control at all: nginx's own header says it, 60 s
      'cc=public,%20max-age=600&header=X-Accel-Expires:5', // over max-age: 5 s
      'header=X-Accel-Expires:@1200', // a Unix time: 200 s from now
    ];
    for (const query of cases) {
      const first = await get(app, `/accel?${query}`);
      expect([first.res.headers['x-cache'], first.res.headers['x-accel-expires']], query).toEqual(['MISS', undefined]);
    }
    for (const query of cases) {
      const hit = await get(app, `/accel?${query}`);
      expect([hit.res.headers['x-cache'], hit.res.headers['x-accel-expires']], query).toEqual(['HIT', undefined]);
    }
    clock.advance(5_000);
    expect((await get(app, `/accel?${cases[1]}`)).res.headers['x-cache']).toBe('EXPIRED');
    expect((await get(app, `/accel?${cases[0]}`)).res.headers['x-cache']).toBe('HIT');
    clock.advance(195_000);
    expect((await get(app, `/accel?${cases[2]}`)).res.headers['x-cache']).toBe('EXPIRED');
  });

  it.each([
    ['max-age=0', 'cc=max-age=0'],
    ['an Expires in the past', `header=${encodeURIComponent('Expires:Thu, 19 Nov 1981 08:52:00 GMT')}`],
    ['an Expires that is no date', 'header=Expires:0'],
    // what PHP's session_start() sends (session.cache_limiter = nocache)
    [
      'a PHP session page',
      `cc=no-store,%20no-cache,%20must-revalidate&header=${encodeURIComponent('Expires:Thu, 19 Nov 1981 08:52:00 GMT')}`,
    ],
    ['private', 'cc=private'],
    ['Set-Cookie', 'cookie=1'],
    ['a 404 that says nothing', 'status=404'],
    ['a 302 that says nothing', 'status=302&header=Location:/there'],
    ['a 500', 'status=500'],
    ['X-Accel-Expires: 0 (an app\'s "do not cache this" under fastcgi_cache_valid)', 'header=X-Accel-Expires:0'],
    ['X-Accel-Expires and private', 'cc=private&header=X-Accel-Expires:60'],
    ['X-Accel-Expires and Set-Cookie', 'cookie=1&header=X-Accel-Expires:60'],
  ])('with default_ttl never stores a response with %s', async (_, query) => {
    const { app, cache } = await site({ default_ttl: '30s' });
    const a = await get(app, `/n?${query}`);
    const b = await get(app, `/n?${query}`);
    expect([a.res.headers['x-cache'], b.res.headers['x-cache'], b.res.headers['x-accel-expires']]).toEqual([
      'MISS',
      'MISS',
      undefined,
    ]);
    expect(cache.entries).toBe(0);
  });

  it('bypasses the cache for requests with Authorization (X-Cache: BYPASS), even when an entry exists', async () => {
    const { app } = await site();
    await get(app, `/a?${PUBLIC}`);
    const withAuth = await get(app, `/a?${PUBLIC}`, { authorization: 'Bearer x' });
    expect(withAuth.res.headers['x-cache']).toBe('BYPASS');
    expect(withAuth.body!.count).toBe(2);
    const range = await get(app, `/a?${PUBLIC}`, { range: 'bytes=0-3' });
    expect(range.res.headers['x-cache']).toBe('BYPASS');
  });

  it('bypasses the cache for a session or login cookie (no lookup, no store), even when an entry exists', async () => {
    const { app, cache } = await site();
    const anonymous = await get(app, `/home?${PUBLIC}`);
    expect(anonymous.res.headers['x-cache']).toBe('MISS');
    for (const cookie of [
      'wordpress_logged_in_0123abcd=admin%7C1700000000',
      'theme=dark; PHPSESSID=abc123',
      'wp-postpass_9f=x',
      'laravel_session=eyJ',
      'myapp_session=1',
      // as PHP names them in $_COOKIE: comment_author_9f, wordpress_logged_in_0123, laravel_session
      'comment_author.9f=Mallory',
      'wordpress_logged_in[0123=admin',
      'laravel.session=eyJ',
      'wp-postpass 9f=x',
    ]) {
      const res = await get(app, `/home?${PUBLIC}`, { cookie });
      expect(res.res.headers['x-cache'], cookie).toBe('BYPASS');
      expect(res.body!.count, cookie).toBeGreaterThan(1);
    }
    // a logged-in user's page was not stored either: the anonymous copy is still the one served
    expect(cache.entries).toBe(1);
    const again = await get(app, `/home?${PUBLIC}`);
    expect(again.res.headers['x-cache']).toBe('HIT');
    expect(again.body!.count).toBe(1);
    // cookies that identify no session use the cache
    expect((await get(app, `/home?${PUBLIC}`, { cookie: 'theme=dark; _ga=GA1.1' })).res.headers['x-cache']).toBe('HIT');
  });

  it('names a cookie as PHP does in $_COOKIE (checked against a real php-cgi)', () => {
    const names = [
      'comment_author.H',
      'wordpress_logged_in[H',
      'a[b]',
      'sp ace',
      'x+y',
      'c[d.e',
      'e]f',
      'a.b[c]',
      'a[b.c[d',
      'x y.z',
      'plain',
    ];
    const script = join(mkdtempSync(join(tmpdir(), 'wp-cookie-names-')), 'names.php');
    writeFileSync(script, '<?php echo json_encode(array_keys($_COOKIE));');
    const out = execFileSync('php-cgi', ['-q'], {
      env: {
        ...process.env,
        REDIRECT_STATUS: '1',
        SCRIPT_FILENAME: script,
        REQUEST_METHOD: 'GET',
        HTTP_COOKIE: names.map((name, i) => `${name}=${i}`).join('; '),
      },
    }).toString();
    const php = JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4)) as string[];
    expect(names.map(phpVariableName)).toEqual(php);
  });

  it("with default_ttl, any cookie but analytics and consent ones bypasses: a page kept for saying nothing of its freshness may be a session's no list names (Adminer's adminer_sid)", async () => {
    const { app, cache } = await site({ default_ttl: '30s' });
    // a logged-in Adminer user's table download: no Cache-Control, no Set-Cookie
    const own = await get(app, '/download', { cookie: 'adminer_sid=abc; adminer_key=k' });
    expect(own.res.headers['x-cache']).toBe('BYPASS');
    expect(cache.entries).toBe(0);
    const anonymous = await get(app, '/download');
    expect(anonymous.res.headers['x-cache']).toBe('MISS');
    expect(anonymous.body!.count).toBe(2);
    // the anonymous copy is not served to the session either
    expect((await get(app, '/download', { cookie: 'adminer_sid=abc' })).res.headers['x-cache']).toBe('BYPASS');
    // analytics and consent cookies are anonymous visitors' own
    for (const cookie of [
      '_ga=GA1.1.2; _gid=GA1.1.3',
      '_pk_id.1.1fff=abc; cookieyes-consent=yes',
      'wordpress_test_cookie=WP',
    ]) {
      const res = await get(app, '/download', { cookie });
      expect(res.res.headers['x-cache'], cookie).toBe('HIT');
      expect(res.body!.count, cookie).toBe(2);
    }
    expect((await get(app, '/download', { cookie: '_ga=GA1.1.2; theme=dark' })).res.headers['x-cache']).toBe('BYPASS');
    // a list of one's own; [] lets no cookie through
    const listed = await site({ default_ttl: '30s', anonymous_cookies: ['theme'] });
    await get(listed.app, '/p');
    expect((await get(listed.app, '/p', { cookie: 'theme=dark' })).res.headers['x-cache']).toBe('HIT');
    expect((await get(listed.app, '/p', { cookie: '_ga=1' })).res.headers['x-cache']).toBe('BYPASS');
    const none = await site({ default_ttl: '30s', anonymous_cookies: [] });
    await get(none.app, '/p');
    expect((await get(none.app, '/p', { cookie: '_ga=1' })).res.headers['x-cache']).toBe('BYPASS');
    // without default_ttl only PHP's shareable pages are kept, and only bypass_cookies bypass
    const plain = await site();
    await get(plain.app, `/p?${PUBLIC}`);
    expect((await get(plain.app, `/p?${PUBLIC}`, { cookie: 'theme=dark' })).res.headers['x-cache']).toBe('HIT');
    expect(() => resolveMicroCacheOptions({ anonymous_cookies: ['bad name'] })).toThrow(/anonymous_cookies/);
  });

  it('bypass_cookies replaces the default list; [] bypasses on no cookie', async () => {
    const own = await site({ bypass_cookies: ['shop_cart', 'auth_*'] });
    await get(own.app, `/c?${PUBLIC}`);
    expect((await get(own.app, `/c?${PUBLIC}`, { cookie: 'auth_token=1' })).res.headers['x-cache']).toBe('BYPASS');
    expect((await get(own.app, `/c?${PUBLIC}`, { cookie: 'shop_cart=2' })).res.headers['x-cache']).toBe('BYPASS');
    expect((await get(own.app, `/c?${PUBLIC}`, { cookie: 'PHPSESSID=3' })).res.headers['x-cache']).toBe('HIT');
    const none = await site({ bypass_cookies: [] });
    await get(none.app, `/c?${PUBLIC}`);
    expect((await get(none.app, `/c?${PUBLIC}`, { cookie: 'PHPSESSID=3' })).res.headers['x-cache']).toBe('HIT');
  });

  it('does not touch POST requests', async () => {
    const { app, cache } = await site();
    const res = await app.inject({
      method: 'POST',
      url: `/form?${PUBLIC}`,
      payload: 'a=1',
      headers: { 'content-type': 'text/plain' },
    });
    expect(res.headers['x-cache']).toBeUndefined();
    expect(cache.entries).toBe(0);
  });

  it('answers HEAD from a stored GET; a HEAD that finds none asks PHP for the GET and fills it (nginx convert_head)', async () => {
    const { app } = await site();
    const headFirst = await app.inject({ method: 'HEAD', url: `/h?${PUBLIC}` });
    expect([headFirst.headers['x-cache'], headFirst.body]).toEqual(['MISS', '']);
    // before: the HEAD stored nothing, and every HEAD (a monitor's) ran PHP
    const getAfter = await get(app, `/h?${PUBLIC}`);
    expect(getAfter.res.headers['x-cache']).toBe('HIT');
    // PHP was asked for a GET
    expect(getAfter.body!.method).toBe('GET');
    const head = await app.inject({ method: 'HEAD', url: `/h?${PUBLIC}` });
    expect(head.headers['x-cache']).toBe('HIT');
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(getAfter.res.body)));
  });

  it('never stores a streamed body (it passes through)', async () => {
    const { app, cache } = await site({}, {}, (instance) => {
      instance.get('/stream', (request, reply) => {
        markBackendReply(request); // as the plugin marks PHP's answers
        reply
          .header('cache-control', 'public, max-age=60')
          .type('text/plain')
          .send(Readable.from(['a', 'b']));
      });
    });
    const first = await app.inject('/stream');
    const second = await app.inject('/stream');
    expect(first.body).toBe('ab');
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'MISS']);
    expect(cache.entries).toBe(0);
  });

  it('answers a matching If-None-Match on a hit with 304, without content headers (RFC 9110 §15.4.5)', async () => {
    const { app } = await site();
    const url = `/e?${PUBLIC}&etag=%22v1%22&vary=Accept-Language`;
    await get(app, url);
    const res = await app.inject({ url, headers: { 'if-none-match': 'W/"v1"' } });
    expect(res.statusCode).toBe(304);
    expect(res.headers['x-cache']).toBe('HIT');
    expect(res.body).toBe('');
    expect(res.headers['content-type']).toBeUndefined();
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers.etag).toBe('"v1"');
    expect(res.headers['cache-control']).toBe('public, max-age=60');
    expect(res.headers.vary).toBe('Accept-Language');
    expect((await app.inject({ url, headers: { 'if-none-match': '"v2"' } })).statusCode).toBe(200);
  });

  it('answers If-Modified-Since on a hit by its Last-Modified (nginx does too); If-None-Match wins when both are sent', async () => {
    const { app } = await site();
    const modified = 'Mon, 01 Dec 2025 00:00:00 GMT';
    const url = `/lm?${PUBLIC}&header=${encodeURIComponent(`Last-Modified: ${modified}`)}`;
    expect((await get(app, url)).res.headers['x-cache']).toBe('MISS');
    const since = async (date: string, more: Record<string, string> = {}) =>
      (await app.inject({ url, headers: { 'if-modified-since': date, ...more } })).statusCode;
    // before: a full 200 from the cache every time
    expect(await since(modified)).toBe(304);
    expect(await since('Tue, 02 Dec 2025 00:00:00 GMT')).toBe(304);
    expect(await since('Sun, 30 Nov 2025 00:00:00 GMT')).toBe(200);
    expect(await since('not a date')).toBe(200);
    expect(await since(modified, { 'if-none-match': '"other"' })).toBe(200);
  });
});

describe('micro-cache: conditional requests that fill or refresh an entry (nginx takes their validators off)', () => {
  it("a revalidating client on a cold page: PHP answers whole, that is kept, the client gets its 304 from it (before: PHP's own 304, nothing kept)", async () => {
    const { app } = await site();
    const url = `/cond?${PUBLIC}&etag=%22c1%22&honor=1`;
    const first = await app.inject({ url, headers: { 'if-none-match': '"c1"' } });
    expect([first.statusCode, first.headers['x-cache'], first.body]).toEqual([304, 'MISS', '']);
    expect(first.headers['content-length']).toBeUndefined();
    const next = await get(app, url);
    expect([next.res.headers['x-cache'], next.body?.count, next.body?.ifNoneMatch]).toEqual(['HIT', 1, null]);
    // a tag that does not match: the whole page, kept all the same
    const other = `/cond-other?${PUBLIC}&etag=%22c1%22&honor=1`;
    const miss = await get(app, other, { 'if-none-match': '"old"' });
    expect([miss.res.statusCode, miss.res.headers['x-cache'], miss.body?.ifNoneMatch]).toEqual([200, 'MISS', null]);
    expect((await get(app, other)).res.headers['x-cache']).toBe('HIT');
  });

  it('a burst after a conditional first request runs PHP once (before: each request of the burst ran PHP)', async () => {
    const { app, cache } = await site({}, { pool: { num_workers: 2 } });
    const url = `/cond-burst?${PUBLIC}&etag=%22b1%22&honor=1&sleep=300`;
    const first = app.inject({ url, headers: { 'if-none-match': '"b1"' } });
    const rest = [1, 2, 3].map(() => app.inject({ url }));
    await until(() => cache.waiting === 3, 'three requests waiting for the first');
    const answers = await Promise.all([first, ...rest]);
    expect(answers.map((res) => [res.statusCode, res.headers['x-cache']])).toEqual([
      [304, 'MISS'],
      [200, 'HIT'],
      [200, 'HIT'],
      [200, 'HIT'],
    ]);
    expect(new Set(answers.slice(1).map((res) => res.json().count))).toEqual(new Set([1]));
  });

  it('what is not kept answers the conditional from its own validators: a page PHP marks uncacheable, a static file (before: a whole 200, the validators taken)', async () => {
    const { app } = await site();
    const page = await app.inject({ url: '/not-kept?etag=%22n1%22', headers: { 'if-none-match': '"n1"' } });
    expect([page.statusCode, page.body]).toEqual([304, '']);
    expect((await app.inject({ url: '/not-kept-2?etag=%22n1%22', headers: { 'if-match': '"n2"' } })).statusCode).toBe(
      412,
    );
    const classic = await classicSite();
    const etag = String((await classic.inject('/style.css?v=1')).headers.etag);
    const file = await classic.inject({ url: '/style.css?v=2', headers: { 'if-none-match': etag } });
    expect([file.statusCode, file.body]).toEqual([304, '']);
    const future = new Date(Date.now() + 86_400_000).toUTCString();
    expect((await classic.inject({ url: '/style.css?v=3', headers: { 'if-modified-since': future } })).statusCode).toBe(
      200,
    );
  });

  it('an expired entry refreshed by a conditional request is refreshed (PHP answers whole)', async () => {
    const clock = manualClock();
    const { app } = await site({ clock });
    const url = `/cond-exp?cc=public,%20max-age=10&etag=%22e1%22&honor=1`;
    expect((await get(app, url)).body?.count).toBe(1);
    clock.advance(11_000);
    const refresh = await app.inject({ url, headers: { 'if-none-match': '"e1"' } });
    expect([refresh.statusCode, refresh.headers['x-cache']]).toEqual([304, 'EXPIRED']);
    const after = await get(app, url);
    expect([after.res.headers['x-cache'], after.body?.count]).toEqual(['HIT', 2]);
  });

  it("If-Match and If-Unmodified-Since on a hit: 412 when they fail, as nginx's cache", async () => {
    const { app } = await site();
    const modified = 'Mon, 01 Dec 2025 00:00:00 GMT';
    const url = `/pre?${PUBLIC}&etag=%22p1%22&header=${encodeURIComponent(`Last-Modified: ${modified}`)}`;
    expect((await get(app, url)).res.statusCode).toBe(200);
    const status = async (headers: Record<string, string>) => (await app.inject({ url, headers })).statusCode;
    expect(await status({ 'if-match': '"nope"' })).toBe(412);
    expect(await status({ 'if-match': 'W/"p1"' })).toBe(412); // a weak tag never matches If-Match
    expect(await status({ 'if-match': '"x", "p1"' })).toBe(200);
    expect(await status({ 'if-match': '*' })).toBe(200);
    expect(await status({ 'if-unmodified-since': 'Sun, 30 Nov 2025 00:00:00 GMT' })).toBe(412);
    expect(await status({ 'if-unmodified-since': modified })).toBe(200);
    // a cold page's precondition is answered from what its fill kept, too
    const cold = `/pre-cold?${PUBLIC}&etag=%22p2%22`;
    const refused = await app.inject({ url: cold, headers: { 'if-match': '"nope"' } });
    expect([refused.statusCode, refused.headers['x-cache']]).toEqual([412, 'MISS']);
    expect((await get(app, cold)).res.headers['x-cache']).toBe('HIT');
  });
});

describe('micro-cache: the rules of the classic script a page came from', () => {
  it('a hit of "/blog/" meets the access and limit_req rules of /blog/index.php, the script it came from (before: served to anyone once kept)', async () => {
    const app = await classicSite({
      access: [{ prefix: '/blog/index.php', allow: ['127.0.0.2'] }],
      limit_req: [{ prefix: '/blog/index.php', rate: '1r/m', burst: 1 }],
    });
    await app.ready();
    const ask = (remoteAddress: string) => app.inject({ url: '/blog/', remoteAddress });
    expect((await ask('127.0.0.1')).statusCode).toBe(403);
    const allowed = await ask('127.0.0.2');
    expect([allowed.statusCode, allowed.headers['x-cache'], allowed.body]).toEqual([
      200,
      'MISS',
      'blog index, SCRIPT_NAME=/blog/index.php',
    ]);
    const refused = await ask('127.0.0.1');
    expect([refused.statusCode, refused.body]).toEqual([403, 'Forbidden\n']);
    const head = await app.inject({ method: 'HEAD', url: '/blog/', remoteAddress: '127.0.0.1' });
    expect(head.statusCode).toBe(403);
    // the allowed client's second request is a hit, counted by the script's rate: the third is 429
    const hit = await ask('127.0.0.2');
    expect([hit.statusCode, hit.headers['x-cache']]).toEqual([200, 'HIT']);
    expect((await ask('127.0.0.2')).statusCode).toBe(429);
  });
});

describe('micro-cache: keys, Vary, expiry, budget', () => {
  it('keeps one copy per value of a Vary header', async () => {
    const { app } = await site();
    const url = `/v?${PUBLIC}&vary=Accept-Language`;
    const en1 = await get(app, url, { 'accept-language': 'en' });
    const en2 = await get(app, url, { 'accept-language': 'en' });
    const de1 = await get(app, url, { 'accept-language': 'de' });
    const de2 = await get(app, url, { 'accept-language': 'de' });
    const none = await get(app, url);
    expect([en1, en2, de1, de2, none].map((r) => r.res.headers['x-cache'])).toEqual([
      'MISS',
      'HIT',
      'MISS',
      'HIT',
      'MISS',
    ]);
    expect([en2.body!.lang, de2.body!.lang, none.body!.lang]).toEqual(['en', 'de', null]);
  });

  it("keeps PHP's own CORS headers, one copy per Origin (WordPress's REST API): a hit has them too", async () => {
    const { app } = await site();
    const url = (origin: string) =>
      `/wp-json/?${PUBLIC}&vary=Origin&header=Access-Control-Allow-Origin:${encodeURIComponent(origin)}`;
    for (const origin of ['https://front.example', 'https://other.example']) {
      const miss = await get(app, url(origin), { origin });
      const hit = await get(app, url(origin), { origin });
      expect([miss.res.headers['x-cache'], hit.res.headers['x-cache']]).toEqual(['MISS', 'HIT']);
      // before: a cross-origin front end worked once, then failed on every hit
      expect(hit.res.headers['access-control-allow-origin']).toBe(origin);
    }
    // a grant to one origin with no Vary: Origin is never kept: it would go to every origin
    const unvaried = `/wp-json/x?${PUBLIC}&header=Access-Control-Allow-Origin:https%3A%2F%2Ffront.example`;
    await get(app, unvaried, { origin: 'https://front.example' });
    const other = await get(app, unvaried, { origin: 'https://evil.example' });
    expect(other.res.headers['x-cache']).toBe('MISS');
  });

  it('keys by host and by the full target with its query', async () => {
    const { app } = await site();
    await get(app, `/k?${PUBLIC}`, { host: 'a.test' });
    expect((await get(app, `/k?${PUBLIC}`, { host: 'b.test' })).res.headers['x-cache']).toBe('MISS');
    expect((await get(app, `/k?${PUBLIC}&x=1`, { host: 'a.test' })).res.headers['x-cache']).toBe('MISS');
    expect((await get(app, `/k?${PUBLIC}`, { host: 'A.TEST' })).res.headers['x-cache']).toBe('HIT');
  });

  it('expires an entry after its max-age: X-Cache EXPIRED, PHP answers, the entry is refreshed', async () => {
    const clock = manualClock();
    const { app } = await site({ clock });
    const url = '/x?cc=public,%20max-age=1';
    await get(app, url);
    expect((await get(app, url)).res.headers['x-cache']).toBe('HIT');
    clock.advance(1000);
    const after = await get(app, url);
    expect(after.res.headers['x-cache']).toBe('EXPIRED');
    expect(after.body!.count).toBe(2);
    const again = await get(app, url);
    expect(again.res.headers['x-cache']).toBe('HIT');
    expect(again.body!.count).toBe(2);
    // long gone (past twice its lifetime): forgotten, a plain MISS
    clock.advance(5000);
    expect((await get(app, url)).res.headers['x-cache']).toBe('MISS');
  });

  it('stale_while_revalidate: while one request refreshes an expired entry, others get the old copy (STALE)', async () => {
    const clock = manualClock();
    let version = 1;
    let gate: Promise<void> = Promise.resolve();
    let entered: () => void = () => {};
    const { app } = await site({ clock, stale_while_revalidate: '10s' }, {}, (instance) => {
      instance.get('/held', async (request, reply) => {
        markBackendReply(request); // as the plugin marks PHP's answers
        entered();
        await gate;
        return reply.header('cache-control', 'public, max-age=1').type('text/plain').send(`v${version}`);
      });
    });
    expect((await app.inject('/held')).body).toBe('v1');
    clock.advance(2000);

    // A refreshes: it is held in its handler until the gate opens
    let open: () => void = () => {};
    gate = new Promise((resolve) => (open = resolve));
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    version = 2;
    const refresher = app.inject('/held');
    await inHandler;
    const meanwhile = await app.inject('/held');
    expect(meanwhile.headers['x-cache']).toBe('STALE');
    expect(meanwhile.body).toBe('v1');
    expect(meanwhile.headers.age).toBe('2');

    open();
    const refreshed = await refresher;
    expect(refreshed.headers['x-cache']).toBe('EXPIRED');
    expect(refreshed.body).toBe('v2');
    const hit = await app.inject('/held');
    expect([hit.headers['x-cache'], hit.body]).toEqual(['HIT', 'v2']);
  });

  it("a response's stale-while-revalidate=N sets its stale window; past it nothing stale is served", async () => {
    const clock = manualClock();
    const { app } = await site({ clock });
    const url = `/w?cc=${encodeURIComponent('public, max-age=1, stale-while-revalidate=5')}`;
    await get(app, url);
    clock.advance(7000);
    // past max-age + 5 s: no request is refreshing and the window is over, so PHP answers
    const late = await get(app, url);
    expect(late.res.headers['x-cache']).toBe('EXPIRED');
    expect(late.body!.count).toBe(2);
  });

  it('stays within max_bytes, evicting the least recently used entry', async () => {
    const { app, cache } = await site({ max_bytes: 2500, max_entry_bytes: 1500 });
    for (const page of ['a', 'b']) await get(app, `/${page}?${PUBLIC}&size=600`);
    expect(cache.entries).toBe(2);
    // touch a, so b is the least recently used when c arrives
    expect((await get(app, `/a?${PUBLIC}&size=600`)).res.headers['x-cache']).toBe('HIT');
    await get(app, `/c?${PUBLIC}&size=600`);
    expect(cache.bytes).toBeLessThanOrEqual(2500);
    expect((await get(app, `/b?${PUBLIC}&size=600`)).res.headers['x-cache']).toBe('MISS');
    expect((await get(app, `/c?${PUBLIC}&size=600`)).res.headers['x-cache']).toBe('HIT');
  });

  it('purge(prefix) drops the entries under a path prefix (their Vary copies too); purge() drops all', async () => {
    const { app, cache } = await site();
    for (const url of ['/blog/a', '/blog/b?page=2', '/shop/c'])
      await get(app, `${url}${url.includes('?') ? '&' : '?'}${PUBLIC}`);
    await get(app, `/blog/v?${PUBLIC}&vary=Accept-Language`, { 'accept-language': 'de' });
    await get(app, `/blog/v?${PUBLIC}&vary=Accept-Language`, { 'accept-language': 'fr' });
    expect(cache.purge('/blog/')).toBe(4);
    expect((await get(app, `/blog/a?${PUBLIC}`)).res.headers['x-cache']).toBe('MISS');
    expect((await get(app, `/shop/c?${PUBLIC}`)).res.headers['x-cache']).toBe('HIT');
    expect(cache.purge()).toBe(2);
    expect(cache.entries).toBe(0);
  });

  it('passes through a body over max_entry_bytes', async () => {
    const { app, cache } = await site({ max_bytes: 100_000, max_entry_bytes: 2000 });
    await get(app, `/big?${PUBLIC}&size=5000`);
    expect((await get(app, `/big?${PUBLIC}&size=5000`)).res.headers['x-cache']).toBe('MISS');
    expect(cache.entries).toBe(0);
  });
});

describe('micro-cache: with the plugin around it', () => {
  it('never stores a body PHP cut short of its own Content-Length (the client gets a broken download, not a page)', async () => {
    const app = await classicSite();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const ask = async (query: string) => {
      const socket = createConnection(port, '127.0.0.1');
      socket.write(`GET /length.php?${query} HTTP/1.1\r\nHost: a.test\r\n\r\n`); // keep-alive: only a cut closes it early
      let text = '';
      socket.setEncoding('latin1').on('data', (chunk: string) => {
        text += chunk;
        // a whole response: the cache's header and every byte of the body
        const end = text.indexOf('\r\n\r\n');
        if (end > 0 && text.length - end - 4 === Number(/content-length: (\d+)/i.exec(text)?.[1])) socket.end();
      });
      await new Promise((resolve) => socket.on('close', resolve));
      return /x-cache: (\w+)/i.exec(text)?.[1];
    };
    // the same script with a right length is stored: the cut one is refused for its length alone
    expect([await ask('bytes=400&length=400'), await ask('bytes=400&length=400')]).toEqual(['MISS', 'HIT']);
    expect([await ask('bytes=400&length=1000'), await ask('bytes=400&length=1000')]).toEqual(['MISS', 'MISS']);
  });

  it('never serves a hit to a client the access rules refuse (hits come after the plugin onRequest checks)', async () => {
    const { app } = await site({}, { access: [{ prefix: '/private', allow: ['127.0.0.1/32'] }] });
    const url = `/private/report?${PUBLIC}`;
    expect((await app.inject({ url, remoteAddress: '127.0.0.1' })).headers['x-cache']).toBe('MISS');
    expect((await app.inject({ url, remoteAddress: '127.0.0.1' })).headers['x-cache']).toBe('HIT');
    const refused = await app.inject({ url, remoteAddress: '10.1.2.3' });
    expect(refused.statusCode).toBe(403);
    expect(refused.headers['x-cache']).toBeUndefined();
  });
});

describe('micro-cache: a burst on a page no one has (nginx fastcgi_cache_lock)', () => {
  it('sends one request to PHP; the others wait for its answer and get it from the cache', async () => {
    const { app, cache } = await site({}, { pool: { num_workers: 2 } });
    const url = `/cold?${PUBLIC}&sleep=300`;
    const first = app.inject({ url });
    await until(() => cache.waiting === 0, 'the first request on its way'); // (trivially true: nothing waits yet)
    const rest = [1, 2, 3].map(() => app.inject({ url }));
    await until(() => cache.waiting === 3, 'three requests waiting for the first');
    const answers = await Promise.all([first, ...rest]);
    expect(answers.map((res) => res.headers['x-cache'])).toEqual(['MISS', 'HIT', 'HIT', 'HIT']);
    // PHP ran once: every body is the first run's (before: one run each, MISS four times)
    expect(new Set(answers.map((res) => res.json().count))).toEqual(new Set([1]));
    expect(cache.waiting).toBe(0);
  });

  it('lets the waiters go to PHP when the answer may not be kept, and never makes them wait for that page again', async () => {
    const { app, cache } = await site({}, { pool: { num_workers: 2 } });
    const url = '/private-page?cc=private&sleep=300';
    const first = app.inject({ url });
    const second = app.inject({ url });
    await until(() => cache.waiting === 1, 'the second request waiting for the first');
    const [a, b] = await Promise.all([first, second]);
    expect([a.headers['x-cache'], b.headers['x-cache']]).toEqual(['MISS', 'MISS']);
    // now known to be uncacheable: a burst goes to PHP at once, nobody waits
    const burst = [1, 2].map(() => app.inject({ url }));
    await new Promise((resolve) => setImmediate(resolve));
    expect(cache.waiting).toBe(0);
    expect((await Promise.all(burst)).map((res) => res.headers['x-cache'])).toEqual(['MISS', 'MISS']);
  });

  it('never has visitors wait for a GET that carries a body (a client trickling one would hold them)', async () => {
    const app = Fastify();
    apps.push(app);
    let trickling = false;
    app.addHook('onRequest', (request, _reply, done) => {
      if (request.headers['content-length'] === '1000') trickling = true;
      done();
    });
    const cache = registerMicroCache(app, { fill_wait_ms: 600_000 });
    await app.register(warmpool, { command: ['php', fixture('cacheable.php')], pool: { num_workers: 2 } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const target = `/trickle?${PUBLIC}`;
    const trickler = createConnection(port, '127.0.0.1');
    trickler.on('error', () => {});
    // its head and one byte of the body it announces, then nothing
    trickler.write(`GET ${target} HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\nx`);
    await until(() => trickling, 'the trickling request at the cache');
    await new Promise((resolve) => setImmediate(resolve));
    const visitor = await app.inject({ url: target, headers: { host: 'a.test' } });
    expect([visitor.statusCode, visitor.headers['x-cache']]).toEqual([200, 'MISS']);
    expect(cache.waiting).toBe(0);
    trickler.destroy();
  });

  it('an HTTP/2 waiter whose stream is reset while it waits never runs PHP (before: PHP ran for nobody, its reply sent into the dead stream)', async () => {
    const app = Fastify({ http2: true });
    apps.push(app as unknown as FastifyInstance);
    const cache = registerMicroCache(app as unknown as FastifyInstance, {});
    let closed = 0;
    app.addHook('onRequest', (_request, reply, done) => {
      reply.raw.once('close', () => closed++);
      done();
    });
    await app.register(warmpool, { command: ['php', fixture('cacheable.php')], pool: { num_workers: 1 } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const session = connectHttp2(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
    try {
      const body = async (stream: ClientHttp2Stream) => {
        let text = '';
        stream.setEncoding('utf8');
        for await (const chunk of stream) text += chunk;
        return JSON.parse(text) as { count: number };
      };
      // not kept (no Cache-Control): the waiter goes to PHP itself once the first answers
      const url = '/reset-waiter?sleep=2000';
      const first = session.request({ ':path': url });
      await until(() => cache.waiting === 0 && closed === 0, 'the first request on its way');
      const waiter = session.request({ ':path': url });
      await until(() => cache.waiting === 1, 'the second request waiting for the first');
      waiter.close(httpConstants.NGHTTP2_CANCEL);
      await until(() => closed === 1, 'the server to see the reset');
      expect((await body(first)).count).toBe(1);
      // the waiter went on to the handler with its stream gone: it never reached PHP
      expect((await body(session.request({ ':path': '/after' }))).count).toBe(2);
    } finally {
      session.destroy();
    }
  });

  it('lets the waiters go on when the request they wait for loses its client', async () => {
    const app = Fastify();
    apps.push(app);
    // a wait far longer than any test: only the client leaving can end it
    const cache = registerMicroCache(app, { fill_wait_ms: 600_000 });
    await app.register(warmpool, { command: ['php', fixture('cacheable.php')], pool: { num_workers: 2 } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const target = `/left?${PUBLIC}&sleep=1000`;
    const leaving = createConnection(port, '127.0.0.1');
    leaving.on('error', () => {});
    leaving.write(`GET ${target} HTTP/1.1\r\nHost: a.test\r\n\r\n`);
    await until(() => cache.waiting === 0 && leaving.bytesWritten > 0, 'the first request sent');
    const waiter = app.inject({ url: target, headers: { host: 'a.test' } }); // the same page: same Host
    await until(() => cache.waiting === 1, 'the second request waiting for the first');
    leaving.destroy();
    await until(() => cache.waiting === 0, 'the waiter let go when the first client left');
    expect((await waiter).statusCode).toBe(200);
  });
});

describe('micro-cache: options', () => {
  it('checks its options and names the key', () => {
    expect(() => resolveMicroCacheOptions({ max_bytes: 0 })).toThrow(
      'warmpool option "micro_cache.max_bytes": must be a positive whole number of bytes, got 0',
    );
    expect(() => resolveMicroCacheOptions({ max_bytes: 1000, max_entry_bytes: 2000 })).toThrow(
      /micro_cache\.max_entry_bytes.*must not exceed micro_cache\.max_bytes \(1000\)/,
    );
    expect(() => resolveMicroCacheOptions({ default_ttl: 'soon' })).toThrow(/micro_cache\.default_ttl/);
    expect(() => resolveMicroCacheOptions({ stale_while_revalidate: 'later' })).toThrow(
      /micro_cache\.stale_while_revalidate/,
    );
    expect(resolveMicroCacheOptions({})).toMatchObject({
      maxBytes: 64 * 1024 * 1024,
      maxEntryBytes: 1024 * 1024,
      defaultTtlMs: 0,
    });
    expect(() => resolveMicroCacheOptions({ bypass_cookies: ['ok', 'bad name'] })).toThrow(
      /micro_cache\.bypass_cookies.*list of cookie names/,
    );
    const { bypassCookie } = resolveMicroCacheOptions({ bypass_cookies: ['a.b', 'wp_*'] });
    expect(['a.b', 'wp_x', 'wp_'].map((n) => bypassCookie!.test(n))).toEqual([true, true, true]);
    expect(['aXb', 'xwp_1', 'a.bc'].map((n) => bypassCookie!.test(n))).toEqual([false, false, false]);
    expect(resolveMicroCacheOptions({ max_bytes: 1000 }).maxEntryBytes).toBe(1000);
  });

  it('parses Cache-Control with quoted values and commas inside quotes', () => {
    const directives = parseCacheControl('Public, max-age="60", no-cache="Set-Cookie, X-A", s-maxage=5');
    expect([...directives]).toEqual([
      ['public', null],
      ['max-age', '60'],
      ['no-cache', 'Set-Cookie, X-A'],
      ['s-maxage', '5'],
    ]);
  });
});
