// Reverse-proxy routes, like nginx's `location /api/ { proxy_pass http://127.0.0.1:9000; }`:
// requests under a prefix go to an upstream HTTP server (and WebSocket upgrades with them) instead
// of PHP. A thin layer over @fastify/http-proxy (itself over @fastify/reply-from and undici).
import type { FastifyInstance, FastifyReply, FastifyRequest, RawServerBase, RouteGenericInterface } from 'fastify';
import { parseDuration, type Duration } from '@warmpool/pool';
import {
  type ErrorPages,
  InvalidOptionError,
  REQUEST_METHODS,
  addRequestMethods,
  clientInfoOf,
} from '@warmpool/fastify';

/** One `proxy:` entry of warmpool.yaml. */
export interface ProxyRoute {
  /** path prefix, on segment boundaries: `/api` takes `/api` and `/api/…`, not `/apiary` */
  prefix: string;
  /** `http://host:port` or `https://…`, optionally with a path */
  upstream: string;
  /**
   * What replaces the prefix in the upstream path. Default, as nginx's proxy_pass: an upstream
   * without a path gets the request path unchanged (`/api/users` → `/api/users`); an upstream with a
   * path puts that path in place of the prefix (`http://h:9000/v1` → `/v1/users`). `''` strips the
   * prefix (`/users`).
   */
  rewrite_prefix?: string;
  /** forward WebSocket upgrades under the prefix too; default false */
  websocket?: boolean;
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
  upstream: string;
  rewritePrefix: string;
  websocket: boolean;
  timeoutMs: number;
  /** 0: never */
  webSocketIdleMs: number;
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
  /** the site's error_pages: an upstream that is down or too slow gets the 502 / 504 page, as nginx's */
  errorPages: ErrorPages = null,
): Promise<void> {
  const resolved = resolveProxyRoutes(routes);
  if (resolved.length === 0) return;
  // loaded only when a route is configured: it brings undici and ws (about 130 modules)
  const { default: httpProxy } = await import('@fastify/http-proxy');
  // Fastify routes only the methods it was told of (WebDAV's are added once for the whole app)
  addRequestMethods(app as unknown as FastifyInstance);
  for (const route of resolved) {
    app.register(httpProxy, {
      prefix: route.prefix,
      upstream: route.upstream,
      rewritePrefix: route.rewritePrefix,
      websocket: route.websocket,
      // every method, as nginx's proxy_pass: a PROPFIND under the prefix is the upstream's, not PHP's
      httpMethods: [...REQUEST_METHODS],
      // reply-from logs two info lines per request otherwise; the access log already has it
      disableRequestLogging: true,
      replyOptions: {
        timeout: route.timeoutMs,
        rewriteRequestHeaders: (request, headers) => ({
          ...headers,
          ...forwardedHeaders(request, headers['x-forwarded-for']),
        }),
        onError: (reply, { error }) => sendUpstreamError(reply, route, error, errorPages),
      },
      // the default passes only Cookie; the upstream also wants to know who asked
      wsClientOptions: {
        rewriteRequestHeaders: (headers: Record<string, unknown>, request: AnyRequest) => {
          const out: Record<string, string> = { ...(headers as Record<string, string>) };
          for (const name of ['cookie', 'authorization', 'origin', 'user-agent'] as const) {
            const value = request.headers[name];
            if (typeof value === 'string') out[name] = value;
          }
          return { ...out, ...forwardedHeaders(request, request.headers['x-forwarded-for']) };
        },
      } as object,
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

    let url: URL;
    try {
      url = new URL(String(upstream));
    } catch {
      throw new InvalidOptionError(
        key('upstream'),
        `must be a URL like http://127.0.0.1:9000, got ${JSON.stringify(upstream)}`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new InvalidOptionError(
        key('upstream'),
        `must be http:// or https:// (WebSocket upgrades follow with websocket: true), got ${url.protocol}`,
      );
    if (url.search !== '' || url.hash !== '')
      throw new InvalidOptionError(
        key('upstream'),
        `must not have a query or fragment, got ${JSON.stringify(upstream)}`,
      );
    // nginx: `proxy_pass http://h:9000` (no path) passes the path as is; `http://h:9000/v1` replaces the prefix.
    const hasPath = /^https?:\/\/[^/]+\/./i.test(String(upstream)) || /^https?:\/\/[^/]+\/$/i.test(String(upstream));
    const upstreamPath = url.pathname.replace(/\/+$/, '');

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
      upstream: url.origin + upstreamPath,
      rewritePrefix,
      websocket: websocket === true,
      timeoutMs,
      webSocketIdleMs,
    };
  });
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
 * X-Forwarded-For (the client appended to what arrived, as nginx's $proxy_add_x_forwarded_for),
 * X-Forwarded-Proto (this hop's scheme) and X-Forwarded-Host (the Host the client asked for).
 * The upstream decides which hops to trust.
 */
function forwardedHeaders(
  request: AnyRequest,
  incomingFor: string | string[] | number | undefined,
): Record<string, string> {
  const client = request.raw.socket?.remoteAddress ?? '';
  // the request's one scheme and host (client-info.ts), as PHP sees them
  const info = clientInfoOf(request.raw);
  const before = Array.isArray(incomingFor)
    ? incomingFor.join(', ')
    : incomingFor === undefined
      ? ''
      : String(incomingFor);
  const out: Record<string, string> = {
    'x-forwarded-for': before.trim() === '' ? client : `${before}, ${client}`,
    'x-forwarded-proto': info.scheme,
  };
  if (info.host !== '') out['x-forwarded-host'] = info.host;
  return out;
}

/** 504 when the upstream was too slow, 502 for everything else (refused, reset, bad reply), as nginx. */
function sendUpstreamError(
  reply: AnyReply,
  route: ResolvedRoute,
  error: Error & { statusCode?: number; cause?: unknown },
  errorPages: ErrorPages,
): void {
  const cause = error.cause as { code?: string; message?: string } | undefined;
  const code = cause?.code ?? (error as { code?: string }).code ?? 'error';
  const timedOut = error.statusCode === 504;
  reply.log.error(
    { upstream: route.upstream, prefix: route.prefix, err: { code, message: cause?.message ?? error.message } },
    `proxy ${route.prefix} → ${route.upstream} failed: ${code}`,
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
