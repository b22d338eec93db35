// Config sections → what the server builds: one @warmpool/fastify options object per site (the
// top-level `http`/`server` being the default site), plus the listener settings shared by all.
// Decided once at boot (principle 2): inheritance, relative paths, user names → ids, RR spellings →
// plugin spellings. Errors the plugin's own validator raises later are pointed back at a line of the
// file by locateOptionError.
import { readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, isAbsolute, resolve, sep } from 'node:path';
import {
  compileAccess,
  DEFAULT_MAX_RESPONSE_MEMORY_BYTES,
  resolveErrorPages,
  resolveRequestRateRules,
  type ClassicModeOptions,
  type WarmpoolCommonOptions,
  type WarmpoolOptions,
  type WorkerModeOptions,
} from '@warmpool/fastify';
import { optionErrorDetails, parseDuration } from '@warmpool/pool';
import { ConfigError, InvalidValueError, type LocatedConfigError, type Position } from './errors.js';
import type { LoadedConfig } from './load.js';
import { DEFAULT_HEADERS_TIMEOUT, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SEND_TIMEOUT } from './keys.js';
import type {
  CacheConfig,
  FastCgiConfig,
  HeadersConfig,
  Http2Config,
  LogsConfig,
  Middleware,
  ProxyRoute,
  ServerConfig,
  SiteHttpConfig,
  SslConfig,
  AcmeConfig,
  StatusConfig,
  MetricsConfig,
} from './warmpool-config.js';
import { listenerAddresses, portClashes } from './listener-ports.js';
import { parseRpcListen, type RpcAddress } from './rpc-listen.js';

/** The name of the site made of the top-level `server` and `http` sections. */
export const DEFAULT_SITE_NAME = 'default';
/** `admin.socket` when the file does not set it. */
export const DEFAULT_ADMIN_SOCKET = '/run/warmpool.sock';

/** One site, its inheritance applied: what the server registers for it. */
export interface SiteOptions {
  /** "default" for the top level, else the site's first host; `warmpool reset --site NAME` uses it */
  name: string;
  /** lower-cased host names ("*.example.com" for subdomains); null for the default site */
  hosts: string[] | null;
  /** index in sites[]; null for the default site */
  index: number | null;
  /** the folder relative paths start from and workers run in: sites[].root, else the config file's folder */
  dir: string;
  /** server.* after inheritance */
  server: ServerConfig;
  /** the per-site http.* keys after inheritance; static/headers only when the middleware lists them */
  http: SiteHttpConfig;
  /** false: a site of no PHP (static files, proxy routes); the plugin's `php: false` */
  php: boolean;
  /**
   * sites[].http.access_log: this site's own access log (a file path absolute, relative ones from the
   * site's folder); null: its lines go to the top level's
   */
  access_log: { format: 'combined' | 'json'; output: string } | null;
  /** sites[].redirect: every request answered with `status` to `to` + its path and query; null: none */
  redirect: { to: string; status: number } | null;
  middleware: Middleware[];
  /** http.headers when the headers middleware is on; null otherwise */
  headers: HeadersConfig | null;
  /** "gzip" is in the middleware list */
  gzip: boolean;
  /** the @warmpool/fastify plugin options (listener-wide limits and trusted_subnets included) */
  plugin: WarmpoolOptions;
  /** keys that are accepted by the file but have no effect here, with the reason (printed as warnings) */
  ignored: Array<{ key: string; reason: string }>;
  /**
   * Plugin options whose YAML key is not `<section>.<option name>` (PLUGIN_OPTION_SECTION), recorded
   * where they are made: `pool.uid` comes from server.user, `command` from http.pool.command, ...
   */
  origins: Readonly<Record<string, string>>;
  /** the micro-cache of this site: the top-level `cache` with the site's own keys over it; null: off */
  cache: CacheConfig | null;
  /** this site's proxy routes: its own `proxy` list, else the top level's; null: none */
  proxy: ProxyRoute[] | null;
}

/** Let's Encrypt's directories: http.ssl.acme.use_production_endpoint picks one (RoadRunner's default: staging). */
export const LETS_ENCRYPT_PRODUCTION = 'https://acme-v02.api.letsencrypt.org/directory';
export const LETS_ENCRYPT_STAGING = 'https://acme-staging-v02.api.letsencrypt.org/directory';
/** http.ssl.acme.certs_dir when unset (RoadRunner's), relative to the config file's folder. */
export const DEFAULT_ACME_CERTS_DIR = 'rr_le_certs';

/** http.ssl with its paths resolved. */
export interface SslOptions extends Omit<SslConfig, 'acme' | 'cert' | 'key' | 'certificates'> {
  /** the pair's files; null with acme */
  cert: string | null;
  key: string | null;
  /** http.ssl.certificates, paths resolved: each pair is served to the DNS names its certificate holds */
  certificates: Array<{ cert: string; key: string }>;
  acme: AcmeOptions | null;
  /** keys the file sets that have no effect (cert / key with acme), with the reason (printed as warnings) */
  ignored: Array<{ key: string; reason: string }>;
}

/** http.ssl.acme, decided: where, which CA, which names. */
export interface AcmeOptions extends Omit<AcmeConfig, 'directory' | 'domains' | 'certs_dir'> {
  /** absolute */
  certs_dir: string;
  challenge_type: NonNullable<AcmeConfig['challenge_type']>;
  /** the CA: `directory`, else Let's Encrypt production or staging */
  directory: string;
  /** Let's Encrypt staging was picked by use_production_endpoint: false (browsers will not trust it) */
  staging: boolean;
  /** `domains`, else every site's hosts that a CA can validate (no wildcard, no IP, not single-label) */
  domains: string[];
  /** whether `domains` came from the file (else from the sites' hosts) */
  domainsFromFile: boolean;
}

/** Everything `warmpool serve` builds from a config. */
export interface ServerOptions {
  /** named sites in file order, then the default site when the top level has a worker command */
  sites: SiteOptions[];
  /** the default site (also the last entry of `sites`), or null: unknown hosts get 404 */
  defaultSite: SiteOptions | null;
  http: {
    address: string;
    /** the access log is on (http.access_logs: true, or an http.access_log section) */
    access_logs: boolean;
    /** warmpool's own access log (http.access_log): format and output (a path is absolute); null: the log channel's line */
    access_log: { format: 'combined' | 'json'; output: string } | null;
    ssl: SslOptions | null;
    http2: Http2Config | null;
    /** http.max_connections and http.max_connections_per_ip; 0 = no limit */
    max_connections: number;
    max_connections_per_ip: number;
    /** http.send_timeout in ms; 0 = none */
    send_timeout_ms: number;
    /** http.proxy_protocol: the HTTP listener's connections start with a PROXY header */
    proxy_protocol: boolean;
    /** http.max_response_memory in bytes */
    max_response_memory: number;
  };
  status: StatusConfig | null;
  metrics: MetricsConfig | null;
  logs: LogsConfig;
  proxy: ProxyRoute[] | null;
  /** null when absent or `enabled: false` */
  cache: CacheConfig | null;
  admin: { socket: string; explicit: boolean };
  /** rpc.listen (RoadRunner's RPC listener), read; null without it */
  rpc: RpcAddress | null;
}

