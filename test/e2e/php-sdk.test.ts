// The PHP SDK (packages/php-worker) against a real pool: HttpWorker request decoding and replies in
// both codecs, streaming and cancel, the PSR-7 bridge, and output handling on both relays.
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { describe, it, expect, vi } from 'vitest';
import { createPool, type Logger, type Pool, type PoolOptions } from '@warmpool/pool';
import {
  decodeResponseContext,
  encodeRequestContext,
  frameBody,
  frameContext,
  FLAG_CODEC_JSON,
  FLAG_CODEC_PROTO,
  PING,
  STREAM,
  type Codec,
  type Frame,
  type HttpRequestContext,
} from '@warmpool/pool/protocol';
import { fixture } from '../helpers/php.js';

const NYHOLM = '/usr/share/php/Nyholm/Psr7/autoload.php';

async function withPool<T>(options: PoolOptions, run: (pool: Pool) => Promise<T>): Promise<T> {
  const pool = createPool({ num_workers: 1, ...options });
  try {
    await pool.start();
    return await run(pool);
  } finally {
    await pool.close();
  }
}

function requestContext(overrides: Partial<HttpRequestContext> = {}): HttpRequestContext {
  return {
    remoteAddr: '127.0.0.1',
    protocol: 'HTTP/1.1',
    method: 'GET',
    uri: 'http://localhost:8080/',
    headers: {},
    cookies: {},
    rawQuery: '',
    parsed: false,
    uploads: null,
    attributes: null,
    ...overrides,
  };
}

async function exec(pool: Pool, codec: Codec, ctx: HttpRequestContext, body = '') {
  const { flags, context } = encodeRequestContext(ctx, codec);
  return pool.exec({ flags, context, body: body === '' ? null : Buffer.from(body) });
}

async function collect(stream: Readable): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const frame of stream) frames.push(frame as Frame);
  return frames;
}

function recordingLogger(): { logger: Logger; lines: { obj: Record<string, unknown>; msg: string }[] } {
  const lines: { obj: Record<string, unknown>; msg: string }[] = [];
  const noop = () => {};
  const logger: Logger = {
    debug: noop,
    info: (obj, msg) => lines.push({ obj: obj as Record<string, unknown>, msg: msg ?? '' }),
    warn: noop,
    error: noop,
  };
  return { logger, lines };
}

// A form post as the server describes it: several header values, cookies, a query with arrays and
// nested keys, a parsed form body (JSON tree) and an upload tree.
const FORM_CONTEXT = requestContext({
  remoteAddr: '10.1.2.3',
  method: 'POST',
  uri: 'http://localhost:8080/form/submit?a[]=1&a[]=2&m[k]=v&plain=x',
  rawQuery: 'a[]=1&a[]=2&m[k]=v&plain=x',
  headers: {
    'Content-Type': ['multipart/form-data; boundary=xyz'],
    'X-Multi': ['one', 'two', 'three'],
    'User-Agent': ['vitest/4'],
    Cookie: ['session=abc; theme=dark mode'],
  },
  cookies: { session: 'abc', theme: 'dark mode' },
  parsed: true,
  uploads: {
    avatar: { name: 'me.png', mime: 'image/png', size: 4, error: 0, tmpName: '/tmp/upload1' },
    docs: [
      { name: 'a.txt', mime: 'text/plain', size: 1, error: 0, tmpName: '/tmp/upload2' },
      { name: 'b.php', mime: 'text/x-php', size: 0, error: 8, tmpName: '' },
    ],
  },
  attributes: { route: ['form', 'ignored'] },
});
const FORM_BODY = JSON.stringify({ name: 'Ann', tags: ['x', 'y'], address: { city: 'Oslo' } });

