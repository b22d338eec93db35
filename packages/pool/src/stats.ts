import type { RecycleReason, WorkerState } from './worker/state.js';

/** One worker as the CLI's `workers` table and the metrics see it. */
export interface WorkerInfo {
  pid: number;
  state: WorkerState;
  jobs: number;
  rssBytes: number;
  /** ms since the worker was spawned */
  ageMs: number;
  /** ms since its last request ended; null when it has not served yet */
  idleMs: number | null;
  markedFor: RecycleReason | null;
  /** wall time spent on requests so far, in ms (the current one included) */
  busyMs: number;
  /** how long its current request has run, in ms; null when it runs none */
  requestMs: number | null;
  /** its current request as the caller labelled it ("GET /path"); null when it runs none or has no label */
  request: string | null;
}

/** A snapshot of the pool for metrics, health and the CLI. */
export interface PoolStats {
  /** current target size (fixed, measured by num_workers: auto, or moving within a dynamic pool's bounds) */
  numWorkers: number;
  workers: Record<WorkerState, number>;
  /** requests waiting for a free worker */
  queued: number;
  /** executions started */
  requests: number;
  /**
   * requests queued behind a running one on a busy PHP process (pipelining to php-cgi, or to
   * php-fpm): PHP went on to them without a round trip through warmpool
   */
  pipelined: number;
  /** failed executions by error code */
  errors: Record<string, number>;
  /** workers that left service, by reason */
  recycles: Partial<Record<RecycleReason, number>>;
  /** boots that failed since start */
  bootFailures: number;
  /** the latest boot failure's message, while boots keep failing; null once one succeeds */
  bootError: string | null;
  closing: boolean;
}

/** Typed pool events; payloads are plain objects so a logger or metrics can take them as is. */
export interface PoolEvents {
  'worker:ready': [{ pid: number; bootMs: number }];
  'worker:exit': [{ pid: number; code: number | null; signal: string | null; reason: RecycleReason | null }];
  'worker:recycle': [{ pid: number; reason: RecycleReason }];
  'pool:queue-full': [{ queued: number }];
  'pool:boot-failed': [{ error: Error; attempt: number; retryInMs: number }];
  'pool:reset-progress': [{ replaced: number; total: number }];
  /** every worker is replaced; these old ones still run a request, killed after timeoutMs (reset_timeout) */
  'pool:reset-waiting': [{ pids: number[]; timeoutMs: number }];
  'pool:sized': [{ numWorkers: number; line: string }];
  'pool:scale': [{ from: number; to: number; reason: 'demand' | 'idle' }];
}
