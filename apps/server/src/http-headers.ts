// Response-shaping every site may want, configured under `headers:` (RR's http.headers) plus
// compression: request/response headers, security-header presets, CORS (with preflight), the request
// id, and gzip/brotli via @fastify/compress. Everything is resolved once at registration; the hooks
// only read (principle 2), and a part that is off adds no hook (principle 3).
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerBase, RouteGenericInterface } from 'fastify';
import {
  BodyParts,
  InvalidOptionError,
  clientInfoOf,
  isReusedBody,
  markedUnbuffered,
  optionChecker,
  setRequestHeader,
} from '@warmpool/fastify';
// mime-db is JSON behind module.exports (types in ./mime-db.d.ts): a default import in ESM and in
// the single binary's CommonJS bundle alike
import mimeDb from 'mime-db';
import { isEventStream, isUnbuffered } from '@warmpool/pool';
import { compressedVariant } from './compressed-variants.js';
import { BROTLI_PARAMS, acceptedEncoding, compressStreamed } from './streamed-compression.js';

type AnyRequest = FastifyRequest<RouteGenericInterface, RawServerBase>;
type AnyReply = FastifyReply<RouteGenericInterface, RawServerBase>;

/** RR's http.headers.cors, same keys; lists may be arrays or comma-separated strings. */
export interface CorsOptions {
  /** `*`, or the origins allowed (`https://app.example.com`); default `*` */
  allowed_origin?: string | readonly string[];
  /** a regular expression an Origin may match instead (RR key) */
  allowed_origin_regex?: string;
  /** default `GET,HEAD,PUT,PATCH,POST,DELETE` */
  allowed_methods?: string | readonly string[];
  /** `*` reflects what the browser asks for; default `*` */
  allowed_headers?: string | readonly string[];
  /** response headers scripts may read */
  exposed_headers?: string | readonly string[];
  /** send `Access-Control-Allow-Credentials: true`; with `*` origins, the Origin is echoed (browsers refuse `*` with credentials) */
  allow_credentials?: boolean;
  /** seconds a browser may cache a preflight answer; default 0 (header not sent) */
  max_age?: number;
}

export interface CompressionOptions {
  /** bodies smaller than this many bytes are sent as they are; default 1024 */
  threshold?: number;
  /** offered encodings, preferred first; default ['br', 'gzip'] */
  encodings?: ReadonlyArray<'br' | 'gzip' | 'deflate'>;
}

export type SecurityPreset = 'basic' | 'strict';

export interface HttpHeadersOptions {
  /** headers set on every request before PHP sees it (RR http.headers.request); replaces a client's value */
  request?: Readonly<Record<string, string>> | null;
  /** headers added to every response PHP (or a proxy upstream) did not set itself (RR http.headers.response) */
  response?: Readonly<Record<string, string>> | null;
  /**
   * headers removed from every response, PHP's, an upstream's and static files' alike (nginx's
   * fastcgi_hide_header / proxy_hide_header, Caddy's `header -Server`): X-Powered-By, Server
   */
  hide?: readonly string[] | null;
  /** a set of security headers; `response` entries override single headers of it. Default: none */
  security?: SecurityPreset | null;
  cors?: CorsOptions | null;
  /** gzip/brotli for compressible types; default on (threshold 1 KiB, br then gzip); false turns it off */
  compression?: boolean | CompressionOptions;
  /** echo the request id as X-Request-Id on responses and pass it to PHP; default true */
  request_id?: boolean;
}

export const REQUEST_ID_HEADER = 'x-request-id';
/** An incoming X-Request-Id is used only if it looks like an id: no spaces, quotes or control bytes to smuggle into logs. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:@=+/-]{1,128}$/;

/**
 * Fastify's `genReqId` option: the client's (or the proxy's) X-Request-Id when it matches a safe
 * pattern, else a random UUID. Pino then logs it as `reqId`.
 */
export function genReqId(req: { headers: IncomingHttpHeaders }): string {
  const given = req.headers[REQUEST_ID_HEADER];
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID();
}

