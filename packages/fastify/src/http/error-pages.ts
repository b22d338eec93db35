// nginx's `error_page 502 503 504 /50x.html;`: the answers warmpool gives itself for a status (PHP
// down or timed out, a queue full, a body too large, an access rule's 403, a file not found) are the
// operator's pages instead of a line of text. PHP's own answers pass untouched, its themed 404 page
// included (nginx's fastcgi_intercept_errors is off by default too). Off unless `error_pages` is
// set: a feature that is off costs nothing per request.
import { readFileSync, statSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { extname, isAbsolute } from 'node:path';
import { Readable } from 'node:stream';
import { isBackendReply } from './backend-reply.js';
import { shortBodyOf } from './declared-length.js';
import { statusOf } from './status.js';
import type { FastifyError, FastifyInstance } from 'fastify';
import { InvalidOptionError } from '../errors.js';

/** A page is read once, at start, and kept in memory: it must stay small. */
const MAX_PAGE_BYTES = 1024 * 1024;

export interface ErrorPage {
  body: Buffer;
  type: string;
}

/** status → page; null when there are none. */
export type ErrorPages = ReadonlyMap<number, ErrorPage> | null;

/**
 * `error_pages: { "502": "/srv/www/50x.html", ... }`: each a status from 400 to 599 and an absolute
 * path to a readable file, read now (a page that cannot be read fails the start, not a request).
 */
export function resolveErrorPages(option: unknown): ErrorPages {
  if (option === undefined) return null;
  if (option === null || typeof option !== 'object' || Array.isArray(option)) {
    throw new InvalidOptionError('error_pages', `must map statuses to files, like { "502": "/srv/www/50x.html" }`);
  }
  const pages = new Map<number, ErrorPage>();
  for (const [status, file] of Object.entries(option as Record<string, unknown>)) {
    const key = `error_pages.${status}`;
    const code = Number(status);
    if (!/^[45]\d\d$/.test(status)) {
      throw new InvalidOptionError(key, 'is not an error status: name statuses from 400 to 599, like "502"');
    }
    if (typeof file !== 'string' || !isAbsolute(file)) {
      throw new InvalidOptionError(key, `must be an absolute path to a file, got ${JSON.stringify(file)}`);
    }
    pages.set(code, { body: readPage(file, key), type: pageType(file) });
  }
  return pages.size === 0 ? null : pages;
}

function readPage(file: string, key: string): Buffer {
  let size: number;
  try {
    const stats = statSync(file);
    if (!stats.isFile()) throw new InvalidOptionError(key, `"${file}" is not a regular file`);
    size = stats.size;
  } catch (error) {
    if (error instanceof InvalidOptionError) throw error;
    throw new InvalidOptionError(key, `cannot read "${file}": ${(error as Error).message}`);
  }
  if (size > MAX_PAGE_BYTES) {
    throw new InvalidOptionError(key, `"${file}" is ${size} bytes; an error page may be at most 1 MiB`);
  }
  return readFileSync(file);
}

function pageType(file: string): string {
  switch (extname(file).toLowerCase()) {
    case '.txt':
      return 'text/plain; charset=utf-8';
    case '.json':
      return 'application/json; charset=utf-8';
    default:
      return 'text/html; charset=utf-8';
  }
}

/**
 * Sends the page for a status warmpool answered itself. The requests PHP answered
 * (backend-reply.ts) pass as PHP sent them. So do the answers of `opsPaths` (/ready's 503 and its JSON
 * are for a load balancer, not a person). Add it before the routes: its onSend runs before
 * compression's, so a page is compressed like any other body.
 */
export function registerErrorPages(
  app: FastifyInstance,
  pages: ErrorPages,
  opsPaths: readonly (string | null)[],
): void {
  if (pages === null) return;
  const ops = new Set(opsPaths.filter((path) => path !== null));
  app.addHook('onSend', (request, reply, payload, done) => {
    const page = pages.get(reply.statusCode);
    if (page === undefined || isBackendReply(request) || ops.has(request.routeOptions.url ?? '')) {
      return done(null, payload);
    }
    if (payload instanceof Readable) payload.destroy();
    reply.removeHeader('content-length').removeHeader('content-encoding').header('content-type', page.type);
    done(null, page.body);
  });
}

/** Headers that describe a body: not the plain-text error's. */
const REPRESENTATION_HEADERS = [
  'content-encoding',
  'content-length',
  'content-range',
  'etag',
  'last-modified',
  'content-disposition',
];

/**
 * The plugin's own refusals before PHP runs (413 over max_request_size, 431, a malformed form, …)
 * in the shape of its other answers: a plain-text status line ("Payload Too Large"), or with `debug`
 * the code and message, instead of Fastify's JSON with an internal code in it (what a browser user
 * saw of a phpMyAdmin import over the limit). Only while the app has no error handler of its own:
 * one set before the plugin's registration still gets these errors, codes and all. Other errors
 * (an app hook's) keep Fastify's answer.
 */
export function registerPlainErrors(app: FastifyInstance, debug: boolean): void {
  const parent = app.errorHandler;
  if (parent.name !== 'defaultErrorHandler') return;
  app.setErrorHandler(function plainErrors(this: FastifyInstance, thrown: FastifyError, request, reply) {
    // a body cut short, whatever error its stream's consumer reported for it
    const error = (shortBodyOf(reply) as FastifyError | null) ?? thrown;
    // a backend's failure reaches here when a streamed reply failed before its first byte (a
    // worker that sent its head alone, then threw or ran past exec_ttl; an upstream silent after
    // its head): Fastify's JSON showed its message, worker error text with its stack trace and
    // secrets (the streaming probe read a database password there, debug off). Its status is the
    // pool's table's, or an upstream's 502 / 504.
    const backend = error.statusCode === undefined && isBackendFailure(error);
    const status = error.statusCode ?? (backend ? backendStatus(error) : undefined);
    // send's own client errors (http-errors, `expose`: a 416 for a range past the file) have no code
    const exposed = (error as { expose?: unknown }).expose === true && status !== undefined && status < 500;
    const code = error.code ?? (exposed ? 'WP_FASTIFY_STATIC' : undefined);
    if (
      typeof code !== 'string' ||
      !(backend || code.startsWith('WP_') || code.startsWith('FST_ERR_CTP_')) ||
      status === undefined ||
      status < 400 ||
      status > 599
    )
      return parent.call(this, error, request, reply);
    // the client's doing (a 4xx, a Transfer-Encoding or HTTP version it may not use): an info line,
    // no stack, as nginx logs a bad request; anything else is ours to look at
    if (status < 500 || status === 501 || status === 505) reply.log.info({ code, statusCode: status }, error.message);
    else reply.log.error({ err: error }, error.message);
    // Fastify marks every body-parsing error `Connection: close`: HTTP/2 has no such header (Node
    // drops it with an UnsupportedWarning on stderr, a stray line in a JSON log)
    if ('stream' in request.raw) reply.removeHeader('connection');
    // a reply that failed before its head went out (a short body behind a compressor) had its
    // representation's headers set: a plain-text error under Content-Encoding: gzip is undecodable
    for (const name of REPRESENTATION_HEADERS) reply.removeHeader(name);
    // a backend's failed reply had its head set: none of it describes this error (its
    // Cache-Control would have a CDN keep the 500, its cookies would be set by it)
    if (backend) {
      for (const name of Object.keys(reply.getHeaders())) if (name !== 'x-request-id') reply.removeHeader(name);
      // a proxied reply's head goes straight onto the raw response
      if (!reply.raw.headersSent)
        for (const name of reply.raw.getHeaderNames()) if (name !== 'x-request-id') reply.raw.removeHeader(name);
    }
    // send's errors carry their headers, as Fastify's own handler sets them: a 416's Content-Range
    // ("bytes */SIZE", the file's length)
    const own = (error as { headers?: Record<string, string> }).headers;
    if (exposed && own !== undefined) for (const name in own) reply.header(name, own[name]);
    if (code === 'WP_FASTIFY_SHORT_BODY' && !('stream' in request.raw)) reply.header('connection', 'close');
    reply.code(status).type('text/plain; charset=utf-8');
    return reply.send(debug ? `${code}: ${error.message}\n` : `${STATUS_CODES[status] ?? 'Error'}\n`);
  });
}

/** A pool's error (its codes start with WP_) or undici's for an upstream. */
function isBackendFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('WP_') || code.startsWith('UND_ERR'));
}

/** Undici's codes for an upstream that went silent: the proxy's 504, as before its head. */
const UPSTREAM_TIMEOUTS = new Set(['UND_ERR_BODY_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT']);

/** The status of a backend's failure that carries none: an upstream's 504 or 502, else the pool's table. */
function backendStatus(error: unknown): number {
  const code = String((error as { code?: unknown }).code);
  if (UPSTREAM_TIMEOUTS.has(code)) return 504;
  if (code.startsWith('UND_ERR')) return 502;
  return statusOf(error).status;
}
