import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import { type AddressInfo, createConnection, createServer, Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { useTlsPair } from '../../../test/helpers/tls-pair.js';
import { closeTunnel, FrameCursor, tunnel } from '../src/websocket-tunnel.js';

const closers: Array<() => unknown> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** One WebSocket frame: FIN, `opcode`, a payload of `length` bytes, masked as a client's or not. */
function frame(length: number, masked: boolean, opcode = 0x2): Buffer {
  const extended = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + extended + (masked ? 4 : 0));
  head[0] = 0x80 | opcode;
  head[1] = (masked ? 0x80 : 0) | (extended === 0 ? length : extended === 2 ? 126 : 127);
  if (extended === 2) head.writeUInt16BE(length, 2);
  if (extended === 8) head.writeBigUInt64BE(BigInt(length), 2);
  return Buffer.concat([head, Buffer.alloc(length, 0x61)]);
}

/** A small seeded generator: the same cases every run. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

describe('FrameCursor', () => {
  it('knows where frames begin however the bytes are split (headers split too, 7/16/64-bit lengths, masked or not)', () => {
    const next = random(7);
    for (let round = 0; round < 200; round++) {
      const sizes = Array.from({ length: 1 + Math.floor(next() * 6) }, () => {
        const pick = next();
        return pick < 0.4
          ? Math.floor(next() * 126)
          : pick < 0.8
            ? 126 + Math.floor(next() * 2000)
            : 65536 + Math.floor(next() * 9000);
      });
      const masked = next() < 0.5;
      const frames = sizes.map((size) => frame(size, masked));
      const boundaries = new Set<number>([0]);
      let total = 0;
      for (const one of frames) {
        total += one.length;
        boundaries.add(total);
      }
      const bytes = Buffer.concat(frames);
      // every way of reading: the cursor agrees with the boundaries after each chunk
      const cursor = new FrameCursor();
      let at = 0;
      while (at < bytes.length) {
        const size = 1 + Math.floor(next() * (next() < 0.5 ? 5 : 30000));
        const chunk = bytes.subarray(at, at + size);
        expect(cursor.advance(chunk, false)).toBe(chunk.length);
        at += chunk.length;
        expect(cursor.atBoundary).toBe(boundaries.has(at));
      }
      // stopping: from anywhere, the next boundary in the chunk, or -1 with none in it
      const stopper = new FrameCursor();
      const from = Math.floor(next() * bytes.length);
      stopper.advance(bytes.subarray(0, from), false);
      const chunk = bytes.subarray(from, from + 1 + Math.floor(next() * 70000));
      const expected = [...boundaries].filter((b) => b >= from && b <= from + chunk.length).sort((a, b) => a - b)[0];
      const found = stopper.advance(chunk, true);
      expect(found).toBe(expected === undefined ? -1 : expected - from);
    }
  });
});

describe('FrameCursor: close frames', () => {
  it('notes a close frame among the frames it follows, so none is sent twice', () => {
    const cursor = new FrameCursor();
    cursor.advance(Buffer.concat([frame(10, true, 0x1), frame(0, true, 0x9)]), false);
    expect(cursor.closeSeen).toBe(false);
    cursor.advance(frame(2, true, 0x8), false);
    expect(cursor.closeSeen).toBe(true);
  });
});

describe('tunnel', () => {
  const pair = useTlsPair('wp-tunnel-');

  it('speaks TLS to an https upstream and checks its certificate (one of an unknown CA fails the upgrade)', async () => {
    let servername: string | undefined;
    const upstream = createTlsServer({
      cert: pair.cert,
      key: pair.key,
      SNICallback: (name, done) => {
        servername = name;
        done(null, undefined);
      },
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    closers.push(() => upstream.close());
    const { port } = upstream.address() as AddressInfo;
    const client = new Socket(); // never connected: no client that could leave
    const failed = await new Promise<Error & { code?: string }>((resolve, reject) => {
      tunnel(
        { socket: client, head: Buffer.alloc(0) },
        {
          origin: new URL(`https://localhost:${port}`),
          path: '/ws',
          method: 'GET',
          headers: { host: 'localhost', connection: 'Upgrade', upgrade: 'websocket' },
          timeoutMs: 5000,
        },
        { upgraded: () => reject(new Error('upgraded')), refused: () => reject(new Error('refused')), failed: resolve },
      );
    });
    expect(failed.code).toMatch(/CERT|ISSUER|SIGNATURE/);
    expect(servername).toBe('localhost');
  });

  it('closes on purpose between two frames: a frame half sent when told is finished first, then 1001 both ways', async () => {
    // an upstream that switches protocols, sends half a frame, and the rest when asked
    const frameBytes = frame(1000, false, 0x1);
    let resolveBody!: (body: Buffer) => void;
    const clientBody = new Promise<Buffer>((resolve) => (resolveBody = resolve));
    let upstreamSocket: Socket | null = null;
    const fromTunnel: Buffer[] = [];
    const upstreamEnded = new Promise<void>((resolve) => {
      const upstream = createServer((socket) => {
        upstreamSocket = socket;
        let head = '';
        socket.on('data', (chunk: Buffer) => {
          if (!head.includes('\r\n\r\n')) {
            head += chunk.toString('latin1');
            if (head.includes('\r\n\r\n')) {
              socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
              socket.write(frameBytes.subarray(0, 300));
            }
            return;
          }
          fromTunnel.push(chunk);
        });
        socket.on('end', () => resolve());
      });
      upstream.listen(0, '127.0.0.1');
      closers.push(() => upstream.close());
      void once(upstream, 'listening').then(() => {
        const { port } = upstream.address() as AddressInfo;
        const server = createHttpServer();
        let serverSide: Socket | null = null;
        server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
          serverSide = socket;
          tunnel(
            { socket, head },
            {
              origin: new URL(`http://127.0.0.1:${port}`),
              path: req.url!,
              method: 'GET',
              headers: { host: 'x', connection: 'Upgrade', upgrade: 'websocket' },
              timeoutMs: 5000,
            },
            { upgraded: () => {}, refused: () => socket.destroy(), failed: () => socket.destroy() },
          );
        });
        server.listen(0, '127.0.0.1', () => {
          const client = createConnection((server.address() as AddressInfo).port, '127.0.0.1');
          closers.push(
            () => client.destroy(),
            () => server.close(),
          );
          client.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
          let received = Buffer.alloc(0);
          let told = false;
          client.on('data', (chunk: Buffer) => {
            received = Buffer.concat([received, chunk]);
            const headEnd = received.indexOf('\r\n\r\n');
            if (headEnd === -1 || told) return;
            if (received.length - headEnd - 4 >= 300) {
              told = true;
              // mid-frame: the close must wait for the frame's other 700 bytes
              expect(closeTunnel(serverSide!)).toBe(true);
              upstreamSocket!.write(frameBytes.subarray(300));
            }
          });
          client.on('end', () => {
            const body = received.subarray(received.indexOf('\r\n\r\n') + 4);
            resolveBody(body);
          });
        });
      });
    });
    const body = await clientBody;
    expect(body.subarray(0, frameBytes.length).equals(frameBytes)).toBe(true);
    expect([...body.subarray(frameBytes.length)]).toEqual([0x88, 0x02, 0x03, 0xe9]);
    await upstreamEnded;
    const sent = Buffer.concat(fromTunnel);
    // a client's close frame: masked, code 1001
    expect(sent.length).toBe(8);
    expect(sent[0]).toBe(0x88);
    expect(sent[1]).toBe(0x82);
    expect(((sent[6]! ^ sent[2]!) << 8) | (sent[7]! ^ sent[3]!)).toBe(1001);
  });
});
