import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { request, WebSocket } from 'undici';
import { warmpool } from '@warmpool/fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { registerProxies, resolveProxyRoutes, type ProxyRoute } from '../src/proxy.js';

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/**
 * A real upstream: answers JSON describing the request it got; /slow waits 2 s before answering;
 * WebSocket upgrades are accepted by hand (RFC 6455 handshake and frames) and echo text messages.
 */
async function startUpstream(): Promise<{ origin: string; port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
    if (req.url!.startsWith('/slow')) await new Promise((r) => setTimeout(r, 2000));
    if (res.destroyed) return;
    res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req, socket: Socket) => acceptWebSocket(req, socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((r) => server.close(r));
  });
  const { port } = server.address() as AddressInfo;
  return { origin: `http://127.0.0.1:${port}`, port, seen };
}

function acceptWebSocket(req: IncomingMessage, socket: Socket): void {
  const accept = createHash('sha1')
    .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
    .digest('base64');
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
  );
  let buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const frame = readFrame(buffer);
      if (frame === null) return;
      buffer = buffer.subarray(frame.length);
      if (frame.opcode === 0x1) {
        const text = `echo ${frame.payload.toString()} from ${req.url} for ${req.headers['x-forwarded-for']}`;
        socket.write(writeFrame(0x1, Buffer.from(text)));
      } else if (frame.opcode === 0x8) {
        socket.end(writeFrame(0x8, frame.payload.subarray(0, 2)));
        return;
      } else if (frame.opcode === 0x9) socket.write(writeFrame(0xa, frame.payload));
    }
  });
  socket.on('error', () => {});
}

/** One client frame (always masked), or null when more bytes are needed. */
function readFrame(buffer: Buffer): { opcode: number; payload: Buffer; length: number } | null {
  if (buffer.length < 2) return null;
  let length = buffer[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buffer.length < 4) return null;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return null;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  const masked = (buffer[1]! & 0x80) !== 0;
  const mask = masked ? buffer.subarray(offset, offset + 4) : null;
  if (masked) offset += 4;
  if (buffer.length < offset + length) return null;
  const payload = Buffer.from(buffer.subarray(offset, offset + length));
  if (mask !== null) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
  return { opcode: buffer[0]! & 0x0f, payload, length: offset + length };
}

/** A server frame: FIN set, unmasked. */
function writeFrame(opcode: number, payload: Buffer): Buffer {
  const head =
    payload.length < 126
      ? Buffer.from([0x80 | opcode, payload.length])
      : Buffer.from([0x80 | opcode, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, payload]);
}

/** A site with proxies next to the warmpool plugin (PHP takes what the proxies do not), listening on a real port. */
async function startSite(routes: ProxyRoute[]): Promise<{ app: FastifyInstance; base: string }> {
  const app = Fastify();
  await registerProxies(app, routes);
  await app.register(warmpool, { command: ['php', fixture('echo.php')], pool: { num_workers: 1 } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => app.close());
  const { port } = app.server.address() as AddressInfo;
  return { app, base: `http://127.0.0.1:${port}` };
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

  it('adds X-Forwarded-For (appended), -Proto and -Host; sends the upstream its own Host', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const { headers } = (
      await getJson(`${base}/api/h`, { headers: { host: 'shop.test', 'x-forwarded-for': '203.0.113.7' } })
    ).json();
    expect(headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(headers['x-forwarded-proto']).toBe('http');
    expect(headers['x-forwarded-host']).toBe('shop.test');
    expect(headers.host).toBe(`127.0.0.1:${upstream.port}`);
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

  it('matches on segment boundaries: /apiary and the rest go to PHP', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    for (const path of ['/apiary', '/', '/index.php?x=1']) {
      const res = await getJson(`${base}${path}`);
      expect(res.json()).toHaveProperty('pid'); // echo.php answered
    }
    expect(upstream.seen).toEqual([]);
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

  it('answers 504 when the upstream takes longer than timeout', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/slow', upstream: upstream.origin, timeout: '200ms' }]);
    const res = await getJson(`${base}/slow/report`);
    expect(res.status).toBe(504);
    expect(res.text).toBe('Gateway Timeout: the upstream for /slow did not answer within 0.2s\n');
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
});

describe('proxy route options', () => {
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
    expect(check({})).toThrow(/"proxy": must be a list/);
  });

  it('resolves the nginx-like defaults once', () => {
    expect(
      resolveProxyRoutes([
        { prefix: '/api/', upstream: 'http://127.0.0.1:9000' },
        { prefix: '/v', upstream: 'https://up.test/v1/', timeout: '30s', websocket: true },
      ]),
    ).toEqual([
      { prefix: '/api', upstream: 'http://127.0.0.1:9000', rewritePrefix: '/api', websocket: false, timeoutMs: 60_000 },
      { prefix: '/v', upstream: 'https://up.test/v1', rewritePrefix: '/v1', websocket: true, timeoutMs: 30_000 },
    ]);
  });
});