describe('HttpWorker', () => {
  for (const codec of ['json', 'proto'] as const) {
    it(`decodes a ${codec} request and replies in the same codec`, async () => {
      await withPool({ command: ['php', fixture('sdk-http-echo.php')] }, async (pool) => {
        const reply = await exec(pool, codec, FORM_CONTEXT, FORM_BODY);
        expect(reply.stream).toBeNull();
        expect(reply.flags).toBe(codec === 'proto' ? FLAG_CODEC_PROTO : FLAG_CODEC_JSON);
        const head = decodeResponseContext(reply.flags, reply.context);
        expect(head.status).toBe(200);
        expect(head.headers['Content-Type']).toEqual(['application/json']);
        expect(head.headers['Set-Cookie']).toEqual(['a=1; Path=/', 'b=2; HttpOnly']);

        const seen = JSON.parse(reply.body.toString('utf8'));
        expect(seen).toMatchObject({
          pid: reply.pid,
          count: 1,
          codec,
          remoteAddr: '10.1.2.3',
          protocol: 'HTTP/1.1',
          method: 'POST',
          uri: 'http://localhost:8080/form/submit?a[]=1&a[]=2&m[k]=v&plain=x',
          path: '/form/submit',
          headers: FORM_CONTEXT.headers,
          userAgent: 'vitest/4',
          cookies: { session: 'abc', theme: 'dark mode' },
          query: { a: ['1', '2'], m: { k: 'v' }, plain: 'x' },
          rawQuery: 'a[]=1&a[]=2&m[k]=v&plain=x',
          body: FORM_BODY,
          parsed: { name: 'Ann', tags: ['x', 'y'], address: { city: 'Oslo' } },
          uploads: FORM_CONTEXT.uploads,
          attributes: { route: 'form' },
        });
      });
    });
  }

  it('keeps one warm process across requests and follows each request codec', async () => {
    await withPool({ command: ['php', fixture('sdk-http-echo.php')] }, async (pool) => {
      const ctx = requestContext({ uri: 'http://localhost/x' });
      const first = await exec(pool, 'proto', ctx);
      const second = await exec(pool, 'json', ctx);
      const third = await exec(pool, 'proto', ctx);
      expect([first.flags, second.flags, third.flags]).toEqual([FLAG_CODEC_PROTO, FLAG_CODEC_JSON, FLAG_CODEC_PROTO]);
      const bodies = [first, second, third].map((r) => JSON.parse(r.body.toString('utf8')));
      expect(bodies.map((b) => b.count)).toEqual([1, 2, 3]);
      expect(bodies.map((b) => b.codec)).toEqual(['proto', 'json', 'proto']);
      expect(new Set(bodies.map((b) => b.pid)).size).toBe(1);
    });
  });

  it('decodes defaults: no query, no cookies, an empty parsed form is [] and a plain body is not parsed', async () => {
    await withPool({ command: ['php', fixture('sdk-http-echo.php')] }, async (pool) => {
      for (const codec of ['json', 'proto'] as const) {
        const emptyForm = JSON.parse(
          (await exec(pool, codec, requestContext({ method: 'POST', parsed: true }))).body.toString(),
        );
        expect(emptyForm).toMatchObject({
          parsed: [],
          body: '',
          query: {},
          cookies: {},
          uploads: {},
          attributes: {},
          path: '/',
        });
        const raw = JSON.parse(
          (await exec(pool, codec, requestContext({ method: 'PUT' }), '{"raw":true}')).body.toString(),
        );
        expect(raw).toMatchObject({ parsed: null, body: '{"raw":true}' });
      }
    });
  });

  it('encodes a reply without headers as {} in JSON and without field 2 in protobuf', async () => {
    await withPool({ command: ['php', fixture('sdk-http-echo.php')] }, async (pool) => {
      const ctx = requestContext({ uri: 'http://localhost/?bare=1', rawQuery: 'bare=1' });
      const json = await exec(pool, 'json', ctx);
      expect(json.flags).toBe(FLAG_CODEC_JSON);
      expect(json.context.toString('utf8')).toBe('{"status":204,"headers":{}}');
      const proto = await exec(pool, 'proto', ctx);
      expect(proto.flags).toBe(FLAG_CODEC_PROTO);
      expect(proto.context.toString('hex')).toBe('08cc01');
      expect(decodeResponseContext(proto.flags, proto.context)).toEqual({ status: 204, headers: {} });
    });
  });

  it('answers 400 to a context it cannot decode and stays in service', async () => {
    await withPool({ command: ['php', fixture('sdk-http-echo.php')] }, async (pool) => {
      const badJson = await pool.exec({ flags: FLAG_CODEC_JSON, context: '{"method":', body: null });
      expect(badJson.flags).toBe(FLAG_CODEC_JSON);
      expect(decodeResponseContext(badJson.flags, badJson.context).status).toBe(400);
      expect(badJson.body.toString()).toContain('cannot decode the JSON request context');
      // field 1 (remote_addr) claims 100 bytes that are not there
      const badProto = await pool.exec({
        flags: FLAG_CODEC_PROTO,
        context: Buffer.from([0x0a, 0x64, 0x41]),
        body: null,
      });
      expect(badProto.flags).toBe(FLAG_CODEC_PROTO);
      expect(decodeResponseContext(badProto.flags, badProto.context).status).toBe(400);
      expect(badProto.body.toString()).toContain('cannot decode the protobuf request context');
      const ok = await exec(pool, 'proto', requestContext());
      expect(ok.pid).toBe(badJson.pid);
      expect(JSON.parse(ok.body.toString()).count).toBe(1); // undecodable requests are not counted
    });
  });
});

