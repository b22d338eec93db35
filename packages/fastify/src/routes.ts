import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest, preParsingHookHandler, RouteHandlerMethod } from 'fastify';
import {
  Cancellation,
  type Chunks,
  type Exchange,
  type ExchangeResponse,
  type ExchangeScript,
  type FileBody,
  type ParsedForm,
} from '@warmpool/pool';
import { createClassicDispatch, type ClassicDispatch } from './classic.js';
import { toExchangeRequest } from './http/exchange-request.js';
import { encodeFormFields, isParsedForm } from './http/forms.js';
import { bodyWasCut } from './http/body-pace.js';
import { acceptQueryWithoutContentType, addRequestMethods, hasUnreadBody, REQUEST_METHODS } from './http/methods.js';
import { readRawBody, releaseRequestBody } from './http/raw-body.js';
import { spoolRequestBody } from './http/spooled-body.js';
import { handoffOf, sendInternalFile } from './http/internal-files.js';
import { loadSend } from './http/load-send.js';
import { registerErrorPages, registerPlainErrors } from './http/error-pages.js';
import { markBackendReply } from './http/backend-reply.js';
import { hintHeaders, sendResponse } from './http/send-response.js';
import { registerFormParsers } from './http/form-parsers.js';
import { holdUploads } from './http/uploads.js';
import { Admitted } from './http/admitted.js';
import { PoolUnreachableError, RouteTakenError } from './errors.js';
import { registerHealth, type PoolView } from './health.js';
import { applyLimits } from './limits.js';
import { registerMetrics } from './metrics.js';
import { type Admission, createScriptAdmission, whenAdmitted } from './network/admission.js';
import { applyClientInfo, clientInfoOf } from './network/client-info.js';
import { plainAddress } from './network/cidr.js';
import { registerStatic, type StaticHandler, type StaticTryFiles } from './static/static.js';
import { decodeRequestPath } from './static/file-policy.js';
import { statusOf } from './http/status.js';
import { loggedError, OverloadLog, WorkersDownLog } from './http/overload-log.js';
import { pipelinedTurn } from './http/pipelined-turn.js';
import type { ResolvedOptions } from './options.js';

/**
 * The encapsulated child context: a raw body parser for every content type and a catch-all route
 * that forwards to the exchange (worker mode: the pool; classic mode: the script resolver first,
 * then php-cgi or php-fpm). The host app's own routes and parsers are untouched (a wildcard route
 * loses to any more specific route).
 */
