// The request methods PHP is asked for. Fastify routes only the methods it knows (GET, HEAD,
// TRACE, DELETE, OPTIONS, PATCH, PUT, POST, QUERY); a WebDAV client's PROPFIND or MKCOL (Nextcloud,
// CalDAV, CardDAV) or a cache plugin's PURGE got a 404 without PHP, where nginx passes them on.
import { type IncomingHttpHeaders, METHODS } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';

/**
 * The methods routed to PHP (and to proxied upstreams): every one Node's HTTP/1 parser takes, but
 * CONNECT (a tunnel: Node never makes it a request) and TRACE (nginx refuses it: echoed back, it
 * shows a script's cookies to other origins).
 */
export const REQUEST_METHODS: readonly string[] = METHODS.filter(
  (method) => method !== 'CONNECT' && method !== 'TRACE',
);

/**
 * Makes Fastify route every one of REQUEST_METHODS, each new one with a body (read as a POST's).
 * Methods the app already knows keep their settings, so a host app's own choices stand and nothing
 * is added twice.
 */
export function addRequestMethods(app: FastifyInstance): void {
  const known = new Set(app.supportedMethods);
  for (const method of REQUEST_METHODS) if (!known.has(method)) app.addHttpMethod(method, { hasBody: true });
}

/**
 * Whether a request carries a body Fastify left unread: it reads none for a method it counts as
 * bodyless (GET), where nginx passes any body on to PHP.
 */
export function hasUnreadBody(request: FastifyRequest): boolean {
  return request.body === undefined && declaresBody(request.raw.headers);
}

/** Whether a request's head says a body follows: a Transfer-Encoding, or a Content-Length other than 0. */
export function declaresBody(headers: IncomingHttpHeaders): boolean {
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}

/**
 * Fastify refuses a QUERY without Content-Type (400, JSON) before any route runs; PHP decides, as
 * behind nginx. Fastify alone is told the body's type: PHP's CONTENT_TYPE comes from the raw head.
 */
export function acceptQueryWithoutContentType(app: FastifyInstance): void {
  app.addHook('onRequest', (request, _reply, done) => {
    if (request.method === 'QUERY' && request.headers['content-type'] === undefined) {
      request.headers = { 'content-type': 'application/octet-stream' };
    }
    done();
  });
}
