import {
  type Codec,
  type Logger,
  optionErrorDetails,
  SILENT_LOGGER,
  type PoolOptions,
  type ResolvedPoolOptions,
  resolvePoolOptions,
  toExecRequest,
} from '@warmpool/pool';
import { resolveClassicOptions, type FastCgiOptions, type ResolvedClassic } from './classic.js';
import { InvalidOptionError, optionChecker } from './errors.js';
import { resolveHealthOptions, type HealthOptions, type ResolvedHealth } from './health.js';
import { LIMIT_OPTION_KEYS, resolveLimits, type LimitOptions, type ResolvedLimits } from './limits.js';
import { resolveMetricsOptions, type MetricsOptions, type ResolvedMetrics } from './metrics.js';
import { type ErrorPages, resolveErrorPages } from './http/error-pages.js';
import { compileRequestRate, type RequestRateCheck, type RequestRateRule } from './network/request-rate.js';
import { compileAccess, type AccessCheck, type AccessRule } from './network/access.js';
import { compileBasicAuth, type BasicAuthCheck, type BasicAuthRule } from './network/basic-auth.js';
import { createClientInfoResolver, type ClientInfoResolver } from './network/client-info.js';
import { resolveInternalFiles, type InternalFilesOptions, type ResolvedInternalFiles } from './http/internal-files.js';
import { warmupExchangeRequest } from './http/exchange-request.js';
import { resolveUploadOptions, type ResolvedUploadOptions, type UploadOptions } from './http/uploads.js';
import { resolveStaticOptions, type ResolvedStaticOptions, type StaticOptions } from './static/static.js';

/**
 * Options of `app.register(warmpool, { ... })`; keys a user types follow .rr.yaml spelling. Either
 * `command` (worker mode) or `fastcgi` (classic mode), never both; neither only with `php: false`.
 */
export type WarmpoolOptions = WarmpoolCommonOptions & (WorkerModeOptions | ClassicModeOptions | NoPhpOptions);

export interface WorkerModeOptions {
  /** the worker command: "php worker.php" or argv (server.command) */
  command: string | readonly string[];
  fastcgi?: undefined;
  php?: true;
}

export interface ClassicModeOptions {
  /** classic mode: run .php files as nginx + php-fpm does (managed php-cgi, or fastcgi.pass to a php-fpm) */
  fastcgi: FastCgiOptions;
  command?: undefined;
  php?: true;
}

/**
 * A site with no PHP (`warmpool serve`'s static-only and proxied sites): the static layer answers
 * GET and HEAD, every other path is 404 and every other method 405, with the same limits, access
 * rules, health and metrics as a PHP site. With no `static` either, no catch-all route is taken:
 * the app's own routes (serve's proxy routes) have every path.
 */
export interface NoPhpOptions {
  php: false;
  command?: undefined;
  fastcgi?: undefined;
}