/** The presets' headers. HSTS (strict) is only sent on TLS connections: over plain HTTP browsers ignore it. */
export const SECURITY_PRESETS: Readonly<Record<SecurityPreset, Readonly<Record<string, string>>>> = {
  basic: {
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'SAMEORIGIN',
    'Referrer-Policy': 'strict-origin-when-cross-origin',
  },
  strict: {
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Permissions-Policy': 'camera=(), microphone=(), geolocation=()',
    'Strict-Transport-Security': 'max-age=31536000; includeSubDomains',
  },
};

const DEFAULT_CORS_METHODS = ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'];
export const DEFAULT_COMPRESSION_THRESHOLD_BYTES = 1024;

/**
 * Adds the configured headers, CORS and compression to `app` (a site's encapsulated instance).
 * Await it after registerMicroCache and before registering the warmpool plugin, proxies or any
 * route in the same instance:
 * - hooks only reach routes of plugins registered after them;
 * - @fastify/compress attaches itself to each route as it is declared (an onRoute hook), so a
 *   route declared before it has loaded is never compressed; awaiting loads it now;
 * - its onSend is route-level, so it runs after every instance onSend (the micro-cache stores the
 *   body before it is compressed); the onSend that makes a compressed body's ETag weak is added to
 *   each route after its own, by an onRoute hook added once it has loaded: unawaited, a route
 *   declared meanwhile would send a compressed body under the strong tag.
 * Options are checked before anything is added: a bad option throws and leaves `app` untouched.
 */
