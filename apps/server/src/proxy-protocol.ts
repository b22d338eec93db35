// HAProxy's PROXY protocol (v1 text, v2 binary) on a listener, as nginx's `listen … proxy_protocol`
// with `real_ip_header proxy_protocol`: behind a TCP load balancer (AWS NLB, Hetzner's and
// DigitalOcean's, HAProxy in tcp mode, TLS passed through) every connection starts with a header
// naming the client, and nothing else can: without it every client was the balancer, in one bucket
// for limit_req and max_connections_per_ip, and access rules saw only the balancer.
//
// Each connection must start with the header, or it is closed (nginx: "broken header"). The
// client it names becomes the socket's remoteAddress and remotePort when the connection comes from
// http.trusted_subnets; from anyone else the header is read and not believed.
import type { Server as NetServer, Socket } from 'node:net';
import { isIPv4, isIPv6 } from 'node:net';
import { Server as TlsServer, type TLSSocket } from 'node:tls';
import { plainAddress, type TrustedSubnets } from '@warmpool/fastify';
import type { Logger } from 'pino';

/** How long a connection may take to send its header (nginx's proxy_protocol_timeout is 30 s). */
export const PROXY_HEADER_TIMEOUT_MS = 10_000;

/** v1's longest header, "PROXY TCP6 <39> <39> 65535 65535\r\n" (the spec's 107 bytes). */
const V1_MAX_BYTES = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** v2: the signature, version and command, family, and the length of what follows */
const V2_FIXED_BYTES = 16;
/** a v2 header with TLVs (AWS adds its VPC endpoint id, others a TLS summary) stays well under this */
const V2_MAX_BYTES = 16 + 1024;

/** What a connection's header says: its bytes, and the client, or null (LOCAL, UNKNOWN: the peer itself). */
export interface ProxyHeader {
  length: number;
  client: { address: string; port: number } | null;
}

/** The header at the start of `data`: 'more' when it is not all there yet, a reason when it is broken. */
export function parseProxyHeader(data: Buffer): ProxyHeader | 'more' | { broken: string } {
  if (data.length === 0) return 'more';
  if (data[0] === 0x0d) return parseV2(data);
  if (data[0] === 0x50 /* P */) return parseV1(data);
  return { broken: 'no PROXY header: the connection did not start with one' };
}

function parseV1(data: Buffer): ProxyHeader | 'more' | { broken: string } {
  const end = data.indexOf('\r\n');
  if (end === -1) return data.length >= V1_MAX_BYTES ? { broken: 'a PROXY v1 line longer than 107 bytes' } : 'more';
  if (end + 2 > V1_MAX_BYTES) return { broken: 'a PROXY v1 line longer than 107 bytes' };
  const line = data.toString('latin1', 0, end);
  const parts = line.split(' ');
  if (parts[0] !== 'PROXY') return { broken: 'no PROXY header: the connection did not start with one' };
  if (parts[1] === 'UNKNOWN') return { length: end + 2, client: null };
  const [, family, source, , sourcePort, destinationPort] = parts;
  const valid = family === 'TCP4' ? isIPv4 : family === 'TCP6' ? isIPv6 : null;
  if (
    parts.length !== 6 ||
    valid === null ||
    !valid(source!) ||
    !valid(parts[3]!) ||
    !isPort(sourcePort!) ||
    !isPort(destinationPort!)
  )
    return { broken: `a broken PROXY v1 line: ${JSON.stringify(line.slice(0, 80))}` };
  return { length: end + 2, client: { address: plainAddress(source!), port: Number(sourcePort) } };
}

function isPort(text: string): boolean {
  return /^(0|[1-9]\d{0,4})$/.test(text) && Number(text) <= 65535;
}

