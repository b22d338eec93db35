import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { Chunks } from '@warmpool/pool';
import { BodyParts, warmpool } from '../src/index.js';

// Large bodies cross Node without being joined: a request body over 64 KiB goes to PHP as the
// chunks it arrived in, a reply body that arrived in several pipe reads goes out as those reads
// (BodyParts). These tests send real bytes over a real socket and compare them whole.

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

/** sdk-http-big.php answers the request body reversed, with X-Body-Sha1 of what it received. */
async function listening(setup?: (app: FastifyInstance) => void): Promise<string> {
  const app = Fastify();
  apps.push(app);
  setup?.(app);
  await app.register(warmpool, { command: ['php', fixture('sdk-http-big.php')], pool: { num_workers: 1 } });
  return app.listen({ host: '127.0.0.1', port: 0 });
}

function pattern(size: number): Buffer {
  const body = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) body[i] = (i * 31 + (i >>> 10) + size) & 0xff;
  return body;
}

const sha1 = (bytes: Buffer): string => createHash('sha1').update(bytes).digest('hex');

const SIZES = [0, 1, 65535, 65536, 65537, 300_001, 1024 * 1024 + 7, 3 * 1024 * 1024];

describe('plugin: large bodies', () => {
  it(`carry every byte both ways with Content-Length (${SIZES.join(', ')} bytes)`, async () => {
    const base = await listening();
    for (const size of SIZES) {
      const body = pattern(size);
      const res = await fetch(`${base}/upload`, {
        method: 'POST',
        body,
        headers: { 'content-type': 'application/octet-stream' },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-body-sha1')).toBe(sha1(body));
      expect(res.headers.get('content-length')).toBe(String(size));
      const reply = Buffer.from(await res.arrayBuffer());
      expect(reply.equals(Buffer.from(body).reverse())).toBe(true);
    }
  });

  it('carry every byte of a chunked upload sent in small pieces', async () => {
    const base = await listening();
    const body = pattern(1024 * 1024 + 7);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let offset = 0; offset < body.length; offset += 10_000)
          controller.enqueue(body.subarray(offset, offset + 10_000));
        controller.close();
      },
    });
    const res = await fetch(`${base}/upload`, {
      method: 'POST',
      body: stream,
      duplex: 'half',
      headers: { 'content-type': 'application/octet-stream' },
    } as RequestInit);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-body-sha1')).toBe(sha1(body));
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(body).reverse())).toBe(true);
  });

  it('shows host hooks a request body over 64 KiB as its chunks, a smaller one as one Buffer, and a large reply as BodyParts', async () => {
    const seen: { size: number; body: string; payload: string }[] = [];
    const base = await listening((app) => {
      app.addHook('preHandler', async (request) => {
        const body = request.body as Buffer | Chunks;
        seen.push({
          size: Number(request.headers['content-length']),
          body: body instanceof Chunks ? 'chunks' : 'buffer',
          payload: '',
        });
      });
      app.addHook('onSend', async (_request, _reply, payload) => {
        seen.at(-1)!.payload =
          payload instanceof BodyParts
            ? `parts:${payload.length}`
            : Buffer.isBuffer(payload)
              ? 'buffer'
              : typeof payload;
        return payload;
      });
    });
    for (const size of [1000, 1024 * 1024]) {
      const res = await fetch(`${base}/`, {
        method: 'POST',
        body: pattern(size),
        headers: { 'content-type': 'application/octet-stream' },
      });
      await res.arrayBuffer();
    }
    expect(seen).toEqual([
      { size: 1000, body: 'buffer', payload: 'buffer' },
      { size: 1024 * 1024, body: 'chunks', payload: `parts:${1024 * 1024}` },
    ]);
  });

  it('answers 413 to a chunked upload that crosses max_request_size, and PHP never sees it', async () => {
    const app = Fastify();
    apps.push(app);
    await app.register(warmpool, {
      command: ['php', fixture('sdk-http-big.php')],
      pool: { num_workers: 1 },
      max_request_size: 1,
    });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const body = pattern(1024 * 1024 + 1);
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let offset = 0; offset < body.length; offset += 65536)
          controller.enqueue(body.subarray(offset, offset + 65536));
        controller.close();
      },
    });
    const res = await fetch(`${base}/upload`, {
      method: 'POST',
      body: stream,
      duplex: 'half',
      headers: { 'content-type': 'application/octet-stream' },
    } as RequestInit).catch((error: Error) => error);
    // the server may close before the client finished sending: then fetch fails instead of reading the 413
    if (res instanceof Error) expect(res.message).toMatch(/fetch failed|other side closed|socket/i);
    else expect(res.status).toBe(413);
    expect(app.warmpool.pool!.stats().requests).toBe(0);
    // and exactly 1 MiB still passes
    const ok = await fetch(`${base}/upload`, {
      method: 'POST',
      body: pattern(1024 * 1024),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(ok.status).toBe(200);
  });
});
