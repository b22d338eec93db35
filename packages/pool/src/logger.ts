/** The logger shape the pool writes to: pino's, so a pino instance (or child) plugs in as is. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = () => {};

/** Default when none is given: warnings and errors to stderr, the rest dropped. */
export const STDERR_LOGGER: Logger = {
  debug: noop,
  info: noop,
  warn: (obj, msg) => process.stderr.write(`warmpool warn: ${msg ?? ''} ${JSON.stringify(obj)}\n`),
  error: (obj, msg) => process.stderr.write(`warmpool error: ${msg ?? ''} ${JSON.stringify(obj)}\n`),
};

export const SILENT_LOGGER: Logger = { debug: noop, info: noop, warn: noop, error: noop };

/**
 * Events that come in floods (refused requests, closed connections), written at most once per
 * period: the first at once, then how many came since the last line. A line per event would let a
 * flood fill the disk and cost the one Node thread more than the events did.
 */
export class ThrottledCount {
  readonly #everyMs: number;
  #at = Number.NEGATIVE_INFINITY;
  #since = 0;

  constructor(everyMs = 10_000) {
    this.#everyMs = everyMs;
  }

  /** Counts `n` more; returns how many to report now (all since the last report), or 0 within the period. */
  add(n = 1): number {
    this.#since += n;
    const now = Date.now();
    if (now - this.#at < this.#everyMs) return 0;
    const count = this.#since;
    this.#at = now;
    this.#since = 0;
    return count;
  }
}
