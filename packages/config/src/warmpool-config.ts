// The typed result of loading a config file: a plain object with RoadRunner's key names and
// nesting, holding only what the file sets (defaults belong to the package that uses an option, so
// none are filled in here). Values are already checked and converted:
// - durations are strings the pool's parseDuration reads ("60s"; a YAML integer 60 becomes "60s");
// - sizes in MB stay numbers of MB; `bytes` keys are integers of bytes;
// - `${VAR}` references are expanded;
// - http.pool.num_workers: 0 (RR's "CPU count") is left out, so the pool's default applies;
// - a middleware section (http.static, http.headers) is present only when http.middleware lists it,
//   as RoadRunner runs it only then; http.middleware keeps only supported names.
// A section the file leaves out is `null` at the top level (a feature that is off costs one null
// check) and `undefined` below it.
import type { FastCgiOptions } from '@warmpool/fastify';

/** A duration as the pool reads it: "500ms", "60s", "1m30s". */
export type DurationString = string;

export type Middleware = 'static' | 'headers' | 'gzip';
export type LogMode = 'development' | 'production' | 'raw' | 'off';
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';
export type LogEncoding = 'console' | 'json';

/** `server`: how a worker starts. */
export interface ServerConfig {
  command?: string | string[];
  env?: Record<string, string>;
  /** worker mode: start from a cleared environment (php-fpm's clear_env) */
  clear_env?: boolean;
  relay?: string;
  user?: string;
  group?: string;
}

/** `http.pool.supervisor`. */
export interface SupervisorConfig {
  watch_tick?: DurationString;
  ttl?: DurationString;
  idle_ttl?: DurationString;
  exec_ttl?: DurationString;
  /** MB */
  max_worker_memory?: number;
  request_slowlog_timeout?: DurationString;
}

/** `http.pool`. */
export interface PoolConfig {
  debug?: boolean;
  command?: string | string[];
  num_workers?: number | 'auto';
  min_workers?: number;
  max_workers?: number;
  headroom?: number;
  max_jobs?: number;
  allocate_timeout?: DurationString;
  max_queue_size?: number;
  destroy_timeout?: DurationString;
  reset_timeout?: DurationString;
  stream_timeout?: DurationString;
  send_timeout?: DurationString;
  /** bytes */
  max_frame_size?: number;
  /** nice steps below the server's CPU priority */
  nice?: number;
  supervisor?: SupervisorConfig;
}

/** `http.uploads`. */
export interface UploadsConfig {
  dir?: string;
  forbid?: string[];
  allow?: string[];
  /** MB */
  max_file_size?: number;
  max_files?: number;
  max_fields?: number;
}

/** `http.static`. */
export interface StaticConfig {
  dir?: string;
  forbid?: string[];
  allow?: string[];
  calculate_etag?: boolean;
  weak?: boolean;
  request?: Record<string, string>;
  response?: Record<string, string>;
  index?: string[];
  last_modified?: boolean;
  precompressed?: boolean;
  cache_control?: Record<string, string>;
  link_targets?: string[];
  hot_cache?: { enabled?: boolean; max_bytes?: number; max_file_bytes?: number; revalidate?: string };
  try_files?: string[];
}

/** `http.headers.cors`. */
export interface CorsConfig {
  allowed_origin?: string;
  allowed_origin_regex?: string;
  allowed_headers?: string;
  allowed_methods?: string;
  allow_credentials?: boolean;
  exposed_headers?: string;
  max_age?: number;
  options_success_status?: number;
  debug?: boolean;
}

/** `http.headers`. */
export interface HeadersConfig {
  cors?: CorsConfig;
  request?: Record<string, string>;
  response?: Record<string, string>;
  hide?: string[];
}

/** `http.internal_files`: X-Accel-Redirect / X-Sendfile. */
export interface InternalFilesConfig {
  root: string;
  prefix?: string;
}

/** One `http.access` rule: nginx's allow / deny for a path prefix. */
export interface AccessRuleConfig {
  prefix: string;
  allow?: string[];
  deny?: string[];
}

/** The part of `http` a site may set for itself (SITE_HTTP_KEYS). */
export interface SiteHttpConfig {
  /** per path prefix, who may ask (403 otherwise); a site's list replaces the top level's */
  access?: AccessRuleConfig[];
  /** nginx's limit_req: per path prefix, requests per client (429 over it); a site's list replaces the top level's */
  limit_req?: { prefix: string; rate: string; burst?: number; methods?: string[] }[];
  /** nginx's auth_basic: per path prefix, the users of an htpasswd file (401 otherwise); a site's list replaces the top level's */
  auth_basic?: { prefix: string; user_file?: string; realm?: string; off?: boolean }[];
  /** status → the page sent when warmpool answers that status itself (nginx's error_page) */
  error_pages?: Record<string, string>;
  pool?: PoolConfig;
  internal_files?: InternalFilesConfig;
  /** MB; 0 = the default */
  max_request_size?: number;
  raw_body?: boolean;
  /** the request context encoding workers get */
  codec?: 'json' | 'proto';
  middleware?: Middleware[];
  uploads?: UploadsConfig;
  static?: StaticConfig;
  headers?: HeadersConfig;
  /** sites[].http.access_log: this site's own access log (the top level's is every other site's) */
  access_log?: AccessLogConfig;
}

