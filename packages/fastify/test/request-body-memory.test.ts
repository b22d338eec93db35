// The process-wide bound on request bodies held in memory while they arrive (raw-body.ts): clients
// that send most of a large body and stall cannot fill the server's memory; past the bound a body
// goes on in a temp file, and still reaches the worker whole.
import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEFAULT_REQUEST_BODY_MEMORY_BYTES, requestBodyMemory } from '../src/http/raw-body.js';
import { warmpool } from '../src/index.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
const BOUND = 256 * 1024;

let app: FastifyInstance;
const sockets: Socket[] = [];

beforeEach(async () => {
  requestBodyMemory.maxBytes = BOUND;
  app = Fastify();
  await app.register(warmpool, { command: ['php', fixture('echo.php')], pool: { num_workers: 1 } });
  await app.listen({ port: 0, host: '127.0.0.1' });
});

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await app.close();
  requestBodyMemory.maxBytes = DEFAULT_REQUEST_BODY_MEMORY_BYTES;
});

/** An HTTP/1.1 request whose head and first `sent` bytes of a `length`-byte body are written. */
function startUpload(length: number, body: Buffer, sent: number): Socket {
  const { port } = app.server.address() as { port: number };
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.write(
    `POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`,
  );
  socket.write(body.subarray(0, sent));
  return socket;
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; !check(); i++) {
    if (i > 2_000) throw new Error(`waited in vain for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function response(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => parts.push(chunk));
    socket.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    socket.on('error', reject);
  });
}

const sha = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');

describe('request bodies held in memory while they arrive', () => {
  it('stalled large bodies stay under the bound: past it they go to a temp file, and still reach PHP whole', async () => {
    const length = 1024 * 1024;
    const bodies = [0, 1, 2, 3].map((i) => Buffer.alloc(length, String.fromCharCode(97 + i)));
    // four clients send 600 KB of their 1 MiB body, then stall: 2.4 MB against a 256 KiB bound
    const uploads = bodies.map((body) => startUpload(length, body, 600 * 1024));
    await until(() => requestBodyMemory.filed >= 3, 'the bodies past the bound to go to temp files');
    expect(requestBodyMemory.heldBytes).toBeLessThanOrEqual(BOUND + 64 * 1024);
    const answers = uploads.map((socket) => response(socket));
    for (const [i, socket] of uploads.entries()) socket.write(bodies[i]!.subarray(600 * 1024));
    for (const [i, answer] of (await Promise.all(answers)).entries()) {
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
      const json = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { body: string };
      expect(json.body.length).toBe(length);
      expect(sha(json.body)).toBe(sha(bodies[i]!));
    }
    expect(requestBodyMemory.heldBytes).toBe(0);
  });

  it('a client that leaves mid-body frees what it held, in memory or on file', async () => {
    const length = 1024 * 1024;
    const body = Buffer.alloc(length, 'x');
    const first = startUpload(length, body, 200 * 1024);
    const second = startUpload(length, body, 200 * 1024);
    await until(() => requestBodyMemory.heldBytes > 0 && requestBodyMemory.filed >= 1, 'one body held, one filed');
    first.destroy();
    second.destroy();
    await until(() => requestBodyMemory.heldBytes === 0, 'the held bytes to be freed');
  });

  it('small bodies stay in memory: nothing goes to a file', async () => {
    const before = requestBodyMemory.filed;
    const res = await app.inject({
      method: 'POST',
      url: '/',
      payload: 'hello',
      headers: { 'content-type': 'text/plain' },
    });
    expect(JSON.parse(res.body)).toMatchObject({ body: 'hello' });
    expect(requestBodyMemory.filed).toBe(before);
    expect(requestBodyMemory.heldBytes).toBe(0);
  });
});
