import {
  Server as HttpServer,
  type IncomingMessage,
  maxHeaderSize as nodeMaxHeaderSize,
  type ServerResponse,
} from 'node:http';
import { Server as HttpsServer } from 'node:https';
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  HookHandlerDoneFunction,
} from 'fastify';
import { parseDuration, type Duration } from '@warmpool/pool';
import {
  BodyTooLargeError,
  HeadersTooLargeError,
  HttpVersionError,
  TransferEncodingError,
  InvalidOptionError,
  TooManyHeadersError,
} from './errors.js';
import { DEFAULT_BODY_TIMEOUT_MS, guardBodyPace } from './http/body-pace.js';
import { DEFAULT_STREAM_REQUEST_TIMEOUT_MS, guardStreamBody } from './http/http2-bodies.js';
import { installLingeringClose } from './http/lingering-close.js';
import { boundPipelining } from './http/pipelined-turn.js';
import { addedRequestFields } from './http/request-headers.js';

/**
 * Request size, header and slow-client limits.
 *
 * What Fastify and Node already do (measured on Fastify 5 / Node 20, see test/limits.test.ts):
 * - the '*' buffer parser with `bodyLimit` answers 413 for a Content-Length over the limit WITHOUT
 *   reading the body, and stops a chunked body as soon as it crosses the limit; both replies carry
 *   `connection: close`, and Node ends then destroys the socket once the reply is flushed, which
 *   resets the connection (and loses the 413) when the client is still sending;
 * - `server.headersTimeout` / `server.requestTimeout` cut slow clients with a 408 (Fastify's
 *   clientError handler) — settable on a created server, but checked only every
 *   `connectionsCheckingInterval` (30 s by default, read when the server starts listening);
 * - `maxHeaderSize` overflow → 431 from Fastify's clientError handler.
 *
 * What was missing, and `applyLimits` adds:
 * 1. `Expect: 100-continue`: Node answers "100 Continue" before any route code runs, so a client
 *    starts uploading a body we will refuse. We answer 100 lazily, when something first reads the
 *    body (Go's net/http, hence RoadRunner, does the same), so an oversized request gets its 413
 *    instead and never sends the body. Server-wide, installed once, only if nobody else listens
 *    to 'checkContinue'.
 * 2. An onRequest check of Content-Length for EVERY method: Fastify's parser check only runs for
 *    methods with a body; a GET with a huge Content-Length otherwise keeps the connection busy
 *    while Node drains the body. The same error as every body reader's (bodyTooLarge, 413).
 * 3. `max_header_count` → 431. Node's `maxHeadersCount` does not reject: it silently drops the
 *    extra headers from `request.headers` while `rawHeaders` (what we forward to PHP) keeps them
 *    all, so it is left alone and the count is checked on rawHeaders. Without max_header_count,
 *    a request with more fields than Node keeps (its maxHeadersCount: 1000 by default) gets 431
 *    too: past it, a Content-Length, Authorization or Cookie was forwarded to PHP while every check
 *    of ours (the 413 before PHP, the micro-cache's bypass) never saw it. (Node 22 and later refuse
 *    such a head themselves, with a 431 of their own; Node 20 does not.) `max_header_size` → 431
 *    for HTTP/2 too: Node enforces it on HTTP/1.1 only (an HTTP/2 head of about 64 KB got through).
 * 4. The server timeouts, with the checking interval shortened (before listen) so the limits are
 *    kept to within a quarter of their value (at most 1 s late).
 * 5. `request_timeout` for HTTP/2 streams, which Node cuts at no timeout, and the other rules for
 *    HTTP/2 request bodies: http/http2-bodies.ts, called from the same hook.
 * 6. `body_timeout` (nginx's client_body_timeout) for both versions: http/body-pace.ts, same hook.
 * 7. A lingering close of an HTTP/1.1 connection answered (and closed) before its body was all
 *    read, so the client gets the 413 rather than a reset: http/lingering-close.ts, server-wide.
 */
export interface LimitOptions {
  /** http.max_request_size: megabytes (1 MB = 1024 * 1024 bytes); RR's 0 means "the default" */
  max_request_size?: number;
  /** most request header fields accepted (431 above); default: no count limit (header bytes are capped by Node anyway) */
  max_header_count?: number;
  /** bytes of request head (request line + headers); Node's default 16384; 431 above */
  max_header_size?: number;
  /** time to receive the request head ("10s"); default: the server's (Node: 60 s) */
  headers_timeout?: Duration;
  /** time to receive the whole request, body included ("5m"); 0 = none; default: the server's (Fastify: none) */
  request_timeout?: Duration;
  /** longest silence of a client between two pieces of its request body (nginx's client_body_timeout; 408 after); 0 = none; default 60 s */
  body_timeout?: Duration;
}

