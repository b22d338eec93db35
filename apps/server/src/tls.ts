// TLS and the shapes of the HTTP servers:
// - the HTTPS listener: HTTP/2 with HTTP/1.1 fallback chosen by ALPN, TLS 1.2 or newer, and for
//   TLS 1.2 only forward-secret suites (Mozilla "intermediate"; http.ssl.ciphers overrides);
// - certificates by name (SNI): TlsContexts holds a default pair (http.ssl.cert / key, or the first
//   automatic one) and one context per name (http.ssl.acme); replacing one (SIGHUP reload, an ACME
//   renewal) only changes what new handshakes get: connections already open keep theirs. A pair
//   that does not load (bad PEM, key not matching) leaves the old one in place, and says why;
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
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { Socket } from 'node:net';
import { createSecureContext, type SecureContext } from 'node:tls';
import { clientInfoOf } from '@warmpool/fastify';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import { TlsError } from './errors.js';
import { boundSessions } from './http2-session-bounds.js';

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
  /** the leaf */
  x509: X509Certificate;
}

export const TLS_MIN_VERSION = 'TLSv1.2';
/**
 * TLS 1.2 suites: Mozilla "intermediate" (ssl-config.mozilla.org, v5.7) without its DHE suites (no
 * DH parameters are configured), so every TLS 1.2 connection is forward-secret (ECDHE) with an AEAD
 * cipher. Node's default also allows RSA key exchange (AES128-GCM-SHA256...), which is not. TLS 1.3
 * suites are all forward-secret and stay Node's. http.ssl.ciphers replaces this list.
 */
export const DEFAULT_TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

/** The config keys of a pair, which a TlsError names: http.ssl's own, or http.ssl.certificates[i]'s. */
export interface PairKeys {
  cert: string;
  key: string;
}

const SSL_PAIR_KEYS: PairKeys = { cert: 'http.ssl.cert', key: 'http.ssl.key' };

/** Reads and checks a cert/key pair; TlsError names the file and what is wrong. */
export function loadCredentials(files: TlsFiles, keys: PairKeys = SSL_PAIR_KEYS): Credentials {
  const cert = readPem(files.cert, `certificate (${keys.cert})`, keys.cert);
  const key = readPem(files.key, `private key (${keys.key})`, keys.key);
  return credentialsFromPem(cert, key, files, keys);
}

/**
 * The DNS names a certificate is served to for http.ssl.certificates (its subjectAltName, else its
 * CN), lower-cased; TlsError naming `key` when it holds none.
 */
export function certificateNames(credentials: Credentials, key: string): string[] {
  const sans = (credentials.x509.subjectAltName ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4).toLowerCase());
  const cn = /CN=([^\n,]+)/.exec(credentials.x509.subject)?.[1]?.toLowerCase();
  const names = sans.length > 0 ? sans : cn?.includes('.') ? [cn] : [];
  if (names.length === 0)
    throw new TlsError(`${credentials.summary} names no host (no DNS subjectAltName): SNI cannot choose it`, null, key);
  return names;
}

/**
 * http.ssl's ciphers and pairs as the contexts an HTTPS server starts with: the default pair
 * (http.ssl.cert / key, absent with acme), then http.ssl.certificates. What serve loads and config
 * check proves; a TlsError names the key.
 */
export function loadTlsContexts(ssl: {
  ciphers?: string | undefined;
  cert: string | null;
  key: string | null;
  certificates: readonly TlsFiles[];
}): TlsContexts {
  if (ssl.ciphers !== undefined) checkCiphers(ssl.ciphers);
  const contexts = new TlsContexts(ssl.ciphers);
  if (ssl.cert !== null && ssl.key !== null) contexts.setDefault(loadCredentials({ cert: ssl.cert, key: ssl.key }));
  loadMoreCertificates(contexts, ssl.certificates);
  return contexts;
}

