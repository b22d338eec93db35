/**
 * exec_ttl and send_timeout: the two limits that interrupt a busy worker, kept here beside the
 * supervisor's tick-based limits so a reader looking for "where is a hung worker killed" finds
 * them. The worker arms one ExecDeadline per request (its timers must follow each frame, which a
 * watch_tick cannot); when exec_ttl runs out the worker is killed (`Worker#killOnExecTtl`, 504),
 * when send_timeout runs out on a stalled stream the stream is cancelled (`Worker#armStallTimer`).
 */
export class ExecDeadline {
  readonly #ms: number;
  readonly #onExpire: () => void;
  #timer: NodeJS.Timeout | null = null;

  /** `ms` 0 means no deadline: every method is then a no-op. */
  constructor(ms: number, onExpire: () => void) {
    this.#ms = ms;
    this.#onExpire = onExpire;
  }

  get ms(): number {
    return this.#ms;
  }

  /** Starts the deadline, or restarts it from now (a stream frame arrived). */
  arm(): void {
    if (this.#ms <= 0) return;
    if (this.#timer !== null) this.#timer.refresh();
    else
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#onExpire();
      }, this.#ms);
  }

  clear(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
