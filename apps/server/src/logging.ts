// Logs: one pino logger with three channels, configured by the `logs` section.
//
// - channel "http": Fastify's logger (request errors, through a per-request logger that is only
//   made when it writes: createRequestLogger) and, with http.access_logs: true, one access line
//   per request (see ACCESS LOG below);
// - channel "server": PHP worker output (stderr lines, tagged with pid) and pool events;
// - channel "warmpool": the server itself (listeners, reloads, signals).
//
// logs.mode: production → JSON lines (pino); development → one human line per record
// ("12:00:01.123 INFO  [http] GET / 200 reqId=… durationMs=1.2"); raw → the message only;
// off → nothing. logs.encoding: console forces human lines; logs.encoding: json writes RoadRunner's
// zap JSON shape (zap-log.ts: level word, ts, logger = the channel, msg on every line) and RR's
// per-request "http log" line, for tools that read RoadRunner's output (Laravel Octane). logs.level is the
// lowest level written (RR's panic = fatal); logs.channels.<name>.level overrides it per channel.
// logs.output: stderr (default), stdout, or a file path (appended, folder created); a list writes
// to each. Channel-specific mode/encoding/output and err_output are not supported: every channel
// shares the top-level destination and format (the config's check warns of such keys).
//
// ACCESS LOG (channel "http", level info), one JSON object per request in production:
//   {"level":30,"time":1700000000000,"channel":"http","reqId":"…",
//    "site":"default","method":"GET","url":"/a?b=1","host":"example.com","protocol":"HTTP/1.1",
//    "remoteAddr":"203.0.113.7","status":200,"durationMs":1.52,"bytes":1234,"msg":"GET /a?b=1 200"}
// `bytes` is the Content-Length when the reply has one; `remoteAddr` is the socket peer (PHP's
// REMOTE_ADDR honours trusted_subnets, the log does not: it shows who really connected).
import { logFile, type Reopened, type ReopenableSink, reopenLogFile, standardStream } from './log-sinks.js';
import type { FastifyBaseLogger } from 'fastify';
import {
  pino,
  type Bindings,
  type ChildLoggerOptions,
  type DestinationStream,
  type Level,
  type Logger,
  type LevelWithSilent,
} from 'pino';
import type { LogChannelConfig, LogLevel, LogsConfig } from '@warmpool/config';
import { toZapLine } from './zap-log.js';

export type Channel = 'http' | 'server' | 'warmpool';
const CHANNELS: readonly Channel[] = ['http', 'server', 'warmpool'];

export interface Loggers {
  /** channel "warmpool" */
  root: Logger;
  /** channel "http": give it to Fastify as loggerInstance */
  http: Logger;
  /** channel "server": give it to the warmpool plugin as `logger` */
  server: Logger;
  /** "stderr (development, level info)" */
  describe(): string;
  /** applies new levels (SIGHUP); returns one line per change */
  applyLevels(logs: LogsConfig): string[];
  /** reopens the files of logs.output (SIGUSR1, after logrotate); a file that cannot be opened stays the old one */
  reopen(): Reopened[];
  /** logs.encoding: json: lines in RoadRunner's zap shape, and an "http log" line per request */
  zap: boolean;
  /** one of the outputs is stdout */
  toStdout: boolean;
  /**
   * Channel "warmpool" into the files of logs.output only (null without one): what serve prints on
   * the terminal (reloads applied or refused, reopens, a php-fpm that does not answer) goes there too
   */
  files: Logger | null;
}

export interface LoggingOptions {
  /** default process.stderr / process.stdout (tests pass their own) */
  stderr?: NodeJS.WritableStream;
  stdout?: NodeJS.WritableStream;
}

export function toPinoLevel(level: LogLevel | undefined, mode: LogChannelConfig['mode']): LevelWithSilent {
  if (mode === 'off') return 'silent';
  if (level === undefined) return 'info';
  return level === 'panic' ? 'fatal' : (level as Level);
}

