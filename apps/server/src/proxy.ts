// Reverse-proxy routes, like nginx's `location /api/ { proxy_pass http://127.0.0.1:9000; }`:
// requests under a prefix go to an upstream HTTP server (and WebSocket upgrades with them) instead
// of PHP. A thin layer over @fastify/http-proxy (itself over @fastify/reply-from and undici).
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import { Readable, Transform } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerBase, RouteGenericInterface } from 'fastify';
import { parseDuration, streamsOnPurpose, type Duration, type HeaderMap } from '@warmpool/pool';
import type { RecordProxied } from './site-traffic.js';
import { tunnel, type Upgrade, upgradeListener, upgradeOf } from './websocket-tunnel.js';
import { clientLeft, createUpstreamDispatcher, watchClientGone, withClientGone } from './upstream-dispatcher.js';
import { isConnectFailure, UpstreamBalancer } from './upstream-balancer.js';
import {
  DEFAULT_STREAM_REQUEST_TIMEOUT_MS,
  type ErrorPages,
  InvalidOptionError,
  REQUEST_METHODS,
  addRequestMethods,
  clientInfoOf,
  guardStreamBody,
  guardBodyPace,
  DEFAULT_BODY_TIMEOUT_MS,
  handoffOf,
  recordWhenClosed,
  markBackendReply,
  registerErrorPages,
  registerPlainErrors,
  type ResolvedInternalFiles,
  sendInternalFile,
  SERVER_INSTRUCTION_HEADERS,
  TransferEncodingError,
  whenAdmitted,
  pipelinedTurn,
  REPLY_HOP_HEADERS,
  plainAddress,
  noteUnbuffered,
  resetOnError,
  sendHeadAtOnce,
} from '@warmpool/fastify';

/** One `proxy:` entry of warmpool.yaml. */
export interface ProxyRoute {
  /** path prefix, on segment boundaries: `/api` takes `/api` and `/api/…`, not `/apiary` */
  prefix: string;
  /**
   * `http://host:port` or `https://…`, optionally with a path; or a list of them, all with the same
   * path, taken round robin (nginx's `upstream` block; one refusing connections sits out 10 s)
   */
  upstream: string | readonly string[];
  /**
   * What replaces the prefix in the upstream path. Default, as nginx's proxy_pass: an upstream
   * without a path gets the request path unchanged (`/api/users` → `/api/users`); an upstream with a
   * path puts that path in place of the prefix (`http://h:9000/v1` → `/v1/users`). `''` strips the
   * prefix (`/users`).
   */
  rewrite_prefix?: string;
  /** forward WebSocket upgrades under the prefix too; default false */
  websocket?: boolean;
  /** send the upstream the client's Host (nginx `proxy_set_header Host $host`); default false: the upstream's own (nginx's default) */
  preserve_host?: boolean;
  /** the longest wait for the upstream's response headers, and between two body chunks; default 60s (nginx proxy_read_timeout) */
  timeout?: Duration;
  /** a proxied WebSocket with no traffic either way for this long is closed; 0 = never; default 60s (nginx's proxy_read_timeout on a tunnel) */
  websocket_idle_timeout?: Duration;
}

export const DEFAULT_PROXY_TIMEOUT_MS = 60_000;
export const DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS = 60_000;

type AnyRequest = FastifyRequest<RouteGenericInterface, RawServerBase>;
type AnyReply = FastifyReply<RouteGenericInterface, RawServerBase>;

interface ResolvedRoute {
  prefix: string;
  /** the first upstream, origin and path: the base reply-from builds a request's URL on */
  upstream: string;
  /** every upstream's origin, in the order configured; one for a route of one upstream */
  origins: readonly string[];
  /** the upstreams as metrics and logs name them: `http://a:1, http://b:2` */
  label: string;
  rewritePrefix: string;
  websocket: boolean;
  preserveHost: boolean;
  timeoutMs: number;
  /** 0: never */
  webSocketIdleMs: number;
}

/** What a site's proxy routes take from the site: each one's default is the plugin's own. */
export interface ProxySiteOptions {
  /** the site's error_pages: an upstream that is down or too slow gets the 502 / 504 page, as nginx's */
  errorPages?: ErrorPages;
  /** the site's max_request_size in bytes: a larger body gets 413 and never reaches the upstream (nginx's client_max_body_size) */
  maxRequestBytes?: number;
  /** /metrics: the counter of a route's responses, by its upstream; null or unset when metrics are off */
  countRoute?: ((upstream: string) => RecordProxied) | null;
  /** the site's request_timeout: an HTTP/2 body still arriving after it is cut, as for PHP */
  streamTimeoutMs?: number;
  /** http.body_timeout: a client silent that long in the middle of its body is cut (408), as for PHP */
  bodyTimeoutMs?: number;
  /** the site's internal_files: an upstream's X-Accel-Redirect / X-Sendfile sends a file from there, as nginx */
  internalFiles?: ResolvedInternalFiles | null;
  /** http.real_ip_header: a trusted proxy's Forwarded is passed on when it is the one read (real_ip_header: Forwarded) */
  realIpHeader?: string | undefined;
  /** the site's http.access, limit_req and auth_basic (the plugin's admit): false when it answered 403, 429 or 401 */
  admit?: ((request: FastifyRequest, reply: FastifyReply) => boolean | Promise<boolean>) | null;
}

