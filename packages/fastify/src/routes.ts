import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Pool } from '@warmpool/pool';
import { encodeRequestContext } from '@warmpool/pool/protocol';
import { encodeFormFields, isParsedForm } from './http/forms.js';
import { sendReply } from './http/from-payload.js';
import { readRawBody, type RawBody } from './http/raw-body.js';
import { holdUploads, registerFormParsers } from './http/uploads.js';
import { registerHealth } from './health.js';
import { applyLimits } from './limits.js';
import { registerMetrics } from './metrics.js';
import { requestPath } from './network/access.js';
import { resolveClient, type ClientInfo } from './network/trusted-subnets.js';
import { registerStatic } from './static/static.js';
import { statusOf } from './http/status.js';
import { toRequestContext } from './http/to-payload.js';
import type { ResolvedOptions } from './options.js';

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

/**
 * The encapsulated child context: a raw body parser for every content type and a catch-all route
 * that forwards to the pool. The host app's own routes and parsers are untouched (a wildcard route
 * loses to any more specific route).
 */
export async function registerRoutes(app: FastifyInstance, pool: Pool, options: ResolvedOptions): Promise<void> {
  const { trusted, access } = options;
  // Who the client is (trusted_subnets), decided before anything else so access rules can use it.
  app.decorateRequest('warmpoolClient', null);
  if (trusted !== null || access !== null) {
    app.addHook('onRequest', (request, reply, done) => {
      const client = clientOf(request, trusted);
      request.warmpoolClient = client;
      if (access !== null && !access(requestPath(request.url), client.remoteAddr)) {
        reply.code(403).type('text/plain; charset=utf-8').send('Forbidden\n');
        return;
      }
      done();
    });
  }
  applyLimits(app, options.limits);
  const health = registerHealth(app, pool, options.health);
  registerMetrics(app, pool, options.metrics);
  // While the server drains, /ready answers 503 and replies close their connection so keep-alive
  // clients do not hold it open.
  let draining = false;
  app.addHook('preClose', async () => {
    draining = true;
    health.setDraining();
  });

  const serveStatic = options.static === null ? null : await registerStatic(app, options.static);
  app.removeAllContentTypeParsers();
  const bodyLimit = options.limits.maxRequestBytes;
  app.addContentTypeParser('*', { bodyLimit }, (request, payload, done) =>
    readRawBody(request, payload, bodyLimit, done),
  );
  // Forms are parsed in Node into RR's trees (PHP gets $_POST/$_FILES shapes) unless raw_body.
  if (!options.rawBody) registerFormParsers(app, { uploads: options.uploads, bodyLimit });

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    // try_files: an existing, allowed static file first; everything else goes to PHP.
    if (
      serveStatic !== null &&
      (request.method === 'GET' || request.method === 'HEAD') &&
      (await serveStatic(request, reply))
    )
      return reply;
    const requestContext = toRequestContext(request, request.warmpoolClient ?? clientOf(request, null));
    // RR never reads a HEAD or OPTIONS body (PROTOCOL.md §5.3).
    const parsedBody = request.method === 'HEAD' || request.method === 'OPTIONS' ? null : (request.body ?? null);
    let body: RawBody | null;
    let releaseUploads: (() => void) | null = null;
    if (isParsedForm(parsedBody)) {
      requestContext.parsed = true;
      requestContext.uploads = parsedBody.uploads;
      body = encodeFormFields(parsedBody.fields);
      // Upload temp files live until the worker is done with them, even if the client left.
      releaseUploads = holdUploads(request);
    } else body = parsedBody as RawBody | null;
    const { flags, context } = encodeRequestContext(requestContext, options.codec);
    let result: Awaited<ReturnType<Pool['exec']>>;
    try {
      result = await pool.exec({ flags, context, body });
    } catch (error) {
      releaseUploads?.();
      return sendError(request, reply, error, options.debug);
    }
    if (releaseUploads !== null) {
      if (result.stream === null) releaseUploads();
      else result.stream.once('close', releaseUploads);
    }
    if (draining && request.raw.httpVersionMajor === 1) reply.header('Connection', 'close');
    try {
      await sendReply(reply, result);
    } catch (error) {
      if (reply.sent) throw error;
      return sendError(request, reply, error, options.debug);
    }
  };

  app.route({ method: METHODS, url: '/', handler, exposeHeadRoute: false });
  app.route({ method: METHODS, url: '/*', handler, exposeHeadRoute: false });
}

function clientOf(request: FastifyRequest, trusted: ResolvedOptions['trusted']): ClientInfo {
  const socket = request.raw.socket;
  const scheme = (socket as TLSSocket | undefined)?.encrypted === true ? 'https' : 'http';
  return resolveClient(trusted, socket?.remoteAddress, scheme, request.headers);
}

declare module 'fastify' {
  interface FastifyRequest {
    /** the client after trusted_subnets rules; set by the plugin's onRequest hook when it runs */
    warmpoolClient: ClientInfo | null;
  }
}

function sendError(request: FastifyRequest, reply: FastifyReply, error: unknown, debug: boolean): FastifyReply {
  const { status, retryAfter } = statusOf(error);
  const err = error as Error & { code?: string; details?: { pid?: number } };
  request.log.error(
    { err: { message: err.message, code: err.code }, pid: err.details?.pid, status },
    `PHP request failed: ${err.code ?? err.name}`,
  );
  if (retryAfter !== null) reply.header('Retry-After', String(retryAfter));
  reply.code(status).type('text/plain; charset=utf-8');
  // Worker error text can hold stack traces and secrets: only in debug mode (RR http.pool.debug).
  return reply.send(debug ? `${err.code ?? 'error'}: ${err.message}\n` : `${statusText(status)}\n`);
}

function statusText(status: number): string {
  switch (status) {
    case 502:
      return 'Bad Gateway';
    case 503:
      return 'Service Unavailable';
    case 504:
      return 'Gateway Timeout';
    default:
      return 'Internal Server Error';
  }
}
