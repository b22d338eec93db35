// The CGI/FastCGI params of one request, as nginx's fastcgi_params plus
// `fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name` send them (RFC 3875 §4.1 with
// the extras PHP apps read). Which script runs is decided before (fastify's script-resolver); this
// only writes it down.
import { FastCgiParamTooLargeError } from '../errors.js';
import { headerWireValue } from '../protocol/header-fields.js';

export interface FastCgiParamsInput {
  method: string;
  scheme: 'http' | 'https';
  /** The request target as received, query included: "/blog/?p=1" (REQUEST_URI). */
  requestUri: string;
  /** "HTTP/1.1", "HTTP/2.0" (SERVER_PROTOCOL). */
  protocol: string;
  /** Request headers as Node gives them: lower-case names, arrays for repeated ones. */
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  /** The Host to use when the request has no Host header (HTTP/2's :authority). */
  host?: string;
  clientAddress: string;
  /** REMOTE_USER: the user the server let in (auth_basic); default "" */
  remoteUser?: string;
  /** null: unknown (a unix socket peer); REMOTE_PORT is then empty */
  clientPort: number | null;
  serverAddress: string | null;
  serverPort: number | null;
  /** SERVER_NAME; default: the Host without its port. */
  serverName?: string;
  /** Absolute, without a trailing slash: "/srv/www". */
  documentRoot: string;
  /** The script's URL path: "/index.php" (SCRIPT_NAME). */
  scriptName: string;
  /** The script's file: "/srv/www/index.php" (SCRIPT_FILENAME). */
  scriptFilename: string;
  /** What follows the script in the path: "/foo/bar" for "/index.php/foo/bar"; "" or absent: none. */
  pathInfo?: string;
  /** The path after rewrites (nginx $document_uri); default scriptName + pathInfo. */
  documentUri?: string;
  /** QUERY_STRING; default: the query of requestUri (a try_files fallback keeps the original). */
  queryString?: string;
  /** Default: the Content-Type header. */
  contentType?: string;
  /** Default: the Content-Length header. */
  contentLength?: number;
  /** Default: "warmpool". */
  serverSoftware?: string;
  /** Added last, replacing params of the same name (fastcgi_param lines in a config). */
  extra?: Readonly<Record<string, string>>;
  /**
   * How header values hold their bytes: "latin1" (default), one char per byte as Node's HTTP layer
   * gives them; "utf8", Unicode text (an exchange request, whose values were decoded as UTF-8).
   */
  headerText?: 'latin1' | 'utf8';
}

export type FastCgiParamList = Array<[name: string, value: string | Buffer]>;

// nginx's ignore_invalid_headers: letters, digits and "-" only; with underscores_in_headers off
// (the default) a name with "_" is dropped too, so "X-Forwarded-For" and "X_Forwarded_For" cannot
// both become HTTP_X_FORWARDED_FOR. Pseudo-headers (":authority") never pass.
function isValidHeaderName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d;
    if (!ok) return false;
  }
  return true;
}

/** "::ffff:127.0.0.1" (an IPv4 peer on a dual-stack socket) → "127.0.0.1", as nginx reports it. */
function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** "example.com:8080" → "example.com"; "[::1]:8080" → "[::1]". */
function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

/**
 * SERVER_NAME from the Host: without its port, in lower case and without a trailing dot, so that
 * on a site with `hosts` it is one of them as configured ("Blog.Example.COM." is blog.example.com).
 */
