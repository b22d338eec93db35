// error_pages (nginx's error_page): the answers warmpool gives itself become the operator's pages,
// in worker and classic mode with real PHP; PHP's own error answers pass untouched.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { warmpool, type WarmpoolOptions } from '../src/index.js';
import { ShortBodyError } from '../src/errors.js';
import { registerPlainErrors } from '../src/http/error-pages.js';

const php = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
const CLASSIC_ROOT = fileURLToPath(new URL('../../../test/fixtures/sites/classic-app', import.meta.url));

let dir: string;
let pages: Record<string, string>;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'warmpool-error-pages-'));
  mkdirSync(join(dir, 'pages'));
  pages = {
    '403': join(dir, 'pages', '403.html'),
    '404': join(dir, 'pages', '404.html'),
    '413': join(dir, 'pages', 'too-large.txt'),
    '502': join(dir, 'pages', '50x.html'),
    '504': join(dir, 'pages', '50x.html'),
  };
  writeFileSync(pages['403']!, '<h1>Not for you</h1>\n');
  writeFileSync(pages['404']!, '<h1>Nothing here</h1>\n');
  writeFileSync(pages['413']!, 'Too large: send less.\n');
  writeFileSync(pages['502']!, '<h1>Back in a minute</h1>\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function appWith(options: WarmpoolOptions): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  await app.register(warmpool, { pool: { num_workers: 1 }, ...options });
  await app.ready();
  return app;
}

const post = (app: FastifyInstance, body: string) =>
  app.inject({ method: 'POST', url: '/', payload: body, headers: { 'content-type': 'text/plain' } });

describe('error_pages: worker mode', () => {
  it("a dead worker's 502 and exec_ttl's 504 are the page; the next request is PHP's again", async () => {
    const app = await appWith({ command: ['php', php('crash-mid-request.php')], error_pages: pages });
    const crashed = await post(app, 'crash');
    expect([crashed.statusCode, crashed.headers['content-type'], crashed.body]).toEqual([
      502,
      'text/html; charset=utf-8',
      '<h1>Back in a minute</h1>\n',
    ]);
    expect(crashed.headers['content-length']).toBe(String('<h1>Back in a minute</h1>\n'.length));
    expect((await post(app, 'ok')).statusCode).toBe(200);
    const hung = await appWith({
      command: ['php', php('hang.php')],
      pool: { num_workers: 1, supervisor: { exec_ttl: 200 } },
      error_pages: pages,
    });
    expect([(await post(hung, 'hang')).statusCode, (await post(hung, 'hang')).body]).toEqual([
      504,
      '<h1>Back in a minute</h1>\n',
    ]);
  });

  it("PHP's own 404 and 502 pass as PHP sent them; an access rule's 403 and a body too large are pages", async () => {
    const app = await appWith({
      command: ['php', php('headers.php')],
      error_pages: pages,
      access: [{ prefix: '/admin', deny: ['all'] }],
      max_request_size: 1,
    });
    for (const status of [404, 502]) {
      const own = await app.inject(`/?status=${status}`);
      expect([own.statusCode, own.headers['content-type'], own.body]).toEqual([status, 'text/plain', 'GET:0']);
    }
    const denied = await app.inject('/admin/users');
    expect([denied.statusCode, denied.body]).toEqual([403, '<h1>Not for you</h1>\n']);
    const large = await app.inject({
      method: 'POST',
      url: '/',
      payload: Buffer.alloc(2 * 1024 * 1024, 'x'),
      headers: { 'content-type': 'text/plain' },
    });
    expect([large.statusCode, large.headers['content-type'], large.body]).toEqual([
      413,
      'text/plain; charset=utf-8',
      'Too large: send less.\n',
    ]);
    // HEAD gets the page's head: its type and length, no body
    const head = await app.inject({ method: 'HEAD', url: '/admin' });
    expect([head.statusCode, head.headers['content-length'], head.body]).toEqual([
      403,
      String('<h1>Not for you</h1>\n'.length),
      '',
    ]);
  });
});

