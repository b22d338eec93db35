// Micro-cache: keep GET responses PHP explicitly marks shareable for a few seconds, like nginx's
// fastcgi_cache, so a burst on a hot page costs one PHP request. Off unless configured. Only PHP's
// responses are stored: never a static file, an error page or anything else the server answers.
//
// What is stored (all must hold):
// - a GET request without Authorization, Range or a session/login cookie (bypass_cookies: PHP's
//   PHPSESSID, WordPress's wordpress_logged_in_*, Laravel's laravel_session, ...), as nginx users
//   write `fastcgi_cache_bypass $cookie_…`: a logged-in user's page is theirs alone, and is neither
//   looked up nor stored (HEAD is answered from a stored GET; one that finds none asks PHP for
//   the GET and stores it, as nginx's fastcgi_cache_convert_head). With default_ttl set, any
//   cookie but the anonymous ones (anonymous_cookies: analytics and consent) bypasses too: a page
//   kept for saying nothing of its freshness may be one an app made for a session whose cookie no
//   list knows (Adminer's adminer_sid: a logged-in user's table data went to anonymous clients);
// - a response with a status RFC 9111 lets a shared cache keep (200, 203, 204, 300, 301, 308, 404,
//   405, 410, 414, 501), without Set-Cookie, without `Vary: *`, whose Cache-Control says neither
//   `private`, `no-store` nor `no-cache`, and that is fresh for a while:
//   - default_ttl unset (the default): only what PHP marks shareable, `s-maxage` > 0 or `public`
//     with `max-age` > 0;
//   - default_ttl set (`cache.max_age`, nginx's fastcgi_cache_valid): PHP's headers read as nginx
//     reads them, `s-maxage` or `max-age` (0: not stored), else `Expires` (past: not stored), and a
//     200 or 301 that says nothing of its freshness is kept default_ttl: a stock WordPress page,
//     which sends no Cache-Control, is cached as nginx's microcaching recipe caches it. PHP's
//     session_start() sends `no-store, no-cache`, so a page that opens a session never is;
//   - in both, `X-Accel-Expires` (nginx's header: seconds, `@` a Unix time, 0 never) comes first,
//     and is removed from the response;
// - a body PHP sent whole (a Buffer, a string, or BodyParts: a large one still in its chunks) of at
//   most max_entry_bytes. Streamed replies (the worker streams, or a file is piped) are never
//   stored: their size is unknown until the end, and holding a copy of every chunk would give a
//   slow client's stream a memory cost. They pass through.
//
// The key is scheme + Host + the request target (path and query as sent); `Vary` adds the values of
// the named request headers, so `Vary: Accept-Language` keeps one copy per language. The client's
// own Cache-Control is ignored (as nginx does): otherwise any client could bypass the cache at will.
//
// X-Cache says what happened (nginx's $upstream_cache_status):
//   HIT      served from a fresh entry (with Age);
//   MISS     no entry: PHP answered (and the answer was stored if it may be);
//   EXPIRED  the entry's time was up: PHP answered and the entry was refreshed;
//   STALE    the entry's time was up and another request is refreshing it right now: the old copy
//            is served meanwhile (stale_while_revalidate, as nginx's `fastcgi_cache_use_stale
//            updating`), so an expired hot page costs PHP one request, not one per client;
//   BYPASS   GET/HEAD that may not use the cache (Authorization, Range, a bypass cookie).
// The stale window of an entry is its response's `stale-while-revalidate=N` when it gives one, else
// the stale_while_revalidate option (default 0: off). `purge(prefix)` drops entries by path prefix
// (`warmpool cache purge` through the admin socket).
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerBase, RouteGenericInterface } from 'fastify';
import { LRUCache } from 'lru-cache';
import { parseDuration, type Duration } from '@warmpool/pool';
import {
  BodyParts,
  accelExpiresOf,
  InvalidOptionError,
  clientInfoOf,
  declaresBody,
  backendScriptOf,
  isBackendReply,
  markReusedBody,
  wildcardPattern,
} from '@warmpool/fastify';

type AnyRequest = FastifyRequest<RouteGenericInterface, RawServerBase>;
type AnyReply = FastifyReply<RouteGenericInterface, RawServerBase>;

