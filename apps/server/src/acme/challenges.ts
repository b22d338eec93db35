// The answers the CA checks while it validates a name.
//
// HTTP-01 (RFC 8555 8.3): GET http://<name>/.well-known/acme-challenge/<token> on port 80 must
// return the key authorization. The responder sits in front of whatever the HTTP listener does
// (serve the sites, or only redirect to HTTPS), so challenges are answered either way, and a
// challenge path never reaches PHP. It sits in front of the HTTPS listener too: CAs follow
// redirects to https://<name>/ (Let's Encrypt does, without checking the certificate), so when
// something in front of port 80 (a CDN, a load balancer) redirects to HTTPS, the check arrives
// there and must not reach the site. Key authorizations are also written to certs_dir, so a server
// sharing that folder (the other colour of a blue-green swap, which may be the one the CA's request
// reaches) answers a challenge the other one started.
//
// TLS-ALPN-01 (RFC 8737): a handshake for <name> offering ALPN "acme-tls/1" must get a self-signed
// certificate carrying the key authorization's digest; tls-alpn.ts asks challengeContext() for it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Http2SecureServer, Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { createSecureContext, type SecureContext } from 'node:tls';
import * as acme from 'acme-client';
import type { CertificateStore } from './store.js';
import type { TlsAlpnChallenges } from './tls-alpn.js';

export const HTTP_CHALLENGE_PREFIX = '/.well-known/acme-challenge/';

export class ChallengeResponder implements TlsAlpnChallenges {
  readonly #store: CertificateStore | null;
  readonly #http = new Map<string, string>();
  readonly #tlsAlpn = new Map<string, SecureContext>();

  constructor(store: CertificateStore | null) {
    this.#store = store;
  }

  async addHttp(token: string, keyAuthorization: string): Promise<void> {
    this.#http.set(token, keyAuthorization);
    await this.#store?.writeHttpChallenge(token, keyAuthorization);
  }

  async removeHttp(token: string): Promise<void> {
    this.#http.delete(token);
    await this.#store?.removeHttpChallenge(token);
  }

  /** Serves the challenge certificate of RFC 8737 for `domain` until removeTlsAlpn. */
  async addTlsAlpn(authz: acme.Authorization, keyAuthorization: string): Promise<void> {
    const [key, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
    this.#tlsAlpn.set(authz.identifier.value.toLowerCase(), createSecureContext({ key, cert }));
  }

  removeTlsAlpn(domain: string): void {
    this.#tlsAlpn.delete(domain.toLowerCase());
  }

  /** A TLS-ALPN-01 validation is in progress (new HTTPS connections are looked at first). */
  pending(): boolean {
    return this.#tlsAlpn.size > 0;
  }

  /** The challenge certificate of a name being validated, else null. */
  challengeContext(servername: string): SecureContext | null {
    return this.#tlsAlpn.get(servername.toLowerCase()) ?? null;
  }

  /**
   * Answers `req` when it asks for a challenge (true); leaves it alone otherwise (false). A token we
   * do not know gets 404 here, never the site's own 404 page.
   */
  handleHttp(req: ChallengeRequest, res: ChallengeResponse): boolean {
    const url = req.url ?? '';
    if (!url.startsWith(HTTP_CHALLENGE_PREFIX)) return false;
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const token = url.slice(HTTP_CHALLENGE_PREFIX.length).split('?')[0]!;
    const known = this.#http.get(token);
    if (known !== undefined) {
      reply(res, req, 200, known);
      return true;
    }
    // started by another server sharing certs_dir?
    const store = this.#store;
    if (store === null) {
      reply(res, req, 404, 'no such ACME challenge\n');
      return true;
    }
    store.readHttpChallenge(token).then(
      (shared) => reply(res, req, shared === null ? 404 : 200, shared ?? 'no such ACME challenge\n'),
      () => reply(res, req, 404, 'no such ACME challenge\n'),
    );
    return true;
  }
}

type ChallengeRequest = IncomingMessage | Http2ServerRequest;
type ChallengeResponse = ServerResponse | Http2ServerResponse;

function reply(res: ChallengeResponse, req: ChallengeRequest, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  if (req.method === 'HEAD') res.end();
  else res.end(body);
}

/**
 * Puts the responder in front of an HTTP server's request handler (the plain listener, the
 * redirect-only one, or HTTPS, HTTP/2 and HTTP/1.1): its 'request' listeners run only for requests
 * that are not challenges.
 */
export function interceptHttpChallenges(server: Server | Http2SecureServer, responder: ChallengeResponder): void {
  const handlers = server.listeners('request') as Array<(req: ChallengeRequest, res: ChallengeResponse) => void>;
  server.removeAllListeners('request');
  server.on('request', (req: ChallengeRequest, res: ChallengeResponse) => {
    if (responder.handleHttp(req, res)) return;
    for (const handler of handlers) handler.call(server, req, res);
  });
}

/** http.ssl.acme.alt_http_port: a listener that answers challenges only (404 for the rest). */
export function createHttpChallengeServer(responder: ChallengeResponder): Server {
  return createServer((req, res) => {
    if (!responder.handleHttp(req, res)) reply(res, req, 404, 'this port answers ACME challenges only\n');
  });
}