export interface ToOptionsOptions {
  /** the folder relative paths start from; default: the config file's folder */
  baseDir?: string;
  /** name (or uid) → uid and primary gid (for server.user); default: /etc/passwd */
  lookupUser?: (nameOrUid: string) => Account | null;
  /** name → gid (for server.group); default: /etc/group */
  lookupGroup?: (name: string) => number | null;
}

/**
 * Builds the server's options. Throws ConfigError (with file:line:col) for what only shows here:
 * a user or group name that does not exist.
 */
export function toServerOptions(loaded: LoadedConfig, options: ToOptionsOptions = {}): ServerOptions {
  const { config } = loaded;
  const baseDir = options.baseDir ?? dirname(resolve(loaded.file));
  const errors: LocatedConfigError[] = [];
  const sites: SiteOptions[] = [];
  (config.sites ?? []).forEach((site, index) => {
    // a site runs PHP one way; a command inherited from the top level is the worker sites', not this one's
    if (site.fastcgi !== undefined && site.server?.command !== undefined)
      errors.push(
        locatedError(
          loaded,
          [`sites[${index}].server.command`],
          'this site has a fastcgi section too: a site runs PHP one way, a worker command or fastcgi (classic PHP); remove one of the two',
        ),
      );
    const dir = site.root === undefined ? baseDir : resolve(baseDir, site.root);
    const server = mergeDeep(config.server, site.server);
    const http = mergeSiteHttp(config.http, site.http);
    // a site with no command of its own or the top level's, and no fastcgi, serves files and proxies only
    const redirect = site.redirect ?? null;
    const php =
      site.php !== false && redirect === null && (site.fastcgi !== undefined || commandOf(server, http) !== undefined);
    // an app proxied at "/" (or a site that redirects) has every path: the top level's static files,
    // inherited, are not its own
    const proxiedWhole = redirect !== null || (site.proxy ?? config.proxy ?? []).some((route) => route.prefix === '/');
    if (!php && proxiedWhole && site.http?.static === undefined && !(site.http?.middleware ?? []).includes('static')) {
      delete http.static;
      if (http.middleware !== undefined) http.middleware = http.middleware.filter((name) => name !== 'static');
    }
    sites.push({
      ...buildSite(loaded, index, site.hosts, dir, server, http, site.fastcgi ?? null, php, options, errors),
      // the micro-cache keeps PHP's answers: a site of no PHP has none (its answers said X-Cache: MISS)
      cache: php
        ? enabledCache(site.cache === undefined ? config.cache : mergeDeep(config.cache ?? {}, site.cache))
        : null,
      // a site that redirects takes no proxy route of the top level's
      proxy: redirect === null ? nonEmpty(site.proxy ?? config.proxy) : null,
    });
    // a site that redirects answers before its rules and pages: said where the site writes them
    if (redirect !== null)
      for (const key of ['http.access', 'http.limit_req', 'http.auth_basic', 'http.error_pages', 'cache'])
        if (loaded.positionOf(`sites[${index}].${key}`) !== null)
          sites.at(-1)!.ignored.push({
            key: `sites[${index}].${key}`,
            reason: 'this site redirects every request (sites[].redirect) before any of it applies',
          });
    // a site's own cache keys with the cache off (a max_age copied without enabled: true)
    if (php && site.cache !== undefined && sites.at(-1)!.cache === null)
      sites.at(-1)!.ignored.push(...cacheOffIgnores(loaded, `sites[${index}].cache`, site.cache));
    // the micro-cache keeps PHP's answers: said where the site turns it on itself
    if (!php && site.cache?.enabled === true)
      sites.at(-1)!.ignored.push({
        key: `sites[${index}].cache.enabled`,
        reason: "this site runs no PHP, and the micro-cache keeps PHP's answers only (a proxied app's are not cached)",
      });
    if (redirect !== null) {
      const status = redirect.status ?? 301;
      if (![301, 302, 303, 307, 308].includes(status))
        errors.push(
          locatedError(
            loaded,
            [`sites[${index}].redirect.status`],
            `must be 301, 302, 303, 307 or 308 (a redirect's statuses), got ${status}`,
          ),
        );
      // as the Location header carries it: a host in punycode (例え.jp → xn--r8jz45g.jp), the path
      // percent-encoded (a raw byte there made every answer a 500)
      sites.at(-1)!.redirect = { to: new URL(redirect.to).href.replace(/\/+$/, ''), status };
    }
  });
  // the top-level command with a top-level fastcgi section: the default site is classic, so the
  // command serves only sites[] of no PHP of their own; with none, it was dropped without a word
  const topCommand = commandOf(config.server, config.http);
  if (
    config.fastcgi !== null &&
    topCommand !== undefined &&
    !(config.sites ?? []).some(
      (site) => site.fastcgi === undefined && commandOf(site.server ?? {}, site.http ?? {}) === undefined,
    )
  )
    errors.push(
      locatedError(
        loaded,
        [config.http.pool?.command !== undefined ? 'http.pool.command' : 'server.command'],
        'the top level has a fastcgi section too: the default site runs PHP one way, a worker command or fastcgi (classic PHP), and no site of sites[] takes this command; remove one of the two',
      ),
    );
  let defaultSite: SiteOptions | null = null;
  const topPhp = topCommand !== undefined || config.fastcgi !== null;
  // with no sites[], the top level is the one site, PHP or not; with sites[], a default site needs PHP
  // (a top-level static section or proxy list is then what sites[] inherit, not a site of its own)
  const topServes =
    (config.sites ?? []).length === 0 &&
    ((config.http.middleware ?? []).includes('static') || (config.proxy ?? []).length > 0);
  if (topPhp || topServes) {
    defaultSite = {
      ...buildSite(
        loaded,
        null,
        null,
        baseDir,
        config.server,
        pickSiteHttp(config.http),
        config.fastcgi,
        topPhp,
        options,
        errors,
      ),
      cache: topPhp ? enabledCache(config.cache) : null,
      proxy: nonEmpty(config.proxy),
    };
    sites.push(defaultSite);
  }
  // top-level cache keys with the cache on nowhere (a site turning it on takes them)
  if (config.cache !== undefined && config.cache !== null && sites.every((site) => site.cache === null))
    (defaultSite ?? sites[0])?.ignored.push(...cacheOffIgnores(loaded, 'cache', config.cache));
  errors.push(...wholeSiteProxies(loaded, sites));
  if (config.http.ssl !== undefined) errors.push(...checkSsl(loaded, config.http.ssl, sites));
  errors.push(...listenerClashes(loaded));
  // a PROXY header is believed from the balancers only: with none named, no client could be
  for (const key of ['http.proxy_protocol', 'http.ssl.proxy_protocol'])
    if (
      (key === 'http.proxy_protocol' ? config.http.proxy_protocol : config.http.ssl?.proxy_protocol) === true &&
      (config.http.trusted_subnets ?? []).length === 0
    )
      errors.push(
        locatedError(
          loaded,
          [key],
          "needs http.trusted_subnets: the load balancers' addresses (e.g. [10.0.0.0/8]), whose PROXY headers name the client; from any other peer a header is read and not believed",
        ),
      );
  if (errors.length > 0) throw new ConfigError(loaded.file, errors);
  const cache = enabledCache(config.cache);
  return {
    sites,
    defaultSite,
    http: {
      address: config.http.address,
      access_logs: config.http.access_logs === true || config.http.access_log !== undefined,
      access_log:
        config.http.access_log === undefined
          ? null
          : {
              format: config.http.access_log.format ?? 'combined',
              output: ['stdout', 'stderr'].includes(config.http.access_log.output ?? 'stdout')
                ? (config.http.access_log.output ?? 'stdout')
                : resolve(baseDir, config.http.access_log.output!),
            },
      ssl: config.http.ssl === undefined ? null : sslOptions(config.http.ssl, sites, baseDir),
      http2: config.http.http2 ?? null,
      max_connections: config.http.max_connections ?? 0,
      max_connections_per_ip: config.http.max_connections_per_ip ?? 0,
      send_timeout_ms: parseDuration(config.http.send_timeout ?? DEFAULT_SEND_TIMEOUT, 'http.send_timeout'),
      proxy_protocol: config.http.proxy_protocol === true,
      max_response_memory: config.http.max_response_memory ?? DEFAULT_MAX_RESPONSE_MEMORY_BYTES,
    },
    status: config.status,
    metrics: config.metrics,
    logs: logsFrom(config.logs, baseDir),
    proxy: config.proxy,
    cache,
    admin: {
      socket: config.admin?.socket === undefined ? DEFAULT_ADMIN_SOCKET : resolve(baseDir, config.admin.socket),
      explicit: config.admin?.socket !== undefined,
    },
    rpc: config.rpc?.listen === undefined ? null : parseRpcListen(config.rpc.listen, baseDir),
  };
}

