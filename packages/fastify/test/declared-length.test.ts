// A streamed response whose Content-Length PHP got wrong, over a real keep-alive connection, in both
// modes (a worker streaming frames, a classic script past the 1 MiB whole-body bound): the client
// must never read the rest of one body as the next response, nor wait for bytes that never come.
import { constants, connect as http2Connect } from 'node:http2';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { warmpool, type WarmpoolOptions } from '../src/index.js';

const MiB = 1024 * 1024;
const PATTERN = '0123456789abcdef';
const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

const MODES: Array<[string, WarmpoolOptions, string]> = [
  [
    'worker',
    { command: ['php', fileURLToPath(new URL('../../../test/fixtures/php/big-stream.php', import.meta.url))] },
    '/',
  ],
  [
    'classic',
    { fastcgi: { root: fileURLToPath(new URL('../../../test/fixtures/sites/classic-app', import.meta.url)) } },
    '/length.php',
  ],
];

async function listen(options: WarmpoolOptions, http2 = false): Promise<number> {
  const app = (http2 ? Fastify({ http2: true }) : Fastify()) as FastifyInstance;
  apps.push(app);
  await app.register(warmpool, { pool: { num_workers: 1 }, ...options });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return (app.server.address() as { port: number }).port;
}

/** Writes `requests` on one connection at once and reads until the server closes it. */
function exchange(port: number, requests: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(requests.join('')));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

/** The responses in `bytes`, each read as a client does: its head, then Content-Length bytes. */
function responses(bytes: Buffer): Array<{ head: string; body: Buffer }> {
  const out: Array<{ head: string; body: Buffer }> = [];
  let at = 0;
  while (at < bytes.length) {
    const end = bytes.indexOf('\r\n\r\n', at);
    if (end < 0)
      throw new Error(`no response head at byte ${at}: ${JSON.stringify(bytes.subarray(at, at + 40).toString())}`);
    const head = bytes.subarray(at, end).toString('latin1');
    if (!head.startsWith('HTTP/1.1 '))
      throw new Error(`not a response at byte ${at}: ${JSON.stringify(head.slice(0, 40))}`);
    const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? Number.NaN);
    const body = bytes.subarray(end + 4, end + 4 + length);
    out.push({ head, body });
    at = end + 4 + length;
  }
  return out;
}