export interface MicroCacheOptions {
  /** bytes all entries may take together (bodies + headers); default 64 MiB */
  max_bytes?: number;
  /** the largest single entry in bytes; bigger responses pass through; default 1 MiB (at most max_bytes) */
  max_entry_bytes?: number;
  /**
   * nginx's fastcgi_cache_valid: when set, PHP's caching headers are read as nginx reads them and a
   * 200 or 301 that gives no freshness of its own (no max-age, s-maxage or Expires) is kept this
   * long. Default 0: only responses PHP marks shareable (`public` with max-age, or s-maxage).
   */
  default_ttl?: Duration;
  /**
   * Cookie names whose presence on a request bypasses the cache (no lookup, no store); `*` matches
   * any characters (`wordpress_logged_in_*`). Default DEFAULT_BYPASS_COOKIES; [] bypasses on none.
   */
  bypass_cookies?: readonly string[];
  /**
   * With default_ttl: the only cookie names a request may carry and still use the cache (analytics
   * and consent cookies, set for anonymous visitors); any other bypasses. Default
   * DEFAULT_ANONYMOUS_COOKIES. Without default_ttl, only bypass_cookies are read.
   */
  anonymous_cookies?: readonly string[];
  /**
   * How long after expiry an entry may still be served (X-Cache: STALE) while one request refreshes
   * it; a response's own `stale-while-revalidate=N` wins. Default 0: off.
   */
  stale_while_revalidate?: Duration;
  /** where time comes from (ms); default Date. Tests pass a clock they move. */
  clock?: { now(): number };
  /** how long requests wait for another's answer to the same page; default FILL_WAIT_MS (tests) */
  fill_wait_ms?: number;
}

/**
 * Session and login cookies of the usual PHP applications: a request carrying one gets a page made
 * for that user. PHP sessions, WordPress (login, password-protected posts, comment author,
 * WooCommerce cart), Laravel and every framework's `*_session`, Drupal (SESS…/SSESS…).
 */
export const DEFAULT_BYPASS_COOKIES: readonly string[] = [
  'PHPSESSID',
  'wordpress_logged_in_*',
  'wordpress_sec_*',
  'wordpress_no_cache',
  'wp-postpass_*',
  'comment_author_*',
  'woocommerce_items_in_cart',
  'wp_woocommerce_session_*',
  'laravel_session',
  '*_session',
  'SESS*',
  'SSESS*',
];

/**
 * Cookies anonymous visitors carry that change no page: analytics (Google, Meta, Hotjar, Matomo,
 * Clarity), cookie-consent banners, WordPress's login-form test cookie.
 */
export const DEFAULT_ANONYMOUS_COOKIES: readonly string[] = [
  '_ga',
  '_ga_*',
  '_gid',
  '_gat*',
  '_gcl_*',
  '__utm*',
  '_fbp',
  '_fbc',
  '_hj*',
  '_pk_*',
  '_clck',
  '_clsk',
  'cookieyes-consent',
  'CookieConsent',
  'cookielawinfo-*',
  'cmplz_*',
  'euconsent-v2',
  'wordpress_test_cookie',
];

export const DEFAULT_MICRO_CACHE_MAX_BYTES = 64 * 1024 * 1024;
export const DEFAULT_MICRO_CACHE_MAX_ENTRY_BYTES = 1024 * 1024;

/** What registerMicroCache returns, for metrics and tests. */
export interface MicroCache {
  /** entries stored now (responses and their Vary records) */
  readonly entries: number;
  /** bytes counted against max_bytes now */
  readonly bytes: number;
  clear(): void;
  /** Drops the entries whose request target (path and query) starts with `prefix` (all without one); returns how many. */
  purge(prefix?: string): number;
  /** requests waiting now for another's answer to the same page */
  readonly waiting: number;
}

/** X-Cache values. */
export type CacheStatus = 'HIT' | 'MISS' | 'EXPIRED' | 'STALE' | 'BYPASS';

/** Statuses a shared cache may store with explicit freshness (RFC 9111 §3, "heuristically cacheable"). */
const CACHEABLE_STATUS = new Set([200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501]);
/** Statuses kept default_ttl when PHP says nothing of freshness (nginx's `fastcgi_cache_valid 200 301`). */
const DEFAULT_TTL_STATUS = new Set([200, 301]);
const NO_DIRECTIVES: ReadonlyMap<string, string | null> = new Map();
/**
 * Headers that describe one response on one connection, or that other hooks set per request. PHP's
 * own CORS headers are kept (WordPress's REST API sends them with Vary: Origin, one copy each):
 * dropped, a cross-origin front end failed on every hit; http.headers.cors adds its own after the
 * store, on hits too.
 */
const NOT_STORED = new Set([
  'age',
  'x-cache',
  'date',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'x-request-id',
]);
/** What a 304 carries of the stored headers (RFC 9110 §15.4.5): no content headers. */
const NOT_MODIFIED_HEADERS = new Set(['cache-control', 'content-location', 'etag', 'expires', 'vary', 'last-modified']);
/** Per-entry bookkeeping counted on top of the bytes we can see. */
const ENTRY_OVERHEAD_BYTES = 256;

type HeaderValue = string | string[];

