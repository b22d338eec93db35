import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { PoolStats, WorkerInfo } from '@warmpool/pool';
import { InvalidOptionError } from './errors.js';

/**
 * `/health` (liveness) and `/ready` (readiness), RoadRunner's status-plugin endpoints.
 *
 * - health: 200 `{"status":"ok"}` while the pool runs; 503 `closing` once pool.close() started,
 *   503 `failing` when no worker is ready or working AND boots keep failing (RR's /health wants an
 *   active worker; we do not fail while workers are merely booting).
 * - ready: 200 when the pool can take work: at least one ready or working worker (RR counts only
 *   idle workers, so a fully busy server reports not ready and load balancers pull it mid-peak),
 *   not draining, not closing; else 503 `draining` | `closing` | `not_ready`.
 * Both answer GET and HEAD with `Cache-Control: no-store` and
 * `{"status": ..., "workers": {"ready","working","booting","stopping"}}`.
 */
export interface HealthOptions {
  /** default: off (false), so the host app's or the PHP app's own /health is not shadowed */
  health_path?: string | false;
  /** default: off (false) */
  ready_path?: string | false;
}

export interface ResolvedHealth {
  healthPath: string | null;
  readyPath: string | null;
}

/** The paths apps/server is expected to use (RR's status plugin names). */
export const DEFAULT_HEALTH_PATH = '/health';
export const DEFAULT_READY_PATH = '/ready';

export function resolveHealthOptions(raw: HealthOptions): ResolvedHealth {
  const healthPath = resolveOpsPath(raw.health_path, 'health_path');
  const readyPath = resolveOpsPath(raw.ready_path, 'ready_path');
  if (healthPath !== null && healthPath === readyPath)
    throw new InvalidOptionError('ready_path', `must differ from health_path ("${healthPath}")`);
  return { healthPath, readyPath };
}

/**
 * An ops route path: starts with "/", plain characters only (":" and "*" would make a Fastify
 * parametric or wildcard route). false / undefined → null (off).
 */
export function resolveOpsPath(value: unknown, key: string): string | null {
  if (value === undefined || value === false) return null;
  if (typeof value !== 'string' || !/^\/[A-Za-z0-9._~\-/]*$/.test(value) || value.includes('//')) {
    throw new InvalidOptionError(
      key,
      `must be a path like "/health" (letters, digits, "-", "_", ".", "~", "/") or false, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

// Ops requests (health, ready, metrics) are marked by their handlers so the request metrics skip
// them; a WeakSet lookup on the hot path allocates nothing and puts no property on Fastify's objects.
const opsRequests = new WeakSet<FastifyRequest>();

/**
 * What health and metrics read of a site's backend: its pool, or for classic mode's `fastcgi.pass`
 * the connection pool to php-fpm seen in the same terms (classic-backend.ts).
 */
export interface PoolView {
  stats(): PoolStats;
  workers(): Promise<WorkerInfo[]>;
}

/** Marks a request served by an ops route (kept out of warmpool_requests_total). */
export function markOpsRequest(request: FastifyRequest): void {
  opsRequests.add(request);
}

export function isOpsRequest(request: FastifyRequest): boolean {
  return opsRequests.has(request);
}

interface WorkerCounts {
  ready: number;
  working: number;
  booting: number;
  stopping: number;
}

export function workerCounts(stats: PoolStats): WorkerCounts {
  const w = stats.workers;
  return { ready: w.ready, working: w.working, booting: w.booting, stopping: w.stopping };
}

/** Liveness of one pool (the one rule /health here and the server's status listener share). */
export function livenessOf(stats: PoolStats): 'ok' | 'closing' | 'failing' {
  if (stats.closing) return 'closing';
  if (stats.workers.ready + stats.workers.working === 0 && stats.bootError !== null) return 'failing';
  return 'ok';
}

/** Readiness of one pool: it can take work now and no drain has started. */
export function readinessOf(stats: PoolStats, draining: boolean): 'ready' | 'closing' | 'draining' | 'not_ready' {
  if (stats.closing) return 'closing';
  if (draining) return 'draining';
  // A dynamic pool scaled to zero on purpose can still take work (the request boots a worker).
  const scaledToZero = stats.numWorkers === 0 && stats.bootError === null;
  if (stats.workers.ready + stats.workers.working === 0 && !scaledToZero) return 'not_ready';
  return 'ready';
}

/**
 * Registers GET/HEAD routes for the configured paths in `app` (ordinary routes: onRequest hooks of
 * `app`, such as the access check, guard them). Returns the drain switch: call setDraining() from
 * a preClose hook so /ready answers 503 before the pool stops taking requests.
 */
export function registerHealth(app: FastifyInstance, pool: PoolView, options: ResolvedHealth): { setDraining(): void } {
  let draining = false;

  if (options.healthPath !== null) {
    app.route({
      method: ['GET', 'HEAD'],
      url: options.healthPath,
      exposeHeadRoute: false,
      handler: (request: FastifyRequest, reply: FastifyReply) => {
        markOpsRequest(request);
        const stats = pool.stats();
        const status = livenessOf(stats);
        return send(reply, status === 'ok' ? 200 : 503, status, workerCounts(stats));
      },
    });
  }

  if (options.readyPath !== null) {
    app.route({
      method: ['GET', 'HEAD'],
      url: options.readyPath,
      exposeHeadRoute: false,
      handler: (request: FastifyRequest, reply: FastifyReply) => {
        markOpsRequest(request);
        const stats = pool.stats();
        const status = readinessOf(stats, draining);
        return send(reply, status === 'ready' ? 200 : 503, status, workerCounts(stats));
      },
    });
  }

  return {
    setDraining() {
      draining = true;
    },
  };
}

function send(reply: FastifyReply, code: number, status: string, workers: WorkerCounts): FastifyReply {
  return reply
    .code(code)
    .header('cache-control', 'no-store')
    .type('application/json; charset=utf-8')
    .send(JSON.stringify({ status, workers }));
}