function serverNameOf(host: string): string {
  const name = hostWithoutPort(host).toLowerCase();
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/** An absolute-form target ("http://host/x?y") as the origin-form PHP expects ("/x?y"). */
function originForm(target: string): string {
  const scheme = /^https?:\/\/[^/?#]*/i.exec(target);
  if (scheme === null) return target;
  const rest = target.slice(scheme[0].length);
  return rest.startsWith('/') ? rest : `/${rest}`;
}

/** Header text as the bytes PHP gets: latin1 chars are the bytes themselves, Unicode text is UTF-8. */
function headerValue(value: string, text: 'latin1' | 'utf8' = 'latin1'): string | Buffer {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0x7f) return Buffer.from(value, text);
  return value;
}

function firstHeader(value: string | readonly string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : value?.[0];
}

/**
 * The params, in a stable order, each name once: the CGI variables, then the request headers as
 * HTTP_* (never HTTP_PROXY: httpoxy), then `extra`.
 */
export function buildFastCgiParams(input: FastCgiParamsInput): FastCgiParamList {
  const requestUri = originForm(input.requestUri);
  const question = requestUri.indexOf('?');
  const queryString = input.queryString ?? (question === -1 ? '' : requestUri.slice(question + 1));
  const pathInfo = input.pathInfo ?? '';
  const host = firstHeader(input.headers.host) ?? input.host ?? '';
  const contentType = input.contentType ?? firstHeader(input.headers['content-type']) ?? '';
  const contentLength =
    input.contentLength !== undefined
      ? String(input.contentLength)
      : (firstHeader(input.headers['content-length']) ?? '');

  const params = new Map<string, string | Buffer>([
    ['GATEWAY_INTERFACE', 'CGI/1.1'],
    ['SERVER_SOFTWARE', input.serverSoftware ?? DEFAULT_SERVER_SOFTWARE],
    ['REQUEST_METHOD', input.method],
    ['REQUEST_SCHEME', input.scheme],
    ['SERVER_PROTOCOL', input.protocol],
    ['REQUEST_URI', requestUri],
    ['DOCUMENT_URI', input.documentUri ?? input.scriptName + pathInfo],
    ['QUERY_STRING', queryString],
    ['DOCUMENT_ROOT', input.documentRoot],
    ['SCRIPT_NAME', input.scriptName],
    ['SCRIPT_FILENAME', input.scriptFilename],
    ['CONTENT_TYPE', headerValue(contentType, input.headerText)],
    ['CONTENT_LENGTH', contentLength],
    ['SERVER_NAME', input.serverName ?? serverNameOf(host)],
    ['SERVER_ADDR', input.serverAddress === null ? '' : plainAddress(input.serverAddress)],
    ['SERVER_PORT', input.serverPort === null ? '' : String(input.serverPort)],
    ['REMOTE_ADDR', plainAddress(input.clientAddress)],
    ['REMOTE_PORT', input.clientPort === null ? '' : String(input.clientPort)],
    // nginx's fastcgi_params sends $remote_user: the name in the client's Basic Authorization
    // header, checked or not. Apps read it without isset() (DokuWiki's feed.php), and SSO setups
    // trust it as the signed-in user: here only a user auth_basic checked, else empty
    ['REMOTE_USER', input.remoteUser ?? ''],
    // php-cgi refuses to run a script without it (cgi.force_redirect, on by default)
    ['REDIRECT_STATUS', '200'],
  ]);
  // PATH_INFO always, empty without one, as Debian's fastcgi-php.conf sends it: apps read it
  // without isset(); RFC 3875 §4.1.6: PATH_TRANSLATED only when there is a PATH_INFO
  params.set('PATH_INFO', pathInfo);
  if (pathInfo !== '') params.set('PATH_TRANSLATED', input.documentRoot + pathInfo);
  if (input.scheme === 'https') params.set('HTTPS', 'on');

  for (const name in input.headers) {
    const value = input.headers[name];
    if (value === undefined || !isValidHeaderName(name)) continue;
    const lower = name.toLowerCase();
    if (lower === 'proxy') continue; // httpoxy: HTTP_PROXY would pass for the proxy setting of curl and Guzzle
    const joined = typeof value === 'string' ? value : value.join(lower === 'cookie' ? '; ' : ', ');
    params.set(`HTTP_${lower.toUpperCase().replaceAll('-', '_')}`, headerValue(joined, input.headerText));
  }
  if (!params.has('HTTP_HOST') && host !== '') params.set('HTTP_HOST', host);

  if (input.extra !== undefined) for (const name of Object.keys(input.extra)) params.set(name, input.extra[name]!);
  return [...params];
}

// ---- the same params, encoded straight into bytes ----

/** A param name with its bytes; `seen` marks the request (encodeFastCgiParams call) that used it last. */
interface ParamName {
  readonly text: string;
  readonly bytes: Uint8Array;
  seen: number;
}

function paramName(text: string): ParamName {
  return { text, bytes: Buffer.from(text, 'utf8'), seen: 0 };
}

const GATEWAY_INTERFACE = paramName('GATEWAY_INTERFACE');
const SERVER_SOFTWARE = paramName('SERVER_SOFTWARE');
/**
 * SERVER_SOFTWARE unless set: apps detect the server by it, and they must take warmpool for what
 * its FastCGI side is, nginx's (fastcgi_params, try_files): WordPress looks for "nginx" in it and
 * otherwise decides that pretty permalinks cannot work, offering only /index.php/... links (a
 * WordPress probe; Site Health: "pretty permalinks supported: No").
 */
export const DEFAULT_SERVER_SOFTWARE = 'warmpool (nginx-compatible)';
const REQUEST_METHOD = paramName('REQUEST_METHOD');
const REQUEST_SCHEME = paramName('REQUEST_SCHEME');
const SERVER_PROTOCOL = paramName('SERVER_PROTOCOL');
const REQUEST_URI = paramName('REQUEST_URI');
const DOCUMENT_URI = paramName('DOCUMENT_URI');
const QUERY_STRING = paramName('QUERY_STRING');
const DOCUMENT_ROOT = paramName('DOCUMENT_ROOT');
const SCRIPT_NAME = paramName('SCRIPT_NAME');
const SCRIPT_FILENAME = paramName('SCRIPT_FILENAME');
const CONTENT_TYPE = paramName('CONTENT_TYPE');
const CONTENT_LENGTH = paramName('CONTENT_LENGTH');
const SERVER_NAME = paramName('SERVER_NAME');
const SERVER_ADDR = paramName('SERVER_ADDR');
const SERVER_PORT = paramName('SERVER_PORT');
const REMOTE_ADDR = paramName('REMOTE_ADDR');
const REMOTE_PORT = paramName('REMOTE_PORT');
const REMOTE_USER = paramName('REMOTE_USER');
const REDIRECT_STATUS = paramName('REDIRECT_STATUS');
const PATH_INFO = paramName('PATH_INFO');
const PATH_TRANSLATED = paramName('PATH_TRANSLATED');
const HTTPS = paramName('HTTPS');

/** header name as given → its HTTP_* param (null: never sent), shared by every request */
const headerParams = new Map<string, ParamName | null>();
/** HTTP_* text → its one ParamName, so that "X-A" and "x-a" meet at the same one */
const httpParams = new Map<string, ParamName>([['HTTP_HOST', paramName('HTTP_HOST')]]);
const HTTP_HOST = httpParams.get('HTTP_HOST')!;
const MAX_CACHED_HEADER_NAMES = 1000;

function headerParam(name: string): ParamName | null {
  let param = headerParams.get(name);
  if (param !== undefined) return param;
  param = null;
  const lower = name.toLowerCase();
  // httpoxy: HTTP_PROXY would pass for the proxy setting of curl and Guzzle
  if (isValidHeaderName(name) && lower !== 'proxy') {
    const text = `HTTP_${lower.toUpperCase().replaceAll('-', '_')}`;
    param = httpParams.get(text) ?? paramName(text);
    if (httpParams.size < MAX_CACHED_HEADER_NAMES) httpParams.set(text, param);
  }
  if (headerParams.size < MAX_CACHED_HEADER_NAMES) headerParams.set(name, param);
  return param;
}

/**
 * A request's params already encoded (FastCGI name-value pairs, back to back), with the offsets
 * where a pair starts a new PARAMS record; records.ts writes them as records.
 */
export class EncodedParams {
  constructor(
    readonly bytes: Buffer,
    /** pair offsets that start a record after the first (a request with over 64 KiB of params) */
    readonly breaks: readonly number[],
  ) {}
}

const MAX_RECORD_CONTENT = 0xfff8; // records.ts MAX_WRITE_CONTENT_BYTES (no import: records imports us)
let scratch = Buffer.allocUnsafeSlow(16 * 1024);
let request = 0;

/** Appends pairs to the scratch buffer; a pair over a record's room starts the next record. */
class PairWriter {
  offset = 0;
  #recordStart = 0;
  breaks: number[] = [];
  readonly #extra: Map<string, string> | null;

  constructor(extra: Readonly<Record<string, string>> | undefined) {
    if (extra === undefined) {
      this.#extra = null;
      return;
    }
    const names = Object.keys(extra);
    this.#extra = names.length === 0 ? null : new Map(names.map((name) => [name, extra[name]!]));
  }

  /** A value as UTF-8 (latin1: one byte per char, for header text as Node's HTTP layer gives it). */
  pair(name: ParamName, value: string, latin1 = false): void {
    const replacement = this.#extra?.get(name.text);
    if (replacement !== undefined) {
      // an extra param of the same name takes this one's place
      value = replacement;
      this.#extra!.delete(name.text);
      latin1 = false;
    }
    const nameBytes = name.bytes;
    const nameLength = nameBytes.length;
    const worst = 8 + nameLength + value.length * 3;
    if (this.offset + worst > scratch.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(scratch.length * 2, this.offset + worst));
      scratch.copy(grown, 0, 0, this.offset);
      scratch = grown;
    }
    const out = scratch;
    const start = this.offset;
    const namePrefix = nameLength < 0x80 ? 1 : 4;
    // a value of 128 chars or more is 128 bytes or more; a shorter one is too only when not ASCII
    let valuePrefix = value.length < 0x80 ? 1 : 4;
    let at = start + namePrefix + valuePrefix;
    for (let i = 0; i < nameLength; i++) out[at + i] = nameBytes[i]!;
    at += nameLength;
    let valueLength = writeAscii(out, at, value);
    if (valueLength < 0) valueLength = latin1 ? out.write(value, at, 'latin1') : writeText(out, at, value);
    if (valuePrefix === 1 && valueLength >= 0x80) {
      out.copyWithin(start + namePrefix + 4, start + namePrefix + 1, at + valueLength);
      valuePrefix = 4;
    }
    let p = writePairLength(out, start, nameLength);
    p = writePairLength(out, p, valueLength, valuePrefix);
    const end = start + namePrefix + valuePrefix + nameLength + valueLength;
    const pairBytes = end - start;
    if (pairBytes > MAX_RECORD_CONTENT) {
      throw new FastCgiParamTooLargeError(
        `FastCGI param ${name.text} is ${pairBytes} bytes with its name; one PARAMS record holds ${MAX_RECORD_CONTENT}`,
        { name: name.text, bytes: pairBytes },
      );
    }
    if (end - this.#recordStart > MAX_RECORD_CONTENT) {
      this.breaks.push(start);
      this.#recordStart = start;
    }
    this.offset = end;
  }

  /** The extra params that replaced none of ours, in their order. */
  rest(): void {
    const extra = this.#extra;
    if (extra === null) return;
    for (const [name, value] of [...extra]) this.pair(paramName(name), value);
  }

  done(): EncodedParams {
    const bytes = Buffer.allocUnsafe(this.offset);
    scratch.copy(bytes, 0, 0, this.offset);
    return new EncodedParams(bytes, this.breaks);
  }
}