export async function registerRoutes(
  app: FastifyInstance,
  pool: PoolView,
  /** null: a site of no PHP (options.php false) */
  exchange: Exchange | null,
  options: ResolvedOptions,
  /** filled with the "METHOD /path" routes of the catch-all, for guardCatchAll() */
  catchAll: Set<string> = new Set(),
  /** requests begun and not yet at the pool, which the pool's drain waits for (index.ts) */
  admitted: Admitted = new Admitted(),
  /** access and rate rules (network/admission.ts): the plugin's one instance, its counters shared with serve's proxy routes */
  admission: Admission | null = null,
  /** false: no catch-all at all (no PHP and no static files: the app's routes have every path) */
  takesCatchAll = true,
): Promise<void> {
  const { client, internalFiles, errorPages } = options;
  if (internalFiles !== null) await loadSend();
  // Who the client is and which host it asked for (client-info.ts), decided before anything else:
  // an ambiguous Host is 400 here, and access rules see the client after trusted_subnets.
  // counted from the first hook: the ones after it may answer (403, 429, 413, 431) and stop the chain
  registerMetrics(app, pool, options.metrics);
  app.decorateRequest('warmpoolClient', null);
  app.addHook('onRequest', (request, reply, done) => {
    // one 'close' listener each from the access log, metrics, the cancellation of a request whose
    // client left, a recycled body's release, Fastify's stream end and `await reply`: past Node's
    // default of 10 each reply warned of a "possible memory leak" on stderr (a WordPress page view)
    reply.raw.setMaxListeners(RESPONSE_MAX_LISTENERS);
    admitted.begin(reply);
    const info = applyClientInfo(request, reply, client);
    if (info === null) return;
    request.warmpoolClient = info;
    if (admission === null) done();
    else whenAdmitted(admission(request, reply, info.remoteAddr), done);
  });
  registerPlainErrors(app, options.debug);
  registerErrorPages(app, errorPages, [
    options.health.healthPath,
    options.health.readyPath,
    options.metrics.metricsPath,
  ]);
  applyLimits(app, options.limits);
  const health = registerHealth(app, pool, options.health);
  // While the server drains, /ready answers 503 and replies close their connection so keep-alive
  // clients do not hold it open.
  let draining = false;
  app.addHook('preClose', async () => {
    draining = true;
    health.setDraining();
  });

  const staticLayer = options.static === null ? null : await registerStatic(app, options.static);
  if (exchange === null) {
    addRequestMethods(app);
    if (takesCatchAll)
      registerCatchAll(app, staticOnly(staticLayer, options.static?.tryFiles ?? null), catchAll, filesAreRead);
    return;
  }
  // classic mode: the script resolver decides (static files included); worker mode: try_files to PHP
  const classic: ClassicDispatch | null =
    options.classic === null ? null : createClassicDispatch(options.classic, staticLayer!);
  const serveStatic = classic === null ? staticLayer : null;
  const runsOnWhenClientLeaves = options.classic?.ignoreClientAbort ?? null;
  app.removeAllContentTypeParsers();
  // a spooled body PHP never read to its end (a 403 before it, a full queue, a client gone)
  // closes its temp file with the response
  const spools = new WeakMap<FastifyRequest, Readable>();
  // A body read by readRawBody keeps its memory counted, or its temp file open, until its request
  // is done; so does a spooled one. Done is the response's end, or its client gone: Fastify's
  // onRequestAbort fires only while the body is still arriving, and onResponse never fires for an
  // answer written after the client left, so the handler also lets go when the response closes.
  const releaseBody = (request: FastifyRequest): void => {
    releaseRequestBody(request);
    spools.get(request)?.destroy();
  };
  app.addHook('onResponse', (request, _reply, done) => {
    releaseBody(request);
    done();
  });
  app.addHook('onRequestAbort', (request, done) => {
    releaseBody(request);
    done();
  });
  const bodyLimit = options.limits.maxRequestBytes;
  let readBody: BodyParser;
  if (exchange.streamsRequestBody) {
    // PHP reads exactly CONTENT_LENGTH bytes from STDIN: a body is read whole first, in memory or a
    // temp file (fastcgi.request_buffering, spooled-body.ts), or, with it off, a body with its
    // length streams to PHP as PHP reads it (max_request_size was checked on Content-Length
    // before) and a chunked one is read into memory first, bounded by max_request_size.
    const buffering = options.classic?.requestBuffering !== false;
    readBody = (request, payload, done) => {
      if (buffering) {
        spoolRequestBody(payload, bodyLimit, options.uploads.dir).then((body) => {
          if (!Buffer.isBuffer(body)) spools.set(request, body);
          done(null, body);
        }, done);
      } else if (
        request.headers['content-length'] !== undefined &&
        request.headers['transfer-encoding'] === undefined
      ) {
        done(null, payload);
      } else readRawBody(request, payload, bodyLimit, done, options.uploads.dir);
    };
  } else {
    readBody = (request, payload, done) => readRawBody(request, payload, bodyLimit, done, options.uploads.dir);
  }
  const read = readBody;
  app.addContentTypeParser('*', { bodyLimit }, (request, payload, done) =>
    read(request, payload, (error, body) => {
      if (error !== null && bodyWasCut(request.raw)) return;
      done(error, body);
    }),
  );
  // Forms are parsed in Node into RR's trees (PHP gets $_POST/$_FILES shapes) unless raw_body;
  // a backend that parses its own forms (classic PHP) gets them raw.
  if (!options.rawBody && exchange.takesParsedForms) registerFormParsers(app, { uploads: options.uploads, bodyLimit });

  // Classic mode: which script runs (or which file is sent) is decided before the body is read, as
  // nginx picks its location from the head: a request refused anyway (404, 403, 405) gets its answer
  // at once, with no 100 Continue, and its client uploads nothing first.
  const scripts = new WeakMap<FastifyRequest, ExchangeScript>();
  // the site's rules for the script too, when it is not the path asked (the index of "/")
  const scriptAdmission = classic === null ? null : createScriptAdmission(options);
  const decideScript: preParsingHookHandler | null =
    classic === null
      ? null
      : (request, reply, payload, done) => {
          const client = request.warmpoolClient ?? clientInfoOf(request.raw);
          classic(request, reply, client.target).then((script) => {
            // null: answered here, and the chain stops
            if (script === null) return;
            const go = (): void => {
              scripts.set(request, script);
              done(null, payload);
            };
            if (scriptAdmission === null) go();
            else
              whenAdmitted(scriptAdmission(request, reply, client.remoteAddr, script.scriptName), (error) =>
                error === undefined ? go() : done(error),
              );
          }, done);
        };

  // refusals under overload: one summary line per 10 s, not one per request
  const overloadLog = new OverloadLog();
  const downLog = new WorkersDownLog();
  const fpmDownLog = new WorkersDownLog('php-fpm does not answer (fastcgi.pass)');
  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const client = request.warmpoolClient ?? clientInfoOf(request.raw);
    // classic mode: decided before the body was read (decideScript), never by PHP
    const script = classic === null ? null : scripts.get(request)!;
    // worker mode's try_files: an existing, allowed static file first; everything else goes to PHP.
    if (
      serveStatic !== null &&
      (request.method === 'GET' || request.method === 'HEAD') &&
      (await serveStatic(request, reply))
    )
      return reply;
    // RR never reads a HEAD or OPTIONS body (PROTOCOL.md §5.3); classic PHP gets any body but HEAD's.
    const skipsBody = request.method === 'HEAD' || (request.method === 'OPTIONS' && classic === null);
    // a GET's body, which Fastify leaves unread, is read here as a POST's (the same limits)
    if (!skipsBody && hasUnreadBody(request)) request.body = await readUnparsedBody(request, readBody);
    const parsedBody = skipsBody ? null : (request.body ?? null);
    let body: Buffer | Chunks | FileBody | Readable | null = null;
    let form: ParsedForm | null = null;
    let releaseUploads: (() => void) | null = null;
    if (isParsedForm(parsedBody)) {
      form = { fields: encodeFormFields(parsedBody.fields), uploads: parsedBody.uploads };
      // Upload temp files live until the worker is done with them, even if the client left.
      releaseUploads = holdUploads(request);
    } else body = parsedBody as Buffer | Chunks | FileBody | Readable | null;
    // a response that closes (its client gone mid-exchange) lets go of the body at once
    if (body !== null) reply.raw.once('close', () => releaseBody(request));
    // a request pipelined behind an unfinished response waits for it, holding no PHP process
    const turn = pipelinedTurn(reply);
    if (turn !== null && !(await turn)) {
      // a response still queued behind another on a closed connection never closes
      releaseBody(request);
      releaseUploads?.();
      return sendClientGone(reply);
    }
    const signal = abortWhenClientLeaves(reply);
    // a body streamed to PHP that body_timeout's 408 ended: a request still queued for PHP leaves
    // the queue unrun (it would wait on that body, holding the process it got)
    if (body instanceof Readable)
      request.raw.once('error', () => {
        if (bodyWasCut(request.raw)) signal.cancel();
      });
    const exchangeRequest = toExchangeRequest(request, client, body, form, script);
    let response: ExchangeResponse;
    try {
      const exchanged = exchange.exchange(exchangeRequest, {
        // fastcgi.ignore_client_abort (WordPress's wp-cron.php): it runs on, queued or running,
        // when its client hangs up; the answer is then dropped as any other's
        signal: script !== null && runsOnWhenClientLeaves?.test(script.scriptName) === true ? undefined : signal,
        onInformational: (status, headers) => {
          if (status === 103 && !signal.aborted) reply.raw.writeEarlyHints(hintHeaders(headers));
        },
      });
      // the pool took it (or refused it) synchronously: a drain that starts now lets it finish
      admitted.end(reply);
      response = await exchanged;
    } catch (error) {
      releaseUploads?.();
      if (signal.aborted) return sendClientGone(reply);
      // answered already (body_timeout's 408 ended the body PHP was reading): nothing to add
      if (reply.sent) return reply;
      // a 502 of a worker the drain killed closes its connection too, or the server's close waits for it
      if (draining && request.raw.httpVersionMajor === 1) reply.header('Connection', 'close');
      return sendError(request, reply, error, options.debug, overloadLog, downLog, fpmDownLog);
    }
    const streamed = response.body instanceof Readable ? response.body : null;
    if (releaseUploads !== null) {
      if (streamed === null) releaseUploads();
      else streamed.once('close', releaseUploads);
    }
    if (signal.aborted) {
      streamed?.destroy();
      response.release?.();
      return sendClientGone(reply);
    }
    if (draining && request.raw.httpVersionMajor === 1) reply.header('Connection', 'close');
    // X-Accel-Redirect / X-Sendfile: PHP names a file of the internal folder instead of sending it
    // without internal_files, sendResponse drops the hand-over headers (and says so once)
    if (internalFiles !== null) {
      const handoff = handoffOf(response.headers);
      if (handoff !== null) {
        streamed?.destroy();
        return sendInternalFile(request, reply, internalFiles, handoff, response.headers);
      }
    }
    markBackendReply(request, script?.scriptName ?? null);
    return sendResponse(reply, response);
  };

  addRequestMethods(app);
  acceptQueryWithoutContentType(app);
  registerCatchAll(app, handler, catchAll, decideScript);
}