interface Entry {
  status: number;
  headers: Array<[string, HeaderValue]>;
  body: Buffer;
  etag: string | null;
  /** Last-Modified as a time (ms), for If-Modified-Since; null when none or not a date */
  lastModified: number | null;
  storedAt: number;
  expiresAt: number;
  /** until when it may be served STALE while a request refreshes it */
  staleUntil: number;
  /** the classic script that answered ("/index.php" for "/"): its rules meet every hit; null: a worker's */
  script: string | null;
}

/** The request header names a key's responses vary on (lower-case), stored under the key without them. */
interface VaryRecord {
  vary: string[];
}

type Slot = Entry | VaryRecord;

interface Lookup {
  /** scheme://host/target */
  primary: string;
  hit: boolean;
  /** what X-Cache says when PHP answers */
  status: 'MISS' | 'EXPIRED';
  /** the entry key this request refreshes (others get it STALE meanwhile) */
  refreshing: string | null;
  /** the entry key this request fills (others asking for it wait for its answer) */
  filling: string | null;
  /** a HEAD asked of PHP as a GET, to fill the entry (nginx's fastcgi_cache_convert_head) */
  headAsGet: boolean;
  /** the client's validators, kept from PHP while this request fills or refreshes; null: none */
  validators: Record<string, string> | null;
}

/**
 * The validators nginx takes off a request that fills its cache: PHP answers it whole, that is kept,
 * and the client's conditional is answered from what was kept. An app that answers 304 itself (a
 * feed, DokuWiki, Symfony's isNotModified) otherwise left nothing to keep, and for a while after
 * every request for the page went to PHP (a browser's reload was enough to undo the fill lock).
 */
const VALIDATORS = ['if-none-match', 'if-modified-since', 'if-match', 'if-unmodified-since'];

/** Takes the validators off `headers`; what was taken, or null. */
function takeValidators(headers: AnyRequest['headers']): Record<string, string> | null {
  let taken: Record<string, string> | null = null;
  for (const name of VALIDATORS) {
    const value = headers[name];
    if (typeof value !== 'string') continue;
    taken ??= {};
    taken[name] = value;
    delete headers[name];
  }
  return taken;
}

/** A request gone to PHP for an entry no one has: the requests for it meanwhile, waiting. */
interface Fill {
  waiters: Array<() => void>;
  timer: NodeJS.Timeout;
}

/** How long requests wait for another's answer before going to PHP themselves (nginx's fastcgi_cache_lock_timeout). */
export const FILL_WAIT_MS = 5000;
/** How long a key PHP answered uncacheably is not waited for (a page that is never stored is never queued). */
export const PASS_MS = 10_000;
/** Keys remembered as uncacheable at most. */
const PASS_KEYS = 10_000;

interface Resolved {
  maxBytes: number;
  maxEntryBytes: number;
  defaultTtlMs: number;
  /** matches a cookie name that bypasses the cache; null: none does */
  bypassCookie: RegExp | null;
  /** with default_ttl: the cookies that do not bypass (any other does); null: no such rule */
  anonymousCookie: RegExp | null;
  staleMs: number;
}

/**
 * Adds the micro-cache to `app` (an encapsulated site instance): hits are served in preParsing,
 * misses are stored in onSend. Call it before registering the warmpool plugin, proxies and
 * compression in the same instance:
 * - preParsing, not onRequest: the plugin's access rules and limits run in onRequest, so a hit is
 *   never served to a client they would refuse; those of the classic script a page came from, when
 *   it is not the path asked (the index of "/"), are run on each hit (warmpool.admitScript), as the
 *   plugin runs them on the way to PHP;
 * - its onSend runs before compression's, so it stores the body PHP sent, not a compressed stream,
 *   and before CORS/request-id headers are set (which are per request and never stored).
 */
