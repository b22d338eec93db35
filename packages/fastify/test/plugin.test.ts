import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { isAlive, phpPidsStamped } from '../../../test/helpers/php.js';
import { getWithHeaderLines } from '../../../test/helpers/raw-headers.js';
import { until } from '../../../test/helpers/until.js';
import * as errors from '../src/errors.js';
import { warmpool, type WarmpoolCommonOptions, type WarmpoolOptions, type WorkerModeOptions } from '../src/index.js';

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

/** A Fastify app whose log lines are kept, parsed, in `lines` (closed after the test). */
function loggedApp(): { app: FastifyInstance; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = { write: (line: string) => void lines.push(JSON.parse(line)) };
  const app = Fastify({ logger: { level: 'info', stream } });
  apps.push(app);
  return { app, lines };
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function appWith(
  name: string,
  options: WarmpoolCommonOptions & Partial<WorkerModeOptions> = {},
  setup?: (app: FastifyInstance) => void,
): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  setup?.(app);
  await app.register(warmpool, { command: ['php', fixture(name)], pool: { num_workers: 1 }, ...options });
  await app.ready();
  return app;
}

describe('plugin: an app with hooks of its own', () => {
  it('gives a response room for every close listener the app and the plugin put on it: no memory leak warning', async () => {
    const app = await appWith('echo.php', {}, (app) => {
      // an app watching its responses as the server does (access log, metrics, its own traffic count)
      app.addHook('onRequest', (_request, reply, done) => {
        for (let i = 0; i < 9; i++) reply.raw.once('close', () => {});
        done();
      });
    });
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    try {
      const res = await app.inject({ method: 'GET', url: '/page' });
      expect(res.statusCode).toBe(200);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).toEqual([]);
  });
});