/**
 * Registers one @fastify/http-proxy per route in `app` (a site's instance). Routes are checked
 * first, all of them, so a bad entry fails the boot with its index named and nothing registered.
 * Proxy routes are more specific than the warmpool plugin's catch-all, so they win over PHP.
 *
 * The module is imported here and registered as a function, never as the import() promise: avvio
 * (9.x) loads a promise plugin against the context that is current when the promise settles, and
 * in a plugin that already awaited a register (a site awaits the warmpool plugin) that context is
 * gone, so the app never became ready.
 */
export async function registerProxies<S extends RawServerBase>(
  app: FastifyInstance<S>,
  routes: readonly ProxyRoute[],
  site: ProxySiteOptions = {},
): Promise<void> {
  const errorPages = site.errorPages ?? null;
  const maxRequestBytes = site.maxRequestBytes ?? Number.POSITIVE_INFINITY;
  const countRoute = site.countRoute ?? null;
  const streamTimeoutMs = site.streamTimeoutMs ?? DEFAULT_STREAM_REQUEST_TIMEOUT_MS;
  const bodyTimeoutMs = site.bodyTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
  const internalFiles = site.internalFiles ?? null;
  const admit = site.admit ?? null;
  const keepForwarded = (site.realIpHeader ?? '').toLowerCase() === 'forwarded';
  const resolved = resolveProxyRoutes(routes);
  if (resolved.length === 0) return;
  // loaded only when a route is configured: it brings undici and ws (about 130 modules)
  const { default: httpProxy } = await import('@fastify/http-proxy');
  // Fastify routes only the methods it was told of (WebDAV's are added once for the whole app)
  addRequestMethods(app as unknown as FastifyInstance);
  // WebSocket upgrades through the router to their route (the server's upgrade.ts takes this listener
  // over on its public listeners), one listener for every site's routes
  if (resolved.some((route) => route.websocket) && !routedUpgrades.has(app.server)) {
    routedUpgrades.add(app.server);
    const routing = (app as unknown as { routing: (req: IncomingMessage, res: ServerResponse) => void }).routing;
    app.server.on('upgrade', upgradeListener(routing));
  }
  for (const route of resolved) {
    const record = countRoute?.(route.label) ?? null;
    // one for the route's requests and its WebSocket upgrades: a refusal of either passes that upstream over
    const balancer = route.origins.length > 1 ? new UpstreamBalancer(route.origins) : null;
    // each route in a scope of its own, whose hook counts its responses (the plugin counts only its own)
    app.register(async (scope: FastifyInstance<S>) => {
      // its refusals (an HTTP/2 body past request_timeout: 408) in plain text, as the plugin's
      registerPlainErrors(scope as unknown as FastifyInstance, false);
      // the site's error_pages for what is answered here before the upstream (an access rule's 403,
      // limit_req's 429, 413), as for PHP's routes; the upstream's own answers pass untouched
      registerErrorPages(scope as unknown as FastifyInstance, errorPages, []);
      // HTTP/2 bodies as the plugin treats them: one with no declared length (a streamed fetch,
      // curl -T -) is read (Fastify took it for none: the upstream got an empty body, the client
      // its 200), a stream answered before its body is in (413) is reset, request_timeout applies;
      // body_timeout on both versions
      scope.addHook('onRequest', (request, reply, done) => {
        if (request.raw.httpVersionMajor === 2)
          guardStreamBody(request as unknown as FastifyRequest, reply as unknown as FastifyReply, streamTimeoutMs);
        guardBodyPace(request as unknown as FastifyRequest, reply as unknown as FastifyReply, bodyTimeoutMs);
        done();
      });
      if (record !== null)
        scope.addHook('onRequest', (_request, reply, done) => {
          recordWhenClosed(reply as unknown as FastifyReply, record);
          done();
        });
      // (counted by the hook before) the site's access and rate rules hold for its proxied prefixes too (nginx's deny / limit_req
      // in front of a proxy_pass); before, a proxied /admin denied to all answered 200
      if (admit !== null)
        scope.addHook('onRequest', (request, reply, done) => {
          whenAdmitted(admit(request as unknown as FastifyRequest, reply as unknown as FastifyReply), done);
        });
      // when a request may go upstream: an HTTP/1.1 one pipelined behind an unfinished response
      // once that one is done, as nginx sends them and the plugin's PHP routes wait (a GET
      // pipelined after a POST reached the upstream first, on a connection of its own, and read
      // the state before the POST); an HTTP/2 one a turn later, if its stream is still open
      scope.addHook('onRequest', (request, reply, done) => {
        if (request.raw.httpVersionMajor === 2) {
          // one turn of the event loop first: a stream reset in the same read as its HEADERS
          // (HTTP/2's rapid reset) is seen closed then, before any upstream connection is opened
          // for it; before, each such stream cost the upstream a TCP connect (525 for one client
          // connection's burst, 3,046 in 1.5 s for six). A reset that comes in a later read still
          // costs one: the session's rapid-reset bound (http2-session-bounds.ts) closes such a client
          setImmediate(() =>
            (request.raw as unknown as Http2ServerRequest).stream.destroyed ? reply.code(499).send() : done(),
          );
          return;
        }
        const turn = pipelinedTurn(reply as unknown as FastifyReply);
        if (turn === null) done();
        // a connection closed first: nothing is sent anywhere
        else void turn.then((go) => (go ? done() : reply.code(499).send()));
      });
      // in a scope of its own under the plain errors: a handler of its path refusals in front of them
      scope.register(async (inner: FastifyInstance<S>) => {
        answerPathRefusalsPlainly(inner as unknown as FastifyInstance);
        // not closed with the app, as reply-from's own was not: a drain must not cut proxied replies
        const dispatcher = await createUpstreamDispatcher(balancer, !route.preserveHost);
        await inner.register(httpProxy, {
          prefix: route.prefix,
          upstream: route.upstream,
          rewritePrefix: libraryRewritePrefix(route),
          // every method, as nginx's proxy_pass: a PROPFIND under the prefix is the upstream's, not PHP's
          httpMethods: [...REQUEST_METHODS],
          // reply-from logs two info lines per request otherwise; the access log already has it
          disableRequestLogging: true,
          // and a warning with undici's stack for every upstream error, beside this module's own
          // error line (sendUpstreamError): one line per failure, as nginx writes
          logLevel: 'error',
          // a body over max_request_size: 413 from its Content-Length at once, a chunked one as it arrives
          preHandler: (request: AnyRequest, reply: AnyReply, done: (error?: Error) => void) => {
            const upgrade = upgradeOf(request.raw as IncomingMessage);
            if (upgrade !== undefined) {
              tunnelUpgrade(request, reply, route, balancer, upgrade, errorPages, keepForwarded);
              return;
            }
            if (refusedUnforwardable(request, reply)) return;
            watchClientGone(request.raw, reply.raw);
            limitRequestBody(request, reply, maxRequestBytes, done);
          },
          // the upstream request ends when the client goes (upstream-dispatcher.ts)
          undici: dispatcher,
          replyOptions: {
            timeout: route.timeoutMs,
            rewriteRequestHeaders: (request, headers) => {
              // this server answers Expect: 100-continue itself (undici refuses to send it: 502 before);
              // TE, Keep-Alive, Upgrade (a plain request's: upgrades were tunnelled before), and the
              // names Connection lists are this hop's (undici refused Keep-Alive and Upgrade: any
              // client made a 502 with one header); a name with "_" is dropped, as nginx
              // (underscores_in_headers off) and the PHP path drop it: a CGI-style upstream reads
              // X_Real_IP as X-Real-IP, so a client's would join (and come before) the one set here
              const hop = hopByHop(headers.connection);
              const keep = keptClaim(request, keepForwarded);
              const rest: Record<string, string | string[] | undefined> = {};
              for (const name in headers)
                if (!hop.has(name) && !name.includes('_') && !(isForwardingClaim(name) && name !== keep))
                  rest[name] = headers[name];
              return withClientGone(request.raw, {
                ...rest,
                ...forwardedHeaders(request, headers['x-forwarded-for']),
                ...(route.preserveHost ? preservedHost(request) : {}),
              });
            },
            retryDelay: retryOnClosedConnection,
            rewriteHeaders: (headers, request) => upstreamReplyHeaders(headers, route, request as AnyRequest),
            onResponse: (request, reply, response) =>
              sendUpstreamReply(request as AnyRequest, reply as AnyReply, response, internalFiles, route),
            onError: (reply, { error }) => sendUpstreamError(reply, route, error, errorPages),
          },
        });
      });
    });
  }
}