/** Loads http.ssl.certificates into `contexts`, each pair for its names; one line per pair. */
export function loadMoreCertificates(contexts: TlsContexts, pairs: readonly TlsFiles[]): string[] {
  // every pair first: one that does not load changes nothing (a SIGHUP keeps the pairs in place)
  const loaded = pairs.map((files, i) => {
    const keys = { cert: `http.ssl.certificates[${i}].cert`, key: `http.ssl.certificates[${i}].key` };
    const credentials = loadCredentials(files, keys);
    return { credentials, names: certificateNames(credentials, keys.cert) };
  });
  for (const { credentials, names } of loaded) contexts.setNames(names, credentials);
  contexts.filePairs = loaded.map(({ credentials }, i) => ({ credentials, file: pairs[i]!.cert }));
  // a pair listed again beside http.ssl.cert (every certbot lineage listed) overlaps nothing
  const defaultPair = contexts.defaultCredentials;
  contexts.overlaps = overlappingNames(
    loaded.map(({ names, credentials }) => (credentials.serial === defaultPair?.serial ? [] : names)),
    defaultPair === null ? [] : namesOf(defaultPair),
  );
  return loaded.map(({ credentials, names }) => `${credentials.summary} for ${names.join(', ')}`);
}

/**
 * Names two pairs hold, for a warning: a name is served one certificate, the last pair's (nginx's
 * RSA + ECDSA pair for one name has no counterpart: Node gives an SNI name one certificate).
 */
function overlappingNames(names: ReadonlyArray<readonly string[]>, defaultNames: readonly string[]): string[] {
  const owner = new Map<string, number>();
  const lines: string[] = [];
  for (const [index, list] of names.entries())
    for (const name of list) {
      const earlier = owner.get(name);
      if (earlier !== undefined)
        lines.push(
          `http.ssl.certificates[${index}] names ${name}, as http.ssl.certificates[${earlier}] does: clients asking for ${name} get certificates[${index}] only (one certificate per name; an ECDSA one serves every current client)`,
        );
      else if (defaultNames.includes(name))
        lines.push(
          `http.ssl.certificates[${index}] names ${name}, as http.ssl.cert does: clients asking for ${name} get certificates[${index}] (http.ssl.cert is for the others)`,
        );
      owner.set(name, index);
    }
  return lines;
}

/** The names a pair holds; none for one that names no host (an IP address only). */
function namesOf(credentials: Credentials): string[] {
  try {
    return certificateNames(credentials, '');
  } catch {
    return [];
  }
}

/** Checks a PEM chain and key in memory (an ACME certificate); TlsError says what is wrong. */
export function credentialsFromPem(
  cert: Buffer | string,
  key: Buffer | string,
  files: TlsFiles = { cert: 'the certificate', key: 'its key' },
  keys: PairKeys = SSL_PAIR_KEYS,
): Credentials {
  const certBytes = Buffer.from(cert);
  const keyBytes = Buffer.from(key);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(certBytes);
  } catch (error) {
    // the two files given the other way round: certbot's privkey.pem as the cert
    const swapped = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(certBytes.toString('latin1'))
      ? `: it holds a private key; are cert and key swapped? (${keys.cert} is the certificate chain, fullchain.pem; ${keys.key} its key, privkey.pem)`
      : '';
    throw new TlsError(
      `${files.cert} is not a PEM certificate (${keys.cert})${swapped || `: ${(error as Error).message}`}`,
      error,
      keys.cert,
    );
  }
  try {
    createSecureContext({ cert: certBytes, key: keyBytes, minVersion: TLS_MIN_VERSION });
  } catch (error) {
    const message = (error as Error).message;
    // the leaf comes first in a chain file: a key of a later certificate is the order's fault, not the key's
    if (/key values mismatch/i.test(message) && keyMatchesALaterCertificate(certBytes, keyBytes))
      throw new TlsError(
        `${files.cert} begins with another certificate than the key's (${describeCertificate(x509)}): the site's own certificate must come first, then its intermediates (certbot's fullchain.pem is in that order)`,
        error,
        keys.cert,
      );
    const why = /key values mismatch/i.test(message)
      ? 'the key does not belong to the certificate'
      : // by the PEM itself: OpenSSL's words for it vary (on Node 26, "DECODER routines::unsupported"
        // when an earlier error was left in its queue)
        isEncryptedPem(keyBytes) || /bad decrypt|bad password|interrupted or cancelled/i.test(message)
        ? `the key is encrypted with a passphrase, and warmpool reads keys without one (nginx's ssl_password_file has no counterpart): store it decrypted, readable by its owner only (\`openssl pkey -in ${files.key} -out key.pem && chmod 600 key.pem\`) and name that file`
        : message;
    // a key that does not match, or does not parse, is the key's problem
    throw new TlsError(`cannot use ${files.cert} with ${files.key}: ${why}`, error, keys.key);
  }
  return {
    cert: certBytes,
    key: keyBytes,
    serial: x509.serialNumber,
    summary: describeCertificate(x509),
    x509,
  };
}