describe('large bodies', () => {
  // Around the SDK's 64 KiB threshold and well past it, on each relay, with small requests between
  // the large ones on the same warm worker (the read buffering must come back after a large read).
  const SIZES = [0, 100, 65535, 65536, 65537, 1024 * 1024 + 7, 3 * 1024 * 1024];
  for (const relay of ['pipes', 'fds', 'unix'] as const) {
    it(`cross the ${relay} relay whole both ways (${SIZES.join(', ')} bytes)`, async () => {
      const options: PoolOptions = {
        command: ['php', fixture('sdk-http-big.php')],
        relay: relay === 'unix' ? `unix://${join(tmpdir(), `wp-big-${process.pid}.sock`)}` : relay,
      };
      await withPool(options, async (pool) => {
        for (const size of [...SIZES, ...SIZES.slice().reverse()]) {
          const body = Buffer.alloc(size);
          for (let i = 0; i < size; i++) body[i] = (i * 31 + size) & 0xff;
          const { flags, context } = encodeRequestContext(requestContext({ method: 'POST' }), 'json');
          // a body as one Buffer, and as a list of buffers (a request body as it arrived, not joined)
          for (const sent of [size === 0 ? null : body, [body.subarray(0, size >> 1), body.subarray(size >> 1)]]) {
            const reply = await pool.exec({ flags, context, body: sent });
            const head = decodeResponseContext(reply.flags, reply.context);
            expect(head.status).toBe(200);
            expect(head.headers['X-Body-Sha1']).toEqual([createHash('sha1').update(body).digest('hex')]);
            // a large reply arrives in several reads: it is handed on as those reads, not joined
            if (size > 1024 * 1024) expect(reply.bodyParts!.length).toBeGreaterThan(1);
            if (reply.bodyParts !== undefined)
              expect(Buffer.compare(Buffer.concat(reply.bodyParts), Buffer.from(body).reverse())).toBe(0);
            expect(Buffer.compare(reply.body, Buffer.from(body).reverse())).toBe(0);
          }
        }
      });
    });
  }
});

