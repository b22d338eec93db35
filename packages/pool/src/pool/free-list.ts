import type { CancelSignal } from '../cancel.js';
interface Waiter<Worker> {
  resolve(worker: Worker): void;
  reject(error: Error): void;
  deadline: number;
  /** what it waits to run, for offer() */
  tag: unknown;
}

/** Why a waiter left the queue before it got a worker: its caller aborted (the client went away). */
export type AbortedWaitError = (reason: unknown) => Error;

/**
 * Ready workers, most recently used first (its code and data are hot in CPU caches and PHP's
 * opcache), and FIFO waiters for a worker. All waiters share one timeout, so one timer armed for the
 * oldest waiter covers them all.
 */
export class FreeList<Worker> {
  readonly #ready: Worker[] = [];
  #waiters: (Waiter<Worker> | null)[] = [];
  #head = 0;
  /** waiters ever dropped from the array's front by compaction: slot numbers stay valid across it */
  #shifted = 0;
  /** waiters that left the queue early (aborted) and still hold a null slot after the head */
  #gone = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly #timeoutMs: number;
  readonly #onTimeout: (waited: number) => Error;

  constructor(timeoutMs: number, onTimeout: (waitedMs: number) => Error) {
    this.#timeoutMs = timeoutMs;
    this.#onTimeout = onTimeout;
  }

  get readyCount(): number {
    return this.#ready.length;
  }

  get waiting(): number {
    return this.#waiters.length - this.#head - this.#gone;
  }

  /** The most recently used ready worker, or null. */
  take(): Worker | null {
    return this.#ready.pop() ?? null;
  }

  /** Hands a ready worker to the oldest waiter, or keeps it on top of the stack. */
  put(worker: Worker): void {
    const waiter = this.#shift();
    if (waiter !== null) waiter.resolve(worker);
    else this.#ready.push(worker);
  }

  /** Removes an idle worker (supervisor, reset); false when it was not idle here. */
  remove(worker: Worker): boolean {
    const index = this.#ready.indexOf(worker);
    if (index < 0) return false;
    this.#ready.splice(index, 1);
    return true;
  }

  /** A snapshot of the idle workers. */
  idle(): readonly Worker[] {
    return this.#ready.slice();
  }

  /**
   * Waits for a worker, at most the allocate timeout. When `signal` aborts first (the client went
   * away), the waiter leaves the queue at once and rejects with `aborted(reason)`: a request nobody
   * will read never reaches PHP.
   */
  wait(signal?: CancelSignal, aborted?: AbortedWaitError, tag?: unknown): Promise<Worker> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + this.#timeoutMs;
      if (signal?.aborted === true) {
        reject(aborted === undefined ? (signal.reason as Error) : aborted(signal.reason));
        return;
      }
      if (signal === undefined) {
        this.#waiters.push({ resolve, reject, deadline, tag });
      } else {
        const slot = this.#shifted + this.#waiters.length;
        const onAbort = (): void => {
          // the slot may have been handed a worker or compacted away already: only a live slot leaves
          if (this.#waiters[slot - this.#shifted] !== waiter) return;
          this.#waiters[slot - this.#shifted] = null;
          this.#gone++;
          reject(aborted === undefined ? (signal.reason as Error) : aborted(signal.reason));
        };
        const waiter: Waiter<Worker> = {
          resolve: (worker) => {
            signal.removeEventListener('abort', onAbort);
            resolve(worker);
          },
          reject: (error) => {
            signal.removeEventListener('abort', onAbort);
            reject(error);
          },
          deadline,
          tag,
        };
        this.#waiters.push(waiter);
        signal.addEventListener('abort', onAbort, { once: true });
      }
      if (this.#timer === null) this.#arm();
    });
  }

  /**
   * Hands a busy worker to the oldest waiter whose tag it `accepts` (a request it can queue behind
   * the one it runs); false when none does. A waiter it passes over keeps its place.
   */
  offer(worker: Worker, accepts: (tag: unknown) => boolean): boolean {
    for (let i = this.#head; i < this.#waiters.length; i++) {
      const waiter = this.#waiters[i];
      if (waiter === null || waiter === undefined || !accepts(waiter.tag)) continue;
      this.#waiters[i] = null;
      this.#gone++;
      // under pipelining most waiters leave through here, not through #shift: without this the
      // holes would pile up at the front until a worker came free, each offer walking all of them
      this.#skipHoles();
      waiter.resolve(worker);
      return true;
    }
    return false;
  }

  /** Queue slots held: live waiters and the holes left behind them (for tests). */
  get slots(): number {
    return this.#waiters.length - this.#head;
  }

  /** Rejects every waiter (pool closing). */
  rejectAll(error: Error): void {
    const waiters = this.#waiters.slice(this.#head);
    this.#shifted += this.#waiters.length;
    this.#waiters = [];
    this.#head = 0;
    this.#gone = 0;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    for (const waiter of waiters) waiter?.reject(error);
  }

  /** The oldest live waiter, taken off the queue; null when none waits. */
  #shift(): Waiter<Worker> | null {
    while (this.#head < this.#waiters.length) {
      const waiter = this.#waiters[this.#head];
      this.#waiters[this.#head++] = null;
      if (waiter === null || waiter === undefined) {
        this.#gone--;
        continue;
      }
      this.#compact();
      return waiter;
    }
    this.#compact();
    return null;
  }

  /** Drops the holes at the front of the queue (waiters that left through offer() or an abort). */
  #skipHoles(): void {
    while (this.#head < this.#waiters.length && this.#waiters[this.#head] === null) {
      this.#head++;
      this.#gone--;
    }
    this.#compact();
  }

  #arm(): void {
    // the oldest live waiter has the nearest deadline (all share one timeout)
    let oldest: Waiter<Worker> | null | undefined = null;
    for (let i = this.#head; i < this.#waiters.length && oldest === null; i++) oldest = this.#waiters[i];
    if (oldest === null || oldest === undefined) {
      this.#timer = null;
      return;
    }
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, oldest.deadline - Date.now()));
  }

  #expire(): void {
    const now = Date.now();
    while (this.#head < this.#waiters.length) {
      const waiter = this.#waiters[this.#head];
      if (waiter !== null && waiter !== undefined && waiter.deadline > now) break;
      this.#waiters[this.#head++] = null;
      if (waiter === null || waiter === undefined) this.#gone--;
      else waiter.reject(this.#onTimeout(this.#timeoutMs));
    }
    this.#compact();
    this.#arm();
  }

  #compact(): void {
    if (this.#head === this.#waiters.length) {
      this.#shifted += this.#waiters.length;
      this.#waiters = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#waiters.length) {
      this.#shifted += this.#head;
      this.#waiters = this.#waiters.slice(this.#head);
      this.#head = 0;
    }
  }
}