describe('plugin: request mapping (RoadRunner payload)', () => {
  it('forwards method, absolute uri, query, canonical headers without Host, cookies, client address and body', async () => {
    const app = await appWith('echo.php');
    const res = await app.inject({
      method: 'POST',
      url: '/shop/cart?item=42&tags[]=a&tags[]=b',
      headers: {
        host: 'example.test:8080',
        'x-custom-id': 'abc',
        'content-type': 'application/json',
        cookie: 'sid=s%20id; theme=dark',
      },
      payload: '{"qty":2}',
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const { context, body, count } = res.json();
    expect(count).toBe(1);
    expect(body).toBe('{"qty":2}');
    expect(context).toMatchObject({
      method: 'POST',
      uri: 'http://example.test:8080/shop/cart?item=42&tags[]=a&tags[]=b',
      protocol: 'HTTP/1.1',
      rawQuery: 'item=42&tags[]=a&tags[]=b',
      remoteAddr: '127.0.0.1',
      cookies: { sid: 's id', theme: 'dark' },
      parsed: false,
    });
    expect(context.headers['X-Custom-Id']).toEqual(['abc']);
    expect(context.headers['Content-Type']).toEqual(['application/json']);
    expect(context.headers.Host).toBeUndefined();
    expect(context.headers.host).toBeUndefined();
  });

  it('forwards the headers as the hooks leave them (set, added, deleted) and repeated lines as the client sent them', async () => {
    // an auth hook: it checks the token, tells PHP who the user is and keeps the token from it
    const app = await appWith('echo.php', {}, (app) => {
      app.addHook('onRequest', async (request) => {
        request.headers['x-user-id'] = '42';
        request.headers['x-verified'] = 'yes';
        delete request.headers.authorization;
      });
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    // two Cookie and two X-Forwarded-For lines, which Node joins in request.headers
    const { status, text } = await getWithHeaderLines(port, [
      ['Host', `127.0.0.1:${port}`],
      ['Authorization', 'Bearer secret'],
      ['X-User-Id', '1'],
      ['Cookie', 'a=1'],
      ['X-Forwarded-For', '203.0.113.1'],
      ['Cookie', 'b=2'],
      ['X-Forwarded-For', '203.0.113.2'],
      ['Accept', 'text/html, */*'],
    ]);
    expect(status, text).toBe(200);
    const { context } = JSON.parse(text);
    expect(context.headers.Authorization).toBeUndefined();
    expect(context.headers['X-User-Id']).toEqual(['42']);
    expect(context.headers['X-Verified']).toEqual(['yes']);
    expect(context.headers.Cookie).toEqual(['a=1', 'b=2']);
    expect(context.cookies).toEqual({ a: '1', b: '2' });
    expect(context.headers['X-Forwarded-For']).toEqual(['203.0.113.1', '203.0.113.2']);
    expect(context.headers.Accept).toEqual(['text/html, */*']);
  });

  it('never gives the worker a header whose name has an underscore or is Proxy, as classic mode and nginx do not', async () => {
    // the SDK's server params make X_Internal and X-Internal one HTTP_X_INTERNAL (the client's won
    // over a value the server set), Content_Length the real CONTENT_LENGTH, Proxy HTTP_PROXY (httpoxy)
    const app = await appWith('echo.php');
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const { status, text } = await getWithHeaderLines(port, [
      ['Host', `127.0.0.1:${port}`],
      ['X-Internal', 'trusted'],
      ['X_Internal', 'evil'],
      ['Content_Length', '999'],
      ['Proxy', 'http://evil.example:8080'],
      ['X-Ok', 'yes'],
    ]);
    expect(status, text).toBe(200);
    const { context } = JSON.parse(text);
    expect(Object.keys(context.headers).sort()).toEqual(['Connection', 'X-Internal', 'X-Ok']);
    expect(context.headers['X-Internal']).toEqual(['trusted']);
    await app.close();
  });

  it('keeps the worker warm across requests (its counter goes up)', async () => {
    const app = await appWith('echo.php');
    const counts = [];
    for (let i = 0; i < 3; i++) counts.push((await app.inject('/')).json().count);
    expect(counts).toEqual([1, 2, 3]);
  });

  it('does not send a body for HEAD and OPTIONS', async () => {
    const app = await appWith('headers.php');
    const res = await app.inject({
      method: 'OPTIONS',
      url: '/',
      payload: 'ignored',
      headers: { 'content-type': 'text/plain' },
    });
    expect(res.body).toBe('OPTIONS:0');
    const head = await app.inject({ method: 'HEAD', url: '/' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
    // PHP that sends no body for HEAD: no Content-Length: 0 misstating the GET's length (nginx sends none)
    const quiet = await app.inject({ method: 'HEAD', url: '/?quiet=1' });
    expect(quiet.statusCode).toBe(200);
    expect(quiet.headers['content-type']).toBe('text/plain');
    expect(quiet.headers['content-length']).toBeUndefined();
    expect((await app.inject('/?quiet=1')).headers['content-length']).toBe('0');
  });

  it('leaves the host app alone: its own routes and JSON parser win over the catch-all', async () => {
    const app = await appWith('echo.php', {}, (a) => {
      a.post('/api/items', async (request) => ({ got: request.body }));
      a.get('/health-of-app', async () => 'node');
    });
    const api = await app.inject({ method: 'POST', url: '/api/items', payload: { x: 1 } });
    expect(api.json()).toEqual({ got: { x: 1 } });
    expect((await app.inject('/health-of-app')).body).toBe('node');
    expect((await app.inject('/anything/else')).json().context.uri).toMatch(/\/anything\/else$/);
  });
});

describe('plugin: routes shared with the app', () => {
  it('leaves GET / and OPTIONS * to app routes declared before it (a home page, @fastify/cors)', async () => {
    const app = await appWith('echo.php', {}, (a) => {
      a.get('/', async () => 'home from node');
      a.options('*', async (_request, reply) => reply.code(204).header('access-control-allow-origin', '*').send());
    });
    expect((await app.inject('/')).body).toBe('home from node');
    expect((await app.inject({ method: 'HEAD', url: '/' })).headers['content-type']).toMatch(/text\/plain/);
    const preflight = await app.inject({ method: 'OPTIONS', url: '/api/x' });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('*');
    // every other method and path still reaches PHP
    expect((await app.inject({ method: 'POST', url: '/' })).json().context.method).toBe('POST');
    expect((await app.inject('/page')).json().context.method).toBe('GET');
  });

  it('refuses an app route on GET / or OPTIONS * declared after it, saying what to do', async () => {
    const app = Fastify();
    apps.push(app);
    await app.register(warmpool, { command: ['php', fixture('echo.php')], pool: { num_workers: 1 } });
    expect(() => app.get('/', async () => 'too late')).toThrow(errors.RouteTakenError);
    expect(() => app.options('*', async () => 'too late')).toThrow(
      /OPTIONS \/\* is warmpool's .*before app\.register\(warmpool\)/,
    );
  });

  it('refuses a second registration on one instance before its workers boot, saying to use a scope with a prefix', async () => {
    const app = Fastify();
    apps.push(app);
    const marker = `second-${process.pid}-${Date.now()}`;
    await app.register(warmpool, { command: ['php', fixture('echo.php')], pool: { num_workers: 1 } });
    const second = app.register(warmpool, {
      command: ['php', fixture('echo.php')],
      env: { WP_SECOND_POOL: marker },
      pool: { num_workers: 1 },
    });
    const error = await second.ready().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(errors.AlreadyRegisteredError);
    expect(error).toMatchObject({ code: 'WP_FASTIFY_ALREADY_REGISTERED' });
    expect((error as Error).message).toMatch(/own scope with a prefix/);
    // the second pool never booted: no php carries its stamp
    expect(phpPidsStamped('WP_SECOND_POOL', marker)).toEqual([]);
    const first = (await app.warmpool.workers()).map((w) => w.pid);
    expect(first).toHaveLength(1);
    await app.close();
    expect(first.filter(isAlive)).toEqual([]);
  });

  it.each<[string, string | undefined]>([
    ['no prefix', undefined],
    ['the same prefix', '/php'],
  ])('refuses a second pool in a sibling scope with %s before it boots, naming both', async (_, prefix) => {
    const app = Fastify();
    apps.push(app);
    const marker = `sibling-${process.pid}-${Date.now()}`;
    const scope: { prefix?: string } = prefix === undefined ? {} : { prefix };
    app.register(async (s) => {
      await s.register(warmpool, { command: ['php', fixture('echo.php')], pool: { num_workers: 1 } });
    }, scope);
    app.register(async (s) => {
      await s.register(warmpool, {
        command: ['php', fixture('whoami.php')],
        env: { WP_SIBLING_POOL: marker },
        pool: { num_workers: 1 },
      });
    }, scope);
    const error = await app.ready().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(errors.PoolUnreachableError);
    expect(error).toMatchObject({ code: 'WP_FASTIFY_POOL_UNREACHABLE' });
    const message = (error as Error).message;
    expect(message).toContain('whoami.php');
    expect(message).toContain('echo.php');
    expect(message).toMatch(/its own prefix/);
    expect(phpPidsStamped('WP_SIBLING_POOL', marker)).toEqual([]);
  });

  it('two pools in sibling scopes with their own prefixes each serve theirs', async () => {
    const app = Fastify();
    apps.push(app);
    await app.register(
      async (s) => {
        await s.register(warmpool, { command: ['php', fixture('echo.php')], pool: { num_workers: 1 } });
      },
      { prefix: '/shop' },
    );
    await app.register(
      async (s) => {
        await s.register(warmpool, { command: ['php', fixture('whoami.php')], pool: { num_workers: 1 } });
      },
      { prefix: '/blog' },
    );
    await app.ready();
    expect((await app.inject('/shop/cart')).json().context.uri).toMatch(/\/shop\/cart$/);
    expect((await app.inject('/blog/post')).json()).toHaveProperty('uid');
  });

  it("refuses Fastify's prefix (it would not apply) with the scoped way; a scoped mount serves under it", async () => {
    const bad = Fastify();
    apps.push(bad);
    await expect(
      bad.register(warmpool, { command: ['php', fixture('echo.php')], prefix: '/php' } as WarmpoolOptions).ready(),
    ).rejects.toThrow(/warmpool option "prefix": .*register it in a scope/);
    const app = Fastify();
    apps.push(app);
    app.get('/', async () => 'node home');
    await app.register(
      async (scope) => {
        await scope.register(warmpool, { command: ['php', fixture('echo.php')], pool: { num_workers: 1 } });
      },
      { prefix: '/php' },
    );
    await app.ready();
    expect((await app.inject('/')).body).toBe('node home');
    expect((await app.inject('/php/cart')).json().context.uri).toMatch(/\/php\/cart$/);
    expect((await app.inject('/elsewhere')).statusCode).toBe(404);
  });
});

describe('plugin: responses', () => {
  it('writes the status, several Set-Cookie headers and UTF-8 header values; drops hop-by-hop headers', async () => {
    const app = await appWith('headers.php');
    const res = await app.inject('/?status=201');
    expect(res.statusCode).toBe(201);
    expect(res.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);
    expect(Buffer.from(res.headers['x-greeting'] as string, 'latin1').toString('utf8')).toBe('grüße');
    expect(res.headers['transfer-encoding']).toBeUndefined();
    expect(res.body).toBe('GET:0');
    // a Trailer announces trailers that never follow (and Node throws on it when not chunked)
    const trailer = await app.inject('/?name=Trailer');
    expect(trailer.statusCode).toBe(200);
    expect(trailer.headers.trailer).toBeUndefined();
    expect(trailer.body).toBe('GET:0');
  });

  it('a status outside 100-599 from the worker is a 502', async () => {
    const app = await appWith('headers.php');
    expect((await app.inject('/?status=700')).statusCode).toBe(502);
  });

  it('a header no server may send (a name that is no token, a control byte in a value) is a 502, as in classic mode', async () => {
    const app = await appWith('headers.php');
    for (const query of ['name=Bad%20Name', 'name=X%01Y', 'byte=10', 'byte=13', 'byte=0', 'byte=127']) {
      const res = await app.inject(`/?${query}`);
      // Node refused such a header only as it wrote the head: a 500 with its own error text
      expect([query, res.statusCode, res.body]).toEqual([query, 502, 'Bad Gateway\n']);
    }
    // a tab and UTF-8 are fine; the worker serves on
    const tab = await app.inject('/?byte=9');
    expect([tab.statusCode, tab.headers['x-odd']]).toEqual([200, 'a\tb']);
    expect((await app.inject('/?name=X-Fine')).headers['x-fine']).toBe('v');
  });

  it('a reply head over 64 KiB or 500 header fields is a 502 with one log line, and the worker serves on', async () => {
    const { app, lines } = loggedApp();
    await app.register(warmpool, { command: ['php', fixture('headers.php')], pool: { num_workers: 1 } });
    await app.ready();
    const pid = (await app.inject('/')).headers['x-pid'];
    for (const query of ['many=100000', 'big=10485760', 'many=501', 'big=70000']) {
      const res = await app.inject(`/?${query}`);
      expect([query, res.statusCode, res.body, res.headers['x-pid']]).toEqual([query, 502, 'Bad Gateway\n', undefined]);
    }
    const failed = lines.filter((line) => line.msg === 'PHP request failed: WP_PROTOCOL_BAD_REPLY');
    expect(failed.map((line) => (line.err as { message: string }).message)).toEqual([
      expect.stringMatching(/over the 65536-byte bound on a reply head/),
      expect.stringMatching(/over the 65536-byte bound on a reply head/),
      expect.stringMatching(/more than 500 header fields/),
      expect.stringMatching(/over the 65536-byte bound on a reply head/),
    ]);
    expect(failed.every((line) => line.url !== undefined && line.host !== undefined)).toBe(true);
    // within the bound it is sent, by the same worker (nothing was out of step on its pipe)
    const fine = await app.inject('/?many=400&big=20000');
    expect([fine.statusCode, fine.headers['x-h399'], (fine.headers['x-big'] as string).length]).toEqual([
      200,
      'v',
      20000,
    ]);
    expect(fine.headers['x-pid']).toBe(pid);
  });

  it('streams a reply chunk by chunk', async () => {
    const app = await appWith('stream.php');
    const res = await app.inject({
      method: 'POST',
      url: '/',
      payload: 'stream:5',
      headers: { 'content-type': 'text/plain' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('chunk-0\nchunk-1\nchunk-2\nchunk-3\nchunk-4\ndone\n');
  });
});

describe('plugin: errors map to statuses', () => {
  const post = (app: FastifyInstance, body: string) =>
    app.inject({ method: 'POST', url: '/', payload: body, headers: { 'content-type': 'text/plain' } });

  it('worker died → 502, and the next request is served by its replacement', async () => {
    const app = await appWith('crash-mid-request.php');
    const res = await post(app, 'crash');
    expect(res.statusCode).toBe(502);
    expect(res.body).toBe('Bad Gateway\n');
    expect((await post(app, 'ok')).statusCode).toBe(200);
  });

  it('exec_ttl → 504', async () => {
    const app = await appWith('hang.php', { pool: { num_workers: 1, supervisor: { exec_ttl: 200 } } });
    expect((await post(app, 'hang')).statusCode).toBe(504);
    expect((await post(app, 'ok')).statusCode).toBe(200);
  });

  it('worker error frame → 500 with an empty body unless debug', async () => {
    const quiet = await appWith('error-frame.php');
    const res = await post(quiet, 'fail');
    expect(res.statusCode).toBe(500);
    expect(res.body).not.toContain('boom');
    const debug = await appWith('error-frame.php', { debug: true });
    expect((await post(debug, 'fail')).body).toContain('RuntimeException: boom from worker');
  });

  it('no free worker within allocate_timeout → 503 with Retry-After', async () => {
    // allocate_timeout also bounds a worker's boot (RR), so keep it well above PHP's start-up time.
    const app = await appWith('sleep.php', { pool: { num_workers: 1, allocate_timeout: 600 } });
    const slow = post(app, '1500');
    await new Promise((r) => setTimeout(r, 50));
    const res = await post(app, '0');
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('1');
    expect((await slow).statusCode).toBe(200);
  });

  it('garbage on stdout → 502', async () => {
    const app = await appWith('garbage-stdout.php');
    expect((await post(app, 'garbage')).statusCode).toBe(502);
  });
});

describe('plugin: lifecycle and decorators', () => {
  it('fastify.warmpool.reset() replaces the workers; workers() lists them', async () => {
    const app = await appWith('echo.php', { pool: { num_workers: 2 } });
    const before = (await app.warmpool.workers()).map((w) => w.pid).sort();
    expect(before).toHaveLength(2);
    await app.warmpool.reset();
    const after = (await app.warmpool.workers()).map((w) => w.pid);
    expect(after.filter((p) => before.includes(p))).toEqual([]);
    expect(app.warmpool.stats().recycles.reset).toBe(2);
  });

  it('app.close() lets an in-flight PHP request finish, then stops the workers', async () => {
    const app = Fastify();
    await app.register(warmpool, { command: ['php', fixture('sleep.php')], pool: { num_workers: 1 } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address() as { port: number };
    const pid = (await app.warmpool.workers())[0]!.pid;
    const inFlight = fetch(`http://127.0.0.1:${address.port}/`, {
      method: 'POST',
      body: '300',
      headers: { 'content-type': 'text/plain' },
    });
    await new Promise((r) => setTimeout(r, 100));
    await app.close();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(Number(await res.text())).toBe(pid);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  /**
   * An app whose PHP request is uploading when app.close() starts: the head and half the body are
   * in, the request has begun (its preParsing hook ran), close has begun (a preClose hook of the
   * app's, before the plugin's, ran) and the plugin's preClose has run too (an event-loop turn).
   */
  async function uploadingWhenCloseStarts(options: WarmpoolCommonOptions & Partial<WorkerModeOptions> = {}) {
    const app = Fastify();
    let began!: () => void;
    const closeBegan = new Promise<void>((resolve) => {
      began = resolve;
    });
    app.addHook('preClose', (done) => {
      began();
      done();
    });
    let parsing!: () => void;
    const bodyStarted = new Promise<void>((resolve) => {
      parsing = resolve;
    });
    app.addHook('preParsing', async (_request, _reply, payload) => {
      parsing();
      return payload;
    });
    await app.register(warmpool, { command: ['php', fixture('echo.php')], pool: { num_workers: 1 }, ...options });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const socket = connect((app.server.address() as AddressInfo).port, '127.0.0.1');
    let answer = '';
    socket.setEncoding('latin1').on('data', (chunk: string) => {
      answer += chunk;
    });
    const socketClosed = once(socket, 'close');
    socket.write(
      'POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n',
    );
    socket.write(Buffer.alloc(50_000, 'a'));
    await bodyStarted;
    const closed = app.close();
    await closeBegan;
    await new Promise((resolve) => setImmediate(resolve));
    return { app, socket, closed, socketClosed, answer: () => answer };
  }

  it('app.close() lets a request whose body is still uploading finish; the pool drains after it', async () => {
    const { app, socket, closed, socketClosed, answer } = await uploadingWhenCloseStarts();
    const pid = (await app.warmpool.workers())[0]!.pid;
    expect(app.warmpool.pool!.closing).toBe(false); // waiting for the upload
    socket.write(Buffer.alloc(50_000, 'b'));
    await closed;
    await socketClosed;
    expect(answer()).toMatch(/^HTTP\/1\.1 200 /);
    const body = JSON.parse(answer().slice(answer().indexOf('\r\n\r\n') + 4)) as { body: string };
    expect(body.body).toBe('a'.repeat(50_000) + 'b'.repeat(50_000));
    expect(isAlive(pid)).toBe(false);
  });

  it('a request answered before PHP (a 403 of access) does not hold app.close() for destroy_timeout', async () => {
    const app = Fastify();
    await app.register(warmpool, {
      command: ['php', fixture('echo.php')],
      pool: { num_workers: 1 },
      access: [{ prefix: '/private', deny: ['0.0.0.0/0', '::/0'] }],
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    expect((await fetch(`http://127.0.0.1:${port}/private/x`)).status).toBe(403);
    expect((await fetch(`http://127.0.0.1:${port}/public`)).status).toBe(200);
    // destroy_timeout is 60 s, over this test's timeout: close waits for neither request
    await app.close();
  });

  it('app.close() waits at most destroy_timeout for an upload that stalls, then the pool drains', async () => {
    const { app, socket, closed, socketClosed } = await uploadingWhenCloseStarts({
      pool: { num_workers: 1, destroy_timeout: 300 },
    });
    const pid = (await app.warmpool.workers())[0]!.pid;
    await until(() => app.warmpool.pool!.closing, 'the pool to start its drain');
    await until(() => !isAlive(pid), 'the worker to stop');
    socket.destroy(); // the stalled client holds its connection (Node's request_timeout would end it)
    await socketClosed;
    await closed;
  });

  it('app.close() waits for an in-flight PHP request at most destroy_timeout, then its worker is killed', async () => {
    // Fastify waits for its connections before onClose: the pool's drain starts at preClose, or
    // destroy_timeout would bound nothing and one stuck request would hold app.close() for good.
    const app = Fastify();
    await app.register(warmpool, {
      command: ['php', fixture('sleep.php')],
      pool: { num_workers: 1, destroy_timeout: 300 },
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const address = app.server.address() as { port: number };
    const pid = (await app.warmpool.workers())[0]!.pid;
    const inFlight = fetch(`http://127.0.0.1:${address.port}/`, {
      method: 'POST',
      body: '600000', // ten minutes
      headers: { 'content-type': 'text/plain' },
    });
    while (app.warmpool.stats().workers.working === 0) await new Promise((r) => setTimeout(r, 10));
    await app.close();
    const res = await inFlight;
    expect(res.status).toBe(502);
    expect(() => process.kill(pid, 0)).toThrow();
  });

  it('rejects bad options at register time, naming the option', async () => {
    const app = Fastify();
    apps.push(app);
    await expect(app.register(warmpool, { command: 'php x.php', pool: { num_workers: -1 } }).ready()).rejects.toThrow(
      /warmpool option "pool.num_workers"/,
    );
    const other = Fastify();
    apps.push(other);
    await expect(other.register(warmpool, { command: 'php x.php', codec: 'xml' as never }).ready()).rejects.toThrow(
      /warmpool option "codec"/,
    );
  });

  it('fails to register when the worker command does not exist, saying which', async () => {
    const app = Fastify();
    apps.push(app);
    await expect(app.register(warmpool, { command: 'no-such-php worker.php' }).ready()).rejects.toThrow(
      /command not found: "no-such-php"/,
    );
  });
});

describe('plugin: error logging', () => {
  it('logs a failed PHP request once, with the request id, the error code and the worker pid', async () => {
    const lines: Record<string, unknown>[] = [];
    const raw: string[] = [];
    const stream = {
      write: (line: string) => {
        raw.push(line);
        lines.push(JSON.parse(line));
      },
    };
    const app = Fastify({ logger: { level: 'info', stream } });
    apps.push(app);
    await app.register(warmpool, { command: ['php', fixture('crash-mid-request.php')], pool: { num_workers: 1 } });
    const res = await app.inject({
      method: 'POST',
      url: '/',
      payload: 'crash',
      headers: { 'content-type': 'text/plain' },
    });
    expect(res.statusCode).toBe(502);
    const failed = lines.filter((l) => l.msg === 'PHP request failed: WP_WORKER_EXITED');
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ level: 50, reqId: expect.any(String), status: 502, pid: process.pid });
    // which request it was, with the access log off
    expect(failed[0]).toMatchObject({ method: 'POST', url: '/', host: 'localhost:80' });
    // the worker's pid has its own key: pino's base already writes `pid` (this process), and a
    // second `pid` key made JSON readers keep one of the two
    const crashed = lines.find((l) => l.reason === 'crashed');
    expect(crashed).toMatchObject({ pid: process.pid, workerPid: expect.any(Number) });
    expect(failed[0]!.workerPid).toBe(crashed!.workerPid);
    expect(crashed!.workerPid).not.toBe(process.pid);
    for (const line of raw) expect(line.match(/"pid":/g)?.length ?? 0, line).toBeLessThanOrEqual(1);
  });

  it('logs a pool failure with its class and stack (err.type), as Fastify logs its own errors', async () => {
    const { app, lines } = loggedApp();
    await app.register(warmpool, { command: ['php', fixture('crash-mid-request.php')], pool: { num_workers: 1 } });
    const res = await app.inject({
      method: 'POST',
      url: '/',
      payload: 'crash',
      headers: { 'content-type': 'text/plain' },
    });
    expect(res.statusCode).toBe(502);
    const failed = lines.find((l) => l.msg === 'PHP request failed: WP_WORKER_EXITED');
    expect(failed?.err).toMatchObject({
      type: 'WorkerExitedError',
      code: 'WP_WORKER_EXITED',
      message: expect.stringContaining('exited'),
      stack: expect.stringMatching(/^WorkerExitedError: /),
    });
  });

  it('logs what the client did wrong (501 transfer coding, 505 version, 413) as an info line without a stack', async () => {
    const { app, lines } = loggedApp();
    await app.register(warmpool, {
      command: ['php', fixture('echo.php')],
      pool: { num_workers: 1 },
      max_request_size: 1,
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    for (const head of [
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
      'GET / HTTP/2.0\r\nHost: a\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000\r\n\r\n',
    ]) {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.write(head);
      socket.resume();
      await new Promise((resolve) => socket.on('close', resolve));
    }
    const refusals = lines.filter((l) =>
      ['WP_FASTIFY_TRANSFER_ENCODING', 'WP_FASTIFY_HTTP_VERSION', 'WP_FASTIFY_BODY_TOO_LARGE'].includes(String(l.code)),
    );
    // before: 501 and 505 were ERROR lines with the Fastify stack, one per request
    expect(refusals.map((l) => [l.code, l.level, l.statusCode])).toEqual([
      ['WP_FASTIFY_TRANSFER_ENCODING', 30, 501],
      ['WP_FASTIFY_HTTP_VERSION', 30, 505],
      ['WP_FASTIFY_BODY_TOO_LARGE', 30, 413],
    ]);
    for (const line of refusals) expect(line.err).toBeUndefined();
  });

  it('logs refusals under overload (503, queue full) as one warning with their count, not a line each', async () => {
    const { app, lines } = loggedApp();
    await app.register(warmpool, {
      command: ['php', fixture('sleep.php')],
      pool: { num_workers: 1, max_queue_size: 1 },
    });
    const statuses = await Promise.all(
      Array.from({ length: 30 }, () =>
        app
          .inject({ method: 'POST', url: '/', payload: '300', headers: { 'content-type': 'text/plain' } })
          .then((res) => res.statusCode),
      ),
    );
    const refused = statuses.filter((status) => status === 503).length;
    expect(refused).toBeGreaterThanOrEqual(20); // one runs, one waits, most of the rest are refused
    expect(lines.filter((l) => String(l.msg).startsWith('PHP request failed'))).toEqual([]);
    const warnings = lines.filter((l) => String(l.msg).startsWith('overloaded: refused'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ level: 40, refused: { WP_POOL_QUEUE_FULL: 1 } });
    expect(warnings[0]!.err).toMatchObject({ type: 'QueueFullError', code: 'WP_POOL_QUEUE_FULL' });
    expect(String(warnings[0]!.msg)).toMatch(/raise num_workers or max_queue_size if the machine has room$/);
  });

  it('a request that waited allocate_timeout in a queue with room is told to raise num_workers or allocate_timeout', async () => {
    const { app, lines } = loggedApp();
    await app.register(warmpool, {
      command: ['php', fixture('sleep.php')],
      // allocate_timeout bounds the worker's boot too: 300 ms failed that on a busy machine; 2 s
      // still ends the waiting request well before the slow one (3 s) frees the worker
      pool: { num_workers: 1, allocate_timeout: '2s' },
    });
    const slow = app.inject({ method: 'POST', url: '/', payload: '3000', headers: { 'content-type': 'text/plain' } });
    // the one worker is busy with it before the next request comes
    for (let i = 0; app.warmpool.stats().workers.working === 0; i++) {
      if (i > 400) throw new Error('the slow request never reached the worker');
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const waited = await app.inject({
      method: 'POST',
      url: '/',
      payload: '0',
      headers: { 'content-type': 'text/plain' },
    });
    expect(waited.statusCode).toBe(503);
    const warning = lines.find((l) => String(l.msg).startsWith('overloaded: refused'));
    expect(warning).toMatchObject({ refused: { WP_POOL_NO_FREE_WORKER: 1 } });
    // the queue had room: a deeper one cannot help (before: "raise num_workers or max_queue_size")
    expect(String(warning!.msg)).toMatch(/raise num_workers or allocate_timeout if the machine has room$/);
    expect((await slow).statusCode).toBe(200);
  });

  it('logs requests failed while no worker can boot as one error with their count, not a line each', async () => {
    const { app, lines } = loggedApp();
    const gate = join(mkdtempSync(join(tmpdir(), 'wp-gate-')), 'gate');
    await app.register(warmpool, {
      command: ['php', fixture('boot-gate.php')],
      env: { BOOT_GATE: gate },
      pool: { num_workers: 1 },
    });
    writeFileSync(gate, ''); // a broken deploy: the replacement cannot boot
    try {
      const crash = await app.inject({
        method: 'POST',
        url: '/',
        payload: 'crash',
        headers: { 'content-type': 'text/plain' },
      });
      expect(crash.statusCode).toBe(502);
      const statuses: number[] = [];
      for (let i = 0; i < 30; i++) statuses.push((await app.inject({ url: '/' })).statusCode);
      expect(statuses).toEqual(Array(30).fill(502));
      expect(lines.filter((l) => l.msg === 'PHP request failed: WP_POOL_WORKERS_DOWN')).toEqual([]);
      const down = lines.filter((l) => String(l.msg).startsWith('PHP workers are down'));
      expect(down).toHaveLength(1);
      expect(down[0]).toMatchObject({ level: 50, failed: 1, url: '/', method: 'GET' });
      expect(down[0]!.err).toMatchObject({ type: 'WorkersDownError', code: 'WP_POOL_WORKERS_DOWN' });
      expect(String(down[0]!.msg)).toContain('boot refused');
    } finally {
      rmSync(gate, { force: true });
    }
  });
});