/** With acme, cert and key are ignored, as RoadRunner ignores them (its sample .rr.yaml sets all three). */
function sslOptions(ssl: SslConfig, sites: SiteOptions[], baseDir: string): SslOptions {
  const { acme, cert, key, certificates: more, ...rest } = ssl;
  const certificates = (more ?? []).map((pair) => ({
    cert: resolve(baseDir, pair.cert),
    key: resolve(baseDir, pair.key),
  }));
  if (acme !== undefined) {
    const reason = 'http.ssl.acme provides the certificates (RoadRunner ignores cert and key with acme too)';
    return {
      ...rest,
      certificates,
      cert: null,
      key: null,
      acme: acmeOptions(acme, sites, baseDir),
      ignored: [cert === undefined ? [] : ['http.ssl.cert'], key === undefined ? [] : ['http.ssl.key']]
        .flat()
        .map((name) => ({ key: name, reason })),
    };
  }
  return {
    ...rest,
    certificates,
    cert: cert === undefined ? null : resolve(baseDir, cert),
    key: key === undefined ? null : resolve(baseDir, key),
    acme: null,
    ignored: [],
  };
}

function acmeOptions(acme: AcmeConfig, sites: SiteOptions[], baseDir: string): AcmeOptions {
  const { directory, domains, certs_dir, use_production_endpoint, ...rest } = acme;
  const production = use_production_endpoint === true;
  return {
    ...rest,
    ...(use_production_endpoint === undefined ? {} : { use_production_endpoint }),
    certs_dir: resolve(baseDir, certs_dir ?? DEFAULT_ACME_CERTS_DIR),
    challenge_type: acme.challenge_type ?? 'http-01',
    directory: directory ?? (production ? LETS_ENCRYPT_PRODUCTION : LETS_ENCRYPT_STAGING),
    staging: directory === undefined && !production,
    domains: unique((domains ?? sites.flatMap((site) => site.hosts ?? []).filter(isValidatableName)).map(bareName)),
    domainsFromFile: domains !== undefined,
  };
}

/** A name a CA can check over HTTP-01 or TLS-ALPN-01: no wildcard, no IP literal, at least two labels. */
function isValidatableName(host: string): boolean {
  return !host.startsWith('*.') && !host.startsWith('[') && /[a-z]/i.test(host) && bareName(host).includes('.');
}

function bareName(host: string): string {
  return host.toLowerCase().replace(/\.$/, '');
}

function unique(names: string[]): string[] {
  return [...new Set(names)];
}

/** Two listeners of the file on one port: both keys named, with the line of the other. */
function listenerClashes(loaded: LoadedConfig): LocatedConfigError[] {
  return portClashes(listenerAddresses(loaded.config)).map((clash) => {
    const at = loaded.positionOf(clash.with);
    const where = at === null ? '' : ` (${basename(loaded.file)}:${at.line}:${at.col})`;
    return locatedError(
      loaded,
      [clash.key],
      `${clash.address} takes the port of ${clash.with}${where} too: two listeners cannot share a port; give one of them another`,
    );
  });
}

/** acme needs names to ask for (without acme, validate.ts requires cert and key). */
function checkSsl(loaded: LoadedConfig, ssl: SslConfig, sites: SiteOptions[]): LocatedConfigError[] {
  const errors: LocatedConfigError[] = [];
  if (ssl.acme !== undefined && ssl.acme.domains === undefined) {
    if (!sites.some((site) => (site.hosts ?? []).some(isValidatableName)))
      errors.push(
        locatedError(
          loaded,
          ['http.ssl.acme'],
          'has no names to get certificates for: list them in http.ssl.acme.domains, or give sites[] hosts like "example.com" (wildcards, IPs and single-label names cannot be validated)',
        ),
      );
  }
  if (ssl.acme?.domains?.length === 0)
    errors.push(locatedError(loaded, ['http.ssl.acme.domains'], 'is empty: list the names to get certificates for'));
  return errors;
}

/** A cache section that turns the cache on, else null (a feature that is off is null). */
/**
 * The cache keys written at `path` while the cache is off and `enabled` is not written (a max_age
 * copied without `enabled: true`): each does nothing, said with how to turn it on.
 */
