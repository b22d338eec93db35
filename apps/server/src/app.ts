// Assembles the server from a loaded config: one Fastify instance whose sites are encapsulated
// contexts chosen by Host (sites.ts), each with its own warmpool plugin (pool, static root, limits),
// headers/CORS/compression, micro-cache and proxy routes; the HTTP/HTTPS servers that feed it
// (tls.ts); and the ops listeners for status and metrics (status.ts).
//
// The servers are made here (Fastify's serverFactory) rather than by app.listen(), because one app
// serves several of them (HTTP and HTTPS) and lifecycle.ts binds them itself, on addresses or on
// sockets handed over by systemd. Fastify therefore never closes them: the drain does.
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { availableParallelism } from 'node:os';
import type { Server as HttpServer, ServerOptions as HttpServerOptions } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { Server as NetServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import Fastify, {
  LogController,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type onRequestHookHandler,
} from 'fastify';
import {
  checkOptions,
  configureServerTimeouts,
  createClientInfoHook,
  createClientInfoResolver,
  boundPipelining,
  installLingeringClose,
  resolveErrorPages,
  resolveInternalFiles,
  resolveLimits,
  serverLimits,
  addRequestMethods,
  REQUEST_METHODS,
  requestBodyMemory,
  responseMemory,
  warmpool,
  type WarmpoolDecorator,
  plainAddress,
  compileTrustedSubnets,
} from '@warmpool/fastify';
import { optionErrorDetails, parseDuration, type AnyPool } from '@warmpool/pool';
import type { FastCgiClientPool } from '@warmpool/pool/fastcgi';
import {
  ConfigError,
  InvalidValueError,
  locateOptionError,
  type CacheConfig,
  type HeadersConfig,
  type LoadedConfig,
  type ServerOptions,
  type SiteOptions,
} from '@warmpool/config';
import {
  createAccessLog,
  createSiteAccessLogs,
  endStatus,
  logPlainListener,
  logRawExchange,
  registerAccessLog,
  type AccessLog,
  type AccessLogStreams,
} from './access-log.js';
import { registerHttpLog } from './zap-log.js';
import { onRequestEnd } from './request-end.js';
import { checkHttpHeaders, genReqId, registerHttpHeaders, type HttpHeadersOptions } from './http-headers.js';
import { registerMicroCache, type MicroCache, type MicroCacheOptions } from './micro-cache.js';
import { createWebSocketMatcher, registerProxies } from './proxy.js';
import { createConnectionLimits } from './connection-limits.js';
import { closeSilentConnections } from './silent-connections.js';
import { SendTimeouts } from './send-timeout.js';
import { DeadSessions } from './dead-sessions.js';
import { ClientErrors } from './client-errors.js';
import { createBadUrlAnswer, routableTarget } from './undecodable-paths.js';
import { ConnectionTracker, DEFAULT_HTTPS_ADDRESS, parseAddress, type Listener } from './lifecycle.js';
import { createRequestLogger, type Loggers } from './logging.js';
import { formatDuration, plural, type CliOutput } from './output.js';
import { INTERNAL_SITE_HEADER, createSiteRouter, siteConstraint, type SiteRouter } from './sites.js';
import { SiteTraffic } from './site-traffic.js';
import { registerSiteRedirect } from './site-redirect.js';
import { createOpsServer, mergeExpositions } from './status.js';
import { SiteSetupError } from './errors.js';
import { phpUserProblems } from './root-php.js';
import { phpCommandProblems } from './php-command.js';
import { ProcessMetrics } from './process-metrics.js';
import { versionInfo } from './commands/version.js';
import {
  createHttpsServer,
  createPlainServer,
  createRedirectServer,
  type RequestHandler,
  type TlsContexts,
} from './tls.js';
import { createUpgrades, type Upgrades } from './upgrade.js';

/** The header fields Node's HTTP/1.1 parser keeps by default (server.maxHeadersCount). */
const NODE_HTTP1_HEADER_FIELDS = 1000;

/** Typed as Fastify's default HTTP/1 instance (the plugins are); HTTP/2 requests use the same API. */
export type App = FastifyInstance;

export interface BuildOptions {
  loaded: LoadedConfig;
  server: ServerOptions;
  loggers: Loggers;
  out: CliOutput;
  /** the HTTPS certificates (by name) when http.ssl is set */
  tls: TlsContexts | null;
  /** more Prometheus lines for /metrics (the certificates' expiry) */
  extraMetrics?: () => string;
  /** where an access log to stdout/stderr writes (tests); default the process's */
  accessLogStreams?: AccessLogStreams;
  /** aborted by a stop during the boot: the sites' workers still booting are killed, not waited for */
  bootSignal?: AbortSignal;
}

export interface BuiltApp {
  app: App;
  /**
   * site name → what its health, stats and admin commands are read from, filled in as each site boots
   * (config order, default last): its pool, or (a site passing to php-fpm) its connections (poolsOf)
   */
  backends: Map<string, SiteBackend>;
  /** site name → its micro-cache, for the sites that have one */
  caches: Map<string, MicroCache>;
  /** public listeners: http (or its redirect) and https */
  listeners: Listener[];
  /** status / metrics listeners */
  opsListeners: Listener[];
  /** the HTTPS server, for certificate reloads */
  https: Http2SecureServer | null;
  tracker: ConnectionTracker;
  /** true once the drain started (ops /ready answers 503) */
  draining: { value: boolean };
  /** true once the public listeners take connections (ops /ready answers 503 before) */
  accepting: { value: boolean };
  router: SiteRouter;
  /** Upgrade and CONNECT requests; its WebSocket connections are closed on drain */
  upgrades: Upgrades;
  /** http.access_log's writer (SIGUSR1 reopens it, the drain closes it); null without one */
  accessLog: AccessLog | null;
}

/** What the server reads of a site: health and stats, and its pool or its connections to php-fpm. */
export type SiteBackend = Pick<WarmpoolDecorator, 'stats' | 'pool' | 'fastcgi'>;

/** The sites' pools (a site passing PHP to php-fpm has none of ours). */
export function poolsOf(backends: ReadonlyMap<string, SiteBackend>): Map<string, AnyPool> {
  const pools = new Map<string, AnyPool>();
  for (const [name, backend] of backends) if (backend.pool !== null) pools.set(name, backend.pool);
  return pools;
}

/** The sites passing PHP to php-fpm: their connection pools. */
export function passesOf(backends: ReadonlyMap<string, SiteBackend>): Map<string, FastCgiClientPool> {
  const passes = new Map<string, FastCgiClientPool>();
  for (const [name, backend] of backends) if (backend.fastcgi !== null) passes.set(name, backend.fastcgi);
  return passes;
}

export function buildApp(options: BuildOptions): BuiltApp {
  const { server, loggers, tls } = options;
  const router = createSiteRouter(
    server.sites.filter((s) => s.hosts !== null).map((s) => ({ name: s.name, hosts: s.hosts! })),
  );
  const token = randomBytes(16).toString('hex');
  const tracker = new ConnectionTracker();
  const draining = { value: false };
  const accepting = { value: false };
  // Listener-wide limits are the same in every site's plugin options; any site gives them.
  const listenerLimits = resolveLimits(server.sites[0]!.plugin);
  const httpOptions: HttpServerOptions = serverLimits(listenerLimits).http ?? {};
  // Each request's client, scheme and host, decided once (listener-wide keys) before routing: the
  // site, the micro-cache key, proxy headers and PHP all read this one answer.
  const { trusted_subnets, real_ip_header } = server.sites[0]!.plugin;
  const client = createClientInfoResolver({ trusted_subnets, real_ip_header });

  const listeners: Listener[] = [];
  // a request head Node's parser refuses: the same plain-text answer and log line on every listener
  const clientErrors = new ClientErrors(loggers.http);
  let https: Http2SecureServer | null = null;
  // HTTP/2 connections whose client reset them while a response waited: Node never tells
  const deadSessions = server.http.ssl === null ? null : new DeadSessions(loggers.http);
  /** the HTTP listener when it only redirects to https (http.ssl.redirect) */
  let redirectServer: HttpServer | null = null;
  const serverFactory = (fastifyHandler: RequestHandler): HttpServer | Http2SecureServer => {
    const handler = tracker.wrap(fastifyHandler);
    let primary: HttpServer | Http2SecureServer | null = null;
    const ssl = server.http.ssl;
    if (ssl !== null) {
      https = createHttpsServer(tls!, handler, {
        ...(server.http.http2?.max_concurrent_streams === undefined
          ? {}
          : { maxConcurrentStreams: server.http.http2.max_concurrent_streams }),
        // a connection that never finishes its TLS handshake is cut as one that never sends its head
        ...(listenerLimits.headersTimeoutMs ? { handshakeTimeoutMs: listenerLimits.headersTimeoutMs } : {}),
        // as many fields as HTTP/1.1 takes: max_header_count, else Node's 1,000
        maxHeaderFields: listenerLimits.maxHeaderCount ?? NODE_HTTP1_HEADER_FIELDS,
        logger: loggers.http,
      });
      // its HTTP/1.1 connections get the plain listener's timeouts and head size, and its lingering
      // close of a connection answered before its body was read (the plugin sets both on the plain one)
      configureServerTimeouts(https, listenerLimits, loggers.http);
      installLingeringClose(https);
      clientErrors.watchTls(https);
      boundPipelining(https, loggers.http);
      tracker.watchHttp2(https);
      deadSessions?.watch(https);
    }
    if (ssl !== null && ssl.redirect === true) {
      const httpsPort = ssl.redirect_port ?? parseAddress(ssl.address ?? DEFAULT_HTTPS_ADDRESS).port;
      redirectServer = createRedirectServer(httpsPort, httpOptions);
      listeners.push({
        name: 'http',
        address: server.http.address,
        server: redirectServer,
        scheme: 'http',
        serves: 'redirects to https',
      });
    } else {
      const plain = createPlainServer(handler, httpOptions);
      tracker.watchHttp1(plain);
      primary = plain;
      listeners.push({ name: 'http', address: server.http.address, server: plain, scheme: 'http', serves: 'HTTP/1.1' });
    }
    if (https !== null)
      listeners.push({
        name: 'https',
        address: ssl!.address ?? DEFAULT_HTTPS_ADDRESS,
        server: https,
        scheme: 'https',
        serves: 'HTTP/2 + HTTP/1.1',
      });
    // Fastify's own server (plugins configure it: timeouts, 100-continue): the plain one when there is one
    const fastifyServer = primary ?? https!;
    // Fastify installs clientErrorHandler on its own server only
    for (const listener of listeners)
      if (listener.server !== fastifyServer) clientErrors.watch(listener.server as HttpServer);
    return fastifyServer;
  };

  const app = Fastify({
    loggerInstance: loggers.http,
    // the access log (http.access_logs) replaces Fastify's two lines per request
    logController: new LogController({ disableRequestLogging: true }),
    // request.log: the pino child (reqId) is made on its first line, not for every request
    childLoggerFactory: createRequestLogger,
    genReqId,
    // a site's plugin boots its workers while registering: bounded by allocate_timeout, not by Fastify
    pluginTimeout: 0,
    routerOptions: {
      // a target the router cannot route ("%zz", "*"): warmpool's plain-text 400, not Fastify's JSON
      onBadUrl: createBadUrlAnswer(client, (req, res) => {
        // outside every hook: the access log's line is written here, as nginx logs its 400s
        if (accessLog !== null) logRawExchange(accessLog, req, res, '-', (raw) => client.of(raw).remoteAddr);
      }),
      // with no site bound to hosts every request is the default site's: nothing to derive per request
      ...(router.empty
        ? {}
        : { constraints: { site: siteConstraint(router, token, (req) => client.of(req).hostname) as never } }),
    },
    // an absolute-form target (GET http://host/x) is routed by its path, as nginx does; a path of
    // bytes that are not UTF-8 by a form the router decodes (the client-info hook puts it back)
    rewriteUrl: (req) => routableTarget(client.of(req).target),
    serverFactory: serverFactory as never,
    clientErrorHandler: clientErrors.handle,
  }) as unknown as App;
  // WebDAV's PROPFIND, MKCOL, a cache plugin's PURGE: to PHP and to proxied upstreams, as behind nginx
  addRequestMethods(app);

  // a connection that sends nothing at all is cut at headers_timeout, as nginx's client_header_timeout
  for (const listener of listeners)
    closeSilentConnections(
      listener.server as NetServer,
      listenerLimits.headersTimeoutMs ?? 0,
      listener.scheme === 'https',
    );
  // http.max_connections and max_connections_per_ip, on every public listener (TLS ones before the handshake)
  const limits = createConnectionLimits(server.http, trusted_subnets, loggers.http);
  if (limits !== null) for (const listener of listeners) limits.watch(listener.server as NetServer);
  // /metrics: the server process itself (memory, event loop, open files and connections, build)
  const processMetrics = server.metrics === null ? null : new ProcessMetrics(versionInfo().warmpool);
  if (processMetrics !== null && limits === null)
    processMetrics.watch(listeners.map((listener) => listener.server as NetServer));
  if (processMetrics !== null) app.addHook('onClose', async () => processMetrics.close());
  // http.send_timeout: a client that stopped reading its response is disconnected
  const sendTimeouts =
    server.http.send_timeout_ms > 0 ? new SendTimeouts(server.http.send_timeout_ms, loggers.http) : null;
  if (sendTimeouts !== null) for (const listener of listeners) sendTimeouts.watch(listener.server as NetServer);
  // http.proxy_protocol, http.ssl.proxy_protocol: a TCP load balancer's PROXY header before anything else
  const proxyProtocol = { http: server.http.proxy_protocol, https: server.http.ssl?.proxy_protocol === true };
  if (proxyProtocol.http || proxyProtocol.https) {
    const trusted = compileTrustedSubnets(trusted_subnets ?? []);
    for (const listener of listeners)
      if (proxyProtocol[listener.name as 'http' | 'https']) {
        listener.proxyProtocol = {
          trusted,
          logger: loggers.http,
          limits: { total: server.http.max_connections, perPeer: server.http.max_connections_per_ip },
        };
        listener.serves += ', PROXY protocol';
      }
  }
  // http.max_response_memory: PHP replies held for clients that have not read them, over all sites
  responseMemory.maxBytes = server.http.max_response_memory;

  // two Host headers, or a Host the target or :authority contradicts: 400 before any site sees it
  app.addHook('onRequest', createClientInfoHook(client));

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const host = client.of(request.raw).hostname;
    const known = router.siteOf(host) !== null || server.defaultSite !== null;
    // TRACE (and any method no route takes) is refused as nginx refuses it: 405, not "Not Found"
    if (known && !(REQUEST_METHODS as readonly string[]).includes(request.method)) {
      reply
        .code(405)
        .header('allow', REQUEST_METHODS.join(', '))
        .type('text/plain; charset=utf-8')
        .send('Method Not Allowed\n');
      return;
    }
    reply
      .code(404)
      .type('text/plain; charset=utf-8')
      .send(known ? 'Not Found\n' : `No site here answers for host "${host ?? ''}".\n`);
  });

  const metricsPath = server.metrics === null ? null : `/__warmpool_metrics_${token}`;
  const siteOf = (request: FastifyRequest): string =>
    router.siteOf(client.of(request.raw).hostname) ?? server.defaultSite?.name ?? '-';
  // /metrics: proxied requests and body bytes by site, which the sites' plugins do not see
  const traffic = metricsPath === null ? null : new SiteTraffic(server.sites.map((site) => site.name));
  if (traffic !== null) traffic.countBodyBytes(app, siteOf, metricsPath!);
  let accessLog: AccessLog | null = null;
  // sites with an access log of their own (sites[].http.access_log): their lines go there only
  const ownLogs = new Set(server.sites.filter((site) => site.access_log !== null).map((site) => site.name));
  if (server.http.access_log !== null || ownLogs.size > 0) {
    // warmpool's own access log (combined or json, to stdout or a file), and the sites' own
    const baseDir = dirname(options.loaded.file);
    const top =
      server.http.access_log === null
        ? null
        : createAccessLog(server.http.access_log, baseDir, options.accessLogStreams);
    accessLog = createSiteAccessLogs(top, server.sites, baseDir, options.accessLogStreams);
    registerAccessLog(app, accessLog, { siteOf, skip: metricsPath });
    // request heads Node's parser refused (400, 408, 431) before any request existed
    clientErrors.logTo(accessLog);
    // the port-80 listener that only redirects: its answers get lines too, as nginx's
    if (redirectServer !== null)
      logPlainListener(
        redirectServer,
        accessLog,
        (host) => router.siteOf(host) ?? server.defaultSite?.name ?? '-',
        // behind a load balancer, the client it names, as on the other listeners (before: the balancer)
        (req) => client.of(req).remoteAddr,
      );
  }
  if (server.http.access_log === null && server.http.access_logs && !loggers.zap) {
    // once a request is over, its client there or gone (before: a client that left had no line)
    onRequestEnd(app, (request, reply, gone) => {
      // the metrics listener's in-process scrape; a site with a log of its own has its line there
      if (request.url === metricsPath || (ownLogs.size > 0 && ownLogs.has(siteOf(request)))) return;
      const length = reply.getHeader('content-length');
      const status = endStatus(reply, gone);
      loggers.http.info(
        {
          reqId: request.id,
          site: siteOf(request),
          method: request.method,
          url: request.url,
          host: request.host,
          protocol: `HTTP/${request.raw.httpVersion}`,
          remoteAddr: plainAddress(request.socket?.remoteAddress),
          status,
          durationMs: Math.round(reply.elapsedTime * 100) / 100,
          ...(length === undefined ? {} : { bytes: Number(length) }),
        },
        `${request.method} ${request.url} ${status}`,
      );
    });
  }

  // logs.encoding: json: RoadRunner's "http log" line on every request ("http access log" with access_logs)
  if (loggers.zap) registerHttpLog(app, loggers.http, { accessLogs: server.http.access_logs, skip: metricsPath });

  // WebSocket upgrades go to a site's `websocket: true` proxy routes; any other upgrade is served as a plain request
  const webSocketRoutes = new Map<string, (url: string) => number | undefined>();
  for (const site of server.sites) {
    const matcher = createWebSocketMatcher(site.proxy ?? []);
    if (matcher !== null) webSocketRoutes.set(site.name, matcher);
  }
  const upgrades = createUpgrades({
    webSocketIdleMs: (req) => {
      const site = router.siteOf(req.headers.host) ?? server.defaultSite?.name ?? null;
      return site === null ? undefined : webSocketRoutes.get(site)?.(req.url ?? '/');
    },
  });
  app.addHook('onReady', (done) => {
    upgrades.install(
      app.server as unknown as HttpServer | Http2SecureServer,
      listeners.map((listener) => listener.server as HttpServer | Http2SecureServer),
      redirectServer,
    );
    done();
  });

  const backends = new Map<string, SiteBackend>();
  const caches = new Map<string, MicroCache>();
  for (const site of server.sites) {
    app.register(async (ctx: App) =>
      registerSite(ctx, site, { options, token, metricsPath, backends, caches, traffic }),
    );
  }

  const opsListeners = buildOpsListeners(server, {
    pools: () => backends,
    draining: () => draining.value,
    accepting: () => accepting.value,
    render:
      metricsPath === null
        ? null
        : async () =>
            (await renderMetrics(app, server.sites, token, metricsPath, traffic!)) +
            (limits?.metrics() ?? '') +
            (sendTimeouts?.metrics() ?? '') +
            (deadSessions?.metrics() ?? '') +
            responseMemory.metrics() +
            requestBodyMemory.metrics() +
            clientErrors.metrics() +
            (processMetrics?.metrics() ?? '') +
            (options.extraMetrics?.() ?? ''),
  });

  return {
    app,
    backends,
    caches,
    listeners,
    opsListeners,
    https,
    tracker,
    draining,
    accepting,
    router,
    upgrades,
    accessLog,
  };
}

