// A small classic app (a front controller with pretty permalinks) through `warmpool serve` over real
// sockets, both ways classic PHP runs (php-cgi managed by warmpool, fastcgi.pass to a php-fpm):
// permalinks, uploads, redirects, sessions and cookies, a 404 from PHP, exec_ttl, a crash, request
// bodies (streamed, chunked, too large), and the attempts to run or read what must not be: no_exec,
// PATH_INFO tricks, source and dotfile leaks, links out of the root, the hostile-path corpus.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { FormData, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../helpers/browser.js';
import { startClassicServer, type ClassicMode, type ClassicServer } from '../helpers/classic-server.js';
import { rawGet, sendCorpus } from '../helpers/hostile-paths.js';
import { until } from '../helpers/until.js';
import { stopAllServers } from '../helpers/warmpool-server.js';

/** Never in a body: PHP source, a secret, a script that must not run, /etc/passwd. */
const NEVER = ['<?php', 'hunter2', 'PWNED', 'root:x:0:0'];

afterAll(async () => {
  await stopAllServers();
});

/** One request written as is (chunked bodies, bytes a client would normalise); read until close. */
function rawExchange(port: number, text: string): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const all = Buffer.concat(chunks).toString('latin1');
      const split = all.indexOf('\r\n\r\n');
      resolve({ status: Number(all.slice(9, 12)), head: all.slice(0, split), body: all.slice(split + 4) });
    });
  });
}

