// A Fastify request → the exchange request every backend takes (the one seam to PHP: no wire
// protocol here). Header names are canonical as RoadRunner sends them; Host is decided once
// (network/client-info.ts).
import { authenticatedUser } from '../network/admission.js';
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import {
  type Chunks,
  type ExchangeRequest,
  type ExchangeScript,
  type FileBody,
  type HeaderMap,
  headerTextFromBytes,
  markKeptBytes,
  type ParsedForm,
} from '@warmpool/pool';
import type { ClientInfo } from '../network/client-info.js';

const canonicalCache = new Map<string, string>();

/**
 * Go's CanonicalMIMEHeaderKey, as RoadRunner sends header names: `x-custom-id` → `X-Custom-Id`; ''
 * for a header PHP is never given, as classic mode's params and nginx drop it: a name with anything
 * but letters, digits and "-" (underscores_in_headers off: the worker SDK's server params make
 * "X_Internal" and "X-Internal", or "Content_Length" and the real one, the same HTTP_ key, the
 * client's winning over what the server set) and Proxy (httpoxy: HTTP_PROXY is curl's and Guzzle's
 * proxy setting).
 */
export function canonicalHeaderName(name: string): string {
  let canonical = canonicalCache.get(name);
  if (canonical !== undefined) return canonical;
  canonical =
    !/^[A-Za-z0-9-]+$/.test(name) || name.toLowerCase() === 'proxy'
      ? ''
      : name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash: string, ch: string) => dash + ch.toUpperCase());
  if (canonicalCache.size < 1000) canonicalCache.set(name, canonical);
  return canonical;
}

// Node decodes header bytes as latin1; PHP expects the original bytes, which are UTF-8 in practice.
// Re-decode only values that contain non-ASCII (rare). Bytes that are not UTF-8 (a Latin-1 value)
// are kept as themselves (headerTextFromBytes): classic PHP gets them byte for byte as behind nginx,
// a worker as U+FFFD as from RoadRunner; `keptBytes` says a value kept some.
let keptBytes = false;
function headerText(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is the point
  if (!/[^\x00-\x7f]/.test(value)) return value;
  const text = headerTextFromBytes(value);
  // valid UTF-8 has fewer chars than bytes (each non-ASCII char is 2-4 bytes); kept bytes one each
  if (text.length === value.length) keptBytes = true;
  return text;
}

/**
 * A Fastify request → the exchange request. `client` is the request's ClientInfo: the address,
 * scheme, host and origin-form target decided once for the request (the site and the cache key were
 * chosen by the same host, and a trusted proxy's forwarding applied); `body` is what the
 * body parser kept (bytes, or the raw stream for a backend that streams bodies), `form` a form
 * Node parsed into RoadRunner's trees, `script` the script classic mode's resolver chose.
 */
export function toExchangeRequest(
  request: FastifyRequest,
  client: ClientInfo,
  body: Buffer | Chunks | FileBody | Readable | null,
  form: ParsedForm | null,
  script: ExchangeScript | null = null,
): ExchangeRequest {
  const raw = request.raw;
  // raw.headers: what request.headers gives hooks to change in place; not Fastify's getter, which
  // adds what was assigned to request.headers (this plugin's own hint to Fastify's body parsing,
  // the Content-Type of a QUERY without one, is no header of the client's)
  const headers = headerMap(raw.headers, raw.rawHeaders, raw.headers['transfer-encoding'] !== undefined);
  const socket = raw.socket;
  const remoteUser = authenticatedUser(raw);
  return {
    method: raw.method ?? 'GET',
    scheme: client.scheme,
    host: client.host,
    target: client.target,
    protocol: raw.httpVersion === '2.0' ? 'HTTP/2.0' : `HTTP/${raw.httpVersion}`,
    headers,
    remoteAddr: client.remoteAddr,
    remotePort: client.remotePort,
    ...(remoteUser === undefined ? {} : { remoteUser }),
    serverAddr: socket?.localAddress ?? null,
    serverPort: socket?.localPort ?? null,
    body,
    form,
    script,
  };
}

/**
 * The headers PHP gets: `request.headers` as the app's hooks leave it (a header a hook set, added or
 * deleted counts, as with @fastify/reply-from). A field Node joined from repeated lines (two Cookie
 * lines, two X-Forwarded-For lines) and the hooks left alone reaches PHP as the lines the client sent
 * (`rawHeaders`); of a single-value field sent twice (two Authorization lines) Node keeps the first,
 * and so does PHP: what the app checked is what PHP gets. Order is the client's, a header a hook added
 * comes last. No Host (decided once, client-info.ts), no Transfer-Encoding, no Content-Length beside
 * a chunked body, nor a name canonicalHeaderName drops. rawHeaders is read only for a value that may be a join.
 */
function headerMap(current: IncomingHttpHeaders, rawHeaders: readonly string[], chunked: boolean): HeaderMap {
  const headers: HeaderMap = Object.create(null);
  let sent: Record<string, string[]> | null = null;
  keptBytes = false;
  for (const name in current) {
    const value = current[name] as string | readonly string[] | number | undefined;
    if (value === undefined || name.charCodeAt(0) === 58 /* ':' */) continue;
    const canonical = canonicalHeaderName(name);
    if (canonical === '' || canonical === 'Host' || canonical === 'Transfer-Encoding') continue;
    if (chunked && canonical === 'Content-Length') continue;
    let values: string[];
    if (typeof value === 'string') {
      const separator = canonical === 'Cookie' ? '; ' : ', ';
      let lines: string[] | undefined;
      if (value.includes(separator)) {
        sent ??= linesSent(rawHeaders);
        lines = sent[canonical];
      }
      if (lines !== undefined && lines.length > 1 && value === lines.join(separator)) values = lines.map(headerText);
      else values = [headerText(value)];
    } else if (typeof value === 'object') values = value.map((v) => headerText(String(v)));
    else values = [String(value)];
    const list = headers[canonical];
    // a hook that wrote 'X-User' beside the client's 'x-user': both keys name one field
    if (list === undefined) headers[canonical] = values;
    else list.push(...values);
  }
  if (keptBytes) markKeptBytes(headers);
  // a header named __proto__ has no place in Node's object (it would be its prototype), nor in PHP's:
  // its "_" drops it, as every name with one
  return headers;
}

/** The lines the client sent, by canonical name. */
function linesSent(rawHeaders: readonly string[]): Record<string, string[]> {
  const sent: Record<string, string[]> = Object.create(null);
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const canonical = canonicalHeaderName(rawHeaders[i]!);
    const list = sent[canonical];
    if (list === undefined) sent[canonical] = [rawHeaders[i + 1]!];
    else list.push(rawHeaders[i + 1]!);
  }
  return sent;
}

/**
 * What a warm-up sends before any client (num_workers: auto's probe worker): GET `path` from
 * localhost, with `script` when a classic site resolved one.
 */
export function warmupExchangeRequest(path: string, script?: ExchangeScript): ExchangeRequest {
  return {
    method: 'GET',
    scheme: 'http',
    host: 'localhost',
    target: path,
    protocol: 'HTTP/1.1',
    headers: { 'User-Agent': ['warmpool-warmup'] },
    remoteAddr: '127.0.0.1',
    remotePort: null,
    serverAddr: null,
    serverPort: null,
    body: null,
    form: null,
    ...(script === undefined ? {} : { script }),
  };
}