export async function registerHttpHeaders<S extends RawServerBase>(
  app: FastifyInstance<S>,
  options: HttpHeadersOptions = {},
): Promise<void> {
  const requestHeaders = headerList(options.request, 'headers.request');
  const responseHeaders = responseList(options.security ?? null, options.response);
  const hidden = hiddenList(options.hide, responseHeaders);
  const cors = options.cors === undefined || options.cors === null ? null : resolveCors(options.cors);
  const requestId = options.request_id ?? true;
  const compression = resolveCompression(options.compression);

  if (requestId || requestHeaders !== null) {
    app.addHook('onRequest', (request, reply, done) => {
      if (requestId) {
        // PHP sees the id the logs use, and the client gets it back to quote in a bug report.
        if (request.headers[REQUEST_ID_HEADER] !== request.id) setRequestHeader(request, REQUEST_ID_HEADER, request.id);
        reply.header(REQUEST_ID_HEADER, request.id);
      }
      if (requestHeaders !== null) for (const [name, value] of requestHeaders) setRequestHeader(request, name, value);
      done();
    });
  }

  if (cors !== null) {
    // Preflight is answered here, before PHP or a proxy; other OPTIONS requests pass through.
    app.addHook('onRequest', (request, reply, done) => {
      if (
        request.method !== 'OPTIONS' ||
        request.headers.origin === undefined ||
        request.headers['access-control-request-method'] === undefined
      )
        return done();
      answerPreflight(cors, request, reply);
    });
  }

  if (responseHeaders !== null || cors !== null || hidden !== null) {
    app.addHook('onSend', (request, reply, payload, done) => {
      if (hidden !== null) for (const name of hidden) reply.removeHeader(name);
      if (responseHeaders !== null) {
        const tls = clientInfoOf(request.raw).scheme === 'https';
        for (const [name, value] of responseHeaders) {
          if (name === 'strict-transport-security' && !tls) continue;
          if (!reply.hasHeader(name)) reply.header(name, value);
        }
      }
      if (cors !== null && request.headers.origin !== undefined) addCorsHeaders(cors, request, reply);
      else if (cors !== null && !cors.anyOrigin) addVary(reply, 'Origin');
      done(null, payload);
    });
  }

  if (compression !== null) {
    // a revalidation of a tag weakened here reaches the backend with the tag the backend made
    app.addHook('onRequest', (request, _reply, done) => {
      const sent = request.headers['if-none-match'];
      if (sent !== undefined) {
        clientIfNoneMatch.set(request.raw, sent);
        restoreWeakenedTags(request.raw.headers, request.raw.rawHeaders);
      }
      done();
    });
    // @fastify/compress decides per type: its list plus mime-db (images, archives, fonts and event
    // streams are left alone). application/octet-stream is in its list, but PHP sends downloads
    // (zip, pdf, media) under that type: those are compressed already, so they are skipped too,
    // through the plugin's own per-request switch. This instance-level onSend runs before the
    // plugin's, which it adds to each route.
    app.addHook('onSend', (request, reply, payload, done) => {
      // A part of a body (206, or a Content-Range on any status) is sent as it is: its Content-Range
      // counts bytes of the uncompressed body, and a client or cache stitching parts of a compressed
      // one would build a corrupt file (RFC 9110 14.4; nginx never compresses a 206 either). The
      // @fastify/compress used here compresses them (upstream skips them since its PR #402).
      if (reply.statusCode === 206 || reply.hasHeader('content-range')) {
        request.headers['x-no-compression'] = '1';
        return done(null, payload);
      }
      if (reply.statusCode === 304) {
        matchRevalidatedEtag(request, reply);
        return done(null, payload);
      }
      const type = reply.getHeader('content-type');
      // A body compressed for the clients that ask says so to all (nginx's gzip_vary; RFC 9110
      // 12.5.5), so that a shared cache keeps the plain copy it got from one client for that kind of
      // client only. @fastify/compress says it only on the copies it compresses.
      const compressible =
        request.method === 'HEAD' && isEmptyBody(payload)
          ? compressibleHead(reply, type, compression.threshold)
          : compressibleReply(reply, type, payload, compression.threshold);
      if (compressible) addVary(reply, 'accept-encoding');
      // no Accept-Encoding: @fastify/compress sends the body as it is anyway
      if (request.headers['accept-encoding'] === undefined) return done(null, payload);
      // marked by the backend (the header is off by now), or by a route of this app itself
      const unbuffered = markedUnbuffered(reply) || isUnbuffered(String(reply.getHeader('x-accel-buffering') ?? ''));
      if (compressible && payload instanceof Readable && unbuffered) {
        // compressed here, each piece flushed as it comes; @fastify/compress then sees it encoded
        const compressed = compressStreamed(request, reply, payload, compression.encodings);
        if (compressed === null) return done(null, payload);
        weakenEtag(reply);
        return done(null, compressed);
      }
      if ((typeof type === 'string' && SKIP_COMPRESSION.test(type)) || startsLikeCompressedData(payload)) {
        request.headers['x-no-compression'] = '1';
        return done(null, payload);
      }
      if (!encoded(reply)) encodedHere.add(reply);
      // a body the caches send again and again: its compressed copy is kept with it
      // (compressed-variants.ts), and a HEAD gets the GET's headers, its length too
      if (compressible && isReusedBody(payload)) {
        const encoding = acceptedEncoding(request, compression.encodings);
        if (encoding !== null) {
          compressedVariant(payload, encoding, (error, compressed) => {
            // not compressed here: @fastify/compress does it, as for any other body
            if (error !== null) return done(null, payload);
            reply.header('content-encoding', encoding).header('content-length', String(compressed.length));
            done(null, compressed);
          });
          return;
        }
      }
      // any other HEAD whose GET would be compressed gets the GET's headers from an empty stream:
      // Node drops a HEAD's body, and compressing the whole one cost as much CPU as the GET (10 ms
      // for a 700 KB script with br), an answer cheap to ask for and costly to give
      if (request.method === 'HEAD' && compressible && !(payload instanceof Readable)) {
        reply.removeHeader('content-length');
        return done(null, Readable.from([]));
      }
      if (
        payload instanceof Readable &&
        !reply.hasHeader('content-encoding') &&
        !(typeof type === 'string' && isEventStream(type))
      ) {
        // a stream's first bytes decide as a whole body's do: wait for them (compressing waits for
        // them anyway; an event stream, which is not compressed, is not held back)
        peekFirstBytes(payload, COMPRESSED_SIGNATURE_BYTES, (error, first, stream) => {
          if (error !== null) return done(error);
          if (first !== null && startsLikeCompressedData(first)) request.headers['x-no-compression'] = '1';
          done(null, stream);
        });
        return;
      }
      done(null, payload);
    });
    // loaded only when compression is on
    await app.register(import('@fastify/compress'), {
      global: true,
      // Request bodies reach PHP as sent (RR does the same); inflating them here would also let a
      // small gzip bomb expand past max_request_size before PHP's own checks.
      globalDecompression: false,
      threshold: compression.threshold,
      encodings: [...compression.encodings],
      customTypes: compressibleType,
      brotliOptions: { params: { ...BROTLI_PARAMS } },
    });
    // After @fastify/compress's own onRoute (it adds its onSend to each route), so this onSend runs
    // after its: a body it compressed is another byte sequence than the one the ETag names, so the
    // tag is made weak (as nginx's gzip does), the same for every encoding.
    app.addHook('onRoute', (route) => {
      route.onSend = [...[route.onSend ?? []].flat(), weakenEtagOfCompressed];
    });
  }
}