async function registerSite(
  ctx: App,
  site: SiteOptions,
  context: {
    options: BuildOptions;
    token: string;
    metricsPath: string | null;
    backends: Map<string, SiteBackend>;
    caches: Map<string, MicroCache>;
    traffic: SiteTraffic | null;
  },
): Promise<void> {
  const { options, token, metricsPath, backends, caches, traffic } = context;
  const { loggers, out } = options;
  if (site.hosts !== null) {
    ctx.addHook('onRoute', (route) => {
      route.constraints = { ...(route.constraints ?? {}), site: site.name };
    });
  }
  if (metricsPath !== null) {
    // The plugin's metrics route is reached only by the metrics listener (app.inject with the token).
    // The guard is put on that route alone, so no other request runs it.
    const internal = `${token} `;
    const guard: onRequestHookHandler = (request, reply, done) => {
      if (!String(request.headers[INTERNAL_SITE_HEADER] ?? '').startsWith(internal)) {
        reply.code(404).type('text/plain; charset=utf-8').send('Not Found\n');
        return;
      }
      done();
    };
    ctx.addHook('onRoute', (route) => {
      if (route.url === metricsPath) route.onRequest = [guard, ...[route.onRequest ?? []].flat()];
    });
  }
  try {
    if (site.cache !== null) caches.set(site.name, registerMicroCache(ctx, toMicroCacheOptions(site.cache)));
    // awaited: @fastify/compress is loaded now and the hooks it must precede or follow are in place
    // before the plugin declares its routes
    await registerHttpHeaders(ctx, toHeadersOptions(site.headers, site.gzip));
  } catch (error) {
    throw new SiteSetupError(site, error);
  }

  const { fastcgi } = site.plugin;
  const runs = fastcgi?.command ?? site.plugin.command ?? 'php-cgi';
  const command = Array.isArray(runs) ? runs.join(' ') : String(runs);
  if (!site.php) out.info(`site ${site.name}: no PHP: ${describeNoPhpSite(site)}`);
  else if (fastcgi?.pass !== undefined)
    out.info(`site ${site.name}: classic PHP from ${fastcgi.root} through php-fpm at ${fastcgi.pass}`);
  else
    out.info(
      `site ${site.name}: booting ${describeBootWorkers(site.plugin.pool)}: ${command}${fastcgi === undefined ? '' : ` (classic PHP from ${fastcgi.root})`}`,
    );
  const started = performance.now();
  try {
    await ctx.register(warmpool, {
      ...site.plugin,
      // nothing here keeps a reply payload past its response (the micro-cache copies what it keeps)
      recycle_response_memory: true,
      logger: loggers.server.child({ site: site.name }),
      ...(options.bootSignal === undefined ? {} : { signal: options.bootSignal }),
      // one site's workers that cannot boot (a tenant's parse error) must not keep the others from
      // serving: with several sites it answers 503 and retries; alone, serve fails as RoadRunner does
      keep_trying: options.server.sites.length > 1,
      ...(metricsPath === null ? {} : { metrics_path: metricsPath }),
    });
  } catch (error) {
    throw new SiteSetupError(site, error);
  }
  const pool = ctx.warmpool.pool;
  backends.set(site.name, ctx.warmpool);
  const stats = ctx.warmpool.stats();
  const hosts = site.hosts === null ? 'any other host' : site.hosts.join(', ');
  const fpm = ctx.warmpool.fastcgi;
  // php-fpm may start after warmpool (it is not ours to start): say so, do not fail the boot
  const unreachable = fpm === null ? null : await fpm.probe();
  if (fpm !== null && unreachable !== null) {
    out.warn(
      `site ${site.name}: php-fpm at ${fpm.stats().address} does not answer (${unreachable.message}); its requests get 502 and /ready says not_ready until it does: start php-fpm (systemctl start php8.2-fpm) or fix fastcgi.pass`,
    );
  } else if (pool !== null && stats.workers.ready + stats.workers.working === 0 && stats.bootError !== null) {
    out.error(
      `site ${site.name}: PHP workers failed to boot: ${stats.bootError.replace(/\.\s*$/, '')}. Its requests get 502 and /ready says not_ready while warmpool retries (with backoff; at once with \`warmpool reset --site ${site.name}\`); the other sites are served. Fix the app, then reset`,
    );
  } else {
    out.success(
      !site.php
        ? `site ${site.name}: ready (${hosts})`
        : pool === null
          ? `site ${site.name}: ready, up to ${plural(stats.numWorkers, 'connection')} to php-fpm (${hosts})`
          : `site ${site.name}: ${plural(stats.workers.ready + stats.workers.working, 'worker')} ready in ${formatDuration(performance.now() - started)} (${hosts})`,
    );
  }

  if (site.redirect !== null) registerSiteRedirect(ctx, site.redirect);
  if (site.proxy !== null) {
    const siteLimits = resolveLimits(site.plugin);
    try {
      await registerProxies(ctx, site.proxy, {
        errorPages: resolveErrorPages(site.plugin.error_pages),
        maxRequestBytes: siteLimits.maxRequestBytes,
        countRoute: traffic === null ? null : (upstream) => traffic.proxyRoute(site.name, upstream),
        ...(siteLimits.requestTimeoutMs === null ? {} : { streamTimeoutMs: siteLimits.requestTimeoutMs }),
        bodyTimeoutMs: siteLimits.bodyTimeoutMs,
        internalFiles: resolveInternalFiles(site.plugin.internal_files),
        admit: ctx.warmpool.admit,
        realIpHeader: site.plugin.real_ip_header,
      });
    } catch (error) {
      throw new SiteSetupError(site, error);
    }
  }
}

