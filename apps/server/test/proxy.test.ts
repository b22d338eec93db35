import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { Readable } from 'node:stream';
import {
  connect as http2Connect,
  constants as http2Constants,
  type Http2Server,
  type ServerHttp2Session,
} from 'node:http2';
import { type AddressInfo, createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { request, WebSocket } from 'undici';
import {
  createClientInfoHook,
  createClientInfoResolver,
  type ErrorPages,
  type ResolvedInternalFiles,
  resolveErrorPages,
  resolveInternalFiles,
  warmpool,
} from '@warmpool/fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { startUpstream as startSharedUpstream, type Upstream } from '../../../test/helpers/upstream.js';
import { until } from '../../../test/helpers/until.js';
import { createWebSocketMatcher, registerProxies, resolveProxyRoutes, type ProxyRoute } from '../src/proxy.js';

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** The shared real upstream (test/helpers/upstream.ts), closed after each test. */
async function startUpstream(): Promise<Upstream> {
  const upstream = await startSharedUpstream();
  closers.push(() => upstream.close());
  return upstream;
}

/** A site with proxies next to the warmpool plugin (PHP takes what the proxies do not), listening on a real port. */
async function startSite(
  routes: ProxyRoute[],
  pages: ErrorPages = null,
  options: {
    maxRequestBytes?: number;
    http2?: boolean;
    streamTimeoutMs?: number;
    internalFiles?: ResolvedInternalFiles | null;
    /** where the app's log lines go (JSON, one a line) */
    logLines?: string[];
    /** a site of no PHP (the plugin's php: false): a proxy at "/" has every path */
    noPhp?: boolean;
    /** trusted_subnets, resolved by a server-wide hook before the proxies, as serve's app.ts */
    trustedSubnets?: string[];
    /** real_ip_header, with trustedSubnets */
    realIpHeader?: string;
  } = {},
): Promise<{ app: FastifyInstance; base: string }> {
  const logger =
    options.logLines === undefined ? false : { stream: { write: (line: string) => options.logLines!.push(line) } };
  const app = (options.http2 === true ? Fastify({ http2: true, logger }) : Fastify({ logger })) as FastifyInstance;
  if (options.trustedSubnets !== undefined)
    app.addHook(
      'onRequest',
      createClientInfoHook(
        createClientInfoResolver({ trusted_subnets: options.trustedSubnets, real_ip_header: options.realIpHeader }),
      ),
    );
  await registerProxies(app, routes, {
    errorPages: pages,
    ...(options.maxRequestBytes === undefined ? {} : { maxRequestBytes: options.maxRequestBytes }),
    ...(options.streamTimeoutMs === undefined ? {} : { streamTimeoutMs: options.streamTimeoutMs }),
    internalFiles: options.internalFiles ?? null,
    realIpHeader: options.realIpHeader,
  });
  await app.register(
    warmpool,
    options.noPhp === true ? { php: false } : { command: ['php', fixture('echo.php')], pool: { num_workers: 1 } },
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => app.close());
  const { port } = app.server.address() as AddressInfo;
  return { app, base: `http://127.0.0.1:${port}` };
}

/** An upgrade sent by hand: everything the server wrote back until it closed or the 101's head ended. */
async function rawUpgrade(base: string, target: string, extra = ''): Promise<string> {
  const socket = createConnection(Number(new URL(base).port), '127.0.0.1');
  closers.push(async () => socket.destroy());
  socket.write(
    `GET ${target} HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
  );
  let text = '';
  socket.setEncoding('latin1');
  return new Promise((resolve) => {
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.startsWith('HTTP/1.1 101 ') && text.includes('\r\n\r\n')) resolve(text);
    });
    socket.on('close', () => resolve(text));
    socket.on('error', () => resolve(text));
  });
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function getJson(url: string, options: Parameters<typeof request>[1] = {}) {
  const res = await request(url, options);
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

describe('proxy routes', () => {
  it('passes the path unchanged to an upstream given without a path (nginx proxy_pass http://host)', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const res = await getJson(`${base}/api/users?page=2`);
    expect(res.status).toBe(200);
    expect(res.headers['x-upstream']).toBe('yes');
    expect(res.json().url).toBe('/api/users?page=2');
    expect((await getJson(`${base}/api`)).json().url).toBe('/api');
  });

  it("strips the prefix with rewrite_prefix: '' and replaces it with the upstream's path", async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([
      { prefix: '/strip', upstream: upstream.origin, rewrite_prefix: '' },
      { prefix: '/versioned', upstream: `${upstream.origin}/v1` },
      { prefix: '/slash/', upstream: `${upstream.origin}/` },
    ]);
    expect((await getJson(`${base}/strip/users?x=1`)).json().url).toBe('/users?x=1');
    expect((await getJson(`${base}/versioned/users`)).json().url).toBe('/v1/users');
    expect((await getJson(`${base}/slash/users`)).json().url).toBe('/users');
  });

  it("adds X-Forwarded-For, -Proto and -Host, X-Real-IP; a client's own forwarding claims are dropped; the upstream's own Host", async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const { headers } = (
      await getJson(`${base}/api/h`, {
        headers: {
          host: 'shop.test',
          'x-forwarded-for': '6.6.6.6',
          forwarded: 'for=6.6.6.6;proto=https',
          'x-forwarded-ssl': 'on',
          'x-forwarded-port': '443',
          'x-forwarded-prefix': '/admin',
          'x-original-url': '/admin/users',
          'true-client-ip': '6.6.6.6',
          'x-scheme': 'https',
          'cf-connecting-ip': '6.6.6.6',
          'x-original-forwarded-for': '6.6.6.6',
          via: '1.1 cdn',
        },
      })
    ).json();
    // an upstream reading the first address was told what the client chose (nginx appends; Caddy replaces)
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(headers.forwarded).toBeUndefined();
    // nor any other claim an upstream believing this server's X-Forwarded-* would take (Rack: HTTPS)
    for (const name of [
      'x-forwarded-ssl',
      'x-forwarded-port',
      'x-forwarded-prefix',
      'x-original-url',
      'true-client-ip',
      'x-scheme',
      'cf-connecting-ip',
      'x-original-forwarded-for',
    ])
      expect({ name, value: headers[name] }).toEqual({ name, value: undefined });
    expect(headers.via).toBe('1.1 cdn');
    expect(headers['x-real-ip']).toBe('127.0.0.1');
    expect(headers['x-forwarded-proto']).toBe('http');
    expect(headers['x-forwarded-host']).toBe('shop.test');
    expect(headers.host).toBe(`127.0.0.1:${upstream.port}`);
  });

  it("behind a trusted proxy (trusted_subnets): its X-Forwarded-For is appended to, X-Real-IP the client; the client's other claims it passed on stay behind", async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }], null, {
      trustedSubnets: ['127.0.0.0/8'],
    });
    // what a load balancer that writes X-Forwarded-For passes on from its client untouched
    const claims = {
      forwarded: 'for=6.6.6.6;proto=https;host=evil',
      'x-forwarded-port': '443',
      'x-forwarded-ssl': 'on',
      'true-client-ip': '6.6.6.6',
      'cf-connecting-ip': '6.6.6.6',
    };
    const { headers } = (
      await getJson(`${base}/api/h`, {
        headers: { 'x-forwarded-for': '6.6.6.6, 203.0.113.7', ...claims },
      })
    ).json();
    expect(headers['x-forwarded-for']).toBe('6.6.6.6, 203.0.113.7, 127.0.0.1');
    // the client as PHP sees it (nginx's $remote_addr after set_real_ip_from), not the balancer
    expect(headers['x-real-ip']).toBe('203.0.113.7');
    expect(headers['x-forwarded-proto']).toBe('http');
    for (const name of Object.keys(claims)) expect(headers[name], name).toBeUndefined();
    // real_ip_header: Forwarded: the balancer's Forwarded is the one read, and passed on; the rest stay behind
    const byForwarded = await startSite([{ prefix: '/api', upstream: upstream.origin }], null, {
      trustedSubnets: ['127.0.0.0/8'],
      realIpHeader: 'Forwarded',
    });
    const seen = (
      await getJson(`${byForwarded.base}/api/h`, {
        headers: { ...claims, forwarded: 'for=203.0.113.9;proto=https' },
      })
    ).json().headers;
    expect(seen.forwarded).toBe('for=203.0.113.9;proto=https');
    expect(seen['x-real-ip']).toBe('203.0.113.9');
    // the client it named heads the list an upstream reads (before: the balancer alone)
    expect(seen['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('https');
    expect(seen['x-forwarded-ssl']).toBeUndefined();
    expect(seen['true-client-ip']).toBeUndefined();
    // and the WebSocket handshake the same
    const ws = await startSite([{ prefix: '/ws', upstream: upstream.origin, websocket: true }], null, {
      trustedSubnets: ['127.0.0.0/8'],
    });
    const socket = createConnection(Number(new URL(ws.base).port), '127.0.0.1');
    closers.push(async () => socket.destroy());
    socket.write(
      'GET /ws/trusted HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
        'X-Forwarded-For: 203.0.113.8\r\nForwarded: for=203.0.113.8\r\nX-Forwarded-Ssl: on\r\n\r\n',
    );
    await upstream.webSocketOpened('/ws/trusted');
    const handshake = upstream.webSocketHeaders[upstream.webSockets.indexOf('/ws/trusted')]!;
    expect(handshake).toMatchObject({ 'x-forwarded-for': '203.0.113.8, 127.0.0.1', 'x-real-ip': '203.0.113.8' });
    expect(handshake.forwarded).toBeUndefined();
    expect(handshake['x-forwarded-ssl']).toBeUndefined();
  });

  it("preserve_host sends the client's Host, as nginx proxy_set_header Host $host; X-Forwarded-Host stays", async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin, preserve_host: true }]);
    const { headers } = (await getJson(`${base}/api/h`, { headers: { host: 'shop.test' } })).json();
    // before: always the upstream's own 127.0.0.1:PORT, which a Flask or Django app builds its URLs from
    expect(headers.host).toBe('shop.test');
    expect(headers['x-forwarded-host']).toBe('shop.test');
  });

  it('a proxy at "/" puts the upstream\'s path or rewrite_prefix in front of every path (nginx: proxy_pass http://h/app/)', async () => {
    const upstream = await startUpstream();
    for (const route of [
      { prefix: '/', upstream: `${upstream.origin}/app/` },
      { prefix: '/', upstream: `${upstream.origin}/app` },
      { prefix: '/', upstream: upstream.origin, rewrite_prefix: '/app' },
    ]) {
      const { base } = await startSite([route], null, { noPhp: true });
      expect((await getJson(`${base}/x/y?q=1`)).json().url).toBe('/app/x/y?q=1');
      expect((await getJson(`${base}/`)).json().url).toBe('/app/');
      expect((await getJson(`${base}/app`)).json().url).toBe('/app/app');
    }
    // and without a path, the path as it came
    const { base } = await startSite([{ prefix: '/', upstream: upstream.origin }], null, { noPhp: true });
    expect((await getJson(`${base}/x/y?q=1`)).json().url).toBe('/x/y?q=1');
  });

  it("drops the hop-by-hop Keep-Alive, a plain request's Upgrade, and the names Connection lists (undici refused them: 502)", async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const socket = createConnection(Number(new URL(base).port), '127.0.0.1');
    closers.push(async () => socket.destroy());
    socket.write(
      'GET /api/h HTTP/1.1\r\nHost: a.test\r\nKeep-Alive: 300\r\nUpgrade: websocket\r\nProxy-Connection: keep-alive\r\n' +
        'Connection: close, X-Hop\r\nX-Hop: 1\r\nX-Kept: 2\r\n\r\n',
    );
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    await once(socket, 'close');
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    // the body, chunked or not: the upstream's one JSON object
    const body = text.slice(text.indexOf('\r\n\r\n') + 4);
    const { headers } = JSON.parse(body.slice(body.indexOf('{'), body.lastIndexOf('}') + 1)) as {
      headers: Record<string, string>;
    };
    for (const name of ['keep-alive', 'upgrade', 'proxy-connection', 'x-hop']) expect(headers[name]).toBeUndefined();
    expect(headers['x-kept']).toBe('2');
  });

  it('drops TE and header names with "_" (nginx underscores_in_headers off): a CGI-style upstream would read X_Real_IP as X-Real-IP', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const { headers } = (
      await getJson(`${base}/api/h`, {
        headers: { x_real_ip: '6.6.6.6', x_forwarded_proto: 'https', te: 'trailers', 'x-kept': '1' },
      })
    ).json();
    expect(headers.x_real_ip).toBeUndefined();
    expect(headers.x_forwarded_proto).toBeUndefined();
    expect(headers.te).toBeUndefined();
    expect(headers['x-real-ip']).toBe('127.0.0.1');
    expect(headers['x-kept']).toBe('1');
  });

  it('forwards method, body and status both ways', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const res = await getJson(`${base}/api/items`, {
      method: 'POST',
      body: '{"name":"x"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(201);
    expect(res.json()).toMatchObject({ method: 'POST', body: '{"name":"x"}' });
  });

  it('answers Expect: 100-continue itself and passes the body on (undici refuses the header: 502 before)', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const { status, body, continued } = await new Promise<{ status: number; body: string; continued: boolean }>(
      (resolve, reject) => {
        let continued = false;
        const req = httpRequest(`${base}/api/upload`, {
          method: 'POST',
          headers: { expect: '100-continue', 'content-type': 'text/plain', 'content-length': '5' },
        });
        req.on('continue', () => {
          continued = true;
          req.end('hello');
        });
        req.on('response', async (res) => {
          let text = '';
          for await (const chunk of res) text += chunk;
          resolve({ status: res.statusCode!, body: text, continued });
        });
        req.on('error', reject);
      },
    );
    expect(continued).toBe(true);
    expect(status).toBe(201);
    expect(JSON.parse(body)).toMatchObject({ method: 'POST', body: 'hello' });
    expect(upstream.seen[0]!.headers.expect).toBeUndefined();
  });

  it('max_request_size: a larger body gets 413 and never reaches the upstream, declared or chunked', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }], null, { maxRequestBytes: 1024 });
    const declared = await getJson(`${base}/api/upload`, { method: 'POST', body: 'x'.repeat(2048) });
    expect(declared.status).toBe(413);
    expect(declared.text).toMatch(/over max_request_size \(1024 bytes\)/);
    expect(upstream.seen).toEqual([]);
    async function* chunks() {
      for (let i = 0; i < 4; i++) yield Buffer.alloc(512, 'y');
    }
    const chunked = await getJson(`${base}/api/upload`, { method: 'POST', body: Readable.from(chunks()) });
    expect(chunked.status).toBe(413);
    expect(upstream.seen.filter((r) => r.body.length > 1024)).toEqual([]);
    // within the bound, both reach it
    expect((await getJson(`${base}/api/upload`, { method: 'POST', body: 'x'.repeat(1024) })).status).toBe(201);
  });

  it("maps a Location on the upstream's own origin to this server, drops hop-by-hop headers, sets X-Real-IP", async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([
      { prefix: '/api', upstream: upstream.origin },
      { prefix: '/versioned', upstream: `${upstream.origin}/v1` },
    ]);
    const asked = new URL(base).host;
    const plain = await request(`${base}/api/redirect?to=/api/next%3Fx=1`);
    expect(plain.statusCode).toBe(302);
    expect(plain.headers.location).toBe(`http://${asked}/api/next?x=1`);
    const versioned = await request(`${base}/versioned/redirect?to=/v1/users/7`);
    expect(versioned.headers.location).toBe(`http://${asked}/versioned/users/7`);
    // another origin, or a path outside the upstream's, is left as it is
    const away = await request(`${base}/api/redirect?abs=https://example.org/login`);
    expect(away.headers.location).toBe('https://example.org/login');
    const outside = await request(`${base}/versioned/redirect?to=/v2/users`);
    expect(outside.headers.location).toBe(`${upstream.origin}/v2/users`);
    // Node's upstream says keep-alive with its own timeout: that is its connection's, not ours
    const res = await getJson(`${base}/api/h`, { headers: { 'x-real-ip': '7.7.7.7' } });
    expect(res.headers['keep-alive']).toBe('timeout=72'); // this server's (Fastify's 72 s), not the upstream's 5 s
    expect(res.json().headers['x-real-ip']).toBe('127.0.0.1');
  });

  it('an upstream reply with a Trailer header reaches a client that cannot take trailers (HTTP/1.0, HEAD, a length)', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const { port } = new URL(base);
    // before: Node threw ERR_HTTP_TRAILER_INVALID outside any handler and the process exited
    for (const head of [
      'GET /api/trailer HTTP/1.0\r\n\r\n',
      'HEAD /api/trailer HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      'GET /api/trailer?length=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ]) {
      const socket = createConnection(Number(port), '127.0.0.1');
      socket.write(head);
      let text = '';
      socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
      await new Promise((resolve) => socket.on('close', resolve));
      expect([head.split('\r\n')[0], text.split('\r\n')[0]]).toEqual([
        head.split('\r\n')[0],
        expect.stringMatching(/^HTTP\/1\.1 200 /),
      ]);
      expect(text).not.toMatch(/\r\ntrailer:/i);
      if (!head.startsWith('HEAD')) expect(text.endsWith('report body\n')).toBe(true);
    }
    // and over HTTP/1.1 chunked, the trailer is not forwarded either (Node's own, not the upstream's)
    const res = await request(`${base}/api/trailer`);
    expect([res.statusCode, await res.body.text()]).toEqual([200, 'report body\n']);
  });

  it('HTTP/2 rapid reset: a stream reset with its HEADERS opens no upstream connection', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }], null, { http2: true });
    const session = http2Connect(base);
    closers.push(async () => session.close());
    await once(session, 'connect');
    // HEADERS and RST_STREAM written together, as the attack sends them
    for (let i = 0; i < 50; i++) {
      const stream = session.request({ ':path': `/api/reset-${i}` });
      stream.on('error', () => {});
      stream.close(http2Constants.NGHTTP2_CANCEL);
    }
    // then one that stays: answered, through one upstream connection
    const stream = session.request({ ':path': '/api/kept' });
    const [head] = (await once(stream, 'response')) as [Record<string, unknown>];
    stream.resume();
    await once(stream, 'end');
    expect(head[':status']).toBe(200);
    expect(upstream.seen.map((r) => r.url)).toEqual(['/api/kept']);
    // before: a connect per reset stream
    expect(upstream.connections()).toBeLessThan(5);
  });

  it('an upstream body cut short resets the HTTP/2 stream, never ends it as whole', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }], null, { http2: true });
    const session = http2Connect(base);
    closers.push(async () => session.close());
    const { bytes, rstCode, ended } = await new Promise<{ bytes: number; rstCode: number; ended: boolean }>(
      (resolve) => {
        const stream = session.request({ ':path': '/api/truncated' });
        let bytes = 0;
        let ended = false;
        stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
        stream.on('end', () => (ended = true));
        stream.on('error', () => {});
        stream.on('close', () => resolve({ bytes, rstCode: stream.rstCode ?? 0, ended }));
      },
    );
    expect(bytes).toBeLessThan(1000);
    expect(rstCode).toBe(http2Constants.NGHTTP2_INTERNAL_ERROR);
    expect(ended).toBe(false);
  });

  it('an HTTP/2 body still arriving at request_timeout gets a plain-text 408, as PHP routes give it', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }], null, {
      http2: true,
      streamTimeoutMs: 300,
    });
    const session = http2Connect(base);
    closers.push(async () => session.close());
    // a body that trickles and never ends
    const stream = session.request({ ':method': 'POST', ':path': '/api/trickle' }, { endStream: false });
    stream.on('error', () => {});
    stream.write('a');
    const [headers] = (await once(stream, 'response')) as [Record<string, unknown>];
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (text += chunk));
    await once(stream, 'close');
    expect(headers[':status']).toBe(408);
    // it was Fastify's JSON, with an internal code in it
    expect(headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(text).toBe('Request Timeout\n');
  });

  it('an HTTP/2 body of no declared length past max_request_size: 413, and the connection is let go when the client leaves', async () => {
    const upstream = await startUpstream();
    const { app, base } = await startSite([{ prefix: '/api', upstream: upstream.origin }], null, {
      http2: true,
      maxRequestBytes: 2 * 1024 * 1024,
    });
    const serverSession = new Promise<ServerHttp2Session>((resolve) =>
      (app.server as unknown as Http2Server).once('session', resolve),
    );
    const session = http2Connect(base);
    session.on('error', () => {});
    const stream = session.request({ ':method': 'POST', ':path': '/api/p' });
    stream.on('error', () => {});
    stream.on('data', () => {});
    // an upload of 2.2 MB in three writes, as a client streams it
    const mib = Buffer.alloc(1024 * 1024, 97);
    stream.write(mib);
    stream.write(mib);
    stream.end(Buffer.alloc(200 * 1024, 97));
    const [headers] = (await once(stream, 'response')) as [Record<string, unknown>];
    expect(headers[':status']).toBe(413);
    const closed = new Promise((resolve) => serverSession.then((server) => server.once('close', resolve)));
    session.destroy();
    // before: the server kept the session (its body stream paused), the socket in CLOSE-WAIT for good
    await closed;
  });

  it('matches on segment boundaries: /apiary and the rest go to PHP', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    for (const path of ['/apiary', '/', '/index.php?x=1']) {
      const res = await getJson(`${base}${path}`);
      expect(res.json()).toHaveProperty('pid'); // echo.php answered
    }
    expect(upstream.seen).toEqual([]);
  });

  it('retries once on a new connection a request without a body whose kept-alive connection the upstream had closed (nginx); never a POST', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    // one request first, so that the next one goes out on the kept-alive connection
    expect((await request(`${base}/api/warm`)).statusCode).toBe(200);
    const again = await request(`${base}/api/drop-reused`);
    // before: 502, "the upstream closed the connection"
    expect([again.statusCode, (await again.body.json()) as unknown]).toMatchObject([200, { url: '/api/drop-reused' }]);
    expect(upstream.seen.filter((seen) => seen.url === '/api/drop-reused')).toHaveLength(2);
    // a POST may have been acted on: not sent twice
    expect((await request(`${base}/api/warm`)).statusCode).toBe(200);
    const post = await request(`${base}/api/drop-reused`, { method: 'POST', body: 'x' });
    expect(post.statusCode).toBe(502);
    await post.body.dump();
    // an upstream's 503 is its answer: passed on at once, as nginx does (reply-from retried a GET's ten times)
    const unavailable = await request(`${base}/api/unavailable`);
    expect([unavailable.statusCode, await unavailable.body.text()]).toEqual([503, 'down for maintenance\n']);
    expect(upstream.seen.filter((seen) => seen.url === '/api/unavailable')).toHaveLength(1);
  });

  it('refuses with 501 what it cannot pass on whole: a GET with a body, a transfer coding other than chunked', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const { port } = new URL(base);
    const ask = async (head: string) => {
      const socket = createConnection(Number(port), '127.0.0.1');
      socket.write(head);
      let text = '';
      socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
      await new Promise((resolve) => socket.on('close', resolve));
      return text;
    };
    // before: the upstream got the GET without its body, and answered as if there were none
    const search = await ask(
      'GET /api/_search HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
    );
    expect(search).toMatch(/^HTTP\/1\.1 501 /);
    expect(search).toContain('a GET request with a body is not passed on by this proxy: send it as POST');
    // before: the upstream got the gzip bytes as a plain body
    const gzipped = await ask(
      'POST /api/te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    );
    expect(gzipped).toMatch(/^HTTP\/1\.1 501 /);
    expect(upstream.seen).toEqual([]);
    // a GET without a body, and a chunked POST, go through
    expect((await request(`${base}/api/plain`)).statusCode).toBe(200);
  });

  it("follows an upstream's X-Accel-Redirect into the site's internal_files (nginx); without one, never shows it", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wp-proxy-internal-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'report.txt'), 'PROTECTED REPORT\n');
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }], null, {
      internalFiles: resolveInternalFiles({ root: dir, prefix: '/protected/' }),
    });
    const res = await request(`${base}/api/handoff?to=/protected/report.txt`);
    // before: an empty 200 that named the internal path in its x-accel-redirect header
    expect([res.statusCode, await res.body.text()]).toEqual([200, 'PROTECTED REPORT\n']);
    expect(res.headers['x-accel-redirect']).toBeUndefined();
    const outside = await request(`${base}/api/handoff?to=/elsewhere/report.txt`);
    expect(outside.statusCode).toBe(404);
    await outside.body.dump();
    const { base: plain } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const hidden = await request(`${plain}/api/handoff?to=/protected/report.txt`);
    expect(hidden.headers['x-accel-redirect']).toBeUndefined();
    await hidden.body.dump();
    // the upstream's Keep-Alive (Node sends "timeout=5" on each reply) stays its own, not the
    // file's; over HTTP/2, where Node throws on it, it ended the process
    expect(res.headers['keep-alive']).toBeUndefined();
    const { base: h2 } = await startSite([{ prefix: '/api', upstream: upstream.origin }], null, {
      http2: true,
      internalFiles: resolveInternalFiles({ root: dir, prefix: '/protected/' }),
    });
    const session = http2Connect(h2);
    closers.push(async () => session.close());
    const stream = session.request({ ':path': '/api/handoff?to=/protected/report.txt' });
    const [head] = (await once(stream, 'response')) as [Record<string, unknown>];
    let body = '';
    stream.setEncoding('utf8');
    for await (const chunk of stream) body += chunk;
    expect([head[':status'], body, head['keep-alive']]).toEqual([200, 'PROTECTED REPORT\n', undefined]);
  });

  it('a target the proxy will not pass on ("//" after the prefix: another host for the upstream) is a plain-text 400, not JSON', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin, rewrite_prefix: '' }]);
    for (const path of ['/api//x', '/api//evil.example/x']) {
      const res = await request(`${base}${path}`);
      expect([path, res.statusCode, res.headers['content-type']]).toEqual([path, 400, 'text/plain; charset=utf-8']);
      expect(await res.body.text()).toBe(
        'Bad Request: the path cannot be passed on to the upstream as it is (a "//", a ".." segment, or an escape that does not decode)\n',
      );
    }
    expect(upstream.seen).toEqual([]);
  });

  it("holds the site's http.access and http.limit_req on its proxied prefixes, with the plugin's own counters", async () => {
    const upstream = await startUpstream();
    const app = Fastify() as FastifyInstance;
    closers.push(() => app.close());
    await app.register(warmpool, {
      command: ['php', fixture('echo.php')],
      pool: { num_workers: 1 },
      access: [{ prefix: '/sec', deny: ['all'] }],
      limit_req: [{ prefix: '/lim', rate: '1r/m', burst: 0 }],
    });
    await registerProxies(
      app,
      [
        { prefix: '/sec', upstream: upstream.origin },
        { prefix: '/lim', upstream: upstream.origin },
      ],
      { admit: app.warmpool.admit },
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    // before: 200 from the upstream, the deny rule met only by PHP's paths
    const denied = await request(`${base}/sec/x`);
    expect([denied.statusCode, await denied.body.text()]).toEqual([403, 'Forbidden\n']);
    // "/sec\x" is /sec/x to the proxy's URL parser: to the rules too (it reached the upstream)
    const socket = createConnection(Number(new URL(base).port), '127.0.0.1');
    closers.push(async () => socket.destroy());
    socket.write('GET /sec\\x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    let raw = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (raw += chunk));
    await once(socket, 'close');
    expect(raw.split('\r\n')[0]).toBe('HTTP/1.1 403 Forbidden');
    expect((await request(`${base}/lim/a`)).statusCode).toBe(200);
    const limited = await request(`${base}/lim/a`);
    expect(limited.statusCode).toBe(429);
    await limited.body.dump();
    expect(upstream.seen.map((seen) => seen.url)).toEqual(['/lim/a']);
  });

  it('sends a request pipelined behind an unfinished one upstream once that one is answered (a GET after a POST)', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([
      { prefix: '/slow', upstream: upstream.origin },
      { prefix: '/api', upstream: upstream.origin },
    ]);
    const socket = createConnection(Number(new URL(base).port), '127.0.0.1');
    closers.push(async () => socket.destroy());
    // the POST takes the upstream 2 s; the GET after it on the same connection must not overtake it
    socket.write(
      'POST /slow/cart HTTP/1.1\r\nHost: a.test\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc' +
        'GET /api/cart HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n',
    );
    let raw = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (raw += chunk));
    await once(socket, 'close');
    expect(raw.match(/^HTTP\/1\.1 \d{3}/gm)).toEqual(['HTTP/1.1 201', 'HTTP/1.1 200']);
    // the upstream had answered the POST when the GET came: before, the GET came first, on a
    // connection of its own, and saw the cart before the POST
    expect(upstream.seen.map(({ method, url, answeredBefore }) => [method, url, answeredBefore])).toEqual([
      ['POST', '/slow/cart', 0],
      ['GET', '/api/cart', 1],
    ]);
  });

  it('answers 502 with a clear body when the upstream is down', async () => {
    const upstream = await startUpstream();
    const deadPort = upstream.port;
    await closers.pop()!(); // stop it: nothing listens on its port now
    const { base } = await startSite([{ prefix: '/api', upstream: `http://127.0.0.1:${deadPort}` }]);
    const res = await getJson(`${base}/api/users`);
    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.text).toBe('Bad Gateway: the upstream for /api is not running (connection refused)\n');
  });

  it("a list of upstreams: taken in turn, each with its own Host; one refusing connections is passed over, a request it refused goes to the next, body and all (nginx's upstream block)", async () => {
    const [one, two] = [await startUpstream(), await startUpstream()];
    const dead = await closedPort();
    const { base } = await startSite([
      { prefix: '/api', upstream: [one.origin, `http://127.0.0.1:${dead}`, two.origin] },
      { prefix: '/kept', upstream: [one.origin, two.origin], preserve_host: true },
    ]);
    const hostOf = async (res: Promise<Awaited<ReturnType<typeof getJson>>>) => {
      const answered = await res;
      expect(answered.status).toBeLessThan(300);
      return answered.json().headers.host as string;
    };
    const hosts = [await hostOf(getJson(`${base}/api/n0`))];
    // the dead one's turn: a streamed body it refused reaches the next whole (it was never read)
    const body = 'x'.repeat(200_000);
    const posted = getJson(`${base}/api/upload`, {
      method: 'POST',
      body: Readable.from([body.slice(0, 1000), body.slice(1000)]),
      headers: { 'content-type': 'application/octet-stream' },
    });
    hosts.push(await hostOf(posted));
    expect((await posted).json().body).toBe(body);
    for (let i = 1; i < 5; i++) hosts.push(await hostOf(getJson(`${base}/api/n${i}`)));
    // one, (dead: refused, passed over) two, then one and two in turn: the dead one sits out
    expect(hosts).toEqual([1, 2, 1, 2, 1, 2].map((n) => new URL((n === 1 ? one : two).origin).host));
    expect(two.seen.filter((seen) => seen.method === 'POST')).toHaveLength(1);
    // preserve_host: the client's Host to every upstream
    const kept = await getJson(`${base}/kept/h`, { headers: { host: 'site.test' } });
    expect(kept.json().headers.host).toBe('site.test');
    // a Location on any of them is mapped to this server
    const moved = await request(`${base}/api/redirect?to=/api/next`);
    expect(moved.headers.location).toBe(`http://${new URL(base).host}/api/next`);
    await moved.body.dump();
  });

  it('no cap on upstream connections: a request behind 130 open long polls is sent at once (reply-from capped 128; the rest waited)', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin, rewrite_prefix: '' }]);
    // the upstream answers /slow… two seconds late
    const polls = Array.from({ length: 130 }, (_, i) => getJson(`${base}/api/slow/${i}`));
    await until(() => upstream.seen.length === 130, 'the 130 polls at the upstream');
    const page = await getJson(`${base}/api/page`);
    expect(page.status).toBe(200);
    // the upstream answered it before any of the polls: it was not queued behind them
    expect(upstream.seen.find((seen) => seen.url === '/page')!.answeredBefore).toBe(0);
    expect((await Promise.all(polls)).every((poll) => poll.status === 200)).toBe(true);
  });

  it('a list of upstreams all down: 502 after each was tried once, named in the log; the next request is tried and answered too', async () => {
    const [a, b] = [await closedPort(), await closedPort()];
    const lines: string[] = [];
    const { base } = await startSite(
      [{ prefix: '/api', upstream: [`http://127.0.0.1:${a}`, `http://127.0.0.1:${b}`] }],
      null,
      {
        logLines: lines,
      },
    );
    const res = await getJson(`${base}/api/x`);
    expect(res.status).toBe(502);
    expect(res.text).toBe('Bad Gateway: the upstream for /api is not running (connection refused)\n');
    expect(lines.map((line) => JSON.parse(line).msg)).toContain(
      `proxy /api → http://127.0.0.1:${a}, http://127.0.0.1:${b} failed: ECONNREFUSED`,
    );
    // both down: the next request still tries (the one soonest back) and answers, never hangs
    expect((await getJson(`${base}/api/y`)).status).toBe(502);
  });

  it('a WebSocket route of several upstreams: an upgrade refused by one is a 502, and the next goes to another', async () => {
    const upstream = await startUpstream();
    const dead = await closedPort();
    const { base } = await startSite([
      { prefix: '/ws', upstream: [`http://127.0.0.1:${dead}`, upstream.origin], websocket: true },
    ]);
    expect(await rawUpgrade(base, '/ws/a')).toMatch(/^HTTP\/1\.1 502 /);
    expect(await rawUpgrade(base, '/ws/b')).toMatch(/^HTTP\/1\.1 101 /);
    // the refusing one sits out: the next upgrade goes to the live one again
    expect(await rawUpgrade(base, '/ws/c')).toMatch(/^HTTP\/1\.1 101 /);
    expect(upstream.webSockets).toEqual(['/ws/b', '/ws/c']);
  });

  it("error_pages: an upstream that is down or too slow gets the site's 502 / 504 page", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warmpool-proxy-pages-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, '50x.html'), '<h1>Back in a minute</h1>\n');
    const pages = resolveErrorPages({ '502': join(dir, '50x.html'), '504': join(dir, '50x.html') });
    const upstream = await startUpstream();
    const deadPort = (await startUpstream()).port;
    await closers.pop()!(); // the second one: nothing listens on its port now
    const { base } = await startSite(
      [
        { prefix: '/api', upstream: `http://127.0.0.1:${deadPort}` },
        { prefix: '/slow', upstream: upstream.origin, timeout: '200ms' },
      ],
      pages,
    );
    for (const path of ['/api/users', '/slow/report']) {
      const res = await getJson(`${base}${path}`);
      expect([res.status, res.headers['content-type'], res.text]).toEqual([
        path === '/api/users' ? 502 : 504,
        'text/html; charset=utf-8',
        '<h1>Back in a minute</h1>\n',
      ]);
    }
  });

  it('ends the upstream request when its client leaves before the answer (nginx: proxy_ignore_client_abort off)', async () => {
    // an upstream that never answers: before, it kept the request (and a connection) until it did
    const arrived: Array<() => void> = [];
    const left: Array<() => void> = [];
    const upstream = createHttpServer((_req, res) => {
      res.once('close', () => left.shift()?.());
      arrived.shift()?.();
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    closers.push(async () => {
      upstream.closeAllConnections();
      await new Promise((resolve) => upstream.close(resolve));
    });
    const origin = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    for (const http2 of [false, true]) {
      const { base } = await startSite([{ prefix: '/report', upstream: origin }], null, { http2 });
      const reached = new Promise<void>((resolve) => arrived.push(resolve));
      const ended = new Promise<void>((resolve) => left.push(resolve));
      if (http2) {
        const session = http2Connect(base);
        closers.push(async () => session.close());
        const stream = session.request({ ':path': '/report/yearly' });
        stream.on('error', () => {});
        await reached;
        stream.close(http2Constants.NGHTTP2_CANCEL);
      } else {
        const client = new AbortController();
        const sent = request(`${base}/report/yearly`, { signal: client.signal }).catch((error: Error) => error.name);
        await reached;
        client.abort();
        expect(await sent).toBe('AbortError');
      }
      await ended; // the upstream saw its request end
    }
  });

  it("an upstream event stream's head reaches the client as the upstream flushes it; a HEAD to it is answered at once", async () => {
    const upstream = await startUpstream();
    const lines: string[] = [];
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }], null, { logLines: lines });
    // undici resolves at the head: the upstream sends nothing after it (before: no head until the first event)
    const controller = new AbortController();
    const res = await request(`${base}/api/head-then-silence`, { signal: controller.signal });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    controller.abort();
    await res.body.dump().catch(() => {});
    // the client left: the upstream is let go, and that is no error of it (before: an error line each time)
    await upstream.silentStreamsClosed(1);
    expect(lines.filter((line) => line.includes('the reply was cut'))).toEqual([]);
    const head = await request(`${base}/api/head-then-silence`, { method: 'HEAD' });
    expect(head.statusCode).toBe(200);
    expect(await head.body.text()).toBe('');
  });

  it('an event stream the upstream leaves silent past timeout is cut, and the log says why (nginx: upstream timed out while reading upstream)', async () => {
    const upstream = await startUpstream();
    const lines: string[] = [];
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin, timeout: '300ms' }], null, {
      logLines: lines,
    });
    const res = await request(`${base}/api/head-then-silence`);
    expect(res.statusCode).toBe(200);
    await expect(res.body.text()).rejects.toThrow();
    await until(() => lines.some((line) => line.includes('the reply was cut after its head')), 'the cut in the log');
    const line = JSON.parse(lines.find((l) => l.includes('the reply was cut after its head'))!);
    expect(line.msg).toBe(
      `proxy /api → ${upstream.origin}: the reply was cut after its head: the upstream sent nothing for 0.3s (proxy timeout; a stream sends a heartbeat more often, or raise it)`,
    );
    expect(line.level).toBe(50);
  });

  it("an upstream silent after its head for timeout: a plain 504, none of its headers (before: 500 in Fastify's JSON with undici's code)", async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin, timeout: '300ms' }]);
    // not an event stream: its head waits for its body, as any reply not streamed on purpose
    const res = await getJson(`${base}/api/head-then-silence?type=text/plain`);
    expect(res.status).toBe(504);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.headers['cache-control']).toBeUndefined();
    expect(res.text).toBe('Gateway Timeout\n');
    // over HTTP/2 the same, not a reset stream (before: RST_STREAM, no status)
    const h2 = await startSite([{ prefix: '/api', upstream: upstream.origin, timeout: '300ms' }], null, {
      http2: true,
    });
    const session = http2Connect(h2.base);
    closers.push(async () => session.close());
    const stream = session.request({ ':path': '/api/head-then-silence?type=text/plain' });
    const [headers] = (await once(stream, 'response')) as [Record<string, string | number>];
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (body += chunk));
    await once(stream, 'end');
    expect([headers[':status'], body]).toEqual([504, 'Gateway Timeout\n']);
  });

  it('answers 504 when the upstream takes longer than timeout, with one log line', async () => {
    const upstream = await startUpstream();
    const lines: string[] = [];
    const { base } = await startSite([{ prefix: '/slow', upstream: upstream.origin, timeout: '200ms' }], null, {
      logLines: lines,
    });
    const res = await getJson(`${base}/slow/report`);
    expect(res.status).toBe(504);
    expect(res.text).toBe('Gateway Timeout: the upstream for /slow did not answer within 0.2s\n');
    // before: reply-from's warning with undici's stack beside this error line
    const problems = lines
      .map((line) => JSON.parse(line) as { level: number; msg: string })
      .filter((l) => l.level >= 40);
    expect(problems.map((l) => l.msg)).toEqual([`proxy /slow → ${upstream.origin} failed: UND_ERR_HEADERS_TIMEOUT`]);
  });

  it('forwards WebSocket upgrades under the prefix with websocket: true', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([
      { prefix: '/ws', upstream: upstream.origin, websocket: true },
      { prefix: '/api', upstream: upstream.origin },
    ]);
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/chat?room=1`);
    closers.push(async () => ws.close());
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error('websocket failed to open')));
    });
    const reply = new Promise<string>((resolve) =>
      ws.addEventListener('message', (event) => resolve(String(event.data))),
    );
    ws.send('hello');
    expect(await reply).toBe('echo hello from /ws/chat?room=1 for 127.0.0.1');
    const closed = new Promise((resolve) => ws.addEventListener('close', resolve));
    ws.close(1000);
    await closed;
    // plain HTTP under the other prefix still works next to it
    expect((await getJson(`${base}/api/x`)).json().url).toBe('/api/x');
  });

  it('passes the client\'s handshake and own headers on to the WebSocket upstream (a tunnel, as nginx), not "_" names', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/ws', upstream: upstream.origin, websocket: true }]);
    const socket = createConnection(Number(new URL(base).port), '127.0.0.1');
    closers.push(async () => socket.destroy());
    socket.write(
      'GET /ws/keyed HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
        'X-Api-Key: k1\r\nAccept-Language: fr\r\nX_Real_IP: 6.6.6.6\r\nCookie: s=1\r\n' +
        'X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n\r\n',
    );
    await upstream.webSocketOpened('/ws/keyed');
    const headers = upstream.webSocketHeaders[upstream.webSockets.indexOf('/ws/keyed')]!;
    // before: only Cookie, Authorization, Origin and User-Agent went through
    expect(headers).toMatchObject({ 'x-api-key': 'k1', 'accept-language': 'fr', cookie: 's=1' });
    expect(headers.x_real_ip).toBeUndefined();
    // a client's forwarding claims do not reach the upstream
    expect(headers).toMatchObject({ 'x-forwarded-for': '127.0.0.1', 'x-real-ip': '127.0.0.1' });
    expect(headers.forwarded).toBeUndefined();
    // the client's own key: the upstream's accept is checked by the client, end to end
    expect(headers['sec-websocket-key']).toBe('dGhlIHNhbXBsZSBub25jZQ==');
    expect(headers).toMatchObject({ host: new URL(upstream.origin).host, 'x-forwarded-host': 'a.test' });
  });

  it('gives a WebSocket the subprotocol the upstream chose among all the client offered, and its cookie', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/ws', upstream: upstream.origin, websocket: true }]);
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/proto`, ['chat.v1', 'chat.v2']);
    closers.push(async () => ws.close());
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error('websocket failed to open')));
    });
    // before: only the first was offered upstream, and the server answered the client itself
    expect(ws.protocol).toBe('chat.v2');
    expect(upstream.webSocketHeaders[upstream.webSockets.indexOf('/ws/proto')]!['sec-websocket-protocol']).toBe(
      'chat.v1, chat.v2',
    );
    const reply = new Promise<string>((resolve) => ws.addEventListener('message', (e) => resolve(String(e.data))));
    ws.send('hi');
    expect(await reply).toBe('echo hi from /ws/proto for 127.0.0.1');
    const raw = await rawUpgrade(base, '/ws/proto2', 'Sec-WebSocket-Protocol: a, b\r\n');
    expect(raw).toMatch(/^HTTP\/1\.1 101 /);
    expect(raw).toMatch(/\r\nSec-WebSocket-Protocol: b\r\n/);
    expect(raw).toMatch(/\r\nSet-Cookie: ws=1\r\n/);
  });

  it('passes an upstream that refuses the upgrade (403) on to the client as it answered, never a 101', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/ws', upstream: upstream.origin, websocket: true }]);
    const raw = await rawUpgrade(base, '/ws/denied');
    expect(raw).toMatch(/^HTTP\/1\.1 403 /);
    expect(raw).toMatch(/\r\nx-why: denied\r\n/i);
    expect(raw).toMatch(/\r\nconnection: close\r\n/i);
    expect(raw.endsWith('\r\n\r\nno entry\n')).toBe(true);
    // the undici client sees a failed handshake, not a socket that opened and closed
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/denied`);
    closers.push(async () => ws.close());
    const opened = await new Promise<boolean>((resolve) => {
      ws.addEventListener('open', () => resolve(true));
      ws.addEventListener('error', () => resolve(false));
    });
    expect(opened).toBe(false);
  });

  it('answers a WebSocket upgrade 502 when its upstream is down, and 400 for a path that climbs out of the prefix', async () => {
    const upstream = await startUpstream();
    const down = `http://127.0.0.1:${await closedPort()}`;
    const { base } = await startSite([
      { prefix: '/ws', upstream: upstream.origin, websocket: true },
      { prefix: '/gone', upstream: down, websocket: true },
    ]);
    const gone = await rawUpgrade(base, '/gone/x');
    expect(gone).toMatch(/^HTTP\/1\.1 502 /);
    expect(gone).toContain('Bad Gateway: the upstream for /gone is not running (connection refused)');
    const climbing = await rawUpgrade(base, '/ws/%2e%2e/admin');
    expect(climbing).toMatch(/^HTTP\/1\.1 400 /);
    expect(upstream.webSockets).toEqual([]);
  });
});

