import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import {
  type AnyPool,
  createCgiPool,
  type Exchange,
  FastCgiExchange,
  type FastCgiExchangeOptions,
  Pool,
  type PoolStats,
  WorkerExchange,
  type WorkerInfo,
} from '@warmpool/pool';
import { createFastCgiClientPool, type FastCgiClientPool } from '@warmpool/pool/fastcgi';
import { classicWarmup, passClientOptions, passPoolView } from './classic-backend.js';
import type { PoolView } from './health.js';
import { type ResolvedOptions, resolveOptions, type WarmpoolOptions } from './options.js';
import { AlreadyRegisteredError } from './errors.js';
import { Admitted } from './http/admitted.js';
import { claimCatchAll, guardCatchAll, registerRoutes } from './routes.js';
import { type ClientInfo, clientInfoOf } from './network/client-info.js';
import { createAdmission, createScriptAdmission } from './network/admission.js';

export {
  checkOptions,
  type ClassicModeOptions,
  type WarmpoolCommonOptions,
  type WarmpoolOptions,
  type WorkerModeOptions,
} from './options.js';
export { DEFAULT_STATIC_FORBID, type StaticOptions } from './static/static.js';
export { DEFAULT_MAX_FIELDS, DEFAULT_MAX_FILES, DEFAULT_UPLOAD_FORBID } from './http/uploads.js';
/** @deprecated the old name of DEFAULT_STATIC_FORBID, kept for one release */
export { DEFAULT_STATIC_FORBID as DEFAULT_FORBID } from './static/static.js';
export { resolveClassicOptions, type FastCgiOptions, type ResolvedClassic } from './classic.js';
export { wildcardPattern } from './wildcards.js';
export { setRequestHeader } from './http/request-headers.js';
export {
  createScriptResolver,
  NODE_FILE_SYSTEM,
  DEFAULT_SCRIPT_INDEX,
  DEFAULT_TRY_FILES,
  DEFAULT_SCRIPT_EXTENSIONS,
  type ScriptResolver,
  type ScriptResolverOptions,
  type ScriptVerdict,
  type ScriptForbiddenReason,
  type ResolverFileSystem,
} from './static/script-resolver.js';
export {
  AlreadyRegisteredError,
  PoolUnreachableError,
  InvalidOptionError,
  BadFormError,
  BodyTooLargeError,
  TooManyFilesError,
  TooManyHeadersError,
  TransferEncodingError,
  RequestTimeoutError,
  BodyTimeoutError,
  HeadersTooLargeError,
  TooManyFieldsError,
  SpoolFailedError,
  FASTIFY_ERROR_CODES,
  optionChecker,
} from './errors.js';
export { BodyParts } from './http/body-parts.js';
export { isReusedBody, markReusedBody } from './http/reused-bodies.js';
export { DEFAULT_MAX_RESPONSE_MEMORY_BYTES, ResponseMemory, responseMemory } from './http/response-memory.js';
export { DEFAULT_REQUEST_BODY_MEMORY_BYTES, RequestBodyMemory, requestBodyMemory } from './http/raw-body.js';
export { unsentBytes } from './http/unsent-bytes.js';
export { addRequestMethods, declaresBody, REQUEST_METHODS } from './http/methods.js';
export type { UploadOptions } from './http/uploads.js';
export {
  type InternalFilesOptions,
  type ResolvedInternalFiles,
  handoffOf,
  resolveInternalFiles,
  sendInternalFile,
  SERVER_INSTRUCTION_HEADERS,
} from './http/internal-files.js';
export type { AccessRule } from './network/access.js';
export { basicChallenge, compileBasicAuth, type BasicAuthRule } from './network/basic-auth.js';
export { whenAdmitted } from './network/admission.js';
export { REPLY_HOP_HEADERS } from './http/connection-headers.js';
export { accelExpiresOf, markedUnbuffered, noteUnbuffered } from './http/unbuffered.js';
export { resetOnError, sendHeadAtOnce } from './http/send-response.js';
export { cidrProblem, plainAddress } from './network/cidr.js';
export { accessEntryProblem, compileAccess } from './network/access.js';
export { clientKey } from './network/client-key.js';
export { rateProblem, resolveRequestRateRules, type RequestRateRule } from './network/request-rate.js';
export { type ErrorPages, resolveErrorPages } from './http/error-pages.js';
export { backendScriptOf, isBackendReply, markBackendReply } from './http/backend-reply.js';
export {
  clientInfoOf,
  resolvedClientAddr,
  createClientInfoHook,
  createClientInfoResolver,
  type ClientInfo,
  type ClientInfoOptions,
  type ClientInfoResolver,
} from './network/client-info.js';
export { compileTrustedSubnets, type TrustedSubnets } from './network/trusted-subnets.js';
export type { LimitOptions } from './limits.js';
export {
  configureServerTimeouts,
  serverLimits,
  resolveLimits,
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_REQUEST_SIZE_MB,
  LIMIT_OPTION_RANGES,
} from './limits.js';
export {
  installLingeringClose,
  isLingering,
  lingerAndClose,
  LINGERING_TIME_MS,
  LINGERING_TIMEOUT_MS,
} from './http/lingering-close.js';
export { boundPipelining, isPastPipeliningBound, MAX_PIPELINED, pipelinedTurn } from './http/pipelined-turn.js';
export { DEFAULT_STREAM_REQUEST_TIMEOUT_MS, guardStreamBody } from './http/http2-bodies.js';
export { DEFAULT_BODY_TIMEOUT_MS, guardBodyPace } from './http/body-pace.js';
export { registerErrorPages, registerPlainErrors } from './http/error-pages.js';
export { DEFAULT_HEALTH_PATH, DEFAULT_READY_PATH, livenessOf, readinessOf, workerCounts } from './health.js';
export {
  CLIENT_CLOSED_REQUEST,
  DEFAULT_METRICS_PATH,
  PROMETHEUS_CONTENT_TYPE,
  RequestCounters,
  recordWhenClosed,
  renderRequestFamilies,
} from './metrics.js';

