// TLS and the shapes of the HTTP servers:
// - the HTTPS listener: HTTP/2 with HTTP/1.1 fallback chosen by ALPN, TLS 1.2 or newer;
// - certificate reload (SIGHUP) without dropping connections: setSecureContext swaps the context
//   new handshakes use; connections already open keep theirs. A new pair that does not load (bad
//   PEM, key not matching) leaves the old one in place, and the reason is returned;
// - the plain listener: HTTP/1.1, or a redirect to HTTPS (http.ssl.redirect). Cleartext HTTP/2
//   (h2c) is not served (see H2C_UNSUPPORTED).
import { readFileSync } from 'node:fs';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerOptions as HttpServerOptions,
  type ServerResponse,
} from 'node:http';
import {
  createSecureServer,
  type Http2SecureServer,
  type Http2ServerRequest,
  type Http2ServerResponse,
} from 'node:http2';
import { X509Certificate } from 'node:crypto';
import { createSecureContext } from 'node:tls';
import { clientInfoOf } from '@warmpool/fastify';
import { TlsError } from './errors.js';

export type RequestHandler = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
) => void;

export interface TlsFiles {
  cert: string;
  key: string;
}

export interface Credentials {
  cert: Buffer;
  key: Buffer;
  /** "CN=example.com, serial 1A2B…, expires 2027-01-01" */
  summary: string;
  serial: string;
}

export const TLS_MIN_VERSION = 'TLSv1.2';

/** Reads and checks a cert/key pair; TlsError names the file and what is wrong. */
export function loadCredentials(files: TlsFiles): Credentials {
  const cert = readPem(files.cert, 'certificate (http.ssl.cert)');
  const key = readPem(files.key, 'private key (http.ssl.key)');
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw new TlsError(`${files.cert} is not a PEM certificate (http.ssl.cert): ${(error as Error).message}`, error);
  }
  try {
    createSecureContext({ cert, key, minVersion: TLS_MIN_VERSION });
  } catch (error) {
    const message = (error as Error).message;
    const why = /key values mismatch/i.test(message) ? 'the key does not belong to the certificate' : message;
    throw new TlsError(`cannot use ${files.cert} with ${files.key}: ${why}`, error);
  }
  return { cert, key, serial: x509.serialNumber, summary: describeCertificate(x509) };
}

function readPem(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file (make a dev pair with `warmpool cert`)'
        : code === 'EACCES'
          ? 'permission denied'
          : (error as Error).message;
    throw new TlsError(`cannot read the ${what} ${file}: ${why}`, error);
  }
}

function describeCertificate(x509: X509Certificate): string {
  const cn = /CN=([^\n,]+)/.exec(x509.subject)?.[1] ?? x509.subject.replace(/\n/g, ', ');
  const names = x509.subjectAltName?.replace(/DNS:|IP Address:/g, '') ?? '';
  const expires = new Date(x509.validTo).toISOString().slice(0, 10);
  return `CN=${cn}${names === '' ? '' : ` (${names})`}, serial ${x509.serialNumber}, expires ${expires}`;
}

export interface HttpsServerOptions {
  maxConcurrentStreams?: number;
}

/** HTTP/2 + HTTP/1.1 over TLS (ALPN h2, http/1.1). */
export function createHttpsServer(
  credentials: Credentials,
  handler: RequestHandler,
  options: HttpsServerOptions = {},
): Http2SecureServer {
  const server = createSecureServer(
    {
      allowHTTP1: true,
      cert: credentials.cert,
      key: credentials.key,
      minVersion: TLS_MIN_VERSION,
      ...(options.maxConcurrentStreams === undefined
        ? {}
        : { settings: { maxConcurrentStreams: options.maxConcurrentStreams } }),
    },
    handler as (req: Http2ServerRequest, res: Http2ServerResponse) => void,
  );
  closeIdleSessions(server);
  return server;
}

/** Idle HTTP/2 sessions are closed after Fastify's http2SessionTimeout (72 s), as Fastify does for its own. */
function closeIdleSessions(server: Http2SecureServer): void {
  server.on('session', (session) => session.setTimeout(72_000, () => session.close()));
}

/**
 * Re-reads the pair and swaps it in for new connections. Returns the new certificate's summary;
 * throws TlsError (the old pair stays) when the new one cannot be used.
 */
export function reloadCredentials(server: Http2SecureServer, files: TlsFiles): Credentials {
  const credentials = loadCredentials(files);
  // loadCredentials proved the pair with the same call the server makes, so this swap cannot fail
  server.setSecureContext({ cert: credentials.cert, key: credentials.key, minVersion: TLS_MIN_VERSION });
  return credentials;
}

/** Plain HTTP/1.1 (http.address). */
export function createPlainServer(handler: RequestHandler, httpOptions: HttpServerOptions): HttpServer {
  const server = createHttpServer(httpOptions, handler as (req: IncomingMessage, res: ServerResponse) => void);
  // Fastify's keep-alive (its default keepAliveTimeout), longer than most load balancers' idle timeout
  server.keepAliveTimeout = 72_000;
  return server;
}

/**
 * Why http.http2.h2c is not honoured: one port serving HTTP/1.1 and cleartext HTTP/2 needs the first
 * bytes read before the HTTP/2 session takes the socket, and Node 20's HTTP/2 server then loses them
 * (sessions fail with GOAWAY INTERNAL_ERROR, measured); HTTP/2 is served over TLS (http.ssl).
 */
export const H2C_UNSUPPORTED = 'cleartext HTTP/2 (h2c) is not served; HTTP/2 is served over TLS: set http.ssl';

/** http.ssl.redirect: every request gets 308 to the same host (without its port) on the HTTPS port. */
export function createRedirectServer(httpsPort: number, httpOptions: HttpServerOptions): HttpServer {
  const server = createHttpServer(httpOptions, (req, res) => {
    // the one host of the request (client-info.ts): two Host headers are refused, not the first taken
    const info = clientInfoOf(req);
    const target = info.problem === null ? redirectTarget(info.host, info.target, httpsPort) : null;
    if (target === null) {
      res
        .writeHead(400, { 'content-type': 'text/plain; charset=utf-8', connection: 'close' })
        .end('Bad Request: a valid Host header is needed\n');
      return;
    }
    res.writeHead(308, {
      location: target,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(`Redirecting to ${target}\n`),
    });
    res.end(req.method === 'HEAD' ? undefined : `Redirecting to ${target}\n`);
  });
  return server;
}

const HOST_NAME = /^(?:[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9_-]*[a-z0-9])?)*\.?|\[[0-9a-f:.]+\])$/i;

/** "example.com:8080" + "/a?b" + 8443 → "https://example.com:8443/a?b"; null when the Host is unusable. */
export function redirectTarget(
  hostHeader: string | undefined,
  url: string | undefined,
  httpsPort: number,
): string | null {
  if (hostHeader === undefined) return null;
  let host = hostHeader.trim();
  const bracket = host.indexOf(']');
  const colon = host.lastIndexOf(':');
  if (colon > bracket) host = host.slice(0, colon);
  if (!HOST_NAME.test(host)) return null;
  const path = url?.startsWith('/') === true ? url : '/';
  return `https://${host.toLowerCase()}${httpsPort === 443 ? '' : `:${httpsPort}`}${path}`;
}
