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
 * flood fill the disk and cost the one Node thread more than the events did. What a period holds
 * back is written when the period ends (one unref'd timer, armed only while a count is held back),
 * not at the next such event: a burst's tail was missing until then, or for good.
 */
export class ThrottledCount {
  readonly #everyMs: number;
  readonly #report: (count: number) => void;
  #at = Number.NEGATIVE_INFINITY;
  #since = 0;
  #timer: NodeJS.Timeout | null = null;

  /** `report(count)` writes the line: at once for the first event of a quiet spell, else at the period's end. */
  constructor(report: (count: number) => void, everyMs = 10_000) {
    this.#report = report;
    this.#everyMs = everyMs;
  }

  /** Counts `n` more: reported now when the last report is a period old, else when the period ends. */
  add(n = 1): void {
    this.#since += n;
    const wait = this.#at + this.#everyMs - Date.now();
    if (wait <= 0) this.flush();
    else if (this.#timer === null) {
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.flush();
      }, wait);
      this.#timer.unref();
    }
  }

  /** Reports what is held back now, if anything (also when its owner closes). */
  flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#since === 0) return;
    const count = this.#since;
    this.#at = Date.now();
    this.#since = 0;
    this.#report(count);
  }
}
