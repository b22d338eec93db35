// The server's life after boot: listening (on its own addresses or on sockets systemd handed over
// with LISTEN_FDS), signals, and the drain.
//
// Signals:
//   SIGTERM, SIGINT  drain: /ready answers 503, listeners stop accepting, in-flight requests
//                    finish, keep-alive connections close once idle for DRAIN_IDLE_GRACE_MS (a request
//                    within it is served with Connection: close), then the pools stop their workers; exit 0. A second SIGINT or
//                    SIGTERM exits at once with 1 (workers are killed).
//   SIGHUP           reload what can change live: TLS certificate and key, log levels (the rest
//                    of the file is compared and what needs a restart is named).
//   SIGUSR2          rolling reset of every site's workers (capacity never drops), with progress.
//   SIGUSR1          reopen the log files (http.access_log.output, logs.output paths), as nginx
//                    does, after logrotate moved them. (Installing a listener also keeps Node from
//                    starting its inspector on SIGUSR1.)
//
// Socket activation (systemd, warmpool-swap): LISTEN_FDS=n hands over listening sockets as fds
// 3..3+n-1 when LISTEN_PID is unset or this process's pid. LISTEN_FDNAMES (colon-separated) matches
// names "http", "https", "status", "metrics" to listeners; unnamed fds go to the remaining
// listeners in that order. The variables are removed from the environment before any PHP worker
// starts, so workers never see them.
import { fstatSync } from 'node:fs';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type {
  Http2SecureServer,
  Http2ServerRequest,
  Http2ServerResponse,
  Http2Session,
  ServerHttp2Stream,
} from 'node:http2';
import { lookup } from 'node:dns/promises';
import { isIP, Server as NetServerClass, type Server as NetServer, type Socket } from 'node:net';
import { parseAddress } from '@warmpool/config';
import { isLingering, type TrustedSubnets } from '@warmpool/fastify';
import type { Logger } from 'pino';
import { requireProxyProtocol, type PendingLimits } from './proxy-protocol.js';
import { ListenError, ListenFdsError } from './errors.js';
import { closeSession } from './http2-session-bounds.js';

export type ListenerName = 'http' | 'https' | 'status' | 'metrics';
/** Order in which unnamed LISTEN_FDS sockets are given to the configured listeners. */
export const LISTENER_ORDER: readonly ListenerName[] = ['http', 'https', 'status', 'metrics'];
const SD_LISTEN_FDS_START = 3;
/** How long an idle keep-alive connection may still bring a request once the drain starts. */
export const DRAIN_IDLE_GRACE_MS = 500;
/**
 * Once a drain has ended the server's side of a connection, how long the client has to end its own
 * before the socket is cut. Node closes a connection only when both sides ended, so a client that
 * never answers the FIN (or the GOAWAY) held the drain until its bound, and past it: an HTTP/2
 * session destroyed by then still waited for the client, and the process never exited.
 */
export const DRAIN_FIN_GRACE_MS = 1_000;

export interface Listener {
  name: ListenerName;
  /** as configured ("127.0.0.1:8080") */
  address: string;
  /** what is bound */
  server: NetServer;
  /** "http" or "https", for the printed URL */
  scheme: 'http' | 'https';
  /** what it serves, for the printed line ("HTTP/2 + HTTP/1.1", "redirect to https") */
  serves: string;
  /** set by listen(): the fd adopted from LISTEN_FDS, if any */
  fd?: number;
  /**
   * http.proxy_protocol / http.ssl.proxy_protocol: its connections start with a PROXY header,
   * believed from these subnets. Put in front of the server's connection listeners as it listens,
   * when every one is there (the connection limits and timeouts are added after the app is built).
   */
  proxyProtocol?: { trusted: TrustedSubnets; logger: Logger; limits: PendingLimits };
}

/** http.ssl.address when the config gives none (RoadRunner's default too). */
export const DEFAULT_HTTPS_ADDRESS = ':443';

