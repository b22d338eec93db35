import type { ResolvedPoolOptions } from '../options.js';
import type { RecycleReason } from '../worker/state.js';
import type { PoolWorker } from '../worker/pool-worker.js';

type Worker = PoolWorker<unknown, unknown>;
import { readRss } from './rss.js';

/** What the supervisor needs from the pool: the workers, and a way to act on an idle one. */
export interface Supervised {
  liveWorkers(): Iterable<Worker>;
  /** workers booting now (a replacement on its way) */
  booting(): number;
  /** Recycles the worker now if it is idle; returns false when it is busy (then it is only marked). */
  recycleIfIdle(worker: Worker, reason: RecycleReason): boolean;
  /** Dynamic pool: retires an idle worker without replacement while above min_workers. */
  scaleDown(worker: Worker): boolean;
  /** A busy worker stayed over max_worker_memory during one request: kill it now (its request fails). */
  killOverMemory(worker: Worker, rssBytes: number): void;
  /** without exec_ttl, how long PHP may be silent before its request ends (php-cgi's read timeout); 0: never */
  silenceTimeoutMs?: number;
}

/**
 * watch_tick: ttl, idle_ttl and max_worker_memory. (exec_ttl and send_timeout follow each request
 * and frame, so they are per-request deadlines: exec-deadline.ts.) Timers mark; the pool acts: a busy worker is
 * recycled when released. One exception, memory: a worker seen over max_worker_memory at two ticks
 * in a row during the same request is killed at once (a runaway request would otherwise grow until
 * the machine swaps or the OOM killer picks a process, long before exec_ttl), when that request is
 * known to have grown it: the tick before saw the worker under the limit with no other request run
 * since, or it kept growing between the two ticks. One tick over is only marked: a request that
 * briefly peaks and finishes is not cut, nor one that inherited the memory of the request before it
 * (grown and ended between two ticks): its worker is recycled once it is done, as RoadRunner's
 * supervisor does.
 */
/** Between two ticks over max_worker_memory, what a request not known to have grown it must still grow by to be killed. */
const GROWTH_BYTES = 1024 * 1024;

export class Supervisor {
  readonly #options: ResolvedPoolOptions<unknown>;
  readonly #pool: Supervised;
  #timer: NodeJS.Timeout | null = null;
  #ticking = false;
  /** busy workers seen over max_worker_memory: the job they ran, their RSS, whether that job grew it */
  readonly #overMemory = new WeakMap<Worker, { job: number; rssBytes: number; grewIt: boolean }>();
  /** each worker at the last tick: its job count, whether it was running one, its RSS */
  readonly #lastSeen = new WeakMap<Worker, { jobs: number; working: boolean; rssBytes: number }>();
  /** the request (its start) each worker was last warned about as slow: one warning per request */
  readonly #slowWarned = new WeakMap<Worker, number>();

  constructor(options: ResolvedPoolOptions<unknown>, pool: Supervised) {
    this.#options = options;
    this.#pool = pool;
  }

  /** True when any supervised limit is set; otherwise the supervisor costs nothing. */
  static isNeeded(options: ResolvedPoolOptions<unknown>): boolean {
    return (
      options.ttlMs > 0 ||
      options.idleTtlMs > 0 ||
      options.maxWorkerMemoryBytes > 0 ||
      options.slowlogTimeoutMs > 0 ||
      options.dynamic !== null
    );
  }