function cacheOffIgnores(loaded: LoadedConfig, path: string, cache: CacheConfig): SiteOptions['ignored'] {
  // enabled: false written: turned off on purpose
  if (cache.enabled !== undefined) return [];
  return Object.keys(cache)
    .filter((key) => key !== 'enabled' && loaded.positionOf(`${path}.${key}`) !== null)
    .map((key) => ({
      key: `${path}.${key}`,
      reason: `the micro-cache is off: set ${path}.enabled: true to turn it on`,
    }));
}

function enabledCache(cache: CacheConfig | null): CacheConfig | null {
  return cache !== null && cache.enabled === true ? cache : null;
}

function nonEmpty<T>(list: T[] | null | undefined): T[] | null {
  return list === null || list === undefined || list.length === 0 ? null : list;
}

function commandOf(server: ServerConfig, http: SiteHttpConfig): string | string[] | undefined {
  return http.pool?.command ?? server.command;
}

/** The per-site part of the top-level http section (the listener keys stay with the listener). */
function pickSiteHttp(http: SiteHttpConfig): SiteHttpConfig {
  const out: SiteHttpConfig = {};
  if (http.access !== undefined) out.access = http.access;
  if (http.limit_req !== undefined) out.limit_req = http.limit_req;
  if (http.auth_basic !== undefined) out.auth_basic = http.auth_basic;
  if (http.error_pages !== undefined) out.error_pages = http.error_pages;
  if (http.pool !== undefined) out.pool = http.pool;
  if (http.internal_files !== undefined) out.internal_files = http.internal_files;
  if (http.max_request_size !== undefined) out.max_request_size = http.max_request_size;
  if (http.raw_body !== undefined) out.raw_body = http.raw_body;
  if (http.codec !== undefined) out.codec = http.codec;
  if (http.middleware !== undefined) out.middleware = http.middleware;
  if (http.uploads !== undefined) out.uploads = http.uploads;
  if (http.static !== undefined) out.static = http.static;
  if (http.headers !== undefined) out.headers = http.headers;
  return out;
}

/**
 * A site's http keys over the top level's. A site with its own middleware list does not inherit a
 * static or headers section its list does not name (RoadRunner runs a section only when listed).
 */
function mergeSiteHttp(top: SiteHttpConfig, site: SiteHttpConfig): SiteHttpConfig {
  const merged = mergeDeep(pickSiteHttp(top), site);
  if (site.middleware !== undefined) merged.middleware = [...site.middleware];
  const middleware = merged.middleware ?? [];
  if (!middleware.includes('static')) delete merged.static;
  if (!middleware.includes('headers')) delete merged.headers;
  return merged;
}

