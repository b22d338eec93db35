import type { ResolvedPoolOptions } from '../options.js';
import type { RecycleReason } from '../worker/state.js';
import type { PoolWorker } from '../worker/pool-worker.js';

type Worker = PoolWorker<unknown, unknown>;
import { readRss } from './rss.js';

/** What the supervisor needs from the pool: the workers, and a way to act on an idle one. */
export interface Supervised {
  liveWorkers(): Iterable<Worker>;
  /** Recycles the worker now if it is idle; returns false when it is busy (then it is only marked). */
  recycleIfIdle(worker: Worker, reason: RecycleReason): boolean;
  /** Dynamic pool: retires an idle worker without replacement while above min_workers. */
  scaleDown(worker: Worker): boolean;
  /** A busy worker stayed over max_worker_memory during one request: kill it now (its request fails). */
  killOverMemory(worker: Worker, rssBytes: number): void;
}

/**
 * watch_tick: ttl, idle_ttl and max_worker_memory. (exec_ttl and send_timeout follow each request
 * and frame, so they are per-request deadlines: exec-deadline.ts.) Timers mark; the pool acts: a busy worker is
 * recycled when released. One exception, memory: a worker seen over max_worker_memory at two ticks
 * in a row during the same request is killed at once (a runaway request would otherwise grow until
 * the machine swaps or the OOM killer picks a process, long before exec_ttl), as RoadRunner's
 * supervisor checks every watch_tick. One tick over is only marked: a request that briefly peaks
 * and finishes is not cut.
 */
export class Supervisor {
  readonly #options: ResolvedPoolOptions<unknown>;
  readonly #pool: Supervised;
  #timer: NodeJS.Timeout | null = null;
  #ticking = false;
  /** busy workers seen over max_worker_memory: the job number they were running then */
  readonly #overMemory = new WeakMap<Worker, number>();

  constructor(options: ResolvedPoolOptions<unknown>, pool: Supervised) {
    this.#options = options;
    this.#pool = pool;
  }

  /** True when any supervised limit is set; otherwise the supervisor costs nothing. */
  static isNeeded(options: ResolvedPoolOptions<unknown>): boolean {
    return options.ttlMs > 0 || options.idleTtlMs > 0 || options.maxWorkerMemoryBytes > 0 || options.dynamic !== null;
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
      for (const worker of this.#pool.liveWorkers()) {
        if (worker.state !== 'ready' && worker.state !== 'working') continue;
        if (ttlMs > 0 && now - worker.createdAt >= ttlMs) {
          this.#act(worker, 'ttl');
          continue;
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
              if (rss <= maxWorkerMemoryBytes) return;
              if (worker.state === 'working') {
                if (this.#overMemory.get(worker) === worker.jobs) {
                  this.#pool.killOverMemory(worker, rss);
                  return;
                }
                this.#overMemory.set(worker, worker.jobs);
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

  #act(worker: Worker, reason: RecycleReason): void {
    if (worker.markedFor !== null || worker.retiredFor !== null) return;
    if (!this.#pool.recycleIfIdle(worker, reason)) worker.markedFor = reason;
  }
}
