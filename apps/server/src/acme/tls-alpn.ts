// TLS-ALPN-01 (RFC 8737) on the HTTPS listener. The CA connects to port 443 offering only the
// ALPN protocol "acme-tls/1" for the name it validates, and must get a self-signed certificate
// carrying the key authorization's digest; every other client must keep getting the site's
// certificate.
//
// Node picks the certificate (SNI callback) before it sees the client's ALPN list under TLS 1.2
// (after it under TLS 1.3), so the decision cannot be made inside the handshake. Instead, while a
// TLS-ALPN-01 validation is pending (seconds, during an order), each new connection's ClientHello
// is read first: a validation handshake is handed to a small TLS server that only speaks acme-tls/1;
// anything else is given back, bytes untouched, to the HTTPS server. The rest of the time a
// connection costs one boolean check.
import type { Server as NetServer, Socket } from 'node:net';
import { createServer as createTlsServer, type SecureContext, type Server as TlsServer } from 'node:tls';

export const ACME_TLS_ALPN = 'acme-tls/1';
/** A ClientHello fits one TLS record (at most 16 KiB) in practice; never read more than that. */
const MAX_HELLO_BYTES = 5 + 16_384;
/** A client that sends nothing this long after connecting is handed on as it is. */
const HELLO_WAIT_MS = 10_000;

export interface TlsAlpnChallenges {
  /** a TLS-ALPN-01 validation is in progress */
  pending(): boolean;
  /** the challenge certificate of a name being validated, else null */
  challengeContext(servername: string): SecureContext | null;
}

export interface ClientHello {
  servername: string | null;
  alpn: string[];
}

/** A TLS server that answers acme-tls/1 handshakes for names being validated, and nothing else. */
export function createTlsAlpnServer(challenges: TlsAlpnChallenges): TlsServer {
  const server = createTlsServer({
    ALPNProtocols: [ACME_TLS_ALPN],
    SNICallback: (name, done) => {
      const context = challenges.challengeContext(name);
      done(context === null ? new Error(`no TLS-ALPN-01 challenge for ${name}`) : null, context ?? undefined);
    },
  });
  // the handshake is the whole validation
  server.on('secureConnection', (socket) => socket.end());
  server.on('tlsClientError', () => {});
  return server;
}

/**
 * Routes the HTTPS server's validation handshakes to a TLS-ALPN server while challenges are pending;
 * its own 'connection' listeners get every other connection.
 */
export function routeTlsAlpnChallenges(server: NetServer, challenges: TlsAlpnChallenges): void {
  const listeners = server.listeners('connection') as Array<(socket: Socket) => void>;
  server.removeAllListeners('connection');
  const handOn = (socket: Socket) => {
    for (const listener of listeners) listener.call(server, socket);
  };
  let validator: TlsServer | null = null;
  server.on('connection', (socket: Socket) => {
    if (!challenges.pending()) return handOn(socket);
    void readClientHello(socket).then((bytes) => {
      if (socket.destroyed) return;
      socket.unshift(bytes);
      const hello = parseClientHello(bytes);
      const isValidation =
        hello !== null &&
        hello.servername !== null &&
        hello.alpn.length === 1 &&
        hello.alpn[0] === ACME_TLS_ALPN &&
        challenges.challengeContext(hello.servername) !== null;
      if (!isValidation) return handOn(socket);
      validator ??= createTlsAlpnServer(challenges);
      validator.emit('connection', socket);
    });
  });
}

/** The bytes of the first TLS record (or what came before the socket ended, stalled or overflowed). */
function readClientHello(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    let buffered = Buffer.alloc(0);
    const done = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', done);
      socket.off('error', done);
      socket.pause();
      resolve(buffered);
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const complete =
        buffered.length >= 5 && (buffered[0] !== 0x16 || buffered.length >= 5 + buffered.readUInt16BE(3));
      if (complete || buffered.length >= MAX_HELLO_BYTES) done();
    };
    const timer = setTimeout(done, HELLO_WAIT_MS);
    socket.on('data', onData);
    socket.once('end', done);
    socket.once('error', done);
  });
}

/**
 * The server name (SNI) and ALPN protocols of a ClientHello record; null when the bytes are not a
 * whole ClientHello. Layout: RFC 8446 4.1.2 (and 5246 7.4.1.2), extensions 0 (RFC 6066) and 16 (RFC 7301).
 */
export function parseClientHello(record: Buffer): ClientHello | null {
  try {
    if (record.length < 5 || record[0] !== 0x16) return null;
    const end = Math.min(record.length, 5 + record.readUInt16BE(3));
    let at = 5;
    if (record[at] !== 0x01) return null; // handshake type: client_hello
    at += 4; // type + 24-bit length
    at += 2 + 32; // legacy_version + random
    at += 1 + record[at]!; // session id
    at += 2 + record.readUInt16BE(at); // cipher suites
    at += 1 + record[at]!; // compression methods
    if (at + 2 > end) return { servername: null, alpn: [] };
    const extensionsEnd = Math.min(end, at + 2 + record.readUInt16BE(at));
    at += 2;
    const hello: ClientHello = { servername: null, alpn: [] };
    while (at + 4 <= extensionsEnd) {
      const type = record.readUInt16BE(at);
      const length = record.readUInt16BE(at + 2);
      const body = record.subarray(at + 4, at + 4 + length);
      at += 4 + length;
      if (type === 0x0000 && body.length >= 5 && body[2] === 0x00) {
        hello.servername = body
          .subarray(5, 5 + body.readUInt16BE(3))
          .toString('latin1')
          .toLowerCase();
      } else if (type === 0x0010 && body.length >= 2) {
        const listEnd = Math.min(body.length, 2 + body.readUInt16BE(0));
        for (let p = 2; p < listEnd; p += 1 + body[p]!)
          hello.alpn.push(body.subarray(p + 1, p + 1 + body[p]!).toString('latin1'));
      }
    }
    return hello;
  } catch {
    return null; // truncated: not a ClientHello we can read
  }
}
