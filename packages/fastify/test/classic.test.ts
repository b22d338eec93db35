// The plugin's classic mode (the fastcgi option) with fastify.inject and real PHP: managed php-cgi
// processes, and fastcgi.pass to a php-fpm the test starts. The front controller of
// test/fixtures/sites/classic-app, its static files, and the files that must never run or be sent.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { FormData, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startPhpFpm, type PhpFpm } from '../../../test/helpers/php-fpm.js';
import { getWithHeaderLines } from '../../../test/helpers/raw-headers.js';
import { type ClassicModeOptions, warmpool, type WarmpoolCommonOptions, type WarmpoolOptions } from '../src/index.js';

const ROOT = fileURLToPath(new URL('../../../test/fixtures/sites/classic-app', import.meta.url));

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function classicApp(
  options: WarmpoolCommonOptions & Partial<ClassicModeOptions> = {},
  fastcgi: object = {},
): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  await app.register(warmpool, {
    fastcgi: { root: ROOT, no_exec: ['wp-content/uploads'], ...fastcgi },
    pool: { num_workers: 1 },
    ...options,
  });
  await app.ready();
  return app;
}

async function registerError(app: FastifyInstance, options: WarmpoolOptions): Promise<unknown> {
  try {
    await app.register(warmpool, options);
    await app.ready();
  } catch (error) {
    return error;
  }
  throw new Error('the options were accepted');
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

function multipart(fields: Record<string, string>, file: { field: string; name: string; data: Buffer }) {
  const boundary = `----warmpool${randomBytes(8).toString('hex')}`;
  const parts: Buffer[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  parts.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${file.field}"; filename="${file.name}"\r\n` +
        'Content-Type: application/octet-stream\r\n\r\n',
    ),
    file.data,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  );
  return { payload: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

describe('classic mode: the site rules meet the script a request runs', () => {
  it('access, auth_basic and limit_req on /index.php hold for "/" and a pretty URL that run it (nginx: index and try_files are internal redirects); a request is rate-counted once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wp-script-rules-'));
    try {
      const users = join(dir, 'htpasswd');
      writeFileSync(users, `alice:${execFileSync('openssl', ['passwd', '-6', 'secret']).toString().trim()}\n`);
      const denied = await classicApp({ access: [{ prefix: '/index.php', deny: ['all'] }] });
      for (const url of ['/', '/blog/hello-world/', '/index.php', '/INDEX.PHP'])
        expect((await denied.inject(url)).statusCode, url).toBe(403);
      expect((await denied.inject('/style.css')).statusCode).toBe(200);
      expect((await denied.inject('/info.php')).statusCode).toBe(200);

      const guarded = await classicApp({ auth_basic: [{ prefix: '/index.php', user_file: users }] });
      expect((await guarded.inject('/')).statusCode).toBe(401);
      const alice = `Basic ${Buffer.from('alice:secret').toString('base64')}`;
      expect((await guarded.inject({ url: '/', headers: { authorization: alice } })).statusCode).toBe(200);

      const limited = await classicApp({ limit_req: [{ prefix: '/index.php', rate: '1r/m', burst: 2 }] });
      const statuses: number[] = [];
      for (const url of ['/', '/blog/hello-world/', '/', '/']) statuses.push((await limited.inject(url)).statusCode);
      // the pretty URL ran /index.php (its own 404 for a post it lacks) and was counted
      expect(statuses).toEqual([200, 404, 200, 429]);

      // a site-wide rule on "/" counts "/" once, and does not switch off /index.php's stricter one
      const both = await classicApp({
        limit_req: [
          { prefix: '/', rate: '1r/m', burst: 3 },
          { prefix: '/index.php', rate: '1r/m', burst: 1 },
        ],
      });
      const counted: number[] = [];
      for (let i = 0; i < 3; i++) counted.push((await both.inject('/')).statusCode);
      expect(counted).toEqual([200, 200, 429]);
      // one rule for both "/" and its script: counted once (burst 3: four requests pass)
      const one = await classicApp({ limit_req: [{ prefix: '/', rate: '1r/m', burst: 3 }] });
      const once: number[] = [];
      for (let i = 0; i < 5; i++) once.push((await one.inject('/')).statusCode);
      expect(once).toEqual([200, 200, 200, 200, 429]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('classic mode (managed php-cgi): which script runs is decided before PHP', () => {
  it('answers a request refused anyway before its body: no 100 Continue, nothing uploaded (as nginx)', async () => {
    const app = await classicApp();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    /** The first response head a POST with Expect: 100-continue and a 5 MB body to come gets, its body unsent. */
    const firstHead = (path: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(port, '127.0.0.1');
        socket.write(
          `POST ${path} HTTP/1.1\r\nHost: a.test\r\nContent-Type: application/octet-stream\r\nContent-Length: 5000000\r\nExpect: 100-continue\r\n\r\n`,
        );
        let text = '';
        socket.setEncoding('latin1').on('data', (chunk: string) => {
          text += chunk;
          if (text.includes('\r\n\r\n')) {
            socket.destroy();
            resolve(text.slice(0, text.indexOf('\r\n')));
          }
        });
        socket.on('error', reject);
      });
    expect(await firstHead('/missing.php')).toBe('HTTP/1.1 404 Not Found');
    expect(await firstHead('/style.css')).toBe('HTTP/1.1 405 Method Not Allowed');
    expect(await firstHead('/config.php.bak')).toBe('HTTP/1.1 403 Forbidden');
    expect(await firstHead('/../etc/passwd')).toMatch(/^HTTP\/1\.1 400 /);
    // a script that runs wants its body: 100 first
    expect(await firstHead('/length.php')).toBe('HTTP/1.1 100 Continue');
    expect(await firstHead('/blog/a-post/')).toBe('HTTP/1.1 100 Continue');
  });

  let app: FastifyInstance;
  beforeAll(async () => {
    app = await classicApp();
    apps.splice(apps.indexOf(app), 1); // shared by the tests of this block
  });
  afterAll(async () => {
    await app.close();
  });

  it('runs the front controller for pretty permalinks (try_files $uri $uri/ /index.php?$args)', async () => {
    const post = await app.inject('/post/hello-world?ref=feed');
    expect(post.statusCode).toBe(200);
    expect(post.headers['x-script']).toBe('/index.php');
    expect(post.body).toContain('<h1>Post: hello-world</h1>');
    // whole responses get a Content-Length (read before the answer, as nginx buffers)
    expect(post.headers['content-length']).toBe(String(post.rawPayload.length));
    const home = await app.inject('/');
    expect([home.statusCode, home.headers['cache-control']]).toEqual([200, 'public, max-age=60']);
  });

  it("PHP's X-Accel-Expires is the server's, never the client's, with no micro-cache to read it (nginx drops it)", async () => {
    const res = await app.inject('/live-scores');
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(/^live \(rendered /);
    expect(res.headers['x-accel-expires']).toBeUndefined();
  });

  it('serves a file written after its path went to the front controller at once (a generated asset)', async () => {
    const name = `generated-${randomBytes(6).toString('hex')}.txt`;
    const file = join(ROOT, name);
    try {
      for (let i = 0; i < 2; i++) {
        // the app's own 404 page; the second time from the remembered verdict
        const before = await app.inject(`/${name}`);
        expect([before.statusCode, before.headers['x-script']]).toEqual([404, '/index.php']);
      }
      writeFileSync(file, 'made by PHP\n');
      const after = await app.inject(`/${name}`);
      expect([after.statusCode, after.headers['x-script'], after.body]).toEqual([200, undefined, 'made by PHP\n']);
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('answers a script that is not there with 404 before PHP, and runs it as soon as it is written', async () => {
    const name = `later-${randomBytes(6).toString('hex')}.php`;
    const file = join(ROOT, name);
    try {
      for (const path of [`/${name}`, `/${name}`, `/${name}/more`, `/wp-content/uploads/${name}`]) {
        // nginx's location ~ \.php$: not the front controller (no X-Script), nothing ran
        const before = await app.inject(path);
        expect([before.statusCode, before.headers['x-script']]).toEqual([404, undefined]);
      }
      writeFileSync(file, '<?php echo "written at ", PHP_SAPI;');
      const after = await app.inject(`/${name}`);
      expect([after.statusCode, after.body]).toEqual([200, 'written at cgi-fcgi']);
    } finally {
      rmSync(file, { force: true });
    }
  });

  it('serves static files from the root through the static layer (ETag, Range, 304); never POSTs to them', async () => {
    const css = await app.inject('/style.css');
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toMatch(/^text\/css/);
    expect(css.body).toBe('body { color: #333; }\n');
    // no static.cache_control: no Cache-Control, as nginx without expires (browsers cache heuristically)
    expect(css.headers['cache-control']).toBeUndefined();
    const etag = css.headers.etag as string;
    expect(etag).toMatch(/^"/);
    const notModified = await app.inject({ url: '/style.css', headers: { 'if-none-match': etag } });
    expect([notModified.statusCode, notModified.headers['cache-control']]).toEqual([304, undefined]);
    const range = await app.inject({ url: '/style.css', headers: { range: 'bytes=0-3' } });
    expect([range.statusCode, range.body]).toEqual([206, 'body']);
    const post = await app.inject({ method: 'POST', url: '/style.css', payload: 'x' });
    expect([post.statusCode, post.headers.allow]).toEqual([405, 'GET, HEAD']);
  });

  it('directories: a slash redirect, then the index file (static or script)', async () => {
    const docs = await app.inject('/docs?x=1');
    expect([docs.statusCode, docs.headers.location]).toEqual([301, '/docs/?x=1']);
    // HEAD: the GET's headers, its Content-Length too
    const head = await app.inject({ method: 'HEAD', url: '/docs?x=1' });
    expect([head.statusCode, head.headers.location, head.headers['content-length']]).toEqual([
      301,
      '/docs/?x=1',
      docs.headers['content-length'],
    ]);
    expect((await app.inject('/docs/')).body).toContain('<h1>Docs</h1>');
    expect((await app.inject('/blog/')).body).toBe('blog index, SCRIPT_NAME=/blog/index.php');
  });

  it('splits PATH_INFO after a script segment only', async () => {
    const info = (await app.inject('/info.php/a/b?x=1')).json();
    expect(info).toMatchObject({
      SCRIPT_NAME: '/info.php',
      SCRIPT_FILENAME: `${ROOT}/info.php`,
      PATH_INFO: '/a/b',
      PATH_TRANSLATED: `${ROOT}/a/b`,
      PHP_SELF: '/info.php/a/b',
      REQUEST_URI: '/info.php/a/b?x=1',
      DOCUMENT_URI: '/info.php/a/b',
      DOCUMENT_ROOT: ROOT,
      QUERY_STRING: 'x=1',
      SAPI: 'cgi-fcgi',
    });
  });

  it('sends one Content-Type when PHP sends two (the last, as nginx), and none of an empty one, for GET and HEAD alike', async () => {
    for (const method of ['GET', 'HEAD'] as const) {
      const two = await app.inject({ method, url: '/content-type.php?m=two' });
      // before: GET became application/octet-stream (a download), HEAD had both lines
      expect([method, two.headers['content-type']]).toEqual([method, 'application/xml']);
      const none = await app.inject({ method, url: '/content-type.php?m=none' });
      // before: HEAD had an empty content-type line
      expect([method, none.headers['content-type']]).toEqual([
        method,
        method === 'GET' ? 'text/html; charset=utf-8' : undefined,
      ]);
    }
    // no type from PHP: the body's, sniffed as RoadRunner does, not a download
    expect((await app.inject('/content-type.php?m=none')).headers['content-type']).toBe('text/html; charset=utf-8');
  });

  it('gives PHP request header bytes that are not UTF-8 as they came (nginx), UTF-8 ones as UTF-8', async () => {
    const app = await classicApp();
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const socket = connect(port, '127.0.0.1');
    socket.write(
      Buffer.from(
        'GET /header-bytes.php?request=1 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\nX-Lat: caf\xe9\r\nX-Mix: a\x80\xffb\r\nX-Utf: caf\xc3\xa9\r\n\r\n',
        'latin1',
      ),
    );
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(socket, 'close');
    const text = Buffer.concat(chunks).toString();
    // before: X-Lat reached PHP as 636166efbfbd (U+FFFD)
    expect(JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4))).toEqual({
      HTTP_X_LAT: '636166e9',
      HTTP_X_MIX: '6180ff62',
      HTTP_X_UTF: '636166c3a9',
    });
  });

  it('gives PHP an empty PATH_INFO without one, as Debian fastcgi-php.conf does (apps read it without isset)', async () => {
    const plain = (await app.inject('/info.php?x=1')).json();
    expect(plain).toMatchObject({
      SCRIPT_NAME: '/info.php',
      PATH_INFO: '',
      PATH_TRANSLATED: null,
      PHP_SELF: '/info.php',
    });
  });

  it("clear_env: false starts php-cgi with the server's whole environment (php-fpm's clear_env = no); env still given by name", async () => {
    process.env.WARMPOOL_TEST_INHERITED = '1';
    try {
      const inheriting = await classicApp({ env: { app_key: 'k' } }, { clear_env: false });
      const names = (await inheriting.inject('/info.php')).json().ENVIRONMENT as string[];
      expect(names).toEqual(expect.arrayContaining(['WARMPOOL_TEST_INHERITED', 'APP_KEY', 'PHP_FCGI_CHILDREN']));
      const cleared = await classicApp({ env: { app_key: 'k' } });
      expect((await cleared.inject('/info.php')).json().ENVIRONMENT).not.toContain('WARMPOOL_TEST_INHERITED');
    } finally {
      delete process.env.WARMPOOL_TEST_INHERITED;
    }
  });

  it.each([
    // source and secrets are never sent, whatever the name
    ['/config.php.bak', 403],
    ['/.env', 403],
    ['/.hidden/tool.php', 403],
    ['/.hidden/tool.php/x', 403],
    // no script runs in a no_exec folder
    ['/wp-content/uploads/shell.php', 403],
    // a path that cannot name a file under the root
    ['/..%2fetc/passwd', 400],
    ['/index.php%00.jpg', 400],
  ])('%s → %i, and nothing of it reaches the client', async (url, status) => {
    const res = await app.inject(url);
    expect(res.statusCode).toBe(status);
    expect(res.body).not.toMatch(/PWNED|hunter2|<\?php/);
  });

  it('cannot run an upload through cgi.fix_pathinfo: /wp-content/uploads/avatar.jpg/x.php', async () => {
    const res = await app.inject('/wp-content/uploads/avatar.jpg/x.php');
    // no script there: 404 before PHP (nginx's location ~ \.php$), the JPEG never runs
    expect(res.statusCode).toBe(404);
    expect(res.headers['x-script']).toBeUndefined();
    expect(res.body).not.toContain('PWNED');
    // the upload itself is a static file: its bytes are sent, never executed
    const jpeg = await app.inject('/wp-content/uploads/avatar.jpg');
    expect([jpeg.statusCode, jpeg.headers['content-type']]).toEqual([200, 'image/jpeg']);
    expect(jpeg.body.startsWith('<?php')).toBe(true);
  });

  it('runs a script without ever sending its source', async () => {
    const config = await app.inject('/config.php');
    expect([config.statusCode, config.body]).toEqual([200, '']);
  });

  it("passes PHP's own 404, redirects and several Set-Cookie lines", async () => {
    const missing = await app.inject('/no/such/page');
    expect([missing.statusCode, missing.body]).toEqual([404, 'Page not found: /no/such/page']);
    const moved = await app.inject('/old-page');
    expect([moved.statusCode, moved.headers.location]).toEqual([301, '/post/hello']);
    const cookies = await app.inject('/cookies');
    expect(cookies.headers['set-cookie']).toEqual([
      'first=one',
      'second=two; path=/; HttpOnly',
      'third=three; SameSite=Lax',
    ]);
  });

  it('gives PHP its forms raw: PHP parses $_POST and $_FILES itself', async () => {
    const data = randomBytes(300_000);
    const { payload, contentType } = multipart({ title: 'holiday' }, { field: 'photo', name: 'beach.bin', data });
    const res = await app.inject({ method: 'POST', url: '/upload', payload, headers: { 'content-type': contentType } });
    expect(res.json()).toEqual({
      post: { title: 'holiday' },
      files: {
        photo: {
          name: 'beach.bin',
          size: data.length,
          error: 0,
          sha256: createHash('sha256').update(data).digest('hex'),
        },
      },
    });
  });

  it('streams a request body to PHP; one over max_request_size gets 413 before PHP runs', async () => {
    const body = randomBytes(3 * 1024 * 1024);
    const res = await app.inject({ method: 'PUT', url: '/echo?x=1', payload: body });
    expect(res.json()).toMatchObject({
      method: 'PUT',
      length: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      content_length: String(body.length),
      get: { x: '1' },
    });
    const small = await classicApp({ max_request_size: 1 });
    const before = small.warmpool.stats().requests;
    const tooLarge = await small.inject({ method: 'POST', url: '/echo', payload: Buffer.alloc(2 * 1024 * 1024) });
    expect(tooLarge.statusCode).toBe(413);
    expect(small.warmpool.stats().requests).toBe(before);
  });

  /** The temp files of spooled request bodies this process holds open in `dir` (unlinked at once: "(deleted)"). */
  function openSpools(dir = tmpdir()): number {
    return readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).startsWith(join(dir, `warmpool-request-${process.pid}-`));
      } catch {
        return false;
      }
    }).length;
  }

  /** A raw HTTP/1.1 client that sends `head`: what the server answered so far, and when it closed. */
  function rawClient(port: number, head: string) {
    const socket = connect(port, '127.0.0.1');
    let answer = '';
    socket.on('data', (chunk: Buffer) => {
      answer += chunk.toString('latin1');
    });
    socket.write(head);
    return { socket, answer: () => answer, closed: once(socket, 'close') };
  }

  it('request_buffering (the default): a client sending its body slowly never holds the php-cgi process', async () => {
    const one = await classicApp();
    await one.listen({ port: 0, host: '127.0.0.1' });
    const { port } = one.server.address() as AddressInfo;
    const slowUpload = (total: number, first: Buffer) => {
      const client = rawClient(
        port,
        `POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${total}\r\nConnection: close\r\n\r\n`,
      );
      client.socket.write(first);
      return client;
    };
    for (const total of [100, 1024 * 1024]) {
      // part of the body sent, the rest held back: the one php-cgi process stays free for others
      const slow = slowUpload(total, Buffer.alloc(total / 2, 7));
      for (let i = 0; i < 3; i++) expect((await one.inject(`/post/meanwhile-${i}`)).statusCode).toBe(200);
      expect(one.warmpool.stats().workers.ready).toBe(1);
      // the rest arrives: PHP gets the whole body at once
      slow.socket.write(Buffer.alloc(total / 2, 7));
      await slow.closed;
      expect(slow.answer()).toMatch(/^HTTP\/1\.1 200 OK/);
      const echoed = JSON.parse(slow.answer().slice(slow.answer().indexOf('\r\n\r\n') + 4)) as {
        length: number;
        sha256: string;
      };
      expect(echoed).toMatchObject({
        length: total,
        sha256: createHash('sha256').update(Buffer.alloc(total, 7)).digest('hex'),
      });
    }
    // the server closes the file just after the client has its answer: wait for it
    await eventually(() => openSpools() === 0, 'the temp file to be closed');
    // a chunked body goes to a temp file too once past 64 KiB (not to memory), and PHP gets its length
    const chunked = rawClient(
      port,
      'POST /echo HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n',
    );
    chunked.socket.write(`${(100_000).toString(16)}\r\n${'c'.repeat(100_000)}\r\n`);
    await eventually(() => openSpools() === 1, 'the chunked body to be spooled to a temp file');
    chunked.socket.write(`${(50_000).toString(16)}\r\n${'c'.repeat(50_000)}\r\n0\r\n\r\n`);
    await chunked.closed;
    expect(chunked.answer()).toMatch(/^HTTP\/1\.1 200 OK/);
    expect(chunked.answer()).toContain('"length":150000');
    expect(chunked.answer()).toContain('"content_length":"150000"');
    // the server closes the file just after the client has its answer: wait for it
    await eventually(() => openSpools() === 0, 'the temp file to be closed');
    // a client that leaves mid-body: PHP never saw it, and its temp file is closed
    const before = one.warmpool.stats().requests;
    const gone = slowUpload(1024 * 1024, Buffer.alloc(200_000, 1));
    await eventually(() => openSpools() === 1, 'the body to be spooled to a temp file');
    gone.socket.destroy();
    await gone.closed;
    await eventually(() => openSpools() === 0, 'the temp file to be closed');
    expect((await one.inject('/info.php')).statusCode).toBe(200);
    expect(one.warmpool.stats().requests).toBe(before + 1);
  });

  it('request_buffering: a whole body waiting for a busy process has its temp file closed when its client leaves', async () => {
    const one = await classicApp();
    await one.listen({ port: 0, host: '127.0.0.1' });
    const { port } = one.server.address() as AddressInfo;
    const flag = join(tmpdir(), `warmpool-spool-gone-${process.pid}`);
    rmSync(flag, { force: true });
    try {
      const held = request(`http://127.0.0.1:${port}/wait.php?flag=${encodeURIComponent(flag)}`);
      await eventually(() => one.warmpool.stats().workers.working === 1, 'wait.php to hold the process');
      const total = 1024 * 1024;
      const gone = rawClient(
        port,
        `POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${total}\r\nConnection: close\r\n\r\n`,
      );
      gone.socket.write(Buffer.alloc(total, 3));
      // a POST is never pipelined behind a running script: it waits in the pool queue
      await eventually(() => one.warmpool.stats().queued === 1, 'the whole body to wait for the process');
      expect(openSpools()).toBe(1);
      gone.socket.destroy();
      await gone.closed;
      // before, only Fastify's hooks closed it, and neither runs for an answer written after the
      // client left: the file stayed open until V8 collected its handle (8 s here; on Node 26 that
      // is an uncaught error), so this wait passed slowly or, on Node 26, crashed the test process
      await eventually(() => openSpools() === 0, 'the temp file to be closed');
      writeFileSync(flag, '');
      expect((await held).statusCode).toBe(200);
    } finally {
      rmSync(flag, { force: true });
    }
  });

  it('HEAD to an event stream is answered with its head at once (before: not until the script ended), and PHP is let go', async () => {
    const flag = join(mkdtempSync(join(tmpdir(), 'wp-head-events-')), 'flag');
    try {
      const one = await classicApp();
      await one.listen({ port: 0, host: '127.0.0.1' });
      const { port } = one.server.address() as AddressInfo;
      // the script waits for the flag: answered only now, the HEAD would wait for it
      const head = await request(`http://127.0.0.1:${port}/events.php?flag=${flag}`, { method: 'HEAD' });
      expect(head.statusCode).toBe(200);
      expect(head.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(await head.body.text()).toBe('');
      writeFileSync(flag, '');
      // the one process serves the next request
      const next = await request(`http://127.0.0.1:${port}/length.php`);
      expect(next.statusCode).toBe(200);
      await next.body.dump();
    } finally {
      rmSync(flag, { force: true });
    }
  });

  it("a php-cgi killed by exec_ttl mid-request leaves none of PHP's upload files behind (before: each stayed in its TMPDIR)", async () => {
    const phpTmp = mkdtempSync(join(tmpdir(), 'wp-php-tmp-'));
    try {
      const one = await classicApp({
        env: { TMPDIR: phpTmp },
        pool: { num_workers: 1, supervisor: { exec_ttl: '1s' } },
      });
      await one.listen({ port: 0, host: '127.0.0.1' });
      const { port } = one.server.address() as AddressInfo;
      const form = new FormData();
      form.append('file', new Blob([Buffer.alloc(300_000, 7)]), 'big.bin');
      // PHP takes the upload into a temp file, then sleeps past exec_ttl and is killed
      const res = await request(`http://127.0.0.1:${port}/slow.php?s=20`, { method: 'POST', body: form });
      expect(res.statusCode).toBe(504);
      await res.body.dump();
      const left = () =>
        readdirSync(phpTmp, { recursive: true }).filter((name) => /php[A-Za-z0-9]{6}$/.test(String(name)));
      // (the new process has a folder of its own there, empty)
      await eventually(() => left().length === 0, "the killed process's upload to go");
      // the next process takes uploads again
      const next = new FormData();
      next.append('file', new Blob(['x']), 'x.txt');
      const ok = await request(`http://127.0.0.1:${port}/length.php`, { method: 'POST', body: next });
      expect(ok.statusCode).toBe(200);
      await ok.body.dump();
    } finally {
      rmSync(phpTmp, { recursive: true, force: true });
    }
  });

  it("one upload_tmp_dir for the pool's processes, kept across recycles (Adminer's login counts and key live there); a killed process's uploads go, a live one's stay", async () => {
    const phpTmp = mkdtempSync(join(tmpdir(), 'wp-php-tmp-'));
    const flags = mkdtempSync(join(tmpdir(), 'wp-flags-'));
    try {
      const app = await classicApp({ env: { TMPDIR: phpTmp }, pool: { num_workers: 2, max_jobs: 3 } });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      const state = async (query: string) => {
        const res = await request(`http://127.0.0.1:${port}/temp-state.php?${query}`);
        return (await res.body.json()) as { pid: number; dir: string; state: string | null; upload: boolean };
      };
      const first = await state('put=banned');
      expect(first.dir.startsWith(phpTmp)).toBe(true);
      // every process, those that replaced the recycled ones too (max_jobs: 3), reads it
      const pids = new Set<number>([first.pid]);
      for (let i = 0; i < 8; i++) {
        const seen = await state('');
        expect(seen).toMatchObject({ dir: first.dir, state: 'banned' });
        pids.add(seen.pid);
      }
      expect(pids.size).toBeGreaterThan(2);

      // two uploads held in two processes; one process is killed: its upload goes, the other's stays
      const upload = (flag: string) => {
        const form = new FormData();
        form.append('file', new Blob([Buffer.alloc(50_000, 7)]), 'held.bin');
        return request(`http://127.0.0.1:${port}/temp-state.php?flag=${join(flags, flag)}`, {
          method: 'POST',
          body: form,
        });
      };
      const uploads = () => readdirSync(first.dir).filter((name) => /^php[A-Za-z0-9]{6}$/.test(name));
      const kept = upload('kept');
      const killed = upload('killed');
      await eventually(() => uploads().length === 2, 'both uploads in the folder');
      const holder = (await app.warmpool.workers()).find(
        (w) => w.request?.includes('flag=') && w.request.includes('killed'),
      );
      expect(holder).toBeDefined();
      process.kill(holder!.pid, 'SIGKILL');
      expect((await killed).statusCode).toBe(502);
      await (await killed).body.dump();
      // the sweep after the kill: the live request's upload is there when PHP reads it
      writeFileSync(join(flags, 'kept'), '');
      const answer = await kept;
      expect(answer.statusCode).toBe(200);
      expect(await answer.body.json()).toMatchObject({ upload: true });
      // the killed one's, written while the other ran, goes once nothing that old runs
      await eventually(() => uploads().length === 0, "the killed process's upload to go");
      await app.close();
      // the pool's folder goes with it
      expect(readdirSync(phpTmp).filter((name) => name.startsWith('warmpool-php-uploads-'))).toEqual([]);
    } finally {
      rmSync(phpTmp, { recursive: true, force: true });
      rmSync(flags, { recursive: true, force: true });
    }
  });

  it('request_buffering spools to uploads.dir when one is set (a tmpfs /tmp is RAM)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wp-spool-dir-'));
    try {
      const one = await classicApp({ uploads: { dir } });
      await one.listen({ port: 0, host: '127.0.0.1' });
      const { port } = one.server.address() as AddressInfo;
      const client = rawClient(
        port,
        'POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n',
      );
      client.socket.write(Buffer.alloc(100_000, 5));
      await eventually(() => openSpools(dir) === 1, 'the body to be spooled in uploads.dir');
      client.socket.write(Buffer.alloc(100_000, 5));
      await client.closed;
      expect(client.answer()).toContain('"length":200000');
      await eventually(() => openSpools(dir) === 0, 'the temp file to be closed');
      // unlinked at once: the folder stayed empty
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('php-fpm down (fastcgi.pass): each request a 502, the log one line with their count, not one each', async () => {
    const lines: string[] = [];
    const app = Fastify({ logger: { stream: { write: (line: string) => lines.push(line) } } });
    apps.push(app);
    // a socket nobody listens on: php-fpm stopped, or restarting
    await app.register(warmpool, {
      fastcgi: { root: ROOT, pass: `unix:${join(tmpdir(), `wp-no-fpm-${process.pid}.sock`)}` },
    });
    await app.ready();
    for (let i = 0; i < 5; i++) expect((await app.inject('/info.php')).statusCode).toBe(502);
    const errors = lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((l) => l.level >= 50);
    // the first of a quiet spell at once; the next ones counted into a line at most every 10 s
    expect(errors.map((l) => l.msg)).toEqual([
      expect.stringMatching(
        /^php-fpm does not answer \(fastcgi\.pass\): failed 1 request\(s\) with 502 since the last such line/,
      ),
    ]);
  });

  it("a body that cannot be spooled (uploads.dir full or gone) is the server's 500, logged, not the client's 400", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wp-spool-gone-'));
    const lines: string[] = [];
    const app = Fastify({ logger: { stream: { write: (line: string) => lines.push(line) } } });
    apps.push(app);
    await app.register(warmpool, { fastcgi: { root: ROOT }, pool: { num_workers: 1 }, uploads: { dir } });
    await app.ready();
    // (ENOSPC, a full disk, comes the same way as this ENOENT: the temp file's open or write fails)
    rmSync(dir, { recursive: true, force: true });
    const res = await app.inject({ method: 'POST', url: '/echo', payload: Buffer.alloc(200_000, 1) });
    expect(res.statusCode).toBe(500);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.body).toMatch(/^Internal Server Error/);
    const logged = lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((l) => l.level >= 50);
    expect(logged.map((l) => l.msg)).toEqual([
      `cannot write a request body to ${dir} (ENOENT): free space there, or point uploads.dir (http.uploads.dir) at a larger disk`,
    ]);
  });

  it('request_buffering: false: a client that leaves in the middle of its upload frees the php-cgi process', async () => {
    const one = await classicApp({}, { request_buffering: false });
    await one.listen({ port: 0, host: '127.0.0.1' });
    const { port } = one.server.address() as AddressInfo;
    const pid = one.warmpool.pool === null ? 0 : (await one.warmpool.workers())[0]!.pid;
    // PHP starts reading the body (it streams), then the client goes away with most of it unsent
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.write('POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048576\r\n\r\n');
    socket.write(Buffer.alloc(100_000, 1));
    await eventually(() => one.warmpool.stats().workers.working === 1, 'PHP to take the request');
    socket.destroy();
    await eventually(() => one.warmpool.stats().workers.ready === 1, 'the process to be free again');
    const next = await one.inject('/info.php');
    expect(next.statusCode).toBe(200);
    expect((await one.warmpool.workers())[0]!.pid).toBe(pid);
  });

  it('request_buffering: false: a client that stops sending its body gets 408 at body_timeout, and the php-cgi process reading it is free again (over HTTP/1.1, twice)', async () => {
    const one = await classicApp({ body_timeout: '300ms' }, { request_buffering: false });
    await one.listen({ port: 0, host: '127.0.0.1' });
    const { port } = one.server.address() as AddressInfo;
    const pid = (await one.warmpool.workers())[0]!.pid;
    for (let round = 0; round < 2; round++) {
      const client = rawClient(port, 'POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048576\r\n\r\n');
      client.socket.write(Buffer.alloc(100_000, 1));
      await eventually(() => client.answer().includes('Request Timeout'), 'the 408');
      expect(client.answer()).toMatch(/^HTTP\/1\.1 408 /);
      // before: the process stayed "working", reading a body that would never come
      await eventually(() => one.warmpool.stats().workers.ready === 1, 'the process to be free again');
      client.socket.destroy();
    }
    expect((await one.inject('/info.php')).statusCode).toBe(200);
    expect((await one.warmpool.workers())[0]!.pid).toBe(pid);
  });

  it('request_buffering: false: a body that stops while its request waits for a busy php-cgi gets its 408, and the server lives on', async () => {
    const flags = mkdtempSync(join(tmpdir(), 'wp-queued-cut-'));
    try {
      const one = await classicApp({ body_timeout: '300ms' }, { request_buffering: false });
      await one.listen({ port: 0, host: '127.0.0.1' });
      const { port } = one.server.address() as AddressInfo;
      const flag = join(flags, 'go');
      // the one process busy until the flag exists
      const busy = one.inject(`/wait.php?flag=${encodeURIComponent(flag)}`);
      await eventually(() => one.warmpool.stats().workers.working === 1, 'the process to be busy');
      // before: the queued request's body, cut with nobody reading it, threw 'error' and the server died
      for (let i = 0; i < 2; i++) {
        const client = rawClient(port, 'POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\n\r\n');
        client.socket.write(Buffer.alloc(1000, 1));
        await eventually(() => client.answer().includes('Request Timeout'), 'the 408');
        client.socket.destroy();
      }
      writeFileSync(flag, '');
      expect((await busy).statusCode).toBe(200);
      await eventually(() => one.warmpool.stats().workers.ready === 1, 'the process to be free again');
      expect((await one.inject('/info.php')).statusCode).toBe(200);
    } finally {
      rmSync(flags, { recursive: true, force: true });
    }
  });

  it('reads a chunked body first to give PHP its CONTENT_LENGTH, bounded by max_request_size', async () => {
    const small = await classicApp({ max_request_size: 1 });
    const chunked = (bytes: number) =>
      small.inject({
        method: 'POST',
        url: '/echo',
        headers: { 'transfer-encoding': 'chunked', 'content-type': 'application/octet-stream' },
        payload: Readable.from([Buffer.alloc(bytes / 2, 1), Buffer.alloc(bytes / 2, 2)]),
      });
    const ok = await chunked(200_000);
    expect(ok.json()).toMatchObject({ length: 200_000, content_length: '200000' });
    const before = small.warmpool.stats().requests;
    expect((await chunked(2 * 1024 * 1024)).statusCode).toBe(413);
    expect(small.warmpool.stats().requests).toBe(before);
  });

  it('a crashing script is a 502 for that request only; a silent one hits exec_ttl (504)', async () => {
    const limited = await classicApp({ pool: { num_workers: 1, supervisor: { exec_ttl: '300ms' } } });
    expect((await limited.inject('/crash.php')).statusCode).toBe(502);
    expect((await limited.inject('/post/after-crash')).statusCode).toBe(200);
    expect((await limited.inject('/slow.php')).statusCode).toBe(504);
    expect((await limited.inject('/post/after-timeout')).statusCode).toBe(200);
    expect(limited.warmpool.stats().recycles).toMatchObject({ crashed: 1, exec_ttl: 1 });
  });
});

describe('classic mode: request headers', () => {
  it('HTTP_* params are the headers as the hooks leave them; repeated lines joined as nginx does', async () => {
    const root = mkdtempSync(join(tmpdir(), 'wp-classic-headers-'));
    try {
      writeFileSync(
        join(root, 'index.php'),
        "<?php echo json_encode(array_filter($_SERVER, fn ($k) => str_starts_with($k, 'HTTP_'), ARRAY_FILTER_USE_KEY));",
      );
      const app = Fastify();
      apps.push(app);
      app.addHook('preHandler', async (request) => {
        request.headers['x-user-id'] = '42';
        request.headers['x-verified'] = 'yes';
        delete request.headers.authorization;
      });
      await app.register(warmpool, { fastcgi: { root }, pool: { num_workers: 1 } });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      const { status, text } = await getWithHeaderLines(port, [
        ['Host', 'site.test'],
        ['Authorization', 'Bearer secret'],
        ['X-User-Id', '1'],
        ['Cookie', 'a=1'],
        ['X-Forwarded-For', '203.0.113.1'],
        ['Cookie', 'b=2'],
        ['X-Forwarded-For', '203.0.113.2'],
      ]);
      expect(status, text).toBe(200);
      const params = JSON.parse(text);
      expect(params.HTTP_AUTHORIZATION).toBeUndefined();
      expect(params).toMatchObject({
        HTTP_HOST: 'site.test',
        HTTP_X_USER_ID: '42',
        HTTP_X_VERIFIED: 'yes',
        HTTP_COOKIE: 'a=1; b=2',
        HTTP_X_FORWARDED_FOR: '203.0.113.1, 203.0.113.2',
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('classic mode: options', () => {
  it.each([
    [{ root: '/no/such/dir' }, 'fastcgi.root', /does not exist/],
    [{ root: ROOT, pass: 'php-fpm.sock' }, 'fastcgi.pass', /neither "unix:\/path" nor "host:port"/],
    [{ root: ROOT, pass: 'unix:/run/php.sock', command: 'php-cgi' }, 'fastcgi.command', /drop one/],
    [{ root: ROOT, max_connections: 4 }, 'fastcgi.max_connections', /fastcgi\.pass/],
    [{ root: ROOT, pass: 'unix:/run/php.sock', clear_env: false }, 'fastcgi.clear_env', /php-fpm's own clear_env/],
    [{ root: ROOT, clear_env: 'no' }, 'fastcgi.clear_env', /true or false/],
    [{ root: ROOT, keepalive_time: '2s' }, 'fastcgi.keepalive_time', /fastcgi\.pass/],
    [{ root: ROOT, pass: 'unix:/run/php.sock', keepalive_time: 'soon' }, 'fastcgi.keepalive_time', /is not a duration/],
    [{ root: ROOT, keepalive_timeout: '60s' }, 'fastcgi.keepalive_timeout', /fastcgi\.pass/],
    [{ root: ROOT, pass: 'unix:/run/php.sock', keepalive_timeout: '-1s' }, 'fastcgi.keepalive_timeout', /duration/],
    [{ root: ROOT, try_files: ['$uri', 'index.php'] }, 'fastcgi.try_files', /fallback/],
    [{ root: ROOT, extensions: ['.php', 'p hp'] }, 'fastcgi.extensions', /extensions/],
    [{ root: ROOT, params: { 'BAD-NAME': 'x' } }, 'fastcgi.params.BAD-NAME', /letters, digits/],
    [{ root: ROOT, params: { script_filename: '/x.php' } }, 'fastcgi.params.script_filename', /fastcgi\.link_targets/],
    [{ root: ROOT, link_targets: ['/no/such/folder'] }, 'fastcgi.link_targets', /does not exist/],
    [
      { root: ROOT, fallbacks: { '/app/': 'index.php' } },
      'fastcgi.fallbacks./app/',
      /each prefix leads to a script path/,
    ],
    [{ root: ROOT, pipelining: 'yes' }, 'fastcgi.pipelining', /true or false/],
    [{ root: ROOT, request_buffering: 1 }, 'fastcgi.request_buffering', /true or false/],
    [{ root: ROOT, colour: 'blue' }, 'fastcgi.colour', /known options/],
  ])('%j → %s', async (fastcgi, key, message) => {
    const app = Fastify();
    apps.push(app);
    const error = await registerError(app, { fastcgi: fastcgi as ClassicModeOptions['fastcgi'] });
    expect(error).toMatchObject({ code: 'WP_FASTIFY_INVALID_OPTION', details: { key } });
    expect((error as Error).message).toMatch(message);
  });

  it('a custom static.forbid adds to the default list: a backup of PHP source is still refused, never sent', async () => {
    const app = await classicApp({ static: { forbid: ['.txt'] } });
    for (const url of ['/config.php.bak', '/.env']) {
      const res = await app.inject(url);
      expect([url, res.statusCode]).toEqual([url, 403]);
      expect(res.body).not.toMatch(/hunter2|<\?php/);
    }
    expect((await app.inject('/robots.txt')).statusCode).toBe(403);
    expect((await app.inject('/style.css')).statusCode).toBe(200);
  });

  it('a worker command and a classic site are two different sites', async () => {
    const app = Fastify();
    apps.push(app);
    // @ts-expect-error the option type refuses both too; a JavaScript caller meets the runtime check
    const error = await registerError(app, { command: 'php worker.php', fastcgi: { root: ROOT } });
    expect(error).toMatchObject({ details: { key: 'command' } });
  });
});

describe('classic mode with fastcgi.pass to php-fpm', () => {
  let fpm: PhpFpm;
  beforeAll(async () => {
    fpm = await startPhpFpm({ maxChildren: 2 });
  });
  afterAll(async () => {
    await fpm?.stop();
  });

  it('an event stream php-fpm leaves silent past exec_ttl is cut, and the log says why (before: nothing)', async () => {
    const lines: string[] = [];
    const app = Fastify({ logger: { stream: { write: (line: string) => lines.push(line) } } });
    apps.push(app);
    await app.register(warmpool, {
      fastcgi: { root: ROOT, pass: fpm.pass },
      pool: { num_workers: 1, supervisor: { exec_ttl: '1s' } },
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    // its flag comes only after the test: the first event, then silence
    const flag = join(fpm.dir, 'silence-over');
    const res = await request(`http://127.0.0.1:${port}/events.php?flag=${flag}`);
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
    await eventually(() => lines.some((line) => line.includes('PHP reply cut after its head')), 'the cut in the log');
    const line = JSON.parse(lines.find((l) => l.includes('PHP reply cut after its head'))!);
    expect(line).toMatchObject({ level: 50, url: expect.stringMatching(/^\/events\.php/) });
    expect(line.msg).toContain('sent nothing for 1000 ms');
    // the script ends: php-fpm's child is free for the next tests
    writeFileSync(flag, '');
  });

  it('serves the same app through php-fpm; health and metrics count the connections to it', async () => {
    const app = await classicApp(
      { pool: { supervisor: { exec_ttl: '500ms' } }, metrics_path: '/metrics', ready_path: '/ready' },
      { pass: fpm.pass, max_connections: 2, params: { APP_ENV: 'staging' } },
    );
    expect(app.warmpool.pool).toBeNull();
    expect(app.warmpool.fastcgi).not.toBeNull();
    const post = await app.inject('/post/through-fpm');
    expect([post.statusCode, post.headers['x-script']]).toEqual([200, '/index.php']);
    const info = (await app.inject({ url: '/info.php/x', headers: { host: 'shop.example' } })).json();
    expect(info).toMatchObject({ SAPI: 'fpm-fcgi', PATH_INFO: '/x', SERVER_NAME: 'shop.example', APP_ENV: 'staging' });
    expect((await app.inject('/info.php')).json()).toMatchObject({
      PATH_INFO: '',
      SCRIPT_NAME: '/info.php',
      PHP_SELF: '/info.php',
    });
    expect((await app.inject('/.env')).statusCode).toBe(403);
    expect((await app.inject('/wp-content/uploads/shell.php')).statusCode).toBe(403);
    // exec_ttl bounds php-fpm's silence too: nginx's fastcgi_read_timeout
    expect((await app.inject('/slow.php')).statusCode).toBe(504);
    expect((await app.inject('/crash.php')).statusCode).toBe(502);
    expect((await app.inject('/ready')).statusCode).toBe(200);
    const metrics = (await app.inject('/metrics')).body;
    expect(metrics).toContain('warmpool_workers_target 2');
    expect(metrics).toMatch(/warmpool_worker_errors_total\{code="WP_FASTCGI_READ_TIMEOUT"\} 1/);
    expect(app.warmpool.stats().numWorkers).toBe(2);
    expect(await app.warmpool.workers()).toEqual([]);
  });

  it("max_connections above php-fpm's children: health and metrics count the children it serves", async () => {
    // the default max_connections (8) against pm.max_children 2, as against Debian's pool file
    const app = await classicApp({ metrics_path: '/metrics' }, { pass: fpm.pass });
    try {
      expect(app.warmpool.stats().numWorkers).toBe(8);
      // rounds of 8 at once until warmpool finds that php-fpm serves no more than its 2 children (1
      // when an earlier test's script still holds one: client-pool.test.ts has the how)
      for (let round = 0; app.warmpool.fastcgi!.stats().capacity > 2; round++) {
        if (round === 300) throw new Error(`capacity still ${app.warmpool.fastcgi!.stats().capacity}`);
        const replies = await Promise.all(Array.from({ length: 8 }, (_, i) => app.inject(`/post/${i}`)));
        for (const reply of replies) expect(reply.statusCode).toBe(200);
      }
      const { capacity } = app.warmpool.fastcgi!.stats();
      expect(app.warmpool.stats().numWorkers).toBe(capacity);
      expect(app.warmpool.stats().workers.ready).toBeLessThanOrEqual(capacity);
      expect((await app.inject('/metrics')).body).toContain(`warmpool_workers_target ${capacity}`);
    } finally {
      await app.close();
    }
  });

  it('keepalive_time: a connection older than it closes when its request ends; 0 keeps it', async () => {
    for (const keepalive of ['1ms', 0]) {
      const app = await classicApp({}, { pass: fpm.pass, max_connections: 1, keepalive_time: keepalive });
      try {
        // slow.php?s=1 sleeps a second: its connection is then older than 1 ms
        expect((await app.inject('/slow.php?s=1')).statusCode).toBe(200);
        expect((await app.inject('/post/after')).statusCode).toBe(200);
        const { opened, recycled } = app.warmpool.fastcgi!.stats();
        // 1ms: the second request needed a new connection (which may be retired in turn)
        if (keepalive === '1ms') expect([opened, recycled >= 1]).toEqual([2, true]);
        else expect([opened, recycled]).toEqual([1, 0]);
      } finally {
        await app.close();
      }
    }
  });

  it('keepalive_timeout: an idle kept connection to php-fpm closes after it (nginx keeps them 60 s)', async () => {
    const app = await classicApp(
      {},
      { pass: fpm.pass, max_connections: 1, keepalive_time: 0, keepalive_timeout: '100ms' },
    );
    try {
      const fastcgi = app.warmpool.fastcgi!;
      expect(fastcgi.stats().idle).toBe(0);
      const closed = new Promise((resolve) => fastcgi.once('connection:close', resolve));
      expect((await app.inject('/post/idle')).statusCode).toBe(200);
      // kept once the request ended, then closed by the idle timeout, not by php-fpm
      await closed;
      expect(fastcgi.stats()).toMatchObject({ connections: 0, opened: 1 });
      expect((await app.inject('/post/again')).statusCode).toBe(200);
      expect(fastcgi.stats().opened).toBe(2);
    } finally {
      await app.close();
    }
  });

  it('more requests than connections and queue: 503 with Retry-After, as for a full pool', async () => {
    const app = await classicApp({ pool: { max_queue_size: 1 } }, { pass: fpm.pass, max_connections: 1 });
    const flag = join(fpm.dir, 'release');
    const busy = app.inject(`/wait.php?flag=${flag}`);
    // first the GET on the connection (sent together, the POST's script lookup could end first,
    // and the GET would then be queued behind it on the connection, with nothing waiting)
    await eventually(() => app.warmpool.stats().workers.working === 1, 'the first request to run');
    // a POST with a body: it waits for the connection (a GET would be queued behind the busy one)
    const queued = app.inject({ method: 'POST', url: `/wait.php?flag=${flag}`, payload: 'x' });
    // the connection is taken, one request waits: the next one is refused at once
    await eventually(() => app.warmpool.stats().queued === 1, 'one request to wait for the connection');
    const refused = await app.inject('/post/x');
    expect([refused.statusCode, refused.headers['retry-after']]).toEqual([503, '1']);
    writeFileSync(flag, '');
    expect((await busy).body).toBe('released');
    expect((await queued).body).toBe('released');
  });

  it('fastcgi.pipelining: a GET goes behind the busy request (managed and pass); false: it waits its turn', async () => {
    let n = 0;
    for (const backend of [{}, { pass: fpm.pass, max_connections: 1 }]) {
      for (const pipelining of [true, false]) {
        const app = await classicApp({}, { ...backend, ...(pipelining ? {} : { pipelining: false }) });
        const flag = (name: string) => join(fpm.dir, `pipelining-${++n}-${name}`);
        // a first request of a second, of another script: the connection's average makes the window
        // at least 2 s for a script it has not timed yet, so the second request below is well
        // inside it however busy the machine is (wait.php itself, timed so, would be known to be slow)
        if (pipelining) expect((await app.inject('/slow.php?s=1')).body).toBe('woke up');
        const release = flag('release');
        const busy = app.inject(`/wait.php?flag=${release}`);
        await eventually(() => app.warmpool.stats().workers.working === 1, 'the first request to run');
        const second = app.inject(`/wait.php?flag=${release}`);
        const { queued, pipelined } = pipelining ? { queued: 0, pipelined: 1 } : { queued: 1, pipelined: 0 };
        await eventually(
          () => app.warmpool.stats().queued === queued && app.warmpool.stats().pipelined === pipelined,
          pipelining ? 'the GET to go behind the busy request' : 'the GET to wait',
        );
        writeFileSync(release, '');
        expect([(await busy).body, (await second).body]).toEqual(['released', 'released']);
        await app.close();
      }
    }
  });

  it('a php-fpm that is not there is a 502, as nginx answers', async () => {
    const app = await classicApp({}, { pass: `unix:${fpm.dir}/no-such.sock` });
    const res = await app.inject('/post/x');
    expect([res.statusCode, res.body]).toEqual([502, 'Bad Gateway\n']);
  });
});
