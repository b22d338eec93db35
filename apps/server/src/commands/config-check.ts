// `warmpool config check [-c warmpool.yaml] [--json]`: validates the file as `serve` would (without
// booting a worker) and prints the EFFECTIVE config: every default filled in, inheritance applied,
// one entry per site (the default site last), paths absolute. YAML by default, JSON with --json.
// Warnings (unsupported RoadRunner keys, ignored sections) go to stderr. Exit 0, or 2 with every
// problem as file:line:col.
import { availableParallelism, tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { stringify } from 'yaml';
import {
  CONFIG_KEYS,
  ConfigError,
  InvalidValueError,
  SITE_HTTP_KEYS,
  loadConfigFile,
  toServerOptions,
  type LoadedConfig,
  type ServerOptions,
  type SiteOptions,
} from '@warmpool/config';
import { QUEUE_PER_WORKER } from '@warmpool/pool';
import { checkSites } from '../app.js';
import { EXIT_CONFIG, EXIT_OK } from '../exit-codes.js';
import { folderProblem, logFileProblems } from '../log-files.js';
import { toPinoLevel } from '../logging.js';
import { formatWarning, plural, printConfigError, type CliOutput } from '../output.js';
import { METRICS_PATH, STATUS_HEALTH_PATH, STATUS_READY_PATH, exposedOpsWarnings } from '../status.js';
import { everyoneTrustedWarnings } from '../trust-warnings.js';
import { planCertificates } from '../acme/plan.js';
import { ignoredKeyWarnings } from '../ignored-keys.js';
import { memoryLimitWarnings } from '../memory-limit.js';
import { uploadsAccessWarnings } from '../uploads-access.js';
import { STAGING_WARNING } from '../acme/automatic-https.js';
import { exposedRpcWarning } from '../rpc/server.js';
import { DEFAULT_TLS12_CIPHERS, TLS_MIN_VERSION, loadTlsContexts } from '../tls.js';
import { TlsError } from '../errors.js';
import { listenAddressProblems } from '../listen-addresses.js';

export interface ConfigCheckArgs {
  config: string;
  json?: boolean;
  /** `-o key=value` overrides, applied over the file */
  overrides?: readonly string[];
}

export async function run(args: ConfigCheckArgs, out: CliOutput): Promise<number> {
  let loaded: LoadedConfig;
  let server: ServerOptions;
  try {
    loaded = await loadConfigFile(args.config, { overrides: args.overrides ?? [] });
    server = toServerOptions(loaded);
    // then what serve finds on the machine, every problem at once (not one kind a run)
    const problems = [
      checkSites(server, loaded),
      // as nginx -t does: the certificate and key are read and matched, not only named
      tlsProblem(server, loaded),
      // the log files: can they be created and appended to (nothing is made: log-files.ts)
      logFileProblems(server, loaded, { create: false }),
      // the ACME store's folder, which serve makes and writes (nothing is made here)
      certsDirProblem(server, loaded),
      // the listen addresses: this machine's, or names that resolve (tried on port 0)
      await listenAddressProblems(loaded),
    ].filter((problem) => problem !== null);
    if (problems.length > 0)
      throw new ConfigError(
        loaded.file,
        problems.flatMap((problem) => problem.errors),
      );
  } catch (error) {
    if (printConfigError(error, out, args.config, args.overrides)) return EXIT_CONFIG;
    throw error;
  }
  for (const warning of loaded.warnings) out.warn(formatWarning(warning));
  for (const warning of exposedOpsWarnings(server, loaded)) out.warn(formatWarning(warning));
  for (const warning of everyoneTrustedWarnings(server, loaded)) out.warn(formatWarning(warning));
  const rpcWarning = exposedRpcWarning(server, loaded);
  if (rpcWarning !== null) out.warn(formatWarning(rpcWarning));
  for (const line of ignoredKeyWarnings(server, loaded)) out.warn(line);
  for (const warning of memoryLimitWarnings(server, loaded)) out.warn(formatWarning(warning));
  for (const warning of uploadsAccessWarnings(server, loaded)) out.warn(formatWarning(warning));
  // what serve says at start too: certificates browsers will not trust
  if (server.http.ssl?.acme?.staging === true) out.warn(STAGING_WARNING);
  const effective = effectiveConfig(loaded, server);
  if (args.json === true) {
    out.raw(JSON.stringify(effective, null, 2));
    return EXIT_OK;
  }
  out.success(
    `${args.config} is valid: ${plural(server.sites.length, 'site')}${loaded.warnings.length > 0 ? `, ${plural(loaded.warnings.length, 'warning')}` : ''}; effective config:`,
  );
  // each site written out in full: no &anchors and *aliases where two sites share a value
  out.raw(stringify(effective, { lineWidth: 0, aliasDuplicateObjects: false }));
  return EXIT_OK;
}

/** http.ssl.acme.certs_dir, as serve will make and write it; the error names the key and its line. */
function certsDirProblem(server: ServerOptions, loaded: LoadedConfig): ConfigError | null {
  const folder = server.http.ssl?.acme?.certs_dir;
  if (folder === undefined || folder === null) return null;
  const problem = folderProblem(folder);
  if (problem === null) return null;
  const at = loaded.positionOf('http.ssl.acme.certs_dir', { nearest: true }) ?? { file: loaded.file, line: 1, col: 1 };
  return new ConfigError(loaded.file, [new InvalidValueError('http.ssl.acme.certs_dir', at, problem)]);
}

/** http.ssl's ciphers and certificate pair as serve loads them; the error names the key and its line. */
function tlsProblem(server: ServerOptions, loaded: LoadedConfig): ConfigError | null {
  const ssl = server.http.ssl;
  if (ssl === null) return null;
  try {
    loadTlsContexts(ssl);
  } catch (error) {
    if (!(error instanceof TlsError)) throw error;
    const key = String(error.details.key);
    const at = loaded.positionOf(key, { nearest: true }) ?? { file: loaded.file, line: 1, col: 1 };
    return new ConfigError(loaded.file, [new InvalidValueError(key, at, error.message)]);
  }
  return null;
}

/** The config as the server runs it. */
export function effectiveConfig(loaded: LoadedConfig, server: ServerOptions): Record<string, unknown> {
  const { http: top } = loaded.config;
  const ssl = server.http.ssl;
  const logs = server.logs;
  return {
    file: resolve(loaded.file),
    version: '3',
    listeners: {
      http: {
        address: server.http.address,
        serves: ssl?.redirect === true ? 'redirect to https' : 'HTTP/1.1',
        // the listener's own keys; the per-site ones (max_request_size, pool, ...) are under sites
        ...withDefaults(
          'http',
          {
            access_logs: server.http.access_logs,
            access_log: server.http.access_log,
            trusted_subnets: top.trusted_subnets ?? [],
            real_ip_header: top.real_ip_header ?? 'X-Forwarded-For',
            max_header_count: top.max_header_count,
            max_header_size: top.max_header_size,
            headers_timeout: top.headers_timeout,
            request_timeout: top.request_timeout,
            body_timeout: top.body_timeout,
            max_connections: top.max_connections,
            max_connections_per_ip: top.max_connections_per_ip,
            send_timeout: top.send_timeout,
            max_response_memory: top.max_response_memory,
          },
          ['address', ...SITE_HTTP_KEYS],
        ),
      },
      https:
        ssl === null
          ? null
          : {
              address: ssl.address ?? defaultOf('http.ssl.address'),
              cert: ssl.cert,
              key: ssl.key,
              // each served to the names its certificate holds (SNI)
              certificates: ssl.certificates,
              redirect: ssl.redirect ?? false,
              protocols: 'HTTP/2 + HTTP/1.1 (ALPN)',
              min_version: TLS_MIN_VERSION,
              tls12_ciphers: ssl.ciphers ?? DEFAULT_TLS12_CIPHERS,
              max_concurrent_streams: server.http.http2?.max_concurrent_streams ?? null,
              acme:
                ssl.acme === null
                  ? null
                  : {
                      directory: ssl.acme.directory,
                      staging: ssl.acme.staging,
                      certs_dir: ssl.acme.certs_dir,
                      email: ssl.acme.email ?? null,
                      challenge_type: ssl.acme.challenge_type,
                      // one certificate per site
                      certificates: planCertificates(ssl.acme.domains, server.sites).map(({ name, domains }) => ({
                        name,
                        domains,
                      })),
                    },
            },
      status:
        server.status === null
          ? null
          : {
              address: server.status.address,
              unavailable_status_code:
                server.status.unavailable_status_code ?? defaultOf('status.unavailable_status_code'),
              paths: [STATUS_HEALTH_PATH, STATUS_READY_PATH],
            },
      metrics: server.metrics === null ? null : { address: server.metrics.address, path: METRICS_PATH },
    },
    logs: {
      mode: logs.mode ?? defaultOf('logs.mode'),
      level: toPinoLevel(logs.level, logs.mode),
      encoding: logs.encoding ?? ((logs.mode ?? 'development') === 'production' ? 'json' : 'console'),
      output: logs.output === undefined ? ['stderr'] : [logs.output].flat(),
      channels: Object.fromEntries(
        ['http', 'server', 'warmpool'].map((channel) => [
          channel,
          {
            level: toPinoLevel(
              logs.channels?.[channel]?.level ?? logs.level,
              logs.channels?.[channel]?.mode ?? logs.mode,
            ),
          },
        ]),
      ),
    },
    admin: { socket: server.admin.socket },
    rpc: server.rpc === null ? null : { listen: server.rpc.url },
    sites: server.sites.map(effectiveSite),
    proxy: (server.proxy ?? []).map((route) => ({ ...route, websocket: route.websocket ?? false })),
    cache: server.cache === null ? null : withDefaults('cache', { ...server.cache }),
  };
}

/** What exec_ttl is on a classic site that does not set it: none, but 60 s of PHP's silence ends a request (nginx's fastcgi_read_timeout). */
const CLASSIC_EXEC_TTL = '0s (60s of silence from PHP: 504)';
/** What idle_ttl is on a dynamic pool (min_workers/max_workers) that does not set it: its scale-down delay. */
const DYNAMIC_IDLE_TTL = '60s';

function effectiveSite(site: SiteOptions): Record<string, unknown> {
  const { http } = site;
  const classic = site.plugin.fastcgi !== undefined;
  return {
    name: site.name,
    hosts: site.hosts ?? ['(any host no other site lists)'],
    dir: site.dir,
    // false: static files and proxy routes only, no PHP process
    php: site.php,
    // every request sent elsewhere (sites[].redirect); null: none
    redirect: site.redirect,
    server: effectiveServer(site),
    http: {
      middleware: site.middleware,
      max_request_size:
        http.max_request_size !== undefined && http.max_request_size > 0
          ? http.max_request_size
          : defaultOf('http.max_request_size'),
      raw_body: http.raw_body ?? false,
      // the worker protocol's payload codec: a classic site speaks FastCGI
      ...(classic || !site.php ? {} : { codec: http.codec ?? defaultOf('http.codec') }),
      // a site of no PHP has no pool
      ...(site.php ? { pool: effectivePool(site) } : {}),
      uploads: withDefaults('http.uploads', {
        ...(http.uploads ?? {}),
        ...(site.plugin.uploads?.dir === undefined ? {} : { dir: site.plugin.uploads.dir }),
      }),
      static: effectiveStatic(site),
      headers: site.headers,
      gzip: site.gzip,
      access: site.plugin.access ?? [],
      limit_req: (site.plugin.limit_req ?? []).map((rule) => ({ burst: 0, ...rule })),
      auth_basic: (site.plugin.auth_basic ?? []).map((rule) =>
        rule.off === true ? { prefix: rule.prefix, off: true } : { realm: 'Restricted', ...rule },
      ),
      // this site's own access log; null: its lines go to the top level's
      access_log: site.access_log,
      error_pages: site.plugin.error_pages ?? {},
    },
    // classic PHP (null: a worker site); pass: php-fpm runs the processes, else the pool runs php-cgi
    fastcgi: site.plugin.fastcgi === undefined ? null : effectiveFastCgi(site.plugin.fastcgi),
    // what this site runs: its own cache keys over the top level's, its own proxy list or the top level's
    cache: site.cache === null ? null : withDefaults('cache', { ...site.cache }),
    proxy: (site.proxy ?? []).map((route) => ({ ...route, websocket: route.websocket ?? false })),
  };
}

/**
 * server.* as it applies: a worker site's command, env, relay and user; managed php-cgi's env and
 * user (its command is fastcgi.command, its pipes FastCGI's socket); nothing for a fastcgi.pass
 * site, whose processes, environment and user are php-fpm's.
 */
function effectiveServer(site: SiteOptions): Record<string, unknown> {
  const { server } = site;
  const fastcgi = site.plugin.fastcgi;
  if (!site.php || fastcgi?.pass !== undefined) return {};
  const ids = {
    ...(server.user === undefined ? {} : { user: server.user }),
    ...(server.group === undefined ? {} : { group: server.group }),
  };
  if (fastcgi !== undefined) return { env: server.env ?? {}, ...ids };
  return {
    command: site.plugin.command,
    env: server.env ?? {},
    relay: server.relay ?? defaultOf('server.relay'),
    ...ids,
  };
}

/**
 * The static layer in use: a worker site's when the middleware lists static (null otherwise); a
 * classic site always has one, over fastcgi.root, with its ETags on unless set.
 */
function effectiveStatic(site: SiteOptions): Record<string, unknown> | null {
  const { http } = site;
  const fastcgi = site.plugin.fastcgi;
  if (fastcgi === undefined && http.static === undefined) return null;
  const shown = withDefaults('http.static', {
    ...(http.static ?? {}),
    dir: fastcgi?.root ?? [site.plugin.static!.dir ?? site.plugin.static!.root].flat()[0],
    // its default depends on the site (a classic site's is true): the one in use
    calculate_etag: site.plugin.static?.calculate_etag ?? true,
  });
  // try_files is a site of no PHP's (where PHP runs, PHP is the fallback): no default to show there
  if (site.php) delete shown.try_files;
  return shown;
}

/**
 * The http.pool keys that apply to a site with fastcgi.pass: those the connection pool to php-fpm
 * reads (@warmpool/fastify's passClientOptions) and debug, the plugin's. The others size, recycle and
 * talk to processes, and php-fpm's processes are its own (its pm.* settings).
 */
const PASS_POOL_KEYS = ['debug', 'allocate_timeout', 'max_queue_size', 'send_timeout', 'supervisor'];
const PASS_SUPERVISOR_KEYS = ['exec_ttl'];

/**
 * http.pool with its defaults; a dynamic pool (min_workers/max_workers) shows no num_workers, which it
 * does not use, and a fastcgi.pass site only the keys that apply to it (PASS_POOL_KEYS).
 */
function effectivePool(site: SiteOptions): Record<string, unknown> {
  const { http } = site;
  if (site.plugin.fastcgi?.pass !== undefined) return effectivePassPool(site);
  const dynamic = http.pool?.min_workers !== undefined || http.pool?.max_workers !== undefined;
  const pool = withDefaults('http.pool', {
    ...(http.pool ?? {}),
    supervisor: withDefaults('http.pool.supervisor', {
      // a classic site's default is nginx's fastcgi_read_timeout (PHP's silence), as applied
      ...(site.plugin.fastcgi === undefined ? {} : { exec_ttl: CLASSIC_EXEC_TTL }),
      // a dynamic pool's idle_ttl is its scale-down delay, a minute unless set (RoadRunner's)
      ...(dynamic ? { idle_ttl: DYNAMIC_IDLE_TTL } : {}),
      ...(http.pool?.supervisor ?? {}),
    }),
  });
  if (dynamic) delete pool.num_workers;
  // 0 is RoadRunner's "the default" for these (the pool applies 60 s), not "no wait" or "no bound"
  const defaults: Record<string, unknown> = withDefaults('http.pool', {});
  for (const key of ['allocate_timeout', 'destroy_timeout', 'reset_timeout'] as const) {
    if (isZeroDuration((pool as Record<string, unknown>)[key])) (pool as Record<string, unknown>)[key] = defaults[key];
  }
  return pool;
}

function isZeroDuration(value: unknown): boolean {
  return value === 0 || (typeof value === 'string' && /^0+(\.0+)?(ms|s|m|h)?$/.test(value.trim()));
}

function effectivePassPool(site: SiteOptions): Record<string, unknown> {
  const { http } = site;
  const pool = withDefaults('http.pool', {
    ...(http.pool ?? {}),
    // unset: QUEUE_PER_WORKER per connection to php-fpm (fastcgi.max_connections)
    ...(http.pool?.max_queue_size === undefined ? { max_queue_size: `${QUEUE_PER_WORKER} per connection` } : {}),
    supervisor: withDefaults('http.pool.supervisor', { exec_ttl: CLASSIC_EXEC_TTL, ...(http.pool?.supervisor ?? {}) }),
  }) as Record<string, unknown>;
  const supervisor = pool.supervisor as Record<string, unknown>;
  for (const key of Object.keys(supervisor)) if (!PASS_SUPERVISOR_KEYS.includes(key)) delete supervisor[key];
  for (const key of Object.keys(pool)) if (!PASS_POOL_KEYS.includes(key)) delete pool[key];
  return pool;
}

/** The fastcgi section with its defaults; only the keys of its mode (command managed, max_connections with pass). */
function effectiveFastCgi(fastcgi: NonNullable<SiteOptions['plugin']['fastcgi']>): Record<string, unknown> {
  const effective: Record<string, unknown> = withDefaults('fastcgi', { ...fastcgi });
  delete effective[fastcgi.pass === undefined ? 'max_connections' : 'command'];
  return effective;
}

/**
 * Fills in the key table's default of every direct child key of `section` the object lacks (but
 * those in `except`); the values given always win over defaults.
 */
function withDefaults<T extends Record<string, unknown>>(
  section: string,
  values: T,
  except: readonly string[] = [],
): T {
  const out: Record<string, unknown> = {};
  for (const spec of CONFIG_KEYS) {
    if (spec.site === true || !spec.path.startsWith(`${section}.`)) continue;
    const name = spec.path.slice(section.length + 1);
    if (/[.[*]/.test(name) || spec.type === 'section' || except.includes(name)) continue;
    const value = values[name];
    if (value !== undefined) out[name] = value;
    else if (spec.default !== undefined) out[name] = defaultOf(spec.path);
  }
  for (const [key, value] of Object.entries(values)) if (value !== undefined && !(key in out)) out[key] = value;
  return out as T;
}

/** A key's documented default as a value (the table holds some as text: "CPU count", "[…]", "64m"). */
function defaultOf(path: string): unknown {
  const spec = CONFIG_KEYS.find((k) => k.path === path);
  const value = spec?.default;
  if (typeof value !== 'string') return value;
  if (value === 'CPU count') return availableParallelism();
  if (value === 'the OS temp dir') return tmpdir();
  if (spec!.type === 'string[]' && value.startsWith('[')) return JSON.parse(value) as string[];
  if (spec!.type === 'bytes') {
    const match = /^(\d+)([kmg]?)$/i.exec(value);
    if (match !== null) return Number(match[1]) * 1024 ** ' kmg'.indexOf((match[2] || ' ').toLowerCase());
  }
  return value;
}
