import type { FastifyRequest } from 'fastify';
import type { HeaderMap, HttpRequestContext } from '@warmpool/pool/protocol';
import type { ClientInfo } from '../network/trusted-subnets.js';

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

/** Cookie header → name → value (URL-unescaped; undecodable ones dropped; last wins), as RR does. */
export function parseCookies(header: string | undefined): Record<string, string> {
  // Null prototype: a cookie or header named __proto__ is just a key, never the object's prototype.
  const cookies: Record<string, string> = Object.create(null);
  if (header === undefined || header === '') return cookies;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name === '') continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      cookies[name] = value.includes('%') ? decodeURIComponent(value) : value;
    } catch {
      // RR drops cookies whose value fails to unescape
    }
  }
  return cookies;
}

function isAbsoluteForm(url: string): boolean {
  return url.charCodeAt(0) !== 47 /* '/' */ && /^[a-z][a-z0-9+.-]*:\/\//i.test(url);
}

/**
 * A Fastify request → the RoadRunner HTTP request context (PROTOCOL.md §5.3). `client` is who the
 * request is from after trusted-subnet rules (address, scheme, and host when a proxy forwarded it).
 */
export function toRequestContext(request: FastifyRequest, client: ClientInfo): HttpRequestContext {
  const raw = request.raw;
  const rawHeaders = raw.rawHeaders;
  const headers: HeaderMap = Object.create(null);
  let host = '';
  let cookieHeader: string | undefined;
  const chunked = raw.headers['transfer-encoding'] !== undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':authority') host = value;
      continue;
    }
    const canonical = canonicalHeaderName(name);
    if (canonical === 'Host') {
      host = value;
      continue;
    }
    if (canonical === 'Transfer-Encoding' || (chunked && canonical === 'Content-Length')) continue;
    if (canonical === 'Cookie') cookieHeader = cookieHeader === undefined ? value : `${cookieHeader}; ${value}`;
    const text = headerText(value);
    const list = headers[canonical];
    if (list === undefined) headers[canonical] = [text];
    else list.push(text);
  }
  const url = raw.url ?? '/';
  const q = url.indexOf('?');
  const version = raw.httpVersion === '2.0' ? 'HTTP/2.0' : `HTTP/${raw.httpVersion}`;
  return {
    remoteAddr: client.remoteAddr,
    protocol: version,
    method: raw.method ?? 'GET',
    // An absolute-form request-target is used as given (RR); otherwise scheme://host + target.
    uri: (isAbsoluteForm(url) ? url : `${client.proto}://${client.host ?? host}${url}`).replace(/[\r\n]/g, ''),
    headers,
    cookies: parseCookies(cookieHeader),
    rawQuery: q < 0 ? '' : url.slice(q + 1).replace(/[\r\n]/g, ''),
    parsed: false,
    uploads: null,
    attributes: null,
  };
}
