// The CLI's voice: one line per event, a symbol first, so a person scans the left edge and a script
// greps it. Progress and results go to stdout; warnings and errors to stderr. Colours only when
// the stream is a terminal and NO_COLOR is unset (https://no-color.org); FORCE_COLOR=1 forces them.
//
//   ✓ success   (green)     • info / progress   (cyan dot)
//   ▲ warning   (yellow)    ✗ error            (red)
import type { Output } from './admin/client.js';

export interface CliOutput extends Output {
  /** something worth a second look, not fatal (stderr) */
  warn(message: string): void;
  /** text as is, no symbol (stdout): YAML, JSON, tables */
  raw(text: string): void;
  /** grey text for details under a line (stdout) */
  detail(message: string): void;
}

export interface WritableLike {
  isTTY?: boolean;
  write(text: string): unknown;
}

export interface OutputOptions {
  stdout?: WritableLike;
  stderr?: WritableLike;
  /** default: decided per stream from isTTY, NO_COLOR, FORCE_COLOR and TERM */
  color?: boolean;
  env?: NodeJS.ProcessEnv;
}

const CODES = { green: 32, red: 31, yellow: 33, cyan: 36, dim: 2, bold: 1 } as const;
type Style = keyof typeof CODES;

/** Whether to colour a stream: FORCE_COLOR wins, then NO_COLOR, then a terminal that is not "dumb". */
export function wantsColor(stream: WritableLike, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return stream.isTTY === true && env.TERM !== 'dumb';
}

/**
 * A stream whose writes never end the process: a full disk under `> file`, or a pipe whose reader
 * has gone, drops the line. A long-running `serve` prints progress for months (reloads, reopens);
 * before, such a write threw (a file) or emitted an unheard error (a pipe), and every site went down.
 */
function forgiving(stream: WritableLike): WritableLike {
  const emitter = stream as WritableLike & { on?: (event: 'error', listener: () => void) => unknown };
  if ((stream === process.stdout || stream === process.stderr) && !quieted.has(stream)) {
    quieted.add(stream);
    emitter.on?.('error', () => {});
  }
  return {
    isTTY: stream.isTTY,
    write(text) {
      try {
        return stream.write(text);
      } catch {
        return false;
      }
    },
  };
}

const quieted = new WeakSet<object>();

export function createOutput(options: OutputOptions = {}): CliOutput {
  const stdout = forgiving(options.stdout ?? process.stdout);
  const stderr = forgiving(options.stderr ?? process.stderr);
  const env = options.env ?? process.env;
  const colorOut = options.color ?? wantsColor(stdout, env);
  const colorErr = options.color ?? wantsColor(stderr, env);
  const paint = (on: boolean, style: Style, text: string): string =>
    on ? `\x1b[${CODES[style]}m${text}\x1b[0m` : text;
  const line = (stream: WritableLike, on: boolean, symbol: string, style: Style, message: string) => {
    // every line of a multi-line message is indented under the first, so the symbol column stays clean
    const [first, ...rest] = message.split('\n');
    const body = [first, ...rest.map((l) => `  ${l}`)].join('\n');
    stream.write(`${paint(on, style, symbol)} ${body}\n`);
  };
  return {
    success: (message) => line(stdout, colorOut, '✓', 'green', message),
    info: (message) => line(stdout, colorOut, '•', 'cyan', message),
    warn: (message) => line(stderr, colorErr, '▲', 'yellow', message),
    error: (message) => line(stderr, colorErr, '✗', 'red', message),
    detail: (message) => stdout.write(`  ${paint(colorOut, 'dim', message)}\n`),
    raw: (text) => stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    table(rows, columns) {
      const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? '').length)));
      // numbers right-aligned, text left-aligned
      const numeric = columns.map((_, i) => rows.length > 0 && rows.every((r) => /^-?[\d.]+$/.test(r[i] ?? '')));
      const cell = (text: string, i: number) => (numeric[i] ? text.padStart(widths[i]!) : text.padEnd(widths[i]!));
      stdout.write(`  ${paint(colorOut, 'dim', columns.map(cell).join('  ').trimEnd())}\n`);
      for (const row of rows)
        stdout.write(
          `  ${columns
            .map((_, i) => cell(row[i] ?? '', i))
            .join('  ')
            .trimEnd()}\n`,
        );
    },
  };
}

/** The same output without its stdout lines (`-s`): only warnings and errors are written. */
export function silenced(out: CliOutput): CliOutput {
  const none = () => {};
  return { ...out, success: none, info: none, detail: none, raw: none, table: none };
}

/** "143 ms", "2.4 s": how long something took, for progress lines. */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** "1 worker", "3 workers". */
export function plural(count: number, word: string): string {
  return `${count} ${word}${count === 1 ? '' : 's'}`;
}

/**
 * A config problem in the CLI's style: every `file:line:col key: reason` line, then what to do.
 * Returns true when it was one (ConfigError or an unreadable file), false for any other error.
 */
export function printConfigError(
  error: unknown,
  out: CliOutput,
  file: string,
  overrides: readonly string[] = [],
): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'WP_CONFIG_INVALID') {
    // the -o overrides too: an error in one of them passes a check of the file alone
    const again = ['warmpool config check -c', shellWord(file), ...overrides.flatMap((o) => ['-o', shellWord(o)])];
    out.error(`${(error as Error).message}\nfix the lines above (check again with: ${again.join(' ')})`);
    return true;
  }
  if (code === 'WP_CONFIG_FILE_UNREADABLE') {
    out.error((error as Error).message);
    return true;
  }
  return false;
}

/** `file:line:col key message` for a warning with a place. */
export function formatWarning(warning: {
  key: string;
  file: string;
  line: number;
  col: number;
  message: string;
}): string {
  // line 0: set on the command line (`-o key=value`), which names itself
  const where = warning.line === 0 ? warning.file : `${warning.file}:${warning.line}:${warning.col}`;
  return `${where}${warning.key === '' ? '' : ` ${warning.key}:`} ${warning.message}`;
}

/** A word as a shell reads it back: quoted when it holds spaces or shell characters. */
function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}