/**
 * Text as UTF-8, but the bytes a request header kept (headerTextFromBytes: lone surrogates
 * U+DC80-U+DCFF) as themselves: PHP gets a Latin-1 header value byte for byte, as behind nginx.
 */
function writeText(out: Buffer, at: number, text: string): number {
  return KEPT_BYTE.test(text) ? out.write(headerWireValue(text), at, 'latin1') : out.write(text, at, 'utf8');
}

const KEPT_BYTE = /[\udc80-\udcff]/;

/** Copies an ASCII string; -1 (nothing to keep) at the first char above 0x7f. */
function writeAscii(out: Buffer, at: number, text: string): number {
  const length = text.length;
  if (length > 256) {
    // long values (a cookie jar): one call into C++ that also says whether it was ASCII
    return Buffer.byteLength(text, 'utf8') === length ? out.write(text, at, 'latin1') : -1;
  }
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) return -1;
    out[at + i] = c;
  }
  return length;
}

function writePairLength(out: Buffer, at: number, length: number, size = length < 0x80 ? 1 : 4): number {
  if (size === 1) {
    out[at] = length;
    return at + 1;
  }
  out.writeUInt32BE((length | 0x80000000) >>> 0, at);
  return at + 4;
}

/**
 * buildFastCgiParams' params, encoded as FastCGI pairs in one pass: no list of pairs, no map, the
 * HTTP_* name of each header looked up once per process. Same names, values, bytes and order (a
 * request with two headers that make the same HTTP_* name, which an exchange request never has,
 * takes buildFastCgiParams' way).
 */
