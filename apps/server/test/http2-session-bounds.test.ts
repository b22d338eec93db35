import { once } from 'node:events';
import {
  connect as connectH2,
  constants,
  createSecureServer,
  type Http2SecureServer,
  type ServerHttp2Session,
} from 'node:http2';
import type { Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { type ConnectionOptions, connect as connectTls, type TLSSocket } from 'node:tls';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { FLAG, FRAME, getHeaderBlock, h2Frame, PREFACE } from '../../../test/helpers/http2-raw.js';
import { useTlsPair } from '../../../test/helpers/tls-pair.js';
import { listenUntilClosed, useClosers } from '../../../test/helpers/closers.js';
import { until } from '../../../test/helpers/until.js';
import { boundSessions, closeSession, openStreams } from '../src/http2-session-bounds.js';

const IDLE_MS = 300;
const GRACE_MS = 200;

const closers = useClosers();

const tlsPair = useTlsPair('wp-session-bounds-');

/** An HTTPS listener with boundSessions on it; `/slow?ms=N` answers after N ms, the rest at once. */
async function listen(logger = pino({ level: 'silent' })): Promise<{ port: number; sockets: Socket[] }> {
  const server: Http2SecureServer = createSecureServer(tlsPair, (req, res) => {
    const ms = Number(new URL(req.url, 'http://x').searchParams.get('ms') ?? 0);
    if (ms > 0) setTimeout(() => res.end('late'), ms);
    else res.end('ok');
  });
  boundSessions(server, { idleMs: IDLE_MS, closeGraceMs: GRACE_MS, logger });
  return listenUntilClosed(server, closers);
}

/** A raw HTTP/2 client over TLS that has sent the preface and SETTINGS (and ACKs nothing). */
async function rawClient(port: number): Promise<TLSSocket> {
  const socket = connectTls({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['h2'] });
  socket.on('error', () => {});
  await once(socket, 'secureConnect');
  socket.resume();
  socket.write(Buffer.concat([PREFACE, h2Frame(FRAME.SETTINGS, 0, 0)]));
  closers.push(() => socket.destroy());
  return socket;
}

describe('closeSession (the drain closes HTTP/2 sessions with it)', () => {
  it('destroys a session with no stream whose client never ends its side, the grace after GOAWAY', async () => {
    const sessions: ServerHttp2Session[] = [];
    const server: Http2SecureServer = createSecureServer(tlsPair, (_req, res) => res.end('ok'));
    server.on('session', (session) => sessions.push(session));
    boundSessions(server, { idleMs: 60_000, closeGraceMs: GRACE_MS });
    const { port } = await listenUntilClosed(server, closers);
    // keeps its side open whatever the server does (allowHalfOpen), and reads on
    const halfOpen = { allowHalfOpen: true } as ConnectionOptions;
    const socket = connectTls({
      port,
      host: '127.0.0.1',
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
      ...halfOpen,
    });
    socket.on('error', () => {});
    closers.push(() => socket.destroy());
    await once(socket, 'secureConnect');
    socket.resume();
    socket.write(Buffer.concat([PREFACE, h2Frame(FRAME.SETTINGS, 0, 0)]));
    await until(() => sessions.length === 1, 'the session');
    const [session] = sessions as [ServerHttp2Session];
    // a bare session.close() waited for the client's side to end: a drain waited its whole bound
    closeSession(session);
    await until(() => session.destroyed, 'the session to be destroyed');
  });
});

describe('closeSession: streams in flight', () => {
  const BIG = 16 * 1024 * 1024;

  /** An HTTPS listener whose every answer is `bytes` long, bounded with a short stall check. */
  async function bigAnswers(bytes: number): Promise<{ port: number; sessions: ServerHttp2Session[] }> {
    const sessions: ServerHttp2Session[] = [];
    const server: Http2SecureServer = createSecureServer(tlsPair, (_req, res) => res.end(Buffer.alloc(bytes, 0x61)));
    server.on('session', (session) => sessions.push(session));
    boundSessions(server, { idleMs: 60_000, closeGraceMs: GRACE_MS, stalledMs: 300 });
    const { port } = await listenUntilClosed(server, closers);
    return { port, sessions };
  }

  it('lets a download in flight end whole when the drain closes its session (it was cancelled)', async () => {
    const { port, sessions } = await bigAnswers(BIG);
    const client = connectH2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    client.on('error', () => {});
    closers.push(() => client.destroy());
    const stream = client.request({ ':path': '/big' });
    stream.on('error', () => {});
    const closed = new Promise((resolve) => stream.once('close', resolve));
    const goaway = once(client, 'goaway');
    let received = 0;
    // a client on a slower network: it reads a piece, then a millisecond later the next
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      stream.pause();
      setTimeout(() => stream.resume(), 1);
    });
    await until(() => received > 0 && sessions.length === 1, 'the download under way');
    expect(received).toBeLessThan(BIG);
    closeSession(sessions[0]!);
    const [code] = (await goaway) as [number];
    expect(code).toBe(constants.NGHTTP2_NO_ERROR);
    await closed;
    expect([received, stream.rstCode]).toEqual([BIG, constants.NGHTTP2_NO_ERROR]);
  });

  it('cancels a stream stuck on a client that grants no window once the closed session is silent', async () => {
    const { port, sessions } = await bigAnswers(1024 * 1024);
    // a raw client: asks, and never sends WINDOW_UPDATE (the server stops at 64 KiB)
    const socket = await rawClient(port);
    socket.write(h2Frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1, getHeaderBlock('/big')));
    await until(() => sessions.length === 1, 'the session');
    const [session] = sessions as [ServerHttp2Session];
    await until(() => [...openStreams(session)].some((s) => s.bufferSize > 0), 'the stream stuck on the window');
    closeSession(session);
    await until(() => session.destroyed, 'the session destroyed once silent');
  });
});

