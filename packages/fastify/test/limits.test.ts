import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectHttp2 } from 'node:http2';
import { connect as connectTls } from 'node:tls';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import {
  applyLimits,
  DEFAULT_MAX_REQUEST_SIZE_MB,
  resolveLimits,
  serverLimits,
  type LimitOptions,
} from '../src/limits.js';
import { makeTlsPair } from '../../../test/helpers/tls-pair.js';
import { uploadRefused } from '../../../test/helpers/raw-upload.js';
import { until } from '../../../test/helpers/until.js';

const apps: FastifyInstance[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

interface Harness {
  app: FastifyInstance;
  port: number;
  /** bodies the catch-all handler received (the stand-in for PHP) */
  handled: number[];
}

/** The integrator's wiring: an encapsulated child with the '*' buffer parser, applyLimits, and a catch-all. */
async function harness(options: LimitOptions, listen = true): Promise<Harness> {
  const limits = resolveLimits(options);
  const app = Fastify();
  apps.push(app);
  const handled: number[] = [];
  app.post('/host/json', async (request) => ({ host: request.body }));
  await app.register(async (child) => {
    child.removeAllContentTypeParsers();
    child.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: limits.maxRequestBytes }, (_request, body, done) =>
      done(null, body),
    );
    applyLimits(child, limits);
    child.route({
      method: ['GET', 'POST', 'PUT', 'DELETE'],
      url: '/*',
      handler: async (request) => {
        const length = (request.body as Buffer | undefined)?.length ?? 0;
        handled.push(length);
        return { length };
      },
    });
  });
  if (listen) await app.listen({ port: 0, host: '127.0.0.1' });
  else await app.ready();
  return { app, port: listen ? (app.server.address() as AddressInfo).port : 0, handled };
}

/** A raw HTTP/1.1 connection that records what arrives and when the server ends it. */
class RawClient {
  readonly socket: Socket;
  data = '';
  ended = false;
  readonly closed: Promise<void>;
  #waiters: (() => void)[] = [];

  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    sockets.push(this.socket);
    this.socket.setEncoding('latin1');
    this.socket.on('data', (chunk: string) => {
      this.data += chunk;
      for (const wake of this.#waiters.splice(0)) wake();
    });
    this.socket.on('error', () => {});
    this.closed = new Promise((resolve) => {
      this.socket.on('end', () => {
        this.ended = true;
        resolve();
      });
      this.socket.on('close', () => resolve());
    });
  }

  write(text: string | Buffer): boolean {
    return this.socket.write(text);
  }

  /** Resolves once the received text contains `needle`. */
  async waitFor(needle: string): Promise<string> {
    while (!this.data.includes(needle)) {
      if (this.socket.destroyed)
        throw new Error(`connection closed before ${JSON.stringify(needle)}; got ${JSON.stringify(this.data)}`);
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        this.socket.once('close', resolve);
      });
    }
    return this.data;
  }
}

function statusOf(response: string): number {
  const match = /^HTTP\/1\.1 (\d{3})/m.exec(response.replace(/^HTTP\/1\.1 100 Continue\r\n\r\n/, ''));
  return match === null ? 0 : Number(match[1]);
}