/** What both modes take; `WarmpoolOptions` adds `command` or `fastcgi`. */
export interface WarmpoolCommonOptions extends LimitOptions, HealthOptions, MetricsOptions {
  /** server.env */
  env?: Readonly<Record<string, string>>;
  /** working directory of the workers */
  cwd?: string;
  /** server.clear_env: workers start from a cleared environment plus `env` (php-fpm's clear_env) */
  clear_env?: boolean;
  /** server.relay: pipes | fds | unix:///path | tcp://host:port */
  relay?: string;
  /** http.pool.* */
  pool?: Omit<PoolOptions, 'command' | 'env' | 'clear_env' | 'cwd' | 'relay' | 'logger' | 'warmup'>;
  /** paths requested (GET) on the probe worker before `pool.num_workers: 'auto'` measures it (default ['/']) */
  warmup?: string[];
  /** context encoding sent to workers: json (default; every PHP library version) or proto (RR >= 2024.1) */
  codec?: Codec;
  /** show worker error text in 500 responses (http.pool.debug); never in production */
  debug?: boolean;
  /** where worker output and pool events go; default: the Fastify instance's logger */
  logger?: Logger;
  /** static files served before PHP (try_files order); off when absent */
  static?: StaticOptions;
  /** http.uploads: where multipart files go and which extensions are refused */
  uploads?: UploadOptions;
  /** http.raw_body: pass urlencoded/multipart bodies to PHP unparsed (no uploads) */
  raw_body?: boolean;
  /** http.trusted_subnets: proxies whose forwarding header (real_ip_header) is believed */
  trusted_subnets?: string[];
  /** http.real_ip_header: the one header a trusted proxy sets: "X-Forwarded-For" (default), "Forwarded" or "X-Real-IP" */
  real_ip_header?: 'X-Forwarded-For' | 'Forwarded' | 'X-Real-IP' | (string & {});
  /** allow/deny CIDR lists per path prefix (403), e.g. only 127.0.0.1 may see /metrics */
  access?: AccessRule[];
  /** nginx's limit_req (nodelay): per path prefix, requests per client and second or minute (429 over it) */
  limit_req?: RequestRateRule[];
  /** nginx's auth_basic with auth_basic_user_file: per path prefix, the users of an htpasswd file (401 otherwise) */
  auth_basic?: BasicAuthRule[];
  /** the folder PHP may hand files over from with X-Accel-Redirect or X-Sendfile; off when absent */
  internal_files?: InternalFilesOptions;
  /**
   * nginx's error_page: status → an absolute path to the page sent when warmpool answers that status
   * itself (PHP down or timed out, a full queue, 403, 404, 413); PHP's own answers pass untouched
   */
  error_pages?: Record<string, string>;
  /**
   * Classic mode: reuse the memory of a response PHP sent whole once the HTTP response has closed,
   * so a busy site makes no fresh memory per response for V8 to collect. Turn it on only when no
   * hook of yours keeps a reply payload past its response (`warmpool serve` turns it on; its
   * micro-cache copies what it keeps). Default false.
   */
  recycle_response_memory?: boolean;
  /**
   * Aborting it while the workers boot stops the boot: workers still booting are killed and the
   * plugin's registration (app.ready()) rejects with WP_POOL_CLOSED instead of waiting up to
   * allocate_timeout (`warmpool serve` aborts it on SIGTERM during the boot).
   */
  signal?: AbortSignal;
  /**
   * When no worker boots (a parse error in the app), register anyway: the pool answers 503 and
   * retries with backoff, as when its workers stop booting later, where the registration rejected
   * (`warmpool serve` sets it for a server of several sites: one site's broken deploy must not keep
   * the others from starting). A command that is not there still rejects. Default false.
   */
  keep_trying?: boolean;
}

export interface ResolvedOptions {
  /** false: no PHP (NoPhpOptions); pool is then null */
  php: boolean;
  /** the workers' pool (worker mode, managed php-cgi) or what fastcgi.pass reads of its keys; null without PHP */
  pool: ResolvedPoolOptions | null;
  codec: Codec;
  debug: boolean;
  static: ResolvedStaticOptions | null;
  uploads: ResolvedUploadOptions;
  rawBody: boolean;
  /** recycle_response_memory: classic whole bodies in reused memory, released when the response closes */
  recycleResponseMemory: boolean;
  limits: ResolvedLimits;
  /** who the client is, which host and scheme it asked for (trusted_subnets applied) */
  client: ClientInfoResolver;
  access: AccessCheck | null;
  /** limit_req; null: off */
  requestRate: RequestRateCheck | null;
  /** auth_basic; null: off */
  basicAuth: BasicAuthCheck | null;
  health: ResolvedHealth;
  metrics: ResolvedMetrics;
  /** classic mode (the fastcgi option); null: worker mode */
  classic: ResolvedClassic | null;
  /** X-Accel-Redirect / X-Sendfile; null: off (the headers pass through) */
  internalFiles: ResolvedInternalFiles | null;
  /** error_pages, read at start; null: off */
  errorPages: ErrorPages;
}

const KNOWN = new Set([
  'keep_trying',
  'php',
  'command',
  'env',
  'cwd',
  'clear_env',
  'relay',
  'pool',
  'codec',
  'debug',
  'logger',
  'static',
  'uploads',
  'raw_body',
  'trusted_subnets',
  'real_ip_header',
  'access',
  'limit_req',
  'auth_basic',
  'warmup',
  'health_path',
  'ready_path',
  'metrics_path',
  'fastcgi',
  'internal_files',
  'error_pages',
  'recycle_response_memory',
  'signal',
  ...LIMIT_OPTION_KEYS,
]);

/**
 * Fastify's own register options, which a plugin wrapped in fastify-plugin (it decorates the app
 * with `warmpool`) does not get applied: each is refused with the way to get what it asks for.
 */