/** Checks every route and resolves its options once; errors name `proxy[i].key`. */
export function resolveProxyRoutes(routes: readonly ProxyRoute[]): ResolvedRoute[] {
  if (!Array.isArray(routes))
    throw new InvalidOptionError(
      'proxy',
      `must be a list of { prefix, upstream } entries, got ${JSON.stringify(routes)}`,
    );
  const seen = new Map<string, number>();
  return routes.map((route, index) => {
    const key = (name: string) => `proxy[${index}].${name}`;
    if (typeof route !== 'object' || route === null)
      throw new InvalidOptionError(
        `proxy[${index}]`,
        `must be a map with prefix and upstream, got ${JSON.stringify(route)}`,
      );
    const {
      prefix: rawPrefix,
      upstream,
      rewrite_prefix: rewrite,
      websocket,
      preserve_host: preserveHost,
      timeout,
      websocket_idle_timeout: webSocketIdle,
    } = route;

    if (
      typeof rawPrefix !== 'string' ||
      !rawPrefix.startsWith('/') ||
      /[?#*:\s]/.test(rawPrefix) ||
      rawPrefix.includes('//')
    ) {
      throw new InvalidOptionError(
        key('prefix'),
        `must be a path like /api (no *, :, ? or #), got ${JSON.stringify(rawPrefix)}`,
      );
    }
    const prefix = rawPrefix.length > 1 ? rawPrefix.replace(/\/+$/, '') : rawPrefix;
    const earlier = seen.get(prefix);
    if (earlier !== undefined)
      throw new InvalidOptionError(key('prefix'), `${prefix} is already proxied by proxy[${earlier}]`);
    seen.set(prefix, index);

    const upstreams = resolveUpstreams(upstream, key('upstream'));
    const { hasPath, path: upstreamPath } = upstreams[0]!;

    let rewritePrefix: string;
    if (rewrite !== undefined) {
      if (typeof rewrite !== 'string' || (rewrite !== '' && !rewrite.startsWith('/'))) {
        throw new InvalidOptionError(
          key('rewrite_prefix'),
          `must be '' (strip the prefix) or a path like /v1, got ${JSON.stringify(rewrite)}`,
        );
      }
      // @fastify/http-proxy reads '' as "not given": '/' strips the prefix the same way.
      rewritePrefix = rewrite === '' ? '/' : rewrite;
    } else rewritePrefix = hasPath ? upstreamPath || '/' : prefix;

    if (websocket !== undefined && typeof websocket !== 'boolean')
      throw new InvalidOptionError(key('websocket'), `must be true or false, got ${JSON.stringify(websocket)}`);
    if (preserveHost !== undefined && typeof preserveHost !== 'boolean')
      throw new InvalidOptionError(key('preserve_host'), `must be true or false, got ${JSON.stringify(preserveHost)}`);
    const timeoutMs = durationOption(timeout, key('timeout'), DEFAULT_PROXY_TIMEOUT_MS);
    if (timeoutMs <= 0)
      throw new InvalidOptionError(key('timeout'), `must be more than 0, got ${JSON.stringify(timeout)}`);
    const webSocketIdleMs = durationOption(
      webSocketIdle,
      key('websocket_idle_timeout'),
      DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS,
    );
    return {
      prefix,
      upstream: upstreams[0]!.origin + upstreamPath,
      origins: upstreams.map((one) => one.origin),
      label: upstreams.map((one) => one.origin + upstreamPath).join(', '),
      rewritePrefix,
      websocket: websocket === true,
      preserveHost: preserveHost === true,
      timeoutMs,
      webSocketIdleMs,
    };
  });
}

interface ResolvedUpstream {
  origin: string;
  /** the URL's path without trailing slashes ('' for none or '/') */
  path: string;
  /** a path was written, even '/' alone: it replaces the prefix, as nginx's proxy_pass */
  hasPath: boolean;
}

/** A route's upstream or list of upstreams, each checked; errors name `key` or `key[j]`. */
function resolveUpstreams(upstream: unknown, key: string): ResolvedUpstream[] {
  if (!Array.isArray(upstream)) return [resolveUpstream(upstream, key)];
  if (upstream.length === 0)
    throw new InvalidOptionError(key, 'must be a URL like http://127.0.0.1:9000, or a list of them, got []');
  const out = upstream.map((one, j) => resolveUpstream(one, `${key}[${j}]`));
  const first = out[0]!;
  out.forEach((one, j) => {
    if (one.path !== first.path || one.hasPath !== first.hasPath)
      throw new InvalidOptionError(
        `${key}[${j}]`,
        `must have the path of ${key}[0] (${JSON.stringify(first.path || '(none)')}): a request goes to any of them, got ${JSON.stringify(upstream[j])}`,
      );
    const earlier = out.findIndex((other) => other.origin === one.origin);
    if (earlier !== j) throw new InvalidOptionError(`${key}[${j}]`, `${one.origin} is already ${key}[${earlier}]`);
  });
  return out;
}

function resolveUpstream(upstream: unknown, key: string): ResolvedUpstream {
  let url: URL;
  try {
    url = new URL(String(upstream));
  } catch {
    throw new InvalidOptionError(key, `must be a URL like http://127.0.0.1:9000, got ${JSON.stringify(upstream)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new InvalidOptionError(
      key,
      `must be http:// or https:// (WebSocket upgrades follow with websocket: true), got ${url.protocol}`,
    );
  if (url.search !== '' || url.hash !== '')
    throw new InvalidOptionError(key, `must not have a query or fragment, got ${JSON.stringify(upstream)}`);
  // nginx: `proxy_pass http://h:9000` (no path) passes the path as is; `http://h:9000/v1` replaces the prefix.
  const hasPath = /^https?:\/\/[^/]+\/./i.test(String(upstream)) || /^https?:\/\/[^/]+\/$/i.test(String(upstream));
  return { origin: url.origin, path: url.pathname.replace(/\/+$/, ''), hasPath };
}

/** A route's duration in ms, `fallback` when unset; a bad one is an error naming `key`. */
function durationOption(value: Duration | undefined, key: string, fallback: number): number {
  if (value === undefined) return fallback;
  try {
    return parseDuration(value, key);
  } catch (error) {
    throw InvalidOptionError.from(key, error);
  }
}

/**
 * The `websocket: true` route a request target falls under (the same segment boundaries as the
 * routes: `/ws` takes `/ws` and `/ws/…`; the longest prefix wins, as the routes do), as its idle
 * timeout in ms (0: never); undefined when none. null when no route forwards upgrades. Routes that
 * do not resolve match nothing: registering them reports the error.
 */
export function createWebSocketMatcher(routes: readonly ProxyRoute[]): ((url: string) => number | undefined) | null {
  let resolved: ResolvedRoute[];
  try {
    resolved = resolveProxyRoutes(routes);
  } catch {
    return null;
  }
  const webSocketRoutes = resolved.filter((route) => route.websocket).sort((a, b) => b.prefix.length - a.prefix.length);
  if (webSocketRoutes.length === 0) return null;
  return (url) => {
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    return webSocketRoutes.find(
      ({ prefix }) => prefix === '/' || path === prefix || (path.startsWith(prefix) && path[prefix.length] === '/'),
    )?.webSocketIdleMs;
  };
}

/**
 * X-Forwarded-For: the peer appended to what a trusted proxy (trusted_subnets) sent, or the peer
 * alone: a client's own list is a claim, and an upstream reading its first address (a rate limit,
 * an allow-list, an audit log) was told what the client chose, as behind nginx's
 * $proxy_add_x_forwarded_for; Caddy replaces it the same way. X-Forwarded-Proto (the scheme),
 * X-Forwarded-Host (the Host asked for) and X-Real-IP (the client as PHP sees it, after
 * trusted_subnets: nginx's $remote_addr with set_real_ip_from) are the request's own.
 */
function forwardedHeaders(
  request: AnyRequest,
  incomingFor: string | string[] | number | undefined,
): Record<string, string> {
  const peer = plainAddress(request.raw.socket?.remoteAddress ?? '');
  // the request's one scheme, host and client (client-info.ts), as PHP sees them
  const info = clientInfoOf(request.raw);
  const before = !info.peerTrusted
    ? ''
    : Array.isArray(incomingFor)
      ? incomingFor.join(', ')
      : incomingFor === undefined
        ? ''
        : String(incomingFor);
  // a balancer that named the client in Forwarded or X-Real-IP (real_ip_header) sent no list: the
  // upstream reading X-Forwarded-For (most do) saw every client as the balancer
  const named = before.trim() === '' && info.peerTrusted && info.remoteAddr !== '' && info.remoteAddr !== peer;
  const out: Record<string, string> = {
    'x-forwarded-for': named ? `${info.remoteAddr}, ${peer}` : before.trim() === '' ? peer : `${before}, ${peer}`,
    'x-forwarded-proto': info.scheme,
    // never the one a client says it is
    'x-real-ip': info.remoteAddr === '' ? peer : info.remoteAddr,
  };
  if (info.host !== '') out['x-forwarded-host'] = info.host;
  return out;
}

/**
 * Headers in which a proxy in front tells an upstream about the client, its scheme, port or path.
 * This server sets X-Forwarded-For, -Proto, -Host and X-Real-IP itself; the others are claims and
 * stay behind, from a client and from a trusted proxy alike (trusted_subnets): a load balancer
 * writes the one header real_ip_header reads and passes the client's others on untouched (an ALB
 * its Forwarded, X-Forwarded-Ssl, True-Client-IP). An upstream that believes X-Forwarded-* from
 * this server (it must, for -Proto and -Host) believed a client's Forwarded (Rails reads it
 * first: host= and proto=), X-Forwarded-Ssl: on (Rack: HTTPS), X-Forwarded-Port or -Prefix, and
 * IIS's and Symfony's X-Original-URL / X-Rewrite-URL (a path other than the one the rules saw).
 */
const FORWARDING_CLAIMS = new Set([
  'forwarded',
  'x-forwarded',
  'x-rewrite-url',
  'x-host',
  'x-scheme',
  'front-end-https',
  'x-url-scheme',
  'x-client-ip',
  'client-ip',
  'true-client-ip',
  'x-cluster-client-ip',
  'x-originating-ip',
  'x-remote-ip',
  'x-remote-addr',
  'cf-connecting-ip',
  'cf-connecting-ipv6',
  'fastly-client-ip',
  'akamai-origin-hop',
]);

/** The one claim passed on: a trusted proxy's Forwarded when real_ip_header reads it; else none (''). */
function keptClaim(request: AnyRequest, keepForwarded: boolean): string {
  return keepForwarded && clientInfoOf(request.raw).peerTrusted ? 'forwarded' : '';
}

function isForwardingClaim(lowerName: string): boolean {
  return (
    lowerName.startsWith('x-forwarded-') || lowerName.startsWith('x-original-') || FORWARDING_CLAIMS.has(lowerName)
  );
}

/** preserve_host: the Host the client asked for (client-info.ts), as nginx's `Host $host` passes it. */
function preservedHost(request: AnyRequest): Record<string, string> {
  const host = clientInfoOf(request.raw).host;
  return host === '' ? {} : { host };
}

/** Servers whose upgrades go through the router already (one listener, whatever the sites). */
const routedUpgrades = new WeakSet<object>();

/**
 * Headers of the client's upgrade the tunnel sets itself: this hop's, a body's (a handshake has
 * none), and the forwarding ones.
 */
const TUNNEL_OWN_HEADERS = new Set([
  'host',
  'connection',
  'upgrade',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'proxy-connection',
  'content-length',
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-real-ip',
]);

/**
 * A WebSocket upgrade under a `websocket: true` route, as nginx passes one: the handshake to the
 * upstream with the client's own headers (its key, subprotocols and extensions, cookies, an API
 * key), and the upstream's answer back to the client (websocket-tunnel.ts). A refusal (401, 403,
 * 404...) reaches the client as any proxied response; an upstream down or silent is a 502 / 504.
 */
function tunnelUpgrade(
  request: AnyRequest,
  reply: AnyReply,
  route: ResolvedRoute,
  balancer: UpstreamBalancer | null,
  upgrade: Upgrade,
  errorPages: ErrorPages,
  keepForwarded: boolean,
): void {
  if (!route.websocket) {
    reply
      .code(400)
      .type('text/plain; charset=utf-8')
      .send(`Bad Request: ${route.prefix} does not take WebSocket upgrades (websocket: true)\n`);
    return;
  }
  const path = upgradeTarget(route, request.raw.url ?? '/');
  if (path === null) {
    reply.code(400).type('text/plain; charset=utf-8').send(PATH_REFUSED);
    return;
  }
  // one try: a refused upgrade is a 502, and the client's reconnect goes to the next upstream
  const picked = balancer?.pick() ?? null;
  const origin = new URL(picked ?? route.upstream);
  const headers: OutgoingHttpHeaders = {};
  const raw = request.raw.rawHeaders;
  const keep = keptClaim(request, keepForwarded);
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (TUNNEL_OWN_HEADERS.has(lower) || lower.includes('_') || (isForwardingClaim(lower) && lower !== keep)) continue;
    const before = headers[name];
    headers[name] =
      before === undefined ? raw[i + 1]! : ([] as string[]).concat(before as string | string[], raw[i + 1]!);
  }
  Object.assign(
    headers,
    { host: origin.host, connection: 'Upgrade', upgrade: request.headers.upgrade ?? 'websocket' },
    forwardedHeaders(request, request.headers['x-forwarded-for']),
    route.preserveHost ? preservedHost(request) : {},
  );
  tunnel(
    upgrade,
    { origin, path, method: request.method, headers, timeoutMs: route.timeoutMs },
    {
      upgraded: () => {
        if (picked !== null) balancer!.answered(picked);
        reply.hijack();
      },
      refused: (response) => {
        const out = upstreamReplyHeaders(response.headers, route, request);
        for (const name of SERVER_INSTRUCTION_HEADERS) delete out[name];
        reply.code(response.statusCode ?? 502).headers(out);
        sendUpstreamBody(reply, response);
      },
      failed: (error) => {
        if (picked !== null && isConnectFailure(error)) balancer!.failed(picked);
        sendUpstreamError(reply, route, error, errorPages);
      },
    },
  );
}

/**
 * The upstream's request target for an upgrade, the prefix replaced as for proxied requests; null
 * for one that would leave the route upstream (a `..` segment, encoded or not, or `\\`), as
 * @fastify/http-proxy refuses for them.
 */
export function upgradeTarget(route: { prefix: string; rewritePrefix: string }, url: string): string | null {
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  if (route.prefix !== '/' && path !== route.prefix && !path.startsWith(`${route.prefix}/`)) return null;
  const rest = route.prefix === '/' ? path : path.slice(route.prefix.length);
  const base = route.rewritePrefix === '/' ? '' : route.rewritePrefix;
  let target = base + rest;
  if (!target.startsWith('/')) target = `/${target}`;
  let decoded: string;
  try {
    decoded = decodeURIComponent(target);
  } catch {
    return null;
  }
  if (decoded.replaceAll('\\', '/').split('/').includes('..')) return null;
  if (target.startsWith('//')) return null;
  return query === -1 ? target : target + url.slice(query);
}

/** Request headers of this hop only: never passed on (RFC 9110 7.6.1), with the names `connection` lists. */
const HOP_BY_HOP = ['expect', 'te', 'keep-alive', 'upgrade', 'proxy-connection', 'connection'];

function hopByHop(connection: string | string[] | undefined): Set<string> {
  const names = new Set(HOP_BY_HOP);
  for (const value of [connection ?? []].flat())
    for (const token of value.split(',')) {
      const name = token.trim().toLowerCase();
      // Host and the body's framing are not the client's to drop
      if (name !== '' && name !== 'host' && name !== 'content-length' && name !== 'transfer-encoding') names.add(name);
    }
  return names;
}

/**
 * The rewritePrefix @fastify/http-proxy is given. It puts it in place of the prefix as text: under
 * prefix "/" a rewrite "/app" made "/x" into "/appx", which it then refused as outside "/app/"
 * (400 for every path but "/"). Under "/" the rewrite ends with its "/", as nginx's
 * `location / { proxy_pass http://h/app/; }`; upgrades and Location mapping keep the route's own.
 */
function libraryRewritePrefix(route: { prefix: string; rewritePrefix: string }): string {
  return route.prefix === '/' && !route.rewritePrefix.endsWith('/') ? `${route.rewritePrefix}/` : route.rewritePrefix;
}

/**
 * @fastify/http-proxy refuses a target it will not pass (`..`, a protocol-relative `//`, bytes that
 * are not UTF-8) by throwing a bare 400, which Fastify answered as JSON; in plain text here, as
 * every other refusal of the server.
 */
/** What a client gets for a path the proxy will not send to the upstream as it is. */
const PATH_REFUSED =
  'Bad Request: the path cannot be passed on to the upstream as it is (a "//", a ".." segment, or an escape that does not decode)\n';

function answerPathRefusalsPlainly(scope: FastifyInstance): void {
  const next = scope.errorHandler;
  scope.setErrorHandler(function pathRefusals(this: FastifyInstance, error, request, reply) {
    const status = (error as { statusCode?: number }).statusCode;
    if ((error as { code?: unknown }).code !== undefined || status !== 400)
      return next.call(this, error, request, reply);
    // the library's own words ("source/request contain invalid characters") go to the log only
    request.log.info({ url: request.url }, `proxy refused the path: ${(error as Error).message}`);
    return reply.code(400).type('text/plain; charset=utf-8').send(PATH_REFUSED);
  });
}

/** Methods a request of which may be sent twice (RFC 9110 9.2.2), as nginx retries them. */
const IDEMPOTENT_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

/**
 * reply-from's retry policy: once, at once, a request with no body of an idempotent method whose
 * kept-alive connection the upstream closed as it was sent (an upstream closing idle connections
 * without a Keep-Alive hint, as gunicorn does after 2 s: a 502 now and then). nginx retries such a
 * request too. Nothing else: reply-from's default retried an upstream's 503 to a GET up to ten
 * times, keeping its client waiting where nginx passes the 503 on.
 */
function retryOnClosedConnection({
  err,
  req,
  attempt,
}: {
  err: Error | null;
  req: unknown;
  attempt: number;
}): number | null {
  if (attempt > 0 || (err as { code?: string } | null)?.code !== 'UND_ERR_SOCKET') return null;
  // reply-from passes the upstream request's options here (its types say the Fastify request)
  const sent = req as { method?: string; body?: unknown };
  const body = sent.body;
  // a body already streamed out cannot be sent again ('' is how reply-from says none)
  if (!IDEMPOTENT_METHODS.has(sent.method ?? '') || (body !== undefined && body !== null && body !== '')) return null;
  return 1; // ms: reply-from takes 0 for "no retry"
}

/**
 * The upstream's reply headers as the client gets them: no hop-by-hop ones, and a Location that
 * points at the upstream itself mapped to this server (nginx's `proxy_redirect default`), so the
 * client is not sent to an internal address. @fastify/http-proxy has mapped relative ones already.
 */
function upstreamReplyHeaders(
  headers: Record<string, string | string[] | undefined>,
  route: ResolvedRoute,
  request: AnyRequest,
): Record<string, string | string[] | undefined> {
  const out = { ...headers };
  for (const name of REPLY_HOP_HEADERS) delete out[name];
  const location = out.location;
  if (typeof location === 'string') {
    const mapped = clientLocation(location, route, request);
    if (mapped !== null) out.location = mapped;
  }
  return out;
}

/** An absolute Location on the upstream's own origin, as the client reaches it here; null: leave it. */
function clientLocation(location: string, route: ResolvedRoute, request: AnyRequest): string | null {
  // any of the route's upstreams; not another port or host that begins alike (`:80` of `:8080`)
  const origin = route.origins.find(
    (one) =>
      location.slice(0, one.length).toLowerCase() === one.toLowerCase() && /^([/?]|$)/.test(location.slice(one.length)),
  );
  if (origin === undefined) return null;
  const path = location.slice(origin.length) || '/';
  // the upstream path under rewritePrefix is the client's path under prefix ('/': the prefix was stripped)
  const base = route.rewritePrefix === '/' ? '' : route.rewritePrefix;
  if (base !== '' && path !== base && !path.startsWith(`${base}/`) && !path.startsWith(`${base}?`)) return null;
  const rest = path.slice(base.length);
  const prefix = route.prefix === '/' ? '' : route.prefix;
  const mapped = `${prefix}${rest === '' || rest.startsWith('/') || rest.startsWith('?') ? rest : `/${rest}`}` || '/';
  const info = clientInfoOf(request.raw);
  return `${info.scheme}://${info.host}${mapped}`;
}

/**
 * What the upstream answered, to the client: its body, or the file its X-Accel-Redirect or
 * X-Sendfile names in the site's internal_files folder (a Django or Rails protected download behind
 * nginx); with no such folder the hand-over is not followed, and its headers stay behind with the
 * other X-Accel-* ones, as nginx hides them (the client must not learn the internal path).
 */
function sendUpstreamReply(
  request: AnyRequest,
  reply: AnyReply,
  response: {
    headers?: Record<string, string | string[] | undefined>;
    stream: NodeJS.ReadableStream & { once: Readable['once'] };
  },
  internalFiles: ResolvedInternalFiles | null,
  route: ResolvedRoute,
): void {
  // nginx's proxy_hide_header default: the X-Accel-* ones are for the server in front; its
  // X-Accel-Buffering: no still streams a compressed reply piece by piece (streamed-compression.ts)
  noteUnbuffered(reply, response.headers?.['x-accel-buffering']);
  // the upstream's answer, whatever its status: never replaced by an error page
  markBackendReply(request as unknown as FastifyRequest);
  for (const name of SERVER_INSTRUCTION_HEADERS) reply.removeHeader(name);
  // the upstream's headers as a map only where a hand-over can be followed: not per reply
  const headers = internalFiles === null ? null : asHeaderMap(response.headers ?? {});
  const handoff = headers === null ? null : handoffOf(headers);
  if (handoff === null) {
    // a HEAD's answer is its head, whatever the upstream keeps open behind it (an event stream)
    if (request.method === 'HEAD') {
      (response.stream as unknown as Readable).destroy();
      reply.send();
      return;
    }
    // an event stream, or a reply marked X-Accel-Buffering: no, has its head sent at once
    const header = (name: string) => [response.headers?.[name] ?? []].flat()[0];
    if (streamsOnPurpose(header('x-accel-buffering'), header('content-type'))) sendHeadAtOnce(reply.raw);
    logCutBody(reply, route, response.stream);
    sendUpstreamBody(reply, response.stream);
    return;
  }
  (response.stream as unknown as Readable).destroy();
  void sendInternalFile(
    request as unknown as FastifyRequest,
    reply as unknown as FastifyReply,
    internalFiles!,
    handoff,
    headers!,
  );
}

function asHeaderMap(headers: Record<string, string | string[] | undefined>): HeaderMap {
  const out: HeaderMap = Object.create(null);
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined) out[name] = Array.isArray(value) ? value : [value];
  }
  return out;
}

