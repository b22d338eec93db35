import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import { connect } from 'node:http2';
import { createConnection, type AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { brotliDecompressSync, createBrotliDecompress, createGunzip, createInflate, Gzip, gunzipSync } from 'node:zlib';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { markBackendReply, warmpool } from '@warmpool/fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { genReqId, registerHttpHeaders, resolveCors, type HttpHeadersOptions } from '../src/http-headers.js';
import { registerMicroCache } from '../src/micro-cache.js';

const CLASSIC_APP = fileURLToPath(new URL('../../../test/fixtures/sites/classic-app', import.meta.url));

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

const apps: FastifyInstance[] = [];
const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await Promise.all([...apps.splice(0).map((app) => app.close()), ...closers.splice(0).map((close) => close())]);
});

interface SiteSetup {
  /** null: no worker plugin (the test registers its own) */
  php?: string | null;
  microCache?: boolean;
  routes?: (app: FastifyInstance) => void;
}

/** A site as the server assembles it: [micro-cache], headers, then the plugin, on one instance. */
async function site(options: HttpHeadersOptions, setup: SiteSetup = {}): Promise<FastifyInstance> {
  const app = Fastify({ genReqId });
  apps.push(app);
  if (setup.microCache === true) registerMicroCache(app, {});
  await registerHttpHeaders(app, options);
  setup.routes?.(app);
  if (setup.php !== null)
    await app.register(warmpool, { command: ['php', fixture(setup.php ?? 'cacheable.php')], pool: { num_workers: 1 } });
  await app.ready();
  return app;
}

/** The window a brotli stream says in its first bits (RFC 7932 9.1): 16, or 17 + a 3-bit number, or 8 + one more. */
function brotliWindowBits(stream: Buffer): number {
  const first = stream[0]!;
  if ((first & 1) === 0) return 16;
  const n = (first >> 1) & 7;
  if (n !== 0) return 17 + n;
  const m = (first >> 4) & 7;
  return m === 0 ? 17 : 8 + m;
}

/**
 * Counts the bytes gzip compressors are given from now on (a real zlib stream, watched), to tell
 * a body compressed for a response from one whose kept copy was sent.
 */