// "127.0.0.1:8080" → { host, port }; ":8080" → all interfaces; "[::1]:8080" → ::1 (the config's
// check of listeners on one port reads addresses with it too)
export { parseAddress };

/**
 * What net's listen() takes for an address: its port, and its host unless it is all interfaces.
 * A host name is resolved here, to its IPv4 address when it has one: net binds the first address
 * the name resolves to, and on Debian `localhost` is ::1 first, so `localhost:8080` refused every
 * client of 127.0.0.1 (a proxy in front, a Prometheus scrape). nginx binds every address of the
 * name; one IPv4 address is reached by every client of the name, which falls back to it.
 */
export async function listenOptions(
  address: string,
  resolve: (host: string) => Promise<readonly { address: string; family: number }[]> = (host) =>
    lookup(host, { all: true }),
): Promise<{ host?: string; port: number }> {
  const { host, port } = parseAddress(address);
  if (host === undefined) return { port };
  if (isIP(host) !== 0) return { host, port };
  try {
    const all = await resolve(host);
    const chosen = all.find((one) => one.family === 4) ?? all[0];
    return { host: chosen?.address ?? host, port };
  } catch {
    return { host, port }; // listen() fails on it with the resolver's own error, said as before
  }
}

/**
 * Reads and removes LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES. Returns fd by listener name for the
 * given (configured) listeners; empty when nothing was handed over.
 */
export function adoptListenFds(
  listeners: readonly ListenerName[],
  env: NodeJS.ProcessEnv = process.env,
  pid = process.pid,
): Map<ListenerName, number> {
  const count = env.LISTEN_FDS;
  const forPid = env.LISTEN_PID;
  const names = env.LISTEN_FDNAMES;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  const adopted = new Map<ListenerName, number>();
  if (count === undefined || count === '') return adopted;
  if (forPid !== undefined && forPid !== '' && Number(forPid) !== pid) return adopted; // meant for another process
  const n = Number(count);
  if (!Number.isInteger(n) || n < 0) throw new ListenFdsError(`LISTEN_FDS=${count} is not a number of sockets`);
  if (n > listeners.length) {
    throw new ListenFdsError(
      `LISTEN_FDS=${n} but this config has ${listeners.length} listener${listeners.length === 1 ? '' : 's'} (${listeners.join(', ')}); hand over one socket per listener`,
    );
  }
  const fdNames = names === undefined || names === '' ? [] : names.split(':');
  const unnamed: number[] = [];
  for (let i = 0; i < n; i++) {
    const fd = SD_LISTEN_FDS_START + i;
    let isSocket = false;
    try {
      // bigint: Node 22's fs.realpathSync reads the shared (number) stat buffer left by the last
      // stat call, and after one of a socket it stops resolving symlinks: the ESM loader then took
      // pnpm's linked @fastify/compress for an empty module, and `serve` failed to boot under
      // warmpool-swap or systemd socket activation. A bigint stat leaves that buffer alone.
      isSocket = fstatSync(fd, { bigint: true }).isSocket();
    } catch {
      // not open: reported below
    }
    if (!isSocket) throw new ListenFdsError(`LISTEN_FDS=${n}: fd ${fd} is not an open socket`);
    const name = fdNames[i] as ListenerName | undefined;
    if (name !== undefined && listeners.includes(name) && !adopted.has(name)) adopted.set(name, fd);
    else unnamed.push(fd);
  }
  for (const name of listeners) {
    if (unnamed.length === 0) break;
    if (!adopted.has(name)) adopted.set(name, unnamed.shift()!);
  }
  return adopted;
}

