// A proxied WebSocket is a tunnel, as nginx's proxy_pass with `Upgrade`: the client's handshake
// goes to the upstream as it came (its key, every subprotocol and extension it offers), the
// upstream's answer comes back as it was (its 101 with its own Sec-WebSocket-Protocol, -Extensions
// and cookies, or a refusal such as 401 as a plain response), and then bytes flow both ways
// untouched. Before, the server ended the client's handshake itself (101 before the upstream was
// even reached) and opened one of its own upstream: a refusing upstream looked like a socket that
// opened and closed at once, only the first subprotocol was offered, and compression was
// negotiated twice.
//
// Upgrades reach Fastify's router through upgradeListener(), so a route's hooks (access rules,
// rate limits, metrics) hold as for any request; the proxy route's handler finds the socket with
// upgradeOf() and calls tunnel().
//
// Closing on purpose (drain, websocket_idle_timeout) sends each side a close frame 1001 ("going
// away") between two frames of the bytes already flowing that way, never inside one: the frame
// headers of both directions are followed (FrameCursor), their payloads skipped unread.
import { randomBytes } from 'node:crypto';
import {
  type ClientRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  ServerResponse,
  request as httpRequest,
} from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';

/** An upgrade request's socket, taken off Node's HTTP parser, and the bytes read past its head. */
export interface Upgrade {
  socket: Socket;
  head: Buffer;
}

export interface TunnelTarget {
  /** the upstream's origin (`http:` or `https:`) */
  origin: URL;
  /** the request target sent upstream (path and query) */
  path: string;
  method: string;
  headers: OutgoingHttpHeaders;
  /** the longest wait for the upstream's answer to the handshake (ms) */
  timeoutMs: number;
}

export interface TunnelAnswers {
  /** the upstream switched protocols: the request is the tunnel's from now on (reply.hijack) */
  upgraded(): void;
  /** the upstream answered with something else: it goes to the client as any proxied response */
  refused(response: IncomingMessage): void;
  /** the upstream could not be reached or did not answer in time (error.statusCode 504) */
  failed(error: Error & { statusCode?: number }): void;
}

/** How long a side told to go away may take to close before its socket is destroyed. */
const GOING_AWAY_LINGER_MS = 5000;
/** How long a socket whose upgrade was answered by this server (403, 502...) may take to read it. */
const ANSWER_LINGER_MS = 10_000;

/** A close frame 1001 from a server (unmasked). */
export const SERVER_GOING_AWAY = Buffer.from([0x88, 0x02, 0x03, 0xe9]);

const upgrades = new WeakMap<IncomingMessage, Upgrade>();
const tunnels = new WeakMap<Socket, Tunnel>();

/**
 * The bytes a tunnel the upstream accepted sent its client past the 101 (the access log's body
 * bytes, as nginx counts a WebSocket's); undefined when `req` is no tunnel, or none was opened.
 */
export function tunnelledBytes(req: object): number | undefined {
  const upgrade = upgrades.get(req as IncomingMessage);
  const state = upgrade === undefined ? undefined : tunnels.get(upgrade.socket);
  return state?.upgraded === true ? state.sentToClient : undefined;
}

/** The upgrade `req` is, when it came through upgradeListener; undefined for a plain request. */
export function upgradeOf(req: IncomingMessage): Upgrade | undefined {
  return upgrades.get(req);
}

/**
 * An 'upgrade' listener that runs the request through Fastify's router (`routing`) on a response
 * bound to its socket. An answer of the server's own (a 403, a 404, a 502) ends the connection.
 */
export function upgradeListener(
  routing: (req: IncomingMessage, res: ServerResponse) => void,
): (req: IncomingMessage, socket: Socket, head: Buffer) => void {
  return (req, socket, head) => {
    upgrades.set(req, { socket, head });
    // Node's server stopped watching the socket for errors when it handed it over
    socket.on('error', () => socket.destroy());
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.once('finish', () => {
      if (tunnels.get(socket)?.upgraded === true) return;
      socket.end();
      socket.setTimeout(ANSWER_LINGER_MS, () => socket.destroy());
    });
    routing(req, res);
  };
}

/**
 * Sends the upgrade on to the upstream and, once it switches protocols, joins the two sockets.
 * Exactly one of `answers` is called, unless the client leaves first.
 */