describe('proxy route options', () => {
  it('matches a WebSocket target to the longest websocket: true prefix, giving its idle timeout', () => {
    const match = createWebSocketMatcher([
      { prefix: '/ws', upstream: 'http://a', websocket: true, websocket_idle_timeout: '5s' },
      { prefix: '/ws/live', upstream: 'http://a', websocket: true, websocket_idle_timeout: 0 },
      { prefix: '/wsx', upstream: 'http://a', websocket: true },
      { prefix: '/api', upstream: 'http://a' },
    ])!;
    expect(match('/ws')).toBe(5000);
    expect(match('/ws/chat?room=1')).toBe(5000);
    expect(match('/ws/live/1')).toBe(0);
    expect(match('/wsx/a')).toBe(60_000);
    expect(match('/wsy')).toBeUndefined();
    expect(match('/api/x')).toBeUndefined();
    expect(createWebSocketMatcher([{ prefix: '/api', upstream: 'http://a' }])).toBeNull();
  });

  it('checks every entry and names proxy[i].key', () => {
    const check = (routes: unknown) => () => resolveProxyRoutes(routes as ProxyRoute[]);
    expect(check([{ prefix: 'api', upstream: 'http://a' }])).toThrow(
      'warmpool option "proxy[0].prefix": must be a path like /api (no *, :, ? or #), got "api"',
    );
    expect(check([{ prefix: '/a/*', upstream: 'http://a' }])).toThrow(/proxy\[0\]\.prefix/);
    expect(check([{ prefix: '/a', upstream: 'localhost:9000' }])).toThrow(
      /proxy\[0\]\.upstream.*must be http:\/\/ or https:\/\//,
    );
    expect(check([{ prefix: '/a', upstream: 'not a url' }])).toThrow(/proxy\[0\]\.upstream.*must be a URL/);
    expect(check([{ prefix: '/a', upstream: 'http://a?x=1' }])).toThrow(/query or fragment/);
    expect(
      check([
        { prefix: '/a', upstream: 'http://a' },
        { prefix: '/a/', upstream: 'http://b' },
      ]),
    ).toThrow('warmpool option "proxy[1].prefix": /a is already proxied by proxy[0]');
    expect(check([{ prefix: '/a', upstream: 'http://a', rewrite_prefix: 'v1' }])).toThrow(/proxy\[0\]\.rewrite_prefix/);
    expect(check([{ prefix: '/a', upstream: 'http://a', timeout: 'soon' }])).toThrow(/proxy\[0\]\.timeout/);
    expect(check([{ prefix: '/a', upstream: 'http://a', timeout: 0 }])).toThrow(
      /proxy\[0\]\.timeout": must be more than 0/,
    );
    expect(check([{ prefix: '/a', upstream: 'http://a', websocket: 'yes' }])).toThrow(/proxy\[0\]\.websocket/);
    expect(check([{ prefix: '/a', upstream: 'http://a', websocket_idle_timeout: 'idle' }])).toThrow(
      /proxy\[0\]\.websocket_idle_timeout/,
    );
    expect(check([{ prefix: '/a', upstream: [] }])).toThrow(
      /"proxy\[0\]\.upstream": must be a URL .* or a list of them/,
    );
    expect(check([{ prefix: '/a', upstream: ['http://a', 'ftp://b'] }])).toThrow(
      /"proxy\[0\]\.upstream\[1\]": must be http:\/\/ or https:\/\//,
    );
    expect(check([{ prefix: '/a', upstream: ['http://a/v1', 'http://b/v2'] }])).toThrow(
      'warmpool option "proxy[0].upstream[1]": must have the path of proxy[0].upstream[0] ("/v1"): a request goes to any of them, got "http://b/v2"',
    );
    expect(check([{ prefix: '/a', upstream: ['http://a:80', 'http://a'] }])).toThrow(
      'warmpool option "proxy[0].upstream[1]": http://a is already proxy[0].upstream[0]',
    );
    expect(check({})).toThrow(/"proxy": must be a list/);
  });

  it('resolves the nginx-like defaults once', () => {
    expect(
      resolveProxyRoutes([
        { prefix: '/api/', upstream: 'http://127.0.0.1:9000' },
        {
          prefix: '/v',
          upstream: ['https://up.test/v1/', 'https://up2.test/v1'],
          timeout: '30s',
          websocket: true,
          websocket_idle_timeout: 0,
          preserve_host: true,
        },
      ]),
    ).toEqual([
      {
        prefix: '/api',
        upstream: 'http://127.0.0.1:9000',
        origins: ['http://127.0.0.1:9000'],
        label: 'http://127.0.0.1:9000',
        rewritePrefix: '/api',
        websocket: false,
        preserveHost: false,
        timeoutMs: 60_000,
        webSocketIdleMs: 60_000,
      },
      {
        prefix: '/v',
        upstream: 'https://up.test/v1',
        origins: ['https://up.test', 'https://up2.test'],
        label: 'https://up.test/v1, https://up2.test/v1',
        rewritePrefix: '/v1',
        websocket: true,
        preserveHost: true,
        timeoutMs: 30_000,
        webSocketIdleMs: 0,
      },
    ]);
  });
});