export function encodeFastCgiParams(input: FastCgiParamsInput): EncodedParams {
  const headers = input.headers;
  const id = ++request;
  for (const name in headers) {
    if (headers[name] === undefined) continue;
    const param = headerParam(name);
    if (param === null) continue;
    if (param.seen === id) return encodeListed(buildFastCgiParams(input));
    param.seen = id;
  }
  const latin1 = (input.headerText ?? 'latin1') === 'latin1';
  const requestUri = originForm(input.requestUri);
  const question = requestUri.indexOf('?');
  const queryString = input.queryString ?? (question === -1 ? '' : requestUri.slice(question + 1));
  const pathInfo = input.pathInfo ?? '';
  const host = firstHeader(headers.host) ?? input.host ?? '';
  const contentType = input.contentType ?? firstHeader(headers['content-type']) ?? '';
  const contentLength =
    input.contentLength !== undefined ? String(input.contentLength) : (firstHeader(headers['content-length']) ?? '');

  const w = new PairWriter(input.extra);
  w.pair(GATEWAY_INTERFACE, 'CGI/1.1');
  w.pair(SERVER_SOFTWARE, input.serverSoftware ?? DEFAULT_SERVER_SOFTWARE);
  w.pair(REQUEST_METHOD, input.method);
  w.pair(REQUEST_SCHEME, input.scheme);
  w.pair(SERVER_PROTOCOL, input.protocol);
  w.pair(REQUEST_URI, requestUri);
  w.pair(DOCUMENT_URI, input.documentUri ?? input.scriptName + pathInfo);
  w.pair(QUERY_STRING, queryString);
  w.pair(DOCUMENT_ROOT, input.documentRoot);
  w.pair(SCRIPT_NAME, input.scriptName);
  w.pair(SCRIPT_FILENAME, input.scriptFilename);
  w.pair(CONTENT_TYPE, contentType, latin1);
  w.pair(CONTENT_LENGTH, contentLength);
  w.pair(SERVER_NAME, input.serverName ?? serverNameOf(host));
  w.pair(SERVER_ADDR, input.serverAddress === null ? '' : plainAddress(input.serverAddress));
  w.pair(SERVER_PORT, input.serverPort === null ? '' : String(input.serverPort));
  w.pair(REMOTE_ADDR, plainAddress(input.clientAddress));
  w.pair(REMOTE_PORT, input.clientPort === null ? '' : String(input.clientPort));
  w.pair(REMOTE_USER, input.remoteUser ?? '');
  w.pair(REDIRECT_STATUS, '200');
  w.pair(PATH_INFO, pathInfo);
  if (pathInfo !== '') w.pair(PATH_TRANSLATED, input.documentRoot + pathInfo);
  if (input.scheme === 'https') w.pair(HTTPS, 'on');
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const param = headerParam(name);
    if (param === null) continue;
    const joined =
      typeof value === 'string'
        ? value
        : value.length === 1
          ? value[0]!
          : value.join(name.length === 6 && name.toLowerCase() === 'cookie' ? '; ' : ', ');
    w.pair(param, joined, latin1);
  }
  if (HTTP_HOST.seen !== id && host !== '') w.pair(HTTP_HOST, host);
  w.rest();
  return w.done();
}

/** A list of pairs (the rare request encodeFastCgiParams leaves to buildFastCgiParams) as EncodedParams. */
function encodeListed(params: FastCgiParamList): EncodedParams {
  const w = new PairWriter(undefined);
  for (const [name, value] of params) {
    if (typeof value === 'string') w.pair(paramName(name), value);
    else w.pair(paramName(name), value.toString('latin1'), true);
  }
  return w.done();
}