describe('HttpWorker::respondStream', () => {
  for (const codec of ['json', 'proto'] as const) {
    it(`streams chunks in order as STREAM frames, the last one clearing it (${codec})`, async () => {
      await withPool({ command: ['php', fixture('sdk-http-stream.php')] }, async (pool) => {
        const n = 14;
        const reply = await exec(pool, codec, requestContext({ uri: `http://localhost/s?n=${n}`, rawQuery: `n=${n}` }));
        const codecFlag = codec === 'proto' ? FLAG_CODEC_PROTO : FLAG_CODEC_JSON;
        expect(reply.flags).toBe(codecFlag);
        const head = decodeResponseContext(reply.flags, reply.context);
        expect(head.status).toBe(200);
        expect(head.headers['Content-Type']).toEqual(['text/plain']);
        expect(reply.body.toString()).toBe('chunk-0\n');
        expect(reply.stream).not.toBeNull();

        const frames = await collect(reply.stream!);
        expect(frames).toHaveLength(n); // chunks 1..n-1, then the final empty frame
        const chunks = frames.slice(0, -1);
        expect(chunks.map((f) => frameBody(f).toString())).toEqual(
          Array.from({ length: n - 1 }, (_, i) => `chunk-${i + 1}\n`),
        );
        for (const frame of chunks) {
          expect(frame.control & STREAM).toBe(STREAM);
          expect(frame.flags).toBe(codecFlag);
          expect(frameContext(frame).length).toBe(0); // the head travels on the first frame only
        }
        // every 6th stream frame asks for a PONG; the pool answers and the stream goes on
        expect(chunks.some((f) => (f.control & PING) !== 0)).toBe(true);
        const last = frames.at(-1)!;
        expect(last.control & STREAM).toBe(0);
        expect(last.flags).toBe(codecFlag);
        expect(frameBody(last).length).toBe(0);
      });
    });
  }

  it('sends one ordinary reply when there is no chunk', async () => {
    await withPool({ command: ['php', fixture('sdk-http-stream.php')] }, async (pool) => {
      const reply = await exec(pool, 'proto', requestContext({ uri: 'http://localhost/s?n=0', rawQuery: 'n=0' }));
      expect(reply.stream).toBeNull();
      expect(reply.body.length).toBe(0);
      expect(decodeResponseContext(reply.flags, reply.context).headers['X-Cancels']).toEqual(['0']);
    });
  });

  it('stops the generator when the server cancels, ends the stream, and keeps the worker', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warmpool-sdk-'));
    const marker = join(dir, 'cancelled.txt');
    try {
      await withPool(
        { command: ['php', fixture('sdk-http-stream.php')], env: { STREAM_CANCEL_MARKER: marker } },
        async (pool) => {
          const n = 1_000_000;
          const reply = await exec(
            pool,
            'proto',
            requestContext({ uri: `http://localhost/s?n=${n}`, rawQuery: `n=${n}` }),
          );
          expect(reply.stream).not.toBeNull();
          reply.stream!.destroy(); // the client went away: the pool sends STOP

          // The next request runs once the cancelled stream has ended: same process, one cancel counted.
          const next = await exec(pool, 'proto', requestContext({ uri: 'http://localhost/s?n=0', rawQuery: 'n=0' }));
          const head = decodeResponseContext(next.flags, next.context);
          expect(head.headers['X-Pid']).toEqual([String(reply.pid)]);
          expect(head.headers['X-Cancels']).toEqual(['1']);
          expect(readFileSync(marker, 'utf8')).toMatch(/^cancelled at chunk \d+\n$/);
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ends the stream with an error frame when the generator throws mid-stream, without a second answer', async () => {
    const { logger, lines } = recordingLogger();
    const dir = mkdtempSync(join(tmpdir(), 'warmpool-sdk-'));
    const gate = join(dir, 'fail-now');
    try {
      await withPool(
        { command: ['php', fixture('sdk-http-stream.php')], env: { STREAM_FAIL_GATE: gate }, logger },
        async (pool) => {
          const reply = await exec(
            pool,
            'proto',
            requestContext({ uri: 'http://localhost/s?n=10&fail=3', rawQuery: 'n=10&fail=3' }),
          );
          expect(reply.stream).not.toBeNull();
          // The generator throws only once the gate exists, i.e. after we listen to the stream: an error
          // frame arriving with the first frame would be emitted before anyone can listen (see report).
          const frames = collect(reply.stream!);
          await new Promise((resolve) => setImmediate(resolve));
          writeFileSync(gate, '');
          await expect(frames).rejects.toThrow(/generator failed at chunk 3/);
          // the canonical loop's error() after the stream is not sent (it would desync): it is logged
          const next = await exec(pool, 'proto', requestContext({ uri: 'http://localhost/s?n=0', rawQuery: 'n=0' }));
          expect(decodeResponseContext(next.flags, next.context).headers['X-Pid']).toEqual([String(reply.pid)]);
          await vi.waitFor(() =>
            expect(lines.some((l) => l.msg.includes('not sent, the request was already answered'))).toBe(true),
          );
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('Psr7Worker', () => {
  it.skipIf(!existsSync(NYHOLM))(
    'builds a PSR-7 ServerRequest and sends a ResponseInterface, whole or chunked',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'warmpool-sdk-'));
      try {
        const avatar = join(dir, 'upload-avatar');
        const doc = join(dir, 'upload-doc');
        writeFileSync(avatar, 'PNG!');
        writeFileSync(doc, 'hello doc');
        const ctx = requestContext({
          remoteAddr: '192.0.2.7',
          method: 'POST',
          uri: 'http://example.test:8080/psr/echo?a[]=1&a[]=2&m[k]=v',
          rawQuery: 'a[]=1&a[]=2&m[k]=v',
          headers: {
            'Content-Type': ['multipart/form-data; boundary=xyz'],
            'X-Multi': ['one', 'two'],
            'User-Agent': ['vitest/4'],
          },
          cookies: { session: 'abc' },
          parsed: true,
          uploads: {
            avatar: { name: 'me.png', mime: 'image/png', size: 4, error: 0, tmpName: avatar },
            docs: [
              { name: 'doc.txt', mime: 'text/plain', size: 9, error: 0, tmpName: doc },
              { name: 'evil.php', mime: 'text/x-php', size: 0, error: 8, tmpName: '' },
            ],
          },
          attributes: { route: ['psr'] },
        });
        const body = JSON.stringify({ name: 'Ann', tags: ['x', 'y'] });
        const expected = {
          method: 'POST',
          uri: 'http://example.test:8080/psr/echo?a%5B%5D=1&a%5B%5D=2&m%5Bk%5D=v', // PSR-7 Uri encodes brackets
          protocolVersion: '1.1',
          server: {
            REQUEST_URI: 'http://example.test:8080/psr/echo?a[]=1&a[]=2&m[k]=v',
            REMOTE_ADDR: '192.0.2.7',
            REQUEST_METHOD: 'POST',
            CONTENT_TYPE: 'multipart/form-data; boundary=xyz',
            HTTP_X_MULTI: 'one, two',
            HTTP_USER_AGENT: 'vitest/4',
          },
          hasRequestTime: true,
          query: { a: ['1', '2'], m: { k: 'v' } },
          parsedBody: { name: 'Ann', tags: ['x', 'y'] },
          body,
          headers: { 'X-Multi': ['one', 'two'], 'User-Agent': ['vitest/4'] },
          host: 'example.test:8080',
          cookies: { session: 'abc' },
          attributes: { route: 'psr' },
          files: {
            avatar: { clientFilename: 'me.png', clientMediaType: 'image/png', size: 4, error: 0, content: 'PNG!' },
            docs: [
              { clientFilename: 'doc.txt', clientMediaType: 'text/plain', size: 9, error: 0, content: 'hello doc' },
              { clientFilename: 'evil.php', clientMediaType: 'text/x-php', size: 0, error: 8, content: null },
            ],
          },
        };

        await withPool({ command: ['php', fixture('sdk-psr7-echo.php')] }, async (pool) => {
          const whole = await exec(pool, 'proto', ctx, body);
          expect(whole.stream).toBeNull();
          expect(whole.flags).toBe(FLAG_CODEC_PROTO);
          const head = decodeResponseContext(whole.flags, whole.context);
          expect(head.status).toBe(201);
          expect(head.headers['Content-Type']).toEqual(['application/json']);
          expect(head.headers['Set-Cookie']).toEqual(['p=1', 'q=2']);
          expect(JSON.parse(whole.body.toString())).toMatchObject(expected);

          const chunkedCtx = { ...ctx, uri: `${ctx.uri}&chunk=64`, rawQuery: `${ctx.rawQuery}&chunk=64` };
          const chunked = await exec(pool, 'json', chunkedCtx, body);
          expect(chunked.flags).toBe(FLAG_CODEC_JSON);
          expect(decodeResponseContext(chunked.flags, chunked.context).status).toBe(201);
          expect(chunked.body.length).toBe(64);
          const frames = await collect(chunked.stream!);
          expect(frames.length).toBeGreaterThan(2);
          expect(frames.at(-1)!.control & STREAM).toBe(0);
          const text = Buffer.concat([chunked.body, ...frames.map(frameBody)]).toString();
          expect(JSON.parse(text)).toMatchObject({
            ...expected,
            uri: `${expected.uri}&chunk=64`,
            server: { ...expected.server, REQUEST_URI: chunkedCtx.uri },
            query: { ...expected.query, chunk: '64' },
          });
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('worker output', () => {
  it('with the fds relay, stdout is a log and the reply is intact', async () => {
    const { logger, lines } = recordingLogger();
    await withPool({ command: ['php', fixture('sdk-http-stdout.php')], relay: 'fds', logger }, async (pool) => {
      const reply = await exec(pool, 'proto', requestContext({ uri: 'http://localhost/fds' }));
      expect(reply.body.toString()).toBe('intact');
      expect(decodeResponseContext(reply.flags, reply.context).headers['X-Relay']).toEqual(['3,4']);
      await vi.waitFor(() =>
        expect(lines).toContainEqual({
          obj: expect.objectContaining({ workerPid: reply.pid, stream: 'stdout' }),
          msg: 'stray echo from request /fds',
        }),
      );
    });
  });

  it('with pipes, a stray echo is routed to stderr and the reply is intact', async () => {
    const { logger, lines } = recordingLogger();
    await withPool({ command: ['php', fixture('sdk-http-stdout.php')], logger }, async (pool) => {
      const reply = await exec(pool, 'json', requestContext({ uri: 'http://localhost/pipes' }));
      expect(reply.body.toString()).toBe('intact');
      expect(decodeResponseContext(reply.flags, reply.context).headers['X-Relay']).toEqual(['pipes']);
      await vi.waitFor(() =>
        expect(lines).toContainEqual({
          obj: expect.objectContaining({ workerPid: reply.pid, stream: 'stderr' }),
          msg: 'stray echo from request /pipes',
        }),
      );
      const again = await exec(pool, 'json', requestContext({ uri: 'http://localhost/again' }));
      expect(again.pid).toBe(reply.pid);
      expect(again.body.toString()).toBe('intact');
    });
  });

  it.each(['pipes', 'fds'] as const)(
    'an output buffer a request left open is flushed to the log and closed before the next request (%s)',
    async (relay) => {
      const { logger, lines } = recordingLogger();
      await withPool({ command: ['php', fixture('sdk-http-stdout.php')], relay, logger }, async (pool) => {
        const levels: string[] = [];
        for (const path of ['/first', '/left-open', '/left-open', '/after']) {
          const reply = await exec(pool, 'json', requestContext({ uri: `http://localhost${path}` }));
          levels.push(decodeResponseContext(reply.flags, reply.context).headers['X-Ob-Level']![0]!);
        }
        // each request starts where the first did (before: one level more after each /left-open)
        expect(new Set(levels).size).toBe(1);
        await vi.waitFor(() => expect(lines.filter((line) => line.msg === 'buffered in /left-open')).toHaveLength(2));
      });
    },
  );

  it('a request that closes every output buffer, or leaves one whose callback throws, leaves the next request of its worker intact (before: 502, the worker gone)', async () => {
    const { logger, lines } = recordingLogger();
    await withPool({ command: ['php', fixture('sdk-http-stdout.php')], num_workers: 1, logger }, async (pool) => {
      const first = await exec(pool, 'json', requestContext({ uri: 'http://localhost/first' }));
      const level = decodeResponseContext(first.flags, first.context).headers['X-Ob-Level']![0]!;
      for (const path of ['/close-all', '/after-close-all', '/throwing-callback', '/after-throw']) {
        const reply = await exec(pool, 'json', requestContext({ uri: `http://localhost${path}` }));
        expect([reply.pid, reply.body.toString()], path).toEqual([first.pid, 'intact']);
        expect(decodeResponseContext(reply.flags, reply.context).headers['X-Ob-Level']![0], path).toBe(level);
      }
      // the capture is back after /close-all, and still there after the callback threw: stray
      // echoes went to the log, never the protocol stream; the thrown buffer's output is logged
      const messages = () => lines.map((line) => line.msg);
      await vi.waitFor(() => expect(messages()).toContain('stray echo from request /after-throw'));
      expect(messages()).toContain('stray echo from request /after-close-all');
      expect(messages()).toContain('never shown');
      expect(messages().some((msg) => msg.includes('threw as it was closed: an output callback that throws'))).toBe(
        true,
      );
    });
  });
});