/** What a site of no PHP serves, for its boot line: "static files from DIR, /api → http://…". */
function describeNoPhpSite(site: SiteOptions): string {
  const parts: string[] = [];
  const dirs = [site.plugin.static?.dir ?? []].flat();
  if (dirs.length > 0) parts.push(`static files from ${dirs.join(', ')}`);
  for (const route of site.proxy ?? []) parts.push(`${route.prefix} → ${[route.upstream].flat().join(', ')}`);
  if (site.redirect !== null) parts.push(`redirects to ${site.redirect.to} (${site.redirect.status})`);
  return parts.join(', ');
}

/**
 * What a site's pool boots, for the boot line: what the pool's constructor starts (a dynamic pool
 * boots max(1, min_workers) to prove its command serves, then sizes itself between its bounds).
 */
export function describeBootWorkers(pool: SiteOptions['plugin']['pool'], cpus = availableParallelism()): string {
  if (pool?.min_workers !== undefined || pool?.max_workers !== undefined) {
    const min = pool.min_workers ?? 0;
    const max = pool.max_workers ?? Math.max(min, cpus);
    // the pool's own default: idle_ttl is the scale-down delay, one minute when unset or 0
    const idleMs = parseDuration(pool.supervisor?.idle_ttl ?? 0, 'supervisor.idle_ttl') || 60_000;
    const idle = idleMs % 60_000 === 0 ? `${idleMs / 60_000} min` : `${Number((idleMs / 1000).toFixed(1))} s`;
    const first = min === 0 ? '1 worker to check that it starts' : plural(min, 'worker');
    return `${first} (min_workers ${min}, max_workers ${max}: more start while requests wait; idle ones stop after idle_ttl ${idle}, down to ${min === 0 ? 'none' : min})`;
  }
  const numWorkers = pool?.num_workers;
  if (numWorkers === 'auto') return 'workers (num_workers: auto, measuring)';
  if (numWorkers === undefined || numWorkers === 0) return `${plural(cpus, 'worker')}, one per CPU`;
  return plural(numWorkers, 'worker');
}