export interface ResolvedLimits {
  /** the body limit; give it to the '*' parser as `bodyLimit` */
  maxRequestBytes: number;
  maxHeaderCount: number | null;
  maxHeaderBytes: number | null;
  headersTimeoutMs: number | null;
  requestTimeoutMs: number | null;
  /** 0: none */
  bodyTimeoutMs: number;
}

/** 100 MB: a safe default for bodies buffered in memory (RoadRunner's 1000 MB streams to PHP). */
export const DEFAULT_MAX_REQUEST_SIZE_MB = 100;
const MB = 1024 * 1024;

/** Node's own request head limit (http.maxHeaderSize), used when max_header_size is not set. */
export const DEFAULT_MAX_HEADER_BYTES = 16384;

/**
 * The ranges of the limit options, kept with the checks that enforce them; the config's key table
 * reads them (load-time checks and docs), so a range is written once.
 */
export const LIMIT_OPTION_RANGES = {
  max_request_size: { min: 0 },
  max_header_count: { min: 1 },
  max_header_size: { min: 1024 },
} as const;

/** The option keys this module reads, for the caller's unknown-key check. */
export const LIMIT_OPTION_KEYS: ReadonlySet<string> = new Set([
  'max_request_size',
  'max_header_count',
  'max_header_size',
  'headers_timeout',
  'request_timeout',
  'body_timeout',
]);

/** Resolves units once; every error names the option. Unknown keys are not rejected here (the caller owns the key set). */
export function resolveLimits(raw: LimitOptions = {}): ResolvedLimits {
  const size = raw.max_request_size ?? 0;
  if (typeof size !== 'number' || !Number.isFinite(size) || size < LIMIT_OPTION_RANGES.max_request_size.min) {
    throw new InvalidOptionError(
      'max_request_size',
      `must be a number of megabytes, e.g. 100; got ${JSON.stringify(size)}`,
    );
  }
  const maxRequestBytes = Math.max(1, Math.round((size === 0 ? DEFAULT_MAX_REQUEST_SIZE_MB : size) * MB));
  if (maxRequestBytes > Number.MAX_SAFE_INTEGER)
    throw new InvalidOptionError('max_request_size', `is too large: ${size}`);
  const headersTimeoutMs = duration(raw.headers_timeout, 'headers_timeout');
  const requestTimeoutMs = duration(raw.request_timeout, 'request_timeout');
  if (
    headersTimeoutMs !== null &&
    requestTimeoutMs !== null &&
    requestTimeoutMs > 0 &&
    (headersTimeoutMs === 0 || headersTimeoutMs > requestTimeoutMs)
  ) {
    throw new InvalidOptionError(
      'headers_timeout',
      `must be at most request_timeout (${requestTimeoutMs} ms), got ${headersTimeoutMs} ms`,
    );
  }
  return {
    maxRequestBytes,
    maxHeaderCount: integer(raw.max_header_count, 'max_header_count', LIMIT_OPTION_RANGES.max_header_count.min),
    maxHeaderBytes: integer(raw.max_header_size, 'max_header_size', LIMIT_OPTION_RANGES.max_header_size.min),
    headersTimeoutMs,
    requestTimeoutMs,
    bodyTimeoutMs: duration(raw.body_timeout, 'body_timeout') ?? DEFAULT_BODY_TIMEOUT_MS,
  };
}

function duration(value: Duration | undefined, key: string): number | null {
  if (value === undefined) return null;
  try {
    return parseDuration(value, key);
  } catch (error) {
    throw InvalidOptionError.from(key, error);
  }
}

