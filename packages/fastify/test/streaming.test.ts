import { request as httpRequest } from 'node:http';
import { constants, connect as http2Connect } from 'node:http2';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { warmpool, type WarmpoolCommonOptions, type WorkerModeOptions } from '../src/index.js';

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function listen(
  name: string,
  options: WarmpoolCommonOptions & Partial<WorkerModeOptions> = {},
  http2 = false,
): Promise<{ app: FastifyInstance; base: string }> {
  const app = (http2 ? Fastify({ http2: true }) : Fastify()) as FastifyInstance;
  apps.push(app);
  await app.register(warmpool, { command: ['php', fixture(name)], pool: { num_workers: 1 }, ...options });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  return { app, base: `http://127.0.0.1:${port}` };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('streamed responses over real HTTP', () => {
  it('streams 50 MB from PHP to the client chunk by chunk (chunked transfer)', async () => {
    const { base } = await listen('big-stream.php');
    const res = await request(`${base}/?mb=50`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['transfer-encoding']).toBe('chunked');
    let bytes = 0;
    let chunks = 0;
    for await (const chunk of res.body) {
      bytes += (chunk as Buffer).length;
      chunks++;
    }
    expect(bytes).toBe(50 * 1024 * 1024);
    expect(chunks).toBeGreaterThan(10);
  });

  it("a reply's head sent alone, then the worker's exception: plain 500 without its text; then exec_ttl: 504 (before: Fastify's JSON with the exception, a password in it)", async () => {
    const { base } = await listen('head-then-fail.php', { pool: { num_workers: 1, supervisor: { exec_ttl: '1s' } } });
    const failed = await request(`${base}/`);
    expect(failed.statusCode).toBe(500);
    expect(failed.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(failed.headers['cache-control']).toBeUndefined();
    expect(await failed.body.text()).toBe('Internal Server Error\n');
    const silent = await request(`${base}/?sleep=5`);
    expect(silent.statusCode).toBe(504);
    expect(await silent.body.text()).toBe('Gateway Timeout\n');
  });

  it("over HTTP/2, a reply's head sent alone and then the worker's exception: the plain 500, not a reset stream", async () => {
    const { base } = await listen('head-then-fail.php', {}, true);
    const session = http2Connect(base);
    try {
      const stream = session.request({ ':path': '/' });
      let status = 0;
      stream.on('response', (headers) => {
        status = Number(headers[':status']);
      });
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => (body += chunk));
      const [code] = await new Promise<[number]>((resolve) => stream.on('close', () => resolve([stream.rstCode])));
      expect([status, body, code]).toEqual([500, 'Internal Server Error\n', constants.NGHTTP2_NO_ERROR]);
    } finally {
      session.close();
    }
  });

  it('a stream whose error frame comes in the same read as its first frame fails with 500, every time; close() ends', async () => {
    // The error destroyed the frame stream before the reply's body was built on it, so the body
    // never learnt of it: the client waited for good, and so did app.close(). Nothing was sent
    // yet, so it is the worker's error reply, as when the error is the first frame.
    const { app, base } = await listen('hostile-worker.php');
    for (let i = 0; i < 5; i++) {
      const res = await request(`${base}/`, { method: 'POST', body: 'streamfail' });
      expect(res.statusCode).toBe(500);
      expect(await res.body.text()).not.toContain('failed mid-stream');
    }
    const ok = await request(`${base}/`, { method: 'POST', body: 'ok' });
    expect(Number(await ok.body.text())).toBeGreaterThan(0);
    await app.close();
  });

  it("an event stream's head reaches the client as the worker sends it, before its first event (an EventSource opens then)", async () => {
    const flag = join(mkdtempSync(join(tmpdir(), 'wp-head-first-')), 'flag');
    const { base } = await listen('sdk-http-progress.php');
    // undici resolves at the head: had it waited for the first event, the flag below would never be made
    const res = await request(`${base}/?head&flag=${flag}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream');
    writeFileSync(flag, '');
    expect(await res.body.text()).toBe('data: late\n\n');
  });

  it('HEAD to a streamed reply answers with the head at once and stops the stream (an endless one too)', async () => {
    const marker = join(mkdtempSync(join(tmpdir(), 'wp-head-stream-')), 'cancels');
    const { base } = await listen('sdk-http-stream.php', { env: { STREAM_CANCEL_MARKER: marker } });
    // 100 million chunks: run to its end, the HEAD would outlast the test
    const head = await request(`${base}/?n=100000000`, { method: 'HEAD' });
    expect(head.statusCode).toBe(200);
    expect(head.headers['x-pid']).toMatch(/^\d+$/);
    expect(await head.body.text()).toBe('');
    // the generator saw the stop, and the worker serves the next request
    // PHP creates the file, then writes its line: wait for the whole line, not the file
    while (!existsSync(marker) || !readFileSync(marker, 'utf8').endsWith('\n')) await sleep(20);
    expect(readFileSync(marker, 'utf8')).toMatch(/^cancelled at chunk \d+\n$/);
    const next = await request(`${base}/?n=2`);
    expect(await next.body.text()).toBe('chunk-0\nchunk-1\n');
  });

  it('a client that disconnects mid-stream cancels it; the worker stays in service for others', async () => {
    const { app, base } = await listen('stream.php');
    const pid = (await app.warmpool.workers())[0]!.pid;
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${base}/`, { method: 'POST', headers: { 'content-type': 'text/plain' } }, (res) => {
        let seen = 0;
        res.on('data', () => {
          if (++seen === 2) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', () => {});
      req.on('timeout', reject);
      req.end('stream:100000:2');
    });
    // The next request is answered by the same worker, which saw exactly one cancel.
    let cancels: string | undefined;
    for (let i = 0; i < 100 && cancels === undefined; i++) {
      await sleep(20);
      if (app.warmpool.stats().workers.ready === 1) {
        const res = await request(`${base}/`, {
          method: 'POST',
          body: 'plain',
          headers: { 'content-type': 'text/plain' },
        });
        cancels = res.headers['x-cancels'] as string;
        expect(Number(await res.body.text())).toBe(pid);
      }
    }
    expect(cancels).toBe('1');
    expect(app.warmpool.stats().recycles).toEqual({});
  });

  it('a worker that dies after the headers were sent aborts the connection: the client sees truncation', async () => {
    const { app, base } = await listen('big-stream.php');
    const res = await request(`${base}/?mb=5&die=1`);
    expect(res.statusCode).toBe(200);
    await expect(res.body.arrayBuffer()).rejects.toThrow();
    // and the replacement serves the next request
    for (let i = 0; i < 100 && app.warmpool.stats().workers.ready < 1; i++) await sleep(20);
    const next = await request(`${base}/?mb=1`);
    expect((await next.body.arrayBuffer()).byteLength).toBe(1024 * 1024);
  });

  it('over HTTP/2, the stream of a worker that dies after the headers is reset as broken, not ended as whole', async () => {
    const { base } = await listen('big-stream.php', {}, true);
    const session = http2Connect(base);
    try {
      const rstCode = await new Promise<number>((resolve) => {
        const stream = session.request({ ':path': '/?mb=5&die=1' });
        stream.resume();
        stream.on('error', () => {});
        stream.on('close', () => resolve(stream.rstCode ?? 0));
      });
      // NO_ERROR (0) would let the client take the cut body for a whole one
      expect(rstCode).toBe(constants.NGHTTP2_INTERNAL_ERROR);
    } finally {
      session.close();
    }
  });
});

describe('103 Early Hints', () => {
  it('reach an HTTP/1.1 client before the final response, and do not leak into it', async () => {
    const { base } = await listen('stream.php');
    const result = await new Promise<{
      hints: { statusCode: number; headers: Record<string, unknown> }[];
      status: number;
      headers: Record<string, unknown>;
      body: string;
    }>((resolve, reject) => {
      const hints: { statusCode: number; headers: Record<string, unknown> }[] = [];
      const req = httpRequest(`${base}/`, { method: 'POST', headers: { 'content-type': 'text/plain' } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c));
        res.on('end', () => resolve({ hints, status: res.statusCode!, headers: res.headers, body }));
      });
      req.on('information', (info) => hints.push({ statusCode: info.statusCode, headers: info.headers }));
      req.on('error', reject);
      req.end('hints');
    });
    expect(result.hints).toEqual([
      { statusCode: 103, headers: expect.objectContaining({ link: '</app.css>; rel=preload' }) },
    ]);
    expect(result.status).toBe(200);
    expect(result.headers.link).toBeUndefined();
    expect(result.body).toBe('after hints');
  });

  it('reach an HTTP/2 client as an informational HEADERS frame', async () => {
    const { base } = await listen('stream.php', {}, true);
    const session = http2Connect(base);
    try {
      const result = await new Promise<{
        informational: Record<string, unknown>[];
        headers: Record<string, unknown>;
        body: string;
      }>((resolve, reject) => {
        const informational: Record<string, unknown>[] = [];
        const stream = session.request({ ':method': 'POST', ':path': '/', 'content-type': 'text/plain' });
        stream.on('headers', (headers) => informational.push(headers));
        let headers: Record<string, unknown> = {};
        stream.on('response', (h) => (headers = h));
        let body = '';
        stream.on('data', (c: Buffer) => (body += c));
        stream.on('end', () => resolve({ informational, headers, body }));
        stream.on('error', reject);
        stream.end('hints');
      });
      expect(result.informational).toEqual([
        expect.objectContaining({ ':status': 103, link: '</app.css>; rel=preload' }),
      ]);
      expect(result.headers[':status']).toBe(200);
      expect(result.headers.link).toBeUndefined();
      expect(result.body).toBe('after hints');
    } finally {
      session.close();
    }
  });
});
