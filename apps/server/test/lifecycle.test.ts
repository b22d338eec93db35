import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import {
  connect as connectHttp2,
  createSecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { makeTlsPair } from '../../../test/helpers/tls-pair.js';
import { closeServers, ConnectionTracker, listenOptions } from '../src/lifecycle.js';

// The tracker on a real HTTP/1 server, driven by raw sockets so the test decides when each request
// leaves and sees exactly what the server writes and when it ends the connection. Paths:
//   /fast      answers at once
//   /hold-N    answers when the test calls release('hold-N')
//   /stream-N  sends its head and a first chunk at once, the rest on release('stream-N')

interface Harness {
  server: Server;
  tracker: ConnectionTracker;
  port: number;
  /** resolves when the server has seen `path` */
  seen(path: string): Promise<void>;
  release(path: string): void;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function harness(): Promise<Harness> {
  const waiting = new Map<string, () => void>();
  const seenWaiters = new Map<string, () => void>();
  const seenPaths = new Set<string>();
  const handler = (
    request: IncomingMessage | Http2ServerRequest,
    response: ServerResponse | Http2ServerResponse,
  ): void => {
    const req = request as IncomingMessage;
    const res = response as ServerResponse;
    const path = req.url!.slice(1);
    seenPaths.add(path);
    seenWaiters.get(path)?.();
    if (path === 'fast') {
      res.end('fast');
      return;
    }
    if (path.startsWith('stream-')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first ');
      waiting.set(path, () => res.end('last'));
      return;
    }
    waiting.set(path, () => res.end(path));
  };
  const tracker = new ConnectionTracker();
  const server = createServer(tracker.wrap(handler));
  tracker.watchHttp1(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  cleanups.push(async () => {
    tracker.destroyAll();
    await new Promise((resolve) => server.close(resolve));
  });
  return {
    server,
    tracker,
    port: (server.address() as AddressInfo).port,
    seen: (path) =>
      seenPaths.has(path) ? Promise.resolve() : new Promise((resolve) => seenWaiters.set(path, resolve)),
    release: (path) => waiting.get(path)!(),
  };
}

/** A raw client connection: what the server wrote, and whether it ended the connection. */
function client(port: number): {
  socket: Socket;
  text(): string;
  ended: Promise<void>;
  isEnded(): boolean;
  send(...paths: string[]): void;
} {
  const socket = connect(port, '127.0.0.1');
  let text = '';
  let ended = false;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (text += chunk));
  const endedPromise = new Promise<void>((resolve) =>
    socket.once('end', () => {
      ended = true;
      resolve();
    }),
  );
  socket.on('error', () => {});
  cleanups.push(() => void socket.destroy());
  return {
    socket,
    text: () => text,
    ended: endedPromise,
    isEnded: () => ended,
    // several paths in one write: pipelined requests
    send: (...paths) => void socket.write(paths.map((p) => `GET /${p} HTTP/1.1\r\nHost: test\r\n\r\n`).join('')),
  };
}

/** The heads of the replies in `text`, in order. */
function heads(text: string): string[] {
  return text.split(/(?=HTTP\/1\.1 )/).map((reply) => reply.slice(0, reply.indexOf('\r\n\r\n')));
}

const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms));

