import type { ResolvedPoolOptions } from '../options.js';
import type { RecycleReason } from '../worker/state.js';
import type { Worker } from '../worker/worker.js';
import { readRss } from './rss.js';

/** What the supervisor needs from the pool: the workers, and a way to act on an idle one. */
export interface Supervised {
  liveWorkers(): Iterable<Worker>;
  /** Recycles the worker now if it is idle; returns false when it is busy (then it is only marked). */
  recycleIfIdle(worker: Worker, reason: RecycleReason): boolean;
  /** Dynamic pool: retires an idle worker without replacement while above min_workers. */
  scaleDown(worker: Worker): boolean;
}

/**
 * watch_tick: ttl, idle_ttl and max_worker_memory. Timers mark; the pool acts: a busy worker is
 * never cut here (only exec_ttl interrupts a request), it is recycled when released.
 */
export class Supervisor {
  readonly #options: ResolvedPoolOptions;
  readonly #pool: Supervised;
  #timer: NodeJS.Timeout | null = null;
  #ticking = false;

  constructor(options: ResolvedPoolOptions, pool: Supervised) {
    this.#options = options;
    this.#pool = pool;
  }

  /** True when any supervised limit is set; otherwise the supervisor costs nothing. */
  static isNeeded(options: ResolvedPoolOptions): boolean {
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
              if (rss > maxWorkerMemoryBytes) this.#act(worker, 'memory');
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