/** Binds every listener (or adopts its fd); on a failure, closes the ones already bound and throws ListenError. */
export async function listenAll(listeners: readonly Listener[], fds: ReadonlyMap<ListenerName, number>): Promise<void> {
  const bound: Listener[] = [];
  for (const listener of listeners) {
    try {
      await new Promise<void>((resolve, reject) => {
        listener.server.once('error', reject);
        const fd = fds.get(listener.name);
        const onListening = () => {
          listener.server.off('error', reject);
          resolve();
        };
        if (listener.proxyProtocol !== undefined) {
          const { trusted, logger, limits } = listener.proxyProtocol;
          requireProxyProtocol(listener.server, trusted, logger, limits);
          delete listener.proxyProtocol;
        }
        if (fd !== undefined) {
          listener.fd = fd;
          listener.server.listen({ fd }, onListening);
        } else void listenOptions(listener.address).then((options) => listener.server.listen(options, onListening));
      });
      bound.push(listener);
    } catch (error) {
      await Promise.all(bound.map((l) => new Promise((resolve) => l.server.close(resolve))));
      throw new ListenError(listener.name, listener.fd === undefined ? listener.address : `fd ${listener.fd}`, error);
    }
  }
}

/**
 * Before the workers boot: binds each configured address once and lets it go, so an address
 * another program holds fails in a moment, not after every PHP worker has booted (nginx binds
 * first too). Sockets from LISTEN_FDS and port 0 (any free port) need no check. The real bind
 * comes after the boot (listenAll), when requests can be served.
 */
export async function checkAddressesFree(
  listeners: readonly { name: ListenerName; address: string }[],
  fds: ReadonlyMap<ListenerName, number>,
): Promise<void> {
  for (const listener of listeners) {
    if (fds.has(listener.name)) continue;
    const options = await listenOptions(listener.address);
    if (options.port === 0) continue;
    const probe = new NetServerClass();
    try {
      await new Promise<void>((resolve, reject) => {
        probe.once('error', reject);
        probe.listen(options, resolve);
      });
    } catch (error) {
      throw new ListenError(listener.name, listener.address, error);
    } finally {
      await new Promise((resolve) => probe.close(resolve));
    }
  }
}

/** "http://127.0.0.1:8080" from what a listener is bound to. */
export function boundUrl(listener: Listener): string {
  const address = listener.server.address();
  if (address === null || typeof address === 'string') return `${listener.scheme}://${listener.address}`;
  const host = address.family === 'IPv6' || address.address.includes(':') ? `[${address.address}]` : address.address;
  return `${listener.scheme}://${host}:${address.port}`;
}

/**
 * The streams a session still has open. Node keeps them in the session's internal state (Node 20
 * to current), so this is best effort, for the drain's warning only: [] when that state is not there.
 */
function openStreams(session: Http2Session): ServerHttp2Stream[] {
  const state = internal<{ streams?: Map<number, ServerHttp2Stream> }>(session, 'state');
  // Node's own Map subclass, from its own realm: not instanceof this one's Map
  return typeof state?.streams?.values === 'function' ? [...state.streams.values()] : [];
}

/** "GET /held (reply sent, its request body still open)": what a stream still waits for. */
function describeStream(stream: ServerHttp2Stream): string {
  const request = internal<Http2ServerRequest>(stream, 'request');
  const what = request ? `${request.method} ${request.url}` : `stream ${stream.id ?? '?'}`;
  const reply = !stream.headersSent ? 'no reply yet' : stream.writableFinished ? 'reply sent' : 'reply being sent';
  // state.remoteClose: the client ended its side (read or not)
  return `${what} (${reply}${stream.state?.remoteClose ? '' : ', its request body still open'})`;
}

/** MAX_LISTED kinds at most, each once with its count: a connection may hold 128 streams alike. */
function tally(descriptions: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const description of descriptions) counts.set(description, (counts.get(description) ?? 0) + 1);
  const listed = [...counts].slice(0, MAX_LISTED).map(([what, n]) => (n === 1 ? what : `${n} × ${what}`));
  if (counts.size > MAX_LISTED) listed.push(`${counts.size - MAX_LISTED} more`);
  return listed.join(', ');
}
const MAX_LISTED = 5;

function internal<T>(object: object, description: string): T | undefined {
  const key = Object.getOwnPropertySymbols(object).find((symbol) => symbol.description === description);
  return key === undefined ? undefined : ((object as Record<symbol, unknown>)[key] as T);
}

