// The admin socket's wire format, shared by the server (admin/server.ts) and the CLI (admin/client.ts).
// Newline-delimited JSON: the client writes one request line; the server answers with zero or more
// progress lines, then exactly one final line, and closes the connection.
//
//   → {"cmd":"reset","site":"shop"}
//   ← {"progress":{"site":"shop","replaced":1,"total":4}}
//   ← {"ok":true,"data":{"replaced":4}}
//   ← {"ok":false,"error":{"code":"WP_SERVER_UNKNOWN_SITE","message":"..."}}
import { WarmpoolError, type PoolStats, type WorkerInfo } from '@warmpool/pool';
import { AdminBadRequestError } from '../errors.js';
import type { CertificateStatus } from '../acme/certificate-status.js';
import type { TuneReport } from '../tuning.js';

/** Longest request line the server reads; admin requests are a few dozen bytes. */
export const MAX_REQUEST_LINE_BYTES = 64 * 1024;
/** `warmpool tune` measures this long unless told otherwise. */
export const DEFAULT_TUNE_WINDOW_MS = 10_000;
/** Bounds of a tune window: shorter cannot measure CPU ticks, longer holds a connection for nothing. */
export const MIN_TUNE_WINDOW_MS = 100;
export const MAX_TUNE_WINDOW_MS = 10 * 60_000;

export type AdminRequest =
  | { cmd: 'ping' }
  | { cmd: 'workers'; site?: string }
  | { cmd: 'stats'; site?: string }
  | { cmd: 'reset'; site?: string }
  | { cmd: 'tune'; site?: string; windowMs?: number }
  | { cmd: 'reload' }
  | { cmd: 'certs' }
  | { cmd: 'cache-purge'; site?: string; prefix?: string };

export type AdminCommand = AdminRequest['cmd'];
export const ADMIN_COMMANDS: readonly AdminCommand[] = [
  'ping',
  'workers',
  'stats',
  'reset',
  'tune',
  'reload',
  'certs',
  'cache-purge',
];

/** One site's workers (a server runs one pool per site). */
export interface SiteWorkers {
  site: string;
  workers: WorkerInfo[];
  /** a site passing PHP to php-fpm (fastcgi.pass): no workers of ours, the connections warmpool holds to it */
  phpFpm?: PhpFpmConnections;
  /** a site of ours: workers booting (not listed: no pid before the handshake), requests waiting, the last boot error */
  pool?: { booting: number; queued: number; bootError: string | null };
}

/** warmpool's connections to an external php-fpm, as `warmpool workers` shows them. */
export interface PhpFpmConnections {
  address: string;
  maxConnections: number;
  /** the connections php-fpm was found to serve at once (below maxConnections: it has fewer children) */
  capacity: number;
  busy: number;
  idle: number;
  connecting: number;
  queued: number;
  /** why php-fpm does not answer (no socket, connection refused); null when it does */
  unreachable: string | null;
}

export interface SiteStats {
  site: string;
  stats: PoolStats;
}

export interface PingData {
  pid: number;
  sites: string[];
  /** the config file the server was started from (absolute); absent from a server that does not say */
  config?: string;
}

export interface ResetData {
  /** workers replaced, summed over the sites that were reset */
  replaced: number;
  sites: string[];
  /** sites not reset, all sites asked: their PHP runs in php-fpm (reload php-fpm itself) */
  skipped?: string[];
}

export interface PurgeData {
  /** entries dropped, summed over the sites */
  purged: number;
  /** the sites whose micro-cache was purged */
  sites: string[];
}

export interface ReloadData {
  /** what changed, one line each, for the CLI to print */
  changes: string[];
}

/** `certs`: the certificates the server serves (`warmpool cert status`). */
export interface CertsData {
  /** http.ssl.acme is on */
  automatic: boolean;
  certificates: CertificateStatus[];
}

/** What each command's final `data` holds. */
export interface AdminResponseData {
  ping: PingData;
  workers: SiteWorkers[];
  stats: SiteStats[];
  reset: ResetData;
  tune: TuneReport;
  reload: ReloadData;
  certs: CertsData;
  'cache-purge': PurgeData;
}

export interface ResetProgress {
  site: string;
  replaced: number;
  total: number;
  /** every worker is replaced; these old ones still run a request, killed after timeoutMs */
  waiting?: { pids: number[]; timeoutMs: number };
}