function parseV2(data: Buffer): ProxyHeader | 'more' | { broken: string } {
  const known = Math.min(data.length, V2_SIGNATURE.length);
  if (!data.subarray(0, known).equals(V2_SIGNATURE.subarray(0, known)))
    return { broken: 'no PROXY header: the connection did not start with one' };
  if (data.length < V2_FIXED_BYTES) return 'more';
  const versionCommand = data[12]!;
  if (versionCommand >> 4 !== 2) return { broken: `a PROXY v2 header of version ${versionCommand >> 4}` };
  const length = V2_FIXED_BYTES + data.readUInt16BE(14);
  if (length > V2_MAX_BYTES) return { broken: `a PROXY v2 header of ${length} bytes` };
  if (data.length < length) return 'more';
  const command = versionCommand & 0x0f;
  // LOCAL: the balancer's own connection (a health check), not a client's
  if (command === 0) return { length, client: null };
  if (command !== 1) return { broken: `a PROXY v2 header with command ${command}` };
  const family = data[13]! >> 4;
  const body = data.subarray(V2_FIXED_BYTES, length);
  if (family === 1 && body.length >= 12)
    return { length, client: { address: [...body.subarray(0, 4)].join('.'), port: body.readUInt16BE(8) } };
  if (family === 2 && body.length >= 36) {
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(i).toString(16));
    return { length, client: { address: plainAddress(groups.join(':')), port: body.readUInt16BE(32) } };
  }
  // UNSPEC or a Unix socket: no client address to give
  return { length, client: null };
}

/** The socket's client as its PROXY header named it, kept for the TLS socket made over it. */
const clients = new WeakMap<Socket, { address: string; port: number }>();

/**
 * Makes every connection of `server` start with a PROXY header: read before the server's own
 * connection listeners (HTTP, TLS, the connection limits) see the socket, the rest of what came with
 * it given back to them. Call it once the server's listeners are all added, before it listens.
 */
export function requireProxyProtocol(
  server: NetServer,
  trusted: TrustedSubnets,
  logger: Logger,
  limits: PendingLimits = { total: 0, perPeer: 0 },
  timeoutMs = PROXY_HEADER_TIMEOUT_MS,
): void {
  const listeners = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  const refused = new RefusalLog(logger);
  const tls = server instanceof TlsServer;
  const pending = new PendingConnections(limits);
  server.on('connection', (socket: Socket) => {
    // until its header names the client, the connection limits cannot count it: these do (before,
    // 1,100 idle connections of one peer took the server past every limit, for 10 s each)
    const peer = socket.remoteAddress === undefined ? '' : plainAddress(socket.remoteAddress);
    if (!pending.admit(peer, trusted.contains(peer))) {
      refused.say(
        socket,
        'too many connections waiting for their PROXY header (http.max_connections, max_connections_per_ip)',
      );
      socket.destroy();
      return;
    }
    const timer = setTimeout(() => {
      refused.say(socket, `no PROXY header within ${timeoutMs / 1000} s`);
      socket.destroy();
    }, timeoutMs);
    timer.unref();
    // closed before its header (a health check that connects and goes): no refusal, no line
    socket.once('close', () => {
      pending.release(socket, peer);
      clearTimeout(timer);
    });
    let received: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
      const header = parseProxyHeader(received);
      if (header === 'more') return;
      clearTimeout(timer);
      socket.off('data', onData);
      pending.release(socket, peer);
      if ('broken' in header) {
        refused.say(socket, header.broken);
        socket.destroy();
        return;
      }
      // handed over a tick later: this runs inside the stream's flow loop, which would go on
      // emitting what is given back below, to no one, if the socket flowed again before it ends
      socket.pause();
      process.nextTick(handOver, header);
    };
    const handOver = (header: ProxyHeader): void => {
      if (socket.destroyed) return;
      const peer = socket.remoteAddress;
      if (header.client !== null && peer !== undefined && trusted.contains(plainAddress(peer))) {
        // every reader of the peer (logs, access rules, limits, PHP) now reads the client
        nameClient(socket, header.client);
        clients.set(socket, header.client);
      }
      // a TLS socket made over this one reads what is given back at its first tick (Node's initRead)
      if (received.length > header.length) socket.unshift(received.subarray(header.length));
      socket.off('error', onError);
      for (const listener of listeners) listener.call(server, socket);
      // HTTP reads the socket's 'data': it flows again. A TLS socket made over it reads what was
      // given back at its first tick (Node's initRead), so it flows again only after that: at once,
      // the stream's flow handed those bytes to no one. (The TLS-ALPN router, in front of TLS while
      // a certificate is validated, reads 'data': left paused, it waited out its 10 s for a hello.)
      if (tls) process.nextTick(() => socket.resume());
      else socket.resume();
    };
    const onError = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    socket.on('data', onData);
    socket.on('error', onError);
  });
  // a TLS socket reads its peer from the handle under it: it is given the client too, before the
  // HTTP/2 session or HTTP/1.1 parser made over it reads it
  server.prependListener('secureConnection', (tlsSocket: TLSSocket) => {
    const parent = (tlsSocket as TLSSocket & { _parent?: Socket | null })._parent;
    const client = parent == null ? undefined : clients.get(parent);
    if (client !== undefined) nameClient(tlsSocket, client);
  });
}