/** Maps merge key by key (the site wins); lists and scalars are replaced whole. */
function mergeDeep<T extends object>(base: T, over: T): T {
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [key, value] of Object.entries(over as Record<string, unknown>)) {
    const prev = out[key];
    out[key] = isPlainObject(prev) && isPlainObject(value) ? mergeDeep(prev, value) : value;
  }
  return out as T;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function buildSite(
  loaded: LoadedConfig,
  index: number | null,
  hosts: string[] | null,
  dir: string,
  server: ServerConfig,
  http: SiteHttpConfig,
  fastcgi: FastCgiConfig | null,
  php: boolean,
  options: ToOptionsOptions,
  errors: LocatedConfigError[],
): Omit<SiteOptions, 'cache' | 'proxy'> {
  const top = loaded.config.http;
  const middleware = http.middleware ?? [];
  const ignored: SiteOptions['ignored'] = [];
  const sitePath = index === null ? '' : `sites[${index}].`;

  // filled key by key; exactly one of command and fastcgi is set just below, so it is the plugin's either-or
  const plugin: WarmpoolCommonOptions & {
    command?: WorkerModeOptions['command'];
    fastcgi?: ClassicModeOptions['fastcgi'];
  } = { cwd: dir };
  const origins: Record<string, string> = { cwd: 'root' };
  // the workers' keys: a site of no PHP has none (the top level's, which it inherits, are other sites')
  const worker = php && fastcgi === null;
  if (!php) (plugin as { php?: false }).php = false;
  else if (fastcgi === null) {
    plugin.command = commandOf(server, http)!;
    origins.command = http.pool?.command !== undefined ? 'http.pool.command' : 'server.command';
  } else plugin.fastcgi = classicOptions(fastcgi, dir);
  if (php && server.env !== undefined && fastcgi?.pass === undefined) plugin.env = server.env;
  // RoadRunner tells its workers where its RPC listens (RR_RPC): PHP's RPC clients (Spiral, locks,
  // metrics) read it, and otherwise dial the default tcp://127.0.0.1:6001
  const rpc = loaded.config.rpc?.listen;
  if (rpc !== undefined && worker && plugin.env?.RR_RPC === undefined)
    plugin.env = { ...plugin.env, RR_RPC: parseRpcListen(rpc, options.baseDir ?? dirname(resolve(loaded.file))).url };
  if (server.relay !== undefined && worker) plugin.relay = server.relay;
  if (server.clear_env !== undefined && worker) plugin.clear_env = server.clear_env;
  // what only PHP reads, written on a site of no PHP itself (an inherited one is the other sites')
  if (!php)
    for (const key of NO_PHP_IGNORED)
      if (loaded.positionOf(`${sitePath}${key}`) !== null)
        ignored.push({ key: `${sitePath}${key}`, reason: 'this site runs no PHP (no command, no fastcgi)' });
  if (fastcgi !== null) ignored.push(...classicIgnores(loaded, sitePath));
  if (fastcgi?.pass !== undefined) ignored.push(...passIgnores(loaded, http, sitePath));
  if (fastcgi !== null && fastcgi.pass === undefined) ignored.push(...managedCgiIgnores(server, fastcgi, sitePath));

  const { command: _poolCommand, debug, ...pool } = http.pool ?? {};
  const poolOptions: NonNullable<WarmpoolOptions['pool']> = { ...pool };
  // server.user / server.group: names resolved here, so a typo is a config error with its line.
  // Without server.group the user's own primary group is taken, as RoadRunner and php-fpm do:
  // the workers kept warmpool's group (root's, 0) and could read and write what root's group can
  const userKeys = [`${sitePath}server.user`, 'server.user'];
  const account = server.user === undefined ? undefined : accountOf(server.user, options.lookupUser ?? lookupPasswd);
  if (account === null)
    errors.push(
      locatedError(
        loaded,
        userKeys,
        `no user "${server.user}" on this machine; give an existing user name or a numeric uid`,
      ),
    );
  else if (account !== undefined) {
    poolOptions.uid = account.uid;
    origins['pool.uid'] = 'server.user';
  }
  if (server.group !== undefined) {
    const gid = idOf(server.group, options.lookupGroup ?? lookupGroup);
    if (gid === null)
      errors.push(
        locatedError(
          loaded,
          [`${sitePath}server.group`, 'server.group'],
          `no group "${server.group}" on this machine; give an existing group name or a numeric gid`,
        ),
      );
    else {
      poolOptions.gid = gid;
      origins['pool.gid'] = 'server.group';
    }
  } else if (account?.gid === null)
    errors.push(
      locatedError(
        loaded,
        userKeys,
        `uid ${account.uid} has no entry in /etc/passwd, so its primary group is unknown; set server.group too (a group name or a numeric gid)`,
      ),
    );
  else if (typeof account?.gid === 'number') {
    poolOptions.gid = account.gid;
    origins['pool.gid'] = 'server.user';
  }
  if (php && Object.keys(poolOptions).length > 0) plugin.pool = poolOptions;
  if (debug === true) plugin.debug = true;

  if (http.static !== undefined) {
    const s = http.static;
    const staticKeys = [`${sitePath}http.static`, 'http.static'];
    // RoadRunner's dir defaults to ".", the site's folder; for a site that is nothing but files, that
    // folder (the config file's, with its keys and certs_dir) is never what was meant
    if (!php && s.dir === undefined)
      errors.push(
        locatedError(
          loaded,
          staticKeys,
          "has no dir, and this site runs no PHP: it would serve its own folder (the config file's, and the keys and certificates kept there); give dir, e.g. dir: public",
        ),
      );
    const servedDir = fastcgi === null ? resolve(dir, s.dir ?? '.') : resolve(dir, fastcgi.root);
    if (fastcgi === null)
      errors.push(
        ...servesConfigFile(
          loaded,
          servedDir,
          [`${sitePath}http.static.dir`, 'http.static.dir', ...staticKeys],
          userFilesOf(http, options, loaded),
        ),
      );
    const staticOptions: NonNullable<WarmpoolOptions['static']> = {
      // a classic site's static files are its fastcgi.root's
      dir: servedDir,
      // RoadRunner's calculate_etag defaults to false (the plugin's to true); a classic site's and a
      // site of no PHP's to true, as nginx sends an ETag for every static file (a static site's
      // README promised one, and sent none)
      calculate_etag: s.calculate_etag ?? (fastcgi !== null || !php),
    };
    if (s.weak === true) staticOptions.weak = true;
    // RR's sample writes forbid: [""]; "" is no extension at all and means nothing to forbid by name
    const forbid = s.forbid?.filter((ext) => ext !== '');
    if (forbid !== undefined && forbid.length > 0) staticOptions.forbid = forbid;
    const allow = s.allow?.filter((ext) => ext !== '');
    if (allow !== undefined && allow.length > 0) staticOptions.allow = allow;
    if (s.index !== undefined) staticOptions.index = s.index;
    if (s.last_modified !== undefined) staticOptions.last_modified = s.last_modified;
    if (s.precompressed !== undefined) staticOptions.precompressed = s.precompressed;
    if (s.cache_control !== undefined) staticOptions.cache_control = s.cache_control;
    if (s.link_targets !== undefined) staticOptions.link_targets = s.link_targets.map((target) => resolve(dir, target));
    if (s.hot_cache !== undefined) {
      const h = s.hot_cache;
      staticOptions.hot_cache =
        h.enabled === false
          ? false
          : {
              ...(h.max_bytes === undefined ? {} : { max_bytes: h.max_bytes }),
              ...(h.max_file_bytes === undefined ? {} : { max_file_bytes: h.max_file_bytes }),
              ...(h.revalidate === undefined
                ? {}
                : { revalidate_ms: parseDuration(h.revalidate, `${sitePath}http.static.hot_cache.revalidate`) }),
            };
    }
    if (s.try_files !== undefined) staticOptions.try_files = s.try_files;
    plugin.static = staticOptions;
    // said only where the site sets it itself (a worker site's inherited dir is not a mistake here)
    if (fastcgi !== null && s.dir !== undefined && loaded.positionOf(`${sitePath}http.static.dir`) !== null)
      ignored.push({
        key: `${sitePath}http.static.dir`,
        reason: 'a classic site serves its static files from fastcgi.root',
      });
    if (s.request !== undefined)
      ignored.push({
        key: `${sitePath}http.static.request`,
        reason: 'request headers for static files are not added (static files never reach PHP)',
      });
    if (s.response !== undefined)
      ignored.push({
        key: `${sitePath}http.static.response`,
        reason:
          "use http.static.cache_control for static files' Cache-Control (per extension); http.headers.response reaches PHP's responses too",
      });
  }

  // a classic site always serves its root's files
  if (fastcgi !== null)
    errors.push(
      ...servesConfigFile(
        loaded,
        resolve(dir, fastcgi.root),
        [`${sitePath}fastcgi.root`, 'fastcgi.root'],
        userFilesOf(http, options, loaded),
      ),
    );

  if (http.uploads !== undefined) {
    const u = http.uploads;
    const uploads: NonNullable<WarmpoolOptions['uploads']> = {};
    if (u.dir !== undefined) uploads.dir = resolve(dir, u.dir);
    if (u.forbid !== undefined) uploads.forbid = u.forbid;
    if (u.allow !== undefined) uploads.allow = u.allow;
    if (u.max_file_size !== undefined) uploads.max_file_size = u.max_file_size;
    if (u.max_files !== undefined) uploads.max_files = u.max_files;
    if (u.max_fields !== undefined) uploads.max_fields = u.max_fields;
    plugin.uploads = uploads;
  }
  if (http.internal_files !== undefined)
    plugin.internal_files = { ...http.internal_files, root: resolve(dir, http.internal_files.root) };
  if (http.access !== undefined && http.access.length > 0) plugin.access = http.access;
  if (http.limit_req !== undefined && http.limit_req.length > 0) plugin.limit_req = http.limit_req;
  if (http.auth_basic !== undefined && http.auth_basic.length > 0) {
    // relative to the config file, wherever the entry sits (a site inherits the top level's as written)
    const base = options.baseDir ?? dirname(resolve(loaded.file));
    plugin.auth_basic = http.auth_basic.map((rule) =>
      rule.user_file === undefined ? rule : { ...rule, user_file: resolve(base, rule.user_file) },
    );
  }
  if (http.error_pages !== undefined) {
    // relative to the config file, wherever the entry sits (a site inherits the top level's as written)
    const base = options.baseDir ?? dirname(resolve(loaded.file));
    const pages = Object.entries(http.error_pages).map(([status, file]) => [status, resolve(base, file)]);
    if (pages.length > 0) plugin.error_pages = Object.fromEntries(pages);
  }
  // what only the plugin checks (two rules for one prefix, a status, a page that cannot be read),
  // checked here too: `config check` names the key and line, not `serve` at start
  const checks = [
    () => compileAccess(plugin.access),
    () => resolveRequestRateRules(plugin.limit_req),
    () => resolveErrorPages(plugin.error_pages),
  ];
  for (const check of checks) {
    try {
      check();
    } catch (error) {
      const located = locateOptionError(error, loaded, { index, origins, dir });
      if (located === null) throw error;
      // a site that inherits the top level's entry meets its error too: name it once
      for (const found of located.errors) {
        if (!errors.some((e) => e.key === found.key && e.line === found.line)) errors.push(found);
      }
    }
  }
  if (http.raw_body === true) plugin.raw_body = true;
  if (http.codec !== undefined) plugin.codec = http.codec;
  if (http.max_request_size !== undefined && http.max_request_size > 0) plugin.max_request_size = http.max_request_size;
  if (http.max_request_size === 0)
    ignored.push({
      key: `${sitePath}http.max_request_size`,
      reason:
        'RoadRunner reads 0 as "no limit"; warmpool keeps its default of 100 MB: set the largest body you take, e.g. max_request_size: 2048',
    });
  // listener-wide keys: the same for every site
  if (top.trusted_subnets !== undefined && top.trusted_subnets.length > 0) plugin.trusted_subnets = top.trusted_subnets;
  if (top.real_ip_header !== undefined) plugin.real_ip_header = top.real_ip_header;
  if (top.max_header_count !== undefined) plugin.max_header_count = top.max_header_count;
  if (top.max_header_size !== undefined) plugin.max_header_size = top.max_header_size;
  // the documented default, given explicitly: the plugin then checks for slow clients every second,
  // not every 30 s (Node's default), so an idle connection is cut at 60 s, not as late as 90
  plugin.headers_timeout = top.headers_timeout ?? DEFAULT_HEADERS_TIMEOUT;
  // unset: none (DEFAULT_REQUEST_TIMEOUT), given explicitly over Node's 300 s
  plugin.request_timeout = top.request_timeout ?? DEFAULT_REQUEST_TIMEOUT;
  if (top.body_timeout !== undefined) plugin.body_timeout = top.body_timeout;

  const headers = middleware.includes('headers') ? (http.headers ?? null) : null;
  if (headers?.cors?.options_success_status !== undefined) {
    ignored.push({ key: `${sitePath}http.headers.cors.options_success_status`, reason: 'preflights are answered 204' });
  }

  // a site's own access log; the top level's section is the server's (ServerOptions.http.access_log)
  const ownLog = index === null ? undefined : http.access_log;
  return {
    name: hosts === null ? DEFAULT_SITE_NAME : hosts[0]!,
    hosts,
    index,
    dir,
    server,
    http,
    php,
    redirect: null,
    access_log:
      ownLog === undefined
        ? null
        : {
            format: ownLog.format ?? 'combined',
            output:
              ownLog.output === undefined || ownLog.output === 'stdout' || ownLog.output === 'stderr'
                ? (ownLog.output ?? 'stdout')
                : resolve(dir, ownLog.output),
          },
    middleware,
    headers,
    gzip: middleware.includes('gzip'),
    plugin: plugin as WarmpoolOptions,
    ignored,
    origins,
  };
}