export function tunnel(upgrade: Upgrade, target: TunnelTarget, answers: TunnelAnswers): void {
  const state = new Tunnel(upgrade.socket);
  tunnels.set(upgrade.socket, state);
  const send = target.origin.protocol === 'https:' ? httpsRequest : httpRequest;
  const hostname = target.origin.hostname.replace(/^\[|\]$/g, '');
  const upstream = send({
    protocol: target.origin.protocol,
    hostname,
    port: target.origin.port,
    // TLS: the upstream's name is checked against its certificate, as for proxied requests
    ...(isIP(hostname) === 0 ? { servername: hostname } : {}),
    method: target.method,
    path: target.path,
    headers: target.headers,
    setHost: false,
    agent: false,
    timeout: target.timeoutMs,
  });
  state.pending = upstream;
  // the first of the upstream's answer, its failure or the client leaving settles the handshake
  const settle = (): boolean => {
    if (state.pending === null) return false;
    state.pending = null;
    return true;
  };
  // the client left during the handshake: so does the upstream request
  upgrade.socket.once('close', () => {
    if (settle()) upstream.destroy();
  });
  upstream.on('timeout', () => {
    const error: Error & { statusCode?: number } = new Error(`no answer within ${target.timeoutMs} ms`);
    error.statusCode = 504;
    upstream.destroy(error);
  });
  upstream.on('error', (error) => {
    if (settle()) answers.failed(error);
  });
  upstream.on('response', (response) => {
    if (settle()) answers.refused(response);
    else response.destroy();
  });
  upstream.on('upgrade', (response: IncomingMessage, upstreamSocket: Socket, upstreamHead: Buffer) => {
    if (!settle()) {
      upstreamSocket.destroy();
      return;
    }
    answers.upgraded();
    state.join(response, upstreamSocket, upstreamHead, upgrade.head);
  });
  upstream.end();
}

/**
 * Whether `socket` is a tunnel the upstream accepted (its 101 relayed): before that, the upgrade
 * is in the router or waiting for the upstream's answer, bounded by the route's timeout.
 */
export function isTunnelOpen(socket: Socket): boolean {
  return tunnels.get(socket)?.upgraded === true;
}

/**
 * Closes a proxied WebSocket on purpose: a close frame 1001 to each side between two frames, then
 * the end of both connections. False when `socket` is no tunnel.
 */
export function closeTunnel(socket: Socket): boolean {
  const state = tunnels.get(socket);
  if (state === undefined) return false;
  state.goAway();
  return true;
}

class Tunnel {
  readonly #client: Socket;
  #upstream: Socket | null = null;
  /** the handshake on its way upstream */
  pending: ClientRequest | null = null;
  upgraded = false;
  get sentToClient(): number {
    return this.#toClient?.bytes ?? 0;
  }
  #toClient: Direction | null = null;
  #toUpstream: Direction | null = null;

  constructor(client: Socket) {
    this.#client = client;
  }

  join(response: IncomingMessage, upstream: Socket, upstreamHead: Buffer, clientHead: Buffer): void {
    this.upgraded = true;
    this.#upstream = upstream;
    const client = this.#client;
    upstream.setTimeout(0);
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    upstream.on('error', () => upstream.destroy());
    // the upstream's 101 as it sent it: its subprotocol, extensions and cookies are the client's to see
    let head = `HTTP/1.1 101 ${response.statusMessage || 'Switching Protocols'}\r\n`;
    const raw = response.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
    client.write(`${head}\r\n`, 'latin1');
    this.#toClient = new Direction(upstream, client, SERVER_GOING_AWAY);
    this.#toUpstream = new Direction(client, upstream, maskedGoingAway());
    this.#toClient.start(upstreamHead);
    this.#toUpstream.start(clientHead);
    // one side ends or goes: both connections end once what is on its way is written (nginx
    // closes both too; WebSocket says goodbye with close frames, not half-closed connections)
    const endBoth = (): void => {
      for (const socket of [client, upstream]) if (!socket.destroyed) socket.end(() => socket.destroy());
    };
    for (const socket of [client, upstream]) {
      socket.once('end', endBoth);
      socket.once('close', endBoth);
    }
  }

  goAway(): void {
    if (this.pending !== null) {
      // still shaking hands: nothing to close yet but the attempt
      this.pending.destroy();
      this.#client.destroy();
      return;
    }
    if (this.#toClient === null || this.#toUpstream === null) {
      this.#client.destroy();
      return;
    }
    this.#toClient.close();
    this.#toUpstream.close();
    const client = this.#client;
    const upstream = this.#upstream!;
    setTimeout(() => {
      client.destroy();
      upstream.destroy();
    }, GOING_AWAY_LINGER_MS).unref();
  }
}