/** Whether the key belongs to a certificate of the chain file other than its first (a chain in the wrong order). */
function keyMatchesALaterCertificate(chain: Buffer, key: Buffer): boolean {
  const blocks = chain.toString('latin1').match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  try {
    const privateKey = createPrivateKey(key);
    return blocks.slice(1).some((block) => new X509Certificate(block).checkPrivateKey(privateKey));
  } catch {
    return false;
  }
}

/** A cipher list Node/OpenSSL accepts, else TlsError naming http.ssl.ciphers. */
export function checkCiphers(ciphers: string): void {
  try {
    createSecureContext({ ciphers, minVersion: TLS_MIN_VERSION });
  } catch (error) {
    throw new TlsError(
      `http.ssl.ciphers "${ciphers}" is not an OpenSSL cipher list this build knows (${(error as Error).message}); see \`openssl ciphers -v\``,
      error,
      'http.ssl.ciphers',
    );
  }
}

function readPem(file: string, what: string, key: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? "no such file (check the path: certbot keeps a site's pair in /etc/letsencrypt/live/NAME/; for a test pair, `warmpool cert` makes one)"
        : code === 'EACCES'
          ? 'permission denied'
          : (error as Error).message;
    throw new TlsError(`cannot read the ${what} ${file}: ${why}`, error, key);
  }
}

/**
 * What is wrong with a certificate's dates now, for a warning: expired, or not valid yet (a clock
 * ahead, a pair made for later); null when browsers accept its dates.
 */
export function validityProblem(x509: X509Certificate, now: number = Date.now()): string | null {
  const notAfter = Date.parse(x509.validTo);
  const notBefore = Date.parse(x509.validFrom);
  const day = (time: number) => new Date(time).toISOString().slice(0, 10);
  if (now > notAfter)
    return `it expired on ${day(notAfter)}: browsers refuse it. Renew it (certbot renew, or your CA) and reload (SIGHUP or \`warmpool reload\`), or let http.ssl.acme get one`;
  if (now < notBefore)
    return `it is not valid before ${day(notBefore)}: browsers refuse it until then (is this machine's clock right?)`;
  return null;
}

function describeCertificate(x509: X509Certificate): string {
  const cn = /CN=([^\n,]+)/.exec(x509.subject)?.[1] ?? x509.subject.replace(/\n/g, ', ');
  const names = x509.subjectAltName?.replace(/DNS:|IP Address:/g, '') ?? '';
  const expires = new Date(x509.validTo).toISOString().slice(0, 10);
  return `CN=${cn}${names === '' ? '' : ` (${names})`}, serial ${x509.serialNumber}, expires ${expires}`;
}

/**
 * The certificates an HTTPS server presents: a default pair (clients without SNI, unknown names)
 * and a context per name. Changes apply to new handshakes only. Contexts are built once per pair,
 * not per handshake.
 */
export class TlsContexts {
  readonly ciphers: string;
  #default: { credentials: Credentials; context: SecureContext } | null = null;
  #byName = new Map<string, { credentials: Credentials; context: SecureContext }>();
  #servers = new Set<Http2SecureServer>();
  /** http.ssl.certificates as loaded (`warmpool cert status` lists them) */
  filePairs: Array<{ credentials: Credentials; file: string }> = [];
  /** names the last load of http.ssl.certificates gave two pairs, for a warning */
  overlaps: string[] = [];