/** Replies that had no Content-Encoding before @fastify/compress's onSend: one they have after it is its own. */
const encodedHere = new WeakSet<AnyReply>();

const weakenEtagOfCompressed = (_request: AnyRequest, reply: AnyReply, payload: unknown, done: DoneWith): void => {
  if (encodedHere.has(reply) && encoded(reply)) weakenEtag(reply);
  done(null, payload);
};
type DoneWith = (error: Error | null, payload: unknown) => void;

function encoded(reply: AnyReply): boolean {
  const encoding = reply.getHeader('content-encoding');
  return encoding !== undefined && encoding !== 'identity';
}

/**
 * A strong ETag names one exact byte sequence (RFC 9110 8.8.1); a body compressed on the fly is
 * another one (and not the same each time, by level or version of zlib), so its tag is the weak
 * form of the plain body's. If-None-Match compares weakly: W/"x" still revalidates the page, while
 * If-Range, which needs a strong match, never joins a range of the plain body to compressed bytes.
 */
function weakenEtag(reply: AnyReply): void {
  const etag = reply.getHeader('etag');
  if (typeof etag !== 'string') return;
  if (etag.startsWith('"')) {
    reply.header('etag', `W/${etag}`);
    rememberWeakened(etag);
  } else if (!etag.startsWith('W/')) {
    // no quotes (`ETag: 7db1-f8dd`, Icinga Web's): no form to weaken, so no tag, as nginx's gzip
    // drops it; else the plain and the compressed bodies would share one strong validator
    reply.removeHeader('etag');
  }
}

/**
 * The strong tags weakened here lately (insertion order, the oldest dropped past the bound). A
 * browser revalidates with the weak tag it got, and apps that compare If-None-Match byte for byte
 * (DokuWiki's css.php and js.php, WordPress's load-styles.php) then never answered 304 again: the
 * whole asset on every page (a classic-PHP probe). nginx's gzip weakens tags too, but most configs
 * leave css and js out of its gzip_types. So a weak tag that is one of ours is given back strong to
 * the backend: If-None-Match compares weakly (RFC 9110 13.1.2), so this changes no answer of a
 * backend that compares as the RFC says, and only tags warmpool weakened are touched.
 */
const weakened = new Set<string>();
const WEAKENED_MAX = 10_000;

function rememberWeakened(tag: string): void {
  if (weakened.has(tag)) return;
  if (weakened.size >= WEAKENED_MAX) weakened.delete(weakened.values().next().value as string);
  weakened.add(tag);
}

/**
 * In If-None-Match, W/"x" becomes "x" when "x" was weakened here, wherever the backend reads it: the
 * parsed headers (which the plugin sends PHP, hooks' changes included) and the raw lines.
 */
export function restoreWeakenedTags(headers: Record<string, unknown>, rawHeaders: string[]): void {
  const value = headers['if-none-match'];
  if (typeof value === 'string' && value.includes('W/')) headers['if-none-match'] = strongAgain(value);
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.length !== 13 || rawHeaders[i]!.toLowerCase() !== 'if-none-match') continue;
    const line = rawHeaders[i + 1]!;
    if (line.includes('W/')) rawHeaders[i + 1] = strongAgain(line);
  }
}

