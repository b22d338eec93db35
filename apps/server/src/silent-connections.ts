// A connection that never sends a byte of its request. Node's headers_timeout counts from the
// first byte of a head, so a client that opened a connection and said nothing kept it for good (a
// probe's 2,000 silent connections were all open 8 minutes later, one TLS connection past its
// handshake too); nginx's client_header_timeout cuts them at 60 s. Each connection of a public
// listener gets one timer of headers_timeout from its accept (TLS: from its handshake, which the
// handshake timeout bounds): if nothing came by then, it is closed.
import type { Server as NetServer, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

/** Closes the listener's connections that send nothing within `timeoutMs`; 0: none are. */
export function closeSilentConnections(server: NetServer, timeoutMs: number, tls: boolean): void {
  if (timeoutMs <= 0) return;
  if (tls) server.on('secureConnection', (socket: TLSSocket) => watch(socket, timeoutMs));
  else
    server.on('connection', (socket: Socket) => {
      // an upgraded request's socket comes back through 'connection' (upgrade.ts): it has spoken
      if (socket.bytesRead === 0) watch(socket, timeoutMs);
    });
}

function watch(socket: Socket, timeoutMs: number): void {
  // a TLS socket counts its handshake's bytes: what comes after them is the request
  const before = socket.bytesRead;
  const timer = setTimeout(() => {
    if (socket.bytesRead === before && !socket.destroyed) socket.destroy();
  }, timeoutMs);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
}