/** `http.ssl`. */
export interface SslConfig {
  address?: string;
  redirect?: boolean;
  /** the HTTPS port clients reach (a forwarded one), for the redirect's Location; default the listener's */
  redirect_port?: number;
  /** every connection to the HTTPS listener starts with a PROXY header, before TLS */
  proxy_protocol?: boolean;
  /** absent only with acme */
  cert?: string;
  key?: string;
  /** OpenSSL cipher list for TLS 1.2; absent: the server's forward-secret default */
  ciphers?: string;
  /** more pairs, each served to the DNS names in its certificate (SNI) */
  certificates?: Array<{ cert: string; key: string }>;
  acme?: AcmeConfig;
}

/** `http.ssl.acme`: RoadRunner's keys, plus `directory`. */
export interface AcmeConfig {
  certs_dir?: string;
  email?: string;
  challenge_type?: 'http-01' | 'tlsalpn-01';
  alt_http_port?: number;
  alt_tlsalpn_port?: number;
  use_production_endpoint?: boolean;
  domains?: string[];
  directory?: string;
  eab?: { key_id: string; mac_key: string };
}

/** `http.http2`. */
export interface Http2Config {
  h2c?: boolean;
  max_concurrent_streams?: number;
}

/** `http`: the listeners and the default site. */
/** `http.access_log`. */
export interface AccessLogConfig {
  format?: 'combined' | 'json';
  output?: string;
}

export interface HttpConfig extends SiteHttpConfig {
  address: string;
  access_logs?: boolean;
  access_log?: AccessLogConfig;
  trusted_subnets?: string[];
  /** X-Forwarded-For | Forwarded | X-Real-IP, any case */
  real_ip_header?: string;
  /** every connection to http.address starts with a PROXY header (trusted_subnets' ones are believed) */
  proxy_protocol?: boolean;
  ssl?: SslConfig;
  http2?: Http2Config;
  /** client connections held in all; 0 = no limit */
  max_connections?: number;
  /** client connections from one address (trusted_subnets peers exempt); 0 = no limit */
  max_connections_per_ip?: number;
  max_header_count?: number;
  /** bytes */
  max_header_size?: number;
  headers_timeout?: DurationString;
  request_timeout?: DurationString;
  /** a client sending nothing of its request body for this long is cut (408); 0 = none */
  body_timeout?: DurationString;
  /** a client reading nothing of its response for this long is disconnected; 0 = none */
  send_timeout?: DurationString;
  /** bytes: PHP replies held in memory for slow clients, over all of them */
  max_response_memory?: number;
}

/** `status`. */
export interface StatusConfig {
  address: string;
  unavailable_status_code?: number;
}

/** `metrics`. */
export interface MetricsConfig {
  address: string;
}

/** `logs.channels.<name>`. */
export interface LogChannelConfig {
  mode?: LogMode;
  level?: LogLevel;
  encoding?: LogEncoding;
  output?: string | string[];
  err_output?: string | string[];
}

/** `logs`. */
export interface LogsConfig extends LogChannelConfig {
  channels?: Record<string, LogChannelConfig>;
}

/**
 * One `sites[]` entry. A site inherits every server.* and per-site http.* key it does not set from
 * the top level (it still gets a pool of its own); `server` and `http` are {} when not written.
 */
export interface SiteConfig {
  /** lower-cased, trailing dot removed; "*.example.com" matches any subdomain */
  hosts: string[];
  root?: string;
  server: ServerConfig;
  http: SiteHttpConfig;
  /** this site's cache keys, over the top-level `cache` (absent: the top level's) */
  cache?: CacheConfig;
  /** this site's proxy routes, instead of the top-level list (absent: the top level's; [] none) */
  proxy?: ProxyRoute[];
  /** classic mode for this site (never inherited from the top level) */
  fastcgi?: FastCgiConfig;
  /** false: no PHP, not even the top level's command (static files and proxy routes only) */
  php?: boolean;
  /** every request redirected to `to` + its path and query (a site of no PHP, no files, no proxy) */
  redirect?: { to: string; status?: number };
}

/** One `proxy[]` entry. */
export interface ProxyRoute {
  prefix: string;
  /** one URL, or a list taken in turn */
  upstream: string | string[];
  websocket?: boolean;
  preserve_host?: boolean;
  rewrite_prefix?: string;
  timeout?: DurationString;
  websocket_idle_timeout?: DurationString;
}

/** `cache` (micro-cache). */
export interface CacheConfig {
  enabled?: boolean;
  /** bytes */
  max_bytes?: number;
  /** bytes */
  max_entry_bytes?: number;
  max_age?: DurationString;
  bypass_cookies?: string[];
  /** with max_age: the cookies that do not bypass the cache (any other does) */
  anonymous_cookies?: string[];
  stale_while_revalidate?: DurationString;
}

/** `rpc`: RoadRunner's RPC listener. */
export interface RpcConfig {
  /** tcp://host:port or unix:///path */
  listen?: string;
}

/** `fastcgi` (classic mode): the plugin's fastcgi option as written (to-options resolves root). */
export type FastCgiConfig = FastCgiOptions;

/** `admin`. */
export interface AdminConfig {
  socket?: string;
}

/** A validated warmpool.yaml / .rr.yaml. */
export interface WarmpoolConfig {
  version: '3';
  server: ServerConfig;
  http: HttpConfig;
  status: StatusConfig | null;
  metrics: MetricsConfig | null;
  logs: LogsConfig | null;
  sites: SiteConfig[] | null;
  proxy: ProxyRoute[] | null;
  cache: CacheConfig | null;
  /** classic mode of the default site; null: off */
  fastcgi: FastCgiConfig | null;
  admin: AdminConfig | null;
  rpc: RpcConfig | null;
}
