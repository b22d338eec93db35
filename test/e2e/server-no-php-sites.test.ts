import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { FIXTURES, runCli, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';

// `warmpool serve` with sites of no PHP beside a PHP one, over real sockets: a static site, an app
// behind a proxy at "/", files with a proxied /api; none starts a PHP process, and the ops
// commands, status and metrics know them.
const CONFIG = join(FIXTURES, 'server', 'no-php-sites.yaml');
let dir: string;
let upstream: Upstream;
let server: RunningServer;
let env: NodeJS.ProcessEnv;
let base: string;
let httpPort: number;

const get = (host: string, path: string, init: { method?: string; body?: string } = {}) =>
  request(`${base}${path}`, {
    method: (init.method ?? 'GET') as 'GET',
    headers: { host, ...(init.body === undefined ? {} : { 'content-type': 'text/plain' }) },
    ...(init.body === undefined ? {} : { body: init.body }),
  });

/** One masked text frame over a WebSocket handshake written by hand for `host`; the text of the first frame back. */
async function webSocketEcho(host: string, path: string, text: string): Promise<string> {
  const socket = connect(httpPort, '127.0.0.1');
  await once(socket, 'connect');
  socket.write(
    `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
  );
  let received = Buffer.alloc(0);
  let sent = false;
  try {
    for await (const chunk of socket) {
      received = Buffer.concat([received, chunk as Buffer]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) continue;
      const head = received.subarray(0, end).toString('latin1');
      if (!head.startsWith('HTTP/1.1 101 ')) throw new Error(`no upgrade: ${head}`);
      if (!sent) {
        sent = true;
        const payload = Buffer.from(text);
        const mask = Buffer.from([1, 2, 3, 4]);
        const masked = payload.map((byte, i) => byte ^ mask[i % 4]!);
        socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
      }
      const frame = received.subarray(end + 4);
      if (frame.length >= 2 && frame.length >= 2 + frame[1]!) return frame.subarray(2, 2 + frame[1]!).toString();
    }
    throw new Error('closed before the echo');
  } finally {
    socket.destroy();
  }
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-no-php-'));
  upstream = await startUpstream();
  httpPort = await freePort();
  base = `http://127.0.0.1:${httpPort}`;
  env = {
    HTTP_PORT: String(httpPort),
    STATUS_PORT: String(await freePort()),
    METRICS_PORT: String(await freePort()),
    ADMIN_SOCKET: join(dir, 'admin.sock'),
    UPSTREAM_PORT: String(upstream.port),
  };
  server = startServer(['serve', '-c', CONFIG], { env });
  await server.ready();
});

afterAll(async () => {
  await stopAllServers();
  await upstream?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('serve: sites of no PHP', () => {
  it('says what each site serves, boots only the PHP site, and runs one PHP process', async () => {
    expect(server.stdout).toContain(
      `site files.test: no PHP: static files from ${join(FIXTURES, 'server', 'files-site')}`,
    );
    expect(server.stdout).toContain(`site node.test: no PHP: / → http://127.0.0.1:${upstream.port}`);
    expect(server.stdout).toMatch(
      /site mixed\.test: no PHP: static files from .*files-site, \/api → http:\/\/127\.0\.0\.1:\d+/,
    );
    expect(server.stdout).toContain('site files.test: ready (files.test)');
    expect(server.stdout).toMatch(/site php\.test: 1 worker ready in /);
    expect(server.stdout).toContain('site www.files.test: no PHP: redirects to https://files.test (301)');
    // php.test and the default site, one worker each: none for the four sites of no PHP
    expect(server.stdout).toMatch(/warmpool ready in .*: 6 sites, 2 workers/);
    const workers = await runCli(['workers', '--json', '-c', CONFIG], { env });
    expect(workers.code).toBe(0);
    const sites = (JSON.parse(workers.stdout) as { site: string }[]).map((s) => s.site).sort();
    expect(sites).toEqual(['default', 'php.test']);
  });

  it('a static site: files, indexes and their redirect; 404 for PHP source, dotfiles and the rest; 405 for POST', async () => {
    const page = await get('files.test', '/');
    expect(page.statusCode).toBe(200);
    expect(await page.body.text()).toContain('FILES-SITE-INDEX');
    const css = await get('files.test', '/style.css');
    expect(css.headers['content-type']).toMatch(/^text\/css/);
    await css.body.dump();
    // an ETag, as nginx sends for every static file (before: none, RoadRunner's worker-site default)
    expect(css.headers.etag).toMatch(/^"/);
    const revalidated = await request(`${base}/style.css`, {
      headers: { host: 'files.test', 'if-none-match': String(css.headers.etag) },
    });
    expect(revalidated.statusCode).toBe(304);
    await revalidated.body.dump();
    const docs = await get('files.test', '/docs?v=1');
    expect(docs.statusCode).toBe(301);
    expect(docs.headers.location).toBe('/docs/?v=1');
    await docs.body.dump();
    for (const path of [
      '/info.php',
      '/info.php/x',
      '/missing',
      '/.env',
      '/../no-php-sites.yaml',
      '/%2e%2e/no-php-sites.yaml',
    ]) {
      const res = await rawRequest(httpPort, `GET ${path} HTTP/1.1\nHost: files.test`);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
      expect(res.body).not.toMatch(/FILES-SITE-SOURCE|ran|ADMIN_SOCKET/);
    }
    const post = await get('files.test', '/', { method: 'POST', body: 'a=1' });
    expect(post.statusCode).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    await post.body.dump();
    // its own max_request_size (1 MB): 413 before anything else
    const big = await rawRequest(httpPort, `POST / HTTP/1.1\nHost: files.test\nContent-Length: ${5 * 1024 * 1024}`);
    expect(big.status).toBe(413);
  });

  it('a site proxied at "/": every path and method reaches the app, WebSockets too; its access rules hold', async () => {
    const before = upstream.seen.length;
    const res = await get('node.test', '/users/7?x=1', { method: 'POST', body: 'name=ann' });
    expect(res.statusCode).toBe(201);
    expect(((await res.body.json()) as { url: string }).url).toBe('/users/7?x=1');
    const root = await get('node.test', '/');
    expect(root.statusCode).toBe(200);
    await root.body.dump();
    expect(upstream.seen.slice(before).map((r) => `${r.method} ${r.url} ${r.body}`)).toEqual([
      'POST /users/7?x=1 name=ann',
      'GET / ',
    ]);
    const denied = await get('node.test', '/admin/users');
    expect(denied.statusCode).toBe(403);
    expect(await denied.body.text()).toContain('<h1>Not for you</h1>');
    // the app's own 503 is its answer, not the site's page
    const own = await get('node.test', '/jobs/unavailable');
    expect(own.statusCode).toBe(503);
    expect(own.headers['retry-after']).toBe('1');
    expect(await own.body.text()).toBe('down for maintenance\n');
    expect(upstream.seen.some((r) => r.url.startsWith('/admin'))).toBe(false);
    // a WebSocket by hand: a browser's client cannot name the Host
    expect(await webSocketEcho('node.test', '/live?room=2', 'hi')).toBe('echo hi from /live?room=2 for 127.0.0.1');
  });

  it('files with a proxied /api: /api to the app, the rest from disk or 404, never PHP', async () => {
    const api = await get('mixed.test', '/api/items');
    expect(api.statusCode).toBe(200);
    expect(((await api.body.json()) as { url: string }).url).toBe('/api/items');
    const page = await get('mixed.test', '/');
    expect(await page.body.text()).toContain('FILES-SITE-INDEX');
    const missing = await get('mixed.test', '/index.php');
    expect(missing.statusCode).toBe(404);
    await missing.body.dump();
    // the PHP site and the default site still run PHP
    const php = await get('php.test', '/hello');
    expect(php.statusCode).toBe(200);
    expect(await php.body.text()).toContain('/hello');
  });

  it("a site that redirects: every method and path to the address, path and query kept, as nginx's return 301", async () => {
    for (const [method, host, target] of [
      ['GET', 'www.files.test', '/docs/page?x=1&y=%20'],
      ['HEAD', 'old.test', '/'],
      ['POST', 'old.test', '/form'],
      // an absolute-form target is its path: the Location never starts with what the client wrote
      ['GET', 'old.test', 'http://old.test//evil.test/x'],
    ] as const) {
      const res = await rawRequest(
        httpPort,
        `${method} ${target} HTTP/1.1\nHost: ${host}${method === 'POST' ? '\nContent-Type: application/x-www-form-urlencoded\nContent-Length: 3' : ''}`,
        method === 'POST' ? 'a=1' : '',
      );
      const path = target.startsWith('http://') ? target.slice('http://old.test'.length) : target;
      expect({ method, status: res.status, location: res.headers.location }).toEqual({
        method,
        status: 301,
        location: `https://files.test${path}`,
      });
      expect(res.headers['content-length']).toBe('0');
    }
  });

  it('status says every site ready; metrics count their requests; reset and tune say there is no PHP', async () => {
    const ready = await request(`http://127.0.0.1:${env.STATUS_PORT}/ready?site=files.test`);
    expect(ready.statusCode).toBe(200);
    await ready.body.dump();
    const all = await request(`http://127.0.0.1:${env.STATUS_PORT}/ready`);
    expect(all.statusCode).toBe(200);
    await all.body.dump();
    const metrics = await (await request(`http://127.0.0.1:${env.METRICS_PORT}/metrics`)).body.text();
    expect(metrics).toMatch(/warmpool_requests_total\{[^}]*site="files\.test"[^}]*\} [1-9]/);
    for (const command of ['reset', 'tune']) {
      const result = await runCli([command, '--site', 'files.test', '-c', CONFIG], { env });
      expect(result.code).not.toBe(0);
      expect(result.stderr).toContain(
        `site files.test runs no PHP (static files and proxy routes only): there is nothing to ${command}`,
      );
    }
    // --json: the code as JSON on stdout too, for a script
    const json = await runCli(['reset', '--site', 'files.test', '--json', '-c', CONFIG], { env });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout.trim())).toEqual({
      error: { code: 'WP_SERVER_NO_PHP_SITE', message: expect.stringContaining('site files.test runs no PHP') },
    });
    const unknown = await runCli(['reset', '--site', 'nope.test', '-c', CONFIG], { env });
    expect(unknown.stderr).toMatch(/no site named "nope\.test"; this server runs: .*files\.test/);
  });
});

describe('config check: sites of no PHP', () => {
  it('passes, and the effective config says php: false with no pool or command', async () => {
    const result = await runCli(['config', 'check', '--json', '-c', CONFIG], { env });
    expect(result.code).toBe(0);
    const sites = (JSON.parse(result.stdout) as { sites: Record<string, unknown>[] }).sites;
    const files = sites.find((site) => site.name === 'files.test')!;
    expect(files).toMatchObject({ php: false, server: {}, redirect: null, http: { access_log: null, auth_basic: [] } });
    expect(sites.find((site) => site.name === 'www.files.test')).toMatchObject({
      redirect: { to: 'https://files.test', status: 301 },
    });
    expect((files.http as Record<string, unknown>).pool).toBeUndefined();
    expect(sites.find((site) => site.name === 'php.test')).toMatchObject({
      php: true,
      server: { command: 'php ../php/echo.php' },
    });
  });
});
