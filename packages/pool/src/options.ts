import { availableParallelism } from 'node:os';
import { InvalidPoolOptionError } from './errors.js';
import { STDERR_LOGGER, type Logger } from './logger.js';
import { DEFAULT_MAX_FRAME_BYTES } from './protocol/decoder.js';
import { parseRelay, type RelaySpec } from './relay/relay.js';
import { parseCommand } from './worker/command.js';
import { DEFAULT_WORKER_NICE } from './worker/priority.js';
import { isDirectory } from './worker/process.js';
import type { ExecRequest } from './worker/worker.js';

/** A duration as users write it: milliseconds as a number, or an RR/Go duration string ("60s", "1m30s", "500ms"). */
export type Duration = number | string;

/** `http.pool.supervisor` in .rr.yaml. */
export interface SupervisorOptions {
  /** how often the supervisor looks (default 1s) */
  watch_tick?: Duration;
  /** max worker age; recycled when next idle */
  ttl?: Duration;
  /** max idle time of a worker that has served at least one request */
  idle_ttl?: Duration;
  /** max time of one request (per frame for streams): the worker is killed, the request fails */
  exec_ttl?: Duration;
  /** max RSS in MB; recycled after its current request */
  max_worker_memory?: number;
  /**
   * php-fpm's request_slowlog_timeout: a request running longer is logged once (a warning naming
   * its worker, method and path, and how long it has run); 0 = off; default 30s
   */
  request_slowlog_timeout?: Duration;
}

/** Pool options, spelled as in RoadRunner's `.rr.yaml` (`server.*` and `http.pool.*`). */
export interface PoolOptions<Req = ExecRequest> {
  /** the worker command: "php worker.php" or an argv array */
  command: string | readonly string[];
  /** extra environment; keys are upper-cased and $VAR expanded, as RR does */
  env?: Readonly<Record<string, string>>;
  /** start workers from a cleared environment (command.ts CGI_KEPT_ENV), then `env`: php-fpm's clear_env */
  clear_env?: boolean;
  cwd?: string;
  /** pipes (default) | fds (warmpool SDK: protocol on fds 3/4) | unix:///path | tcp://host:port */
  relay?: string;
  /** RR_MODE given to workers (default "http") */
  mode?: string;
  /** workers kept warm (default: CPU count); "auto" measures one warmed worker and the machine */
  num_workers?: number | 'auto';
  /** dynamic pool: fewest workers kept (0 = scale to zero when idle); enables dynamic sizing with max_workers */
  min_workers?: number;
  /** dynamic pool: most workers spawned under load */
  max_workers?: number;
  /** num_workers: auto — share of available memory kept free (default 0.25) */
  headroom?: number;
  /** num_workers: auto — requests run on the probe worker before it is measured (default: none) */
  warmup?: readonly Req[];
  /** recycle a worker after this many executions (0 = never) */
  max_jobs?: number;
  /** how long a request waits for a free worker, and the deadline of one worker's boot (default 60s) */
  allocate_timeout?: Duration;
  /**
   * requests allowed to wait for a worker; beyond it a request fails at once (503). Default:
   * QUEUE_PER_WORKER per live worker (a burst a few requests deep per worker); 0 = unlimited (RR)
   */
  max_queue_size?: number;
  /** grace between the stop command and SIGKILL, and the drain bound of close() (default 60s; 0: the default, as RR) */
  destroy_timeout?: Duration;
  /** how long reset() waits for a busy worker before killing it (default 60s; 0: the default, as RR) */
  reset_timeout?: Duration;
  /** how long a cancelled stream may take to end (default 60s) */
  stream_timeout?: Duration;
  /**
   * how long a streamed reply may wait for its reader (the client) to read, as nginx's
   * send_timeout; then the stream is cancelled and the worker freed (default 60s; 0 = no bound)
   */
  send_timeout?: Duration;
  /** largest frame a worker may send, in bytes (default 256 MiB) */
  max_frame_size?: number;
  supervisor?: SupervisorOptions;
  /** run workers as this uid/gid (needs root) */
  uid?: number;
  gid?: number;
  /**
   * how many nice steps below the server's CPU priority the workers run (0-19; default 5), so
   * that the server, which every request and response passes through, never waits for a CPU
   * behind PHP (worker/priority.ts); 0: the same priority
   */
  nice?: number;
  logger?: Logger;
}

