// The plugin's features end to end through real PHP: forms and uploads, limits, trusted subnets,
// access rules, health/ready and metrics, static files in front of PHP, and the proto codec.
import { createHash } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { FormData, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { warmpool, type WarmpoolCommonOptions, type WorkerModeOptions } from '../src/index.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
const site = (path: string) => fileURLToPath(new URL(`../../../test/fixtures/sites/${path}`, import.meta.url));

const apps: FastifyInstance[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function appWith(
  name: string,
  options: WarmpoolCommonOptions & Partial<WorkerModeOptions> = {},
): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  await app.register(warmpool, { command: ['php', fixture(name)], pool: { num_workers: 1 }, ...options });
  await app.ready();
  return app;
}

async function listening(
  name: string,
  options: WarmpoolCommonOptions & Partial<WorkerModeOptions> = {},
): Promise<{ app: FastifyInstance; base: string; port: number }> {
  const app = await appWith(name, options);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  return { app, base: `http://127.0.0.1:${port}`, port };
}

function uploadsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-uploads-'));
  dirs.push(dir);
  return dir;
}

describe('forms and uploads reach PHP in RoadRunner shapes', () => {
  it('urlencoded forms arrive parsed as a JSON tree', async () => {
    const app = await appWith('form-uploads.php');
    const res = await app.inject({
      method: 'POST',
      url: '/',
      payload: 'name=Ann&tags[]=a&tags[]=b&addr[city]=Oslo',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.json()).toMatchObject({
      parsed: true,
      fields: { name: 'Ann', tags: ['a', 'b'], addr: { city: 'Oslo' } },
    });
  });

  it('multi-file uploads stream to temp files PHP can read, deleted after the response', async () => {
    const dir = uploadsDir();
    const { base } = await listening('form-uploads.php', { uploads: { dir, forbid: ['.php'] } });
    const a = Buffer.from('first file bytes');
    const b = Buffer.alloc(300_000, 7);
    const form = new FormData();
    form.append('title', 'two files');
    form.append('docs[]', new Blob([a], { type: 'text/plain' }), 'a.txt');
    form.append('docs[]', new Blob([b], { type: 'application/octet-stream' }), 'b.bin');
    form.append('evil', new Blob(['<?php echo 1;']), 'shell.php');
    const res = await request(base, { method: 'POST', body: form });
    const body = (await res.body.json()) as {
      parsed: boolean;
      fields: unknown;
      uploads: { docs: { tmpName: string }[]; evil: unknown };
    };
    expect(body.parsed).toBe(true);
    expect(body.fields).toEqual({ title: 'two files' });
    const [first, second] = body.uploads.docs;
    expect(first).toMatchObject({
      name: 'a.txt',
      size: a.length,
      error: 0,
      onDisk: { size: a.length, mode: '600', sha256: createHash('sha256').update(a).digest('hex') },
    });
    expect(second).toMatchObject({ name: 'b.bin', size: b.length, error: 0, onDisk: { size: b.length } });
    expect(first!.tmpName.startsWith(dir)).toBe(true);
    expect(body.uploads.evil).toMatchObject({ name: 'shell.php', error: 8, size: 0, tmpName: '' });
    for (let i = 0; i < 50 && readdirSync(dir).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(readdirSync(dir)).toEqual([]);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'workers run as another user (server.user) read their uploads: the temp files are theirs',
    async () => {
      // before: root's 0600 files, which the workers' user could not open (RoadRunner's issue 332)
      const dir = uploadsDir();
      chmodSync(dir, 0o1777);
      const { base } = await listening('form-uploads.php', {
        uploads: { dir },
        pool: { num_workers: 1, uid: 65534, gid: 65534 },
      });
      const bytes = Buffer.from('an upload of the workers user');
      const form = new FormData();
      form.append('doc', new Blob([bytes], { type: 'text/plain' }), 'doc.txt');
      const res = await request(base, { method: 'POST', body: form });
      const body = (await res.body.json()) as { uploads: { doc: unknown } };
      expect(body.uploads.doc).toMatchObject({
        name: 'doc.txt',
        error: 0,
        onDisk: { size: bytes.length, mode: '600', sha256: createHash('sha256').update(bytes).digest('hex') },
      });
    },
  );

  it("clear_env: workers get only PATH and the like of the server's environment, plus env (php-fpm's clear_env)", async () => {
    // a secret in warmpool's environment (one site's, through its ${VAR}) reached every site's workers
    const before = process.env.APP_NAME;
    process.env.APP_NAME = 'the-servers-secret';
    try {
      const seen = async (options: WarmpoolCommonOptions) =>
        ((await (await appWith('echo.php', options)).inject('/')).json() as { env: Record<string, unknown> }).env;
      expect((await seen({})).APP_NAME).toBe('the-servers-secret'); // RoadRunner's way, the default
      expect((await seen({ clear_env: true })).APP_NAME).toBe(false);
      const given = await seen({ clear_env: true, env: { APP_NAME: 'given' } });
      expect([given.APP_NAME, given.RR_RELAY]).toEqual(['given', 'pipes']);
    } finally {
      if (before === undefined) delete process.env.APP_NAME;
      else process.env.APP_NAME = before;
    }
  });

  it('raw_body passes forms to PHP unparsed', async () => {
    const app = await appWith('form-uploads.php', { raw_body: true });
    const res = await app.inject({
      method: 'POST',
      url: '/',
      payload: 'a=1&b=2',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.json()).toMatchObject({ parsed: false, rawBody: 'a=1&b=2' });
  });

  it('a leaf/branch conflict in a form is a 400 before PHP runs', async () => {
    const app = await appWith('echo.php');
    const res = await app.inject({
      method: 'POST',
      url: '/',
      payload: 'a=1&a[b]=2',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(res.statusCode).toBe(400);
    expect((await app.inject('/')).json().count).toBe(1);
  });
});

describe('max_request_size', () => {
  it('answers 413 before the body reaches PHP, for Content-Length and chunked bodies, and leaves no temp file', async () => {
    const dir = uploadsDir();
    const { app, base } = await listening('echo.php', { max_request_size: 1, uploads: { dir } });
    const big = Buffer.alloc(2 * 1024 * 1024, 1);
    // The server answers 413 and closes; a client still sending may see the reset instead.
    const statusOf = (body: Parameters<typeof request>[1]) =>
      request(base, { method: 'POST', ...body }).then(
        (res) => res.statusCode,
        () => 'reset',
      );
    expect([413, 'reset']).toContain(
      await statusOf({ body: big, headers: { 'content-type': 'application/octet-stream' } }),
    );
    const chunked = Readable.from(
      (function* () {
        for (let i = 0; i < 32; i++) yield Buffer.alloc(64 * 1024, 2);
      })(),
    );
    expect([413, 'reset']).toContain(
      await statusOf({ body: chunked, headers: { 'content-type': 'application/octet-stream' } }),
    );
    const form = new FormData();
    form.append('f', new Blob([big]), 'big.bin');
    expect([413, 'reset']).toContain(await statusOf({ body: form }));
    // PHP saw none of them: its first request is this one.
    expect((await app.inject('/')).json().count).toBe(1);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a huge Content-Length gets 413 without the body being sent, and the connection is closed', async () => {
    const { port } = await listening('echo.php', { max_request_size: 1 });
    const reply = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let data = '';
      socket.on('data', (c) => (data += c));
      socket.on('close', () => resolve(data));
      socket.write(
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 999999999\r\n\r\n',
      );
    });
    expect(reply).toMatch(/^HTTP\/1\.1 413/);
    expect(reply.toLowerCase()).toContain('connection: close');
  });

  it('the 413 is plain text as the other answers of the plugin, and an app with its own error handler still gets the error', async () => {
    const app = await appWith('echo.php', { max_request_size: 0.001 });
    const post = (target: FastifyInstance, chunked: boolean) =>
      target.inject({
        method: 'POST',
        url: '/',
        // without a Content-Length the parser finds it too large, with one the early check does
        payload: chunked ? Readable.from([Buffer.alloc(800), Buffer.alloc(800)]) : Buffer.alloc(2000),
        headers: { 'content-type': 'application/octet-stream' },
      });
    for (const chunked of [false, true]) {
      const res = await post(app, chunked);
      expect([res.statusCode, res.headers['content-type'], res.body]).toEqual([
        413,
        'text/plain; charset=utf-8',
        'Payload Too Large\n',
      ]);
    }
    const own = Fastify();
    apps.push(own);
    own.setErrorHandler((error: Error & { code?: string; statusCode?: number }, _request, reply) => {
      void reply.code(error.statusCode ?? 500).send({ mine: error.code });
    });
    await own.register(warmpool, {
      command: ['php', fixture('echo.php')],
      pool: { num_workers: 1 },
      max_request_size: 0.001,
    });
    for (const chunked of [false, true]) {
      const res = await post(own, chunked);
      expect([res.statusCode, res.json()]).toEqual([413, { mine: 'WP_FASTIFY_BODY_TOO_LARGE' }]);
    }
  });
});

describe('malformed bodies', () => {
  it('a malformed chunked body gets 400 and closes, PHP never sees it, and other clients are served', async () => {
    const { port, base } = await listening('echo.php');
    const reply = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let data = '';
      socket.on('data', (c) => (data += c));
      socket.on('close', () => resolve(data));
      socket.write(
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nnot hex\r\n0\r\n\r\n',
      );
    });
    expect(reply).toMatch(/^HTTP\/1\.1 400/);
    const ok = await request(base);
    expect(ok.statusCode).toBe(200);
    expect(((await ok.body.json()) as { count: number }).count).toBe(1);
  });
});

describe('trusted_subnets decide the client address PHP sees', () => {
  const remoteOf = async (app: FastifyInstance, remoteAddress: string, headers: Record<string, string>) =>
    (await app.inject({ url: '/', remoteAddress, headers })).json().context as { remoteAddr: string; uri: string };

  it('honours the configured forwarded header only from trusted peers, taking the right-most untrusted hop', async () => {
    const app = await appWith('echo.php', { trusted_subnets: ['10.0.0.0/8', '::1/128'] });
    expect((await remoteOf(app, '10.1.2.3', { 'x-forwarded-for': '6.6.6.6, 203.0.113.9, 10.0.0.7' })).remoteAddr).toBe(
      '203.0.113.9',
    );
    // X-Forwarded-For is the configured header (the default): X-Real-IP and Forwarded are not read
    expect((await remoteOf(app, '::ffff:10.1.2.3', { 'x-real-ip': '198.51.100.4' })).remoteAddr).toBe('10.1.2.3');
    expect(
      await remoteOf(app, '::1', { forwarded: 'for="[2001:db8::1]:4711";proto=https;host=shop.test' }),
    ).toMatchObject({ remoteAddr: '::1', uri: 'http://localhost:80/' });
    // an untrusted peer cannot spoof
    expect(
      await remoteOf(app, '192.0.2.1', { 'x-forwarded-for': '1.1.1.1', 'x-forwarded-proto': 'https' }),
    ).toMatchObject({
      remoteAddr: '192.0.2.1',
      uri: 'http://localhost:80/',
    });
  });

  it('real_ip_header: Forwarded gives the client, scheme and host; X-Real-IP the address only', async () => {
    const forwarded = await appWith('echo.php', { trusted_subnets: ['::1/128'], real_ip_header: 'Forwarded' });
    expect(
      await remoteOf(forwarded, '::1', {
        forwarded: 'for="[2001:db8::1]:4711";proto=https;host=shop.test',
        'x-forwarded-for': '6.6.6.6',
      }),
    ).toMatchObject({ remoteAddr: '2001:db8::1', uri: 'https://shop.test/' });
    const realIp = await appWith('echo.php', { trusted_subnets: ['10.0.0.0/8'], real_ip_header: 'X-Real-IP' });
    expect(
      await remoteOf(realIp, '10.1.2.3', { 'x-real-ip': '198.51.100.4', 'x-forwarded-proto': 'https' }),
    ).toMatchObject({ remoteAddr: '198.51.100.4', uri: 'http://localhost:80/' });
    await expect(appWith('echo.php', { real_ip_header: 'X-Forwarded-Host' })).rejects.toThrow(/"real_ip_header"/);
  });

  it('ignores forwarded headers when no subnet is trusted', async () => {
    const app = await appWith('echo.php');
    expect((await remoteOf(app, '10.1.2.3', { 'x-forwarded-for': '203.0.113.9' })).remoteAddr).toBe('10.1.2.3');
  });
});

describe('operations endpoints and access rules', () => {
  it('/health, /ready and /metrics work, /metrics is restricted by access, and /ready turns 503 while draining', async () => {
    const app = await appWith('echo.php', {
      health_path: '/health',
      ready_path: '/ready',
      metrics_path: '/metrics',
      access: [{ prefix: '/metrics', allow: ['127.0.0.1/32'] }],
    });
    expect((await app.inject('/health')).statusCode).toBe(200);
    expect((await app.inject('/ready')).json()).toMatchObject({ status: 'ready' });
    await app.inject('/page');
    await app.inject('/page');
    const metrics = await app.inject({ url: '/metrics', remoteAddress: '127.0.0.1' });
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toMatch(/warmpool_requests_total\{status="200"\} 2/);
    expect(metrics.body).toMatch(/warmpool_workers\{state="ready"\} 1/);
    expect((await app.inject({ url: '/metrics', remoteAddress: '192.0.2.1' })).statusCode).toBe(403);
    // answers the early hooks give are counted too: that 403, and a 413 from Content-Length
    const tooLarge = await app.inject({
      method: 'POST',
      url: '/page',
      headers: { 'content-type': 'text/plain', 'content-length': String(200 * 1024 * 1024) },
      payload: 'x',
    });
    expect(tooLarge.statusCode).toBe(413);
    const after = (await app.inject({ url: '/metrics', remoteAddress: '127.0.0.1' })).body;
    expect(after).toMatch(/warmpool_requests_total\{status="403"\} 1/);
    expect(after).toMatch(/warmpool_requests_total\{status="413"\} 1/);
    // drain: preClose marks draining before the pool closes
    const closing = app.close();
    apps.splice(apps.indexOf(app), 1);
    await closing;
  });
});

describe('static files in front of PHP', () => {
  it('serves existing files, never PHP source or dotfiles, and sends the rest to PHP', async () => {
    const app = await appWith('echo.php', { static: { root: site('static-basic/public') } });
    const css = await app.inject('/style.css');
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toMatch(/text\/css/);
    for (const path of ['/secret.php', '/.env', '/nothing-here', '/%2e%2e/outside/marker.txt']) {
      const res = await app.inject(path);
      expect(res.body).not.toContain('<?php');
      expect(res.body).not.toContain('TOP-SECRET');
      if (res.statusCode === 200) expect(res.json().pid).toBeGreaterThan(0); // answered by PHP
    }
  });

  it('a custom forbid list adds to the default one: PHP source and backups still go to PHP, never as bytes', async () => {
    const app = await appWith('echo.php', { static: { dir: site('static-basic/public'), forbid: ['.svg'] } });
    for (const path of [
      '/img.svg',
      '/secret.php',
      '/backup.php.bak',
      '/config.inc',
      '/lib.php5',
      '/debug.log',
      '/.env',
    ]) {
      const res = await app.inject(path);
      expect(res.body, path).not.toMatch(/<\?php|LEAKED-/);
      // answered by PHP: the echo worker names the path it got
      expect([path, res.statusCode, new URL(res.json().context.uri).pathname]).toEqual([path, 200, path]);
    }
    expect((await app.inject('/style.css')).headers['content-type']).toMatch(/text\/css/);
  });

  it('allow and forbidden: 404 refuse existing files only: routes that name no file reach the PHP worker', async () => {
    const app = await appWith('echo.php', {
      static: { dir: site('static-basic/public'), allow: ['.css', '.js', '.png'], forbidden: 404 },
    });
    for (const path of [
      '/products',
      '/blog/hello-world',
      '/index.php?route=home',
      '/wp-login.php',
      '/debug/today.log',
    ]) {
      const res = await app.inject(path);
      expect([path, res.statusCode]).toEqual([path, 200]);
      const uri = new URL(res.json().context.uri);
      expect(uri.pathname + uri.search).toBe(path); // answered by PHP
    }
    for (const path of ['/secret.php', '/backup.php.bak', '/img.svg', '/.env']) {
      const res = await app.inject(path);
      expect([path, res.statusCode, res.body]).toEqual([path, 404, 'Not Found\n']);
    }
    expect((await app.inject('/style.css')).statusCode).toBe(200);
  });
});

describe('codec: proto', () => {
  it('sends protobuf contexts to an SDK worker and decodes its proto replies', async () => {
    const app = await appWith('sdk-http-echo.php', { codec: 'proto' });
    const res = await app.inject({ url: '/x?a=1', headers: { 'x-test': 'yes' } });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(JSON.stringify(body)).toContain('proto');
    expect(JSON.stringify(body)).toContain('yes');
    expect(res.headers['set-cookie']).toHaveLength(2);
  });
});

describe('pool sizing through the plugin', () => {
  it("num_workers: 'auto' warms the probe worker with GET / and sizes the pool", async () => {
    const app = await appWith('echo.php', { pool: { num_workers: 'auto' } });
    const stats = app.warmpool.stats();
    expect(stats.numWorkers).toBe(app.warmpool.pool!.sizing!.numWorkers);
    expect(stats.workers.ready).toBe(stats.numWorkers);
    // the warm-up request reached PHP as a GET /
    const jobs = (await app.warmpool.workers()).map((w) => w.jobs);
    expect(jobs).toContain(1);
  });
});