describe('ConnectionTracker drain (HTTP/1)', () => {
  it('a reply still to be written carries Connection: close, and its socket ends right after it', async () => {
    const h = await harness();
    const c = client(h.port);
    c.send('hold-1');
    await h.seen('hold-1');
    expect(h.tracker.busy).toBe(1);
    h.tracker.drain(60_000);
    h.release('hold-1');
    await c.ended;
    expect(heads(c.text())).toHaveLength(1);
    expect(heads(c.text())[0]).toMatch(/\r\nconnection: close/i);
    expect(c.text()).toMatch(/hold-1$/);
  });

  it('a reply already started keeps its head; its socket then gets the idle grace, and a request sent in it is served with Connection: close', async () => {
    // its head said keep-alive: the client reuses the socket the moment the reply ends, and ending
    // the socket right after the reply reset that request
    const h = await harness();
    const c = client(h.port);
    c.send('stream-1');
    await h.seen('stream-1');
    await tick();
    h.tracker.drain(60_000);
    h.release('stream-1');
    await vi.waitFor(() => expect(c.text()).toMatch(/\r\n0\r\n\r\n$/));
    expect(c.isEnded()).toBe(false);
    c.send('fast');
    await c.ended;
    const replies = heads(c.text());
    expect(replies).toHaveLength(2);
    expect(replies[0]).toMatch(/\r\nconnection: keep-alive/i);
    expect(replies[1]).toMatch(/\r\nconnection: close/i);
    expect(c.text()).toMatch(/fast$/);
    // one that brings nothing is ended once the grace is over
    const q = await harness();
    const quiet = client(q.port);
    quiet.send('stream-2');
    await q.seen('stream-2');
    await tick();
    q.tracker.drain(100);
    q.release('stream-2');
    await quiet.ended;
    expect(heads(quiet.text())).toHaveLength(1);
  });

  it('pipelined requests: those waiting behind a started reply are told Connection: close, the socket ends after the last', async () => {
    const h = await harness();
    const c = client(h.port);
    c.send('stream-1', 'hold-2', 'hold-3');
    await h.seen('hold-3');
    await tick();
    expect(h.tracker.busy).toBe(3);
    h.tracker.drain(60_000);
    // the waiting replies are written (into Node's buffer) while the first still streams
    h.release('hold-2');
    h.release('hold-3');
    await tick();
    expect(c.isEnded()).toBe(false);
    h.release('stream-1');
    await c.ended;
    const replies = heads(c.text());
    expect(replies).toHaveLength(2);
    expect(replies[0]).toMatch(/\r\nconnection: keep-alive/i);
    expect(replies[1]).toMatch(/\r\nconnection: close/i);
    expect(c.text()).toContain('hold-2');
    // Node stops after a Connection: close reply: the third request is never answered, and is
    // forgotten with its socket (on Node 20 its response never emits 'close')
    await tick();
    expect(h.tracker.busy).toBe(0);
  });

  it('a pipelined request waiting behind a reply that finishes first is counted once, and forgotten when done', async () => {
    const h = await harness();
    const c = client(h.port);
    c.send('hold-1', 'fast');
    await h.seen('fast');
    expect(h.tracker.busy).toBe(2);
    h.release('hold-1');
    await tick();
    expect(heads(c.text())).toHaveLength(2);
    expect(h.tracker.busy).toBe(0);
    expect(c.isEnded()).toBe(false);
  });

  it('idle keep-alive sockets end after the grace; one that brings a request within it is served with Connection: close', async () => {
    const h = await harness();
    const idle = client(h.port);
    const late = client(h.port);
    idle.send('fast');
    late.send('fast');
    await tick();
    expect(heads(idle.text())[0]).not.toMatch(/connection: close/i);
    const started = Date.now();
    h.tracker.drain(300);
    late.send('fast');
    await late.ended;
    expect(Date.now() - started).toBeLessThan(300);
    expect(heads(late.text())).toHaveLength(2);
    expect(heads(late.text())[1]).toMatch(/\r\nconnection: close/i);
    expect(idle.isEnded()).toBe(false);
    await idle.ended;
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('a connection accepted while draining gets the idle grace: its request is served with Connection: close, or it ends', async () => {
    // accepted just before close(), or an HTTPS one whose handshake ended during the drain: its
    // client sends its request now (ended at once, it got no answer at all)
    const h = await harness();
    h.tracker.drain(60_000);
    const c = client(h.port);
    c.send('fast');
    await c.ended;
    expect(heads(c.text())).toHaveLength(1);
    expect(heads(c.text())[0]).toMatch(/\r\nconnection: close/i);
    // one that brings nothing is ended once the grace is over
    const quiet = await harness();
    quiet.tracker.drain(100);
    const silent = client(quiet.port);
    await silent.ended;
    expect(silent.text()).toBe('');
  });
});

describe('ConnectionTracker drain (HTTP/2, and clients that never close)', () => {
  /** A real HTTPS server (h2, HTTP/1.1 fallback) whose handler holds every request it is given. */
  async function secureHarness() {
    const dir = await mkdtemp(join(tmpdir(), 'wp-lifecycle-'));
    const pair = await makeTlsPair(dir);
    const tracker = new ConnectionTracker();
    const held: Http2ServerResponse[] = [];
    const server = createSecureServer(
      { cert: await readFile(pair.cert), key: await readFile(pair.key), allowHTTP1: true },
      tracker.wrap((req, res) => {
        (req as Http2ServerRequest).resume(); // as Fastify reads a body
        held.push(res as Http2ServerResponse);
      }),
    );
    tracker.watchHttp2(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanups.push(async () => {
      tracker.destroyAll();
      await new Promise((resolve) => server.close(resolve));
      await rm(dir, { recursive: true, force: true });
    });
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { tracker, server, held, url, ca: await readFile(pair.ca) };
  }

  it('an HTTP/2 connection a drain waits for names its open streams: what each asked and still waits for', async () => {
    const { tracker, held, url, ca } = await secureHarness();
    const session = connectHttp2(url, { ca });
    session.on('error', () => {});
    cleanups.push(() => void session.destroy());
    // one still sending its body, one waiting for its reply
    const sending = session.request({ ':method': 'PUT', ':path': '/upload' });
    sending.write('part of a body');
    // three alike: said once, with their count
    for (let i = 0; i < 3; i++) session.request({ ':method': 'GET', ':path': '/held?x=1' }).end();
    await vi.waitFor(() => expect(held).toHaveLength(4));
    tracker.drain(60_000);
    expect(tracker.busy).toBe(1); // one connection to wait for
    expect(tracker.requestsInFlight).toBe(4); // holding four requests
    expect(tracker.describeOpen()).toMatch(
      /^an HTTP\/2 connection \(\d+ frames not yet sent; open: PUT \/upload \(no reply yet, its request body still open\), 3 × GET \/held\?x=1 \(no reply yet\)\)$/,
    );
  });

  it('a drain ends though its clients never close their side: an HTTP/2 one after GOAWAY, an HTTP/1.1 one after the FIN', async () => {
    const { tracker, server, url, ca } = await secureHarness();
    const { port } = new URL(url);
    // clients that keep their side open whatever the server does (allowHalfOpen), and read on
    const stubborn = async (alpn: string, first: Buffer | string) => {
      // tls.connect passes allowHalfOpen on to its socket; @types/node leaves it out
      const halfOpen = { allowHalfOpen: true } as ConnectionOptions;
      const socket = tlsConnect({ port: Number(port), host: '127.0.0.1', ca, ALPNProtocols: [alpn], ...halfOpen });
      socket.on('error', () => {});
      await once(socket, 'secureConnect');
      expect(socket.alpnProtocol).toBe(alpn);
      socket.write(first);
      socket.resume();
      const ended = once(socket, 'end'); // the server's FIN
      cleanups.push(() => void socket.destroy());
      return { socket, ended };
    };
    // the HTTP/2 preface and an empty SETTINGS frame: a session with no stream
    const http2 = await stubborn(
      'h2',
      Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]),
    );
    const http1 = await stubborn('http/1.1', '');
    await vi.waitFor(() => expect(tracker.busy).toBe(1)); // the session
    const closed = closeServers([server], tracker);
    tracker.drain(100);
    await Promise.all([http2.ended, http1.ended]);
    expect(http2.socket.destroyed || http1.socket.destroyed).toBe(false); // both wait, half-open
    await closed; // hung here for good: Node waits for both sides of every connection
    await vi.waitFor(() => expect(tracker.busy).toBe(0)); // the session's 'close' follows its socket's
  });
});

describe('listenOptions', () => {
  it("binds a host name's IPv4 address when it has one: Debian's localhost is ::1 first, and IPv4 clients were refused", async () => {
    const debian = async () => [
      { address: '::1', family: 6 },
      { address: '127.0.0.1', family: 4 },
    ];
    expect(await listenOptions('localhost:8080', debian)).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(await listenOptions('v6only.test:8080', async () => [{ address: '::1', family: 6 }])).toEqual({
      host: '::1',
      port: 8080,
    });
    // addresses and every interface as written; a name that does not resolve is left to listen()'s error
    expect(await listenOptions('[::1]:8080', debian)).toEqual({ host: '::1', port: 8080 });
    expect(await listenOptions(':8080', debian)).toEqual({ port: 8080 });
    const failing = async () => Promise.reject(Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' }));
    expect(await listenOptions('nowhere.invalid:8080', failing)).toEqual({ host: 'nowhere.invalid', port: 8080 });
    // the real resolver: this machine's localhost, bound as it resolves
    const real = await listenOptions('localhost:0');
    expect(['127.0.0.1', '::1']).toContain(real.host);
  });
});