function strongAgain(value: string): string {
  return value.replace(/W\/("[^"]*")/g, (tag, strong: string) => (weakened.has(strong) ? strong : tag));
}

/**
 * A 304 carries the ETag the 200 would have had (RFC 9110 15.4.5): when the client revalidates the
 * weak tag a compressed body carried, the weak one, so that its cache finds the copy it updates;
 * whoever made the 304 (the static layer, the micro-cache, PHP) compared weakly and set the plain one.
 */
/** If-None-Match as the client sent it, before restoreWeakenedTags made our tags strong for PHP. */
const clientIfNoneMatch = new WeakMap<object, string | string[]>();

function matchRevalidatedEtag(request: AnyRequest, reply: AnyReply): void {
  const etag = reply.getHeader('etag');
  const ifNoneMatch = clientIfNoneMatch.get(request.raw) ?? request.headers['if-none-match'];
  if (typeof etag !== 'string' || !etag.startsWith('"') || typeof ifNoneMatch !== 'string') return;
  const tags = ifNoneMatch.split(',').map((tag) => tag.trim());
  if (tags.includes(`W/${etag}`) && !tags.includes(etag)) reply.header('etag', `W/${etag}`);
}

// ---- options ----

/** A header name: RFC 9110's token. */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

function headerList(
  value: Readonly<Record<string, string>> | null | undefined,
  key: string,
): Array<[string, string]> | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value))
    throw new InvalidOptionError(key, `must be a map of header name to value, got ${JSON.stringify(value)}`);
  const list: Array<[string, string]> = [];
  for (const [name, raw] of Object.entries(value)) {
    if (!HEADER_NAME.test(name)) throw new InvalidOptionError(`${key}.${name}`, 'is not a valid header name');
    const text = typeof raw === 'number' || typeof raw === 'boolean' ? String(raw) : raw;
    if (typeof text !== 'string' || /[\r\n\0]/.test(text))
      throw new InvalidOptionError(`${key}.${name}`, `must be a one-line string, got ${JSON.stringify(raw)}`);
    list.push([name.toLowerCase(), text]);
  }
  return list.length === 0 ? null : list;
}

/**
 * What registerHttpHeaders would refuse in `options`, without registering anything: `config check`
 * says it at the key's line, as serve does at boot.
 */
export function checkHttpHeaders(options: HttpHeadersOptions): InvalidOptionError[] {
  const problems: InvalidOptionError[] = [];
  const check = optionChecker(problems);
  check(() => headerList(options.request, 'headers.request'));
  check(() => hiddenList(options.hide, responseList(options.security ?? null, options.response)));
  if (options.cors !== undefined && options.cors !== null) check(() => resolveCors(options.cors!));
  check(() => resolveCompression(options.compression));
  return problems;
}

/** Headers hide may not remove: the body's framing and coding, which the client needs to read it. */
const UNHIDEABLE = new Set([
  'content-length',
  'content-type',
  'content-encoding',
  'content-range',
  'transfer-encoding',
]);

function hiddenList(
  value: readonly string[] | null | undefined,
  added: ReadonlyArray<[string, string]> | null,
): readonly string[] | null {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value))
    throw new InvalidOptionError('headers.hide', `must be a list of header names, got ${JSON.stringify(value)}`);
  const names = value.map((name: unknown, i) => {
    if (typeof name !== 'string' || !HEADER_NAME.test(name))
      throw new InvalidOptionError(`headers.hide[${i}]`, `is not a header name: ${JSON.stringify(name)}`);
    const lower = name.toLowerCase();
    if (UNHIDEABLE.has(lower))
      throw new InvalidOptionError(`headers.hide[${i}]`, `${name} frames the body: the client could not read it`);
    if (added?.some(([addedName]) => addedName === lower))
      throw new InvalidOptionError(
        `headers.hide[${i}]`,
        `${name} is also in headers.response: to replace the backend's value, hide it (the added one would go too); remove one of the two`,
      );
    return lower;
  });
  return names.length === 0 ? null : names;
}

function responseList(
  security: SecurityPreset | null,
  response: Readonly<Record<string, string>> | null | undefined,
): Array<[string, string]> | null {
  if (security !== null && !Object.hasOwn(SECURITY_PRESETS, security)) {
    throw new InvalidOptionError(
      'headers.security',
      `must be one of ${Object.keys(SECURITY_PRESETS).join(', ')}, got ${JSON.stringify(security)}`,
    );
  }
  const merged = new Map<string, string>();
  for (const [name, value] of headerList(security === null ? null : SECURITY_PRESETS[security], 'headers.security') ??
    [])
    merged.set(name, value);
  for (const [name, value] of headerList(response, 'headers.response') ?? []) merged.set(name, value);
  return merged.size === 0 ? null : [...merged];
}

