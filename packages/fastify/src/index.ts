import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import { Pool, type PoolStats, WorkerExchange, type WorkerInfo } from '@warmpool/pool';
import { resolveOptions, type WarmpoolOptions } from './options.js';
import { registerRoutes } from './routes.js';

export { checkOptions, type WarmpoolOptions } from './options.js';
export { DEFAULT_STATIC_FORBID, type StaticOptions } from './static/static.js';
export { DEFAULT_MAX_FILES, DEFAULT_UPLOAD_FORBID } from './http/uploads.js';
/** @deprecated the old name of DEFAULT_STATIC_FORBID, kept for one release */
export { DEFAULT_STATIC_FORBID as DEFAULT_FORBID } from './static/static.js';
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
  InvalidOptionError,
  BadFormError,
  BodyTooLargeError,
  TooManyFilesError,
  TooManyHeadersError,
  FASTIFY_ERROR_CODES,
} from './errors.js';
export { BodyParts } from './http/body-parts.js';
export type { UploadOptions } from './http/uploads.js';
export type { AccessRule } from './network/access.js';
export { cidrProblem } from './network/cidr.js';
export {
  clientInfoOf,
  createClientInfoHook,
  createClientInfoResolver,
  type ClientInfo,
  type ClientInfoOptions,
  type ClientInfoResolver,
} from './network/client-info.js';
export type { LimitOptions } from './limits.js';
export {
  serverLimits,
  resolveLimits,
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_REQUEST_SIZE_MB,
  LIMIT_OPTION_RANGES,
} from './limits.js';
export { DEFAULT_HEALTH_PATH, DEFAULT_READY_PATH, livenessOf, readinessOf, workerCounts } from './health.js';
export { DEFAULT_METRICS_PATH, PROMETHEUS_CONTENT_TYPE } from './metrics.js';

/** `fastify.warmpool`: the running pool and what operators do with it. */
export interface WarmpoolDecorator {
  pool: Pool;
  /** rolling restart of every worker; capacity never drops */
  reset(): Promise<void>;
  workers(): Promise<WorkerInfo[]>;
  stats(): PoolStats;
}

declare module 'fastify' {
  interface FastifyInstance {
    warmpool: WarmpoolDecorator;
  }
}

const plugin: FastifyPluginAsync<WarmpoolOptions> = async (app: FastifyInstance, opts: WarmpoolOptions) => {
  const options = resolveOptions(opts, app.log);
  const pool = new Pool(options.pool);
  await pool.start();
  app.decorate('warmpool', {
    pool,
    reset: () => pool.reset(),
    workers: () => pool.workers(),
    stats: () => pool.stats(),
  } satisfies WarmpoolDecorator);
  // onClose runs after the server stopped accepting; in-flight requests drain, then workers stop.
  app.addHook('onClose', async () => {
    await pool.close();
  });
  const exchange = new WorkerExchange(pool, options.codec);
  await app.register(async (child) => registerRoutes(child, pool, exchange, options));
};

/** The warmpool Fastify plugin: forwards every request no other route takes to a warm PHP worker. */
export const warmpool = fp(plugin, { name: '@warmpool/fastify', fastify: '5.x' });
export default warmpool;