const get = (path: string, close = false) =>
  `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;

describe.each(MODES)("a streamed body held to PHP's Content-Length (%s mode)", (_mode, options, path) => {
  it('bytes past it are dropped: the next response on the connection is read whole, right after', async () => {
    const port = await listen(options);
    const bytes = await exchange(port, [get(`${path}?mb=2&length=10`), get(`${path}?mb=2&length=${2 * MiB}`, true)]);
    const [short, whole, ...rest] = responses(bytes);
    expect(short!.head).toMatch(/^HTTP\/1\.1 200 .*\r\ncontent-length: 10\r\n/is);
    expect(short!.body.toString()).toBe(PATTERN.slice(0, 10));
    expect(whole!.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(whole!.body.length).toBe(2 * MiB);
    expect(whole!.body.subarray(-16).toString()).toBe(PATTERN);
    expect(rest).toEqual([]);
  });

  it('a body that ends short of it closes the connection instead of leaving the client waiting', async () => {
    const port = await listen(options);
    // keep-alive asked for: only the server's close ends the wait (a test timeout without it)
    const bytes = await exchange(port, [get(`${path}?mb=2&length=${3 * MiB}`)]);
    const end = bytes.indexOf('\r\n\r\n');
    expect(bytes.subarray(0, end).toString()).toMatch(new RegExp(`content-length: ${3 * MiB}`, 'i'));
    // what was on its way when the body failed may be cut: the client sees a short body either way
    expect(bytes.length - end - 4).toBeGreaterThan(0);
    expect(bytes.length - end - 4).toBeLessThanOrEqual(2 * MiB);
  });

  it('a Content-Length that is not one number is left out: the body goes chunked, whole', async () => {
    const port = await listen(options);
    const bytes = await exchange(port, [get(`${path}?mb=2&length=ten`, true)]);
    const head = bytes.subarray(0, bytes.indexOf('\r\n\r\n')).toString();
    expect(head).not.toMatch(/content-length/i);
    expect(head).toMatch(/transfer-encoding: chunked/i);
    expect(bytes.length).toBeGreaterThan(2 * MiB);
  });
});

describe.each(MODES)("a whole body held to PHP's Content-Length (%s mode)", (_mode, options, path) => {
  const ask = (query: string) => `${path}${path.includes('?') ? '&' : '?'}${query}`;

  it('bytes past it are dropped, as from a stream: the next response on the connection is read whole', async () => {
    const port = await listen(options);
    const bytes = await exchange(port, [get(ask('bytes=100&length=10')), get(ask('bytes=5000&length=5000'), true)]);
    const [short, whole, ...rest] = responses(bytes);
    expect(short!.head).toMatch(/^HTTP\/1\.1 200 .*\r\ncontent-length: 10\r\n/is);
    expect(short!.body.toString()).toBe(PATTERN.slice(0, 10));
    expect(whole!.body.length).toBe(5000);
    expect(rest).toEqual([]);
  });

  it('a body short of it keeps the declared length and closes the connection: the client sees a cut download', async () => {
    const port = await listen(options);
    // keep-alive asked for: only the server's close ends the wait (a test timeout without it)
    const bytes = await exchange(port, [get(ask('bytes=300000&length=600000'))]);
    const end = bytes.indexOf('\r\n\r\n');
    // before, the length became the body's (300000): a complete-looking 200
    expect(bytes.subarray(0, end).toString()).toMatch(/content-length: 600000\r\n/i);
    expect(bytes.length - end - 4).toBeLessThanOrEqual(300000);
  });
});

describe('over HTTP/2 (worker mode)', () => {
  /** One stream: its Content-Length, the bytes of its body, and its close code (0: NO_ERROR). */
  async function stream(port: number, path: string): Promise<{ length: string; bytes: number; rstCode: number }> {
    const session = http2Connect(`http://127.0.0.1:${port}`);
    try {
      return await new Promise((resolve, reject) => {
        const req = session.request({ ':path': path });
        let length = '';
        let bytes = 0;
        req.on('response', (headers) => {
          length = String(headers['content-length']);
        });
        req.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
        });
        req.on('error', () => {});
        req.on('close', () => resolve({ length, bytes, rstCode: req.rstCode ?? 0 }));
        session.on('error', reject);
      });
    } finally {
      session.close();
    }
  }

  it('bytes past the declared length are cut; a body that ends short resets its stream', async () => {
    const port = await listen(MODES[0]![1], true);
    expect(await stream(port, '/?mb=1&length=10')).toEqual({ length: '10', bytes: 10, rstCode: 0 });
    const short = await stream(port, `/?mb=1&length=${3 * MiB}`);
    expect(short.length).toBe(String(3 * MiB));
    expect(short.bytes).toBeLessThanOrEqual(MiB);
    // reset as broken: a NO_ERROR reset (Fastify's) may pass for a whole body
    expect(short.rstCode).toBe(constants.NGHTTP2_INTERNAL_ERROR);
  });

  it('a whole body is held to it too: cut when longer, its stream reset when shorter', async () => {
    const port = await listen(MODES[0]![1], true);
    expect(await stream(port, '/?bytes=100&length=10')).toEqual({ length: '10', bytes: 10, rstCode: 0 });
    const short = await stream(port, '/?bytes=300000&length=600000');
    expect(short.length).toBe('600000');
    expect(short.bytes).toBeLessThanOrEqual(300000);
    expect(short.rstCode).toBe(constants.NGHTTP2_INTERNAL_ERROR);
  });
});