/** `fastify.warmpool`: the running backend and what operators do with it. */
export interface WarmpoolDecorator {
  /** the PHP processes warmpool runs (worker mode, or classic mode's php-cgi); null with fastcgi.pass */
  pool: AnyPool | null;
  /** classic mode with fastcgi.pass: the connections to php-fpm; null otherwise */
  fastcgi: FastCgiClientPool | null;
  /** rolling restart of every worker; capacity never drops (with fastcgi.pass: nothing of ours to restart) */
  reset(): Promise<void>;
  workers(): Promise<WorkerInfo[]>;
  stats(): PoolStats;
  /**
   * The site's http.access and http.limit_req for a request the plugin's routes do not take (serve's
   * proxy routes): false when it answered 403, 429 or 401 (a promise while a bcrypt password is
   * checked: see whenAdmitted). Its rate counters are the plugin's.
   */
  admit(request: FastifyRequest, reply: FastifyReply): boolean | Promise<boolean>;
  /**
   * Classic mode: the same rules for the script a request runs when it is not the path asked (the
   * index of "/"), as the plugin's routes apply them; for the micro-cache, whose hit of such a
   * page must meet them too. True at once with no rule, or for the path asked itself.
   */
  admitScript(request: FastifyRequest, reply: FastifyReply, script: string): boolean | Promise<boolean>;
}

// here, not beside the code that sets them: only the entry point's declarations reach a user's types
declare module 'fastify' {
  interface FastifyInstance {
    warmpool: WarmpoolDecorator;
  }
  interface FastifyRequest {
    /** the client after trusted_subnets rules, the host and scheme it asked for; set by the plugin's onRequest hook */
    warmpoolClient: ClientInfo | null;
  }
}

