// RoadRunner's JSON log shape (`logs.encoding: json`), for the tools that read RoadRunner's output.
// RoadRunner logged through zap with this production encoder (roadrunner-server/logger config.go,
// up to v5): keys level (lowercase word), ts (UTC epoch nanoseconds), logger (the plugin's name),
// msg, then the fields; durations as Go strings ("1.2ms"). Laravel Octane reads each stdout line
// with json_decode and indexes msg, logger and level on every line (StartRoadRunnerCommand::
// writeServerOutput), so every line here has all three:
//   {"level":"info","ts":1733300000123000000,"logger":"server","msg":"a line the worker wrote","pid":4242}
//   {"level":"info","ts":…,"logger":"http","msg":"http log","status":200,"method":"GET","URI":"/a?b=1",
//    "URL":"/a?b=1","remote_address":"127.0.0.1:50412","read_bytes":0,"write_bytes":12,"start":…,"elapsed":"1.2ms"}
// `logger` is the warmpool channel: server (PHP worker output, as RoadRunner's server plugin logs
// it), http, warmpool (the server itself).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { plainAddress } from '@warmpool/fastify';
import { endStatus } from './access-log.js';
import { onRequestEnd } from './request-end.js';

/** pino's level labels → zap's (zap has no trace). */
const ZAP_LEVELS: Record<string, string> = {
  trace: 'debug',
  debug: 'debug',
  info: 'info',
  warn: 'warn',
  error: 'error',
  fatal: 'fatal',
};
const PINO_NUMBERS: Record<number, string> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};
/** pino's own keys, which become zap's (the zap-shaped logger has no base pid/hostname: a pid is a worker's) */
const OWN_KEYS = new Set(['level', 'time', 'msg', 'channel']);
/** warmpool's field names → RoadRunner's: a worker's pid is `workerPid` in pino lines (pino's own `pid` is the server's) */
const ZAP_NAMES: Record<string, string> = { workerPid: 'pid' };

/**
 * One pino JSON line (level as a label or number, time in epoch ms, channel binding) → one zap line,
 * keys in zap's order. A line that is not JSON is kept as a message of the warmpool logger.
 */
export function toZapLine(line: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    record = { msg: line.replace(/\n$/, '') };
  }
  const label = typeof record.level === 'number' ? PINO_NUMBERS[record.level] : String(record.level ?? 'info');
  const time = typeof record.time === 'number' ? Math.round(record.time) : Date.now();
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) if (!OWN_KEYS.has(key)) fields[ZAP_NAMES[key] ?? key] = value;
  const rest = JSON.stringify(fields);
  return `{"level":${JSON.stringify(ZAP_LEVELS[label ?? 'info'] ?? 'info')},"ts":${time}000000,"logger":${JSON.stringify(
    typeof record.channel === 'string' ? record.channel : 'warmpool',
  )},"msg":${JSON.stringify(typeof record.msg === 'string' ? record.msg : String(record.msg ?? ''))}${rest === '{}' ? '' : `,${rest.slice(1, -1)}`}}\n`;
}

/** A Go time.Duration's String(): "0s", "850ns", "850µs", "1.234567ms", "1.5s", "2m3.5s", "1h0m0s". */
export function formatGoDuration(nanoseconds: number): string {
  let ns = Math.round(nanoseconds);
  if (ns === 0) return '0s';
  const sign = ns < 0 ? '-' : '';
  ns = Math.abs(ns);
  const decimal = (value: number, unit: number, digits: number): string => {
    const whole = Math.floor(value / unit);
    const fraction = value - whole * unit;
    return fraction === 0 ? String(whole) : `${whole}.${String(fraction).padStart(digits, '0').replace(/0+$/, '')}`;
  };
  if (ns < 1e3) return `${sign}${ns}ns`;
  if (ns < 1e6) return `${sign}${decimal(ns, 1e3, 3)}µs`;
  if (ns < 1e9) return `${sign}${decimal(ns, 1e6, 6)}ms`;
  const hours = Math.floor(ns / 3.6e12);
  const minutes = Math.floor((ns - hours * 3.6e12) / 6e10);
  const seconds = decimal(ns - hours * 3.6e12 - minutes * 6e10, 1e9, 9);
  return `${sign}${hours > 0 ? `${hours}h` : ''}${hours > 0 || minutes > 0 ? `${minutes}m` : ''}${seconds}s`;
}