export function registerMicroCache<S extends RawServerBase>(
  app: FastifyInstance<S>,
  options: MicroCacheOptions = {},
): MicroCache {
  const { maxBytes, maxEntryBytes, defaultTtlMs, bypassCookie, anonymousCookie, staleMs } =
    resolveMicroCacheOptions(options);
  const clock = options.clock ?? Date;
  const fillWaitMs = options.fill_wait_ms ?? FILL_WAIT_MS;
  const cache = new LRUCache<string, Slot>({
    ...(options.clock === undefined ? {} : { perf: options.clock, ttlResolution: 0 }),
    maxSize: maxBytes,
    maxEntrySize: maxEntryBytes,
    sizeCalculation: (slot, key) =>
      ('vary' in slot ? key.length + slot.vary.join().length : entryBytes(slot, key)) + ENTRY_OVERHEAD_BYTES,
  });
  const lookups = new WeakMap<AnyRequest, Lookup>();
  /** entry keys a request is refreshing now: others get the stale copy meanwhile */
  const refreshing = new Set<string>();
  /**
   * Entry keys a request is filling now (nginx's fastcgi_cache_lock): a burst on a page no one
   * has (new, expired with no stale window, purged) costs PHP one request, not one per client.
   */
  const fills = new Map<string, Fill>();
  /** keys PHP answered uncacheably a moment ago: their requests go to PHP at once, never queued */
  const passes = new LRUCache<string, true>({
    max: PASS_KEYS,
    ttl: PASS_MS,
    ...(options.clock === undefined ? {} : { perf: options.clock, ttlResolution: 0 }),
  });

  /** The fill of `key` is over: its waiters look again (a HIT now, or PHP). */
  function endFill(key: string, verdict: 'stored' | 'pass' | 'gone'): void {
    const fill = fills.get(key);
    if (fill === undefined) return;
    fills.delete(key);
    clearTimeout(fill.timer);
    if (verdict === 'pass') passes.set(key, true);
    // after the filler's own hook is done: a waiter's hit runs its own hooks
    if (fill.waiters.length > 0)
      process.nextTick(() => {
        for (const wake of fill.waiters) wake();
      });
  }

  /** Serves a hit, or sends the request on to PHP (`done`), or has it wait for a fill first. */
  function answer(request: AnyRequest, reply: AnyReply, lookup: Lookup, proceed: () => void, mayWait: boolean): void {
    const { key, entry } = locate(cache, lookup.primary, request);
    const now = clock.now();
    if (entry !== null && (entry.expiresAt > now || (now < entry.staleUntil && refreshing.has(key)))) {
      lookup.hit = true;
      serveHit(request, reply, entry, entry.expiresAt > now ? 'HIT' : 'STALE', now);
      return;
    }
    if (entry !== null) {
      lookup.status = 'EXPIRED';
      if (now < entry.staleUntil && request.method === 'GET') {
        // this request refreshes the entry; until its reply is done, others get the stale copy
        refreshing.add(key);
        lookup.refreshing = key;
        lookup.validators = takeValidators(request.headers);
        // the reply is done (onResponse) or its client left (close): the next request may refresh
        reply.raw.once('close', () => refreshing.delete(key));
        proceed();
        return;
      }
    }
    if (mayWait && !passes.has(key)) {
      const fill = fills.get(key);
      if (fill !== undefined) {
        fill.waiters.push(() => answer(request, reply, lookup, proceed, false));
        return;
      }
      // a HEAD no one has the page for fills it too, asked as a GET (nginx's fastcgi_cache_convert_head):
      // a monitor's HEADs each ran PHP; Node still sends the HEAD no body
      if (request.method === 'HEAD') {
        setMethod(request, 'GET');
        lookup.headAsGet = true;
      }
      // a GET with a body never fills: a client trickling one would keep the others waiting
      if (request.method === 'GET' && !declaresBody(request.headers)) {
        const timer = setTimeout(() => endFill(key, 'gone'), fillWaitMs);
        timer.unref();
        fills.set(key, { waiters: [], timer });
        lookup.filling = key;
        lookup.validators = takeValidators(request.headers);
        // its client left, or it failed before an answer: the waiters go on
        reply.raw.once('close', () => endFill(key, 'gone'));
      }
    }
    proceed();
  }

  app.addHook('preParsing', (request, reply, payload, done) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return done(null, payload);
    if (
      request.headers.authorization !== undefined ||
      request.headers.range !== undefined ||
      (bypassCookie !== null && hasCookie(request.headers.cookie, bypassCookie)) ||
      (anonymousCookie !== null && hasOtherCookie(request.headers.cookie, anonymousCookie))
    ) {
      reply.header('x-cache', 'BYPASS');
      return done(null, payload);
    }
    const lookup: Lookup = {
      primary: primaryKey(request),
      hit: false,
      status: 'MISS',
      refreshing: null,
      filling: null,
      headAsGet: false,
      validators: null,
    };
    lookups.set(request, lookup);
    answer(request, reply, lookup, () => done(null, payload), true);
  });

  app.addHook('onResponse', (request, _reply, done) => {
    const key = lookups.get(request)?.refreshing;
    if (key !== null && key !== undefined) refreshing.delete(key);
    done();
  });

  app.addHook('onSend', (request, reply, payload, done) => {
    // nginx's own caching header is the cache's to read, never the client's (nginx drops it too):
    // PHP's was taken off its reply already (send-response.ts), another route's is here
    const accelExpires = accelExpiresOf(reply) ?? headerText(reply.getHeader('x-accel-expires'));
    reply.removeHeader('x-accel-expires');
    const lookup = lookups.get(request);
    if (lookup === undefined || lookup.hit) return done(null, payload);
    const stored = store(request, reply, payload, lookup, accelExpires);
    // a HEAD again for what follows (compression, logs)
    if (lookup.headAsGet) setMethod(request, 'HEAD');
    // stored or not, the requests waiting for this answer look again: a HIT, or PHP themselves
    if (lookup.filling !== null) endFill(lookup.filling, stored !== null ? 'stored' : 'pass');
    const validators = lookup.validators;
    if (validators === null) return done(null, payload);
    Object.assign(request.headers, validators);
    // the client's conditional, answered from what was kept, as for a hit; else from the answer
    // itself: a static file's, an upstream's, a page not kept (before: a whole 200 for each)
    const status = conditionalStatus(request.headers, stored ?? validatorsOf(reply));
    if (status === 200) return done(null, payload);
    reply.code(status).removeHeader('content-type').removeHeader('content-length');
    (payload as { destroy?: () => void } | null)?.destroy?.();
    done(null, null);
  });

  /** Keeps PHP's answer when it may be kept: the entry, or null when it was not. */
  function store(
    request: AnyRequest,
    reply: AnyReply,
    payload: unknown,
    lookup: Lookup,
    accelExpires: string | null,
  ): Entry | null {
    // PHP's pages only: a static file has its own validators, and would be served stale after a deploy
    if (!isBackendReply(request)) return null;
    reply.header('x-cache', lookup.status);
    // a body PHP sent whole: a string, a Buffer, or BodyParts (a large one, still in its chunks)
    if (
      request.method !== 'GET' ||
      !(typeof payload === 'string' || Buffer.isBuffer(payload) || payload instanceof BodyParts)
    )
      return null;
    const now = clock.now();
    const fresh = freshFor(reply, accelExpires, defaultTtlMs, staleMs, now);
    if (fresh === null) return null;
    const vary = varyOf(reply);
    if (vary === null) return null;
    // a CORS grant to one origin (not "*") that does not say it varies by Origin: kept, it was
    // served to every other origin, the first requester's grant for the whole TTL
    if (grantsOneOrigin(reply) && !vary.includes('origin')) return null;
    if ((typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length) > maxEntryBytes) return null;
    // always a copy: a classic body's memory is reused once its response closes (recycle_response_memory)
    const body = Buffer.from(
      typeof payload === 'string' ? payload : payload instanceof BodyParts ? payload.join() : payload,
    );
    // sent as is on every hit: a compressed copy of it may be kept with it (compressed-variants.ts)
    markReusedBody(body);
    const entry: Entry = {
      status: reply.statusCode,
      headers: storedHeaders(reply),
      body,
      etag: headerText(reply.getHeader('etag')),
      lastModified: httpDate(headerText(reply.getHeader('last-modified'))),
      storedAt: now,
      expiresAt: now + fresh.ttlMs,
      staleUntil: now + fresh.ttlMs + fresh.staleMs,
      script: backendScriptOf(request),
    };
    // kept past its stale window as long again as it was fresh: a request then says EXPIRED, not MISS
    const ttl = 2 * fresh.ttlMs + fresh.staleMs;
    if (vary.length > 0) cache.set(`v\n${lookup.primary}`, { vary }, { ttl });
    else cache.delete(`v\n${lookup.primary}`);
    const key = entryKey(lookup.primary, vary, request);
    cache.set(key, entry, { ttl });
    passes.delete(key);
    return entry;
  }

  return {
    get entries() {
      return cache.size;
    },
    get bytes() {
      return cache.calculatedSize;
    },
    get waiting() {
      let count = 0;
      for (const fill of fills.values()) count += fill.waiters.length;
      return count;
    },
    clear: () => cache.clear(),
    purge(prefix) {
      cache.purgeStale();
      let purged = 0;
      for (const key of [...cache.keys()]) {
        const entry = key.startsWith('e\n');
        const target = targetOf(entry ? key.slice(2).split('\n', 1)[0]! : key.slice(2));
        if (prefix !== undefined && !target.startsWith(prefix)) continue;
        cache.delete(key);
        if (entry) purged++;
      }
      return purged;
    },
  };
}