/** Keys that only PHP reads: said to do nothing where a site of no PHP writes them. */
const NO_PHP_IGNORED = [
  'http.pool',
  'http.codec',
  'http.raw_body',
  'http.uploads',
  'server.env',
  'server.user',
  'server.group',
  'server.relay',
  'server.clear_env',
];

/**
 * Errors when `served` (a folder sent to clients) holds the config file itself, or a site's
 * htpasswd file, under a name the static layer would send. Both are compared by their real paths
 * (a served folder that is a link to the config's). A dotfile (`.rr.yaml`, or one in a dot-folder)
 * is never sent, so RoadRunner's sample (`dir: "."` beside `.rr.yaml`) still loads.
 */
function servesConfigFile(
  loaded: LoadedConfig,
  served: string,
  keys: string[],
  userFiles: readonly string[] = [],
): InvalidValueError[] {
  const root = realOrSame(served);
  const prefix = root.endsWith(sep) ? root : root + sep;
  const errors: InvalidValueError[] = [];
  for (const [file, what] of [
    [resolve(loaded.file), 'the config file'] as const,
    ...userFiles.map((file) => [file, 'the htpasswd file'] as const),
  ]) {
    const real = realOrSame(file);
    if (!real.startsWith(prefix)) continue;
    if (
      real
        .slice(prefix.length)
        .split(sep)
        .some((segment) => segment.startsWith('.'))
    )
      continue;
    errors.push(
      locatedError(
        loaded,
        keys,
        `serves ${served}, which holds ${what} ${file}: anyone could download it (${what === 'the config file' ? 'its secrets, and the keys kept beside it' : 'its password hashes'}); serve a folder of its own (e.g. public/) or keep it elsewhere (e.g. /etc/warmpool/)`,
      ),
    );
  }
  return errors;
}

/** The htpasswd files a site's auth_basic reads, resolved as the plugin gets them. */
function userFilesOf(http: SiteHttpConfig, options: ToOptionsOptions, loaded: LoadedConfig): string[] {
  const base = options.baseDir ?? dirname(resolve(loaded.file));
  return (http.auth_basic ?? []).flatMap((rule) =>
    rule.user_file === undefined ? [] : [resolve(base, rule.user_file)],
  );
}

/** A path's real path, or the path itself when it does not exist (yet). */
function realOrSame(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
}

/** The `fastcgi` section as the plugin's option: root (and nothing else) resolved against the site's folder. */
function classicOptions(fastcgi: FastCgiConfig, dir: string): NonNullable<WarmpoolOptions['fastcgi']> {
  const options: NonNullable<WarmpoolOptions['fastcgi']> = { ...fastcgi, root: resolve(dir, fastcgi.root) };
  if (fastcgi.link_targets !== undefined)
    options.link_targets = fastcgi.link_targets.map((target) => resolve(dir, target));
  return options;
}

/** Pool keys that size and recycle processes: with fastcgi.pass the processes are php-fpm's. */
const PROCESS_KEYS = [
  'num_workers',
  'min_workers',
  'max_workers',
  'headroom',
  'max_jobs',
  'reset_timeout',
  'destroy_timeout',
  'nice',
];
const PROCESS_SUPERVISOR_KEYS = ['ttl', 'idle_ttl', 'max_worker_memory', 'request_slowlog_timeout'];

/**
 * What only a worker site's request parsing reads: a classic site hands PHP its body raw, and PHP
 * parses forms and uploads itself (php.ini's limits). uploads.dir still applies (request_buffering
 * spools there).
 */