const FASTIFY_REGISTER_OPTIONS: Record<string, string> = {
  prefix:
    'warmpool serves every path of the Fastify instance it is registered on; to mount it under a prefix, register it in a scope: app.register(async (scope) => { await scope.register(warmpool, options) }, { prefix: "/php" }) (README, "Routes")',
  logLevel: 'pass a logger at the level you want instead: logger: app.log.child({}, { level: "warn" })',
  logSerializers: 'pass a logger with those serializers instead (the logger option)',
};

/** GET requests for num_workers: auto's probe worker, encoded once at boot. */
function warmupRequests(paths: readonly string[], codec: Codec): PoolOptions['warmup'] {
  if (!Array.isArray(paths) || paths.some((p) => typeof p !== 'string' || !p.startsWith('/'))) {
    throw new InvalidOptionError('warmup', `must be a list of paths starting with "/", got ${JSON.stringify(paths)}`);
  }
  return paths.map((path) => toExecRequest(warmupExchangeRequest(path), codec));
}

/** Pool options the plugin takes beside `pool` (the pool's logger is the plugin's `logger`). */
const TOP_LEVEL_POOL_KEYS = ['command', 'env', 'clear_env', 'cwd', 'relay', 'logger', 'warmup'] as const;

/**
 * The pool's options as the plugin takes them: `command`, `env`, `cwd` and `relay` at its top level,
 * every other one under `pool`. The pool checks them; its errors name the plugin's key.
 */
export function resolvePluginPool(
  options: WarmpoolOptions,
  logger: Logger,
  codec: Codec = 'json',
  /** classic mode: the php-cgi command (fastcgi.command) the pool runs instead of `command` */
  classicCommand: string | readonly string[] | null = null,
): ResolvedPoolOptions {
  const command = classicCommand ?? options.command!;
  // the pool keys the plugin takes at its top level: under `pool` they were taken (env, cwd) or
  // dropped without a word (command, logger), while the unknown-key error listed them as known
  for (const key of TOP_LEVEL_POOL_KEYS)
    if (options.pool !== undefined && key in options.pool)
      throw new InvalidOptionError(
        `pool.${key}`,
        `is a top-level option of the plugin: write ${key} beside pool, not in it${key === 'command' && classicCommand !== null ? ' (classic mode: fastcgi.command)' : ''}`,
      );
  const hoisted: Partial<PoolOptions> = { command };
  if (options.env !== undefined) hoisted.env = options.env;
  if (options.cwd !== undefined) hoisted.cwd = options.cwd;
  if (options.clear_env !== undefined) hoisted.clear_env = options.clear_env;
  if (options.relay !== undefined) hoisted.relay = options.relay;
  const poolOptions: PoolOptions = { ...(options.pool ?? {}), ...hoisted, command, logger };
  if (options.pool?.num_workers === 'auto' && classicCommand === null)
    poolOptions.warmup = warmupRequests(options.warmup ?? ['/'], codec);
  try {
    return resolvePoolOptions(poolOptions);
  } catch (error) {
    const key = optionErrorDetails(error)?.key;
    if (key === undefined) throw error;
    if (key === 'command' && classicCommand !== null) throw InvalidOptionError.from('fastcgi.command', error);
    throw InvalidOptionError.from(key.split('.')[0]! in hoisted ? key : `pool.${key}`, error);
  }
}

/**
 * Every problem of the options at once, each an InvalidOptionError naming its key (the config
 * reports them all with their lines before anything boots); the same checks as resolveOptions.
 */
export function checkOptions(options: WarmpoolOptions): InvalidOptionError[] {
  const problems: InvalidOptionError[] = [];
  const check = optionChecker(problems);
  check(() => phpOf(options));
  check(() => tryFilesWithoutPhp(options));
  let classicCommand: string | readonly string[] | null = null;
  if (options.fastcgi !== undefined) {
    // classic mode: root, pass, try_files, ... and the static layer over the document root
    check(() => {
      classicCommand = resolveClassicOptions(options.fastcgi!, options.static).command;
    });
  } else check(() => resolveStaticOptions(options.static));
  if (options.php !== false)
    check(() =>
      resolvePluginPool(
        options,
        SILENT_LOGGER,
        'json',
        classicCommand ?? (options.fastcgi === undefined ? null : 'php-cgi'),
      ),
    );
  check(() => resolveLimits(options));
  check(() => compileBasicAuth(options.auth_basic));
  check(() => resolveUploadOptions(options.uploads));
  check(() => resolveInternalFiles(options.internal_files));
  check(() =>
    createClientInfoResolver({ trusted_subnets: options.trusted_subnets, real_ip_header: options.real_ip_header }),
  );
  return problems;
}