const CATCH_ALL_URLS = ['/', '/*'] as const;

/** A site of no PHP: its static files, and 404 for every other path (nginx's try_files $uri $uri/ =404). */
function staticOnly(staticLayer: StaticHandler | null, tryFiles: StaticTryFiles | null): RouteHandlerMethod {
  return async (request, reply) => {
    if (staticLayer === null) return notFound(reply);
    // without try_files: the file, or a folder's index (nginx's $uri $uri/ =404)
    if (tryFiles === null) return (await staticLayer(request, reply)) ? reply : notFound(reply);
    // its steps in order: "$uri" the file, "$uri/" a folder's index, "$uri.html" (clean URLs);
    // then the fallback file (a single-page app's /index.html)
    const path = decodeRequestPath(request.url);
    if (path !== null)
      for (const step of tryFiles.steps) {
        if (step === 'directory' || step === 'file-or-directory') {
          if (await staticLayer(request, reply)) return reply;
        } else if (step === 'file') {
          if (await staticLayer.sendPath(request, reply, path)) return reply;
        } else if (!path.endsWith('/') && (await staticLayer.sendPath(request, reply, `${path}${step.suffix}`)))
          return reply;
      }
    if (tryFiles.fallback !== null && (await staticLayer.sendPath(request, reply, tryFiles.fallback))) return reply;
    return notFound(reply);
  };
}