describe('error_pages: operations endpoints keep their own answers', () => {
  it('/metrics refused by an access rule stays plain text; the same rule elsewhere is the page', async () => {
    const app = await appWith({
      command: ['php', php('echo.php')],
      error_pages: pages,
      metrics_path: '/metrics',
      ready_path: '/ready',
      access: [
        { prefix: '/metrics', allow: ['127.0.0.1/32'] },
        { prefix: '/admin', allow: ['127.0.0.1/32'] },
      ],
    });
    const metrics = await app.inject({ url: '/metrics', remoteAddress: '192.0.2.1' });
    expect([metrics.statusCode, metrics.body]).toEqual([403, 'Forbidden\n']);
    const admin = await app.inject({ url: '/admin', remoteAddress: '192.0.2.1' });
    expect([admin.statusCode, admin.body]).toEqual([403, '<h1>Not for you</h1>\n']);
    expect((await app.inject('/ready')).json()).toMatchObject({ status: 'ready' });
  });
});

describe('error_pages: classic mode', () => {
  it("a script that is not there is the 404 page; the front controller's own 404 passes", async () => {
    const app = await appWith({ fastcgi: { root: CLASSIC_ROOT }, error_pages: pages });
    const missing = await app.inject('/shell.php');
    expect([missing.statusCode, missing.body]).toEqual([404, '<h1>Nothing here</h1>\n']);
    const own = await app.inject('/no/such/page');
    expect([own.statusCode, own.headers['x-script'], own.body]).toEqual([
      404,
      '/index.php',
      'Page not found: /no/such/page',
    ]);
    const dotfile = await app.inject('/.env');
    expect([dotfile.statusCode, dotfile.body]).toEqual([403, '<h1>Not for you</h1>\n']);
    expect((await app.inject('/crash.php')).body).toBe('<h1>Back in a minute</h1>\n');
  });
});

describe('error_pages: options', () => {
  it.each([
    [{ '200': '/x.html' }, 'error_pages.200', 'is not an error status'],
    [{ oops: '/x.html' }, 'error_pages.oops', 'is not an error status'],
    [{ '502': 'relative/50x.html' }, 'error_pages.502', 'absolute path'],
    [{ '502': '/nonexistent/50x.html' }, 'error_pages.502', 'cannot read'],
    [{ '502': '/tmp' }, 'error_pages.502', 'not a regular file'],
  ])('refuses %j naming %s', async (option, key, reason) => {
    const app = Fastify();
    apps.push(app);
    const error = await app
      .register(warmpool, { command: ['php', php('echo.php')], error_pages: option })
      .ready()
      .then(
        () => null,
        (e: unknown) => e as { code: string; details: { key: string }; message: string },
      );
    expect(error?.code).toBe('WP_FASTIFY_INVALID_OPTION');
    expect(error?.details.key).toBe(key);
    expect(error?.message).toContain(reason);
  });
});

describe('plain errors: a reply that failed before its head went out', () => {
  it('drops the headers of the body it never sent (a short body behind a compressor: no Content-Encoding on the 502)', async () => {
    const app = Fastify();
    apps.push(app);
    registerPlainErrors(app, false);
    app.get('/short', async (_request, reply) => {
      // what a compressor and PHP had set when the body came up short
      reply.header('content-encoding', 'gzip').header('etag', 'W/"1"').header('content-length', '1050');
      throw new ShortBodyError(1000, 1050);
    });
    await app.ready();
    const res = await app.inject('/short');
    // before: a text body under Content-Encoding: gzip, which no client can decode (curl: exit 61)
    expect(res.statusCode).toBe(502);
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.headers.etag).toBeUndefined();
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.headers.connection).toBe('close');
    expect(res.body).toBe('Bad Gateway\n');
  });
});