/** Checks and resolves the options once; errors name the key (micro_cache.max_bytes, ...). */
export function resolveMicroCacheOptions(options: MicroCacheOptions): Resolved {
  const bytes = (key: 'max_bytes' | 'max_entry_bytes', fallback: number): number => {
    const value = options[key] ?? fallback;
    if (!(typeof value === 'number' && Number.isInteger(value) && value > 0)) {
      throw new InvalidOptionError(
        `micro_cache.${key}`,
        `must be a positive whole number of bytes, got ${JSON.stringify(value)}`,
      );
    }
    return value;
  };
  const maxBytes = bytes('max_bytes', DEFAULT_MICRO_CACHE_MAX_BYTES);
  const maxEntryBytes = bytes('max_entry_bytes', Math.min(DEFAULT_MICRO_CACHE_MAX_ENTRY_BYTES, maxBytes));
  if (maxEntryBytes > maxBytes)
    throw new InvalidOptionError(
      'micro_cache.max_entry_bytes',
      `must not exceed micro_cache.max_bytes (${maxBytes}), got ${maxEntryBytes}`,
    );
  let defaultTtlMs = 0;
  if (options.default_ttl !== undefined) {
    try {
      defaultTtlMs = parseDuration(options.default_ttl, 'micro_cache.default_ttl');
    } catch (error) {
      throw InvalidOptionError.from('micro_cache.default_ttl', error);
    }
  }
  const cookies = cookieNames(options.bypass_cookies ?? DEFAULT_BYPASS_COOKIES, 'micro_cache.bypass_cookies');
  const anonymous = cookieNames(
    options.anonymous_cookies ?? DEFAULT_ANONYMOUS_COOKIES,
    'micro_cache.anonymous_cookies',
  );
  let staleMs = 0;
  if (options.stale_while_revalidate !== undefined) {
    try {
      staleMs = parseDuration(options.stale_while_revalidate, 'micro_cache.stale_while_revalidate');
    } catch (error) {
      throw InvalidOptionError.from('micro_cache.stale_while_revalidate', error);
    }
  }
  return {
    maxBytes,
    maxEntryBytes,
    defaultTtlMs,
    bypassCookie: wildcardPattern(cookies),
    // [] matches no name: then every cookie bypasses
    anonymousCookie: defaultTtlMs > 0 ? (wildcardPattern(anonymous) ?? /(?!)/) : null,
    staleMs,
  };
}