  constructor(ciphers: string = DEFAULT_TLS12_CIPHERS) {
    this.ciphers = ciphers;
  }

  /** The pair for clients without SNI and names without their own; the servers' default context is swapped too. */
  setDefault(credentials: Credentials): void {
    this.#default = { credentials, context: this.#context(credentials) };
    for (const server of this.#servers) server.setSecureContext(this.secureContextOptions(credentials));
  }

  get defaultCredentials(): Credentials | null {
    return this.#default?.credentials ?? null;
  }

  /** One pair for these names (a certificate's SANs), replacing what they had. */
  setNames(names: readonly string[], credentials: Credentials): void {
    const entry = { credentials, context: this.#context(credentials) };
    for (const name of names) this.#byName.set(name.toLowerCase(), entry);
  }

  /** The pair `servername` gets (its own, else the default). */
  credentialsFor(servername: string): Credentials | null {
    return this.#forName(servername)?.credentials ?? this.#default?.credentials ?? null;
  }

  /** The name's own entry, else a wildcard one (*.example.com for a.example.com, one label only). */
  #forName(servername: string): { credentials: Credentials; context: SecureContext } | undefined {
    const name = servername.toLowerCase();
    const own = this.#byName.get(name);
    if (own !== undefined) return own;
    const dot = name.indexOf('.');
    return dot > 0 ? this.#byName.get(`*${name.slice(dot)}`) : undefined;
  }

  /** Options of a secure context or server: the pair, TLS 1.2+, the cipher list. */
  secureContextOptions(credentials: Credentials): {
    cert: Buffer;
    key: Buffer;
    minVersion: 'TLSv1.2';
    ciphers: string;
  } {
    return { cert: credentials.cert, key: credentials.key, minVersion: TLS_MIN_VERSION, ciphers: this.ciphers };
  }

  /** tls SNICallback: the name's own context, else the default. */
  readonly sniCallback = (servername: string, done: (error: Error | null, context?: SecureContext) => void): void => {
    done(null, (this.#forName(servername) ?? this.#default)?.context);
  };

  /** Keeps `server`'s default context in step with setDefault. */
  attach(server: Http2SecureServer): void {
    this.#servers.add(server);
  }

  #context(credentials: Credentials): SecureContext {
    return createSecureContext(this.secureContextOptions(credentials));
  }
}

/** http.http2.max_concurrent_streams when unset: nginx's http2_max_concurrent_streams (Node's is 2^32 - 1). */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 128;

export interface HttpsServerOptions {
  /** streams one HTTP/2 connection may have open at once; DEFAULT_MAX_CONCURRENT_STREAMS */
  maxConcurrentStreams?: number;
  /** how long an idle HTTP/1.1 keep-alive connection stays open (Node has none for them here); 72 s */
  keepAliveTimeoutMs?: number;
  /** how long an HTTP/2 session may pass with no open stream, or no frame either way, before it is closed; 72 s */
  sessionTimeoutMs?: number;
  /** where HTTP/2 session floods are reported (http2-session-bounds.ts) */
  logger?: Logger;
  /**
   * header fields an HTTP/2 request may carry before Node resets its stream: Node's own bound is 128
   * (maxHeaderListPairs), so a request of 130 headers that HTTP/1.1 served got a bare
   * ENHANCE_YOUR_CALM over HTTP/2. The plugin's max_header_count check (431) applies below it.
   */
  maxHeaderFields?: number;
  /**
   * how long the TLS handshake may take (Node's default: 120 s, while a plain connection that sends
   * no head is cut at headers_timeout, 60 s; nginx's ssl_handshake_timeout is 60 s)
   */
  handshakeTimeoutMs?: number;
}

/** HTTP/2 + HTTP/1.1 over TLS (ALPN h2, http/1.1), certificates by SNI from `contexts`. */
/** Cookie crumbs an HTTP/2 request may carry beyond its fields (a browser sends one per cookie). */
const COOKIE_CRUMBS = 256;

export function createHttpsServer(
  contexts: TlsContexts,
  handler: RequestHandler,
  options: HttpsServerOptions = {},
): Http2SecureServer {
  const initial = contexts.defaultCredentials;
  if (initial === null) throw new TlsError('no certificate to serve: set http.ssl.cert / key or http.ssl.acme');
  const server = createSecureServer(
    {
      allowHTTP1: true,
      ...contexts.secureContextOptions(initial),
      SNICallback: contexts.sniCallback,
      ...(options.handshakeTimeoutMs === undefined ? {} : { handshakeTimeout: options.handshakeTimeoutMs }),
      settings: { maxConcurrentStreams: options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS },
      // the plugin answers 431 to a request it sees over its limit: up to twice it (and the
      // pseudo-headers, and the cookie crumbs a browser sends one per cookie, which the plugin counts
      // as one Cookie line) reach it; past that, Node's reset stays the answer to a flood of fields
      ...(options.maxHeaderFields === undefined
        ? {}
        : { maxHeaderListPairs: options.maxHeaderFields * 2 + 8 + COOKIE_CRUMBS }),
    },
    handler as (req: Http2ServerRequest, res: Http2ServerResponse) => void,
  );
  // as the plain listener's (createPlainServer): Node sets none for an HTTP/2 server's HTTP/1.1
  // connections, and an idle keep-alive one stayed open for good; its timeouts and head size are the
  // plugin's (configureServerTimeouts, which app.ts applies)
  (server as unknown as { keepAliveTimeout: number }).keepAliveTimeout = options.keepAliveTimeoutMs ?? 72_000;
  // Nagle off, as node:http sets it on plain connections and Node's HTTP/2 on its sessions: an
  // HTTP/1.1 connection over TLS kept it on, and a reply written in two parts (a compressed body's
  // head, then its end) waited for the client's delayed ACK, 40 ms a response (324 requests a
  // second instead of 10,985 for a cached WordPress page with gzip, a WordPress probe)
  server.on('connection', (socket: Socket) => socket.setNoDelay(true));
  cacheSessions(server);
  contexts.attach(server);
  boundSessions(server, {
    ...(options.sessionTimeoutMs === undefined ? {} : { idleMs: options.sessionTimeoutMs }),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  return server;
}

/** TLS 1.2 sessions kept for resumption by their id, at most (nginx: about 4,000 a MiB of ssl_session_cache). */
const TLS_SESSIONS = 10_000;
/** How long a session may be resumed (nginx's ssl_session_timeout). */
const TLS_SESSION_TTL_MS = 5 * 60_000;

/**
 * Session IDs (nginx's ssl_session_cache): a TLS 1.2 client that does not use tickets resumes its
 * session instead of a full handshake each connection. Tickets need nothing kept, and still work.
 */
function cacheSessions(server: Http2SecureServer): void {
  const sessions = new LRUCache<string, Buffer>({ max: TLS_SESSIONS, ttl: TLS_SESSION_TTL_MS });
  server.on('newSession', (id: Buffer, data: Buffer, done: () => void) => {
    sessions.set(id.toString('hex'), data);
    done();
  });
  server.on('resumeSession', (id: Buffer, done: (error: Error | null, data: Buffer | null) => void) => {
    done(null, sessions.get(id.toString('hex')) ?? null);
  });
}

/**
 * Re-reads the pair and swaps it in for new connections. Returns the new certificate's summary;
 * throws TlsError (the old pair stays) when the new one cannot be used.
 */
export function reloadCredentials(contexts: TlsContexts, files: TlsFiles): Credentials {
  const credentials = loadCredentials(files);
  // loadCredentials proved the pair with the same call the server makes, so this swap cannot fail
  contexts.setDefault(credentials);
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

/** A PEM private key stored encrypted (PKCS#8's "ENCRYPTED PRIVATE KEY", or the legacy Proc-Type header). */
function isEncryptedPem(key: Buffer): boolean {
  const text = key.toString('latin1');
  return text.includes('-----BEGIN ENCRYPTED PRIVATE KEY-----') || /^Proc-Type: 4,ENCRYPTED/m.test(text);
}
