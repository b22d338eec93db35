import type { Logger } from '../logger.js';

const KEEP_LINES = 20;
/** PHP's line that names an error (the first of an uncaught exception's, before its stack trace). */
export const PHP_ERROR_LINE = /\b(?:Fatal error|Parse error|Uncaught [A-Za-z_\\]+)/;
/**
 * A longer line is cut there and the rest of it dropped, as php-fpm's log_limit (1 KiB) and nginx
 * (2 KiB) do: one fwrite(STDERR) of 20 MB was logged whole, 64 KiB "lines" at up to 64 MB/s.
 */
export const MAX_LINE_CHARS = 8192;
/** What a cut line ends with. */
export const CUT_MARK = ' … (line cut: longer than the log takes)';

/** A line as logged: at most MAX_LINE_CHARS characters, marked when cut. */
export function clipLine(line: string): string {
  return line.length > MAX_LINE_CHARS ? line.slice(0, MAX_LINE_CHARS) + CUT_MARK : line;
}

/**
 * The level of a PHP output line: its errors at error, its warnings at warn, the rest at
 * `otherwise`. An operator's `logs.level: warn` or `error` kept no PHP Fatal error of a classic
 * site (logged at warn) and no warning of a worker (logged at info); nginx logs PHP's stderr at
 * [error] whatever it says.
 */
export function phpLineLevel(line: string, otherwise: 'info' | 'warn'): 'error' | 'warn' | 'info' {
  if (PHP_ERROR_LINE.test(line) || PHP_TRACE_LINE.test(line)) return 'error';
  if (PHP_WARNING_LINE.test(line)) return 'warn';
  return otherwise;
}
const PHP_WARNING_LINE = /\bWarning: /;
/** The lines of an uncaught exception's stack trace, after its error line: kept with it at error. */
const PHP_TRACE_LINE = /^(?:PHP message: )?(?:PHP )?(?:Stack trace:|#\d+ |\s+thrown in )/;
/** How many of the last lines a message shows (lastOutputText). */
export const SHOWN_LINES = 5;
/** Lines logged per worker per second; a flood beyond that is counted, not logged. */
const MAX_LINES_PER_SECOND = 1000;

/**
 * Turns a worker's free-text output (stderr; stdout too with the fds relay) into log lines tagged
 * with its pid, and keeps the last few lines so a crash or failed boot can explain itself.
 */
export class WorkerOutput {
  readonly #logger: Logger;
  readonly #stream: 'stderr' | 'stdout';
  #pid: number;
  #partial = '';
  /** a line longer than MAX_LINE_CHARS was logged cut: the rest of it is dropped */
  #cutting = false;
  readonly #recent: string[] = [];
  /** the last line naming a PHP error: kept when its stack trace pushes it out of #recent */
  #phpError: string | null = null;
  #windowStart = 0;
  #windowLines = 0;
  #suppressed = 0;
  /** writes the count of dropped lines when their second ends (unref'd; armed only while lines are dropped) */
  #suppressedTimer: NodeJS.Timeout | null = null;
  /** lines held back from the log while the process boots (hold()), or null */
  #held: string[] | null = null;

  /** the request the worker runs now ("GET /path"), for its lines; null between requests */
  readonly #request: () => string | null;

  constructor(logger: Logger, pid: number, stream: 'stderr' | 'stdout', request: () => string | null = () => null) {
    this.#logger = logger;
    this.#pid = pid;
    this.#stream = stream;
    this.#request = request;
  }

  write(chunk: Buffer): void {
    let text = chunk.toString('utf8');
    if (this.#cutting) {
      // the rest of a line already logged cut: dropped up to its end
      const end = text.indexOf('\n');
      if (end === -1) return;
      this.#cutting = false;
      text = text.slice(end + 1);
    }
    const lines = (this.#partial + text).split('\n');
    this.#partial = lines.pop() ?? '';
    if (this.#partial.length > MAX_LINE_CHARS) {
      lines.push(this.#partial);
      this.#partial = '';
      this.#cutting = true;
    }
    for (const line of lines) this.#emit(clipLine(line));
  }

  flush(): void {
    if (this.#partial !== '') this.#emit(this.#partial);
    this.#partial = '';
    this.#reportSuppressed();
  }

  /** Holds lines back from the log until release(): a boot that fails may explain them better. */
  hold(): void {
    this.#held ??= [];
  }

  /** Ends hold(): logs the lines held back, or drops them (a boot failure that says it all). */
  release(log: boolean): void {
    const held = this.#held ?? [];
    this.#held = null;
    if (log) for (const line of held) this.#log(line);
    else this.#suppressed = 0;
  }

  /**
   * The last lines printed, for boot-failure and crash messages. When PHP's error line has scrolled
   * out of the last few (an uncaught exception's stack trace follows it: 40 frames from Laravel),
   * it comes first, then "…", then the last lines.
   */
  get recent(): readonly string[] {
    const error = this.#phpError;
    if (error === null || this.#recent.slice(-SHOWN_LINES).includes(error)) return this.#recent;
    return [error, '…', ...this.#recent.slice(-(SHOWN_LINES - 2))];
  }

  #emit(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '') return;
    this.#recent.push(line);
    if (this.#recent.length > KEEP_LINES) this.#recent.shift();
    if (PHP_ERROR_LINE.test(line)) this.#phpError = line;
    if (this.#held !== null) {
      if (this.#held.length < MAX_LINES_PER_SECOND) this.#held.push(line);
      else this.#suppressed++;
      return;
    }
    this.#log(line);
  }

  #log(line: string): void {
    // A worker flooding its output must not flood (or stall) the server's log.
    const now = Date.now();
    if (now - this.#windowStart >= 1000) {
      this.#reportSuppressed();
      this.#windowStart = now;
      this.#windowLines = 0;
    }
    if (++this.#windowLines > MAX_LINES_PER_SECOND) {
      // said when the second ends, not at the next line, which may never come
      this.#suppressed++;
      if (this.#suppressedTimer === null) {
        this.#suppressedTimer = setTimeout(() => this.#reportSuppressed(), this.#windowStart + 1000 - now);
        this.#suppressedTimer.unref();
      }
      return;
    }
    // the request it ran, so a warning can be matched to its access-log line
    const request = this.#request();
    this.#logger[phpLineLevel(line, 'info')](
      request === null
        ? { workerPid: this.#pid, stream: this.#stream }
        : { workerPid: this.#pid, stream: this.#stream, request },
      line,
    );
  }

  #reportSuppressed(): void {
    if (this.#suppressedTimer !== null) clearTimeout(this.#suppressedTimer);
    this.#suppressedTimer = null;
    if (this.#suppressed === 0) return;
    this.#logger.warn(
      { workerPid: this.#pid, stream: this.#stream, suppressed: this.#suppressed },
      `worker ${this.#pid} wrote ${this.#suppressed} more ${this.#stream} lines than the ${MAX_LINES_PER_SECOND}/s log limit; they were dropped`,
    );
    this.#suppressed = 0;
  }
}
