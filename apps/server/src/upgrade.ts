// Upgrade and CONNECT requests on the public listeners. Node hands an HTTP/1.1 request carrying
// `Connection: upgrade` (or any CONNECT) to the server's 'upgrade' / 'connect' event and takes its
// HTTP parser off the socket. What nginx does, this module does:
// - a WebSocket upgrade under a `proxy:` route with `websocket: true` of the request's site goes to
//   that route, a tunnel to its upstream (websocket-tunnel.ts);
// - any other upgrade is served as the plain request it also is (nginx ignores an Upgrade it does
//   not proxy): its head is written back without the upgrade, in front of the bytes that followed
//   it, and the socket gets a fresh HTTP parser. Its body and the requests pipelined after it are
//   then read and answered like any others. Without this, Node 20 answers such a request but stops
//   reading the socket (a pipelined request hangs);
//   Node 26 parses an upgrade request's body into the request itself and hands over the stream only
//   once the body has ended (a wrapper, not the socket, while it is still arriving). So there an
//   upgrade that carries a body (`curl --http2 -d ...` sends `Upgrade: h2c` with its POST) and goes
//   to no proxy route is never made an upgrade (the server's shouldUpgradeCallback): Node serves it
//   as the plain request it is, body included. What Node's parser then misses is a request
//   pipelined behind it in the same packet (it is not answered; the connection goes on);
// - CONNECT gets 405 and the connection is closed, as nginx (>= 1.21.1) does; Node would reset it.
// On drain, proxied WebSocket connections are sent a close frame 1001 ("going away") and ended, so
// they do not hold the drain open until its bound; so is one with no traffic either way for its
// route's websocket_idle_timeout (nginx closes a tunnel its upstream left silent for
// proxy_read_timeout), so idle connections cannot pile up upstream.
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Http2SecureServer, Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Socket } from 'node:net';
import { declaresBody } from '@warmpool/fastify';
import { rawPlainAnswer } from './client-errors.js';
import { SocketSweep } from './socket-sweep.js';
import { closeTunnel, isTunnelOpen, SERVER_GOING_AWAY } from './websocket-tunnel.js';

type UpgradeListener = (req: IncomingMessage, socket: Socket, head: Buffer) => void;

export interface UpgradeOptions {
  /**
   * The idle timeout (ms, 0: never) of the `websocket: true` proxy route of its site the request
   * targets; undefined when it targets none.
   */
  webSocketIdleMs(req: IncomingMessage): number | undefined;
}

export interface Upgrades {
  /**
   * Takes the 'upgrade' listener the proxy routes put on Fastify's server (if any) and puts this
   * module's 'upgrade' and 'connect' listeners on every public server instead. Call once the app is
   * ready (the proxies are registered by then).
   */
  install(
    fastifyServer: HttpServer | Http2SecureServer,
    servers: ReadonlyArray<HttpServer | Http2SecureServer>,
    /** the HTTP listener that only redirects to https: an upgrade there gets its redirect, as any request */
    redirectOnly?: HttpServer | null,
  ): void;
  /** Drain: close every proxied WebSocket with 1001 and end its socket. */
  goAway(): void;
  /** proxied WebSocket connections open now */
  readonly open: number;
}

/** Node 26 reads an upgrade request's body into the request (see the top of this file). */
const UPGRADE_BODY_IN_REQUEST = Number(process.versions.node.split('.')[0]) >= 26;

const CONNECT_BODY = 'Method Not Allowed: CONNECT is not served here\n';
const CONNECT_REPLY = rawPlainAnswer(405, CONNECT_BODY);

/** How often idle proxied WebSockets are looked for: a timeout is kept to within this. */
const IDLE_SWEEP_MS = 1000;

/** A proxied WebSocket's traffic when last seen moving. */
interface Activity {
  idleMs: number;
  bytes: number;
  since: number;
}