const WORKER_PARSING_KEYS: Record<string, string> = {
  'http.uploads.forbid':
    "a classic site gives PHP its uploads raw, and PHP keeps any file name; fastcgi.no_exec keeps an upload folder's scripts from running",
  'http.uploads.allow': 'a classic site gives PHP its uploads raw, and PHP keeps any file name',
  'http.uploads.max_file_size': "a classic site gives PHP its uploads raw: php.ini's upload_max_filesize limits a file",
  'http.uploads.max_files': "a classic site gives PHP its uploads raw: php.ini's max_file_uploads limits them",
  'http.uploads.max_fields': "a classic site gives PHP its forms raw: php.ini's max_input_vars limits the fields",
  'http.raw_body': 'a classic site always gives PHP its body raw',
  'http.codec': 'a classic site speaks FastCGI; the codec is the worker protocol',
};

/** Said where the site sets them itself: inherited ones are meant for the worker sites. */
function classicIgnores(loaded: LoadedConfig, sitePath: string): SiteOptions['ignored'] {
  return Object.entries(WORKER_PARSING_KEYS)
    .filter(([key]) => loaded.positionOf(`${sitePath}${key}`) !== null)
    .map(([key, reason]) => ({ key: `${sitePath}${key}`, reason }));
}

/** Said where the site sets them itself: inherited ones are meant for the worker sites. */
function passIgnores(loaded: LoadedConfig, http: SiteHttpConfig, sitePath: string): SiteOptions['ignored'] {
  const reason =
    "fastcgi.pass: php-fpm runs the PHP processes; size and recycle them with its pool's pm.* settings (and prioritize them with process.priority)";
  const pool = (http.pool ?? {}) as Record<string, unknown>;
  const supervisor = (http.pool?.supervisor ?? {}) as Record<string, unknown>;
  return [
    ...PROCESS_KEYS.filter((key) => pool[key] !== undefined).map((key) => `${sitePath}http.pool.${key}`),
    ...PROCESS_SUPERVISOR_KEYS.filter((key) => supervisor[key] !== undefined).map(
      (key) => `${sitePath}http.pool.supervisor.${key}`,
    ),
  ]
    .filter((key) => loaded.positionOf(key) !== null)
    .map((key) => ({ key, reason }));
}

/** What managed php-cgi replaces: warmpool starts each process with these, whatever server.env says. */
const CGI_OWN_ENV: Record<string, string> = {
  PHP_FCGI_MAX_REQUESTS:
    'warmpool starts php-cgi with PHP_FCGI_MAX_REQUESTS=0 and recycles the processes itself: set http.pool.max_jobs instead (pm.max_requests)',
  PHP_FCGI_CHILDREN:
    'warmpool starts php-cgi with PHP_FCGI_CHILDREN=0 (one process per worker, each counted and supervised): set http.pool.num_workers instead',
};

/** Params only php-fpm reads: php-cgi passes them to $_SERVER and applies none of them. */
const FPM_ONLY_PARAMS = ['PHP_VALUE', 'PHP_ADMIN_VALUE'];

/**
 * Keys that do nothing for a site whose php-cgi processes warmpool runs (no fastcgi.pass): said with
 * what does it instead.
 */
function managedCgiIgnores(server: ServerConfig, fastcgi: FastCgiConfig, sitePath: string): SiteOptions['ignored'] {
  const ignored: SiteOptions['ignored'] = [];
  // server.env keys are upper-cased for PHP: php_fcgi_max_requests is the same variable
  for (const name of Object.keys(server.env ?? {})) {
    const reason = CGI_OWN_ENV[name.toUpperCase()];
    if (reason !== undefined) ignored.push({ key: `${sitePath}server.env.${name}`, reason });
  }
  for (const [name, value] of Object.entries(fastcgi.params ?? {})) {
    if (!FPM_ONLY_PARAMS.includes(name.toUpperCase())) continue;
    const flags = String(value)
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '')
      .map((line) => `-d ${line.replace(/\s*=\s*/, '=')}`)
      .join(' ');
    ignored.push({
      key: `${sitePath}fastcgi.params.${name}`,
      reason: `only php-fpm applies ${name}; php-cgi passes it to $_SERVER and keeps its php.ini settings: add them to fastcgi.command instead (php-cgi ${flags || '-d name=value'})`,
    });
  }
  return ignored;
}

/** A numeric id as is; a name through the lookup; null when unknown. */
function idOf(value: string, lookup: (name: string) => number | null): number | null {
  return /^\d+$/.test(value) ? Number(value) : lookup(value);
}

/** A user's uid and primary gid; for a bare uid with no passwd entry, gid null. null: no such user. */
export interface Account {
  uid: number;
  gid: number | null;
}

function accountOf(value: string, lookup: (nameOrUid: string) => Account | null): Account | null {
  const found = lookup(value);
  if (found !== null) return found;
  return /^\d+$/.test(value) ? { uid: Number(value), gid: null } : null;
}

/** By name, or by uid for a numeric value: name:x:uid:gid:... */
function lookupPasswd(nameOrUid: string): Account | null {
  const byUid = /^\d+$/.test(nameOrUid);
  for (const [name, , uid, gid] of idFileLines('/etc/passwd')) {
    if ((byUid ? uid : name) !== nameOrUid || !/^\d+$/.test(uid ?? '') || !/^\d+$/.test(gid ?? '')) continue;
    return { uid: Number(uid), gid: Number(gid) };
  }
  return null;
}

function lookupGroup(name: string): number | null {
  for (const [entry, , id] of idFileLines('/etc/group'))
    if (entry === name && /^\d+$/.test(id ?? '')) return Number(id);
  return null;
}

/** The colon-separated fields of each line; none when the file cannot be read. */
function idFileLines(file: string): string[][] {
  try {
    return readFileSync(file, 'utf8')
      .split('\n')
      .map((line) => line.split(':'));
  } catch {
    return [];
  }
}

// ---- plugin errors → lines of the file ----

/**
 * The YAML section each plugin option lives in. Plugin options are spelled as the YAML keys, so an
 * option `static.dir` is `http.static.dir`; the few that differ are in each site's `origins`.
 */
const PLUGIN_OPTION_SECTION: Readonly<Record<string, string>> = {
  command: 'server',
  env: 'server',
  relay: 'server',
  pool: 'http',
  debug: 'http.pool',
  static: 'http',
  uploads: 'http',
  raw_body: 'http',
  codec: 'http',
  max_request_size: 'http',
  internal_files: 'http',
  access: 'http',
  limit_req: 'http',
  auth_basic: 'http',
  error_pages: 'http',
  /** classic mode: the top-level (or a site's) fastcgi section */
  fastcgi: '',
};
/** Listener-wide plugin options: the top-level `http` section only, never a site's. */
const LISTENER_KEYS = new Set([
  'trusted_subnets',
  'real_ip_header',
  'max_header_count',
  'max_header_size',
  'headers_timeout',
  'request_timeout',
  'body_timeout',
]);