/** "02/Jan/06:15:04:05 -0700" (RoadRunner's time_local), in local time. */
function timeLocal(date: Date): string {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const pad = (n: number) => String(n).padStart(2, '0');
  const offset = -date.getTimezoneOffset();
  const zone = `${offset < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(offset) / 60))}${pad(Math.abs(offset) % 60)}`;
  return `${pad(date.getDate())}/${months[date.getMonth()]}/${pad(date.getFullYear() % 100)}:${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${zone}`;
}

/**
 * Registers RoadRunner's per-request line (roadrunner-server/http middleware/log.go): "http log" on every
 * request, or "http access log" with more fields when http.access_logs is on; level info, on the
 * http logger. Byte counts are the Content-Length headers (0 without one).
 */
export function registerHttpLog(
  app: FastifyInstance,
  logger: Logger,
  options: { accessLogs: boolean; skip: string | null },
): void {
  // the peer is read when the request starts: an HTTP/2 stream's socket is gone once its reply is done
  const peers = new WeakMap<FastifyRequest, string>();
  app.addHook('onRequest', (request, _reply, done) => {
    const socket = request.socket;
    if (logger.isLevelEnabled('info')) peers.set(request, hostPort(socket?.remoteAddress, socket?.remotePort));
    done();
  });
  // once a request is over, its client there or gone (before: a client that left had no line)
  onRequestEnd(app, (request, reply, gone) => {
    // the metrics listener's in-process scrape is not a request anyone made
    if (request.url !== options.skip)
      writeHttpLog(logger, request, reply, options.accessLogs, peers.get(request) ?? ':', endStatus(reply, gone));
  });
}

function writeHttpLog(
  logger: Logger,
  request: FastifyRequest,
  reply: FastifyReply,
  accessLogs: boolean,
  remoteAddress: string,
  status: number,
): void {
  if (!logger.isLevelEnabled('info')) return;
  const elapsedMs = reply.elapsedTime;
  const now = Date.now();
  const start = Math.round(now - elapsedMs);
  const uri = request.raw.url ?? request.url;
  const fields: Record<string, unknown> = {
    status,
    method: request.method,
    URI: uri,
    URL: uri,
    remote_address: remoteAddress,
    read_bytes: Number(request.headers['content-length'] ?? 0) || 0,
    write_bytes: Number(reply.getHeader('content-length') ?? 0) || 0,
  };
  if (accessLogs) {
    const query = uri.indexOf('?');
    const clean = (value: string | undefined) => (value ?? '').replace(/[\r\n]/g, '');
    Object.assign(fields, {
      query: query < 0 ? '' : clean(uri.slice(query + 1)),
      content_len: Number(request.headers['content-length'] ?? -1),
      host: request.host ?? '',
      user_agent: clean(request.headers['user-agent']),
      referer: clean(request.headers.referer),
      time_local: timeLocal(new Date(start)),
      request_time: Number(`${start}000000`),
    });
  }
  // zap.Time with RoadRunner's epoch-nanosecond encoder; Go's duration string
  fields.start = Number(`${start}000000`);
  fields.elapsed = formatGoDuration(elapsedMs * 1e6);
  logger.info(fields, accessLogs ? 'http access log' : 'http log');
}

/** The peer as Go's RemoteAddr prints it (RoadRunner's remote_address): `1.2.3.4:5678`, `[::1]:5678`. */
function hostPort(address: string | undefined, port: number | undefined): string {
  const host = plainAddress(address) ?? '';
  return `${host.includes(':') ? `[${host}]` : host}:${port ?? ''}`;
}