/**
 * A reply the upstream cut after its head (silent past `timeout`, reset, closed short) says so in
 * the log, as nginx's "upstream timed out while reading upstream": the client's line shows only
 * its status, and an event stream dropped every minute for want of a heartbeat had no word of why.
 */
function logCutBody(
  reply: AnyReply,
  route: ResolvedRoute,
  body: NodeJS.ReadableStream & { once: Readable['once'] },
): void {
  body.once('error', (error: Error & { code?: string }) => {
    if (!reply.raw.headersSent) return; // answered as a 502 / 504 instead (error-pages.ts)
    // the client left (a tab closed on an event stream), or a drain closed its connection: the
    // upstream was let go on purpose, no failure of it
    if (clientLeft(reply.request.raw as IncomingMessage)) return;
    const code = error.code ?? 'error';
    const silent = code === 'UND_ERR_BODY_TIMEOUT';
    reply.log.error(
      { upstream: route.label, prefix: route.prefix, err: { code, message: error.message } },
      `proxy ${route.prefix} → ${route.label}: the reply was cut after its head: ${
        silent
          ? `the upstream sent nothing for ${route.timeoutMs / 1000}s (proxy timeout; a stream sends a heartbeat more often, or raise it)`
          : code
      }`,
    );
  });
}

/**
 * The upstream's body to the client. An upstream that fails mid-body (reset, truncated, silent
 * past the timeout) cuts the response: HTTP/1.1 closes the connection, and an HTTP/2 stream is
 * reset as broken (Fastify's own close ended it as if whole: a truncated download looked complete).
 */