function integer(value: unknown, key: string, min: number): number | null {
  if (value === undefined) return null;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(key, `must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** The part of Fastify's factory options the limits decide (for apps that create the Fastify instance). */
export interface ServerLimitOptions {
  requestTimeout?: number;
  http?: {
    headersTimeout?: number;
    requestTimeout?: number;
    maxHeaderSize?: number;
    connectionsCheckingInterval?: number;
  };
}

/**
 * Fastify factory options for the limits that are, by Node's documentation, creation-time options:
 * `Fastify({ ...serverLimits(limits), logger })`. `applyLimits` sets the same values on an existing
 * server, so using both is harmless; a plugin user who does not own the factory needs only applyLimits.
 * Fastify copies its top-level `requestTimeout` onto the server after creation, so it is set there too.
 */
export function serverLimits(limits: ResolvedLimits): ServerLimitOptions {
  const options: ServerLimitOptions = {};
  const httpOptions: NonNullable<ServerLimitOptions['http']> = {};
  if (limits.requestTimeoutMs !== null) {
    options.requestTimeout = limits.requestTimeoutMs;
    httpOptions.requestTimeout = limits.requestTimeoutMs;
  }
  if (limits.headersTimeoutMs !== null) httpOptions.headersTimeout = limits.headersTimeoutMs;
  if (limits.maxHeaderBytes !== null) httpOptions.maxHeaderSize = limits.maxHeaderBytes;
  const interval = checkingIntervalMs(limits);
  if (interval !== null) httpOptions.connectionsCheckingInterval = interval;
  if (Object.keys(httpOptions).length > 0) options.http = httpOptions;
  return options;
}

/** How often Node checks for slow clients: a quarter of the shortest timeout, within [50 ms, 1 s]. */
function checkingIntervalMs(limits: ResolvedLimits): number | null {
  const timeouts = [limits.headersTimeoutMs, limits.requestTimeoutMs].filter((t): t is number => t !== null && t > 0);
  if (timeouts.length === 0) return null;
  return Math.min(1000, Math.max(50, Math.floor(Math.min(...timeouts) / 4)));
}

const lazyContinueServers = new WeakSet<object>();

/**
 * How many header fields Node's HTTP/1.1 parser keeps in `request.headers`: the server's
 * maxHeadersCount (unset: 1000; 0: all). HTTP/2 keeps them all (its own limit resets the stream).
 */
function nodeKeptFields(server: unknown): number {
  const count = (server as { maxHeadersCount?: number | null }).maxHeadersCount;
  if (count === 0) return Infinity;
  return typeof count === 'number' && count > 0 ? count : NODE_DEFAULT_HEADER_FIELDS;
}

/**
 * An HTTP/2 request's fields as HTTP/1.1 counts them: the pseudo-headers but :authority (Host's
 * stand-in) are the request line there, and the cookie crumbs a browser sends apart for HPACK are
 * one Cookie line (RFC 9113 8.2.3, as nginx joins them).
 */
function http2FieldCount(rawHeaders: readonly string[]): number {
  let count = 0;
  let cookie = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.charCodeAt(0) === 0x3a /* ':' */) {
      if (name === ':authority') count++;
    } else if (name === 'cookie') {
      if (!cookie) count++;
      cookie = true;
    } else count++;
  }
  return count;
}

/** A stream of an HTTP/2 session, not a request read by the HTTP/1 parser (which takes "HTTP/2.0" too). */
function isHttp2(raw: FastifyRequest['raw']): boolean {
  return 'stream' in raw;
}

/** Node's maxHeadersCount when unset. */
const NODE_DEFAULT_HEADER_FIELDS = 1000;

/**
 * Applies the limits. Call it inside the plugin's encapsulated child (the one holding the catch-all
 * route and the '*' parser registered with `bodyLimit: limits.maxRequestBytes`): its hooks stay
 * in that context; the server settings (timeouts, header size, lazy 100-continue) are server-wide,
 * as Node only has them per server. An HTTP/2 server gets the timeouts and header size for its
 * HTTP/1.1 connections when it takes them (`allowHTTP1`; Node reads them from it, as from an HTTP/1
 * server), and the hooks.
 */
export function applyLimits(app: FastifyInstance, limits: ResolvedLimits): void {
  const server = app.server as unknown;
  if (configureServerTimeouts(server, limits, app.log)) {
    installLingeringClose(server as object);
    boundPipelining(server as object, app.log);
    if (server instanceof HttpServer || server instanceof HttpsServer) installLazyContinue(server);
  }

  const maxBytes = limits.maxRequestBytes;
  const maxHeaderCount = limits.maxHeaderCount ?? Infinity;
  // Node's own HTTP/1.1 limit when max_header_size is unset (16 KB, or --max-http-header-size)
  const maxHeadBytes = limits.maxHeaderBytes ?? nodeMaxHeaderSize;
  const streamTimeoutMs = limits.requestTimeoutMs ?? DEFAULT_STREAM_REQUEST_TIMEOUT_MS;
  app.addHook(
    'onRequest',
    function checkLimits(request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
      const raw = request.raw;
      if (raw.httpVersionMajor !== 1 && !isHttp2(raw)) {
        rejectEarly(request, reply, 505, new HttpVersionError(raw.httpVersion));
        return;
      }
      const http2 = raw.httpVersionMajor === 2;
      // HTTP/2 has Node's HTTP/1.1 default too when max_header_count is unset (nghttp2 takes more)
      const limit = http2
        ? (limits.maxHeaderCount ?? NODE_DEFAULT_HEADER_FIELDS)
        : Math.min(maxHeaderCount, nodeKeptFields(server));
      // the fields the server added (the request id) are not the client's to count
      const added = addedRequestFields(raw);
      if (raw.rawHeaders.length > (limit + added) * 2 && (!http2 || http2FieldCount(raw.rawHeaders) > limit + added)) {
        rejectEarly(request, reply, 431, new TooManyHeadersError(limit));
        return;
      }
      if (raw.httpVersionMajor === 2 && headBytes(raw.rawHeaders) > maxHeadBytes) {
        rejectEarly(request, reply, 431, new HeadersTooLargeError(maxHeadBytes));
        return;
      }
      // Node's parser takes any coding ending in chunked and leaves the rest on the body
      const coding = raw.httpVersionMajor === 1 ? raw.headers['transfer-encoding'] : undefined;
      if (coding !== undefined && coding.trim().toLowerCase() !== 'chunked') {
        rejectEarly(request, reply, 501, new TransferEncodingError(coding));
        return;
      }
      const length = raw.headers['content-length'];
      // Node has validated it: digits only, and duplicates rejected
      if (length !== undefined && Number(length) > maxBytes) {
        rejectEarly(request, reply, 413, bodyTooLarge(maxBytes));
        return;
      }
      if (raw.httpVersionMajor === 2) guardStreamBody(request, reply, streamTimeoutMs);
      guardBodyPace(request, reply, limits.bodyTimeoutMs);
      done();
    },
  );
}

/** An HTTP/2 head's size as HTTP/1.1 would count it: each field as `name: value` and its line end (pseudo-headers included). */
function headBytes(rawHeaders: readonly string[]): number {
  let bytes = 0;
  for (let i = 0; i < rawHeaders.length; i++) bytes += rawHeaders[i]!.length + 2;
  return bytes;
}

/**
 * The one 413 for a body over max_request_size, whoever reads the body: this module's
 * Content-Length check, the raw body parser, the urlencoded and multipart parsers.
 */
export function bodyTooLarge(maxBytes: number): BodyTooLargeError {
  return new BodyTooLargeError(
    `the request body is too large: over the limit of ${maxBytes} bytes (max_request_size)`,
    maxBytes,
  );
}

/**
 * Replies now, closing an HTTP/1 connection: the client may still be sending a body we will not read
 * (dropped by the lingering close until it stops, so the answer reaches it).
 */
function rejectEarly(request: FastifyRequest, reply: FastifyReply, status: number, error: Error): void {
  if (!isHttp2(request.raw)) reply.header('connection', 'close');
  reply.code(status).send(error);
}

/** The settings Node's HTTP/1.1 connection code reads from the server it serves for. */
interface Http1Settings {
  headersTimeout: number;
  requestTimeout: number;
  listening: boolean;
}

/** An HTTP/1 server, or an HTTP/2 one created with allowHTTP1: Node gives it these settings (60 s, 300 s) then only. */
function acceptsHttp1(server: unknown): server is Http1Settings {
  return typeof server === 'object' && server !== null && typeof (server as Http1Settings).headersTimeout === 'number';
}

/**
 * The slow-client timeouts and the head size of `server`'s HTTP/1.1 connections (an HTTP/1 server,
 * or an HTTP/2 one that takes HTTP/1.1 too); false when it takes none. Set before listen: the
 * checking interval is read then (`log` warns when it is too late).
 */
export function configureServerTimeouts(
  server: unknown,
  limits: ResolvedLimits,
  log: FastifyBaseLogger | null,
): boolean {
  if (!acceptsHttp1(server)) return false;
  if (limits.headersTimeoutMs !== null) server.headersTimeout = limits.headersTimeoutMs;
  if (limits.requestTimeoutMs !== null) server.requestTimeout = limits.requestTimeoutMs;
  // read per new connection (`server.maxHeaderSize || 0` in Node's connectionListener)
  if (limits.maxHeaderBytes !== null) (server as { maxHeaderSize?: number }).maxHeaderSize = limits.maxHeaderBytes;
  const interval = checkingIntervalMs(limits);
  if (interval !== null) {
    const current = (server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval ?? 30_000;
    if (server.listening) {
      if (interval < current)
        log?.warn(
          { intervalMs: current },
          'warmpool: the server is already listening; slow-client timeouts are checked every %d ms',
          current,
        );
    } else if (interval < current) {
      // read by Node when the server starts listening
      (server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = interval;
    }
  }
  return true;
}

/** 100 Continue when the body is first read, not before routing (see 1. above). */
function installLazyContinue(server: HttpServer | HttpsServer): void {
  if (lazyContinueServers.has(server) || server.listenerCount('checkContinue') > 0) return;
  lazyContinueServers.add(server);
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const read = req._read;
    // Readable calls _read when a consumer first wants data ('data' listener, pipe, read()),
    // including Node's own drain of an unread body after the reply, which headersSent skips.
    req._read = function continueThenRead(this: IncomingMessage, size: number): void {
      req._read = read;
      if (!res.headersSent && !res.writableEnded) res.writeContinue();
      read.call(this, size);
    };
    server.emit('request', req, res);
  });
}