/** The `cache` section (YAML names) → the micro-cache's options. */
function toMicroCacheOptions(cache: CacheConfig): MicroCacheOptions {
  const options: MicroCacheOptions = {};
  if (cache.max_bytes !== undefined) options.max_bytes = cache.max_bytes;
  if (cache.max_entry_bytes !== undefined) options.max_entry_bytes = cache.max_entry_bytes;
  if (cache.max_age !== undefined) options.default_ttl = cache.max_age;
  if (cache.bypass_cookies !== undefined) options.bypass_cookies = cache.bypass_cookies;
  if (cache.anonymous_cookies !== undefined) options.anonymous_cookies = cache.anonymous_cookies;
  if (cache.stale_while_revalidate !== undefined) options.stale_while_revalidate = cache.stale_while_revalidate;
  return options;
}

/** RR's http.headers (+ gzip from the middleware list) → the headers module's options. */
function toHeadersOptions(headers: HeadersConfig | null, gzip: boolean): HttpHeadersOptions {
  const options: HttpHeadersOptions = { compression: gzip, request_id: true };
  if (headers === null) return options;
  if (headers.request !== undefined) options.request = headers.request;
  if (headers.response !== undefined) options.response = headers.response;
  if (headers.hide !== undefined) options.hide = headers.hide;
  if (headers.cors !== undefined) {
    const { options_success_status: _status, debug: _debug, ...cors } = headers.cors;
    options.cors = cors;
  }
  return options;
}