export const DEFAULT_ALLOCATE_TIMEOUT_MS = 60_000;
export const DEFAULT_DESTROY_TIMEOUT_MS = 60_000;
export const DEFAULT_RESET_TIMEOUT_MS = 60_000;
export const DEFAULT_STREAM_TIMEOUT_MS = 60_000;
export const DEFAULT_SEND_TIMEOUT_MS = 60_000;
export const DEFAULT_WATCH_TICK_MS = 1_000;
/** php-fpm has it off by default; on here, as a request that never ends holds its worker silently otherwise */
export const DEFAULT_SLOWLOG_TIMEOUT_MS = 30_000;
/**
 * The default queue bound, per worker: with 2 workers, 32 requests may wait. A deeper queue only
 * makes clients wait longer for the same throughput (and keeps requests whose clients gave up);
 * a full queue answers 503 + Retry-After at once, which a load balancer or client can act on.
 */
export const QUEUE_PER_WORKER = 16;
const MAX_WORKERS = 500;
export const DEFAULT_HEADROOM = 0.25;

/**
 * The ranges of the pool's numeric options, kept here with the checks that enforce them. The config
 * package reads them for its key table (load-time checks and docs), so a range is written once.
 */
export const POOL_OPTION_RANGES = {
  /** 0 = one per CPU, as RoadRunner */
  num_workers: { min: 0, max: MAX_WORKERS },
  max_jobs: { min: 0 },
  max_queue_size: { min: 0 },
  max_frame_size: { min: 1024, max: 0xffffffff },
  min_workers: { min: 0, max: MAX_WORKERS },
  max_workers: { min: 1, max: MAX_WORKERS },
  headroom: { min: 0, max: 0.99 },
  nice: { min: 0, max: 19 },
  'supervisor.max_worker_memory': { min: 0 },
} as const satisfies Record<string, { min: number; max?: number }>;

type RangedKey = keyof typeof POOL_OPTION_RANGES;
const range = (key: RangedKey): { min: number; max?: number } => POOL_OPTION_RANGES[key];

/** Resolved once at creation; nothing downstream parses a unit again. */
export interface ResolvedPoolOptions<Req = ExecRequest> {
  argv: string[];
  env: Readonly<Record<string, string>>;
  /** workers start from a cleared environment (clear_env) */
  clearEnv: boolean;
  cwd: string | undefined;
  relay: RelaySpec;
  mode: string;
  /** fixed size, or 'auto' (decided at start from measurements) */
  numWorkers: number | 'auto';
  /** dynamic pool bounds and how long an extra worker may idle before it is reaped; null when static */
  dynamic: { minWorkers: number; maxWorkers: number; idleMs: number } | null;
  headroom: number;
  warmup: readonly Req[];
  maxJobs: number;
  allocateTimeoutMs: number;
  /** null: QUEUE_PER_WORKER × the live workers (the default); 0: unlimited */
  maxQueueSize: number | null;
  destroyTimeoutMs: number;
  resetTimeoutMs: number;
  streamTimeoutMs: number;
  sendTimeoutMs: number;
  maxFrameBytes: number;
  watchTickMs: number;
  ttlMs: number;
  idleTtlMs: number;
  execTtlMs: number;
  maxWorkerMemoryBytes: number;
  /** 0 = off */
  slowlogTimeoutMs: number;
  uid: number | undefined;
  gid: number | undefined;
  nice: number;
  logger: Logger;
}

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/** Parses a Duration into milliseconds; throws an error naming `key`. */
export function parseDuration(value: Duration, key: string): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0)
      throw new InvalidPoolOptionError(key, `must be >= 0 milliseconds, got ${value}`);
    return value;
  }
  if (typeof value !== 'string')
    throw new InvalidPoolOptionError(
      key,
      `must be a duration like "60s" or milliseconds, got ${JSON.stringify(value)}`,
    );
  const text = value.trim();
  if (text === '0') return 0;
  if (/^\d+$/.test(text)) return Number(text) * 1000; // bare number in YAML: seconds, as RR reads ints
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    total += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (matched === 0 || matched !== text.length) {
    throw new InvalidPoolOptionError(key, `"${value}" is not a duration; write e.g. "500ms", "60s", "5m" or "1h30m"`);
  }
  return total;
}