/** The workers' user and group, when they run as another user than warmpool's (server.user). */
function uploadOwner(pool: ResolvedPoolOptions | null): { uid: number; gid: number } | null {
  if (pool === null || (pool.uid === undefined && pool.gid === undefined)) return null;
  return { uid: pool.uid ?? process.getuid?.() ?? 0, gid: pool.gid ?? process.getgid?.() ?? 0 };
}

/**
 * static.try_files is a site of no PHP's: where PHP runs, every path that is no file is PHP's
 * (a classic site tries its files with fastcgi.try_files).
 */
function tryFilesWithoutPhp(options: WarmpoolOptions): void {
  const tryFiles = (options.static as { try_files?: unknown } | undefined)?.try_files;
  if (tryFiles === undefined || (options as { php?: unknown }).php === false) return;
  throw new InvalidOptionError(
    'static.try_files',
    options.fastcgi !== undefined
      ? 'is for a site of no PHP: a classic site tries its files with fastcgi.try_files'
      : 'is for a site of no PHP: here every path that is no file goes to PHP, which is the fallback',
  );
}

/** `php`: true (the default) or false; false with a command, a fastcgi section or pool options is refused. */
function phpOf(options: WarmpoolOptions): boolean {
  const php = (options as { php?: unknown }).php;
  if (php === undefined || php === true) return true;
  if (php !== false) throw new InvalidOptionError('php', `must be true or false, got ${JSON.stringify(php)}`);
  for (const key of ['command', 'fastcgi', 'pool', 'env', 'relay', 'warmup'] as const)
    if ((options as unknown as Record<string, unknown>)[key] !== undefined)
      throw new InvalidOptionError(key, 'runs PHP, and php: false says this site has none: remove one of the two');
  return false;
}

/** Validates at register time; every error names the option. */
export function resolveOptions(options: WarmpoolOptions, fallbackLogger: Logger): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw new InvalidOptionError('(options)', 'must be an object');
  for (const key of Object.keys(options)) {
    const fastifyOwn = FASTIFY_REGISTER_OPTIONS[key];
    if (fastifyOwn !== undefined) throw new InvalidOptionError(key, fastifyOwn);
    if (!KNOWN.has(key)) throw new InvalidOptionError(key, `is not an option; known options: ${[...KNOWN].join(', ')}`);
  }
  const php = phpOf(options);
  tryFilesWithoutPhp(options);
  if (php && options.command === undefined && options.fastcgi === undefined)
    throw new InvalidOptionError(
      'command',
      'is required, e.g. "php worker.php" (or fastcgi for classic PHP, or php: false for a site of static files only)',
    );
  if (options.command !== undefined && options.fastcgi !== undefined)
    throw new InvalidOptionError(
      'command',
      'starts worker-mode workers; a classic site (fastcgi) runs fastcgi.command',
    );
  const classic = options.fastcgi === undefined ? null : resolveClassicOptions(options.fastcgi, options.static);
  const codec = options.codec ?? 'json';
  if (codec !== 'json' && codec !== 'proto')
    throw new InvalidOptionError('codec', `must be "json" or "proto", got ${JSON.stringify(codec)}`);
  const pool = php
    ? resolvePluginPool(options, options.logger ?? fallbackLogger, codec, classic?.command ?? null)
    : null;
  return {
    php,
    pool,
    codec,
    debug: options.debug === true,
    static: classic !== null ? classic.static : resolveStaticOptions(options.static),
    uploads: resolveUploadOptions(options.uploads, uploadOwner(pool)),
    rawBody: options.raw_body === true,
    recycleResponseMemory: options.recycle_response_memory === true,
    limits: resolveLimits(options),
    client: createClientInfoResolver({
      trusted_subnets: options.trusted_subnets,
      real_ip_header: options.real_ip_header,
    }),
    access: compileAccess(options.access),
    requestRate: compileRequestRate(options.limit_req),
    basicAuth: compileBasicAuth(options.auth_basic, 'auth_basic', (message) =>
      (options.logger ?? fallbackLogger).error({ component: 'auth_basic' }, message),
    ),
    health: resolveHealthOptions(options),
    metrics: resolveMetricsOptions(options),
    classic,
    internalFiles: resolveInternalFiles(options.internal_files),
    errorPages: resolveErrorPages(options.error_pages),
  };
}