function sendUpstreamBody(reply: AnyReply, body: NodeJS.ReadableStream & { once: Readable['once'] }): void {
  reply.send(resetOnError(reply as unknown as FastifyReply, body as Readable));
}

/**
 * A request the proxy cannot pass on as sent is refused with 501 and what to do, never sent without
 * part of it: a transfer coding other than chunked alone (`gzip, chunked`: its body would reach the
 * upstream still gzipped and unlabelled; nginx and the PHP path answer 501 too), and a GET or HEAD
 * with a body (reply-from sends none: Elasticsearch's `GET /_search` got no query, silently).
 */
function refusedUnforwardable(request: AnyRequest, reply: AnyReply): boolean {
  const coding = request.raw.httpVersionMajor === 1 ? request.headers['transfer-encoding'] : undefined;
  let why: string | null = null;
  if (coding !== undefined && coding.trim().toLowerCase() !== 'chunked')
    why = new TransferEncodingError(coding).message; // the PHP path's refusal, in its words
  else if (
    (request.method === 'GET' || request.method === 'HEAD') &&
    (coding !== undefined || Number(request.headers['content-length'] ?? 0) > 0)
  )
    why = `a ${request.method} request with a body is not passed on by this proxy: send it as POST`;
  if (why === null) return false;
  if (!('stream' in reply.raw)) reply.header('connection', 'close');
  reply.code(501).type('text/plain; charset=utf-8').send(`Not Implemented: ${why}\n`);
  return true;
}

