// A Fastify request → the exchange request every backend takes (the one seam to PHP: no wire
// protocol here). Header names are canonical as RoadRunner sends them; Host is decided once
// (network/client-info.ts).
import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import type { Chunks, ExchangeRequest, ExchangeScript, HeaderMap, ParsedForm } from '@warmpool/pool';
import type { ClientInfo } from '../network/client-info.js';

const canonicalCache = new Map<string, string>();

/** Go's CanonicalMIMEHeaderKey, as RoadRunner sends header names: `x-custom-id` → `X-Custom-Id`. */
export function canonicalHeaderName(name: string): string {
  let canonical = canonicalCache.get(name);
  if (canonical !== undefined) return canonical;
  canonical = name.toLowerCase().replace(/(^|-)([a-z])/g, (_, dash: string, ch: string) => dash + ch.toUpperCase());
  if (canonicalCache.size < 1000) canonicalCache.set(name, canonical);
  return canonical;
}

// Node decodes header bytes as latin1; PHP expects the original bytes, which are UTF-8 in practice.
// Re-decode only values that contain non-ASCII (rare). Invalid UTF-8 becomes U+FFFD (documented).
function headerText(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is the point
  return /[^\x00-\x7f]/.test(value) ? Buffer.from(value, 'latin1').toString('utf8') : value;
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
  body: Buffer | Chunks | Readable | null,
  form: ParsedForm | null,
  script: ExchangeScript | null = null,
): ExchangeRequest {
  const raw = request.raw;
  const rawHeaders = raw.rawHeaders;
  const headers: HeaderMap = Object.create(null);
  const chunked = raw.headers['transfer-encoding'] !== undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    const canonical = canonicalHeaderName(name);
    if (canonical === 'Host') continue;
    if (canonical === 'Transfer-Encoding' || (chunked && canonical === 'Content-Length')) continue;
    const text = headerText(value);
    const list = headers[canonical];
    if (list === undefined) headers[canonical] = [text];
    else list.push(text);
  }
  const socket = raw.socket;
  return {
    method: raw.method ?? 'GET',
    scheme: client.scheme,
    host: client.host,
    target: client.target,
    protocol: raw.httpVersion === '2.0' ? 'HTTP/2.0' : `HTTP/${raw.httpVersion}`,
    headers,
    remoteAddr: client.remoteAddr,
    remotePort: client.remotePort,
    serverAddr: socket?.localAddress ?? null,
    serverPort: socket?.localPort ?? null,
    body,
    form,
    script,
  };
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