export function createLoggers(logs: LogsConfig, options: LoggingOptions = {}): Loggers {
  const mode = logs.mode ?? 'development';
  const encoding = logs.encoding ?? (mode === 'production' ? 'json' : 'console');
  const format: 'json' | 'human' | 'raw' | 'zap' =
    mode === 'raw' ? 'raw' : logs.encoding === 'json' ? 'zap' : encoding === 'json' ? 'json' : 'human';
  const outputs = logs.output === undefined ? ['stderr'] : Array.isArray(logs.output) ? logs.output : [logs.output];
  const destinations = outputs.map((output) => destinationOf(output, options));
  const files = outputs.flatMap((output, i) =>
    output === 'stderr' || output === 'stdout'
      ? []
      : [{ path: output, sink: destinations[i] as unknown as ReopenableSink }],
  );
  const shaped = (stream: DestinationStream): DestinationStream =>
    format === 'zap' ? zapShaped(stream) : format === 'json' ? stream : reformat(stream, format);
  let sink: DestinationStream =
    destinations.length === 1
      ? destinations[0]!
      : pino.multistream(destinations.map((stream) => ({ stream, level: 'trace' as const })));
  sink = shaped(sink);

  const settings = {
    level: 'trace', // each channel filters for itself
    base: format === 'json' ? undefined : null,
    timestamp: pino.stdTimeFunctions.epochTime,
    formatters: { level: (label: string, number: number) => ({ level: format === 'json' ? number : label }) },
  };
  const base = pino(settings, sink);
  const fileSinks = files.map(({ sink: file }) => file as unknown as DestinationStream);
  const filesOnly =
    fileSinks.length === 0
      ? null
      : pino(
          settings,
          shaped(
            fileSinks.length === 1
              ? fileSinks[0]!
              : pino.multistream(fileSinks.map((stream) => ({ stream, level: 'trace' as const }))),
          ),
        ).child({ channel: 'warmpool' }, { level: levelOf(logs, 'warmpool') });
  const channels = new Map<Channel, Logger>();
  for (const channel of CHANNELS) {
    channels.set(channel, base.child({ channel }, { level: levelOf(logs, channel) }));
  }

  return {
    root: channels.get('warmpool')!,
    http: channels.get('http')!,
    server: channels.get('server')!,
    zap: format === 'zap',
    toStdout: outputs.includes('stdout'),
    files: filesOnly,
    reopen: () => files.map(({ path, sink }) => reopenLogFile(sink, path)),
    describe: () =>
      `${outputs.join(', ')} (${mode === 'off' ? 'off' : `${format === 'human' ? 'development' : format === 'raw' ? 'raw' : format === 'zap' ? "JSON in RoadRunner's shape" : 'JSON'}, level ${levelOf(logs, 'warmpool')}`})`,
    applyLevels(next) {
      const changes: string[] = [];
      for (const channel of CHANNELS) {
        const logger = channels.get(channel)!;
        const level = levelOf(next, channel);
        if (logger.level !== level) {
          changes.push(`log level of channel ${channel}: ${logger.level} → ${level}`);
          logger.level = level;
        }
      }
      return changes;
    },
  };
}

function levelOf(logs: LogsConfig, channel: Channel): LevelWithSilent {
  const own = logs.channels?.[channel];
  return toPinoLevel(own?.level ?? logs.level, own?.mode ?? logs.mode);
}

function destinationOf(output: string, options: LoggingOptions): DestinationStream {
  if (output === 'stderr') return options.stderr ?? standardStream(2);
  if (output === 'stdout') return options.stdout ?? standardStream(1);
  return logFile(output);
}

/** A stream that rewrites pino's lines into RoadRunner's zap JSON shape (zap-log.ts). */
function zapShaped(sink: DestinationStream): DestinationStream {
  return { write: (line: string) => sink.write(toZapLine(line)) };
}

/**
 * The CLI's stdout lines as log records, when the zap-shaped log goes to stdout: a tool reading
 * RoadRunner's stdout reads every line as JSON (Octane json_decodes each and indexes msg, logger,
 * level), so progress lines join the log (logger "warmpool", level info), and warnings too (level
 * warn), as RoadRunner logs its own: Octane shows every stderr line without DEBUG, INFO or WARN as
 * a red error (each `octane:start --host=0.0.0.0` showed the RPC address warning so). Errors stay
 * on stderr, where such a tool shows them to its user.
 */
export function logCliLines<T extends CliLines>(out: T, loggers: Pick<Loggers, 'root' | 'zap' | 'toStdout'>): T {
  if (!loggers.zap || !loggers.toStdout) return out;
  const log = (message: string) => loggers.root.info(message);
  return {
    ...out,
    warn: (message: string) => loggers.root.warn(message),
    success: log,
    info: log,
    detail: log,
    raw: log,
    table: (rows: readonly (readonly string[])[], columns: readonly string[]) =>
      loggers.root.info({ columns, rows }, 'table'),
  };
}

