// Paths whose escapes are well formed but whose bytes are not UTF-8 once decoded ("/p/%FF",
// "/%E9t%E9" in Latin-1, the overlong "/%c0%ae"). nginx decodes them to bytes and passes them to
// the front controller with $request_uri as sent; Fastify's router (find-my-way) decodes paths
// with decodeURI, which throws on them, and answered its JSON 400 FST_ERR_BAD_URL before any hook
// ran. Fastify is given a routing form instead (the bytes that do not decode escaped as "%25"),
// and the client-info hook (the first onRequest) puts the target back exactly as sent, so access
// rules, the static layer, the classic script resolver and PHP's REQUEST_URI all read the real
// one. The static layer and the resolver never pick a file by such a path (file-policy.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ClientInfoResolver } from '@warmpool/fastify';

/** A run of escapes ("%C3%A9%FF"), decoded as a whole. */
const ESCAPE_RUN = /(?:%[0-9A-Fa-f]{2})+/g;
/** A "%" not followed by two hex digits: a broken escape, 400 as nginx answers it. */
const BROKEN_ESCAPE = /%(?![0-9A-Fa-f]{2})/;

/**
 * The target the router is given: the target itself, unless its path holds bytes that are not
 * UTF-8, whose escapes then become "%25XX" (routed as the catch-all's literal text). A broken
 * escape ("%zz") is left for the router's onBadUrl, which answers 400.
 */
export function routableTarget(target: string): string {
  let end = target.indexOf('?');
  const hash = target.indexOf('#');
  if (hash !== -1 && (end === -1 || hash < end)) end = hash;
  const path = end === -1 ? target : target.slice(0, end);
  if (!path.includes('%') || BROKEN_ESCAPE.test(path) || decodes(path, decodeURI)) return target;
  const routable = path.replace(ESCAPE_RUN, (run) =>
    decodes(run, decodeURIComponent) ? run : run.replaceAll('%', '%25'),
  );
  return end === -1 ? routable : routable + target.slice(end);
}

function decodes(text: string, decode: (text: string) => string): boolean {
  try {
    decode(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * The router's onBadUrl (a target it cannot route: a broken escape, an asterisk-form or other
 * non-path target): a plain-text 400 as warmpool's other 400s, saying what was wrong, instead of
 * Fastify's JSON. It runs before any hook, so an ambiguous Host is named here too.
 */
export function createBadUrlAnswer(
  client: ClientInfoResolver,
  /** logs the answer (http.access_log, made after the router: read on each call) */
  log: (req: IncomingMessage, res: ServerResponse) => void = () => {},
): (path: string, req: IncomingMessage, res: ServerResponse) => void {
  return (_path, req, res) => {
    log(req, res);
    const problem =
      client.of(req).problem ?? 'the path holds a malformed percent-encoding (a "%" not followed by two hex digits)';
    const body = `Bad Request: ${problem}\n`;
    res.writeHead(400, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      // as the client-info hook's 400: a bad request closes an HTTP/1 connection, as nginx does
      ...(req.httpVersionMajor === 1 ? { connection: 'close' } : {}),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