describe('HTTP/2 session bounds', () => {
  it('cuts a connection whose header block never ends, silent or dripping CONTINUATION frames', async () => {
    const { port } = await listen();
    // HEADERS without END_HEADERS: nghttp2 holds the stream, JavaScript never sees it
    const silent = await rawClient(port);
    silent.write(h2Frame(FRAME.HEADERS, FLAG.END_STREAM, 1, getHeaderBlock('/')));
    const dripping = await rawClient(port);
    dripping.write(h2Frame(FRAME.HEADERS, FLAG.END_STREAM, 1, getHeaderBlock('/')));
    // a frame more often than the idle time: Node's own session timeout never fires
    const drip = setInterval(() => {
      if (!dripping.destroyed) dripping.write(h2Frame(FRAME.CONTINUATION, 0, 1, Buffer.from([0x40, 1, 0x61, 1, 0x62])));
    }, IDLE_MS / 3);
    closers.push(() => clearInterval(drip));
    // a cut can reach a client writing CONTINUATION frames as a reset (ECONNRESET, seen on Node 26):
    // once() would reject on that 'error'; the close is what is waited for
    const closed = (socket: TLSSocket) => new Promise((resolve) => socket.once('close', resolve));
    await Promise.all([closed(silent), closed(dripping)]);
  });

  it('closes a session that only sends PINGs once it has had no stream for the idle time', async () => {
    const { port } = await listen();
    const session = connectH2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    closers.push(() => session.destroy());
    const done = session.request({ ':path': '/' });
    done.resume();
    await once(done, 'end');
    const ping = setInterval(() => {
      if (!session.destroyed && !session.closed) session.ping(() => {});
    }, IDLE_MS / 3);
    closers.push(() => clearInterval(ping));
    const [code] = (await once(session, 'goaway')) as [number];
    expect(code).toBe(constants.NGHTTP2_NO_ERROR);
    await once(session, 'close');
  });

  it('lets a stream still waiting for its answer finish after the close, however long past the grace', async () => {
    const { port } = await listen();
    const session = connectH2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    closers.push(() => session.destroy());
    const first = session.request({ ':path': '/' });
    first.resume();
    await once(first, 'end');
    // asked just before the idle close: the session closes (GOAWAY) while it runs, 5 idle times long
    const slow = session.request({ ':path': `/slow?ms=${IDLE_MS * 5}` });
    slow.setEncoding('utf8');
    let body = '';
    slow.on('data', (text: string) => (body += text));
    await once(slow, 'end');
    expect(body).toBe('late');
  });

  it('cuts a client that resets streams in a flood (rapid reset) and says so; a few resets are fine', async () => {
    const lines = new PassThrough();
    let log = '';
    lines.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const { port, sockets } = await listen(pino({ level: 'warn' }, lines));

    const polite = connectH2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    polite.on('error', () => {});
    closers.push(() => polite.destroy());
    // a stream kept open all along: the polite session is never idle, so only a flood could end it
    const keep = polite.request({ ':path': `/slow?ms=${IDLE_MS * 100}` });
    keep.on('error', () => {});
    for (let i = 0; i < 50; i++) {
      const stream = polite.request({ ':path': `/slow?ms=${IDLE_MS * 10}` });
      stream.on('error', () => {});
      stream.close(constants.NGHTTP2_CANCEL);
      await once(stream, 'close');
    }

    const flood = connectH2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false });
    flood.on('error', () => {});
    closers.push(() => flood.destroy());
    await once(flood, 'connect');
    // HEADERS then RST_STREAM, as fast as the client writes them, until the server has had enough
    let goaway = false;
    flood.on('goaway', () => (goaway = true));
    for (let i = 0; i < 2000 && !goaway && !log.includes('rapid reset'); i++) {
      const stream = flood.request({ ':path': `/slow?ms=${IDLE_MS * 10}` });
      stream.on('error', () => {});
      stream.close(constants.NGHTTP2_CANCEL);
      if (i % 100 === 99) await new Promise((resolve) => setImmediate(resolve));
    }
    await until(() => log.includes('rapid reset'), 'the warning line');
    expect(log).toMatch(/closed 1 HTTP\/2 connection\(s\) that reset streams/);
    // its connection is closed on the server side (the client, busy writing, may not notice: Node drops that reset)
    await until(() => sockets[1]!.destroyed, 'the flood connection closed');
    expect(sockets[0]!.destroyed).toBe(false);
    // the polite one is not cut: its long stream is still open
    expect(polite.destroyed).toBe(false);
    expect(keep.closed).toBe(false);
  });
});