function notFound(reply: FastifyReply): FastifyReply {
  return reply.code(404).type('text/plain; charset=utf-8').send('Not Found\n');
}

/** A site of no PHP takes GET and HEAD; another method gets 405 before its body is read (nginx's for a file). */
const filesAreRead: preParsingHookHandler = (request, reply, payload, done) => {
  if (request.method === 'GET' || request.method === 'HEAD') {
    done(null, payload);
    return;
  }
  // the chain stops here: done is not called
  reply.header('allow', 'GET, HEAD').code(405).type('text/plain; charset=utf-8').send('Method Not Allowed\n');
};

/** per server (every scope shares it): each pool's label and the catch-all routes it took */
const poolsOf = new WeakMap<object, { label: string; routes: ReadonlySet<string> }[]>();

/**
 * Before a pool boots: refused when every method of its scope's `/` and `/*` is already routed (a
 * pool in a sibling scope with no prefix, or the same one, took them first), as it would never
 * receive a request; the message names the pool that has them. Fastify cannot see this as its
 * FST_ERR_DUPLICATED_ROUTE: the catch-all leaves out the methods already routed. `routes` is the
 * set registerRoutes will fill for this pool, kept so that a later pool can name this one.
 */
export function claimCatchAll(app: FastifyInstance, label: string, routes: ReadonlySet<string>): void {
  const pools = poolsOf.get(app.server) ?? [];
  poolsOf.set(app.server, pools);
  let free = false;
  let owner: string | null = null;
  for (const url of CATCH_ALL_URLS) {
    const full = `${app.prefix}${url}`;
    for (const method of REQUEST_METHODS) {
      if (!app.hasRoute({ method, url: full })) free = true;
      else owner ??= pools.find((pool) => pool.routes.has(`${method} ${full}`))?.label ?? null;
    }
  }
  if (!free) throw new PoolUnreachableError(label, app.prefix, owner);
  pools.push({ label, routes });
}

/**
 * The routes that take every other request to PHP, '/' and '/*' for every method, except the ones
 * the app routed before: its own GET / (and the HEAD Fastify adds to it), @fastify/cors's OPTIONS *.
 */
function registerCatchAll(
  app: FastifyInstance,
  handler: RouteHandlerMethod,
  ours: Set<string>,
  preParsing: preParsingHookHandler | null,
): void {
  for (const url of CATCH_ALL_URLS) {
    // hasRoute takes the full path; the plugin may sit in a scope with a prefix
    const full = `${app.prefix}${url}`;
    const methods = REQUEST_METHODS.filter((method) => !app.hasRoute({ method, url: full }));
    for (const method of methods) ours.add(`${method} ${full}`);
    if (methods.length > 0)
      app.route({
        method: methods,
        url,
        handler,
        exposeHeadRoute: false,
        ...(preParsing === null ? {} : { preParsing }),
      });
  }
}