function buildOpsListeners(
  server: ServerOptions,
  state: {
    pools(): ReadonlyMap<string, SiteBackend>;
    draining(): boolean;
    accepting(): boolean;
    render: (() => Promise<string>) | null;
  },
): Listener[] {
  const listeners: Listener[] = [];
  const status = server.status === null ? null : { unavailableStatus: server.status.unavailable_status_code ?? 503 };
  if (server.status !== null) {
    const shared = server.metrics !== null && server.metrics.address === server.status.address;
    listeners.push({
      name: 'status',
      address: server.status.address,
      server: createOpsServer(state, { status, metrics: shared ? state.render : null }),
      scheme: 'http',
      serves: shared ? '/health, /ready, /metrics' : '/health, /ready',
    });
    if (shared) return listeners;
  }
  if (server.metrics !== null) {
    listeners.push({
      name: 'metrics',
      address: server.metrics.address,
      server: createOpsServer(state, { status: null, metrics: state.render }),
      scheme: 'http',
      serves: '/metrics',
    });
  }
  return listeners;
}

/** Each site's plugin renders its own exposition (in process, never over the network); merged with a site label. */
async function renderMetrics(
  app: App,
  sites: readonly SiteOptions[],
  token: string,
  path: string,
  traffic: SiteTraffic,
): Promise<string> {
  const texts = await Promise.all(
    sites.map(async (site) => {
      const res = await app.inject({
        method: 'GET',
        url: path,
        headers: { [INTERNAL_SITE_HEADER]: `${token} ${site.hosts === null ? '' : site.name}` },
      });
      return { site: site.name, text: res.statusCode === 200 ? res.body : '' };
    }),
  );
  return mergeExpositions([...texts, ...traffic.expositions()]);
}