function cookieNames(names: unknown, key: string): readonly string[] {
  if (
    !Array.isArray(names) ||
    names.some((name) => typeof name !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name))
  )
    throw new InvalidOptionError(
      key,
      `must be a list of cookie names ("*" matches any characters), got ${JSON.stringify(names)}`,
    );
  return names as readonly string[];
}

/** The method Fastify and the plugin read (node:http's and HTTP/2's both let it be set). */
function setMethod(request: AnyRequest, method: string): void {
  (request.raw as { method: string }).method = method;
}

/**
 * Whether the Cookie header names a cookie matching `pattern` (values are not looked at), as sent
 * or as PHP names it in $_COOKIE: `comment_author.HASH` is PHP's `comment_author_HASH`, and a
 * client spelling a session cookie so must not have its own page stored for everyone.
 */
export function hasCookie(header: string | undefined, pattern: RegExp): boolean {
  if (header === undefined || header === '') return false;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    const name = (eq === -1 ? pair : pair.slice(0, eq)).trim();
    if (name === '') continue;
    if (pattern.test(name)) return true;
    const php = phpVariableName(name);
    if (php !== name && pattern.test(php)) return true;
  }
  return false;
}

/** The Cookie header names a cookie `pattern` does not match (checked by the name as sent). */
export function hasOtherCookie(header: string | undefined, pattern: RegExp): boolean {
  if (header === undefined || header === '') return false;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    const name = (eq === -1 ? pair : pair.slice(0, eq)).trim();
    if (name !== '' && !pattern.test(name)) return true;
  }
  return false;
}

/**
 * A request variable's name as PHP registers it (php_register_variable_ex): ` ` and `.` become
 * `_`; `a[b]` is the array `a`; a `[` with no `]` after it becomes `_` too.
 */
export function phpVariableName(name: string): string {
  let out = '';
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c === ' ' || c === '.') out += '_';
    else if (c === '[') {
      if (name.indexOf(']', i + 1) !== -1) return out;
      out += '_';
    } else out += c;
  }
  return out;
}

function primaryKey(request: AnyRequest): string {
  // the request's one scheme and host (client-info.ts): the site was chosen by it and PHP sees it
  const { scheme, host } = clientInfoOf(request.raw);
  return `${scheme}://${host.toLowerCase()}${request.url}`;
}

function entryKey(primary: string, vary: readonly string[], request: AnyRequest): string {
  let key = `e\n${primary}`;
  for (const name of vary) {
    const value = request.headers[name];
    key += `\n${Array.isArray(value) ? value.join(', ') : (value ?? '')}`;
  }
  return key;
}

/** "scheme://host/path?q" → "/path?q". */
function targetOf(primary: string): string {
  const slash = primary.indexOf('/', primary.indexOf('://') + 3);
  return slash === -1 ? '/' : primary.slice(slash);
}