/** An HTTP/1 socket: Node keeps the response it is writing (the first of a pipeline) on it. */
type Http1Socket = Socket & { _httpMessage?: ServerResponse | null };

/**
 * Knows every connection of the main listeners, so a drain can close each once it is idle: HTTP/1
 * sockets get `Connection: close` on the replies still to be written, and end after an idle grace
 * (a request within it is served, with Connection: close); HTTP/2 sessions get GOAWAY
 * (session.close(): open streams finish).
 *
 * Requests are not counted one by one: until the drain, the request path only reads a flag. An
 * HTTP/1 socket's reply in flight is found when needed as `socket._httpMessage`, which Node (20 to
 * current) sets when a response is assigned to the socket and clears when its last byte is handed
 * to the socket ('finish'), assigning the next pipelined response at that same moment. The responses
 * of pipelined requests waiting behind it are not reachable from the socket, so only those (rare:
 * browsers do not pipeline) are remembered, to get `Connection: close` before their turn.
 */
export class ConnectionTracker {
  #sockets = new Set<Http1Socket>();
  /** responses of pipelined requests, waiting for the one ahead of them on their socket */
  #queued = new Set<ServerResponse>();
  /** sockets the drain ends after their last reply */
  #ending = new Set<Http1Socket>();
  #sessions = new Set<Http2Session>();
  /** the TLS sockets under the HTTP/2 sessions: destroying a session leaves its socket to the client */
  #http2Sockets = new Set<Socket>();
  /** draining: when each idle HTTP/1 socket ends unless a request comes first */
  #idleTimers = new Map<Http1Socket, NodeJS.Timeout>();
  #draining = false;
  #idleGraceMs = DRAIN_IDLE_GRACE_MS;
  #servers = new Set<NetServer>();

  get draining(): boolean {
    return this.#draining;
  }

  /** Whether this tracker knows (and so drains) the server's connections. */
  watches(server: NetServer): boolean {
    return this.#servers.has(server);
  }