function countGzipInput(): { bytes(): number; stop(): void } {
  let read = 0;
  const gzip = Gzip.prototype as unknown as { _transform: (chunk: Buffer, ...rest: unknown[]) => void };
  const transform = gzip._transform;
  gzip._transform = function (this: unknown, chunk: Buffer, ...rest: unknown[]) {
    read += chunk.length;
    return transform.call(this, chunk, ...rest);
  };
  return {
    bytes: () => read,
    stop: () => delete (gzip as { _transform?: unknown })._transform,
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('request id', () => {
  it('keeps a safe incoming X-Request-Id: on the response, in PHP, as the log reqId', async () => {
    const app = await site({});
    const res = await app.inject({ url: '/', headers: { 'x-request-id': 'lb-7f3a:9' } });
    expect(res.headers['x-request-id']).toBe('lb-7f3a:9');
    expect(res.json().requestId).toBe('lb-7f3a:9');
  });

  it('replaces a missing or unsafe one with a UUID that PHP sees too', async () => {
    const app = await site({});
    for (const headers of [
      {},
      { 'x-request-id': 'two words' },
      { 'x-request-id': '"quoted"' },
      { 'x-request-id': 'x'.repeat(200) },
    ]) {
      const res = await app.inject({ url: '/', headers });
      expect(res.headers['x-request-id']).toMatch(UUID);
      expect(res.json().requestId).toBe(res.headers['x-request-id']);
    }
  });

  it('is on error responses too, and can be turned off', async () => {
    const app = await site(
      { response: { 'X-Frame-Options': 'DENY' } },
      {
        routes: (instance) =>
          instance.get('/boom', async () => {
            throw new Error('boom');
          }),
      },
    );
    const res = await app.inject('/boom');
    expect(res.statusCode).toBe(500);
    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(res.headers['x-frame-options']).toBe('DENY');
    const off = await site({ request_id: false });
    expect((await off.inject('/')).headers['x-request-id']).toBeUndefined();
  });

  it('is not counted against max_header_count: the client may send exactly that many fields, over HTTP/1.1 and HTTP/2', async () => {
    const app = Fastify({ genReqId });
    apps.push(app);
    await registerHttpHeaders(app, { request: { 'X-Site': 'blue' } });
    await app.register(warmpool, {
      command: ['php', fixture('cacheable.php')],
      pool: { num_workers: 1 },
      max_header_count: 10,
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    // Host and nine more: ten fields as sent, eleven once the server adds X-Request-Id (and X-Site)
    const head = (extra: number) =>
      `GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n${Array.from({ length: 8 + extra }, (_, i) => `X-F${i}: v\r\n`).join('')}\r\n`;
    const ask = async (extra: number) => {
      const socket = createConnection(port, '127.0.0.1');
      socket.write(head(extra));
      let text = '';
      socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
      await once(socket, 'end');
      return text;
    };
    const exact = await ask(0);
    expect(exact).toMatch(/^HTTP\/1\.1 200 /);
    const id = /x-request-id: (\S+)/i.exec(exact)![1]!;
    expect(JSON.parse(exact.slice(exact.indexOf('\r\n\r\n') + 4)).requestId).toBe(id);
    expect(await ask(1)).toMatch(/^HTTP\/1\.1 431 /);

    const h2app = Fastify({ genReqId, http2: true });
    closers.push(() => h2app.close());
    await registerHttpHeaders(h2app, {});
    await h2app.register(warmpool, {
      command: ['php', fixture('cacheable.php')],
      pool: { num_workers: 1 },
      max_header_count: 10,
    });
    await h2app.listen({ port: 0, host: '127.0.0.1' });
    const session = connect(`http://127.0.0.1:${(h2app.server.address() as AddressInfo).port}`);
    closers.push(() => new Promise<void>((resolve) => session.close(() => resolve())));
    const status = async (fields: number) => {
      // :authority and fields - 1 more
      const extra = Object.fromEntries(Array.from({ length: fields - 1 }, (_, i) => [`x-f${i}`, 'v']));
      const stream = session.request({ ':path': '/', ':authority': 'a.test', ...extra });
      stream.on('error', () => {});
      const [headers] = (await once(stream, 'response')) as [Record<string, unknown>];
      stream.resume();
      await once(stream, 'end');
      return headers[':status'];
    };
    expect(await status(10)).toBe(200);
    expect(await status(11)).toBe(431);
  });

  it('genReqId: pattern check on the raw request', () => {
    const req = (id?: string) =>
      ({ headers: id === undefined ? {} : { 'x-request-id': id } }) as Parameters<typeof genReqId>[0];
    expect(genReqId(req('abc.DEF_1-2:3@4=5+6/7'))).toBe('abc.DEF_1-2:3@4=5+6/7');
    expect(genReqId(req('a\tb'))).toMatch(UUID);
    expect(genReqId(req())).toMatch(UUID);
  });
});

describe('request and response headers', () => {
  it('adds configured response headers unless PHP set its own', async () => {
    const app = await site({ response: { 'X-Frame-Options': 'DENY', 'X-Powered-By': 'warmpool' } });
    const plain = await app.inject('/');
    expect(plain.headers['x-frame-options']).toBe('DENY');
    expect(plain.headers['x-powered-by']).toBe('warmpool');
    const own = await app.inject('/?header=X-Frame-Options:SAMEORIGIN');
    expect(own.headers['x-frame-options']).toBe('SAMEORIGIN');
  });

  it("hide removes a header from every response, PHP's own too; refuses the body's framing and a header it also adds", async () => {
    const app = await site({ hide: ['X-Powered-By', 'server'], response: { 'X-Frame-Options': 'DENY' } });
    for (const header of ['X-Powered-By:PHP/8.2', 'Server:Apache/2.4']) {
      const res = await app.inject(`/?header=${header}`);
      expect(res.headers[header.split(':')[0]!.toLowerCase()]).toBeUndefined();
      expect(res.headers['x-frame-options']).toBe('DENY');
    }
    await expect(registerHttpHeaders(Fastify(), { hide: ['Content-Length'] })).rejects.toThrow(
      /headers\.hide\[0\].*frames the body/,
    );
    await expect(
      registerHttpHeaders(Fastify(), { hide: ['X-Frame-Options'], response: { 'X-Frame-Options': 'DENY' } }),
    ).rejects.toThrow(/headers\.hide\[0\].*also in headers\.response/);
  });

  it('security presets: basic and strict; response entries override single headers; HSTS only over TLS', async () => {
    const basic = await site({ security: 'basic' });
    expect((await basic.inject('/')).headers).toMatchObject({
      'x-content-type-options': 'nosniff',
      'x-frame-options': 'SAMEORIGIN',
      'referrer-policy': 'strict-origin-when-cross-origin',
    });
    const strict = await site({ security: 'strict', response: { 'Referrer-Policy': 'same-origin' } });
    const res = await strict.inject('/');
    expect(res.headers).toMatchObject({
      'x-frame-options': 'DENY',
      'referrer-policy': 'same-origin',
      'cross-origin-opener-policy': 'same-origin',
    });
    expect(res.headers['strict-transport-security']).toBeUndefined();
  });

  it('sets configured request headers before PHP sees them, replacing a client value', async () => {
    const app = await site({ request: { 'X-Site': 'shop' } }, { php: 'echo.php' });
    const res = await app.inject({ url: '/', headers: { 'x-site': 'forged' } });
    expect(res.json().context.headers['X-Site']).toEqual(['shop']);
  });

  it('checks header names and values and names the key', async () => {
    await expect(registerHttpHeaders(Fastify(), { response: { 'Bad Header': 'x' } })).rejects.toThrow(
      'warmpool option "headers.response.Bad Header": is not a valid header name',
    );
    await expect(registerHttpHeaders(Fastify(), { response: { 'X-A': 'one\r\nX-B: two' } })).rejects.toThrow(
      /headers\.response\.X-A.*one-line string/,
    );
    await expect(registerHttpHeaders(Fastify(), { security: 'paranoid' as 'basic' })).rejects.toThrow(
      /headers\.security.*basic, strict/,
    );
  });
});

describe('CORS', () => {
  const cors = {
    allowed_origin: ['https://app.test'],
    allowed_methods: 'GET,POST',
    allowed_headers: '*',
    exposed_headers: 'X-Total',
    max_age: 600,
  };

  it('answers a preflight with 204 and the CORS headers, without asking PHP', async () => {
    const app = await site({ cors });
    const res = await app.inject({
      method: 'OPTIONS',
      url: '/api/items',
      headers: {
        origin: 'https://app.test',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, x-token',
      },
    });
    expect(res.statusCode).toBe(204);
    expect(res.headers).toMatchObject({
      'access-control-allow-origin': 'https://app.test',
      'access-control-allow-methods': 'GET, POST',
      'access-control-allow-headers': 'content-type, x-token',
      'access-control-max-age': '600',
    });
    expect(res.headers.vary).toBe('Origin, Access-Control-Request-Method, Access-Control-Request-Headers');
    expect((await app.inject('/')).json().count).toBe(1); // PHP's first request
  });

  it('a preflight from another origin gets 204 without CORS headers (the browser blocks)', async () => {
    const app = await site({ cors });
    const res = await app.inject({
      method: 'OPTIONS',
      url: '/',
      headers: { origin: 'https://evil.test', 'access-control-request-method': 'GET' },
    });
    expect(res.statusCode).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('an OPTIONS that is not a preflight goes to PHP', async () => {
    const app = await site({ cors });
    const res = await app.inject({ method: 'OPTIONS', url: '/' });
    expect(res.json().method).toBe('OPTIONS');
  });

  it('adds Allow-Origin and Expose-Headers to allowed origins, and Vary: Origin to every answer', async () => {
    const app = await site({ cors });
    const allowed = await app.inject({ url: '/', headers: { origin: 'https://app.test' } });
    expect(allowed.headers['access-control-allow-origin']).toBe('https://app.test');
    expect(allowed.headers['access-control-expose-headers']).toBe('X-Total');
    expect(allowed.headers.vary).toBe('Origin');
    const other = await app.inject({ url: '/', headers: { origin: 'https://evil.test' } });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
    expect(other.headers.vary).toBe('Origin');
    expect((await app.inject('/?vary=Accept-Language')).headers.vary).toBe('Accept-Language, Origin');
  });

  it('`*` answers `*`, except with credentials, where the origin is echoed', async () => {
    const any = await site({ cors: {} });
    const res = await any.inject({ url: '/', headers: { origin: 'https://x.test' } });
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers.vary).toBeUndefined();
    const creds = await site({ cors: { allowed_origin: '*', allow_credentials: true } });
    const withCreds = await creds.inject({ url: '/', headers: { origin: 'https://x.test' } });
    expect(withCreds.headers['access-control-allow-origin']).toBe('https://x.test');
    expect(withCreds.headers['access-control-allow-credentials']).toBe('true');
    expect(withCreds.headers.vary).toBe('Origin');
  });

  it('allowed_origin_regex admits matching origins', async () => {
    const app = await site({ cors: { allowed_origin_regex: '^https://[a-z]+\\.example\\.com$' } });
    expect(
      (await app.inject({ url: '/', headers: { origin: 'https://shop.example.com' } })).headers[
        'access-control-allow-origin'
      ],
    ).toBe('https://shop.example.com');
    expect(
      (await app.inject({ url: '/', headers: { origin: 'https://example.com.evil' } })).headers[
        'access-control-allow-origin'
      ],
    ).toBeUndefined();
  });

  it('checks CORS options and names the key', () => {
    expect(() => resolveCors({ allowed_origin: 'https://app.test/path' })).toThrow(
      /headers\.cors\.allowed_origin.*no path/,
    );
    expect(() => resolveCors({ max_age: -1 })).toThrow(/headers\.cors\.max_age/);
    expect(() => resolveCors({ allowed_origin_regex: '(' })).toThrow(/headers\.cors\.allowed_origin_regex/);
    expect(() => resolveCors({ allow_credentials: 'yes' as unknown as boolean })).toThrow(
      /headers\.cors\.allow_credentials/,
    );
  });
});

describe('compression', () => {
  const decode = (encoding: string | undefined, body: Buffer): string =>
    encoding === 'br'
      ? brotliDecompressSync(body).toString()
      : encoding === 'gzip'
        ? gunzipSync(body).toString()
        : body.toString();

  it('compresses a PHP reply over 1 KiB with brotli or gzip as the client prefers, and says it varies', async () => {
    const app = await site({});
    for (const [accept, expected] of [
      ['br, gzip', 'br'],
      ['gzip', 'gzip'],
      ['gzip;q=0.5, br;q=1', 'br'],
    ] as const) {
      const res = await app.inject({ url: '/?size=4000&type=text/html', headers: { 'accept-encoding': accept } });
      expect(res.headers['content-encoding']).toBe(expected);
      expect(res.headers.vary).toMatch(/accept-encoding/i);
      expect(res.rawPayload.length).toBeLessThan(1000);
      expect(JSON.parse(decode(expected, res.rawPayload)).pad).toHaveLength(4000);
    }
  });

  it("compresses with brotli's 512 KiB window, as nginx does (the default 4 MiB held about 8 MB per slow client)", async () => {
    const app = await site({});
    const res = await app.inject({ url: '/?size=4000&type=text/html', headers: { 'accept-encoding': 'br' } });
    expect(res.headers['content-encoding']).toBe('br');
    expect(brotliWindowBits(res.rawPayload)).toBe(19);
  });

  it('compresses a large PHP reply that reached Node in many chunks (sent without joining them)', async () => {
    const app = await site({});
    for (const accept of ['gzip', 'br'] as const) {
      const res = await app.inject({ url: '/?size=1000000&type=text/html', headers: { 'accept-encoding': accept } });
      expect(res.headers['content-encoding']).toBe(accept);
      expect(res.headers['content-length']).toBeUndefined();
      expect(JSON.parse(decode(accept, res.rawPayload)).pad).toBe('x'.repeat(1000000));
    }
    const plain = await app.inject({ url: '/?size=1000000&type=text/html' });
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(Number(plain.headers['content-length'])).toBe(plain.rawPayload.length);
    expect(plain.json().pad).toHaveLength(1000000);
  });

  // Vary: what a client that asks would get compressed says it varies to every client (nginx's
  // gzip_vary), so that a shared cache never hands the plain copy to all
  it.each([
    ['a body under the threshold', '/?size=10&type=text/html', 'br', undefined],
    ['an image', '/?size=4000&type=image/png', 'br', undefined],
    ['an octet-stream download', '/?size=4000&type=application/octet-stream', 'br', undefined],
    ['an event stream', '/?size=4000&type=text/event-stream', 'br', undefined],
    ['a client that accepts no encoding', '/?size=4000&type=text/html', undefined, 'accept-encoding'],
    ['a client that accepts only identity', '/?size=4000&type=text/html', 'identity', 'accept-encoding'],
    ['a client that accepts no encoding, a large body', '/?size=1000000&type=text/html', undefined, 'accept-encoding'],
    ['a type compressed by mime-db, not by name', '/?size=4000&type=application/wasm', undefined, 'accept-encoding'],
  ])('leaves %s alone', async (_, url, accept, vary) => {
    const app = await site({});
    const res = await app.inject({ url, headers: accept === undefined ? {} : { 'accept-encoding': accept } });
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.headers.vary).toBe(vary);
    expect(res.json().pad.length).toBeGreaterThanOrEqual(10);
  });

  it('with compression on, a PHP body short of its Content-Length is a plain 502 or a cut download, never a 500 in JSON on a kept connection', async () => {
    const app = Fastify({ genReqId });
    apps.push(app);
    await registerHttpHeaders(app, {});
    await app.register(warmpool, { fastcgi: { root: CLASSIC_APP }, pool: { num_workers: 1 } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const ask = (path: string) =>
      new Promise<Buffer>((resolve, reject) => {
        const socket = createConnection(port, '127.0.0.1');
        // keep-alive asked for: only the server's close ends the wait
        socket.write(`GET ${path} HTTP/1.1\r\nHost: a.test\r\nAccept-Encoding: gzip\r\n\r\n`);
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('error', reject);
        socket.on('close', () => resolve(Buffer.concat(chunks)));
      });
    // before: Fastify's JSON 500 ("the body ended after 1000 of its 1050 declared bytes") on a
    // connection kept open. The server's first look at a body (is it compressed already?) meets its
    // end, short, before the head is out: a plain 502, the connection closed
    const small = (await ask('/length.php?bytes=1000&length=1050&type=text/html')).toString('latin1');
    const head = small.slice(0, small.indexOf('\r\n\r\n'));
    expect(head).toMatch(/^HTTP\/1\.1 502 /);
    expect(head).toMatch(/\r\ncontent-type: text\/plain; charset=utf-8\r\n/i);
    expect(head).toMatch(/\r\nconnection: close\r\n/i);
    expect(head).not.toMatch(/content-encoding/i);
    // a streamed one (over 1 MiB) whose head went out first: a cut download, as nginx
    const streamed = (await ask(`/length.php?mb=2&length=${3 * 1024 * 1024}&type=text/html`)).toString('latin1');
    expect(streamed).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('answers a HEAD for a static file kept in memory with the headers of its GET (compressed: encoding, weak ETag, its length), compressed once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wp-head-static-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      join(dir, 'data.json'),
      JSON.stringify({ rows: Array.from({ length: 400 }, (_, i) => ({ i, name: `row ${i}` })) }),
    );
    const app = Fastify({ genReqId });
    apps.push(app);
    await registerHttpHeaders(app, {});
    await app.register(warmpool, {
      command: ['php', fixture('cacheable.php')],
      pool: { num_workers: 1 },
      static: { dir },
    });
    await app.ready();
    const headers = { 'accept-encoding': 'gzip' };
    await app.inject({ url: '/data.json', headers }); // now in the hot cache
    const get = await app.inject({ url: '/data.json', headers });
    const head = await app.inject({ method: 'HEAD', url: '/data.json', headers });
    const shown = (res: typeof get) => [
      res.headers['content-encoding'],
      res.headers.etag,
      res.headers['content-length'],
      res.headers['content-type'],
      res.headers.vary,
    ];
    expect(get.headers['content-encoding']).toBe('gzip');
    // before: HEAD said the identity file (its length, the strong tag, no encoding)
    expect(shown(head)).toEqual(shown(get));
    expect(head.body).toBe('');
    // the file was compressed once for the first hit, and its copy is kept: the HEADs and GETs after
    // it compress nothing (before: each GET, and each HEAD, compressed the whole file)
    const gzipRead = countGzipInput();
    try {
      for (const method of ['HEAD', 'GET', 'HEAD', 'GET'] as const) {
        const again = await app.inject({ method, url: '/data.json', headers });
        expect(shown(again)).toEqual(shown(get));
      }
      expect(gzipRead.bytes()).toBe(0);
    } finally {
      gzipRead.stop();
    }
  });

  it('says Vary: Accept-Encoding on a HEAD as on its GET, where PHP sends no body (php-cgi)', async () => {
    const app = await site(
      {},
      {
        php: null,
        routes: (app) => void app.register(warmpool, { fastcgi: { root: CLASSIC_APP }, pool: { num_workers: 1 } }),
      },
    );
    for (const accept of [{}, { 'accept-encoding': 'gzip' }]) {
      const get = await app.inject({ method: 'GET', url: '/pattern/abc/4000', headers: accept });
      const head = await app.inject({ method: 'HEAD', url: '/pattern/abc/4000', headers: accept });
      expect([get.statusCode, get.headers.vary]).toEqual([200, 'accept-encoding']);
      // nginx's gzip_vary does the same; without it a shared cache could keep the HEAD's headers for all
      expect([head.statusCode, head.headers.vary, head.body]).toEqual([200, 'accept-encoding', '']);
    }
    // nothing to compress on the GET: no Vary on the HEAD either (a redirect, a download)
    for (const url of ['/old-page', '/length.php?mb=1']) {
      const get = await app.inject({ method: 'GET', url, headers: { 'accept-encoding': 'gzip' } });
      const head = await app.inject({ method: 'HEAD', url, headers: { 'accept-encoding': 'gzip' } });
      expect([head.statusCode, head.headers.vary]).toEqual([get.statusCode, undefined]);
      expect(get.headers.vary).toBeUndefined();
    }
  });

  it('says Vary on a HEAD to a worker as on its GET (the worker sends the body, Node drops it)', async () => {
    const app = await site({});
    for (const [url, vary] of [
      ['/?size=10&type=text/html', undefined],
      ['/?size=4000&type=text/html', 'accept-encoding'],
    ] as const) {
      expect((await app.inject({ method: 'GET', url })).headers.vary).toBe(vary);
      const head = await app.inject({ method: 'HEAD', url });
      expect([head.headers.vary, head.body]).toEqual([vary, '']);
    }
    // with gzip asked for: the GET's encoding, and the body it sent is not compressed for nothing
    const gzipRead = countGzipInput();
    try {
      const head = await app.inject({
        method: 'HEAD',
        url: '/?size=40000&type=text/html',
        headers: { 'accept-encoding': 'gzip' },
      });
      expect([head.headers['content-encoding'], head.headers['content-length'], head.body]).toEqual([
        'gzip',
        undefined,
        '',
      ]);
      // before: the whole 40 KB compressed, then dropped by Node
      expect(gzipRead.bytes()).toBe(0);
    } finally {
      gzipRead.stop();
    }
  });

  it('decides a HEAD with a Content-Length as its GET: under the threshold, no Vary', async () => {
    const app = await site(
      {},
      {
        php: null,
        routes: (app) => {
          // as php-cgi answers HEAD: the GET's headers, no body
          for (const [url, length] of [
            ['/small', 100],
            ['/large', 5000],
          ] as const)
            app.route({
              method: ['GET', 'HEAD'],
              url,
              exposeHeadRoute: false,
              handler: (request, reply) =>
                reply
                  .type('text/html')
                  .header('content-length', length)
                  .send(request.method === 'HEAD' ? '' : 'x'.repeat(length)),
            });
        },
      },
    );
    for (const [url, vary] of [
      ['/small', undefined],
      ['/large', 'accept-encoding'],
    ] as const) {
      expect((await app.inject({ method: 'GET', url })).headers.vary).toBe(vary);
      expect((await app.inject({ method: 'HEAD', url })).headers.vary).toBe(vary);
    }
  });

  it('compresses what mime-db calls compressible too, and names Accept-Encoding in Vary once', async () => {
    const app = await site({});
    const res = await app.inject({
      url: '/?size=4000&type=application/wasm',
      headers: { 'accept-encoding': 'gzip' },
    });
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.headers.vary).toBe('accept-encoding');
  });

  it('sends a whole body that starts like gzip or zlib data uncompressed (@fastify/compress would label it gzip as it is)', async () => {
    const app = Fastify();
    await registerHttpHeaders(app, {});
    // "80" is a valid zlib header (0x3830 is a multiple of 31), "x^" too; 1f 8b 08 is gzip's magic
    const bodies = {
      '/csv': Buffer.from('80,120\n'.repeat(400)),
      '/x': Buffer.from(`x^${'y'.repeat(3000)}`),
      '/gz': Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08]), Buffer.alloc(3000, 0x61)]),
    };
    for (const [url, body] of Object.entries(bodies))
      app.get(url, (_request, reply) => reply.type('text/plain').send(body));
    app.get('/string', (_request, reply) => reply.type('text/plain').send('80,120\n'.repeat(400)));
    app.get('/later', (_request, reply) => reply.type('text/plain').send(` ${'80,120\n'.repeat(400)}`));
    for (const url of [...Object.keys(bodies), '/string']) {
      const res = await app.inject({ url, headers: { 'accept-encoding': 'gzip' } });
      expect(res.headers['content-encoding'], url).toBeUndefined();
      expect(res.rawPayload.equals(bodies[url as keyof typeof bodies] ?? Buffer.from('80,120\n'.repeat(400)))).toBe(
        true,
      );
    }
    // the same text one byte later is compressed as usual
    const later = await app.inject({ url: '/later', headers: { 'accept-encoding': 'gzip' } });
    expect(later.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(later.rawPayload).toString()).toBe(` ${'80,120\n'.repeat(400)}`);
    await app.close();
  });

  it("looks at a streamed body's first bytes too: one that starts like zlib or gzip data goes uncompressed", async () => {
    const app = Fastify();
    await registerHttpHeaders(app, {});
    // first bytes split over chunks, as a script's output arrives; '/tiny' ends before 3 bytes
    const streams: Record<string, () => Buffer[]> = {
      '/x': () => [Buffer.from('x'), Buffer.from(`^${'y'.repeat(3000)}`)],
      '/csv': () => [Buffer.from('80,120\n'.repeat(400))],
      '/gz': () => [Buffer.from([0x1f, 0x8b]), Buffer.from([0x08]), Buffer.alloc(3000, 0x61)],
      '/tiny': () => [Buffer.from('8')],
      '/later': () => [Buffer.from(' 8'), Buffer.from(`0,120\n${'80,120\n'.repeat(400)}`)],
    };
    for (const [url, parts] of Object.entries(streams)) {
      app.get(url, (_request, reply) => {
        const stream = new PassThrough();
        // written over several ticks: the hook must wait for the bytes, not find them there
        const queue = parts();
        const next = () => {
          const part = queue.shift();
          if (part === undefined) stream.end();
          else {
            stream.write(part);
            setImmediate(next);
          }
        };
        setImmediate(next);
        return reply.type('text/plain').send(stream);
      });
    }
    for (const [url, parts] of Object.entries(streams)) {
      const res = await app.inject({ url, headers: { 'accept-encoding': 'gzip' } });
      const body = Buffer.concat(parts());
      // what the label says is what the bytes are
      const sent = res.headers['content-encoding'] === 'gzip' ? gunzipSync(res.rawPayload) : res.rawPayload;
      expect(sent.equals(body), url).toBe(true);
      // the same text one byte later is compressed as usual, and so is a body too short to look like anything
      expect(res.headers['content-encoding'], url).toBe(url === '/later' || url === '/tiny' ? 'gzip' : undefined);
    }
    await app.close();
  });

  it('can be turned off, and its threshold set', async () => {
    const off = await site({ compression: false });
    expect(
      (await off.inject({ url: '/?size=4000&type=text/html', headers: { 'accept-encoding': 'gzip' } })).headers[
        'content-encoding'
      ],
    ).toBeUndefined();
    const low = await site({ compression: { threshold: 10, encodings: ['gzip'] } });
    expect(
      (await low.inject({ url: '/?size=20&type=text/html', headers: { 'accept-encoding': 'br, gzip' } })).headers[
        'content-encoding'
      ],
    ).toBe('gzip');
    await expect(registerHttpHeaders(Fastify(), { compression: { encodings: ['zip' as 'gzip'] } })).rejects.toThrow(
      /compression\.encodings/,
    );
  });

  it('compresses a stream marked X-Accel-Buffering: no piece by piece: each write decodes before the next is made', async () => {
    const app = Fastify();
    apps.push(app);
    await registerHttpHeaders(app, { compression: { encodings: ['br', 'gzip', 'deflate'] } });
    const bodies: PassThrough[] = [];
    app.get('/progress', (_request, reply) => {
      // the first piece is there at once, as PHP's first flush (Node sends the head with it)
      const body = new PassThrough();
      body.write('first\n');
      bodies.push(body);
      return reply.type('text/plain').header('x-accel-buffering', 'no').send(body);
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const decoders = { br: createBrotliDecompress, gzip: createGunzip, deflate: createInflate };
    for (const [accept, encoding] of [
      ['br', 'br'],
      ['x-gzip', 'gzip'],
      ['deflate, gzip;q=0.5', 'deflate'],
    ] as const) {
      const res = await request(`http://127.0.0.1:${port}/progress`, { headers: { 'accept-encoding': accept } });
      const body = bodies.at(-1)!;
      expect(res.headers['content-encoding'], accept).toBe(encoding);
      expect(res.headers.vary).toBe('accept-encoding');
      const pieces = res.body.pipe(decoders[encoding]())[Symbol.asyncIterator]();
      expect(String((await pieces.next()).value), accept).toBe('first\n');
      body.write('second\n');
      expect(String((await pieces.next()).value), accept).toBe('second\n');
      body.end();
      expect((await pieces.next()).done).toBe(true);
    }
    // a client that leaves closes the body behind the compressor (the backend's stream is cancelled)
    const left = await request(`http://127.0.0.1:${port}/progress`, { headers: { 'accept-encoding': 'gzip' } });
    const abandoned = bodies.at(-1)!;
    const closed = once(abandoned, 'close');
    left.body.destroy();
    await closed;
    expect(abandoned.destroyed).toBe(true);
    // a client that takes none of them gets it as it is
    const plain = await request(`http://127.0.0.1:${port}/progress`, { headers: { 'accept-encoding': 'identity' } });
    bodies.at(-1)!.end('as is');
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(await plain.body.text()).toBe('first\nas is');
  });

  it('with the micro-cache: stores the uncompressed body once and compresses each hit for its client; per-request headers are not stored', async () => {
    const app = await site({ cors: { allowed_origin: ['https://a.test', 'https://b.test'] } }, { microCache: true });
    const url = '/cached?size=4000&type=text/html&cc=public,%20max-age=60';
    const first = await app.inject({ url, headers: { 'accept-encoding': 'gzip', origin: 'https://a.test' } });
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.headers['content-encoding']).toBe('gzip');
    const second = await app.inject({ url, headers: { 'accept-encoding': 'br', origin: 'https://b.test' } });
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.headers['content-encoding']).toBe('br');
    expect(second.headers['access-control-allow-origin']).toBe('https://b.test');
    expect(second.headers['x-request-id']).not.toBe(first.headers['x-request-id']);
    const third = await app.inject({ url });
    expect(third.headers['x-cache']).toBe('HIT');
    expect(third.headers['content-encoding']).toBeUndefined();
    expect(decode('br', second.rawPayload)).toBe(decode('gzip', first.rawPayload));
    expect(third.body).toBe(decode('gzip', first.rawPayload));
    expect(third.json().count).toBe(1);
  });
});

describe('compression, ranges and validators (over a socket)', () => {
  /** A site as the server assembles it, listening on 127.0.0.1: requests go through real sockets. */
  async function listening(setup: SiteSetup = {}) {
    const app = await site({}, setup);
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    return async (path: string, headers: Record<string, string> = {}) => {
      const res = await request(`http://127.0.0.1:${port}${path}`, { headers });
      const body = Buffer.from(await res.body.arrayBuffer());
      const encoding = res.headers['content-encoding'];
      const decoded = encoding === 'gzip' ? gunzipSync(body) : encoding === 'br' ? brotliDecompressSync(body) : body;
      return { status: res.statusCode, headers: res.headers, text: decoded.toString() };
    };
  }

  /** A 206 streamed on purpose (X-Accel-Buffering: no), as a script sending a large file in pieces does. */
  const streamedPart = (app: FastifyInstance) =>
    app.get('/streamed-part', (_request, reply) => {
      const body = new PassThrough();
      body.end('y'.repeat(4000));
      return reply
        .code(206)
        .type('text/plain')
        .header('content-range', 'bytes 0-3999/10000')
        .header('x-accel-buffering', 'no')
        .send(body);
    });

  it('a 206 from PHP goes uncompressed, with its Content-Range, whatever the client accepts; streamed on purpose too', async () => {
    const get = await listening({ routes: streamedPart });
    const range = encodeURIComponent('Content-Range:bytes 0-4071/99999');
    for (const accept of ['gzip', 'br', 'br, gzip, deflate']) {
      const part = await get(`/?status=206&size=4000&type=text/html&header=${range}`, { 'accept-encoding': accept });
      expect([accept, part.status, part.headers['content-encoding']]).toEqual([accept, 206, undefined]);
      expect(part.headers['content-range']).toBe('bytes 0-4071/99999');
      expect(JSON.parse(part.text).pad).toHaveLength(4000);
      // a 206 without the header is still a part
      const bare = await get('/?status=206&size=4000&type=text/html', { 'accept-encoding': accept });
      expect([bare.status, bare.headers['content-encoding']]).toEqual([206, undefined]);
      const streamed = await get('/streamed-part', { 'accept-encoding': accept });
      expect([streamed.status, streamed.headers['content-encoding'], streamed.text]).toEqual([
        206,
        undefined,
        'y'.repeat(4000),
      ]);
    }
    // the same page whole is compressed as before
    const whole = await get('/?size=4000&type=text/html', { 'accept-encoding': 'gzip' });
    expect([whole.status, whole.headers['content-encoding']]).toEqual([200, 'gzip']);
  });

  it('a body compressed on the fly carries the weak form of its ETag, streamed on purpose too; a plain one keeps it', async () => {
    const get = await listening({
      routes: (app) =>
        app.get('/stream', (_request, reply) => {
          const body = new PassThrough();
          body.end('z'.repeat(4000));
          return reply.type('text/plain').header('etag', '"s1"').header('x-accel-buffering', 'no').send(body);
        }),
    });
    const page = `/?size=4000&type=text/html&etag=${encodeURIComponent('"v1"')}`;
    for (const accept of ['gzip', 'br']) {
      const compressed = await get(page, { 'accept-encoding': accept });
      expect([compressed.headers['content-encoding'], compressed.headers.etag]).toEqual([accept, 'W/"v1"']);
      const streamed = await get('/stream', { 'accept-encoding': accept });
      expect([streamed.headers['content-encoding'], streamed.headers.etag]).toEqual([accept, 'W/"s1"']);
      expect(streamed.text).toBe('z'.repeat(4000));
    }
    for (const headers of [{}, { 'accept-encoding': 'identity' }] as Record<string, string>[]) {
      expect((await get(page, headers)).headers.etag).toBe('"v1"');
      expect((await get('/stream', headers)).headers.etag).toBe('"s1"');
    }
    // under the threshold: not compressed, tag kept; a weak tag stays as it is
    expect(
      (await get(`/?size=10&etag=${encodeURIComponent('"v2"')}`, { 'accept-encoding': 'gzip' })).headers.etag,
    ).toBe('"v2"');
    const weak = await get(`/?size=4000&type=text/html&etag=${encodeURIComponent('W/"v3"')}`, {
      'accept-encoding': 'gzip',
    });
    expect([weak.headers['content-encoding'], weak.headers.etag]).toEqual(['gzip', 'W/"v3"']);
    // a tag with no quotes (Icinga Web's) has no weak form: dropped when compressed, as nginx's gzip
    const unquoted = `/?size=4000&type=text/css&etag=${encodeURIComponent('7db148fb-f8dd8dbb')}`;
    const gzipped = await get(unquoted, { 'accept-encoding': 'gzip' });
    expect([gzipped.headers['content-encoding'], gzipped.headers.etag]).toEqual(['gzip', undefined]);
    expect((await get(unquoted, {})).headers.etag).toBe('7db148fb-f8dd8dbb');
  });

  it('with the micro-cache: a hit is compressed under the weak tag, and a 304 for the weak tag says the weak tag', async () => {
    const get = await listening({ microCache: true });
    const url = `/cached?size=4000&type=text/html&cc=public,%20max-age=60&etag=${encodeURIComponent('"c1"')}`;
    const first = await get(url, { 'accept-encoding': 'gzip' });
    expect([first.headers['x-cache'], first.headers['content-encoding'], first.headers.etag]).toEqual([
      'MISS',
      'gzip',
      'W/"c1"',
    ]);
    const hit = await get(url, { 'accept-encoding': 'br' });
    expect([hit.headers['x-cache'], hit.headers['content-encoding'], hit.headers.etag]).toEqual([
      'HIT',
      'br',
      'W/"c1"',
    ]);
    const plain = await get(url);
    expect([plain.headers['x-cache'], plain.headers.etag]).toEqual(['HIT', '"c1"']);
    const revalidated = await get(url, { 'accept-encoding': 'gzip', 'if-none-match': 'W/"c1"' });
    expect([revalidated.status, revalidated.headers.etag]).toEqual([304, 'W/"c1"']);
    const strong = await get(url, { 'if-none-match': '"c1"' });
    expect([strong.status, strong.headers.etag]).toEqual([304, '"c1"']);
    // a browser revalidating a page the cache has not: the fill's 304 is no body to compress
    const cold = `/cold?size=4000&type=text/html&cc=public,%20max-age=60&etag=${encodeURIComponent('"c9"')}`;
    const fill = await get(cold, { 'accept-encoding': 'gzip', 'if-none-match': 'W/"c9"' });
    expect([fill.status, fill.headers['x-cache'], fill.headers['content-encoding'], fill.text]).toEqual([
      304,
      'MISS',
      undefined,
      '',
    ]);
    expect((await get(cold, { 'accept-encoding': 'gzip' })).headers['x-cache']).toBe('HIT');
  });

  it('compresses a cached page once per encoding, not once per hit (the copy is kept with the entry)', async () => {
    const app = await site({}, { microCache: true });
    const url = '/kept?size=30000&type=text/html&cc=public,%20max-age=60';
    const headers = { 'accept-encoding': 'gzip' };
    const miss = await app.inject({ url, headers });
    expect(miss.headers['x-cache']).toBe('MISS');
    const gzipRead = countGzipInput();
    let hits: Awaited<ReturnType<typeof app.inject>>[];
    try {
      hits = [];
      for (let i = 0; i < 4; i++) hits.push(await app.inject({ url, headers }));
    } finally {
      gzipRead.stop();
    }
    const body = JSON.parse(gunzipSync(miss.rawPayload).toString()) as { count: number; pad: string };
    for (const hit of hits) {
      expect([hit.headers['x-cache'], hit.headers['content-encoding'], hit.headers.vary]).toEqual([
        'HIT',
        'gzip',
        'accept-encoding',
      ]);
      expect(Number(hit.headers['content-length'])).toBe(hit.rawPayload.length);
      expect(JSON.parse(gunzipSync(hit.rawPayload).toString())).toEqual(body);
    }
    // the page was read by gzip once, for the first hit (before: once per hit, four times)
    const page = Buffer.byteLength(JSON.stringify(body));
    expect(gzipRead.bytes()).toBe(page);
    // another encoding is made once too; a client without one gets the page as it is
    expect((await app.inject({ url, headers: { 'accept-encoding': 'br' } })).headers['content-encoding']).toBe('br');
    const plain = await app.inject({ url });
    expect([plain.headers['content-encoding'], plain.body.length]).toEqual([undefined, page]);
  });
});

describe('over HTTP/2', () => {
  it('request id, request/response headers, CORS, compression and the micro-cache work on an HTTP/2 instance', async () => {
    const app = Fastify({ http2: true, genReqId });
    closers.push(() => app.close());
    registerMicroCache(app, {});
    await registerHttpHeaders(app, {
      request: { 'X-Site': 'shop' },
      response: { 'X-Frame-Options': 'DENY' },
      cors: { allowed_origin: 'https://app.test' },
    });
    app.get('/', async (request, reply) => {
      markBackendReply(request); // as the plugin marks PHP's answers: the micro-cache stores only those
      reply.header('cache-control', 'public, max-age=60').type('text/html');
      // what the warmpool plugin reads to build PHP's headers
      const raw = request.raw.rawHeaders;
      const at = raw.findIndex((name, i) => i % 2 === 0 && name.toLowerCase() === 'x-site');
      return JSON.stringify({ id: request.id, site: at < 0 ? null : raw[at + 1], pad: 'x'.repeat(3000) });
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const session = connect(`http://127.0.0.1:${port}`);
    try {
      const get = () =>
        new Promise<{ headers: Record<string, unknown>; body: Buffer }>((resolve, reject) => {
          const stream = session.request({
            ':path': '/',
            'accept-encoding': 'gzip',
            origin: 'https://app.test',
            'x-request-id': 'h2-abc',
          });
          const chunks: Buffer[] = [];
          let headers: Record<string, unknown> = {};
          stream.on('response', (h) => (headers = h));
          stream.on('data', (chunk: Buffer) => chunks.push(chunk));
          stream.on('end', () => resolve({ headers, body: Buffer.concat(chunks) }));
          stream.on('error', reject);
          stream.end();
        });
      const first = await get();
      expect(first.headers).toMatchObject({
        'x-request-id': 'h2-abc',
        'x-frame-options': 'DENY',
        'access-control-allow-origin': 'https://app.test',
        'content-encoding': 'gzip',
        'x-cache': 'MISS',
      });
      expect(JSON.parse(gunzipSync(first.body).toString())).toMatchObject({ id: 'h2-abc', site: 'shop' });
      const second = await get();
      expect(second.headers['x-cache']).toBe('HIT');
      expect(gunzipSync(second.body).toString()).toBe(gunzipSync(first.body).toString());
    } finally {
      session.close();
    }
  });
});