/**
 * The YAML key paths (most specific first) a plugin option of `site` comes from: the site's own
 * key, then the top-level one it may inherit.
 */
export function yamlKeysOf(optionKey: string, site: Pick<SiteOptions, 'index' | 'origins'>): string[] {
  // list indexes stay [n] in the paths given back ("access[1].prefix"); `key` matches the origins
  const listed = optionKey.replace(/\["([^"]*)"\]/g, '.$1');
  const key = listed.replace(/\[(\d+)\]/g, '.$1');
  const head = key.split('.')[0]!;
  if (LISTENER_KEYS.has(head)) return [`http.${listed}`];
  let path: string | null = null;
  let matched = 0;
  // the most specific recorded origin (pool.uid before pool), then the section of the option's head
  for (const [option, yaml] of Object.entries(site.origins)) {
    if ((key === option || key.startsWith(`${option}.`)) && option.length > matched) {
      path = `${yaml}${listed.slice(option.length)}`;
      matched = option.length;
    }
  }
  if (path === null && head in PLUGIN_OPTION_SECTION) {
    const section = PLUGIN_OPTION_SECTION[head]!;
    path = section === '' ? listed : `${section}.${listed}`;
  }
  if (path === null) return [];
  if (site.index === null) return path === 'root' ? [] : [path];
  return path === 'root' ? [`sites[${site.index}].root`] : [`sites[${site.index}].${path}`, path];
}

/**
 * Turns an error the plugin raised for `site` (WP_FASTIFY_INVALID_OPTION with details.key) into a
 * ConfigError whose one line names the YAML key and its file:line:col; null for any other error.
 */
export function locateOptionError(
  error: unknown,
  loaded: LoadedConfig,
  site: Pick<SiteOptions, 'index' | 'origins'> & { dir?: string },
): ConfigError | null {
  const details = optionErrorDetails(error);
  if ((error as { code?: unknown })?.code !== 'WP_FASTIFY_INVALID_OPTION' || details === null) return null;
  const keys = yamlKeysOf(details.key, site);
  const { reason } = details;
  const fallback = site.index === null ? 'http' : `sites[${site.index}]`;
  return new ConfigError(loaded.file, [
    locatedError(loaded, keys.length === 0 ? [fallback] : keys, reason, (key) => relativePathHint(loaded, key, site)),
  ]);
}

/** Path keys resolved against the site's folder (its root, else the config file's); sites[N].root against the file's. */
const SITE_PATH_KEY =
  /^(?:sites\[\d+\]\.)?(?:http\.static\.(?:dir|root|link_targets)|http\.internal_files\.root|http\.uploads\.dir|fastcgi\.(?:root|link_targets))$/;
const SITE_ROOT_KEY = /^sites\[\d+\]\.root$/;

/**
 * For a path the file gives relative that does not exist: where relative paths start, which is
 * the config file's folder (or the site's root), never the working folder the plugin would name.
 */
function relativePathHint(loaded: LoadedConfig, key: string, site: { index: number | null; dir?: string }): string {
  const siteKey = SITE_PATH_KEY.test(key);
  if (!siteKey && !SITE_ROOT_KEY.test(key)) return '';
  const value = valueAt(loaded.config, key);
  if (!(Array.isArray(value) ? value : [value]).some((entry) => typeof entry === 'string' && !isAbsolute(entry)))
    return '';
  const fileDir = dirname(resolve(loaded.file));
  const root = site.index === null ? undefined : loaded.config.sites?.[site.index]?.root;
  if (!siteKey || root === undefined)
    return ` (relative paths start at ${fileDir}, the folder of ${basename(loaded.file)})`;
  return ` (relative paths start at ${site.dir ?? resolve(fileDir, root)}, the site's root: sites[${site.index}].root)`;
}

/** The value at a key path ("sites[0].http.static.dir") of the loaded config. */
function valueAt(root: unknown, key: string): unknown {
  let value = root;
  for (const part of key.replace(/\[(\d+)\]/g, '.$1').split('.')) {
    if (value === null || typeof value !== 'object') return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

/**
 * An InvalidValueError at the first of `keys` the file sets (else the nearest ancestor of the
 * first); `hint` adds to the reason what only the chosen key tells.
 */
/**
 * A proxy route at "/" takes every path of its site: only a site of no PHP and no static files may
 * have one (the PHP or the files would never be reached). Said once for a top-level list that
 * several sites inherit.
 */
function wholeSiteProxies(loaded: LoadedConfig, sites: readonly Omit<SiteOptions, 'cache'>[]): InvalidValueError[] {
  const errors = new Map<string, InvalidValueError>();
  for (const site of sites) {
    const at = site.proxy?.findIndex((route) => route.prefix === '/') ?? -1;
    if (at === -1) continue;
    const own = site.index !== null && loaded.config.sites?.[site.index]?.proxy !== undefined;
    const key = `${own ? `sites[${site.index}].` : ''}proxy[${at}].prefix`;
    const name = site.index === null ? 'the site' : `sites[${site.index}]`;
    let reason: string | null = null;
    if (site.php)
      reason = `prefix "/" would send every request of ${name} to the upstream, and its PHP would never run: proxy the paths the upstream serves (e.g. "/api"), or make it a site of no PHP (sites[].php: false)`;
    else if (site.plugin.static !== undefined)
      reason = `prefix "/" would send every request of ${name} to the upstream, and its static files (http.static) would never be served: drop one of the two, or proxy a narrower prefix (e.g. "/api")`;
    if (reason !== null && !errors.has(key)) errors.set(key, locatedError(loaded, [key], reason));
  }
  return [...errors.values()];
}

function locatedError(
  loaded: LoadedConfig,
  keys: string[],
  reason: string,
  hint: (key: string) => string = () => '',
): InvalidValueError {
  let position: Position | null = null;
  let key = keys[0]!;
  for (const candidate of keys) {
    position = loaded.positionOf(candidate);
    if (position !== null) {
      key = candidate;
      break;
    }
  }
  position ??= loaded.positionOf(keys[0]!, { nearest: true }) ?? { file: loaded.file, line: 1, col: 1 };
  return new InvalidValueError(key, position, `${reason}${hint(key)}`);
}

/**
 * logs.output's file paths start at the config file's folder, as every other relative path of the
 * file does (http.access_log.output among them); they started at the working folder, so the same
 * file logged elsewhere when run from elsewhere, and under systemd without WorkingDirectory in /.
 */
function logsFrom(logs: LogsConfig | null | undefined, baseDir: string): LogsConfig {
  if (logs === undefined || logs === null) return {};
  const output = logs.output;
  if (output === undefined) return logs;
  const place = (path: string) => (path === 'stdout' || path === 'stderr' ? path : resolve(baseDir, path));
  return { ...logs, output: Array.isArray(output) ? output.map(place) : place(output as string) };
}