describe.each<ClassicMode>(['managed', 'pass'])('classic front controller (%s)', (mode) => {
  let classic: ClassicServer;
  let app: Browser;
  beforeAll(async () => {
    classic = await startClassicServer(mode);
    app = new Browser(classic.origin, 'app.test');
  }, 60_000);
  afterAll(async () => {
    await classic?.close();
  });

  it('answers pretty permalinks from the front controller, whole (Content-Length)', async () => {
    const post = await app.get('/post/hello-world?utm=x');
    expect(post.status).toBe(200);
    expect(post.headers['x-script']).toBe('/index.php');
    expect(post.text).toContain('<h1>Post: hello-world</h1>');
    expect(post.headers['content-length']).toBe(String(post.body.length));
    // PHP sends no body for HEAD: no Content-Length: 0 misstating the GET's length (nginx sends none)
    const head = await rawExchange(
      classic.port,
      'HEAD /post/hello-world HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n',
    );
    expect(head.status).toBe(200);
    expect(head.head).toMatch(/^content-type: text\/html/im);
    expect(head.head).not.toMatch(/^content-length:/im);
    expect(head.body).toBe('');
    // a client's Basic user name is PHP's to check (PHP_AUTH_USER), never REMOTE_USER: nobody signed in
    const basic = `Basic ${Buffer.from('admin:guess').toString('base64')}`;
    const info = JSON.parse((await app.get('/info.php/a/b?x=1', { authorization: basic })).text);
    expect(info).toMatchObject({
      REMOTE_USER: '',
      PHP_AUTH_USER: 'admin',
      SCRIPT_NAME: '/info.php',
      PATH_INFO: '/a/b',
      PATH_TRANSLATED: `${classic.app}/a/b`,
      REQUEST_URI: '/info.php/a/b?x=1',
      SERVER_NAME: 'app.test',
      SERVER_PORT: String(classic.port),
      REMOTE_ADDR: '127.0.0.1',
      APP_ENV: 'e2e',
      SAPI: classic.sapi,
    });
    // managed: php-cgi starts with the server's environment cleared by default (fastcgi.clear_env);
    // the server itself runs with NO_COLOR=1 and the test runner's whole environment
    if (mode === 'managed') {
      expect(info.ENVIRONMENT).toEqual(
        ['PATH', 'PHP_FCGI_CHILDREN', 'PHP_FCGI_MAX_REQUESTS', 'WARMPOOL']
          .concat(['TMPDIR', 'PHPRC', 'PHP_INI_SCAN_DIR'].filter((name) => process.env[name] !== undefined))
          .sort(),
      );
    }
  });

  it('lets PHP parse uploads itself', async () => {
    const data = randomBytes(1024 * 1024 + 7);
    const form = new FormData();
    form.append('title', 'holiday');
    form.append('photo', new Blob([data]), 'beach.bin');
    const res = await request(`${classic.origin}/upload`, {
      method: 'POST',
      body: form,
      headers: { host: 'app.test' },
    });
    expect(await res.body.json()).toEqual({
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

  it('redirects, logs in with a PHP session, sets several cookies, answers its own 404', async () => {
    const moved = await app.get('/old-page');
    expect([moved.status, moved.headers.location]).toEqual([301, '/post/hello']);
    const login = await app.post('/login', { user: 'alice' });
    expect([login.status, login.headers.location]).toEqual([302, '/dashboard']);
    expect(app.cookie('PHPSESSID')).toMatch(/^[a-z0-9]{20,}$/);
    expect((await app.get('/dashboard')).text).toMatch(/^Hello, alice/);
    expect((await new Browser(classic.origin, 'app.test').get('/dashboard')).headers.location).toBe('/login');
    const cookies = await app.get('/cookies');
    expect(cookies.headers['set-cookie']).toEqual([
      'first=one',
      'second=two; path=/; HttpOnly',
      'third=three; SameSite=Lax',
    ]);
    const missing = await app.get('/no/such/page');
    expect([missing.status, missing.text]).toEqual([404, 'Page not found: /no/such/page']);
    // a script that is not there: 404 before PHP (nginx's location ~ \.php$), the app never booted
    for (const probe of ['/wp-login.php', '/shell.php/x', '/wp-content/uploads/x.php']) {
      const res = await app.get(probe);
      expect([probe, res.status, res.headers['x-script']]).toEqual([probe, 404, undefined]);
    }
  });

  it('a script silent past exec_ttl gets 504; a crashing one 502; the site goes on', async () => {
    expect((await app.get('/slow.php?s=4')).status).toBe(504);
    expect((await app.get('/crash.php')).status).toBe(502);
    for (let i = 0; i < 4; i++) expect((await app.get(`/post/after-${i}`)).status).toBe(200);
  });

  it('passes header values byte for byte, latin1 as UTF-8, as nginx does', async () => {
    const answer = await rawExchange(
      classic.port,
      'GET /header-bytes.php HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n',
    );
    expect([answer.status, answer.body]).toEqual([200, 'bytes']);
    // the head read as latin1: one char per byte on the wire
    const lines = answer.head.split('\r\n').map((line) => line.replace(/^[^:]+/, (name) => name.toLowerCase()));
    expect(lines).toContain('x-latin1: caf\xe9');
    expect(lines).toContain('content-disposition: attachment; filename="r\xe9sum\xe9.pdf"');
    expect(lines).toContain(`x-utf8: ${Buffer.from('café €', 'utf8').toString('latin1')}`);
  });

  it('a header block over 64 KiB is 502, and the log says what to do about it', async () => {
    expect((await app.get('/header-bytes.php?big=1')).status).toBe(502);
    await classic.server.waitFor(/header block is over 65536 bytes[^\n]*send fewer or smaller headers/);
    // no key of that name: the limit is not the operator's to raise
    expect(classic.server.stdout + classic.server.stderr).not.toContain('max_header_bytes');
  });

  it.runIf(mode === 'pass')(
    "wp-cron.php's jobs after fastcgi_finish_request() hold no visitor's request behind them",
    async () => {
      const flagFile = () => join(classic.dir, `cron-${randomBytes(4).toString('hex')}`);
      // The first runs teach warmpool: the page after the cron on its kept connection waits for
      // the cron's jobs (as behind nginx with fastcgi_keep_conn on). A connection past
      // keepalive_time is closed instead, and then nothing waits: the next round teaches.
      // the page's script timed first: its wait behind the cron is told from its own usual run
      expect((await app.get('/post/before-cron')).status).toBe(200);
      let taught = false;
      for (let round = 0; round < 3 && !taught; round++) {
        const flag = flagFile();
        expect((await app.get(`/wp-cron.php?doing_wp_cron=1&flag=${flag}`)).text).toBe('cron ran');
        const started = performance.now();
        const page = app.get('/post/while-cron-runs');
        await new Promise((resolve) => setTimeout(resolve, 600));
        writeFileSync(flag, '');
        expect((await page).status).toBe(200);
        taught = performance.now() - started >= 600;
      }
      expect(taught).toBe(true);
      // From now on the cron's connection is let go at its end: pages go to a free php-fpm child at once
      const [flag, done] = [flagFile(), flagFile()];
      expect((await app.get(`/wp-cron.php?doing_wp_cron=1&flag=${flag}&done=${done}`)).text).toBe('cron ran');
      for (let i = 0; i < 4; i++) {
        let timer: NodeJS.Timeout | undefined;
        const page = await Promise.race([
          app.get(`/post/during-cron-${i}`),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('a page waited for the cron behind it')), 10_000);
          }),
        ]).finally(() => clearTimeout(timer));
        expect(page.status).toBe(200);
      }
      expect(existsSync(done)).toBe(false); // the cron's jobs still run
      writeFileSync(flag, '');
      await until(() => existsSync(done), "the cron's jobs to end");
    },
  );

  it('server-sent events (text/event-stream) go out as PHP flushes them, not at the end of the script', async () => {
    const flag = join(classic.dir, `events-${randomBytes(4).toString('hex')}`);
    const res = await request(`${classic.origin}/events.php?flag=${flag}`, { headers: { host: 'app.test' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(res.headers['content-length']).toBeUndefined();
    const chunks = res.body[Symbol.asyncIterator]();
    // the first event arrives while the script still waits for the flag
    expect(String((await chunks.next()).value)).toBe('data: first\n\n');
    writeFileSync(flag, '');
    let rest = '';
    for (let next = await chunks.next(); !next.done; next = await chunks.next()) rest += String(next.value);
    expect(rest).toBe('data: second\n\n');
  });

  it('a client that leaves a streaming script stops it at its next output (connection_aborted), as behind nginx', async () => {
    const log = join(classic.dir, `ticks-${randomBytes(4).toString('hex')}`);
    const socket = connect(classic.port, '127.0.0.1');
    socket.write(`GET /ticks.php?log=${log} HTTP/1.1\r\nHost: app.test\r\n\r\n`);
    // the head and a first tick: PHP runs the loop; then the client leaves
    await new Promise<void>((resolve) => {
      let seen = '';
      socket.on('data', (chunk: Buffer) => {
        seen += chunk.toString('latin1');
        if (seen.includes('tick')) resolve();
      });
    });
    socket.destroy();
    await until(() => existsSync(log), 'the script to stop');
    expect(readFileSync(log, 'utf8')).toMatch(/^aborted 1 ticks \d+$/);
    expect(Number(readFileSync(log, 'utf8').split(' ').pop())).toBeLessThan(2000);
    expect((await app.get('/post/after-ticks')).status).toBe(200);
  });

  it("PHP's own reason phrase goes out on the HTTP/1.1 status line, as nginx passes it; a code with none gets the standard one", async () => {
    for (const [status, line] of [
      ['200 Fine Thanks', 'HTTP/1.1 200 Fine Thanks'],
      ['404 Gone Fishing', 'HTTP/1.1 404 Gone Fishing'],
      ['503', 'HTTP/1.1 503 Service Unavailable'],
    ]) {
      const { head } = await rawExchange(
        classic.port,
        `GET /status.php?s=${encodeURIComponent(status!)} HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n`,
      );
      expect(head.split('\r\n')[0]).toBe(line);
    }
  });

  it('a Status: 1xx from PHP gets 502, and the request pipelined behind it its own answer', async () => {
    for (const status of ['100 Continue', '101 Switching Protocols', '103']) {
      const target = `/status.php?s=${encodeURIComponent(status)}`;
      const { head, body } = await rawExchange(
        classic.port,
        `GET ${target} HTTP/1.1\r\nHost: app.test\r\n\r\nGET /post/behind HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n`,
      );
      const statusLines = `${head}\r\n\r\n${body}`.match(/^HTTP\/1\.1 \d{3}/gm);
      expect(statusLines, status).toEqual(['HTTP/1.1 502', 'HTTP/1.1 200']);
      expect(body).toContain('behind');
      expect(body).not.toContain('after the status');
    }
  });

  it('streams a request body to PHP; buffers a chunked one to give PHP its length; refuses one too large', async () => {
    const body = randomBytes(5 * 1024 * 1024);
    const res = await request(`${classic.origin}/echo`, { method: 'PUT', body, headers: { host: 'app.test' } });
    expect(await res.body.json()).toMatchObject({
      length: body.length,
      sha256: createHash('sha256').update(body).digest('hex'),
      content_length: String(body.length),
    });
    const chunked = await rawExchange(
      classic.port,
      'POST /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
        '5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n',
    );
    expect(chunked.status).toBe(200);
    expect(JSON.parse(chunked.body.replace(/^[0-9a-f]+\r\n|\r\n0\r\n\r\n$/g, ''))).toMatchObject({
      length: 12,
      content_length: '12',
      sha256: createHash('sha256').update('hello, world').digest('hex'),
    });
    // max_request_size 8 (MB): 413 from the Content-Length, before PHP and before the body
    const tooLarge = await rawExchange(
      classic.port,
      `POST /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: ${9 * 1024 * 1024}\r\nConnection: close\r\n\r\n`,
    );
    expect(tooLarge.status).toBe(413);
  });

  it('WebDAV and other extension methods reach PHP with their bodies; a static file answers them 405', async () => {
    const body = '<?xml version="1.0"?><propfind xmlns="DAV:"><allprop/></propfind>';
    for (const method of [
      'PROPFIND',
      'PROPPATCH',
      'MKCOL',
      'MOVE',
      'COPY',
      'LOCK',
      'UNLOCK',
      'REPORT',
      'SEARCH',
      'PURGE',
    ]) {
      const res = await request(`${classic.origin}/echo`, {
        method,
        body,
        headers: { host: 'app.test', 'content-type': 'application/xml' },
      });
      expect([method, res.statusCode]).toEqual([method, 200]);
      expect(await res.body.json()).toMatchObject({ method, length: body.length, content_length: String(body.length) });
    }
    // Nextcloud's remote.php/dav/files/...: the script with its PATH_INFO
    const dav = await request(`${classic.origin}/info.php/dav/files/x`, {
      method: 'PROPFIND',
      headers: { host: 'app.test' },
    });
    expect(await dav.body.json()).toMatchObject({
      REQUEST_METHOD: 'PROPFIND',
      SCRIPT_NAME: '/info.php',
      PATH_INFO: '/dav/files/x',
    });
    // QUERY without a Content-Type is PHP's to judge, as any request
    const query = await rawExchange(
      classic.port,
      'QUERY /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nq=1',
    );
    expect(query.status).toBe(200);
    expect(JSON.parse(query.body)).toMatchObject({ method: 'QUERY', length: 3, content_type: '' });
    // a static file is GET and HEAD only, as for a POST
    const onFile = await request(`${classic.origin}/style.css`, { method: 'PROPFIND', headers: { host: 'app.test' } });
    expect([onFile.statusCode, onFile.headers.allow]).toEqual([405, 'GET, HEAD']);
    await onFile.body.dump();
    // max_request_size 8 (MB) still applies
    const tooLarge = await rawExchange(
      classic.port,
      `PROPFIND /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: ${9 * 1024 * 1024}\r\nConnection: close\r\n\r\n`,
    );
    expect(tooLarge.status).toBe(413);
  });

  it("a GET's body reaches PHP with its CONTENT_LENGTH and CONTENT_TYPE, chunked too; one too large is 413", async () => {
    const res = await request(`${classic.origin}/echo`, {
      method: 'GET',
      body: '{"q":1}',
      headers: { host: 'app.test', 'content-type': 'application/json' },
    });
    expect(await res.body.json()).toMatchObject({
      method: 'GET',
      length: 7,
      content_length: '7',
      content_type: 'application/json',
    });
    const chunked = await rawExchange(
      classic.port,
      'GET /echo HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
        '3\r\n{"q\r\n4\r\n":1}\r\n0\r\n\r\n',
    );
    expect(JSON.parse(chunked.body.replace(/^[0-9a-f]+\r\n|\r\n0\r\n\r\n$/g, ''))).toMatchObject({
      length: 7,
      content_length: '7',
    });
    // max_request_size 8 (MB): 413 before PHP, as for a POST
    const tooLarge = await rawExchange(
      classic.port,
      `GET /echo HTTP/1.1\r\nHost: app.test\r\nContent-Length: ${9 * 1024 * 1024}\r\nConnection: close\r\n\r\n`,
    );
    expect(tooLarge.status).toBe(413);
  });

  it('X-Accel-Redirect and X-Sendfile: the server sends the file from the internal folder, PHP is free', async () => {
    const expected = createHash('sha256')
      .update(readFileSync(join(classic.dir, 'private', 'big.bin')))
      .digest('hex');
    for (const query of [
      'accel=/protected/big.bin',
      `sendfile=${encodeURIComponent(join(classic.dir, 'private', 'big.bin'))}`,
    ]) {
      const res = await app.get(`/download.php?${query}`);
      expect(res.status, query).toBe(200);
      expect(res.headers['content-length']).toBe(String(3 * 1024 * 1024));
      expect(createHash('sha256').update(res.body).digest('hex')).toBe(expected);
      expect(res.headers['content-disposition']).toBe('attachment; filename="report.txt"');
    }
    const range = await app.get('/download.php?accel=/protected/big.bin', { range: 'bytes=100-199' });
    expect([range.status, range.body.length]).toEqual([206, 100]);
    for (const query of [
      'accel=/protected/.secret',
      'sendfile=/etc/passwd',
      'accel=/protected/../app/config.php.bak',
    ]) {
      const res = await app.get(`/download.php?${query}`);
      expect(res.status, query).toBe(404);
      expect(res.text).not.toMatch(/hunter2|root:x:0/);
    }
  });

  it('/.well-known/: its files are served (certbot webroot, security.txt), its routes reach index.php, nothing there runs', async () => {
    const security = await rawGet(classic.port, '/.well-known/security.txt', '', 'app.test');
    expect([security.status, security.body]).toEqual([200, 'Contact: mailto:security@example.com\n']);
    const token = await rawGet(classic.port, '/.well-known/acme-challenge/tok', '', 'app.test');
    expect([token.status, token.body]).toEqual([200, 'tok.thumbprint']);
    const oidc = await app.get('/.well-known/openid-configuration');
    expect([oidc.status, oidc.headers['x-script'], oidc.text]).toEqual([
      200,
      '/index.php',
      '{"issuer":"https:\\/\\/app.test"}',
    ]);
    const carddav = await app.get('/.well-known/carddav');
    expect([carddav.status, carddav.headers['x-script'], carddav.text]).toEqual([
      404,
      '/index.php',
      'Page not found: /.well-known/carddav',
    ]);
    for (const [target, status] of [
      ['/.well-known/.hidden', 403],
      ['/.well-known/shell.php', 403],
      ['/.well-known/shell.php/x', 403],
      ['/.well-known/missing.php', 404],
      ['/.well-known/../.env', 400],
      ['/.well-known/%2e%2e/.env', 400],
      ['/.WELL-KNOWN/security.txt', 403],
    ] as const) {
      const res = await rawGet(classic.port, target, '', 'app.test');
      expect([target, res.status]).toEqual([target, status]);
      for (const never of NEVER) expect(res.body).not.toContain(never);
    }
  });

  it('paths nginx accepts: slashes merged and "." dropped before anything is decided, REQUEST_URI as sent; routes with a trailing dot or a backslash reach index.php', async () => {
    const raw = (target: string) => rawGet(classic.port, target, '', 'app.test');
    const script = (head: string) => /\r\nx-script: ([^\r]*)/i.exec(head)?.[1];
    // "//" is the front page's script (PHP's own parse_url reads "//" as no path: the app's to route)
    expect(script((await raw('//')).head)).toBe('/index.php');
    const css = await raw('//style.css');
    expect([css.status, css.body]).toEqual([200, readFileSync(join(classic.app, 'style.css'), 'latin1')]);
    // the decision is made on the normalised path, PHP gets the target as the client sent it
    const info = JSON.parse((await raw('/info.php//a/./b//?x=1')).body);
    expect(info).toMatchObject({
      SCRIPT_NAME: '/info.php',
      PATH_INFO: '/a/b/',
      DOCUMENT_URI: '/info.php/a/b/',
      REQUEST_URI: '/info.php//a/./b//?x=1',
    });
    for (const target of [
      '/wp-json/wp/v2/posts//1',
      '/pretty/%2e/x',
      '/search/Mr.',
      '/blog/ends-with-dot.',
      '/p/abc%20',
      '/a%5Cb',
      '/a\\b',
    ]) {
      const res = await raw(target);
      expect([target, res.status, script(res.head), res.body]).toEqual([
        target,
        404,
        '/index.php',
        `Page not found: ${target}`,
      ]);
    }
    // never a Location to another host, never a script or its source by another name, never a dotfile
    for (const [target, status, location] of [
      ['//docs', 301, '/docs/'],
      ['//wp-content//uploads/shell.php', 403, undefined],
      ['//.env', 403, undefined],
      ['/./.hidden//tool.php', 403, undefined],
      ['/index.php.', 404, undefined],
      ['/config.php.', 404, undefined],
      ['/config.php%20', 404, undefined],
      ['/info.php./x', 404, undefined],
      ['/config.php//..//.env', 400, undefined],
      ['/a%09b', 400, undefined],
      ['/%zz', 400, undefined],
    ] as const) {
      const res = await raw(target);
      const where = /\r\nlocation: ([^\r]*)/i.exec(res.head)?.[1];
      expect([target, res.status, where, script(res.head)]).toEqual([target, status, location, undefined]);
      for (const never of NEVER) expect(res.body).not.toContain(never);
    }
    // past PATH_MAX no file has the name: 414 as nginx answers a request line over its buffers
    const long = await raw(`/${'a'.repeat(5000)}`);
    expect([long.status, long.body]).toEqual([414, 'URI Too Long: the path is over 4096 characters\n']);
  });

  it.each([
    ['/wp-content/uploads/shell.php', 403],
    ['/wp-content/uploads/shell.php/x', 403],
    ['/wp-content/uploads/avatar.jpg/x.php', 404],
    ['/style.css/x.php', 404],
    ['/config.php.bak', 403],
    ['/config.php%2ebak', 403],
    ['/.env', 403],
    ['/.hidden/tool.php', 403],
    ['/linked.php', 404],
    ['/passwd.txt', 404],
    ['/etc/passwd', 404],
    ['/%2e%2e/%2e%2e/etc/passwd', 400],
    ['/index.php/../config.php.bak', 400],
    ['/config.php%00.txt', 400],
  ])('%s → %i, and nothing it must not show', async (target, status) => {
    const res = await rawGet(classic.port, target, '', 'app.test');
    expect(res.status).toBe(status);
    for (const never of NEVER) expect(res.body).not.toContain(never);
  });

  it('the hostile-path corpus never reaches source, secrets, a script that must not run, or /etc', async () => {
    const results = await sendCorpus(classic.port, '', 'app.test');
    for (const [target, res] of results) {
      for (const never of NEVER) expect(res.body, `${target} → ${res.status}`).not.toContain(never);
      expect(res.status, target).not.toBe(500);
    }
  });
});
