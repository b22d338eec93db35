import type { Worker } from '../worker/worker.js';

interface Waiter {
  resolve(worker: Worker): void;
  reject(error: Error): void;
  deadline: number;
}

/**
 * Ready workers, most recently used first (its code and data are hot in CPU caches and PHP's
 * opcache), and FIFO waiters for a worker. All waiters share one timeout, so one timer armed for the
 * oldest waiter covers them all.
 */
export class FreeList {
  readonly #ready: Worker[] = [];
  #waiters: (Waiter | null)[] = [];
  #head = 0;
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
    return this.#waiters.length - this.#head;
  }

  /** The most recently used ready worker, or null. */
  take(): Worker | null {
    return this.#ready.pop() ?? null;
  }

  /** Hands a ready worker to the oldest waiter, or keeps it on top of the stack. */
  put(worker: Worker): void {
    while (this.#head < this.#waiters.length) {
      const waiter = this.#waiters[this.#head]!;
      this.#waiters[this.#head++] = null;
      this.#compact();
      waiter.resolve(worker);
      return;
    }
    this.#ready.push(worker);
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

  wait(): Promise<Worker> {
    return new Promise((resolve, reject) => {
      this.#waiters.push({ resolve, reject, deadline: Date.now() + this.#timeoutMs });
      if (this.#timer === null) this.#arm();
    });
  }

  /** Rejects every waiter (pool closing). */
  rejectAll(error: Error): void {
    const waiters = this.#waiters.slice(this.#head);
    this.#waiters = [];
    this.#head = 0;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    for (const waiter of waiters) waiter?.reject(error);
  }

  #arm(): void {
    const oldest = this.#waiters[this.#head];
    if (oldest === undefined || oldest === null) {
      this.#timer = null;
      return;
    }
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, oldest.deadline - Date.now()));
  }

  #expire(): void {
    const now = Date.now();
    while (this.#head < this.#waiters.length) {
      const waiter = this.#waiters[this.#head]!;
      if (waiter.deadline > now) break;
      this.#waiters[this.#head++] = null;
      waiter.reject(this.#onTimeout(this.#timeoutMs));
    }
    this.#compact();
    this.#arm();
  }

  #compact(): void {
    if (this.#head === this.#waiters.length) {
      this.#waiters = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#waiters.length) {
      this.#waiters = this.#waiters.slice(this.#head);
      this.#head = 0;
    }
  }
}