/** One reset progress event in words, as `warmpool reset` and SIGUSR2 print it. */
export function describeResetProgress(progress: ResetProgress): string {
  if (progress.waiting !== undefined) {
    const { pids, timeoutMs } = progress.waiting;
    return `${progress.site}: waiting for the request of old worker${pids.length === 1 ? '' : 's'} ${pids.join(', ')} to end (up to reset_timeout ${timeoutMs / 1000}s; then ${pids.length === 1 ? 'it is' : 'they are'} killed and the request fails)`;
  }
  return `${progress.site}: replaced ${progress.replaced}/${progress.total} worker${progress.total === 1 ? '' : 's'}`;
}

export interface TuneProgress {
  site: string;
  /** the measurement started and will take this long */
  windowMs: number;
}

export interface AdminProgressData {
  ping: never;
  workers: never;
  stats: never;
  reset: ResetProgress;
  tune: TuneProgress;
  reload: never;
  certs: never;
  'cache-purge': never;
}

export interface WireError {
  code: string;
  message: string;
}

export type AdminResponseLine =
  | { ok: true; data: unknown }
  | { ok: false; error: WireError }
  | { progress: Record<string, unknown> };

/** Encodes one line (JSON plus '\n'); `Infinity`/`NaN` become null as JSON.stringify does. */
export function encodeLine(value: unknown): string {
  return `${JSON.stringify(value)}\n`;
}

/**
 * Checks a decoded request line. Throws AdminBadRequestError naming what is wrong; unknown extra
 * keys are ignored so an older server still answers a newer client's requests.
 */
export function parseAdminRequest(line: string): AdminRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new AdminBadRequestError(`the request is not JSON: ${JSON.stringify(line.slice(0, 80))}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new AdminBadRequestError('the request must be a JSON object like {"cmd":"workers"}');
  const { cmd, site, windowMs, prefix } = value as Record<string, unknown>;
  if (typeof cmd !== 'string' || !(ADMIN_COMMANDS as readonly string[]).includes(cmd)) {
    throw new AdminBadRequestError(
      `unknown command ${JSON.stringify(cmd)}; known commands: ${ADMIN_COMMANDS.join(', ')}`,
    );
  }
  if (site !== undefined && (typeof site !== 'string' || site === ''))
    throw new AdminBadRequestError(`"site" must be a non-empty string, got ${JSON.stringify(site)}`);
  switch (cmd as AdminCommand) {
    case 'ping':
    case 'reload':
    case 'certs':
      return { cmd: cmd as 'ping' | 'reload' | 'certs' };
    case 'workers':
    case 'stats':
    case 'reset':
      return (site === undefined ? { cmd } : { cmd, site }) as AdminRequest;
    case 'tune': {
      if (
        windowMs !== undefined &&
        !(typeof windowMs === 'number' && windowMs >= MIN_TUNE_WINDOW_MS && windowMs <= MAX_TUNE_WINDOW_MS)
      ) {
        throw new AdminBadRequestError(
          `"windowMs" must be a number of milliseconds from ${MIN_TUNE_WINDOW_MS} to ${MAX_TUNE_WINDOW_MS}, got ${JSON.stringify(windowMs)}`,
        );
      }
      return { cmd: 'tune', ...(site === undefined ? {} : { site }), ...(windowMs === undefined ? {} : { windowMs }) };
    }
    case 'cache-purge':
      if (prefix !== undefined && (typeof prefix !== 'string' || !prefix.startsWith('/')))
        throw new AdminBadRequestError(`"prefix" must be a path starting with "/", got ${JSON.stringify(prefix)}`);
      return {
        cmd: 'cache-purge',
        ...(site === undefined ? {} : { site }),
        ...(prefix === undefined ? {} : { prefix }),
      };
    default:
      throw new Error(`unhandled command ${cmd as never}`);
  }
}

/** The error that goes on the wire: WP_ codes pass through, anything else becomes WP_SERVER_ADMIN_FAILED. */
export function toWireError(error: unknown): WireError {
  const err = error as { code?: unknown; message?: unknown };
  const code =
    typeof err?.code === 'string' && /^WP_[A-Z]+_[A-Z0-9_]+$/.test(err.code) ? err.code : 'WP_SERVER_ADMIN_FAILED';
  return { code, message: typeof err?.message === 'string' ? err.message : String(error) };
}

// ---- errors: every WP_SERVER_* class lives in ../errors.ts; the admin ones are re-exported here ----

export {
  AdminBadRequestError,
  AdminDeniedError,
  AdminSocketError,
  AdminUnreachableError,
  AdminUnsupportedError,
  AlreadyRunningError,
  DrainingError,
  NoCacheError,
  NoPhpSiteError,
  PassSiteError,
  UnknownSiteError,
} from '../errors.js';

/** The server answered an error; `code` is the server's code (WP_...), kept as is. */
export class AdminRemoteError extends WarmpoolError<string> {
  constructor(error: WireError) {
    super(error.code, error.message);
  }
}