  /** Plain HTTP/1 server. */
  watchHttp1(server: HttpServer): void {
    this.#servers.add(server);
    server.on('connection', (socket: Socket) => this.#addSocket(socket));
  }

  /** HTTPS server (HTTP/2 with HTTP/1.1 fallback). */
  watchHttp2(server: Http2SecureServer): void {
    this.#servers.add(server);
    server.on('session', (session: Http2Session) => {
      if (this.#draining) {
        session.close();
        return;
      }
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
    });
    // after Node's own listener, which made the session of an h2 socket
    server.on('secureConnection', (socket: Socket & { alpnProtocol?: string | false }) => {
      // HTTP/1.1 over TLS (ALPN fallback)
      if (socket.alpnProtocol !== 'h2') return this.#addSocket(socket);
      this.#http2Sockets.add(socket);
      socket.once('close', () => this.#http2Sockets.delete(socket));
      if (this.#draining) this.#cutAfterEnd(socket);
    });
  }

  /**
   * Wraps the request handler. Until the drain it costs a flag and, for HTTP/1, one property read:
   * a response without a socket yet is a pipelined request's, waiting its turn.
   */
  wrap<H extends (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => void>(
    handler: H,
  ): H {
    return ((req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
      if (req.httpVersionMajor === 1) {
        if (this.#draining) {
          (res as ServerResponse).shouldKeepAlive = false;
          this.#endAfterReplies((req as IncomingMessage).socket);
        } else if ((res as ServerResponse).socket === null) this.#queue(res as ServerResponse);
      }
      handler(req, res);
    }) as H;
  }

  /**
   * Starts the drain: sessions get GOAWAY, and each HTTP/1 socket ends once idle for `idleGraceMs`
   * (busy ones after their replies). The grace is for a keep-alive client whose next request is
   * already on the wire (an idle client, or one whose reply's head said keep-alive before the drain
   * and just ended): ending its socket at once would reset that request, which the client never saw
   * refused. That request is served with Connection: close, so each socket gets one more answer at most.
   */
  drain(idleGraceMs = DRAIN_IDLE_GRACE_MS): void {
    this.#draining = true;
    this.#idleGraceMs = idleGraceMs;
    for (const socket of this.#sockets) {
      if (socket._httpMessage) this.#endAfterReplies(socket);
      else this.#endWhenIdle(socket);
    }
    for (const response of this.#queued) if (!response.headersSent) response.shouldKeepAlive = false;
    for (const session of this.#sessions) closeSession(session);
    for (const socket of this.#sockets) this.#cutAfterEnd(socket);
    for (const socket of this.#http2Sockets) this.#cutAfterEnd(socket);
  }

  /** In-flight HTTP/1 requests plus open HTTP/2 sessions. */
  get busy(): number {
    return this.#http1InFlight() + this.#sessions.size;
  }

  /** In-flight requests, HTTP/2 streams counted one by one (what the drain's first line says). */
  get requestsInFlight(): number {
    let streams = 0;
    for (const session of this.#sessions) streams += openStreams(session).length;
    return this.#http1InFlight() + streams;
  }

  #http1InFlight(): number {
    let requests = 0;
    for (const socket of this.#sockets) if (socket._httpMessage) requests++;
    // still waiting for their turn (one whose turn came is its socket's _httpMessage until it closes)
    for (const response of this.#queued) if (response.socket === null && !response.writableFinished) requests++;
    return requests;
  }

  /** What is still open, in words: the drain's warning says what it gave up waiting for. */
  describeOpen(): string {
    const parts: string[] = [];
    for (const socket of this.#sockets) {
      const response = socket._httpMessage;
      parts.push(
        response !== null && response !== undefined
          ? `an HTTP/1.1 reply to ${response.req.method} ${response.req.url} (${socket.writableLength} bytes not yet sent)`
          : isLingering(socket)
            ? 'an HTTP/1.1 connection answered before its body was read (the rest of the body being dropped)'
            : 'an idle HTTP/1.1 connection',
      );
    }
    for (const session of this.#sessions) {
      const streams = tally(openStreams(session).map(describeStream));
      parts.push(
        `an HTTP/2 connection (${session.state.outboundQueueSize ?? 0} frames not yet sent${streams === '' ? '' : `; open: ${streams}`})`,
      );
    }
    return parts.length === 0 ? 'none' : parts.join('; ');
  }

  /** The drain took too long: cut what is left. */
  destroyAll(): void {
    for (const timer of this.#idleTimers.values()) clearTimeout(timer);
    this.#idleTimers.clear();
    for (const socket of this.#sockets) socket.destroy();
    for (const session of this.#sessions) session.destroy();
    for (const socket of this.#http2Sockets) socket.destroy();
  }

  /** Once the server has ended its side (its last reply, or GOAWAY, sent), the client has DRAIN_FIN_GRACE_MS to end its own. */
  #cutAfterEnd(socket: Socket): void {
    const cut = () => setTimeout(() => socket.destroy(), DRAIN_FIN_GRACE_MS).unref();
    if (socket.writableFinished) cut();
    else socket.once('finish', cut);
  }

  #addSocket(socket: Socket): void {
    if (this.#sockets.has(socket)) return;
    if (this.#draining) {
      // Accepted just before close(), or (HTTPS) its TLS handshake ended during the drain: the
      // client sends its request now. Ended at once, it got no answer at all (one HTTPS request
      // per swap or stop, curl's "Empty reply"); it gets the idle grace instead, and a request
      // that comes within it is served with Connection: close.
      this.#cutAfterEnd(socket);
      this.#endWhenIdle(socket);
    }
    this.#sockets.add(socket);
    socket.once('close', () => {
      this.#sockets.delete(socket);
      this.#ending.delete(socket);
      clearTimeout(this.#idleTimers.get(socket));
      this.#idleTimers.delete(socket);
      // a closed socket's waiting responses never get their turn (nor, on Node 20, a 'close')
      if (this.#queued.size > 0)
        for (const response of this.#queued) if (response.req.socket === socket) this.#queued.delete(response);
    });
  }

  #queue(response: ServerResponse): void {
    this.#queued.add(response);
    // its turn came and went (or the socket closed)
    response.once('close', () => this.#queued.delete(response));
  }

  /** Draining: the socket ends once idle for the grace (a request in flight then keeps it). */
  #endWhenIdle(socket: Http1Socket): void {
    clearTimeout(this.#idleTimers.get(socket));
    const timer = setTimeout(() => {
      this.#idleTimers.delete(socket);
      if (!socket._httpMessage && !socket.destroyed) socket.end();
    }, this.#idleGraceMs).unref();
    this.#idleTimers.set(socket, timer);
  }

  /**
   * Draining: the socket's replies still to be written carry Connection: close, and once none is
   * left in flight the socket gets the idle grace: a reply whose head went out before the drain
   * said keep-alive, and its client may be sending the next request now (one with Connection:
   * close ends its socket itself). Follows the socket from one reply to the next: a reply's 'close'
   * comes a tick after Node assigned the next pipelined response, if any, to the socket.
   */
  #endAfterReplies(socket: Http1Socket): void {
    if (this.#ending.has(socket) || !this.#sockets.has(socket)) return;
    this.#ending.add(socket);
    const follow = (): void => {
      const response = socket._httpMessage;
      if (response === null || response === undefined) {
        this.#ending.delete(socket);
        this.#endWhenIdle(socket);
        return;
      }
      if (!response.headersSent) response.shouldKeepAlive = false;
      response.once('close', () => {
        // a reply cut with its socket, or one that closed without finishing: nothing to follow
        if (!socket.destroyed && socket._httpMessage !== response) follow();
      });
    };
    follow();
  }
}

/**
 * Stops accepting on each server and resolves when every connection of each has ended. A server
 * the tracker watches is closed with net.Server's close, on purpose: http.Server's (Node >= 19)
 * also destroys idle keep-alive connections at once, which would reset a request already on its
 * way (the tracker's drain ends them after a grace instead).
 */
export function closeServers(servers: readonly NetServer[], tracker?: ConnectionTracker): Promise<void> {
  return Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          if (!server.listening) return resolve();
          if (tracker?.watches(server) === true) NetServerClass.prototype.close.call(server, () => resolve());
          else server.close(() => resolve());
        }),
    ),
  ).then(() => {});
}

export interface SignalHandlers {
  /** first SIGTERM/SIGINT */
  drain(signal: NodeJS.Signals): Promise<void>;
  /** second SIGTERM/SIGINT while draining */
  force(signal: NodeJS.Signals): void;
  reload(): Promise<void>;
  reset(): Promise<void>;
  /** SIGUSR1 */
  reopen(): void;
}

/** Installs the handlers; returns a function that removes them. Reload and reset never overlap themselves. */
export function installSignals(handlers: SignalHandlers): () => void {
  let stopping = false;
  let reloading = false;
  let resetting = false;
  const onStop = (signal: NodeJS.Signals) => {
    if (stopping) return handlers.force(signal);
    stopping = true;
    void handlers.drain(signal);
  };
  const onHup = () => {
    if (reloading || stopping) return;
    reloading = true;
    void handlers.reload().finally(() => (reloading = false));
  };
  const onUsr2 = () => {
    if (resetting || stopping) return;
    resetting = true;
    void handlers.reset().finally(() => (resetting = false));
  };
  const onUsr1 = () => handlers.reopen();
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', onHup);
  process.on('SIGUSR2', onUsr2);
  process.on('SIGUSR1', onUsr1);
  return () => {
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
    process.off('SIGHUP', onHup);
    process.off('SIGUSR2', onUsr2);
    process.off('SIGUSR1', onUsr1);
  };
}