describe('resolveLimits', () => {
  it(`defaults to ${DEFAULT_MAX_REQUEST_SIZE_MB} MB and leaves the other limits to the server`, () => {
    expect(resolveLimits({})).toEqual({
      maxRequestBytes: 100 * 1024 * 1024,
      maxHeaderCount: null,
      maxHeaderBytes: null,
      headersTimeoutMs: null,
      requestTimeoutMs: null,
      bodyTimeoutMs: 60_000,
    });
    expect(resolveLimits({ body_timeout: '5s' }).bodyTimeoutMs).toBe(5000);
    expect(resolveLimits({ body_timeout: 0 }).bodyTimeoutMs).toBe(0);
    expect(() => resolveLimits({ body_timeout: 'soon' })).toThrow(/body_timeout/);
  });

  it('reads megabytes like RoadRunner (0 = the default) and durations like the pool', () => {
    expect(resolveLimits({ max_request_size: 2 }).maxRequestBytes).toBe(2 * 1024 * 1024);
    expect(resolveLimits({ max_request_size: 0 }).maxRequestBytes).toBe(100 * 1024 * 1024);
    expect(resolveLimits({ max_request_size: 0.5 }).maxRequestBytes).toBe(512 * 1024);
    expect(
      resolveLimits({ headers_timeout: '10s', request_timeout: '1m30s', max_header_count: 50, max_header_size: 8192 }),
    ).toMatchObject({
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 90_000,
      maxHeaderCount: 50,
      maxHeaderBytes: 8192,
    });
    expect(resolveLimits({ request_timeout: 0 }).requestTimeoutMs).toBe(0);
  });

  it.each([
    [{ max_request_size: -1 }, 'max_request_size'],
    [{ max_request_size: '10M' }, 'max_request_size'],
    [{ max_header_count: 0 }, 'max_header_count'],
    [{ max_header_count: 1.5 }, 'max_header_count'],
    [{ max_header_size: 100 }, 'max_header_size'],
    [{ headers_timeout: 'soon' }, 'headers_timeout'],
    [{ request_timeout: -5 }, 'request_timeout'],
    [{ headers_timeout: '20s', request_timeout: '10s' }, 'headers_timeout'],
  ])('rejects %j naming %s', (raw, key) => {
    try {
      resolveLimits(raw as LimitOptions);
      expect.unreachable();
    } catch (error) {
      expect((error as { code: string }).code).toBe('WP_FASTIFY_INVALID_OPTION');
      expect((error as { details: { key: string } }).details.key).toBe(key);
      expect((error as Error).message).toContain(`"${key}"`);
    }
  });
});

describe('serverLimits (Fastify factory options)', () => {
  it('is empty when nothing server-level is configured', () => {
    expect(serverLimits(resolveLimits({ max_request_size: 5 }))).toEqual({});
  });

  it('passes timeouts, header size and a checking interval Fastify and Node accept', async () => {
    const options = serverLimits(
      resolveLimits({ headers_timeout: '2s', request_timeout: '30s', max_header_size: 8192 }),
    );
    expect(options).toEqual({
      requestTimeout: 30_000,
      http: { headersTimeout: 2000, requestTimeout: 30_000, maxHeaderSize: 8192, connectionsCheckingInterval: 500 },
    });
    const app = Fastify(options);
    apps.push(app);
    await app.ready();
    expect(app.server.headersTimeout).toBe(2000);
    expect(app.server.requestTimeout).toBe(30_000);
    expect((app.server as unknown as { maxHeaderSize: number }).maxHeaderSize).toBe(8192);
  });
});

