// Requests refused because every worker (or every php-fpm connection) is busy and the queue is
// full: load shedding, the 503 the pool is there to give, not a failure of PHP. Logged as one
// ERROR line each, a flood wrote as many lines as it sent requests (measured: 82,733 lines, 24.6 MB
// in 8 s against one worker), filling the disk and costing the one Node thread more than the
// refusals did. One warning per site at most every 10 s instead, with the count refused since by
// code; the first refusal of a quiet spell is written at once.
import type { FastifyBaseLogger } from 'fastify';

/** Error codes that mean "overloaded, try again" (503 with Retry-After), not "broken". */
const SHEDDING_CODES: ReadonlySet<string> = new Set([
  'WP_POOL_NO_FREE_WORKER',
  'WP_POOL_QUEUE_FULL',
  'WP_FASTCGI_QUEUE_FULL',
  'WP_FASTCGI_NO_FREE_CONNECTION',
  'WP_FASTCGI_OVERLOADED',
]);

export const OVERLOAD_LOG_EVERY_MS = 10_000;

export class OverloadLog {
  readonly #everyMs: number;
  #lastAt = -Infinity;
  /** refused since the last line, by code */
  #since = new Map<string, number>();

  constructor(everyMs = OVERLOAD_LOG_EVERY_MS) {
    this.#everyMs = everyMs;
  }

  /** Whether `code` is load shedding, which `refused` logs instead of the caller. */
  static sheds(code: string | undefined): boolean {
    return code !== undefined && SHEDDING_CODES.has(code);
  }

  /** Counts one refusal; writes the summary line when the last one is `everyMs` old. */
  refused(log: FastifyBaseLogger, code: string, message: string): void {
    this.#since.set(code, (this.#since.get(code) ?? 0) + 1);
    const now = Date.now();
    if (now - this.#lastAt < this.#everyMs) return;
    const refused = Object.fromEntries(this.#since);
    let total = 0;
    for (const count of this.#since.values()) total += count;
    log.warn(
      { refused, err: { code, message } },
      `overloaded: refused ${total} request(s) with 503 since the last such line (${message}); raise num_workers or max_queue_size if the machine has room`,
    );
    this.#lastAt = now;
    this.#since = new Map();
  }
}