export function createUpgrades(options: UpgradeOptions): Upgrades {
  let proxyUpgrade: UpgradeListener | null = null;
  // the socket is the tunnel's from here on: its byte counters tell if it is idle
  const webSockets = new SocketSweep<Activity>(IDLE_SWEEP_MS, (entries, now) => {
    for (const [socket, activity] of entries) {
      if (activity.idleMs === 0) continue;
      // still shaking hands: the route's timeout bounds the wait for the upstream's answer (504),
      // and the idle time counts from the 101 (a slow handshake was cut with no answer)
      if (!isTunnelOpen(socket)) {
        activity.since = now;
        continue;
      }
      const bytes = socket.bytesRead + socket.bytesWritten;
      if (bytes !== activity.bytes) {
        activity.bytes = bytes;
        activity.since = now;
      } else if (now - activity.since >= activity.idleMs) goingAway(socket);
    }
  });

  /** The idle timeout of the proxy route that takes this upgrade, or undefined when none does. */
  function proxiedIdleMs(req: IncomingMessage): number | undefined {
    return proxyUpgrade !== null && isWebSocketUpgrade(req) ? options.webSocketIdleMs(req) : undefined;
  }

  function onUpgrade(this: HttpServer | Http2SecureServer, req: IncomingMessage, socket: Socket, head: Buffer): void {
    const idleMs = proxiedIdleMs(req);
    if (idleMs !== undefined) {
      webSockets.add(socket, { idleMs, bytes: -1, since: Date.now() });
      proxyUpgrade!(req, socket, head);
      return;
    }
    serveAsPlainRequest(this, req, socket, head);
  }

  function onConnect(_req: IncomingMessage | Http2ServerRequest, socketOrResponse: Socket | Http2ServerResponse): void {
    if ('writeHead' in socketOrResponse && typeof socketOrResponse.writeHead === 'function') {
      // HTTP/2 CONNECT (a stream, not the connection)
      const res = socketOrResponse as Http2ServerResponse;
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(CONNECT_BODY);
      return;
    }
    (socketOrResponse as Socket).end(CONNECT_REPLY);
  }

  return {
    install(fastifyServer, servers, redirectOnly = null) {
      const taken = fastifyServer.listeners('upgrade') as UpgradeListener[];
      for (const listener of taken) fastifyServer.off('upgrade', listener);
      // one listener for every proxy route of every site
      if (taken.length > 0) proxyUpgrade = (req, socket, head) => taken[0]!.call(fastifyServer, req, socket, head);
      for (const server of servers) {
        server.on('connect', onConnect);
        // without an 'upgrade' listener Node hands the request to the redirect: no cleartext tunnel
        if (server === redirectOnly) continue;
        server.on('upgrade', onUpgrade);
        if (UPGRADE_BODY_IN_REQUEST && 'shouldUpgradeCallback' in server) {
          (server as { shouldUpgradeCallback: (req: IncomingMessage) => boolean }).shouldUpgradeCallback = (req) =>
            !declaresBody(req.headers) || proxiedIdleMs(req) !== undefined;
        }
      }
    },
    goAway() {
      for (const socket of webSockets.keys()) goingAway(socket);
    },
    get open() {
      return webSockets.size;
    },
  };
}

/** Close frame 1001 and the end of the connection, to the upstream side too. */
function goingAway(socket: Socket): void {
  if (closeTunnel(socket)) return;
  if (socket.writable) socket.end(SERVER_GOING_AWAY);
  else socket.destroy();
}

function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade;
  return typeof upgrade === 'string' && upgrade.toLowerCase() === 'websocket';
}

/**
 * Writes the request head back onto the socket without `Upgrade` (and without the `upgrade` token
 * of `Connection`), followed by the bytes read after it, and gives the socket a fresh parser: the
 * server's connection listener, run again ('secureConnection' on the HTTPS server, whose listener
 * serves HTTP/1.1 when ALPN did not pick h2).
 */
function serveAsPlainRequest(
  server: HttpServer | Http2SecureServer,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): void {
  const raw = req.rawHeaders;
  let text = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (lower === 'upgrade') continue;
    let value = raw[i + 1]!;
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((token) => token.trim())
        .filter((token) => token !== '' && token.toLowerCase() !== 'upgrade')
        .join(', ');
      if (value === '') continue;
    }
    text += `${name}: ${value}\r\n`;
  }
  text += '\r\n';
  socket.unshift(head.length === 0 ? Buffer.from(text, 'latin1') : Buffer.concat([Buffer.from(text, 'latin1'), head]));
  server.emit(
    'encrypted' in socket && (socket as { encrypted?: boolean }).encrypted === true ? 'secureConnection' : 'connection',
    socket,
  );
}