/**
 * An error from a site's setup as a ConfigError pointing at the file, when it is an option problem
 * (the plugin's, the headers', the cache's or a proxy route's); null otherwise.
 */
export function locateSetupError(error: SiteSetupError, loaded: LoadedConfig): ConfigError | null {
  const located = locateOptionError(error.cause, loaded, error.site);
  const details = optionErrorDetails(error.cause);
  if (located === null || details === null) return located;
  // keys the server's own modules use
  const { key, reason } = details;
  const sitePrefix = error.site.index === null ? '' : `sites[${error.site.index}].`;
  let yaml: string | null = null;
  if (key.startsWith('micro_cache.'))
    yaml = `cache.${key.slice('micro_cache.'.length).replace('default_ttl', 'max_age')}`;
  else if (key.startsWith('proxy[')) yaml = key;
  else if (key.startsWith('headers.')) yaml = `http.${key}`;
  if (yaml === null) return located;
  // a site's own cache key or proxy list is where the value came from, when it has one
  if (!yaml.startsWith(sitePrefix) && loaded.positionOf(`${sitePrefix}${yaml}`) !== null) yaml = `${sitePrefix}${yaml}`;
  const position = loaded.positionOf(yaml) ??
    loaded.positionOf(yaml, { nearest: true }) ?? { file: loaded.file, line: 1, col: 1 };
  return new ConfigError(loaded.file, [new InvalidValueError(yaml, position, reason)]);
}

