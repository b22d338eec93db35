// THE key table: every key warmpool.yaml may hold, spelled as RoadRunner's .rr.yaml v3 spells it
// where the concept is the same, plus warmpool's own extensions. validate.ts walks the document
// against it, `warmpool config check` prints its descriptions, and the README's key tables are
// checked against it (test/readme.test.ts), so this file is the one place a key is added.
//
// Path patterns: "a.b" is a key inside a section, "a[]" the items of a list, "a.*" any key of a
// free map. Keys under sites[] are copies of server.* and the per-site part of http.* (SITE_HTTP_KEYS),
// derived below rather than written twice.
import {
  accessEntryProblem,
  DEFAULT_BODY_TIMEOUT_MS,
  cidrProblem,
  rateProblem,
  DEFAULT_MAX_FIELDS,
  DEFAULT_MAX_FILES,
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_REQUEST_SIZE_MB,
  DEFAULT_MAX_RESPONSE_MEMORY_BYTES,
  LIMIT_OPTION_RANGES,
} from '@warmpool/fastify';
import {
  DEFAULT_ALLOCATE_TIMEOUT_MS,
  DEFAULT_DESTROY_TIMEOUT_MS,
  DEFAULT_HEADROOM,
  DEFAULT_RESET_TIMEOUT_MS,
  DEFAULT_SEND_TIMEOUT_MS,
  DEFAULT_STREAM_TIMEOUT_MS,
  DEFAULT_WATCH_TICK_MS,
  DEFAULT_SLOWLOG_TIMEOUT_MS,
  DEFAULT_WORKER_NICE,
  POOL_OPTION_RANGES,
  QUEUE_PER_WORKER,
} from '@warmpool/pool';
import { DEFAULT_MAX_FRAME_BYTES } from '@warmpool/pool/protocol';

/** http.send_timeout when unset: nginx's send_timeout. */
export const DEFAULT_SEND_TIMEOUT = '60s';
/** http.headers_timeout when unset (nginx's client_header_timeout): `serve` gives it to the plugin explicitly. */
export const DEFAULT_HEADERS_TIMEOUT = '60s';
/**
 * http.request_timeout when unset: none, as nginx (`serve` gives it explicitly, over Node's 300 s).
 * A whole-request bound cut honest uploads on slow links (64 MB at 1 Mbit/s takes 9 minutes);
 * body_timeout cuts a client that goes silent, and the connection limits bound how many one holds.
 */
export const DEFAULT_REQUEST_TIMEOUT = '0';

/** A default in ms as the docs write it ("60s"); ranges and defaults come from the owning package. */
const seconds = (ms: number): string => `${ms / 1000}s`;

export type ValueType =
  /** a mapping with the keys listed under it; `null` (an empty `http:`) reads as {} */
  | 'section'
  /** a sequence; its items are described by the `path[]` entry */
  | 'list'
  /** a mapping with free keys; values are described by the `path.*` entry */
  | 'map'
  /** a YAML string; a number or boolean is refused (quote it) */
  | 'string'
  /** any scalar, kept as its text (env values, user names or ids, header values) */
  | 'scalar-string'
  | 'integer'
  | 'number'
  | 'boolean'
  /** RR/Go duration string ("60s", "1m30s", "500ms"); a bare integer means seconds; result: a string */
  | 'duration'
  /** a number of megabytes (1 MB = 1024 * 1024 bytes), as RR's max_request_size and max_worker_memory */
  | 'size-mb'
  /** bytes: an integer, or a number with k / m / g (1024-based, nginx style): "64m"; result: an integer */
  | 'bytes'
  /** one of `values` */
  | 'enum'
  | 'string[]'
  /** a string or a list of strings, kept as written (server.command: a command line or argv) */
  | 'string|string[]'
  /** an integer, or the string "auto" */
  | 'integer|auto';

export interface KeySpec {
  /** pattern: "http.pool.num_workers", "server.env.*", "sites[].hosts" */
  readonly path: string;
  readonly type: ValueType;
  /** one line, shown by `warmpool config check` and in the README */
  readonly description: string;
  /** RR: the key exists in .rr.yaml v3 with this meaning; warmpool: our extension */
  readonly origin: 'rr' | 'warmpool';
  /** enum values, or the literal extra value of a union */
  readonly values?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  /** unit of a number, for the docs */
  readonly unit?: string;
  /** the default the owning package applies; documentation only: the loader never fills it in */
  readonly default?: string | number | boolean;
  /** must be set whenever its section is present (top-level sections count as always present) */
  readonly required?: boolean;
  /** `required` does not apply when this sibling key is set (http.ssl.cert is not needed with http.ssl.acme) */
  readonly requiredUnless?: string;
  /** strings (and items of string lists) must match this; `hint` says what to write */
  readonly pattern?: RegExp;
  readonly hint?: string;
  /** a secret (a key): an error about it never shows its value, which would land in a terminal or journal */
  readonly secret?: boolean;
  /** a check a pattern cannot express: why a string (or list item) is wrong, or null when it is fine */
  readonly check?: (text: string) => string | null;
  /** unsupported RoadRunner key: the warning text; its whole subtree is ignored and not checked */
  readonly warned?: string;
  /** bare $names that are this key's own, never environment variables ($uri in try_files): not warned about */
  readonly ownVariables?: readonly string[];
  /** derived copy under sites[] (not listed again in the README) */
  readonly site?: boolean;
}

const ADDRESS = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]*):(6553[0-5]|655[0-2]\d|65[0-4]\d\d|6[0-4]\d{3}|[1-5]\d{4}|\d{1,4})$/;
/** rpc.listen: RoadRunner's DSN, tcp://host:port (host may be empty) or unix:///path */
const RPC_LISTEN = new RegExp(`^(unix://\\S+|tcp://${ADDRESS.source.slice(1, -1)})$`);
const ADDRESS_HINT = 'an address "host:port", e.g. "127.0.0.1:8080", "0.0.0.0:80" or ":8080"';
/** a DNS name a CA can validate over HTTP or TLS: no wildcard, no IP literal */
const DOMAIN = /^(?=.*[a-z])[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)+\.?$/i;
const HOST = /^(\*\.)?[a-z0-9]([a-z0-9_-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9_-]*[a-z0-9])?)*\.?$|^\[[0-9a-f:.]+\]$/i;

type Entry = Omit<KeySpec, 'origin'> & { origin?: 'rr' | 'warmpool' };

const rr = (path: string, type: ValueType, description: string, extra: Partial<Entry> = {}): Entry => ({
  path,
  type,
  description,
  origin: 'rr',
  ...extra,
});
const wp = (path: string, type: ValueType, description: string, extra: Partial<Entry> = {}): Entry => ({
  path,
  type,
  description,
  origin: 'warmpool',
  ...extra,
});
/** An RR key warmpool does not support: loading goes on, with this warning naming it. */
const warned = (path: string, message: string): Entry => ({
  path,
  type: 'section',
  description: message,
  origin: 'rr',
  warned: message,
});