/** An integer option checked against POOL_OPTION_RANGES. */
function ranged(value: unknown, key: RangedKey): number {
  const { min, max } = range(key);
  return integer(value, key, min, max);
}

function integer(value: unknown, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidPoolOptionError(key, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

const KNOWN_KEYS = new Set([
  'command',
  'env',
  'clear_env',
  'cwd',
  'relay',
  'mode',
  'num_workers',
  'min_workers',
  'max_workers',
  'headroom',
  'warmup',
  'max_jobs',
  'allocate_timeout',
  'max_queue_size',
  'destroy_timeout',
  'reset_timeout',
  'stream_timeout',
  'send_timeout',
  'max_frame_size',
  'supervisor',
  'uid',
  'gid',
  'nice',
  'logger',
]);
const SUPERVISOR_KEYS = new Set([
  'watch_tick',
  'ttl',
  'idle_ttl',
  'exec_ttl',
  'max_worker_memory',
  'request_slowlog_timeout',
]);

function resolveDynamic(options: PoolOptions<unknown>): ResolvedPoolOptions['dynamic'] {
  if (options.min_workers === undefined && options.max_workers === undefined) return null;
  const minWorkers = ranged(options.min_workers ?? 0, 'min_workers');
  const maxWorkers = ranged(options.max_workers ?? Math.max(minWorkers, availableParallelism()), 'max_workers');
  if (maxWorkers < minWorkers)
    throw new InvalidPoolOptionError('max_workers', `(${maxWorkers}) must be >= min_workers (${minWorkers})`);
  if (options.num_workers !== undefined) {
    throw new InvalidPoolOptionError(
      'num_workers',
      'cannot be combined with min_workers/max_workers: a dynamic pool sizes itself between them',
    );
  }
  // idle_ttl doubles as the scale-down delay; RR's dynamic allocator defaults to one minute.
  const idleMs = parseDuration(options.supervisor?.idle_ttl ?? 60_000, 'supervisor.idle_ttl') || 60_000;
  return { minWorkers, maxWorkers, idleMs };
}

function resolveHeadroom(value: unknown): number {
  if (value === undefined) return DEFAULT_HEADROOM;
  const { min, max } = range('headroom');
  if (typeof value !== 'number' || !(value >= min && value <= max!))
    throw new InvalidPoolOptionError(
      'headroom',
      `must be a share from 0 to below 1 (e.g. 0.25), got ${JSON.stringify(value)}`,
    );
  return value;
}

/** Validates user options and resolves units and defaults. Errors name the option and what to write. */
export function resolvePoolOptions<Req = ExecRequest>(options: PoolOptions<Req>): ResolvedPoolOptions<Req> {
  if (options === null || typeof options !== 'object')
    throw new InvalidPoolOptionError('(options)', 'must be an object');
  for (const key of Object.keys(options)) {
    if (!KNOWN_KEYS.has(key))
      throw new InvalidPoolOptionError(key, `is not a pool option; known options: ${[...KNOWN_KEYS].join(', ')}`);
  }
  if (options.command === undefined) throw new InvalidPoolOptionError('command', 'is required, e.g. "php worker.php"');
  const supervisor = options.supervisor ?? {};
  for (const key of Object.keys(supervisor)) {
    if (!SUPERVISOR_KEYS.has(key))
      throw new InvalidPoolOptionError(
        `supervisor.${key}`,
        `is not a supervisor option; known: ${[...SUPERVISOR_KEYS].join(', ')}`,
      );
  }
  let relay: RelaySpec;
  try {
    relay = parseRelay(options.relay ?? 'pipes');
  } catch (error) {
    throw new InvalidPoolOptionError('relay', (error as Error).message);
  }
  const env = options.env ?? {};
  for (const [k, v] of Object.entries(env)) {
    if (typeof v !== 'string')
      throw new InvalidPoolOptionError(`env.${k}`, `must be a string, got ${JSON.stringify(v)}`);
  }
  // spawn would fail each boot with a bare ENOENT, read as a missing command
  if (options.cwd !== undefined && !isDirectory(options.cwd))
    throw new InvalidPoolOptionError(
      'cwd',
      `"${options.cwd}" does not exist or is not a folder; create it or fix the path`,
    );
  const memoryMb = supervisor.max_worker_memory ?? 0;
  if (typeof memoryMb !== 'number' || !(memoryMb >= range('supervisor.max_worker_memory').min)) {
    throw new InvalidPoolOptionError(
      'supervisor.max_worker_memory',
      `must be a number of MB >= 0, got ${JSON.stringify(memoryMb)}`,
    );
  }
  return {
    argv: parseCommand(options.command),
    env,
    clearEnv: booleanOf(options.clear_env, 'clear_env'),
    cwd: options.cwd,
    relay,
    mode: options.mode ?? 'http',
    numWorkers:
      options.num_workers === 'auto'
        ? 'auto'
        : // 0 (and unset) is one worker per CPU, as RoadRunner
          ranged(options.num_workers ?? 0, 'num_workers') || availableParallelism(),
    dynamic: resolveDynamic(options),
    headroom: resolveHeadroom(options.headroom),
    warmup: options.warmup ?? [],
    maxJobs: ranged(options.max_jobs ?? 0, 'max_jobs'),
    allocateTimeoutMs:
      parseDuration(options.allocate_timeout ?? DEFAULT_ALLOCATE_TIMEOUT_MS, 'allocate_timeout') ||
      DEFAULT_ALLOCATE_TIMEOUT_MS,
    maxQueueSize: options.max_queue_size === undefined ? null : ranged(options.max_queue_size, 'max_queue_size'),
    // 0 is RoadRunner's "the default" for all three (its pool config sets a minute), not "none":
    // a reset_timeout of 0 killed every busy worker at once (502s), a destroy_timeout of 0 never
    // stopped a hung one
    destroyTimeoutMs:
      parseDuration(options.destroy_timeout ?? DEFAULT_DESTROY_TIMEOUT_MS, 'destroy_timeout') ||
      DEFAULT_DESTROY_TIMEOUT_MS,
    resetTimeoutMs:
      parseDuration(options.reset_timeout ?? DEFAULT_RESET_TIMEOUT_MS, 'reset_timeout') || DEFAULT_RESET_TIMEOUT_MS,
    streamTimeoutMs: parseDuration(options.stream_timeout ?? DEFAULT_STREAM_TIMEOUT_MS, 'stream_timeout'),
    sendTimeoutMs: parseDuration(options.send_timeout ?? DEFAULT_SEND_TIMEOUT_MS, 'send_timeout'),
    maxFrameBytes: ranged(options.max_frame_size ?? DEFAULT_MAX_FRAME_BYTES, 'max_frame_size'),
    watchTickMs:
      parseDuration(supervisor.watch_tick ?? DEFAULT_WATCH_TICK_MS, 'supervisor.watch_tick') || DEFAULT_WATCH_TICK_MS,
    ttlMs: parseDuration(supervisor.ttl ?? 0, 'supervisor.ttl'),
    idleTtlMs: parseDuration(supervisor.idle_ttl ?? 0, 'supervisor.idle_ttl'),
    execTtlMs: parseDuration(supervisor.exec_ttl ?? 0, 'supervisor.exec_ttl'),
    maxWorkerMemoryBytes: Math.round(memoryMb * 1024 * 1024),
    slowlogTimeoutMs: parseDuration(
      supervisor.request_slowlog_timeout ?? DEFAULT_SLOWLOG_TIMEOUT_MS,
      'supervisor.request_slowlog_timeout',
    ),
    uid: options.uid === undefined ? undefined : integer(options.uid, 'uid', 0),
    gid: options.gid === undefined ? undefined : integer(options.gid, 'gid', 0),
    nice: ranged(options.nice ?? DEFAULT_WORKER_NICE, 'nice'),
    logger: options.logger ?? STDERR_LOGGER,
  };
}

function booleanOf(value: unknown, key: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean')
    throw new InvalidPoolOptionError(key, `must be true or false, got ${JSON.stringify(value)}`);
  return value;
}
