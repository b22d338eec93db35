// Classic mode's backends, set up from the site's options: the pool's keys (http.pool) as the
// connection pool to an external php-fpm reads them, that connection pool as health and metrics see
// a pool, and num_workers: auto's warm-up requests for managed php-cgi.
import {
  type CgiRequest,
  QUEUE_PER_WORKER,
  type PoolStats,
  type ResolvedPoolOptions,
  toFastCgiParams,
  type WorkerInfo,
  type WorkerState,
} from '@warmpool/pool';
import {
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_READ_TIMEOUT_MS,
  type FastCgiAddress,
  type FastCgiClientPool,
  type FastCgiClientPoolOptions,
} from '@warmpool/pool/fastcgi';
import type { ResolvedClassic } from './classic.js';
import { warmupExchangeRequest } from './http/exchange-request.js';
import type { PoolView } from './health.js';

/**
 * The pool keys that mean something for an external php-fpm, as one design with managed workers:
 * allocate_timeout (wait for a connection), max_queue_size (0: unlimited, default 16 per
 * connection), exec_ttl (PHP's silence; nginx's fastcgi_read_timeout, 60 s when unset),
 * send_timeout (a reader that stopped reading). Not stream_timeout: an aborted request's connection
 * is cut at once.
 */
export function passClientOptions(
  address: FastCgiAddress,
  classic: Pick<ResolvedClassic, 'maxConnections' | 'pipelining' | 'keepaliveTimeMs' | 'keepaliveTimeoutMs'>,
  pool: ResolvedPoolOptions<unknown>,
): FastCgiClientPoolOptions {
  const connections = classic.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  const queue = pool.maxQueueSize ?? QUEUE_PER_WORKER * connections;
  return {
    address,
    maxConnections: connections,
    maxQueue: queue === 0 ? Number.MAX_SAFE_INTEGER : queue,
    queueTimeoutMs: pool.allocateTimeoutMs,
    readTimeoutMs: pool.execTtlMs > 0 ? pool.execTtlMs : DEFAULT_READ_TIMEOUT_MS,
    // a client that leaves: the connection is cut at once, as nginx cuts its own, so PHP stops the
    // script at its next output (php-fpm reads nothing while a script runs, ABORT_REQUEST included)
    abortTimeoutMs: 0,
    stallTimeoutMs: pool.sendTimeoutMs,
    // fastcgi.pipelining: false (the client pool's default window otherwise)
    ...(classic.pipelining ? {} : { queueBehindMs: 0 }),
    // fastcgi.keepalive_time (the client pool's default otherwise)
    ...(classic.keepaliveTimeMs === undefined ? {} : { maxConnectionAgeMs: classic.keepaliveTimeMs }),
    // fastcgi.keepalive_timeout (60 s, nginx's, otherwise)
    ...(classic.keepaliveTimeoutMs === undefined ? {} : { idleTimeoutMs: classic.keepaliveTimeoutMs }),
    logger: pool.logger,
  };
}

/**
 * num_workers: auto measures a warmed php-cgi: GET each warm-up path that resolves to a script
 * (a static file or a 404 warms nothing).
 */
export async function classicWarmup(classic: ResolvedClassic, paths: readonly string[]): Promise<CgiRequest[]> {
  const requests: CgiRequest[] = [];
  for (const path of paths) {
    if (typeof path !== 'string' || !path.startsWith('/')) continue;
    const verdict = await classic.resolver.resolve(path);
    if (verdict.kind !== 'script') continue;
    requests.push({
      params: toFastCgiParams(warmupExchangeRequest(path, verdict), verdict, undefined, classic.params),
      stdin: null,
      signal: null,
      onStderr: null,
    });
  }
  return requests;
}

/**
 * The external php-fpm as health and metrics see a pool. Its processes are php-fpm's, not ours, so
 * they are counted as the connections warmpool may hold to it: the target is the capacity (what
 * php-fpm serves at once, max_connections until warmpool finds fewer children), ready = connections
 * it may still use (capacity - busy - opening), working = busy, booting = opening; none ready while
 * php-fpm does not answer (no socket, connection refused), so /ready says not_ready and a
 * blue-green swap keeps the old server. The request and error counters and the queue are the
 * connection pool's.
 */
export function passPoolView(client: FastCgiClientPool): PoolView {
  return {
    stats(): PoolStats {
      const s = client.stats();
      const workers: Record<WorkerState, number> = {
        booting: s.connecting,
        ready: s.unreachable === null ? Math.max(0, s.capacity - s.busy - s.connecting) : 0,
        working: s.busy,
        stopping: 0,
        exited: 0,
      };
      return {
        numWorkers: s.capacity,
        workers,
        queued: s.queued,
        requests: s.requests,
        pipelined: s.pipelined,
        errors: s.errors,
        recycles: {},
        bootFailures: 0,
        bootError: null,
        closing: s.closing,
      };
    },
    // php-fpm's processes are not ours to list
    workers: async (): Promise<WorkerInfo[]> => [],
  };
}