/** The socket's peer, as every reader of remoteAddress / remotePort gets it from now on, is `client`. */
function nameClient(socket: Socket, client: { address: string; port: number }): void {
  const family = client.address.includes(':') ? 'IPv6' : 'IPv4';
  Object.defineProperty(socket, 'remoteAddress', { value: client.address, configurable: true });
  Object.defineProperty(socket, 'remotePort', { value: client.port, configurable: true });
  Object.defineProperty(socket, 'remoteFamily', { value: family, configurable: true });
}

/** Bounds on connections still waiting for their header: 0 = none. */
export interface PendingLimits {
  /** in all (http.max_connections) */
  total: number;
  /** from one peer outside trusted_subnets (http.max_connections_per_ip); the balancers are not limited */
  perPeer: number;
}

/** The connections waiting for their header, in all and by peer. */
class PendingConnections {
  readonly #limits: PendingLimits;
  readonly #byPeer = new Map<string, number>();
  readonly #released = new WeakSet<Socket>();
  #total = 0;

  constructor(limits: PendingLimits) {
    this.#limits = limits;
  }

  admit(peer: string, trustedPeer: boolean): boolean {
    const fromPeer = this.#byPeer.get(peer) ?? 0;
    if (this.#limits.total > 0 && this.#total >= this.#limits.total) return false;
    if (!trustedPeer && this.#limits.perPeer > 0 && fromPeer >= this.#limits.perPeer) return false;
    this.#total++;
    this.#byPeer.set(peer, fromPeer + 1);
    return true;
  }

  /** Admitted once, released once: its header came, or it closed. */
  release(socket: Socket, peer: string): void {
    if (this.#released.has(socket)) return;
    this.#released.add(socket);
    this.#total--;
    const left = (this.#byPeer.get(peer) ?? 1) - 1;
    if (left > 0) this.#byPeer.set(peer, left);
    else this.#byPeer.delete(peer);
  }
}

/** Connections closed for their header: the first said at once, then at most one line a minute with the count. */
class RefusalLog {
  readonly #logger: Logger;
  #lastAt = 0;
  #since = 0;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  say(socket: Socket, why: string): void {
    const now = Date.now();
    this.#since++;
    if (this.#lastAt !== 0 && now - this.#lastAt < 60_000) return;
    const more = this.#since > 1 ? ` (${this.#since} such connections since the last line)` : '';
    this.#logger.warn(
      { peer: socket.remoteAddress === undefined ? null : plainAddress(socket.remoteAddress) },
      `proxy_protocol: closed a connection from ${socket.remoteAddress ?? 'a client gone'}: ${why}${more}; every connection to this listener must start with a PROXY header (turn it on at the load balancer, or proxy_protocol off here)`,
    );
    this.#lastAt = now;
    this.#since = 0;
  }
}