const plugin: FastifyPluginAsync<WarmpoolOptions> = async (app: FastifyInstance, opts: WarmpoolOptions) => {
  // before anything boots: Fastify's own refusal (FST_ERR_DEC_ALREADY_PRESENT) came at decorate,
  // after the second pool's workers had started, and nothing stopped them
  if (Object.hasOwn(app, 'warmpool')) throw new AlreadyRegisteredError();
  const options = resolveOptions(opts, app.log);
  const catchAll = new Set<string>();
  // a site of no PHP and no static files has nothing of its own to answer: the app's routes have every path
  const takesCatchAll = options.php || options.static !== null;
  if (takesCatchAll) claimCatchAll(app, poolLabel(opts), catchAll);
  const { classic } = options;
  let pool: AnyPool | null = null;
  let fastcgi: FastCgiClientPool | null = null;
  let view: PoolView;
  let exchange: Exchange | null = null;
  if (options.pool === null) {
    view = NO_PHP_VIEW;
  } else if (classic === null) {
    const workers = new Pool(options.pool);
    await workers.start(opts.signal, opts.keep_trying === true);
    pool = workers;
    view = workers;
    exchange = new WorkerExchange(workers, options.codec);
  } else if (classic.pass !== null) {
    fastcgi = createFastCgiClientPool(passClientOptions(classic.pass, classic, options.pool));
    view = passPoolView(fastcgi);
    exchange = new FastCgiExchange(fastcgi, exchangeOptions(classic.params, options));
  } else {
    const warmup = options.pool.numWorkers === 'auto' ? await classicWarmup(classic, opts.warmup ?? ['/']) : [];
    const cgi = createCgiPool(
      { ...options.pool, warmup },
      { clearEnv: classic.clearEnv, ...(classic.pipelining ? {} : { queueBehindMs: 0 }) },
    );
    await cgi.start(opts.signal, opts.keep_trying === true);
    pool = cgi;
    view = cgi;
    exchange = new FastCgiExchange(cgi, exchangeOptions(classic.params, options));
  }
  const admission = createAdmission(options);
  const scriptAdmission = createScriptAdmission(options);
  try {
    app.decorate('warmpool', {
      pool,
      fastcgi,
      admit: (request, reply) =>
        admission === null ||
        admission(request, reply, (request.warmpoolClient ?? clientInfoOf(request.raw)).remoteAddr),
      admitScript: (request, reply, script) =>
        scriptAdmission === null ||
        scriptAdmission(request, reply, (request.warmpoolClient ?? clientInfoOf(request.raw)).remoteAddr, script),
      reset: async () => {
        await pool?.reset();
      },
      workers: () => view.workers(),
      stats: () => view.stats(),
    } satisfies WarmpoolDecorator);
  } catch (error) {
    // no onClose hook holds this pool yet: stopped here, or its workers outlive app.close()
    await Promise.all([pool?.close(), fastcgi?.close()]);
    throw error;
  }
  // The pool's drain starts with the app's close (preClose), not after it: Fastify waits for its
  // connections before onClose, so destroy_timeout would bound nothing and one stuck request would
  // hold app.close() for good. In-flight and queued requests finish within destroy_timeout (then
  // their workers are killed: 502), requests that come meanwhile get 503 with Retry-After.
  // A request that had begun when close began (a body still uploading) is in flight too: the
  // drain starts once each has reached the pool or ended, within destroy_timeout; Fastify answers
  // 503 to the ones that come after.
  const admitted = new Admitted();
  let poolClosed: Promise<void> | null = null;
  app.addHook('preClose', async () => {
    if (pool === null) return;
    await admitted.settled(pool.options.destroyTimeoutMs);
    poolClosed = pool.close();
  });
  app.addHook('onClose', async () => {
    await Promise.all([poolClosed ?? pool?.close(), fastcgi?.close()]);
  });
  await app.register(async (child) =>
    registerRoutes(child, view, exchange, options, catchAll, admitted, admission, takesCatchAll),
  );
  if (takesCatchAll) guardCatchAll(app, catchAll);
};

/** A site of no PHP as health and metrics see a pool: none to wait for, always ready. */
const NO_PHP_VIEW: PoolView = {
  stats: (): PoolStats => ({
    numWorkers: 0,
    workers: { booting: 0, ready: 0, working: 0, stopping: 0, exited: 0 },
    queued: 0,
    requests: 0,
    pipelined: 0,
    errors: {},
    recycles: {},
    bootFailures: 0,
    bootError: null,
    closing: false,
  }),
  workers: async (): Promise<WorkerInfo[]> => [],
};

/** A pool as an error names it: its command, or its classic site. */
function poolLabel(opts: WarmpoolOptions): string {
  if (opts.php === false) return 'static files (php: false)';
  if (opts.fastcgi !== undefined) {
    const { pass, root } = opts.fastcgi as { pass?: unknown; root?: unknown };
    return `fastcgi ${pass === undefined ? `root "${String(root)}"` : `pass "${String(pass)}"`}`;
  }
  const command = opts.command;
  return `"${Array.isArray(command) ? command.join(' ') : String(command)}"`;
}

function exchangeOptions(
  params: Readonly<Record<string, string>> | undefined,
  options: ResolvedOptions,
): FastCgiExchangeOptions {
  return {
    logger: options.pool!.logger,
    recycleBodies: options.recycleResponseMemory,
    ...(params === undefined ? {} : { params }),
  };
}

/** The warmpool Fastify plugin: forwards every request no other route takes to a warm PHP worker. */
export const warmpool = fp(plugin, { name: '@warmpool/fastify', fastify: '5.x' });
export default warmpool;