/** The entry key of this request (its Vary'd header values included) and its entry, fresh or not (null: none). */
function locate(
  cache: LRUCache<string, Slot>,
  primary: string,
  request: AnyRequest,
): { key: string; entry: Entry | null } {
  const record = cache.get(`v\n${primary}`);
  const key = entryKey(primary, record !== undefined && 'vary' in record ? record.vary : [], request);
  const slot = cache.get(key);
  return { key, entry: slot === undefined || 'vary' in slot ? null : slot };
}

/**
 * A hit, after the rules of the script it came from: an access rule on /status/index.php refused
 * "/status/" to others, but its kept page was served to them (a probe); limit_req on the script
 * counted no hit. The rules of the path asked ran in onRequest.
 */
function serveHit(request: AnyRequest, reply: AnyReply, entry: Entry, status: 'HIT' | 'STALE', now: number): void {
  const admitted =
    entry.script === null
      ? true
      : (reply.server as FastifyInstance).warmpool?.admitScript(
          request as FastifyRequest,
          reply as FastifyReply,
          entry.script,
        );
  if (admitted === true || admitted === undefined) sendHit(request, reply, entry, status, now);
  else if (admitted instanceof Promise)
    admitted.then(
      (ok) => {
        if (ok) sendHit(request, reply, entry, status, now);
      },
      (error: Error) => reply.send(error),
    );
  // false: answered (403, 429, 401)
}

function sendHit(request: AnyRequest, reply: AnyReply, entry: Entry, status: 'HIT' | 'STALE', now: number): void {
  const conditional = conditionalStatus(request.headers, entry);
  if (conditional === 412) {
    reply.header('x-cache', status);
    reply.code(412).send();
    return;
  }
  const notModified = conditional === 304;
  for (const [name, value] of entry.headers)
    if (!notModified || NOT_MODIFIED_HEADERS.has(name)) reply.header(name, value);
  reply.header('age', String(Math.floor((now - entry.storedAt) / 1000)));
  reply.header('x-cache', status);
  if (notModified) {
    reply.code(304).send();
    return;
  }
  reply.code(entry.status).send(entry.body);
}

/** What a conditional is checked against: a kept entry, or an answer's own headers. */
type Validated = Pick<Entry, 'status' | 'etag' | 'lastModified'>;

/** An answer's status, ETag and Last-Modified, to check a conditional against. */
function validatorsOf(reply: AnyReply): Validated {
  return {
    status: reply.statusCode,
    etag: headerText(reply.getHeader('etag')),
    lastModified: httpDate(headerText(reply.getHeader('last-modified'))),
  };
}

/**
 * The answer to a GET's preconditions against a 200, kept or being sent (RFC 9110 13.2.2): 412
 * when If-Match (strong comparison), else If-Unmodified-Since, fails; 304 when not modified; else 200.
 */
function conditionalStatus(headers: AnyRequest['headers'], entry: Validated): 200 | 304 | 412 {
  if (entry.status !== 200) return 200;
  const ifMatch = headers['if-match'];
  if (ifMatch !== undefined) {
    if (!matchesStrongly(ifMatch, entry.etag)) return 412;
  } else {
    const since = httpDate(headers['if-unmodified-since']);
    // no date of its own: ignored (RFC 9110 13.1.4)
    if (since !== null && entry.lastModified !== null && entry.lastModified > since) return 412;
  }
  return isNotModified(headers, entry) ? 304 : 200;
}

/** If-Match: `*`, or a listed strong tag equal to our strong one (RFC 9110 §13.1.1). */
function matchesStrongly(header: string, etag: string | null): boolean {
  if (header.trim() === '*') return true;
  if (etag === null || etag.startsWith('W/')) return false;
  return header.split(',').some((tag) => tag.trim() === etag);
}

/**
 * RFC 9110 13.2.2: If-None-Match when sent (If-Modified-Since is then ignored), else
 * If-Modified-Since against the entry's Last-Modified (a feed that sends only Last-Modified gets
 * its 304 from the cache, as from nginx's).
 */
function isNotModified(headers: AnyRequest['headers'], entry: Validated): boolean {
  const ifNoneMatch = headers['if-none-match'];
  if (ifNoneMatch !== undefined) return entry.etag !== null && matchesEtag(ifNoneMatch, entry.etag);
  const since = httpDate(headers['if-modified-since']);
  // a date later than the clock is invalid (RFC 9110 13.1.3)
  return since !== null && since <= Date.now() && entry.lastModified !== null && entry.lastModified <= since;
}

/** An HTTP date as ms; null when absent or not a date. */
function httpDate(value: string | null | undefined): number | null {
  if (value === null || value === undefined) return null;
  const time = Date.parse(value);
  return Number.isNaN(time) ? null : time;
}

/** If-None-Match with weak comparison (RFC 9110 §13.1.2): `*` or any listed tag equal to ours, W/ ignored. */
function matchesEtag(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  if (header.trim() === '*') return true;
  const ours = etag.replace(/^W\//, '');
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === ours);
}