/**
 * On the app the plugin is registered on: a route of the app's on one of the catch-all's, declared
 * after it, would be a duplicate for Fastify; it is refused with what to do instead of
 * FST_ERR_DUPLICATED_ROUTE.
 */
export function guardCatchAll(app: FastifyInstance, ours: ReadonlySet<string>): void {
  app.addHook('onRoute', (route) => {
    if (route.constraints !== undefined) return;
    const url = route.url === '*' ? '/*' : route.url;
    const taken = [route.method].flat().find((method) => ours.has(`${method} ${url}`));
    if (taken !== undefined) throw new RouteTakenError(`${taken} ${url}`);
  });
}

/** The '*' content-type parser: a request body as the exchange takes it. */
type BodyParser = (
  request: FastifyRequest,
  payload: Readable,
  done: (error: Error | null, body?: Buffer | Chunks | FileBody | Readable) => void,
) => void;

/** A body Fastify did not read (hasUnreadBody), read by the '*' parser; its errors (413) are Fastify's. */
function readUnparsedBody(
  request: FastifyRequest,
  readBody: BodyParser,
): Promise<Buffer | Chunks | FileBody | Readable | undefined> {
  return new Promise((resolve, reject) => {
    readBody(request, request.raw, (error, body) => (error === null ? resolve(body) : reject(error)));
  });
}

/**
 * A signal that fires when the client goes away before its response is complete (HTTP/1 close,
 * HTTP/2 RST_STREAM or GOAWAY, a TLS error): a queued request then leaves the queue without running,
 * and a streamed response is cancelled, so no worker is held for a client that is gone. A
 * Cancellation, not an AbortController: one is made per request, and an EventTarget costs more.
 */
function abortWhenClientLeaves(reply: FastifyReply): Cancellation {
  const cancellation = new Cancellation();
  const res = reply.raw;
  // gone already (it left while the request waited: for the micro-cache, a pipelined turn, or the
  // classic script's decision); an HTTP/2 response has no `destroyed`, its stream has: a stream
  // reset then went unseen, PHP ran for nobody and its reply was sent into the dead stream, its
  // response memory never returned (a soak probe)
  const stream = (res as { stream?: { destroyed: boolean } }).stream;
  const gone = stream !== undefined ? stream.destroyed : (res as { destroyed?: boolean }).destroyed === true;
  if (gone && !res.writableEnded) cancellation.cancel();
  else
    res.once('close', () => {
      if (!res.writableEnded) cancellation.cancel();
    });
  return cancellation;
}

/** 'close' listeners a response may have before Node warns: many parts watch it, once each. */
const RESPONSE_MAX_LISTENERS = 32;

/** The client left before its response: nothing to send; the access log shows nginx's 499. */
function sendClientGone(reply: FastifyReply): FastifyReply {
  // answered already: body_timeout's 408, then its body's end cancelled the exchange
  if (reply.sent) return reply;
  return reply.code(499).send();
}

function sendError(
  request: FastifyRequest,
  reply: FastifyReply,
  error: unknown,
  debug: boolean,
  overloadLog: OverloadLog,
  downLog: WorkersDownLog,
  fpmDownLog: WorkersDownLog,
): FastifyReply {
  const { status, retryAfter, overloaded } = statusOf(error);
  const err = error as Error & { code?: string; details?: { pid?: number } };
  // a failure names the request, as nginx's error line does: with the access log off (the default)
  // nothing else ties the request id to the URL that timed out or crashed its worker
  const which = {
    method: request.method,
    url: request.url,
    host: request.host,
    remoteAddr: plainAddress(request.socket?.remoteAddress) ?? null,
  };
  if (overloaded) overloadLog.refused(request.log, err.code ?? err.name, err.message, error);
  else if (err.code === 'WP_POOL_WORKERS_DOWN') downLog.failed(request.log, err.message, which, error);
  else if (err.code === 'WP_FASTCGI_CONNECT_FAILED') fpmDownLog.failed(request.log, err.message, which, error);
  else
    request.log.error(
      { err: loggedError(error), workerPid: err.details?.pid, status, ...which },
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
    case 431:
      return 'Request Header Fields Too Large';
    case 504:
      return 'Gateway Timeout';
    default:
      return 'Internal Server Error';
  }
}