/** One way of a tunnel: bytes from `from` to `to`, with backpressure, frames followed. */
class Direction {
  readonly #from: Socket;
  readonly #to: Socket;
  readonly #closeFrame: Buffer;
  readonly #frames = new FrameCursor();
  #closing = false;
  #closed = false;
  /** bytes passed on so far */
  bytes = 0;

  constructor(from: Socket, to: Socket, closeFrame: Buffer) {
    this.#from = from;
    this.#to = to;
    this.#closeFrame = closeFrame;
  }

  start(early: Buffer): void {
    if (early.length > 0) this.#pass(early);
    this.#from.on('data', (chunk: Buffer) => this.#pass(chunk));
  }

  /** The close frame goes at the next frame boundary (now, when the last frame is whole). */
  close(): void {
    if (this.#closing) return;
    this.#closing = true;
    if (this.#frames.atBoundary) this.#finish();
  }

  #pass(chunk: Buffer): void {
    if (this.#closed) return;
    if (this.#closing) {
      const at = this.#frames.advance(chunk, true);
      if (at === -1) this.#write(chunk);
      else {
        if (at > 0) this.#write(chunk.subarray(0, at));
        this.#finish();
      }
      return;
    }
    this.#frames.advance(chunk, false);
    this.#write(chunk);
  }

  #write(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.#to.write(chunk)) return;
    this.#from.pause();
    this.#to.once('drain', () => this.#from.resume());
  }

  #finish(): void {
    this.#closed = true;
    // a side that already sent its close frame this way is not sent a second one
    if (this.#to.writable) {
      if (this.#frames.closeSeen) this.#to.end();
      else this.#to.end(this.#closeFrame);
    }
    // what still comes this way is dropped: the peer was told the connection is going away
    this.#from.resume();
  }
}

/** A close frame 1001 from a client: masked, as RFC 6455 asks of every client frame. */
function maskedGoingAway(): Buffer {
  const mask = randomBytes(4);
  return Buffer.from([0x88, 0x82, mask[0]!, mask[1]!, mask[2]!, mask[3]!, 0x03 ^ mask[0]!, 0xe9 ^ mask[1]!]);
}

/**
 * Where WebSocket frames begin in one direction of bytes (RFC 6455 5.2): reads each frame's header
 * (2 to 14 bytes, possibly split across chunks) and skips its payload.
 */
export class FrameCursor {
  readonly #header = Buffer.alloc(14);
  #headerBytes = 0;
  /** payload bytes of the current frame not seen yet */
  #left = 0;
  /** a close frame (opcode 8) has begun in these bytes */
  closeSeen = false;

  /** Between two frames: no header begun, no payload pending. */
  get atBoundary(): boolean {
    return this.#headerBytes === 0 && this.#left === 0;
  }

  /**
   * Follows `chunk`. With `stopAtBoundary`, stops at the first frame boundary in it (its start
   * too) and returns its offset (`chunk.length` when the chunk ends a frame), or -1 when it holds
   * none; without, reads it all and returns its length.
   */
  advance(chunk: Buffer, stopAtBoundary: boolean): number {
    const end = chunk.length;
    let at = 0;
    while (at < end) {
      if (this.#left > 0) {
        const skipped = Math.min(this.#left, end - at);
        this.#left -= skipped;
        at += skipped;
        continue;
      }
      if (this.#headerBytes === 0 && stopAtBoundary) return at;
      this.#header[this.#headerBytes++] = chunk[at++]!;
      if (this.#headerBytes === 1 && (this.#header[0]! & 0x0f) === 0x8) this.closeSeen = true;
      if (this.#headerBytes >= 2 && this.#headerBytes === headerLength(this.#header)) {
        this.#left = payloadLength(this.#header);
        this.#headerBytes = 0;
      }
    }
    if (!stopAtBoundary) return end;
    return this.atBoundary ? end : -1;
  }
}

function headerLength(header: Buffer): number {
  const length7 = header[1]! & 0x7f;
  const masked = (header[1]! & 0x80) !== 0;
  return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + (masked ? 4 : 0);
}

function payloadLength(header: Buffer): number {
  const length7 = header[1]! & 0x7f;
  if (length7 === 126) return header.readUInt16BE(2);
  if (length7 === 127) return Number(header.readBigUInt64BE(2));
  return length7;
}