interface ResolvedCors {
  anyOrigin: boolean;
  origins: ReadonlySet<string>;
  originRegex: RegExp | null;
  methods: string;
  /** null: reflect Access-Control-Request-Headers */
  headers: string | null;
  exposed: string | null;
  credentials: boolean;
  maxAge: string | null;
}

function list(value: string | readonly string[] | undefined, key: string): string[] | null {
  if (value === undefined) return null;
  const items = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? value : null;
  if (items === null || items.some((item) => typeof item !== 'string'))
    throw new InvalidOptionError(key, `must be a list or a comma-separated string, got ${JSON.stringify(value)}`);
  return items.map((item) => item.trim()).filter(Boolean);
}

export function resolveCors(options: CorsOptions): ResolvedCors {
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('headers.cors', `must be a map, got ${JSON.stringify(options)}`);
  const origins =
    list(options.allowed_origin, 'headers.cors.allowed_origin') ??
    (options.allowed_origin_regex === undefined ? ['*'] : []);
  for (const origin of origins) {
    if (origin !== '*' && !/^[a-z][a-z0-9+.-]*:\/\/[^/\s]+$|^null$/i.test(origin)) {
      throw new InvalidOptionError(
        'headers.cors.allowed_origin',
        `"${origin}" is not an origin like https://app.example.com (scheme and host, no path)`,
      );
    }
  }
  let originRegex: RegExp | null = null;
  if (options.allowed_origin_regex !== undefined) {
    try {
      originRegex = new RegExp(options.allowed_origin_regex);
    } catch (error) {
      throw new InvalidOptionError('headers.cors.allowed_origin_regex', (error as Error).message);
    }
  }
  const methods = (list(options.allowed_methods, 'headers.cors.allowed_methods') ?? DEFAULT_CORS_METHODS).map((m) =>
    m.toUpperCase(),
  );
  const headers = list(options.allowed_headers, 'headers.cors.allowed_headers') ?? ['*'];
  const exposed = list(options.exposed_headers, 'headers.cors.exposed_headers') ?? [];
  if (options.allow_credentials !== undefined && typeof options.allow_credentials !== 'boolean') {
    throw new InvalidOptionError(
      'headers.cors.allow_credentials',
      `must be true or false, got ${JSON.stringify(options.allow_credentials)}`,
    );
  }
  const maxAge = options.max_age ?? 0;
  if (!(typeof maxAge === 'number' && Number.isInteger(maxAge) && maxAge >= 0)) {
    throw new InvalidOptionError(
      'headers.cors.max_age',
      `must be a whole number of seconds >= 0, got ${JSON.stringify(options.max_age)}`,
    );
  }
  return {
    anyOrigin: origins.includes('*'),
    origins: new Set(origins.map((o) => o.toLowerCase())),
    originRegex,
    methods: methods.join(', '),
    headers: headers.includes('*') ? null : headers.join(', '),
    exposed: exposed.length === 0 ? null : exposed.join(', '),
    credentials: options.allow_credentials === true,
    maxAge: maxAge > 0 ? String(maxAge) : null,
  };
}

function resolveCompression(value: boolean | CompressionOptions | undefined): Required<CompressionOptions> | null {
  if (value === false) return null;
  const options = value === undefined || value === true ? {} : value;
  if (typeof options !== 'object' || options === null)
    throw new InvalidOptionError('compression', `must be true, false or a map, got ${JSON.stringify(value)}`);
  const threshold = options.threshold ?? DEFAULT_COMPRESSION_THRESHOLD_BYTES;
  if (!(typeof threshold === 'number' && Number.isInteger(threshold) && threshold >= 0)) {
    throw new InvalidOptionError(
      'compression.threshold',
      `must be a whole number of bytes >= 0, got ${JSON.stringify(threshold)}`,
    );
  }
  const encodings = options.encodings ?? (['br', 'gzip'] as const);
  if (
    !Array.isArray(encodings) ||
    encodings.length === 0 ||
    encodings.some((e) => !['br', 'gzip', 'deflate'].includes(e))
  ) {
    throw new InvalidOptionError(
      'compression.encodings',
      `must list one or more of br, gzip, deflate, got ${JSON.stringify(encodings)}`,
    );
  }
  return { threshold, encodings };
}

// ---- per request ----