/**
 * max_request_size for a proxied request, as for PHP: a declared length over it is 413 at once; a
 * body of no declared length (chunked, or HTTP/2's DATA frames) is counted as it goes to the
 * upstream and cut past it (413 if nothing was answered yet).
 */
function limitRequestBody(request: AnyRequest, reply: AnyReply, maxBytes: number, done: (error?: Error) => void): void {
  if (!Number.isFinite(maxBytes)) {
    done();
    return;
  }
  const declared = Number(request.headers['content-length']);
  if (request.headers['content-length'] !== undefined && declared > maxBytes) {
    sendTooLarge(reply, maxBytes);
    return;
  }
  const body = request.body as Readable | undefined;
  // chunked over HTTP/1.1; over HTTP/2 guardStreamBody marks a body of no declared length so
  if (request.headers['transfer-encoding'] === undefined || !(body instanceof Readable)) {
    done();
    return;
  }
  let seen = 0;
  const counted = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seen += chunk.length;
      if (seen <= maxBytes) {
        callback(null, chunk);
        return;
      }
      // the rest is read and dropped, as the PHP path does: a paused HTTP/2 stream held its session
      // (the client gone, its socket stayed in CLOSE-WAIT and a drain waited for it)
      body.unpipe(counted);
      body.resume();
      callback(new BodyOverLimitError(maxBytes));
    },
  });
  body.on('error', (error) => counted.destroy(error));
  request.body = body.pipe(counted);
  done();
}

