/**
 * The headers of one connection, not of a response (RFC 9110 §7.6.1), as Node lists them for
 * HTTP/2: a backend's (PHP's, an upstream's) never reach the client. Node frames each response
 * itself, and on HTTP/2 throws on a response that carries one (ERR_HTTP2_INVALID_CONNECTION_HEADERS):
 * out of a file stream's write that ended the process; a PHP reply with Proxy-Connection or TE, or
 * a Node upstream's Keep-Alive on an X-Accel-Redirect, took every site down.
 */
export const CONNECTION_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'http2-settings',
]);

/**
 * What of a backend's reply never reaches the client: its connection's headers, and Trailer (no
 * trailers follow a backend's body, and Node refuses the header on a reply it does not chunk).
 */
export const REPLY_HOP_HEADERS: ReadonlySet<string> = new Set([...CONNECTION_HEADERS, 'trailer']);