function originAllowed(cors: ResolvedCors, origin: string): boolean {
  return cors.anyOrigin || cors.origins.has(origin.toLowerCase()) || cors.originRegex?.test(origin) === true;
}

function allowOrigin(cors: ResolvedCors, reply: AnyReply, origin: string): void {
  // `*` cannot carry credentials: echo the origin then, and say the answer varies by it.
  if (cors.anyOrigin && !cors.credentials) reply.header('access-control-allow-origin', '*');
  else {
    reply.header('access-control-allow-origin', origin);
    addVary(reply, 'Origin');
  }
  if (cors.credentials) reply.header('access-control-allow-credentials', 'true');
}

function answerPreflight(cors: ResolvedCors, request: AnyRequest, reply: AnyReply): void {
  const origin = request.headers.origin!;
  addVary(reply, 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers');
  // A refused preflight is still 204: the browser sees no CORS headers and blocks the request.
  if (originAllowed(cors, origin)) {
    allowOrigin(cors, reply, origin);
    reply.header('access-control-allow-methods', cors.methods);
    const asked = request.headers['access-control-request-headers'];
    const headers = cors.headers ?? (typeof asked === 'string' ? asked : null);
    if (headers !== null && headers !== '') reply.header('access-control-allow-headers', headers);
    if (cors.maxAge !== null) reply.header('access-control-max-age', cors.maxAge);
  }
  reply.code(204).send();
}

function addCorsHeaders(cors: ResolvedCors, request: AnyRequest, reply: AnyReply): void {
  const origin = request.headers.origin!;
  if (!cors.anyOrigin) addVary(reply, 'Origin');
  if (!originAllowed(cors, origin)) return;
  allowOrigin(cors, reply, origin);
  if (cors.exposed !== null) reply.header('access-control-expose-headers', cors.exposed);
}

/** Appends names to Vary unless present (case-insensitive), keeping what PHP set. */
function addVary(reply: AnyReply, names: string): void {
  const current = reply.getHeader('vary');
  const text = current === undefined ? '' : Array.isArray(current) ? current.join(', ') : String(current);
  if (text.trim() === '*') return;
  const have = new Set(
    text
      .split(',')
      .map((n) => n.trim().toLowerCase())
      .filter(Boolean),
  );
  const add = names
    .split(',')
    .map((n) => n.trim())
    .filter((n) => !have.has(n.toLowerCase()));
  if (add.length === 0) return;
  reply.header('vary', text.trim() === '' ? add.join(', ') : `${text}, ${add.join(', ')}`);
}

// ---- compression types ----

/** Types @fastify/compress would compress that are compressed already (binary downloads). */
const SKIP_COMPRESSION = /^application\/octet-stream\b/i;
/**
 * @fastify/compress's own list (text, JSON, XML), before mime-db's `compressible` flag. Event
 * streams are not compressed (nginx's default gzip_types): events are small, and a connection open
 * for hours would hold a compressor's memory all that time.
 */
const COMPRESSIBLE_TYPES =
  /^text\/(?!event-stream)|(?:\+|\/)json(?:;|$)|(?:\+|\/)text(?:;|$)|(?:\+|\/)xml(?:;|$)|octet-stream(?:;|$)/u;

/**
 * The types compressed: @fastify/compress's rule (its list, then mime-db), given to it as
 * customTypes so that the Vary decision below and the compression itself never disagree.
 */
function compressibleType(type: string): boolean {
  if (COMPRESSIBLE_TYPES.test(type)) return true;
  return mimeDb[type.split(';', 1)[0]!.trim().toLowerCase()]?.compressible === true;
}

/**
 * Whether @fastify/compress (after this module's own skips) would compress this reply for a
 * client that accepts gzip: not encoded already, a compressible type, and a stream or a whole body
 * of `threshold` bytes or more.
 */
function compressibleReply(reply: AnyReply, type: unknown, payload: unknown, threshold: number): boolean {
  if (payload === null || payload === undefined) return false;
  if (encoded(reply)) return false;
  const text = typeof type === 'string' ? type : 'application/json';
  if (!compressibleType(text) || SKIP_COMPRESSION.test(text)) return false;
  if (payload instanceof Readable) return true;
  if (typeof payload !== 'string' && !Buffer.isBuffer(payload)) return false;
  return Buffer.byteLength(payload) >= threshold && !startsLikeCompressedData(payload);
}
/**
 * compressibleReply for a HEAD, whose answer has no body to measure: PHP sends none (php-cgi and
 * php-fpm drop it), so the GET's would be compressed unless its Content-Length is under the
 * threshold, as nginx's gzip filter decides a HEAD (it runs before the body is dropped). A redirect,
 * 204 or 304 has no body to compress on its GET either.
 */
function compressibleHead(reply: AnyReply, type: unknown, threshold: number): boolean {
  const status = reply.statusCode;
  if (status === 204 || status === 304 || (status >= 300 && status < 400)) return false;
  if (encoded(reply)) return false;
  const text = typeof type === 'string' ? type : 'application/json';
  if (!compressibleType(text) || SKIP_COMPRESSION.test(text)) return false;
  const length = Number(reply.getHeader('content-length') ?? Number.NaN);
  return Number.isNaN(length) || length >= threshold;
}

/** No body at all (a worker may answer a HEAD with the GET's body, which Node then drops: that one is measured). */
function isEmptyBody(payload: unknown): boolean {
  return (
    payload === null ||
    payload === undefined ||
    payload === '' ||
    (Buffer.isBuffer(payload) && payload.length === 0) ||
    (payload instanceof BodyParts && payload.length === 0)
  );
}

/** gzip's magic and method byte; a zlib header is two bytes */
const COMPRESSED_SIGNATURE_BYTES = 3;

/**
 * @fastify/compress passes a body that starts like gzip or zlib data through as it is, yet labels
 * it Content-Encoding: gzip, and the client then fails to decode it. Plain text can start that way
 * ("80", "x^", any byte pair that makes a valid zlib header) and so can a .gz download: such a
 * whole body is sent uncompressed instead; a stream's first bytes are read first (peekFirstBytes).
 */
export function startsLikeCompressedData(payload: unknown): boolean {
  const first =
    typeof payload === 'string'
      ? Buffer.from(payload.slice(0, 3))
      : Buffer.isBuffer(payload)
        ? payload
        : payload instanceof BodyParts
          ? payload.parts[0]
          : undefined;
  if (first === undefined || first.length < 2) return false;
  const gzip = first.length > 2 && first[0] === 0x1f && first[1] === 0x8b && first[2] === 0x08;
  const zlib = (first[0]! & 0x0f) === 0x08 && (first[0]! & 0x80) === 0 && ((first[0]! << 8) + first[1]!) % 31 === 0;
  return gzip || zlib;
}

/**
 * Reads a stream's first `bytes` bytes (fewer if it ends first) and puts them back, then calls
 * `then` with them and the stream to send: the same one, or, when it ended meanwhile (a body
 * shorter than `bytes`), a new one with what it held. An error before then is passed on.
 */
export function peekFirstBytes(
  stream: Readable,
  bytes: number,
  then: (error: Error | null, first: Buffer | null, stream: Readable) => void,
): void {
  if (stream.destroyed || stream.readableEnded || stream.readableObjectMode) {
    then(null, null, stream);
    return;
  }
  const parts: Buffer[] = [];
  let length = 0;
  let settled = false;
  const settle = (error: Error | null, ended: boolean) => {
    if (settled) return;
    settled = true;
    stream.off('readable', onReadable);
    stream.off('end', onEnd);
    stream.off('error', onError);
    // the first chunk alone, uncopied, in the usual case that it holds the bytes asked for
    const first = length === 0 ? null : parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
    if (error !== null) then(error, first, stream);
    else if (ended) then(null, first, Readable.from(first === null ? [] : [first]));
    else {
      if (first !== null && !stream.destroyed) stream.unshift(first);
      then(null, first, stream);
    }
  };
  const onReadable = () => {
    while (length < bytes) {
      const chunk = stream.read() as Buffer | string | null;
      if (chunk === null) break;
      const part = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      parts.push(part);
      length += part.length;
    }
    if (length >= bytes) settle(null, false);
  };
  const onEnd = () => settle(null, true);
  const onError = (error: Error) => settle(error, false);
  stream.on('readable', onReadable);
  stream.once('end', onEnd);
  stream.once('error', onError);
}