/** A list of rules by path prefix (http.access, http.limit_req): the list, its item, the item's prefix. */
function prefixRules(path: string, description: string, example: string): Entry[] {
  return [
    wp(path, 'list', description),
    wp(`${path}[]`, 'section', 'one rule'),
    wp(
      `${path}[].prefix`,
      'string',
      `the path prefix: "${example}" covers ${example}, ${example}/x, ${example.toUpperCase()} and ${example}.x or ${example};x (any case, and any byte after it but a letter, digit, - or _); a rule that opens a path covers ${example} and ${example}/x as written`,
      {
        required: true,
        pattern: /^\/[^\s?#*]*$/,
        hint: `a path starting with "/", with no spaces, "?", "#" or "*" (a prefix covers every path under it), e.g. "${example}"`,
      },
    ),
  ];
}

const TOP: Entry[] = [
  rr('version', 'enum', 'layout version of the file: RoadRunner v3 ("2.7" is read as "3", as RoadRunner does)', {
    values: ['2.7', '3'],
    default: '3',
    hint: '"3" (the RoadRunner v3 layout; convert an older v2.x file with RoadRunner\'s upgrade guide first)',
  }),

  // ---- server: how a worker starts ----
  rr('server', 'section', 'how a PHP worker process starts'),
  rr('server.command', 'string|string[]', 'command that starts one worker ("php worker.php"), or its argv'),
  rr('server.env', 'map', 'extra environment for workers; keys are upper-cased, $VAR in values is expanded at spawn'),
  rr('server.env.*', 'scalar-string', 'one environment variable given to workers'),
  wp(
    'server.clear_env',
    'boolean',
    "start workers with only PATH, TMPDIR, PHPRC and PHP_INI_SCAN_DIR of the server's environment, plus server.env (php-fpm's clear_env): one site's secrets in warmpool's environment are not every site's workers'; false (RoadRunner's way): all of it; classic sites: fastcgi.clear_env",
    { default: false },
  ),
  rr(
    'server.relay',
    'string',
    'how workers talk to warmpool: pipes, fds (warmpool SDK), unix:///path or tcp://host:port',
    {
      default: 'pipes',
      pattern: /^(pipes|fds|unix:\/\/\S+|tcp:\/\/\S+:\d+)$/,
      hint: '"pipes", "fds", "unix:///path/to.sock" or "tcp://127.0.0.1:7000"',
    },
  ),
  rr(
    'server.user',
    'scalar-string',
    "run workers as this user (name or uid), with its primary group (or server.group) and its supplementary groups, as php-fpm (`usermod -a -G GROUP www-data` reaches PHP at warmpool's next start); switching needs warmpool to run as root: not root, a user other than warmpool's own is a config error",
  ),
  rr(
    'server.group',
    'scalar-string',
    "run workers with this group (name or gid; default: server.user's primary group)",
  ),
  warned('server.relay_timeout', "a worker's boot and handshake are bounded by http.pool.allocate_timeout instead"),
  warned('server.on_init', 'run that command before warmpool starts (e.g. ExecStartPre= in the systemd unit)'),
  warned('server.after_init', 'run that command after warmpool is ready (e.g. ExecStartPost= in the systemd unit)'),

  // ---- http: the listener and the default site ----
  rr('http', 'section', 'the HTTP server, and the default site (requests whose Host matches no sites[] entry)'),
  rr('http.address', 'string', 'where the HTTP server listens', {
    required: true,
    pattern: ADDRESS,
    hint: ADDRESS_HINT,
  }),
  rr(
    'http.max_request_size',
    'size-mb',
    'largest request body (413 above); 0 = the default (in RoadRunner: no limit)',
    {
      unit: 'MB',
      ...LIMIT_OPTION_RANGES.max_request_size,
      default: DEFAULT_MAX_REQUEST_SIZE_MB,
    },
  ),
  rr('http.raw_body', 'boolean', 'pass urlencoded and multipart bodies to PHP unparsed (no $_POST, no uploads)', {
    default: false,
  }),
  wp(
    'http.codec',
    'enum',
    'how the request context is encoded for workers: json (every PHP library) or proto (what RoadRunner >= 2024.1 sends; roadrunner-php/http >= 3.5 reads it faster)',
    { values: ['json', 'proto'], default: 'json' },
  ),
  rr('http.access_logs', 'boolean', 'log one line per request (on the http log channel, in the logs format)', {
    default: false,
  }),
  wp(
    'http.access_log',
    'section',
    "warmpool's own access log, as nginx's access_log (setting it turns the access log on)",
  ),
  wp(
    'http.access_log.format',
    'enum',
    "combined: nginx's combined line plus the request id; json: one object per line",
    {
      values: ['combined', 'json'],
      default: 'combined',
    },
  ),
  wp(
    'http.access_log.output',
    'string',
    'stdout, stderr or a file path (appended; reopened on SIGUSR1 for logrotate)',
    {
      default: 'stdout',
    },
  ),
  rr(
    'http.middleware',
    'string[]',
    'RR middleware to run: static, headers and gzip are supported; others are warned about and skipped',
  ),
  rr(
    'http.trusted_subnets',
    'string[]',
    'CIDRs of proxies whose forwarding header (http.real_ip_header), or PROXY header (http.proxy_protocol), is believed',
    // the plugin's own CIDR parser: config check and serve refuse what the plugin would, before booting
    { check: cidrProblem },
  ),
  wp(
    'http.proxy_protocol',
    'boolean',
    "every connection to the HTTP listener starts with a PROXY header (v1 or v2) from a TCP load balancer (AWS NLB, HAProxy in tcp mode); the client it names is believed from http.trusted_subnets, and a connection without one is closed (nginx's listen … proxy_protocol with real_ip_header proxy_protocol)",
    { default: false },
  ),
  ...prefixRules(
    'http.access',
    "who may ask for a path prefix, as nginx's allow / deny in a location: the longest matching prefix wins, deny is checked first, then allow; 403 otherwise",
    '/wp-admin',
  ),
  wp(
    'http.access[].allow',
    'string[]',
    'clients allowed (CIDRs, addresses, or "all"); given, every other client is refused',
    {
      check: accessEntryProblem,
    },
  ),
  wp('http.access[].deny', 'string[]', 'clients refused, checked first (CIDRs, addresses, or "all")', {
    check: accessEntryProblem,
  }),
  ...prefixRules(
    'http.limit_req',
    "nginx's limit_req (nodelay): per path prefix, how many requests one client (its address, an IPv6 /64) may make; over it 429 with Retry-After, before PHP",
    '/wp-login.php',
  ),
  wp('http.limit_req[].rate', 'string', 'requests per second or minute, as nginx writes it: "10r/s", "5r/m"', {
    required: true,
    check: rateProblem,
  }),
  wp('http.limit_req[].burst', 'integer', 'requests allowed at once above the rate', { min: 0, default: 0 }),
  wp(
    'http.limit_req[].methods',
    'string[]',
    "only requests with these methods count (nginx: a map of $request_method as the zone's key): [POST] limits a login form posted to the page every GET reads (Adminer, phpMyAdmin); GET counts HEAD too; a rule for some methods comes before one for all on the same prefix; unset: all",
    { pattern: /^[A-Za-z]+$/, hint: 'an HTTP method like "POST"' },
  ),
  ...prefixRules(
    'http.auth_basic',
    "nginx's auth_basic with auth_basic_user_file: per path prefix, only the users of an htpasswd file get in (401 otherwise), static files, PHP and proxied paths alike",
    '/admin',
  ),
  wp(
    'http.auth_basic[].user_file',
    'string',
    "the htpasswd file (relative: from the config file's folder); hashes $apr1$ (htpasswd -m), $1$, $5$, $6$ (openssl passwd -6), {SHA}, {SSHA}, {PLAIN}; read again when it changes",
  ),
  wp('http.auth_basic[].realm', 'string', "the name the browser's prompt shows", { default: 'Restricted' }),
  wp('http.auth_basic[].off', 'boolean', "true: no authentication under this prefix (nginx's auth_basic off)", {
    default: false,
  }),
  wp(
    'http.error_pages',
    'map',
    "nginx's error_page: the page sent when warmpool answers a status itself (PHP or a proxied upstream down or timed out, a full queue, 403, 404, 413); PHP's and upstreams' own answers pass untouched",
  ),
  wp(
    'http.error_pages.*',
    'scalar-string',
    'one status ("502") → its page: a file read at start (relative to the config file; .html is sent as text/html, .txt as text/plain)',
  ),
  wp(
    'http.real_ip_header',
    'string',
    'the one header a trusted proxy sets: X-Forwarded-For (+ X-Forwarded-Proto), Forwarded (for=, proto=, host=) or X-Real-IP (address only)',
    {
      default: 'X-Forwarded-For',
      pattern: /^(x-forwarded-for|forwarded|x-real-ip)$/i,
      hint: '"X-Forwarded-For", "Forwarded" or "X-Real-IP" (the one header your proxy sets; nginx: real_ip_header)',
    },
  ),
  warned(
    'http.internal_error_code',
    'warmpool answers 503 (overload), 504 (exec_ttl), 502 (worker crash) or 500 by failure kind',
  ),
  warned('http.fcgi', 'serve HTTP, or put nginx in front for FastCGI clients'),
  warned('http.http3', 'HTTP/1.1 and HTTP/2 (http.http2, http.ssl) are served; HTTP/3 is not'),
  warned('http.new_relic', 'there is no New Relic middleware; use metrics (Prometheus)'),
  warned('http.cache', 'use the top-level cache section (micro-cache) instead'),

  wp(
    'http.internal_files',
    'section',
    'the folder PHP may hand downloads over from: X-Accel-Redirect (nginx) or X-Sendfile (Apache) in its answer makes warmpool send that file',
  ),
  wp('http.internal_files.root', 'string', 'the internal folder; nothing outside it is ever sent', { required: true }),
  wp('http.internal_files.prefix', 'string', 'the URI prefix X-Accel-Redirect values start with, mapped onto root', {
    default: '/',
    pattern: /^\/[^?#\s]*$/,
    hint: 'a URI path such as "/protected/"',
  }),
  rr('http.uploads', 'section', 'multipart file uploads'),
  rr(
    'http.uploads.dir',
    'string',
    "directory for uploaded temp files, and for request bodies kept on disk (classic bodies over 64 KiB; a worker site's raw bodies once 64 MiB of them are in memory)",
    { default: 'the OS temp dir' },
  ),
  rr('http.uploads.forbid', 'string[]', 'extensions refused (PHP upload error 8)', {
    default: '[".php", ".exe", ".bat"]',
  }),
  rr('http.uploads.allow', 'string[]', 'when not empty, only these extensions are stored'),
  wp('http.uploads.max_file_size', 'size-mb', 'largest uploaded file (PHP upload error 1 above); 0 = no limit', {
    unit: 'MB',
    min: 0,
    default: 0,
  }),
  wp('http.uploads.max_files', 'integer', "most files in one form (413 above; PHP's max_file_uploads); 0 = no limit", {
    min: 0,
    default: DEFAULT_MAX_FILES,
  }),
  wp(
    'http.uploads.max_fields',
    'integer',
    "most fields in one form Node parses, urlencoded or multipart (413 above, parsing stops there; PHP's max_input_vars); 0 = no limit",
    { min: 0, default: DEFAULT_MAX_FIELDS },
  ),

  rr('http.headers', 'section', 'headers middleware: CORS, and headers added to requests and responses'),
  rr('http.headers.cors', 'section', 'answer CORS preflights and add CORS headers'),
  rr('http.headers.cors.allowed_origin', 'string', 'Access-Control-Allow-Origin: "*" or comma-separated origins'),
  rr(
    'http.headers.cors.allowed_origin_regex',
    'string',
    'origins matching this regular expression are allowed (allowed_origin is then ignored)',
  ),
  rr('http.headers.cors.allowed_headers', 'string', 'Access-Control-Allow-Headers, comma-separated or "*"'),
  rr('http.headers.cors.allowed_methods', 'string', 'Access-Control-Allow-Methods, comma-separated'),
  rr('http.headers.cors.allow_credentials', 'boolean', 'send Access-Control-Allow-Credentials: true', {
    default: false,
  }),
  rr('http.headers.cors.exposed_headers', 'string', 'Access-Control-Expose-Headers, comma-separated'),
  rr('http.headers.cors.max_age', 'integer', 'Access-Control-Max-Age', { unit: 's', min: 0 }),
  rr(
    'http.headers.cors.options_success_status',
    'integer',
    'status of a successful preflight (ignored: warmpool answers 204)',
    {
      min: 200,
      max: 299,
      default: 200,
    },
  ),
  rr('http.headers.cors.debug', 'boolean', 'log why a CORS request was refused', { default: false }),
  rr('http.headers.request', 'map', 'headers added to every request before PHP sees it'),
  rr('http.headers.request.*', 'scalar-string', 'one request header: name → value'),
  rr(
    'http.headers.response',
    'map',
    'headers added to every response that does not set them itself (PHP, an upstream)',
  ),
  rr('http.headers.response.*', 'scalar-string', 'one response header: name → value'),
  wp(
    'http.headers.hide',
    'string[]',
    "headers removed from every response, PHP's and upstreams' too (nginx's fastcgi_hide_header / proxy_hide_header, Caddy's header -Server): e.g. [Server, X-Powered-By]",
  ),

  rr('http.static', 'section', 'static files served before PHP (needs "static" in http.middleware)'),
  rr('http.static.dir', 'string', 'directory to serve files from', { default: '.' }),
  rr(
    'http.static.forbid',
    'string[]',
    'extensions never served as files, added to the default list (RoadRunner replaces it; here PHP source, backups and dotfiles always stay forbidden)',
    {
      default:
        '[".php", ".phtml", ".phar", ".php3", ".php4", ".php5", ".php7", ".php8", ".phps", ".pht", ".inc", ".env", ".htaccess", ".git", ".log", ".sql", ".sqlite", ".sqlite3", ".bak", ".old", ".orig", ".swp"]',
    },
  ),
  rr('http.static.allow', 'string[]', 'when not empty, only these extensions are served'),
  rr(
    'http.static.calculate_etag',
    'boolean',
    'send an ETag (a classic site or a site of no PHP: true unless set, as nginx; a worker site: false, as RoadRunner)',
    {
      default: false,
    },
  ),
  rr('http.static.weak', 'boolean', 'make the ETag weak (W/)', { default: false }),
  rr(
    'http.static.request',
    'map',
    'headers added to the request when a static file is served (ignored: static files never reach PHP)',
  ),
  rr('http.static.request.*', 'scalar-string', 'one request header: name → value'),
  rr('http.static.response', 'map', 'headers added to static file responses (ignored: use http.static.cache_control)'),
  rr('http.static.response.*', 'scalar-string', 'one response header: name → value'),
  wp('http.static.index', 'string[]', 'index files for paths ending in "/"', { default: '["index.html"]' }),
  wp('http.static.last_modified', 'boolean', 'send Last-Modified and answer If-Modified-Since', { default: true }),
  wp('http.static.precompressed', 'boolean', 'serve x.css.br / x.css.gz for x.css when the client accepts them', {
    default: true,
  }),
  wp(
    'http.static.cache_control',
    'map',
    'Cache-Control per extension; "*" for the rest; none unless set (nginx without expires)',
  ),
  wp('http.static.cache_control.*', 'scalar-string', 'one extension (".css") → Cache-Control value'),
  wp(
    'http.static.hot_cache',
    'section',
    "small files kept in memory and checked against the disk at most every `revalidate` (nginx's open_file_cache)",
  ),
  wp('http.static.hot_cache.enabled', 'boolean', 'false: every file is read from disk each time', { default: true }),
  wp('http.static.hot_cache.max_bytes', 'bytes', 'memory for the files kept', {
    unit: 'bytes',
    min: 1,
    default: '16m',
  }),
  wp('http.static.hot_cache.max_file_bytes', 'bytes', 'the largest file kept', {
    unit: 'bytes',
    min: 0,
    default: '1m',
  }),
  wp(
    'http.static.hot_cache.revalidate',
    'duration',
    'how long a kept file is sent with no look at the disk: a deploy shows within it; 0s: looked at on every request',
    { default: '1s' },
  ),
  wp(
    'http.static.try_files',
    'string[]',
    'a site of no PHP: nginx\'s try_files, "$uri", then "$uri/" and "$uri.html" in order, then the fallback: a file ("/index.html": a single-page app) or "=404"',
    { default: '["$uri", "$uri/", "=404"]', ownVariables: ['uri'] },
  ),
  wp(
    'http.static.link_targets',
    'string[]',
    "folders outside the root that a symlink under it may lead to (relative ones resolve as dir does); no link out of the root is followed otherwise. Debian links its packaged apps' JavaScript and CSS into /usr/share/javascript",
  ),

  rr('http.pool', 'section', 'the warm pool of PHP workers'),
  rr('http.pool.debug', 'boolean', 'show worker error text in 500 responses; never in production', { default: false }),
  rr('http.pool.command', 'string|string[]', 'worker command for this pool (overrides server.command)'),
  rr(
    'http.pool.num_workers',
    'integer|auto',
    'workers kept warm: an integer, "auto" (measured sizing), or 0 = CPU count',
    { values: ['auto'], ...POOL_OPTION_RANGES.num_workers, default: 'CPU count' },
  ),
  rr('http.pool.max_jobs', 'integer', 'recycle a worker after this many requests; 0 = never', {
    ...POOL_OPTION_RANGES.max_jobs,
    default: 0,
  }),
  rr(
    'http.pool.allocate_timeout',
    'duration',
    'how long a request waits for a free worker (and a worker may take to boot)',
    { default: seconds(DEFAULT_ALLOCATE_TIMEOUT_MS) },
  ),
  rr(
    'http.pool.max_queue_size',
    'integer',
    'requests allowed to wait for a worker (503 at once above); default 16 per worker; 0 = unlimited',
    { ...POOL_OPTION_RANGES.max_queue_size, default: `${QUEUE_PER_WORKER} per worker` },
  ),
  rr('http.pool.destroy_timeout', 'duration', 'grace between the stop command and SIGKILL; bounds the shutdown drain', {
    default: seconds(DEFAULT_DESTROY_TIMEOUT_MS),
  }),
  rr('http.pool.reset_timeout', 'duration', 'how long a reset waits for a busy worker before killing it', {
    default: seconds(DEFAULT_RESET_TIMEOUT_MS),
  }),
  rr('http.pool.stream_timeout', 'duration', 'how long a cancelled stream may take to end', {
    default: seconds(DEFAULT_STREAM_TIMEOUT_MS),
  }),
  wp(
    'http.pool.send_timeout',
    'duration',
    'how long a streamed PHP reply waits for its client to read before PHP is told to stop (its worker or process freed; http.send_timeout closes the connection itself); 0 = no bound',
    { default: seconds(DEFAULT_SEND_TIMEOUT_MS) },
  ),
  wp('http.pool.max_frame_size', 'integer', 'largest frame a worker may send', {
    unit: 'bytes',
    ...POOL_OPTION_RANGES.max_frame_size,
    default: DEFAULT_MAX_FRAME_BYTES,
  }),
  wp(
    'http.pool.nice',
    'integer',
    "how many steps below the server's CPU priority (Unix nice) the PHP workers run, so the server never waits for a CPU behind PHP; 0 = the same",
    { ...POOL_OPTION_RANGES.nice, default: DEFAULT_WORKER_NICE },
  ),
  wp(
    'http.pool.min_workers',
    'integer',
    'dynamic pool: fewest workers kept (0 = scale to zero when idle); not with num_workers',
    POOL_OPTION_RANGES.min_workers,
  ),
  wp(
    'http.pool.max_workers',
    'integer',
    'dynamic pool: most workers spawned under load',
    POOL_OPTION_RANGES.max_workers,
  ),
  wp('http.pool.headroom', 'number', 'num_workers: auto — share of available memory kept free', {
    ...POOL_OPTION_RANGES.headroom,
    default: DEFAULT_HEADROOM,
  }),
  warned('http.pool.dynamic_allocator', "use min_workers / max_workers (warmpool's dynamic pool) or num_workers: auto"),
  rr('http.pool.supervisor', 'section', 'limits that recycle workers'),
  rr(
    'http.pool.supervisor.watch_tick',
    'duration',
    'how often ttl, idle_ttl, max_worker_memory and request_slowlog_timeout are checked',
    {
      default: seconds(DEFAULT_WATCH_TICK_MS),
    },
  ),
  rr(
    'http.pool.supervisor.ttl',
    'duration',
    'max worker age; recycled when next idle, one worker at a time (the next once the last replacement is ready); 0 = off',
    {
      default: '0s',
    },
  ),
  rr('http.pool.supervisor.idle_ttl', 'duration', 'max idle time of a worker; 0 = off', { default: '0s' }),
  rr(
    'http.pool.supervisor.exec_ttl',
    'duration',
    "max time of one request: the worker is killed and the client gets 504; 0 = off (a classic site: 60 s of PHP silence, nginx's fastcgi_read_timeout, gets 504 and the script runs on to its end, killed stream_timeout later if it has not)",
    { default: '0s' },
  ),
  rr(
    'http.pool.supervisor.max_worker_memory',
    'size-mb',
    'recycle a worker whose RSS exceeds this after its request (checked each watch_tick); a request that keeps growing past it is killed (502), unlike RoadRunner; 0 = off',
    { unit: 'MB', ...POOL_OPTION_RANGES['supervisor.max_worker_memory'], default: 0 },
  ),
  wp(
    'http.pool.supervisor.request_slowlog_timeout',
    'duration',
    "php-fpm's request_slowlog_timeout: a request running longer is logged once, a warning naming its worker pid, method and path and how long it has run (no stack trace); checked each watch_tick; 0 = off",
    { default: seconds(DEFAULT_SLOWLOG_TIMEOUT_MS) },
  ),

  rr('http.ssl', 'section', 'HTTPS listener'),
  rr('http.ssl.address', 'string', 'where the HTTPS server listens', {
    pattern: ADDRESS,
    hint: ADDRESS_HINT,
    default: ':443',
  }),
  rr('http.ssl.redirect', 'boolean', 'answer plain-HTTP requests with a redirect to HTTPS', { default: false }),
  wp(
    'http.ssl.proxy_protocol',
    'boolean',
    "every connection to the HTTPS listener starts with a PROXY header (v1 or v2) from a TCP load balancer, before TLS; the client it names is believed from http.trusted_subnets (nginx's listen … ssl proxy_protocol)",
    { default: false },
  ),
  wp(
    'http.ssl.redirect_port',
    'integer',
    "the HTTPS port clients reach, for the redirect's Location (443: none named, as nginx's `return 301 https://$host$request_uri`); set it when a port is forwarded to http.ssl.address",
    { min: 1, max: 65535, default: "http.ssl.address's port" },
  ),
  rr('http.ssl.cert', 'string', 'certificate chain file (PEM); ignored with acme, as in RoadRunner', {
    required: true,
    requiredUnless: 'acme',
  }),
  rr('http.ssl.key', 'string', 'private key file (PEM) of http.ssl.cert', { required: true, requiredUnless: 'acme' }),
  wp(
    'http.ssl.ciphers',
    'string',
    'OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are always on); replaces the forward-secret default',
    { default: 'Mozilla "intermediate" (ECDHE with AES-GCM or ChaCha20)' },
  ),
  wp(
    'http.ssl.certificates',
    'list',
    "more certificate pairs, each served to the names its certificate holds (SNI), as nginx's ssl_certificate per server block: one per domain from certbot (live/NAME/fullchain.pem and privkey.pem)",
  ),
  wp('http.ssl.certificates[]', 'section', 'one more certificate pair'),
  wp('http.ssl.certificates[].cert', 'string', 'certificate chain file (PEM); served to the DNS names it holds', {
    required: true,
  }),
  wp('http.ssl.certificates[].key', 'string', 'private key file (PEM) of that certificate', { required: true }),
  warned('http.ssl.root_ca', 'client certificates are not checked (no mutual TLS)'),
  warned('http.ssl.client_auth_type', 'client certificates are not checked (no mutual TLS)'),
  rr('http.ssl.acme', 'section', "certificates obtained and renewed automatically from an ACME CA (Let's Encrypt)"),
  rr('http.ssl.acme.certs_dir', 'string', 'where the account key, certificates and keys (0600) are kept', {
    default: 'rr_le_certs',
  }),
  rr('http.ssl.acme.email', 'string', "contact address of the CA account (the CA's expiry and policy notices)", {
    // the CA refuses the account otherwise, at run time, and every order with it
    check: (text) =>
      /^[^\s@:]+@[^\s@]+$/.test(text) ? null : `is not an email address: "${text}" (like ops@example.com)`,
  }),
  rr('http.ssl.acme.challenge_type', 'enum', 'how the CA checks each name: HTTP on port 80, or TLS-ALPN on 443', {
    values: ['http-01', 'tlsalpn-01'],
    default: 'http-01',
  }),
  rr(
    'http.ssl.acme.alt_http_port',
    'integer',
    "port the CA's HTTP-01 requests reach (port 80 forwarded here); another listener answers them when it is not http.address's",
    { min: 1, max: 65535, default: "http.address's port" },
  ),
  rr(
    'http.ssl.acme.alt_tlsalpn_port',
    'integer',
    "port the CA's TLS-ALPN-01 handshakes reach (port 443 forwarded here); another listener answers them when it is not http.ssl.address's",
    { min: 1, max: 65535, default: "http.ssl.address's port" },
  ),
  rr(
    'http.ssl.acme.use_production_endpoint',
    'boolean',
    "Let's Encrypt production (trusted certificates) or staging (for trying the setup); ignored with directory",
    { default: false },
  ),
  rr('http.ssl.acme.domains', 'string[]', 'names to get certificates for; one certificate per site', {
    default: 'the hosts of every site',
    pattern: DOMAIN,
    hint: 'a DNS name like "example.com" (no wildcard: HTTP-01 and TLS-ALPN-01 cannot prove "*.example.com")',
  }),
  wp('http.ssl.acme.directory', 'string', 'directory URL of another RFC 8555 CA (step-ca, a private CA, Buypass)', {
    pattern: /^https?:\/\/[^\s/?#]+(\/\S*)?$/,
    hint: 'the CA\'s directory URL, e.g. "https://ca.internal:9000/acme/acme/directory"',
  }),
  wp(
    'http.ssl.acme.eab',
    'section',
    "External Account Binding: the CA's key ID and MAC key that tie the account to yours (ZeroSSL, Google, Sectigo)",
  ),
  wp('http.ssl.acme.eab.key_id', 'string', "the EAB key ID from the CA's dashboard", { required: true }),
  wp('http.ssl.acme.eab.mac_key', 'string', "the EAB HMAC key from the CA's dashboard (base64url)", {
    required: true,
    // base64url, or the standard base64 some dashboards show ("+" and "/"): one key either way
    pattern: /^[A-Za-z0-9_+/-]+={0,2}$/,
    hint: 'the base64 text the CA gives (letters, digits, "-", "_", "+", "/"); keep it out of the file: mac_key: ${ACME_EAB_MAC_KEY}',
    secret: true,
  }),

  rr('http.http2', 'section', 'HTTP/2 (over TLS with ALPN; h2c for cleartext)'),
  rr('http.http2.h2c', 'boolean', 'accept cleartext HTTP/2 on http.address (ignored: HTTP/2 is served over TLS only)', {
    default: false,
  }),
  rr(
    'http.http2.max_concurrent_streams',
    'integer',
    "streams per connection (nginx's default; Node's own is 2^32 - 1)",
    {
      min: 1,
      default: 128,
    },
  ),

  wp(
    'http.max_header_count',
    'integer',
    'most request header fields (431 above)',
    LIMIT_OPTION_RANGES.max_header_count,
  ),
  wp('http.max_header_size', 'integer', 'largest request head: request line and headers (431 above)', {
    unit: 'bytes',
    ...LIMIT_OPTION_RANGES.max_header_size,
    default: DEFAULT_MAX_HEADER_BYTES,
  }),
  wp('http.headers_timeout', 'duration', 'time to receive the request head (408 after)', {
    default: DEFAULT_HEADERS_TIMEOUT,
  }),
  wp(
    'http.max_connections',
    'integer',
    "client connections the public listeners hold in all; a new one over it is closed as it is accepted (nginx's worker_connections); 0 = no limit",
    { min: 0, default: 0 },
  ),
  wp(
    'http.max_connections_per_ip',
    'integer',
    "client connections from one address (an IPv6 client: its /64); a new one over it is closed as it is accepted (nginx's limit_conn); peers in http.trusted_subnets are not counted; 0 = no limit",
    { min: 0, default: 0 },
  ),
  wp(
    'http.send_timeout',
    'duration',
    "a connection whose client reads nothing for this long while its response waits to be sent is closed (nginx's send_timeout); 0 = none",
    { default: DEFAULT_SEND_TIMEOUT },
  ),
  wp(
    'http.max_response_memory',
    'bytes',
    "PHP reply bytes held in memory for clients that have not read them yet, over all connections and sites; past it, a new reply goes to a temp file first and is sent from there (nginx's fastcgi_buffers and fastcgi_temp_path); each client still gets all of its reply",
    { unit: 'bytes', min: 1024 * 1024, default: `${DEFAULT_MAX_RESPONSE_MEMORY_BYTES / (1024 * 1024)}m` },
  ),
  wp(
    'http.request_timeout',
    'duration',
    'time to receive the whole request, body included (each stream of an HTTP/2 connection too: 408, the stream reset); 0 = none, as nginx, whose client_body_timeout is http.body_timeout',
    {
      default: DEFAULT_REQUEST_TIMEOUT,
    },
  ),

  wp(
    'http.body_timeout',
    'duration',
    "a client that sends nothing of its request body for this long, while the server is ready to read it, is cut: 408, the connection (HTTP/2: the stream) closed (nginx's client_body_timeout); 0 = none",
    { default: `${DEFAULT_BODY_TIMEOUT_MS / 1000}s` },
  ),

  // ---- status, metrics, logs ----
  rr('status', 'section', 'health endpoints /health and /ready on their own listener'),
  rr('status.address', 'string', 'where the health endpoints listen', {
    required: true,
    pattern: ADDRESS,
    hint: ADDRESS_HINT,
  }),
  rr('status.unavailable_status_code', 'integer', 'status of /ready while not ready', {
    min: 400,
    max: 599,
    default: 503,
  }),
  rr('metrics', 'section', 'Prometheus metrics on their own listener'),
  rr('metrics.address', 'string', 'where /metrics listens', { required: true, pattern: ADDRESS, hint: ADDRESS_HINT }),
  warned('metrics.collect', 'application-defined metrics cannot be declared; warmpool exports its own'),
  rr('logs', 'section', 'logging'),
  rr('logs.mode', 'enum', 'development: pretty; production: JSON; raw: messages only; off: nothing', {
    values: ['development', 'production', 'raw', 'off'],
    default: 'development',
  }),
  rr('logs.level', 'enum', 'lowest level written', { values: ['debug', 'info', 'warn', 'error', 'panic', 'fatal'] }),
  rr('logs.encoding', 'enum', 'line format', { values: ['console', 'json'] }),
  rr('logs.output', 'string|string[]', 'stderr, stdout or a file path (or several)', { default: 'stderr' }),
  rr('logs.err_output', 'string|string[]', 'where error-level lines go', { default: 'stderr' }),
  rr(
    'logs.channels',
    'map',
    'per-channel levels: "http" (requests, the access log), "server" (PHP workers\' output, pool events), "warmpool" (the server itself); other names are warned about and ignored',
  ),
  rr('logs.channels.*', 'section', "one channel's overrides"),
  rr('logs.channels.*.mode', 'enum', "this channel's mode", { values: ['development', 'production', 'raw', 'off'] }),
  rr('logs.channels.*.level', 'enum', "this channel's level", {
    values: ['debug', 'info', 'warn', 'error', 'panic', 'fatal'],
  }),
  rr('logs.channels.*.encoding', 'enum', "this channel's encoding", { values: ['console', 'json'] }),
  rr('logs.channels.*.output', 'string|string[]', "this channel's output"),
  rr('logs.channels.*.err_output', 'string|string[]', "this channel's error output"),
  warned('logs.line_ending', 'lines always end with "\\n"'),
  warned('logs.file_logger_options', 'write to a file with logs.output: /path and rotate it with logrotate'),

  // ---- warmpool extensions ----
  wp('sites', 'list', 'several sites on one server, chosen by Host (like nginx server blocks)'),
  wp('sites[]', 'section', 'one site: its hosts, root, server.* and per-site http.* keys'),
  wp('sites[].hosts', 'string[]', 'host names this site answers ("example.com", "*.example.com"); lower-cased', {
    required: true,
    pattern: HOST,
    hint: 'a host name like "example.com" or "*.example.com" (no scheme, port or path; an IPv6 address in brackets: "[::1]")',
  }),
  wp('sites[].root', 'string', "the site's directory: the working directory of its workers"),
  wp(
    'sites[].redirect',
    'section',
    "every request of this site is redirected to another address, its path and query kept (nginx's `return 301 https://example.com$request_uri`): a www. host to the bare one, an old domain to the new",
  ),
  wp('sites[].redirect.to', 'string', 'the address: scheme, host, and a path prefix if any ("https://example.com")', {
    required: true,
    // no {…} or $…: Caddy's {uri} and nginx's $request_uri were kept as text in every Location
    pattern: /^https?:\/\/[^\s/?#@{}$]+(\/[^\s?#{}$]*)?$/i,
    hint: 'an absolute http(s) address such as "https://example.com" (a path prefix allowed; no query, fragment or user; the path and query asked for are added by themselves: no {uri} or $request_uri)',
    // nginx's and Caddy's spellings of what is added by itself: refused by the pattern, with its
    // hint, rather than warned of as a ${VAR} to write
    ownVariables: ['request_uri', 'uri', 'args', 'query_string', 'is_args', 'host', 'server_name', 'scheme'],
  }),
  wp('sites[].redirect.status', 'integer', '301, 302, 303, 307 or 308', { min: 301, max: 308, default: 301 }),
  wp(
    'sites[].php',
    'boolean',
    'false: this site runs no PHP (a worker command of the top level is not inherited): its static files and proxy routes serve it; a site with neither a command nor fastcgi runs none anyway',
    { default: true },
  ),
  wp('proxy', 'list', 'path prefixes passed to another HTTP server'),
  wp('proxy[]', 'section', 'one proxied prefix'),
  wp('proxy[].prefix', 'string', 'path prefix to proxy, e.g. "/api"', {
    required: true,
    // as serve's proxy routes take it (proxy.ts): no *, :, ? or #, no empty segment
    pattern: /^(?!.*\/\/)\/[^\s?#*:]*$/,
    hint: 'a path starting with "/", e.g. "/api" (no *, :, ? or #, no "//")',
  }),
  wp(
    'proxy[].upstream',
    'string|string[]',
    'the server to pass to, e.g. "http://127.0.0.1:9000"; or a list of them, taken in turn (nginx\'s upstream block): one refusing connections is passed over for 10 s, and a request it refused goes to the next',
    {
      required: true,
      pattern: /^https?:\/\/[^\s/?#{}$]+(\/[^\s{}$]*)?$/,
      hint: 'an http:// or https:// URL, e.g. "http://127.0.0.1:9000" (the path asked for is added by itself: no {uri} or $request_uri)',
      ownVariables: ['request_uri', 'uri', 'args', 'query_string', 'is_args', 'host', 'server_name', 'scheme'],
    },
  ),
  wp('proxy[].websocket', 'boolean', 'also proxy WebSocket upgrades', { default: false }),
  wp(
    'proxy[].preserve_host',
    'boolean',
    "send the upstream the client's Host (nginx proxy_set_header Host $host) instead of the upstream's own",
    { default: false },
  ),
  wp(
    'proxy[].rewrite_prefix',
    'string',
    'what replaces the prefix upstream: "" strips it; default: the upstream URL\'s path, else the prefix (as nginx proxy_pass)',
  ),
  wp('proxy[].timeout', 'duration', "longest wait for the upstream's response headers, and between two body chunks", {
    default: '60s',
  }),
  wp(
    'proxy[].websocket_idle_timeout',
    'duration',
    'a proxied WebSocket with no traffic either way for this long is closed (1001), as nginx closes a tunnel after proxy_read_timeout; 0 = never',
    { default: '60s' },
  ),
  wp('cache', 'section', 'micro-cache of cacheable GET/HEAD responses (a site may set its own cache keys)'),
  wp('cache.enabled', 'boolean', 'turn the micro-cache on', { default: false }),
  wp('cache.max_bytes', 'bytes', 'memory budget of cached bodies', { unit: 'bytes', min: 0, default: '64m' }),
  wp(
    'cache.max_entry_bytes',
    'bytes',
    'largest response kept; bigger ones pass through (a classic site keeps at most 1 MiB: larger pages are streamed)',
    {
      unit: 'bytes',
      min: 1,
      default: '1m',
    },
  ),
  wp(
    'cache.bypass_cookies',
    'string[]',
    'cookie names ("*" matches any characters) whose presence bypasses the cache: no lookup, no store; [] for none',
    {
      default:
        '["PHPSESSID", "wordpress_logged_in_*", "wordpress_sec_*", "wordpress_no_cache", "wp-postpass_*", "comment_author_*", "woocommerce_items_in_cart", "wp_woocommerce_session_*", "laravel_session", "*_session", "SESS*", "SSESS*"]',
      pattern: /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/,
      hint: 'a cookie name like "PHPSESSID" or "wordpress_logged_in_*"',
    },
  ),
  wp(
    'cache.anonymous_cookies',
    'string[]',
    'with max_age: the only cookies a request may carry and still use the cache (analytics, consent banners); any other cookie bypasses it, since a page kept for saying nothing of its freshness may be one made for a session no list knows; [] for none',
    {
      default:
        '["_ga", "_ga_*", "_gid", "_gat*", "_gcl_*", "__utm*", "_fbp", "_fbc", "_hj*", "_pk_*", "_clck", "_clsk", "cookieyes-consent", "CookieConsent", "cookielawinfo-*", "cmplz_*", "euconsent-v2", "wordpress_test_cookie"]',
      pattern: /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/,
      hint: 'a cookie name like "_ga" or "_pk_*"',
    },
  ),
  wp(
    'cache.stale_while_revalidate',
    'duration',
    "how long after expiry an entry is still served (X-Cache: STALE) while one request refreshes it; a response's stale-while-revalidate=N wins",
    { default: '0s' },
  ),
  wp(
    'cache.max_age',
    'duration',
    "nginx's fastcgi_cache_valid: a 200 or 301 that says nothing of its freshness (a stock WordPress page) is kept this long, and PHP's X-Accel-Expires, max-age, s-maxage and Expires are followed as nginx follows them; unset: only responses marked `public` with max-age, or s-maxage, are kept",
  ),
  rr(
    'rpc',
    'section',
    "RoadRunner's RPC listener (goridge RPC): `rr reset` / `warmpool reset`, workers, tune, and RoadRunner's PHP RPC client",
  ),
  rr('rpc.listen', 'string', 'where it listens; a tcp address without a host binds 127.0.0.1', {
    required: true,
    pattern: RPC_LISTEN,
    hint: '"tcp://127.0.0.1:6001" or "unix:///run/app/rpc.sock"',
  }),
  wp(
    'fastcgi',
    'section',
    'classic PHP (one .php file per entry point, as nginx fastcgi_pass + try_files): the default site, or a site with its own fastcgi, runs it',
  ),
  wp('fastcgi.root', 'string', 'document root: scripts run from here, static files are served from here', {
    required: true,
  }),
  wp(
    'fastcgi.pass',
    'string',
    'an existing php-fpm to pass to (unix:PATH or HOST:PORT); without it warmpool runs php-cgi, sized by http.pool',
    {
      pattern: /^(unix:\/\S+|(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5})$/,
      hint: '"unix:/run/php/php8.2-fpm.sock" or "127.0.0.1:9000"',
    },
  ),
  wp('fastcgi.command', 'string|string[]', 'the php-cgi command warmpool runs (php.ini flags allowed); not with pass', {
    default: 'php-cgi',
  }),
  wp(
    'fastcgi.clear_env',
    'boolean',
    "start php-cgi with only PATH, TMPDIR, PHPRC and PHP_INI_SCAN_DIR of the server's environment, plus server.env (php-fpm's clear_env: PHP shows its environment in every $_SERVER); false: all of it; not with pass",
    { default: true },
  ),
  wp('fastcgi.index', 'string[]', 'index files of a directory, in order', { default: '["index.php", "index.html"]' }),
  wp('fastcgi.try_files', 'string[]', "nginx's try_files: $uri, $uri/, then the fallback (a path, or =404)", {
    default: '["$uri", "$uri/", "/index.php?$args"]',
    ownVariables: ['uri', 'args', 'query_string'],
  }),
  wp(
    'fastcgi.rewrite',
    'map',
    'prefix → script, before try_files: { "/wiki/": "/index.php" } runs it for every path under /wiki/, a page named Foo.php too (nginx\'s location /wiki/ { rewrite ^ /index.php; }); a target as try_files\' fallback ("/index.php?$args", "=404"); the longest prefix wins',
  ),
  wp('fastcgi.rewrite.*', 'scalar-string', 'one prefix → its script', {
    ownVariables: ['uri', 'args', 'query_string'],
  }),
  wp(
    'fastcgi.fallbacks',
    'map',
    'prefix → try_files\' fallback for the paths under it, when nothing else resolves: { "/icingaweb2/": "/icingaweb2/index.php?$args" } (nginx: a location\'s own try_files, for an app linked in under a path); the longest prefix wins',
  ),
  wp('fastcgi.fallbacks.*', 'scalar-string', "one prefix → its fallback, written as try_files' last entry", {
    ownVariables: ['uri', 'args', 'query_string'],
  }),
  wp(
    'fastcgi.multisite',
    'enum',
    'a WordPress subdirectory network: "/site2/wp-admin/", "/site2/wp-login.php" and "/site2/wp-includes/…" are the shared files when no such path is under root, as WordPress\'s multisite nginx rules (if (!-e $request_filename) { rewrite ^(/[^/]+)?(/wp-.*) $2 last; … })',
    { values: ['subdirectory'] },
  ),
  wp('fastcgi.no_exec', 'string[]', 'folders under root where no script ever runs ("wp-content/uploads")'),
  wp(
    'fastcgi.link_targets',
    'string[]',
    "folders outside root whose scripts run through a link in root, and whose files are served (an app linked in under a path, nginx's alias: ln -s /usr/share/icingaweb2/public /var/www/html/icingaweb2); read at start",
  ),
  wp('fastcgi.extensions', 'string[]', 'extensions that run as PHP, as written (a case variant is refused)', {
    default: '[".php"]',
  }),
  wp('fastcgi.split_path', 'boolean', 'split "/index.php/foo" into the script and PATH_INFO "/foo"', { default: true }),
  wp('fastcgi.params', 'map', "extra params for every request (nginx's fastcgi_param)"),
  wp('fastcgi.params.*', 'scalar-string', 'one param: name → value'),
  wp(
    'fastcgi.max_connections',
    'integer',
    "with pass: connections to php-fpm at most; set it to php-fpm's pm.max_children",
    { min: 1, default: 8 },
  ),
  wp(
    'fastcgi.keepalive_time',
    'duration',
    'with pass: a kept connection to php-fpm closes once its request ends past this age, so that other clients of the same php-fpm pool get its children in turn (0: kept until it idles out)',
    { default: '2s' },
  ),
  wp(
    'fastcgi.keepalive_timeout',
    'duration',
    "with pass: an idle kept connection to php-fpm closes after this long (nginx's keepalive_timeout; 0: kept)",
    { default: '60s' },
  ),
  wp(
    'fastcgi.pipelining',
    'boolean',
    'with every PHP process busy, write a GET or HEAD without a body behind a running request (false: one at a time)',
    { default: true },
  ),
  wp(
    'fastcgi.request_buffering',
    'boolean',
    "read a request body whole before PHP runs (memory up to 64 KiB, else an unlinked temp file), so a client sending it slowly never holds a PHP process (nginx's fastcgi_request_buffering); false: streamed as it arrives",
    { default: true },
  ),
  wp(
    'fastcgi.ignore_client_abort',
    'string[]',
    'scripts that run to their end even when their client hangs up first, queued or running ("*" matches any characters; nginx\'s fastcgi_ignore_client_abort, for these scripts only): WordPress asks its own wp-cron.php and hangs up after 10 ms; [] for none',
    { default: '["*/wp-cron.php"]' },
  ),
  wp('admin', 'section', 'local admin socket used by `warmpool reset` and `warmpool workers`'),
  wp('admin.socket', 'string', 'unix socket path (created with mode 0600)', { default: '/run/warmpool.sock' }),
];

/** RoadRunner plugins warmpool does not run; their sections load with a warning naming them. */
const RR_PLUGINS: Record<string, string> = {
  reload: 'run `warmpool reset` after a deploy (rolling, no dropped requests) instead of watching files',
  jobs: 'there are no queues; run a queue consumer as its own service',
  kv: 'there is no key-value store; use Redis or APCu from PHP',
  temporal: 'run Temporal workers with RoadRunner or the Temporal PHP SDK',
  service: 'run extra processes with systemd or your supervisor instead',
  grpc: 'only HTTP is served',
  tcp: 'only HTTP is served',
  centrifuge: 'run Centrifugo on its own and proxy to it (proxy[] with websocket: true)',
  websockets: 'proxy WebSockets to another server with proxy[].websocket instead',
  broadcast: 'there is no pub/sub; use your broker from PHP',
  amqp: 'there are no queues; run a queue consumer as its own service',
  kafka: 'there are no queues; run a queue consumer as its own service',
  nats: 'there are no queues; run a queue consumer as its own service',
  sqs: 'there are no queues; run a queue consumer as its own service',
  beanstalk: 'there are no queues; run a queue consumer as its own service',
  boltdb: 'there is no key-value store; use Redis or APCu from PHP',
  redis: 'there is no key-value store; talk to Redis from PHP',
  memcached: 'there is no key-value store; talk to Memcached from PHP',
  memory: 'there is no key-value store; use APCu from PHP',
  otel: 'there is no OpenTelemetry export; use metrics (Prometheus)',
  endure: "RoadRunner's container settings do not apply",
  fileserver: 'serve files with http.static instead',
  lock: 'there is no lock service; use Redis or the database from PHP',
};

/** The keys of http.* a site may set for itself; the rest belong to the shared listeners. */
export const SITE_HTTP_KEYS: readonly string[] = [
  'access',
  // a site's own access log (nginx's access_log in a server block); never inherited: the top level's
  // is the log of every site without one
  'access_log',
  'limit_req',
  'auth_basic',
  'error_pages',
  'pool',
  'internal_files',
  'max_request_size',
  'raw_body',
  'codec',
  'middleware',
  'uploads',
  'static',
  'headers',
];

/**
 * Top-level sections a site may set for itself: `cache` keys override the top level's, `proxy`
 * replaces its list, `fastcgi` makes the site classic (never inherited: the top level's is the
 * default site's).
 */
export const SITE_SECTIONS: readonly string[] = ['cache', 'proxy', 'fastcgi'];

function deriveSiteKeys(entries: readonly Entry[]): Entry[] {
  const out: Entry[] = [];
  for (const entry of entries) {
    const [head, second] = entry.path.split('.');
    const section = head!.replace(/\[\]$/, '');
    const perSite =
      head === 'server' ||
      SITE_SECTIONS.includes(section) ||
      (head === 'http' && (second === undefined || SITE_HTTP_KEYS.includes(second.replace(/\[\]$/, ''))));
    if (!perSite) continue;
    // A site inherits server.command and http.address from the top level, so nothing is required
    // there; a proxy route or a fastcgi section of its own still needs its required keys.
    const { required, ...rest } = entry;
    out.push({
      ...rest,
      ...((section === 'proxy' || section === 'fastcgi') && required ? { required } : {}),
      path: `sites[].${entry.path}`,
      site: true,
    });
  }
  return out;
}

const ALL: KeySpec[] = [
  ...TOP,
  ...Object.entries(RR_PLUGINS).map(([name, message]) => warned(name, message)),
  ...deriveSiteKeys(TOP),
].map((entry) => Object.freeze({ origin: 'rr' as const, ...entry }));

/** Every key pattern, top-level ones first, then the sites[] copies. */
export const CONFIG_KEYS: readonly KeySpec[] = Object.freeze(ALL);

const BY_PATH: ReadonlyMap<string, KeySpec> = new Map(ALL.map((spec) => [spec.path, spec]));

/** The spec of one pattern ("http.pool.num_workers", "server.env.*", "sites[].hosts"). */
export function findKey(pattern: string): KeySpec | undefined {
  return BY_PATH.get(pattern);
}

/** "a.b.c" → "a.b"; "a[]" → "a"; "a" → "". */
export function parentPattern(pattern: string): string {
  if (pattern.endsWith('[]')) return pattern.slice(0, -2);
  const dot = pattern.lastIndexOf('.');
  return dot < 0 ? '' : pattern.slice(0, dot);
}

const CHILDREN = new Map<string, string[]>();
for (const spec of ALL) {
  if (spec.path.endsWith('[]') || spec.path.endsWith('.*')) continue;
  const parent = parentPattern(spec.path);
  const name = parent === '' ? spec.path : spec.path.slice(parent.length + 1);
  CHILDREN.set(parent, [...(CHILDREN.get(parent) ?? []), name]);
}

/** The key names a section pattern accepts ('' = the top level). */
export function childKeys(pattern: string): readonly string[] {
  return CHILDREN.get(pattern) ?? [];
}