describe('max_request_size on a real connection', () => {
  it('answers 413 to a Content-Length over the limit without reading the body, then closes; other clients are unaffected', async () => {
    const { port, handled } = await harness({ max_request_size: 0.001 }); // 1048 bytes
    const bystander = new RawClient(port);
    bystander.write('GET /before HTTP/1.1\r\nHost: t\r\n\r\n');
    await bystander.waitFor('{"length":0}');

    const client = new RawClient(port);
    client.write(
      'POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\nContent-Length: 10000000000\r\n\r\n',
    );
    const response = await client.waitFor('request body is too large');
    expect(statusOf(response)).toBe(413);
    expect(response.toLowerCase()).toContain('connection: close');
    await client.closed; // the server ended the connection although the body never came
    expect(client.ended).toBe(true);

    bystander.data = '';
    bystander.write('GET /after HTTP/1.1\r\nHost: t\r\n\r\n');
    await bystander.waitFor('{"length":0}');
    expect(statusOf(bystander.data)).toBe(200);
    expect(handled).toEqual([0, 0]);
  });

  it('answers 413 to a GET announcing a body over the limit (Fastify alone would drain it)', async () => {
    const { port, handled } = await harness({ max_request_size: 0.001 });
    const client = new RawClient(port);
    client.write('GET /page HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n\r\n');
    expect(statusOf(await client.waitFor('too large'))).toBe(413);
    await client.closed;
    expect(handled).toEqual([]);
  });

  it('stops a chunked body when it crosses the limit, answers 413 and closes while the client is still sending', async () => {
    const { port, handled } = await harness({ max_request_size: 0.01 }); // 10485 bytes
    const client = new RawClient(port);
    client.write('POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n');
    const chunk = `400\r\n${'x'.repeat(0x400)}\r\n`;
    // keep sending until the server answers: it must not wait for the end of the body
    let sent = 0;
    while (!client.data.includes('\r\n\r\n') && !client.socket.destroyed && sent < 1000) {
      client.write(chunk);
      sent++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    const response = await client.waitFor('too large');
    expect(statusOf(response)).toBe(413);
    expect(response.toLowerCase()).toContain('connection: close');
    await client.closed;
    expect(sent).toBeGreaterThan(10); // it did cross 10 KiB before the answer
    expect(sent).toBeLessThan(1000); // and the answer came without the client ever finishing
    expect(handled).toEqual([]);
  });

  it('a client still sending a body over the limit reads the whole 413, not a reset: the connection lingers until it stops', async () => {
    const { port, handled } = await harness({ max_request_size: 1 });
    // Content-Length (413 before the body) and chunked (413 once past the limit), each sent whole,
    // as fast as the connection takes it: Node closed with the body unread, a RST (EPIPE / ECONNRESET)
    for (const [head, chunked] of [
      [
        `POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\nContent-Length: ${50 * 1024 * 1024}\r\n\r\n`,
        false,
      ],
      ['POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n', true],
    ] as const) {
      const outcome = await uploadRefused(port, head, { bodyBytes: 50 * 1024 * 1024, chunked, untilEnd: true });
      expect([outcome.error, outcome.status, outcome.sent]).toEqual([null, 413, 50 * 1024 * 1024]);
      expect(JSON.parse(outcome.body!)).toMatchObject({ statusCode: 413 });
    }
    // a client that stops once answered, then sends a request behind the body: never parsed, never run
    const pipelined = await uploadRefused(
      port,
      `POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\nContent-Length: ${50 * 1024 * 1024}\r\n\r\n`,
      { bodyBytes: 50 * 1024 * 1024, after: 'GET /behind HTTP/1.1\r\nHost: t\r\n\r\n' },
    );
    expect([pipelined.error, pipelined.status]).toEqual([null, 413]);
    expect(pipelined.text.match(/HTTP\/1\.1 \d{3}/g)).toEqual(['HTTP/1.1 413']);
    expect(handled).toEqual([]);
  });

  it('passes a chunked body within the limit', async () => {
    const { port, handled } = await harness({ max_request_size: 0.01 });
    const client = new RawClient(port);
    client.write(
      `POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    );
    expect(statusOf(await client.waitFor('{"length":5}'))).toBe(200);
    expect(handled).toEqual([5]);
  });

  it('answers an oversized Expect: 100-continue with 413 and no 100, so the client never sends the body', async () => {
    const { port, handled } = await harness({ max_request_size: 0.001 });
    const client = new RawClient(port);
    client.write(
      'PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Type: application/octet-stream\r\nExpect: 100-continue\r\nContent-Length: 50000000\r\n\r\n',
    );
    const response = await client.waitFor('too large');
    expect(response).not.toContain('100 Continue');
    expect(statusOf(response)).toBe(413);
    await client.closed;
    expect(handled).toEqual([]);
  });

  it('still sends 100 Continue when the body is read: to the PHP route and to the host app’s own routes', async () => {
    const { port, handled } = await harness({ max_request_size: 0.001 });
    const toPhp = new RawClient(port);
    toPhp.write(
      'POST /upload HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n',
    );
    await toPhp.waitFor('HTTP/1.1 100 Continue\r\n\r\n');
    toPhp.write('hello');
    expect(statusOf(await toPhp.waitFor('{"length":5}'))).toBe(200);
    expect(handled).toEqual([5]);

    const toHost = new RawClient(port);
    toHost.write(
      'POST /host/json HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 7\r\n\r\n',
    );
    await toHost.waitFor('HTTP/1.1 100 Continue\r\n\r\n');
    toHost.write('{"a":1}');
    expect(await toHost.waitFor('{"host":{"a":1}}')).toContain('200 OK');
  });

  it('answers 413 through fastify.inject too (both the early hook and the parser)', async () => {
    const { app } = await harness({ max_request_size: 0.001 }, false);
    const big = await app.inject({
      method: 'POST',
      url: '/x',
      payload: Buffer.alloc(2000),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(big.statusCode).toBe(413);
    expect(big.json().code).toBe('WP_FASTIFY_BODY_TOO_LARGE');
    expect(big.headers.connection).toBe('close');
    const ok = await app.inject({
      method: 'POST',
      url: '/x',
      payload: Buffer.alloc(1000),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(ok.json()).toEqual({ length: 1000 });
  });
});

describe('header limits', () => {
  it('max_header_count: 431 above the count (Node’s maxHeadersCount would silently drop them), counted on raw headers', async () => {
    const { app, handled } = await harness({ max_header_count: 10 }, false);
    const headers = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, String(i)]));
    // inject adds host and user-agent: 8 + 2 = 10 is fine, 9 + 2 = 11 is not
    expect((await app.inject({ url: '/a', headers: headers(8) })).statusCode).toBe(200);
    const res = await app.inject({ url: '/a', headers: headers(9) });
    expect(res.statusCode).toBe(431);
    expect(res.json().message).toContain('max_header_count');
    expect(handled).toEqual([0]);
  });

  it('without max_header_count: 431 past the fields Node keeps (1000), so no header escapes the checks', async () => {
    const { port, handled } = await harness({ max_request_size: 1 });
    const junk = (n: number) => Array.from({ length: n }, (_, i) => `h${i}:y\r\n`).join('');
    // a Content-Length past max_request_size as field 1,001: Node 20 drops it from request.headers
    // (our 431 names max_header_count); Node 22 and later refuse such a head themselves (431 too)
    const over = new RawClient(port);
    over.write(`POST /a HTTP/1.1\r\nHost: t\r\n${junk(999)}Content-Length: 2000000\r\n\r\n`);
    const answer = await over.waitFor('431');
    expect(statusOf(answer)).toBe(431);
    await over.closed;
    expect(over.data).toMatch(/more than 1000 header fields \(max_header_count\)|maximum allowed HTTP header size/);
    // a head Node keeps whole: the same Content-Length gets its 413
    const seen = new RawClient(port);
    seen.write(`POST /a HTTP/1.1\r\nHost: t\r\n${junk(900)}Content-Length: 2000000\r\n\r\n`);
    expect(statusOf(await seen.waitFor('413'))).toBe(413);
    const fine = new RawClient(port);
    fine.write(`POST /a HTTP/1.1\r\nHost: t\r\n${junk(900)}Content-Length: 5\r\n\r\nhello`);
    expect(statusOf(await fine.waitFor('{"length":5}'))).toBe(200);
    expect(handled).toEqual([5]);
  });

  it("HTTP/2.0 in an HTTP/1 request line: 505 and the connection closed (Node's parser takes it)", async () => {
    const { port, handled } = await harness({});
    const client = new RawClient(port);
    client.write('GET /a HTTP/2.0\r\nHost: t\r\n\r\n');
    const answer = await client.waitFor('WP_FASTIFY_HTTP_VERSION');
    expect(statusOf(answer)).toBe(505);
    expect(answer).toMatch(/connection: close/i);
    await client.closed;
    expect(handled).toEqual([]);
  });

  it('a body in a transfer coding other than chunked alone (gzip, chunked): 501 before any handler, as nginx', async () => {
    const { port, handled } = await harness({});
    const client = new RawClient(port);
    client.write('POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n');
    const answer = await client.waitFor('WP_FASTIFY_TRANSFER_ENCODING');
    expect(statusOf(answer)).toBe(501);
    await client.closed;
    expect(handled).toEqual([]);
    const chunked = new RawClient(port);
    chunked.write('POST /a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    expect(statusOf(await chunked.waitFor('{"length":5}'))).toBe(200);
  });

  it('max_header_size: 431 for a request head over the size, on a server Fastify already created', async () => {
    const { port, handled } = await harness({ max_header_size: 2048 });
    const client = new RawClient(port);
    client.write(`GET /a HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(4000)}\r\n\r\n`);
    expect(statusOf(await client.waitFor('431'))).toBe(431);
    await client.closed;
    const fine = new RawClient(port);
    fine.write(`GET /a HTTP/1.1\r\nHost: t\r\nX-Small: ${'a'.repeat(1000)}\r\n\r\n`);
    expect(statusOf(await fine.waitFor('{"length":0}'))).toBe(200);
    expect(handled).toEqual([0]);
  });
});

describe('slow clients', () => {
  async function trickle(client: RawClient, text: string, stopWhen: () => boolean): Promise<number> {
    let sent = 0;
    for (const ch of text) {
      if (stopWhen() || client.socket.destroyed) break;
      client.write(ch);
      sent++;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return sent;
  }

  it('headers_timeout cuts a client sending its headers slowly (slowloris) with 408 and closes', async () => {
    const { port, handled } = await harness({ headers_timeout: '300ms' });
    const client = new RawClient(port);
    const head = `GET /slow HTTP/1.1\r\nHost: t\r\nX-Pad: ${'p'.repeat(200)}\r\n\r\n`; // ~12 s at 50 ms a byte
    const sent = await trickle(client, head, () => client.data.length > 0);
    expect(statusOf(await client.waitFor('408'))).toBe(408);
    await client.closed;
    expect(sent).toBeLessThan(head.length);
    expect(handled).toEqual([]);
  });

  it('request_timeout cuts a client sending its body slowly with 408', async () => {
    const { port, handled } = await harness({ request_timeout: '400ms', headers_timeout: '400ms' });
    const client = new RawClient(port);
    client.write('POST /slow HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 200\r\n\r\n');
    const sent = await trickle(client, 'b'.repeat(200), () => client.data.length > 0);
    expect(statusOf(await client.waitFor('408'))).toBe(408);
    await client.closed;
    expect(sent).toBeLessThan(200);
    expect(handled).toEqual([]);
  });

  it('body_timeout cuts a client that stops sending its body (fixed length or chunked) with 408, long before request_timeout', async () => {
    const { port, handled } = await harness({ body_timeout: '300ms', headers_timeout: '60s', request_timeout: '10m' });
    const fixed = new RawClient(port);
    fixed.write(
      'POST /stalled HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 200\r\n\r\nbbbbbbbbbb',
    );
    const answer = await fixed.waitFor('WP_FASTIFY_BODY_TIMEOUT');
    expect(statusOf(answer)).toBe(408);
    expect(answer).toMatch(/connection: close/i);
    await fixed.closed;
    const chunked = new RawClient(port);
    chunked.write(
      'POST /stalled HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n',
    );
    expect(statusOf(await chunked.waitFor('WP_FASTIFY_BODY_TIMEOUT'))).toBe(408);
    await chunked.closed;
    // nothing of the body at all
    const silent = new RawClient(port);
    silent.write('PUT /stalled HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n');
    expect(statusOf(await silent.waitFor('WP_FASTIFY_BODY_TIMEOUT'))).toBe(408);
    expect(handled).toEqual([]);
  });

  it('body_timeout times the silence between two pieces of a body, not the whole body: a steady slow client is served', async () => {
    const { port, handled } = await harness({ body_timeout: '1s' });
    const client = new RawClient(port);
    client.write('POST /steady HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 40\r\n\r\n');
    // 40 bytes 50 ms apart: twice the timeout in all
    const sent = await trickle(client, 'b'.repeat(40), () => client.data.length > 0);
    expect(sent).toBe(40);
    expect(statusOf(await client.waitFor('{"length":40}'))).toBe(200);
    expect(handled).toEqual([40]);
  });

  it('body_timeout does not count a wait that is ours (a body nobody reads yet), and starts after 100 Continue', async () => {
    const limits = resolveLimits({ body_timeout: '200ms' });
    const app = Fastify();
    apps.push(app);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let reading = 0;
    await app.register(async (child) => {
      child.removeAllContentTypeParsers();
      // a reader that starts late, as a request queued for a busy PHP pool
      child.addContentTypeParser('*', { bodyLimit: limits.maxRequestBytes }, (_request, payload, done) => {
        reading++;
        void released
          .then(async () => {
            let length = 0;
            for await (const chunk of payload) length += (chunk as Buffer).length;
            done(null, length);
          })
          // a body cut at body_timeout fails its reader (its 408 is sent already)
          .catch((error: Error) => done(error, undefined));
      });
      applyLimits(child, limits);
      child.post('/*', async (request) => ({ length: request.body }));
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    // a body far over what the request's buffer and the sockets hold: the client's writes stop
    const big = new RawClient(port);
    const body = Buffer.alloc(8 * 1024 * 1024, 'b');
    big.write(`POST /big HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n\r\n`);
    expect(big.write(body)).toBe(false);
    // the body's reader was called; its client is still sending
    await until(() => reading === 1, 'the big body read');
    // with Expect, the client sends nothing before 100 Continue, which comes when the body is read
    const polite = new RawClient(port);
    polite.write(
      'POST /polite HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n',
    );
    await until(() => reading === 2, 'the polite body read');
    // five times the timeout with both waiting on us: neither is cut
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(big.data).toBe('');
    expect(polite.data).toBe('');
    release();
    await polite.waitFor('100 Continue');
    polite.write('abc');
    expect(statusOf(await polite.waitFor('{"length":3}'))).toBe(200);
    expect(statusOf(await big.waitFor(`{"length":${body.length}}`))).toBe(200);
    // 100 Continue then silence: cut
    const quiet = new RawClient(port);
    quiet.write(
      'POST /quiet HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n',
    );
    await quiet.waitFor('100 Continue');
    expect(statusOf(await quiet.waitFor('WP_FASTIFY_BODY_TIMEOUT'))).toBe(408);
  });

  it('leaves a prompt client alone', async () => {
    const { port, handled } = await harness({ headers_timeout: '300ms', request_timeout: '1s' });
    const client = new RawClient(port);
    client.write('POST /quick HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc');
    expect(statusOf(await client.waitFor('{"length":3}'))).toBe(200);
    expect(handled).toEqual([3]);
  });
});

describe('an HTTP/2 server that also takes HTTP/1.1 (allowHTTP1)', () => {
  it('keeps headers_timeout and max_header_size for its HTTP/1.1 connections (Node would keep 60 s and 16 KB)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wp-limits-h2-'));
    try {
      const { cert, key } = await makeTlsPair(dir);
      const app = Fastify({
        http2: true,
        https: { allowHTTP1: true, cert: await readFile(cert), key: await readFile(key) },
      });
      apps.push(app as unknown as FastifyInstance);
      await app.register(async (child) => {
        // typed for HTTP/1 instances, as the plugin is; an HTTP/2 one is what it meets here
        applyLimits(
          child as unknown as FastifyInstance,
          resolveLimits({ headers_timeout: '300ms', max_header_size: 65_536 }),
        );
        child.get('/*', async () => 'ok');
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      /** Sends `head` over TLS as HTTP/1.1; what the server sends until it closes. */
      const exchange = async (head: string): Promise<string> => {
        const socket = connectTls({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
        sockets.push(socket);
        socket.on('error', () => {});
        await once(socket, 'secureConnect');
        socket.write(head);
        let text = '';
        socket.on('data', (chunk: Buffer) => {
          text += chunk.toString('latin1');
        });
        await once(socket, 'close');
        return text;
      };
      expect(statusOf(await exchange('GET / HTTP/1.1\r\nHost: t\r\n'))).toBe(408);
      const big = await exchange(
        `GET / HTTP/1.1\r\nHost: t\r\nX-Big: ${'a'.repeat(30_000)}\r\nConnection: close\r\n\r\n`,
      );
      expect(statusOf(big)).toBe(200);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('counts HTTP/2 header fields as HTTP/1.1 does: no pseudo-headers but :authority, cookie crumbs as one Cookie', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wp-limits-h2-count-'));
    try {
      const { cert, key } = await makeTlsPair(dir);
      const app = Fastify({ http2: true, https: { cert: await readFile(cert), key: await readFile(key) } });
      apps.push(app as unknown as FastifyInstance);
      await app.register(async (child) => {
        applyLimits(child as unknown as FastifyInstance, resolveLimits({ max_header_count: 10 }));
        child.get('/*', async () => 'ok');
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      const session = connectHttp2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
      const statusWith = async (headers: Record<string, string | string[]>) => {
        const stream = session.request({ ':path': '/', ...headers });
        const [head] = (await once(stream, 'response')) as [Record<string, unknown>];
        stream.resume();
        await once(stream, 'end');
        return head[':status'];
      };
      const fields = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-f${i}`, 'v']));
      try {
        // :authority and 9 fields are 10, as Host and 9 fields over HTTP/1.1 (the other pseudo-headers
        // were counted before: 3 fields fewer than HTTP/1.1 took)
        expect(await statusWith(fields(9))).toBe(200);
        expect(await statusWith(fields(10))).toBe(431);
        // 30 cookies a browser sends as crumbs are one Cookie line (before: 30 fields, 431)
        const crumbs = Array.from({ length: 30 }, (_, i) => `c${i}=${i}`);
        expect(await statusWith({ ...fields(5), cookie: crumbs })).toBe(200);
      } finally {
        session.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("answers 431 to an HTTP/2 head over max_header_size, and over Node's own 16 KB when unset (HTTP/2 alone took ~64 KB)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wp-limits-h2-'));
    try {
      const { cert, key } = await makeTlsPair(dir);
      const ports: number[] = [];
      for (const options of [{ max_header_size: 8192 }, {}] as LimitOptions[]) {
        const app = Fastify({ http2: true, https: { cert: await readFile(cert), key: await readFile(key) } });
        apps.push(app as unknown as FastifyInstance);
        await app.register(async (child) => {
          applyLimits(child as unknown as FastifyInstance, resolveLimits(options));
          child.get('/*', async () => 'ok');
        });
        await app.listen({ port: 0, host: '127.0.0.1' });
        ports.push((app.server.address() as AddressInfo).port);
      }
      const get = async (port: number, bytes: number) => {
        const session = connectHttp2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
        try {
          const stream = session.request({ ':path': '/', 'x-big': 'a'.repeat(bytes) });
          stream.setEncoding('utf8');
          const [head] = (await once(stream, 'response')) as [Record<string, unknown>];
          let body = '';
          for await (const chunk of stream) body += chunk;
          return { status: head[':status'], body };
        } finally {
          session.close();
        }
      };
      const [limited, unset] = ports as [number, number];
      expect((await get(limited, 7000)).status).toBe(200);
      const over = await get(limited, 9000);
      expect(over.status).toBe(431);
      expect(JSON.parse(over.body)).toMatchObject({ code: 'WP_FASTIFY_HEADERS_TOO_LARGE' });
      expect((await get(unset, 15_000)).status).toBe(200);
      expect((await get(unset, 20_000)).status).toBe(431);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
