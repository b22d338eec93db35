// A request's STDERR records as log lines: PHP warnings and error_log() messages arrive in records
// cut anywhere, so the bytes are kept until a newline (or the request's end), a runaway line is
// cut into pieces (so many at most), and php-fpm's joined messages are split again.
import { CUT_MARK } from '../worker/output.js';

/** A longer STDERR line is cut into pieces of this size (a runaway var_dump to error_log). */
export const MAX_STDERR_LINE_BYTES = 8 * 1024;
/**
 * Pieces of one line logged at most (128 KiB); the rest of the line is dropped, and its last piece
 * says so. php-fpm joins a request's messages into one line, so a line may hold many short ones,
 * but a 4 MB error_log() was logged whole, and one 20 MB write as 2,500 pieces.
 */
export const MAX_STDERR_LINE_PIECES = 16;

/** How php-fpm separates the messages it sends as one STDERR line. */
const FPM_JOINED = '; PHP message: ';

export class StderrLines {
  readonly #onLine: ((line: string) => void) | null;
  #parts: Buffer[] = [];
  #bytes = 0;
  /** pieces of the current line logged so far (MAX_STDERR_LINE_PIECES at most) */
  #pieces = 0;

  /** `onLine` null: the lines are dropped (still read, so the connection stays in step). */
  constructor(onLine: ((line: string) => void) | null) {
    this.#onLine = onLine;
  }

  /** One STDERR record's content; `content` is not kept (a copy is). */
  push(content: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = content.indexOf(0x0a, start);
      if (newline === -1) break;
      this.#part(content.subarray(start, newline));
      this.#flush();
      start = newline + 1;
    }
    if (start < content.length) this.#part(content.subarray(start));
  }

  /** The request ended: a last line without a newline is a line too. */
  end(): void {
    if (this.#bytes > 0) this.#flush();
    this.#pieces = 0;
  }

  #part(part: Buffer): void {
    while (this.#bytes + part.length > MAX_STDERR_LINE_BYTES) {
      if (this.#pieces >= MAX_STDERR_LINE_PIECES) return; // the rest of a line cut short
      const room = MAX_STDERR_LINE_BYTES - this.#bytes;
      this.#parts.push(Buffer.from(part.subarray(0, room)));
      this.#bytes += room;
      this.#flush(false);
      part = part.subarray(room);
    }
    if (part.length === 0 || this.#pieces >= MAX_STDERR_LINE_PIECES) return;
    this.#parts.push(Buffer.from(part)); // kept past this record: a copy
    this.#bytes += part.length;
  }

  /** `lineEnds`: the line is over (a newline, the request's end), else a piece of it was cut off. */
  #flush(lineEnds = true): void {
    let line = Buffer.concat(this.#parts, this.#bytes).toString('utf8');
    this.#parts = [];
    this.#bytes = 0;
    this.#pieces = lineEnds ? 0 : this.#pieces + 1;
    if (!lineEnds && this.#pieces === MAX_STDERR_LINE_PIECES) line += CUT_MARK;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    if (line === '' || this.#onLine === null) return;
    // php-fpm joins a request's messages into one: "PHP message: a; PHP message: b"
    const messages = line.includes(FPM_JOINED)
      ? line.split(FPM_JOINED).map((m, i) => (i === 0 ? m : `PHP message: ${m}`))
      : [line];
    try {
      for (const message of messages) this.#onLine(message);
    } catch {
      // a logger that throws must not break the request
    }
  }
}

/** STDERR lines a site's scripts may log per second, as a worker's (worker/output.ts). */
export const MAX_STDERR_LINES_PER_SECOND = 1000;

/**
 * The log bound of a site's STDERR lines: a script looping on error_log() must not fill the disk
 * nor stall the one Node thread. Lines past the bound are counted, and the count is logged once
 * the second is over, by a timer: a burst that ends is reported without waiting for the next line.
 */
export class StderrLogLimit {
  readonly #report: (dropped: number, lastScript: string) => void;
  readonly #perSecond: number;
  #windowStart = Number.NEGATIVE_INFINITY;
  #windowLines = 0;
  #dropped = 0;
  #lastScript = '';
  #timer: NodeJS.Timeout | null = null;

  constructor(report: (dropped: number, lastScript: string) => void, perSecond = MAX_STDERR_LINES_PER_SECOND) {
    this.#report = report;
    this.#perSecond = perSecond;
  }

  /** True when this line of `script` may be logged; false when it is dropped (and counted). */
  admit(script: string): boolean {
    const now = Date.now();
    if (now - this.#windowStart >= 1000) {
      this.#flush();
      this.#windowStart = now;
      this.#windowLines = 0;
    }
    if (++this.#windowLines <= this.#perSecond) return true;
    this.#dropped++;
    this.#lastScript = script;
    if (this.#timer === null) {
      this.#timer = setTimeout(() => this.#flush(), Math.max(1000 - (now - this.#windowStart), 1));
      this.#timer.unref();
    }
    return false;
  }

  #flush(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#dropped === 0) return;
    const dropped = this.#dropped;
    this.#dropped = 0;
    this.#report(dropped, this.#lastScript);
  }
}