/**
 * `out`, writing its lines into the files of logs.output too (their level: info, warn, error):
 * after a refused reload, the log file said only "TLS certificate reloaded", as if it had worked,
 * where nginx writes its reloads and their errors to its error_log. A no-op without log files, or
 * when every line is a log record already (logCliLines).
 */
export function alsoToLogFiles<T extends CliLines & { error(message: string): void }>(
  out: T,
  loggers: Pick<Loggers, 'files' | 'zap' | 'toStdout'>,
): T {
  const files = loggers.files;
  if (files === null || (loggers.zap && loggers.toStdout)) return out;
  const both =
    (print: (message: string) => void, level: 'info' | 'warn' | 'error') =>
    (message: string): void => {
      print(message);
      files[level](message);
    };
  return {
    ...out,
    info: both(out.info, 'info'),
    success: both(out.success, 'info'),
    warn: both(out.warn, 'warn'),
    error: both(out.error, 'error'),
  };
}

interface CliLines {
  warn(message: string): void;
  success(message: string): void;
  info(message: string): void;
  detail(message: string): void;
  raw(text: string): void;
  table(rows: readonly (readonly string[])[], columns: readonly string[]): void;
}

const HIDDEN = new Set(['level', 'time', 'msg', 'channel', 'pid', 'hostname']);

/** A stream that turns pino's JSON lines into human lines (development) or bare messages (raw). */
function reformat(sink: DestinationStream, format: 'human' | 'raw'): DestinationStream {
  return {
    write(line: string) {
      let record: Record<string, unknown>;
      try {
        record = JSON.parse(line) as Record<string, unknown>;
      } catch {
        sink.write(line);
        return;
      }
      const msg = typeof record.msg === 'string' ? record.msg : '';
      if (format === 'raw') {
        sink.write(`${msg}\n`);
        return;
      }
      const time = new Date(typeof record.time === 'number' ? record.time : Date.now()).toISOString().slice(11, 23);
      const level = String(record.level ?? '')
        .toUpperCase()
        .padEnd(5);
      const fields = Object.entries(record)
        .filter(([key]) => !HIDDEN.has(key))
        .map(
          ([key, value]) => `${key}=${typeof value === 'string' && !/\s/.test(value) ? value : JSON.stringify(value)}`,
        );
      sink.write(
        `${time} ${level} [${String(record.channel ?? '-')}] ${msg}${fields.length > 0 ? ` ${fields.join(' ')}` : ''}\n`,
      );
    },
  };
}

/**
 * Fastify's `childLoggerFactory` for the http channel. Fastify makes a child logger per request (the
 * `reqId` binding); pino's child() serialises the bindings at once, yet with request logging off and
 * the access line written by the parent almost no request logs through it. So the request gets a
 * stand-in that makes the same pino child only when a line at an enabled level is written: the line
 * is the one the eager child would have written, reqId included.
 */
export function createRequestLogger(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  // a route with its own logLevel (none of ours has one) decides levels itself: no shortcut
  if (options.level !== undefined) return logger.child(bindings, options);
  return new LazyChildLogger(logger as Logger, bindings, options);
}

class LazyChildLogger implements FastifyBaseLogger {
  readonly #parent: Logger;
  readonly #bindings: Bindings;
  readonly #options: ChildLoggerOptions;
  #child: Logger | null = null;

  constructor(parent: Logger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent;
    this.#bindings = bindings;
    this.#options = options;
  }

  get level(): string {
    return (this.#child ?? this.#parent).level;
  }

  set level(level: string) {
    this.#materialize().level = level;
  }

  fatal(...args: unknown[]): void {
    this.#write('fatal', args);
  }

  error(...args: unknown[]): void {
    this.#write('error', args);
  }

  warn(...args: unknown[]): void {
    this.#write('warn', args);
  }

  info(...args: unknown[]): void {
    this.#write('info', args);
  }

  debug(...args: unknown[]): void {
    this.#write('debug', args);
  }

  trace(...args: unknown[]): void {
    this.#write('trace', args);
  }

  silent(): void {}

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.#materialize().child(bindings, options);
  }

  #write(level: Level, args: unknown[]): void {
    // until a line is written the child would have the parent's level, so the parent decides
    if (this.#child === null && !this.#parent.isLevelEnabled(level)) return;
    const child = this.#materialize();
    (child[level] as (...line: unknown[]) => void).apply(child, args);
  }

  #materialize(): Logger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options);
    return this.#child;
  }
}