/**
 * How long the response may be shared, in ms, and how long after that it may be served stale while
 * a request refreshes it; null when it must not be stored. `now`: the cache's clock, for Expires.
 */
function freshFor(
  reply: AnyReply,
  accelExpires: string | null,
  defaultTtlMs: number,
  staleMs: number,
  now: number,
): { ttlMs: number; staleMs: number } | null {
  // every path below keeps only these (DEFAULT_TTL_STATUS is a subset)
  if (!CACHEABLE_STATUS.has(reply.statusCode) || reply.hasHeader('set-cookie')) return null;
  const header = headerText(reply.getHeader('cache-control'));
  const directives = header === null ? NO_DIRECTIVES : parseCacheControl(header);
  if (directives.has('private') || directives.has('no-store') || directives.has('no-cache')) return null;
  const stale = seconds(directives.get('stale-while-revalidate'));
  const window = stale === null ? staleMs : stale * 1000;
  const lifetime = (ms: number) => (ms > 0 ? { ttlMs: ms, staleMs: window } : null);
  // X-Accel-Expires, written for nginx's cache, comes first as nginx reads it: seconds, "@" and a
  // Unix time, 0 for never (an app's "do not cache this" under fastcgi_cache_valid); not a number: ignored
  const accelMs = accelExpiresMs(accelExpires, now);
  if (accelMs !== null) return lifetime(accelMs);
  const sMaxAge = seconds(directives.get('s-maxage'));
  const maxAge = seconds(directives.get('max-age'));
  if (defaultTtlMs === 0) {
    // only what PHP marks shareable
    if (sMaxAge !== null) return lifetime(sMaxAge * 1000);
    return directives.has('public') && maxAge !== null ? lifetime(maxAge * 1000) : null;
  }
  // fastcgi_cache_valid: PHP's own freshness first, as nginx reads it (public or not)
  const own = sMaxAge ?? maxAge;
  if (own !== null) return lifetime(own * 1000);
  const expires = headerText(reply.getHeader('expires'));
  if (expires !== null) {
    const at = httpDate(expires);
    return at === null ? null : lifetime(at - now);
  }
  return DEFAULT_TTL_STATUS.has(reply.statusCode) ? lifetime(defaultTtlMs) : null;
}

/** X-Accel-Expires as a lifetime in ms from `now` (0 or less: not kept); null when absent or no number. */
function accelExpiresMs(value: string | null, now: number): number | null {
  if (value === null) return null;
  const text = value.trim();
  const at = text.startsWith('@') ? seconds(text.slice(1)) : null;
  if (at !== null) return at * 1000 - now;
  const relative = seconds(text);
  return relative === null ? null : relative * 1000;
}

/** Cache-Control directives by lower-case name; quoted values unquoted; commas inside quotes kept. */
export function parseCacheControl(header: string): Map<string, string | null> {
  const directives = new Map<string, string | null>();
  const re = /\s*([^\s=,]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*)))?\s*(?:,|$)/gy;
  for (let m = re.exec(header); m !== null && m[0] !== ''; m = re.exec(header)) {
    const name = m[1]!.toLowerCase();
    if (!directives.has(name)) directives.set(name, m[2] ?? m[3] ?? null);
  }
  return directives;
}

function seconds(value: string | null | undefined): number | null {
  if (value === undefined || value === null || !/^\d+$/.test(value)) return null;
  return Number(value);
}

/** PHP's Access-Control-Allow-Origin names an origin (not `*`). */
function grantsOneOrigin(reply: AnyReply): boolean {
  const origin = headerText(reply.getHeader('access-control-allow-origin'));
  return origin !== null && origin.trim() !== '*';
}

/** The Vary'd request header names (lower-case, sorted); null for `Vary: *` (never stored). */
function varyOf(reply: AnyReply): string[] | null {
  const header = reply.getHeader('vary');
  if (header === undefined) return [];
  const names = (Array.isArray(header) ? header.join(',') : String(header))
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter(Boolean);
  if (names.includes('*')) return null;
  return [...new Set(names)].sort();
}

function storedHeaders(reply: AnyReply): Array<[string, HeaderValue]> {
  const headers: Array<[string, HeaderValue]> = [];
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value === undefined || NOT_STORED.has(name)) continue;
    headers.push([name, Array.isArray(value) ? value.map(String) : String(value)]);
  }
  return headers;
}

function headerText(value: ReturnType<AnyReply['getHeader']>): string | null {
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(', ') : String(value);
}

function entryBytes(entry: Entry, key: string): number {
  let bytes = entry.body.length + key.length;
  for (const [name, value] of entry.headers)
    bytes += name.length + (Array.isArray(value) ? value.join('').length : value.length);
  return bytes;
}