class BodyOverLimitError extends Error {
  constructor(readonly maxBytes: number) {
    super(`the request body is over max_request_size (${maxBytes} bytes)`);
  }
}

function sendTooLarge(reply: AnyReply, maxBytes: number): void {
  // HTTP/2 has no Connection header (Node warns on stderr for one): the stream is reset instead
  if (!('stream' in reply.raw)) reply.header('connection', 'close');
  reply
    .code(413)
    .type('text/plain; charset=utf-8')
    .send(`Payload Too Large: the body is over max_request_size (${maxBytes} bytes)\n`);
}

/** 504 when the upstream was too slow, 502 for everything else (refused, reset, bad reply), as nginx. */
function sendUpstreamError(
  reply: AnyReply,
  route: ResolvedRoute,
  error: Error & { statusCode?: number; cause?: unknown },
  errorPages: ErrorPages,
): void {
  const over = findCause(error, BodyOverLimitError);
  if (over !== null) {
    if (!reply.sent) sendTooLarge(reply, over.maxBytes);
    return;
  }
  const cause = error.cause as { code?: string; message?: string } | undefined;
  const code = cause?.code ?? (error as { code?: string }).code ?? 'error';
  const timedOut = error.statusCode === 504;
  reply.log.error(
    { upstream: route.label, prefix: route.prefix, err: { code, message: cause?.message ?? error.message } },
    `proxy ${route.prefix} → ${route.label} failed: ${code}`,
  );
  const status = timedOut ? 504 : 502;
  const page = errorPages?.get(status);
  if (page !== undefined) {
    reply.code(status).type(page.type).send(page.body);
    return;
  }
  const reason = timedOut ? `did not answer within ${route.timeoutMs / 1000}s` : describeCode(code);
  reply
    .code(status)
    .type('text/plain; charset=utf-8')
    .send(`${status === 504 ? 'Gateway Timeout' : 'Bad Gateway'}: the upstream for ${route.prefix} ${reason}\n`);
}

function describeCode(code: string): string {
  switch (code) {
    case 'ECONNREFUSED':
      return 'is not running (connection refused)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'could not be found (DNS)';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'closed the connection';
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'did not accept the connection in time';
    default:
      return 'failed';
  }
}

/** The first error of `type` in an error's cause chain; null when none. */
function findCause<T extends Error>(error: unknown, type: new (...args: never[]) => T): T | null {
  for (let at = error, depth = 0; at instanceof Error && depth < 5; at = at.cause, depth++)
    if (at instanceof type) return at;
  return null;
}