/**
 * Checks every site's options with the validators the plugin and the pool will run, before any
 * worker boots, so all problems of all sites are reported at once with their lines; the
 * server.user each site's PHP needs, against the user warmpool runs as; and that its command and
 * PHP script are there. Null: all good.
 */
export function checkSites(server: ServerOptions, loaded: LoadedConfig): ConfigError | null {
  const errors: ConfigError['errors'][number][] = [];
  for (const site of server.sites) {
    const { plugin } = site;
    for (const problem of checkOptions(plugin)) {
      const located = locateOptionError(problem, loaded, site);
      if (located !== null) errors.push(...located.errors);
    }
    // what serve's setup of the site's headers would refuse at boot, at the same key
    for (const problem of checkHttpHeaders(toHeadersOptions(site.headers, site.gzip))) {
      const located = locateSetupError(new SiteSetupError(site, problem), loaded);
      if (located !== null) errors.push(...located.errors);
    }
  }
  // server.user that warmpool, not being root, cannot switch PHP to
  errors.push(...phpUserProblems(server, loaded));
  // a worker command, php-cgi or PHP script that is not there
  errors.push(...phpCommandProblems(server, loaded));
  // the same inherited top-level key fails once per site: report it once
  const seen = new Set<string>();
  const unique = errors.filter((e) => {
    const id = `${e.line}:${e.col}:${e.reason}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  return unique.length === 0 ? null : new ConfigError(loaded.file, unique);
}