  start(): void {
    if (this.#timer !== null) return;
    this.#timer = setInterval(() => void this.tick(), this.#options.watchTickMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  /** One look at every worker. Public so tests and `workers()` can run it on demand. */
  async tick(): Promise<void> {
    if (this.#ticking) return;
    this.#ticking = true;
    try {
      const now = Date.now();
      const { ttlMs, maxWorkerMemoryBytes, dynamic } = this.#options;
      // In a dynamic pool idle_ttl is the scale-down delay (handled below), not a recycle.
      const idleTtlMs = dynamic === null ? this.#options.idleTtlMs : 0;
      const checks: Promise<void>[] = [];
      // ttl retires one worker at a time, the next once the last one's replacement is ready:
      // workers booted together reach their ttl together, and retiring them all at once left the
      // site without a worker for one boot, every ttl (p99 = the boot time, a pool probe)
      let ttlTurn = ttlMs > 0 && this.#pool.booting() === 0;
      if (ttlTurn)
        for (const worker of this.#pool.liveWorkers())
          if (worker.markedFor === 'ttl' || (worker.retiredFor === 'ttl' && worker.state !== 'exited')) ttlTurn = false;
      for (const worker of this.#pool.liveWorkers()) {
        if (worker.state !== 'ready' && worker.state !== 'working') continue;
        if (worker.state === 'working') this.#checkSlow(worker, now);
        if (ttlMs > 0 && now - worker.createdAt >= ttlMs && worker.markedFor === null && worker.retiredFor === null) {
          if (ttlTurn) {
            ttlTurn = false;
            this.#act(worker, 'ttl');
            continue;
          }
        }
        // RR semantics: a worker that never served is never idle-reaped.
        if (idleTtlMs > 0 && worker.state === 'ready' && worker.jobs > 0 && now - worker.lastUsedAt >= idleTtlMs) {
          this.#act(worker, 'idle_ttl');
          continue;
        }
        // Dynamic pool: an idle worker (used or not) above min_workers leaves without replacement.
        if (
          dynamic !== null &&
          worker.state === 'ready' &&
          worker.markedFor === null &&
          now - Math.max(worker.lastUsedAt, worker.createdAt) >= dynamic.idleMs
        ) {
          if (this.#pool.scaleDown(worker)) continue;
        }
        if (maxWorkerMemoryBytes > 0) {
          checks.push(
            readRss(worker.pid).then((rss) => {
              worker.rssBytes = rss;
              const working = worker.state === 'working';
              const before = this.#lastSeen.get(worker);
              this.#lastSeen.set(worker, { jobs: worker.jobs, working, rssBytes: rss });
              if (rss <= maxWorkerMemoryBytes) return;
              if (working) {
                const seen = this.#overMemory.get(worker);
                if (seen !== undefined && seen.job === worker.jobs) {
                  if (seen.grewIt || rss >= seen.rssBytes + GROWTH_BYTES) {
                    this.#pool.killOverMemory(worker, rss);
                    return;
                  }
                } else {
                  // under the limit at the last tick and no request but this one ran since, or
                  // never seen before and this is its first request
                  const grewIt =
                    before === undefined
                      ? worker.jobs === 1
                      : before.rssBytes <= maxWorkerMemoryBytes &&
                        worker.jobs - before.jobs === (before.working ? 0 : 1);
                  this.#overMemory.set(worker, { job: worker.jobs, rssBytes: rss, grewIt });
                }
              }
              this.#act(worker, 'memory');
            }),
          );
        }
      }
      await Promise.all(checks);
    } finally {
      this.#ticking = false;
    }
  }

  /**
   * request_slowlog_timeout (php-fpm's slowlog without the stack trace): a request running past it
   * is named once, with its worker and how long it has run, so a worker held by one request that
   * never ends is seen before the 503s it causes.
   */
  #checkSlow(worker: Worker, now: number): void {
    const slowMs = this.#options.slowlogTimeoutMs;
    const ranMs = now - worker.execStartedAt;
    if (slowMs === 0 || ranMs < slowMs || this.#slowWarned.get(worker) === worker.execStartedAt) return;
    this.#slowWarned.set(worker, worker.execStartedAt);
    const execTtlMs = this.#options.execTtlMs;
    const silenceMs = this.#pool.silenceTimeoutMs ?? 0;
    const request = worker.execLabel ?? 'a request';
    this.#options.logger.warn(
      { workerPid: worker.pid, request: worker.execLabel, durationMs: ranMs, reason: 'slow_request' },
      `worker ${worker.pid} has run ${request} for ${Math.round(ranMs / 1000)}s (over request_slowlog_timeout ${slowMs / 1000}s); ${
        execTtlMs > 0
          ? `exec_ttl ends it at ${execTtlMs / 1000}s`
          : `it holds its worker until it ends${
              silenceMs > 0
                ? ` (its client gets 504 once PHP is silent for ${silenceMs / 1000}s; the script runs on, killed stream_timeout later)`
                : ''
            }: set http.pool.supervisor.exec_ttl to bound a request`
      }`,
    );
  }

  #act(worker: Worker, reason: RecycleReason): void {
    if (worker.markedFor !== null || worker.retiredFor !== null) return;
    if (!this.#pool.recycleIfIdle(worker, reason)) worker.markedFor = reason;
  }
}
