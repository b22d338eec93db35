import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  /** responses the upstream had finished when this request's body was in (the order of work) */
  answeredBefore: number;
}

export interface Upstream {
  origin: string;
  port: number;
  /** every HTTP request it answered, in order */
  seen: SeenRequest[];
  /** TCP connections it accepted so far */
  connections(): number;
  /** resolves once `count` /head-then-silence streams have been closed (by the proxy in front, their client gone) */
  silentStreamsClosed(count: number): Promise<void>;
  /** WebSocket connections it accepted (their request target) */
  webSockets: string[];
  /** the upgrade requests' headers, in the order of webSockets */
  webSocketHeaders: IncomingMessage['headers'][];
  /** resolves once a WebSocket upgrade for `target` has arrived */
  webSocketOpened(target: string): Promise<void>;
  /** resolves once the WebSocket connection it accepted for `target` has closed */
  webSocketClosed(target: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * A real upstream for proxy routes: answers JSON describing the request it got (status 201 for
 * POST, header x-upstream: yes), a path under /slow two seconds late (proxy timeouts), a path
 * ending in /redirect with a 302 to an absolute URL of its own (?to=/path) or another (?abs=URL),
 * one ending in /truncated with 10 of the 1000 bytes it announces, then a reset; one ending in
 * /trailer with a Trailer header (and the trailer; ?length=1: a Content-Length instead); a path
 * with /drop-reused in it closes its connection unanswered unless it is the connection's first
 * request (an idle kept-alive connection closed as the request came); one ending in /unavailable
 * answers 503 with Retry-After: 1; one ending in /head-then-silence flushes an event stream's head
 * and sends nothing more; one ending in /handoff answers X-Accel-Redirect: ?to= and no
 * body; accepts
 * WebSocket upgrades by hand (RFC 6455 handshake and frames; of the subprotocols offered, the last,
 * with a cookie) and echoes text messages as "echo MSG from URL for X-FORWARDED-FOR"; refuses an
 * upgrade to a path ending in /denied with 403 "no entry", and answers one to a path with
 * /slow-handshake in it 4 s late.
 */
export async function startUpstream(): Promise<Upstream> {
  const seen: SeenRequest[] = [];
  const webSockets: string[] = [];
  const webSocketHeaders: IncomingMessage['headers'][] = [];
  const openWaiters = new Map<string, Array<() => void>>();
  const webSocketClosures = new Map<string, Promise<void>>();
  const sockets = new Set<Socket>();
  /** requests answered on each connection so far */
  const requestsOn = new WeakMap<Socket, number>();
  let port = 0;
  let answered = 0;
  const server: Server = createServer(async (req, res) => {
    res.once('finish', () => answered++);
    let body = '';
    try {
      for await (const chunk of req) body += chunk;
    } catch {
      // a body the proxy cut (over max_request_size, its client gone): nothing to answer
      return;
    }
    seen.push({ method: req.method!, url: req.url!, headers: req.headers, body, answeredBefore: answered });
    // a kept-alive connection the upstream has just closed as idle, as the request arrives on it
    const onSocket = (requestsOn.get(req.socket) ?? 0) + 1;
    requestsOn.set(req.socket, onSocket);
    if (req.url!.includes('/drop-reused') && onSocket > 1) {
      req.socket.destroy();
      return;
    }
    if (req.url!.startsWith('/slow')) await new Promise((resolve) => setTimeout(resolve, 2000));
    if (res.destroyed) return;
    const url = new URL(req.url!, 'http://upstream');
    if (url.pathname.endsWith('/redirect')) {
      // ?to=/path: a redirect to an absolute URL on the upstream's own origin (?abs=URL: that URL)
      const to = url.searchParams.get('abs') ?? `http://127.0.0.1:${port}${url.searchParams.get('to') ?? '/'}`;
      res.writeHead(302, { location: to }).end();
      return;
    }
    if (url.pathname.endsWith('/handoff')) {
      // a protected download as Django and Rails hand it to nginx: the file's internal path, no body
      res.writeHead(200, { 'content-type': 'text/plain', 'x-accel-redirect': url.searchParams.get('to') ?? '' }).end();
      return;
    }
    if (url.pathname.endsWith('/head-then-silence')) {
      // an event stream whose head is flushed at once, and then nothing more (until the client goes)
      // (?type=: another Content-Type, a reply not streamed on purpose)
      const type = url.searchParams.get('type') ?? 'text/event-stream';
      res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache' }).flushHeaders();
      res.once('close', () => {
        silentClosed++;
        for (const waiter of silentWaiters.splice(0)) waiter();
      });
      return;
    }
    if (url.pathname.endsWith('/unavailable')) {
      res.writeHead(503, { 'content-type': 'text/plain', 'retry-after': '1' }).end('down for maintenance\n');
      return;
    }
    if (url.pathname.endsWith('/trailer')) {
      // a chunked body with a trailer, as Node's res.addTrailers sends it; ?length=1: a Content-Length
      // with the Trailer header. Written raw: Node would refuse the header on a HEAD's answer.
      const head = req.method === 'HEAD';
      const sized = url.searchParams.get('length') === '1';
      req.socket.end(
        'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: X-Checksum\r\nConnection: close\r\n' +
          (sized ? 'Content-Length: 12\r\n\r\n' : 'Transfer-Encoding: chunked\r\n\r\n') +
          (head ? '' : sized ? 'report body\n' : 'c\r\nreport body\n\r\n0\r\nX-Checksum: abc123\r\n\r\n'),
      );
      return;
    }
    if (url.pathname.endsWith('/truncated')) {
      // 10 bytes of the 1000 it announces, then the connection is gone
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
      res.write('0123456789', () => res.socket?.destroy());
      return;
    }
    // X-Powered-By as Express sends it: what http.headers.hide is for
    res.writeHead(req.method === 'POST' ? 201 : 200, {
      'content-type': 'application/json',
      'x-upstream': 'yes',
      'x-powered-by': 'Express',
    });
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
  });
  let connections = 0;
  let silentClosed = 0;
  const silentWaiters: Array<() => void> = [];
  server.on('connection', (socket) => {
    connections++;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    webSocketHeaders.push(req.headers);
    webSockets.push(req.url!);
    for (const wake of openWaiters.get(req.url!) ?? []) wake();
    openWaiters.delete(req.url!);
    webSocketClosures.set(
      req.url!,
      once(socket, 'close').then(() => {}),
    );
    // a handshake the upstream answers 4 s late (longer than a short websocket_idle_timeout)
    if (req.url!.includes('/slow-handshake')) setTimeout(() => acceptWebSocket(req, socket), 4000);
    else acceptWebSocket(req, socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    seen,
    connections: () => connections,
    silentStreamsClosed: async (count) => {
      while (silentClosed < count) await new Promise<void>((resolve) => silentWaiters.push(resolve));
    },
    webSockets,
    webSocketHeaders,
    webSocketOpened: (target) =>
      webSockets.includes(target)
        ? Promise.resolve()
        : new Promise((resolve) => openWaiters.set(target, [...(openWaiters.get(target) ?? []), resolve])),
    webSocketClosed: (target) =>
      webSocketClosures.get(target) ?? Promise.reject(new Error(`no WebSocket to ${target}`)),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function acceptWebSocket(req: IncomingMessage, socket: Socket): void {
  if (req.url!.split('?')[0]!.endsWith('/denied')) {
    socket.end(
      'HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nX-Why: denied\r\n\r\nno entry\n',
    );
    return;
  }
  const accept = createHash('sha1')
    .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`)
    .digest('base64');
  // the last subprotocol offered, as a server that prefers the newest version of its protocol
  const offered = req.headers['sec-websocket-protocol']?.split(',').map((name) => name.trim());
  const chosen =
    offered === undefined ? '' : `Sec-WebSocket-Protocol: ${offered[offered.length - 1]}\r\nSet-Cookie: ws=1\r\n`;
  socket.write(
    `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n${chosen}\r\n`,
  );
  let buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    for (;;) {
      const frame = readFrame(buffer);
      if (frame === null) return;
      buffer = buffer.subarray(frame.length);
      if (frame.opcode === 0x1) {
        const text = `echo ${frame.payload.toString()} from ${req.url} for ${req.headers['x-forwarded-for']}`;
        socket.write(writeFrame(0x1, Buffer.from(text)));
      } else if (frame.opcode === 0x8) {
        // the answer to the first close frame only (a second one may follow, from the server in front)
        if (!socket.writableEnded) socket.end(writeFrame(0x8, frame.payload.subarray(0, 2)));
        return;
      } else if (frame.opcode === 0x9) socket.write(writeFrame(0xa, frame.payload));
    }
  });
  socket.on('error', () => {});
}

/** One client frame (always masked), or null when more bytes are needed. */
function readFrame(buffer: Buffer): { opcode: number; payload: Buffer; length: number } | null {
  if (buffer.length < 2) return null;
  let length = buffer[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (buffer.length < 4) return null;
    length = buffer.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (buffer.length < 10) return null;
    length = Number(buffer.readBigUInt64BE(2));
    offset = 10;
  }
  const masked = (buffer[1]! & 0x80) !== 0;
  const mask = masked ? buffer.subarray(offset, offset + 4) : null;
  if (masked) offset += 4;
  if (buffer.length < offset + length) return null;
  const payload = Buffer.from(buffer.subarray(offset, offset + length));
  if (mask !== null) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
  return { opcode: buffer[0]! & 0x0f, payload, length: offset + length };
}

/** A server frame: FIN set, unmasked. */
function writeFrame(opcode: number, payload: Buffer): Buffer {
  const head =
    payload.length < 126
      ? Buffer.from([0x80 | opcode, payload.length])
      : Buffer.from([0x80 | opcode, 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([head, payload]);
}
