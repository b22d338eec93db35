import { once } from 'node:events';
import { createServer, type Server as HttpServer } from 'node:http';
import { connect as connectH2, constants, createSecureServer } from 'node:http2';
import { connect, type Server as NetServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { connect as connectTls } from 'node:tls';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { http2Get } from '../../../test/helpers/http2-raw.js';
import { useTlsPair } from '../../../test/helpers/tls-pair.js';
import { listenUntilClosed, pacedBody, useClosers } from '../../../test/helpers/closers.js';
import { SendTimeouts } from '../src/send-timeout.js';

const TIMEOUT_MS = 300;
/** far more than loopback's socket buffers take, so a client that reads nothing leaves most of it waiting */
const BIG = 32 * 1024 * 1024;

const closers = useClosers();

const tlsPair = useTlsPair('wp-send-timeout-');

/** `total` bytes, a KiB every 50 ms: a slow producer, not a slow client. */
function tricklingBody(total: number): Readable {
  let left = total;
  return new Readable({
    read() {
      setTimeout(() => {
        if (left <= 0) return void this.push(null);
        left -= 1024;
        this.push(Buffer.alloc(1024, 1));
      }, 50);
    },
  });
}

/** A listener with SendTimeouts on it; `sockets` are its accepted TCP connections, in order. */
async function listen(server: NetServer): Promise<{ port: number; timeouts: SendTimeouts; sockets: Socket[] }> {
  const timeouts = new SendTimeouts(TIMEOUT_MS, pino({ level: 'silent' }));
  timeouts.watch(server);
  const { port, sockets } = await listenUntilClosed(server, closers);
  return { port, timeouts, sockets };
}

function plainServer(): HttpServer {
  const server = createServer((req, res) => {
    if (req.url === '/big') pacedBody(BIG).pipe(res);
    else if (req.url === '/trickle') tricklingBody(24 * 1024).pipe(res);
    else res.end('ok');
  });
  server.keepAliveTimeout = 60_000; // the idle connection below must outlive a slow run, not Node's 5 s
  return server;
}

/** Reads everything from `socket` until it closes; how many bytes came. */
async function drain(socket: Socket): Promise<number> {
  let bytes = 0;
  socket.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  socket.resume();
  await once(socket, 'close');
  return bytes;
}

describe('http.send_timeout (SendTimeouts)', () => {
  it('closes an HTTP/1.1 connection whose client reads nothing of a large response', async () => {
    const { port, timeouts, sockets } = await listen(plainServer());
    const client = connect(port, '127.0.0.1');
    client.on('error', () => {});
    client.pause();
    client.write('GET /big HTTP/1.1\r\nHost: t\r\n\r\n');
    await once(client, 'connect');
    await once(sockets[0]!, 'close');
    expect(timeouts.closed).toBe(1);
    expect(await drain(client)).toBeLessThan(BIG);
    expect(timeouts.metrics()).toContain('warmpool_send_timeouts_total 1\n');
  });

  it('leaves alone a client that reads, one whose response comes slowly, and an idle keep-alive connection', async () => {
    const { port, timeouts, sockets } = await listen(plainServer());
    const reader = connect(port, '127.0.0.1');
    reader.write('GET /big HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    const waiter = connect(port, '127.0.0.1');
    waiter.write('GET /trickle HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    const idle = connect(port, '127.0.0.1');
    idle.write('GET /small HTTP/1.1\r\nHost: t\r\n\r\n');
    const [read, waited] = await Promise.all([drain(reader), drain(waiter)]); // the trickle takes over 1 s
    expect(read).toBeGreaterThan(BIG);
    expect(waited).toBeGreaterThan(24 * 1024);
    // the idle one answered its request long ago and waited since, with nothing to send
    expect(idle.destroyed).toBe(false);
    const idleOnServer = sockets.find((socket) => socket.remotePort === idle.localPort)!;
    expect(idleOnServer.destroyed).toBe(false);
    expect(timeouts.closed).toBe(0);
    idle.destroy();
  });

  it('closes a stalled TLS connection: HTTP/1.1, and HTTP/2 whose client granted a large window and reads nothing', async () => {
    const server = createSecureServer({ ...tlsPair, allowHTTP1: true }, (_req, res) => pacedBody(BIG).pipe(res));
    const { port, timeouts, sockets } = await listen(server);

    const http1 = connectTls({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    http1.on('error', () => {});
    await once(http1, 'secureConnect');
    http1.pause();
    http1.write('GET /big HTTP/1.1\r\nHost: t\r\n\r\n');

    const http2 = connectTls({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    http2.on('error', () => {});
    await once(http2, 'secureConnect');
    http2.pause();
    http2.write(http2Get('/big'));

    await Promise.all(sockets.map((socket) => once(socket, 'close')));
    expect(timeouts.closed).toBe(2);
    expect(await drain(http1)).toBeLessThan(BIG);
    expect(await drain(http2)).toBeLessThan(BIG);
  });

  it('resets an HTTP/2 stream left at a zero window while its connection reads on; the others are served', async () => {
    const server = createSecureServer(tlsPair, (req, res) => {
      if (req.url === '/big') pacedBody(BIG).pipe(res);
      else res.end('ok');
    });
    const { port, timeouts, sockets } = await listen(server);
    // Node's client reads its connection all along; a window of 0 lets no DATA of any stream through
    const session = connectH2(`https://127.0.0.1:${port}`, {
      rejectUnauthorized: false,
      settings: { initialWindowSize: 0 },
    });
    session.on('error', () => {});
    closers.push(() => session.destroy());
    const stalled = session.request({ ':path': '/big' });
    stalled.on('error', () => {});
    const [headers] = await once(stalled, 'response');
    expect(headers[':status']).toBe(200);
    await once(stalled, 'close');
    expect(stalled.rstCode).toBe(constants.NGHTTP2_CANCEL);
    expect(timeouts.closed).toBe(1);
    expect(timeouts.metrics()).toContain('warmpool_send_timeouts_total 1\n');
    // the connection is still up: a stream that reads gets its answer
    session.settings({ initialWindowSize: 65_535 });
    const fine = session.request({ ':path': '/small' });
    fine.setEncoding('utf8');
    let text = '';
    fine.on('data', (chunk: string) => (text += chunk));
    await once(fine, 'end');
    expect(text).toBe('ok');
    expect(sockets[0]!.destroyed).toBe(false);
  });
});
