// The CGI/FastCGI params of one request, as nginx's fastcgi_params plus
// `fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name` send them (RFC 3875 §4.1 with
// the extras PHP apps read). Which script runs is decided before (fastify's script-resolver); this
// only writes it down.

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
    ['SERVER_SOFTWARE', input.serverSoftware ?? 'warmpool'],
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
    ['SERVER_NAME', input.serverName ?? hostWithoutPort(host)],
    ['SERVER_ADDR', input.serverAddress === null ? '' : plainAddress(input.serverAddress)],
    ['SERVER_PORT', input.serverPort === null ? '' : String(input.serverPort)],
    ['REMOTE_ADDR', plainAddress(input.clientAddress)],
    ['REMOTE_PORT', input.clientPort === null ? '' : String(input.clientPort)],
    // php-cgi refuses to run a script without it (cgi.force_redirect, on by default)
    ['REDIRECT_STATUS', '200'],
  ]);
  // RFC 3875 §4.1.6: PATH_TRANSLATED only when there is a PATH_INFO
  if (pathInfo !== '') {
    params.set('PATH_INFO', pathInfo);
    params.set('PATH_TRANSLATED', input.documentRoot + pathInfo);
  }
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
