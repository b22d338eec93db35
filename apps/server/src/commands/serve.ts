// `warmpool serve [-c warmpool.yaml]`: load the config, boot every site's workers, listen, and run
// until SIGTERM/SIGINT (lifecycle.ts has the signals). Resolves with the exit code.
//
// Boot, in order (each step fails with its own exit code, see main.ts):
// 1. take over sockets handed down with LISTEN_FDS, and drop the variables before any worker starts;
// 2. load and check the config (every problem at once, with file:line:col; the log files too) → exit 2;
// 3. TLS: the http.ssl pair → exit 2 with the line of http.ssl.cert; http.ssl.acme's stored
//    certificates (or temporary ones while the CA is asked: no boot waits for a CA);
// 4. boot each site's pool (progress lines with count and time) → exit 6 (workers) or 2 (an option);
// 5. listen on every listener → exit 5 (an address another program holds is found before 3, by
//    binding it once: no worker boots for a server that cannot listen; under warmpool-swap the
//    status listener first, the shared sockets once every site is ready); then ACME orders and
//    renewals start; then the admin socket; then print where logs go.
import { dirname, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseDuration, type AnyPool } from '@warmpool/pool';
import { readinessOf } from '@warmpool/fastify';
import {
  ConfigError,
  InvalidValueError,
  formatPosition,
  loadConfigFile,
  toServerOptions,
  type LoadedConfig,
  type ServerOptions,
} from '@warmpool/config';
import { adminSocketHolder, createPoolHandlers, startAdminServer, type AdminServer } from '../admin/server.js';
import {
  type BuildOptions,
  buildApp,
  checkSites,
  locateSetupError,
  type BuiltApp,
  passesOf,
  poolsOf,
  type SiteBackend,
} from '../app.js';
import { describeConnectionLimits } from '../connection-limits.js';
import { ignoredKeyWarnings } from '../ignored-keys.js';
import { memoryLimitWarnings } from '../memory-limit.js';
import { uploadsAccessWarnings } from '../uploads-access.js';
import { openFilesWarning } from '../open-files.js';
import { rootPhpWarnings } from '../root-php.js';
import type { Server as HttpServer } from 'node:http';
import type { AutomaticHttps } from '../acme/automatic-https.js';
import { fileCertificateStatus } from '../acme/certificate-status.js';
import { describeResetProgress, type CertsData } from '../admin/protocol.js';
import {
  AcmeStoreError,
  AlreadyRunningError,
  BootError,
  ListenError,
  ListenFdsError,
  SiteSetupError,
  TlsError,
} from '../errors.js';
import {
  LISTENER_ORDER,
  adoptListenFds,
  boundUrl,
  closeServers,
  installSignals,
  checkAddressesFree,
  DEFAULT_HTTPS_ADDRESS,
  listenAll,
  type Listener,
  type ListenerName,
} from '../lifecycle.js';
import { logFileProblems } from '../log-files.js';
import { alsoToLogFiles, createLoggers, logCliLines } from '../logging.js';
import { exposedRpcWarning, startRpcServer, type RpcServer } from '../rpc/server.js';
import { formatDuration, formatWarning, plural, printConfigError, type CliOutput } from '../output.js';
import { exposedOpsWarnings } from '../status.js';
import { everyoneTrustedWarnings } from '../trust-warnings.js';
import {
  type Credentials,
  type TlsContexts,
  loadMoreCertificates,
  loadTlsContexts,
  reloadCredentials,
  type TlsFiles,
  validityProblem,
} from '../tls.js';
import { EXIT_BOOT, EXIT_CONFIG, EXIT_FAILED, EXIT_LISTEN, EXIT_OK } from '../exit-codes.js';

export interface ServeArgs {
  /** the config file (main.ts resolved the default) */
  config: string;
  /** `-o key=value` overrides, applied over the file (at boot and on every SIGHUP re-read) */
  overrides?: readonly string[];
  /** run as `rr` (Laravel Octane's drop-in RoadRunner) */
  roadRunner?: boolean;
}

/**
 * Keys SIGHUP applies itself: the log levels. A change to any other key needs a restart (or
 * warmpool-swap), and SIGHUP names it: a list of those instead would miss a key added later.
 */
function appliedOnReload(key: string): boolean {
  return key === 'logs.level' || /^logs\.channels\.[^.]+\.level$/.test(key);
}
/** how many changed keys SIGHUP names before "and N more" */
const CHANGED_KEYS_SHOWN = 8;
const DEFAULT_DRAIN_MS = 60_000;
/** how often a server under warmpool-swap looks at its sites before taking the shared sockets */
const READY_POLL_MS = 50;
/** Under warmpool-swap, how often the admin socket the old colour holds is tried again. */
const ADMIN_TAKEOVER_RETRY_MS = 500;

export async function run(args: ServeArgs, out: CliOutput): Promise<number> {
  const startedAt = performance.now();

  // 2. the config
  let loaded: LoadedConfig | undefined;
  let server: ServerOptions;
  try {
    loaded = await loadConfigFile(args.config, { overrides: args.overrides ?? [] });
    server = toServerOptions(loaded);
    // the sites, and the log files, created and opened before the loggers open them (log-files.ts):
    // every problem at once (log files made only for a config that will run)
    const sites = checkSites(server, loaded);
    const problems = [sites, logFileProblems(server, loaded, { create: sites === null })].filter(
      (problem) => problem !== null,
    );
    if (problems.length > 0)
      throw new ConfigError(
        loaded.file,
        problems.flatMap((problem) => problem.errors),
      );
  } catch (error) {
    for (const warning of loaded?.warnings ?? []) out.warn(formatWarning(warning));
    if (printConfigError(error, out, args.config, args.overrides)) return EXIT_CONFIG;
    throw error;
  }
  // logs.encoding: json to stdout: every stdout line is a RoadRunner-shaped log line, and the
  // warnings below are log records too (a tool reading RoadRunner shows stderr as errors)
  const loggers = createLoggers(server.logs);
  out = alsoToLogFiles(logCliLines(out, loggers), loggers);
  for (const warning of loaded.warnings) out.warn(formatWarning(warning));
  for (const warning of exposedOpsWarnings(server, loaded)) out.warn(formatWarning(warning));
  for (const warning of everyoneTrustedWarnings(server, loaded)) out.warn(formatWarning(warning));
  const rpcWarning = exposedRpcWarning(server, loaded);
  if (rpcWarning !== null) out.warn(formatWarning(rpcWarning));
  for (const line of ignoredKeyWarnings(server, loaded)) out.warn(line);
  // RoadRunner says nothing of it, and Octane shows any line on stderr as an error
  if (args.roadRunner !== true) {
    for (const warning of rootPhpWarnings(server, loaded)) out.warn(formatWarning(warning));
    for (const warning of memoryLimitWarnings(server, loaded)) out.warn(formatWarning(warning));
    for (const warning of uploadsAccessWarnings(server, loaded)) out.warn(formatWarning(warning));
    const openFiles = openFilesWarning(server.http.max_connections);
    if (openFiles !== null) out.warn(openFiles);
  }

  // 1. sockets from systemd (after the config: it says which listeners exist)
  const configured = configuredListeners(server);
  let fds: Map<ListenerName, number>;
  try {
    fds = adoptListenFds(configured);
  } catch (error) {
    if (!(error instanceof ListenFdsError)) throw error;
    out.error(error.message);
    return EXIT_LISTEN;
  }
  // an address another program holds fails now, before any PHP worker boots (nginx binds first)
  try {
    await checkAddressesFree(configuredAddresses(server, configured), fds);
  } catch (error) {
    if (!(error instanceof ListenError)) throw error;
    out.error(withKeyPosition(error, loaded));
    return EXIT_LISTEN;
  }

  // a second server on an admin.socket another one answers on would serve without one, and every
  // admin command given its file would act on the first (under warmpool-swap: taken over once free)
  if (server.admin.explicit && process.env.WARMPOOL_SWAP_COLOUR === undefined) {
    const holder = await adminSocketHolder(server.admin.socket);
    if (holder !== null) {
      const at = loaded.positionOf('admin.socket');
      const message = new AlreadyRunningError(server.admin.socket, holder).message;
      out.error(at === null ? message : `${formatPosition(at)} admin.socket: ${message}`);
      return EXIT_LISTEN;
    }
  }

  // 3. TLS
  let tls: TlsContexts | null = null;
  let automatic: AutomaticHttps | null = null;
  const ssl = server.http.ssl;
  if (ssl !== null) {
    try {
      const contexts = loadTlsContexts(ssl);
      tls = contexts;
      if (ssl.acme !== null) {
        // the ACME client (acme-client, x509) loads only here: about 5 MB and 40 ms of every start otherwise
        const { AutomaticHttps } = await import('../acme/automatic-https.js');
        automatic = new AutomaticHttps({
          acme: ssl.acme,
          sites: server.sites,
          contexts,
          httpAddress: server.http.address,
          httpsAddress: ssl.address ?? DEFAULT_HTTPS_ADDRESS,
          out,
          logger: loggers.root.child({ component: 'acme' }),
        });
        await automatic.load();
      }
    } catch (error) {
      if (!(error instanceof TlsError) && !(error instanceof AcmeStoreError)) throw error;
      const key = error instanceof AcmeStoreError ? 'http.ssl.acme.certs_dir' : String(error.details.key);
      const at = loaded.positionOf(key, { nearest: true }) ?? { file: loaded.file, line: 1, col: 1 };
      printConfigError(
        new ConfigError(loaded.file, [new InvalidValueError(key, at, error.message)]),
        out,
        args.config,
        args.overrides,
      );
      return EXIT_CONFIG;
    }
  }

  const bootAbort = new AbortController();
  const options: BuildOptions = {
    loaded,
    server,
    loggers,
    out,
    tls,
    bootSignal: bootAbort.signal,
    ...(automatic === null ? {} : { extraMetrics: () => automatic.metrics() }),
  };

  const built = buildApp(options);
  // ACME challenges: HTTP-01 on the HTTP listener (serving the sites or only redirecting), TLS-ALPN-01 on HTTPS
  const http = built.listeners.find((listener) => listener.name === 'http');
  if (automatic !== null && http !== undefined) automatic.attachHttp(http.server as HttpServer);
  if (automatic !== null && built.https !== null) automatic.attachHttps(built.https);
  const stopped = new Promise<number>((resolve) => {
    // warmpool-swap hands its children the sockets it holds (LISTEN_FDS) and names their colour
    const shared = fds.size > 0 && process.env.WARMPOOL_SWAP_COLOUR !== undefined;
    const state = new ServerState(args, options, built, automatic, { shared, bootAbort }, resolve);
    state.install();
    void state.boot(fds, startedAt);
  });
  return stopped;
}

/** http.ssl.cert / key, when the file sets them. */
function tlsFilesOf(ssl: ServerOptions['http']['ssl']): TlsFiles | null {
  return ssl === null || ssl.cert === null || ssl.key === null ? null : { cert: ssl.cert, key: ssl.key };
}

/** The key that names each listener's address. */
const ADDRESS_KEYS: Record<ListenerName, string> = {
  http: 'http.address',
  https: 'http.ssl.address',
  status: 'status.address',
  metrics: 'metrics.address',
};

/** Each configured listener's address, as buildApp binds it. */
function configuredAddresses(server: ServerOptions, names: readonly ListenerName[]) {
  const addressOf: Record<ListenerName, string | undefined> = {
    http: server.http.address,
    https: server.http.ssl?.address ?? DEFAULT_HTTPS_ADDRESS,
    status: server.status?.address,
    metrics: server.metrics?.address,
  };
  return names.flatMap((name) => {
    const address = addressOf[name];
    return address === undefined ? [] : [{ name, address }];
  });
}

/** A listen error with the file:line of the key that names its address (`warmpool.yaml:5:3 http.address: …`). */
function withKeyPosition(error: ListenError, loaded: LoadedConfig): string {
  const key = ADDRESS_KEYS[error.details.listener as ListenerName];
  const at = key === undefined ? null : loaded.positionOf(key);
  return at === null ? error.message : `${formatPosition(at)} ${key}: ${error.message}`;
}

/** The listeners a config asks for, in LISTEN_FDS order. */
function configuredListeners(server: ServerOptions): ListenerName[] {
  const names: ListenerName[] = ['http'];
  if (server.http.ssl !== null) names.push('https');
  if (server.status !== null) names.push('status');
  if (server.metrics !== null && server.metrics.address !== server.status?.address) names.push('metrics');
  return LISTENER_ORDER.filter((name) => names.includes(name));
}

/** One running server: boot, then the signal handlers' work. */
class ServerState {
  #phase: 'booting' | 'running' | 'draining' = 'booting';
  #stopRequested: NodeJS.Signals | null = null;
  #admin: AdminServer | null = null;
  #rpc: RpcServer | null = null;
  #removeSignals: () => void = () => {};
  readonly #args: ServeArgs;
  readonly #options: BuildOptions;
  readonly #built: BuiltApp;
  readonly #automatic: AutomaticHttps | null;
  readonly #done: (code: number) => void;
  /** the public sockets came from warmpool-swap, which another server may be accepting on */
  readonly #sharedSockets: boolean;
  /** aborted by a stop signal during the boot (options.bootSignal is its signal) */
  readonly #bootAbort: AbortController;

  constructor(
    args: ServeArgs,
    options: BuildOptions,
    built: BuiltApp,
    automatic: AutomaticHttps | null,
    boot: { shared: boolean; bootAbort: AbortController },
    done: (code: number) => void,
  ) {
    this.#args = args;
    this.#options = options;
    this.#built = built;
    this.#automatic = automatic;
    this.#sharedSockets = boot.shared;
    this.#bootAbort = boot.bootAbort;
    this.#done = done;
  }

  get #out(): CliOutput {
    return this.#options.out;
  }

  install(): void {
    this.#removeSignals = installSignals({
      drain: (signal) => this.#drain(signal),
      force: (signal) => this.#force(signal),
      reload: async () => {
        await this.#reloadAndPrint();
      },
      reset: () => this.#reset(),
      reopen: () => this.#reopenLogs(),
    });
  }

  async boot(fds: Map<ListenerName, number>, startedAt: number): Promise<void> {
    const { app, listeners, opsListeners } = this.#built;
    const out = this.#out;
    // 4. sites and their workers
    try {
      await app.ready();
    } catch (error) {
      await app.close().catch(() => {});
      if (this.#stopRequested !== null) {
        out.info(`${this.#stopRequested} during boot: stopped the workers booting`);
        return this.#finish(EXIT_OK);
      }
      return this.#finish(this.#bootFailure(error));
    }
    if (this.#stopRequested !== null) {
      out.info(`${this.#stopRequested} during boot: stopping`);
      await app.close();
      return this.#finish(EXIT_OK);
    }
    // 5. listeners. Under warmpool-swap the public sockets are shared with the server this one
    //    replaces, which keeps serving until /ready says 200: a server that cannot serve yet (a
    //    php-fpm that does not answer) takes no connection from them, or it would answer some with
    //    502 while the swap waits for its /ready and rolls back. So ops first, then wait for every
    //    site, then the shared sockets.
    const shared = this.#sharedSockets && opsListeners.some((listener) => listener.name === 'status');
    const first = shared ? opsListeners : [...listeners, ...opsListeners];
    try {
      await listenAll(first, fds);
      this.#printListening(first);
      if (shared && !(await this.#untilSitesReady())) {
        out.info(`${this.#stopRequested} before every site was ready: stopping`);
        await closeServers(opsListeners.map((l) => l.server));
        await app.close();
        return this.#finish(EXIT_OK);
      }
      if (shared) {
        await listenAll(listeners, fds);
        this.#printListening(listeners);
      }
    } catch (error) {
      if (!(error instanceof ListenError)) throw error;
      out.error(withKeyPosition(error, this.#options.loaded));
      if (shared) await closeServers(opsListeners.map((l) => l.server));
      await app.close().catch(() => {});
      return this.#finish(EXIT_LISTEN);
    }
    this.#built.accepting.value = true;
    const pair = this.#options.tls?.defaultCredentials;
    if (this.#built.https !== null && pair != null && this.#options.server.http.ssl?.cert != null) {
      out.detail(`TLS: ${pair.summary}`);
      warnOfDates(out, pair, 'http.ssl.cert');
    }
    for (const [i, { credentials }] of (this.#options.tls?.filePairs ?? []).entries()) {
      out.detail(`TLS: ${credentials.summary}, for the names it holds (http.ssl.certificates)`);
      warnOfDates(out, credentials, `http.ssl.certificates[${i}].cert`);
    }
    for (const overlap of this.#options.tls?.overlaps ?? []) out.warn(overlap);
    // ACME: certificates missing from the store are ordered now that the challenges can be answered
    try {
      await this.#automatic?.start();
    } catch (error) {
      if (!(error instanceof ListenError)) throw error;
      out.error(error.message);
      await closeServers([...listeners, ...opsListeners].map((l) => l.server));
      await app.close().catch(() => {});
      return this.#finish(EXIT_LISTEN);
    }

    await this.#startAdmin();
    if (!(await this.#startRpc())) {
      await closeServers([...listeners, ...opsListeners].map((l) => l.server));
      await this.#admin?.close();
      await app.close().catch(() => {});
      return this.#finish(EXIT_LISTEN);
    }
    const { server, loggers } = this.#options;
    const access = this.#built.accessLog;
    out.info(
      `logs: ${loggers.describe()}${access !== null ? `; access log: ${access.describe()}` : server.http.access_logs ? ', access log on' : ''}`,
    );
    const limits = describeConnectionLimits(server.http);
    if (limits !== null) out.info(`connections: ${limits}`);
    // the workers that run (a site whose workers cannot boot has none), not the sites' targets
    const workers = [...poolsOf(this.#built.backends).values()].reduce((n, pool) => {
      const { ready, working } = pool.stats().workers;
      return n + ready + working;
    }, 0);
    const sites = this.#built.backends.size;
    this.#phase = 'running';
    const ready = `warmpool ready in ${formatDuration(performance.now() - startedAt)}: ${plural(sites, 'site')}, ${server.sites.some((site) => site.php) ? plural(workers, 'worker') : 'no PHP'} (pid ${process.pid}; SIGTERM drains, SIGHUP reloads, SIGUSR2 resets workers)`;
    // several sites keep serving when one cannot boot; when none of them has PHP running and nothing
    // else serves, a ✓ would hide that every request gets 502
    const pools = [...poolsOf(this.#built.backends).values()];
    const allDown =
      pools.length > 0 &&
      workers === 0 &&
      pools.every((pool) => pool.stats().bootError !== null) &&
      server.sites.every((site) => site.php) &&
      passesOf(this.#built.backends).size === 0;
    if (allDown)
      out.warn(
        `${ready}; but no site's PHP workers could boot (said above): every request gets 502 while warmpool retries; fix the app, then warmpool reset`,
      );
    else out.success(ready);
    loggers.root.info({ pid: process.pid, sites: [...this.#built.backends.keys()] }, 'warmpool ready');
    if (this.#stopRequested !== null) await this.#drain(this.#stopRequested);
  }

  #printListening(listeners: readonly Listener[]): void {
    for (const listener of listeners) {
      const via = listener.fd === undefined ? '' : `, socket fd ${listener.fd} from LISTEN_FDS`;
      const what = listener.name === 'status' || listener.name === 'metrics' ? `${listener.name} ` : '';
      this.#out.info(`${what}listening on ${boundUrl(listener)} (${listener.serves}${via})`);
    }
  }

  /**
   * Under warmpool-swap, before the shared sockets: resolves true once every site is ready (as
   * /ready counts it), false when a stop signal came first. The sites' own boot lines said why
   * one is not (a php-fpm that does not answer, and what to do).
   */
  async #untilSitesReady(): Promise<boolean> {
    const waiting = (): string[] =>
      [...this.#built.backends]
        .filter(([, backend]) => readinessOf(backend.stats(), false) !== 'ready')
        .map(([name]) => name);
    let said = false;
    for (;;) {
      if (this.#stopRequested !== null) return false;
      const sites = waiting();
      if (sites.length === 0) return true;
      if (!said) {
        this.#out.info(
          `under warmpool-swap: waiting for ${sites.length === 1 ? 'site' : 'sites'} ${sites.join(', ')} to be ready before taking connections from the shared sockets`,
        );
        said = true;
      }
      await new Promise((resolve) => setTimeout(resolve, READY_POLL_MS));
    }
  }

  #bootFailure(error: unknown): number {
    const out = this.#out;
    if (error instanceof SiteSetupError) {
      const located = locateSetupError(error, this.#options.loaded);
      if (located !== null) {
        printConfigError(located, out, this.#args.config, this.#args.overrides);
        return EXIT_CONFIG;
      }
      const code = (error.cause as { code?: string } | null)?.code ?? '';
      if (/^WP_(WORKER|POOL|PROTOCOL)_/.test(code)) {
        out.error(new BootError(error.site.name, error.cause).message);
        return EXIT_BOOT;
      }
      out.error(error.message);
      return EXIT_FAILED;
    }
    out.error(`boot failed: ${(error as Error)?.stack ?? String(error)}`);
    return EXIT_FAILED;
  }

  async #startAdmin(): Promise<void> {
    const { server, loggers } = this.#options;
    try {
      this.#admin = await startAdminServer(server.admin.socket, this.#handlers(), loggers.root);
      this.#out.info(
        `admin socket ${server.admin.socket} (warmpool workers | reset | tune | cache purge | cert status)`,
      );
    } catch (error) {
      // Under warmpool-swap, both colours given one admin.socket: the old server holds it while it
      // drains. The new one takes it once released (it ran without one for good before, and every
      // admin command failed until the next swap).
      if (error instanceof AlreadyRunningError && process.env.WARMPOOL_SWAP_COLOUR !== undefined) {
        this.#out.info(
          `admin socket ${server.admin.socket}: held by the server this one replaces; taken over once that one has drained (give each colour its own admin.socket to have it at once)`,
        );
        this.#takeAdminOver();
        return;
      }
      // Without an admin section the default path is best effort (a non-root user cannot write /run).
      const message = (error as Error).message;
      if (server.admin.explicit) this.#out.warn(`admin socket: ${message}`);
      // with rpc.listen the CLI reaches the server there: the default path is not worth a warning
      else if (server.rpc !== null) loggers.root.debug(`no admin socket (${message}); rpc.listen serves the CLI`);
      else
        this.#out.warn(
          `no admin socket (${message}); set admin.socket in the config to use warmpool workers/reset/tune`,
        );
    }
  }

  /** Tries the admin socket again every half second until it is free (or this server stops). */
  #takeAdminOver(): void {
    const { server, loggers } = this.#options;
    const retry = setInterval(() => {
      if (this.#phase === 'draining') {
        clearInterval(retry);
        return;
      }
      startAdminServer(server.admin.socket, this.#handlers(), loggers.root).then(
        (admin) => {
          clearInterval(retry);
          if (this.#phase === 'draining') {
            void admin.close();
            return;
          }
          this.#admin = admin;
          this.#out.info(`admin socket ${server.admin.socket} taken over (warmpool workers | reset | tune | ...)`);
        },
        () => {}, // still held: the next try
      );
    }, ADMIN_TAKEOVER_RETRY_MS);
    retry.unref();
  }

  /** rpc.listen: RoadRunner's RPC on the same handlers as the admin socket; false when it cannot bind. */
  async #startRpc(): Promise<boolean> {
    const { server, loggers } = this.#options;
    if (server.rpc === null) return true;
    try {
      this.#rpc = await startRpcServer(server.rpc, this.#handlers(), loggers.root);
    } catch (error) {
      if (!(error instanceof ListenError)) throw error;
      this.#out.error(error.message);
      return false;
    }
    this.#out.info(`rpc listening on ${this.#rpc.url} (rr reset, workers; goridge RPC)`);
    return true;
  }

  /** What the admin socket and the RPC listener answer with. */
  #handlers() {
    return createPoolHandlers(() => poolsOf(this.#built.backends), {
      passes: () => passesOf(this.#built.backends),
      noPhp: () => this.#options.server.sites.filter((site) => !site.php).map((site) => site.name),
      reload: () => this.#reloadAndPrint('warmpool reload'),
      certificates: () => this.#certificates(),
      caches: () => this.#built.caches,
      config: resolve(this.#args.config),
      draining: () => this.#phase === 'draining',
    });
  }

  /** `warmpool cert status`: http.ssl.cert's pair (when set), then the automatic certificates. */
  #certificates(): CertsData {
    const { tls, server } = this.#options;
    const file = server.http.ssl?.cert ?? null;
    const pair = file === null ? null : (tls?.defaultCredentials ?? null);
    return {
      automatic: this.#automatic !== null,
      certificates: [
        ...(pair === null || file === null ? [] : [fileCertificateStatus(pair, file)]),
        ...(tls?.filePairs ?? []).map(({ credentials, file: more }) => fileCertificateStatus(credentials, more)),
        ...(this.#automatic?.status() ?? []),
      ],
    };
  }

  async #drain(signal: NodeJS.Signals): Promise<void> {
    if (this.#phase === 'booting') {
      // listeners are not up yet: the workers still booting are killed, then boot() stops
      this.#stopRequested = signal;
      this.#bootAbort.abort();
      return;
    }
    if (this.#phase === 'draining') return;
    this.#phase = 'draining';
    const out = this.#out;
    const { app, listeners, opsListeners, tracker, draining } = this.#built;
    const started = performance.now();
    out.info(
      `${signal}: draining — ${plural(tracker.requestsInFlight, 'request')} in flight; no new connections, then the workers stop`,
    );
    this.#options.loggers.root.info({ signal }, 'draining');
    // 1. /ready answers 503 on the status listener from now on; no ACME order or renewal starts
    draining.value = true;
    // a php-fpm this server passes to gets its idle children back now, for whoever takes over
    for (const pass of passesOf(this.#built.backends).values()) pass.releaseIdle();
    await this.#automatic?.stop();
    // 2. stop accepting; busy keep-alive connections end after their reply, idle ones after a short grace
    const closed = closeServers(
      listeners.map((l) => l.server),
      tracker,
    );
    tracker.drain();
    this.#built.upgrades.goAway();
    const timer = setTimeout(() => {
      out.warn(
        `drain: connections still open after ${formatDuration(this.#drainBoundMs())}: ${tracker.describeOpen()}; closing them`,
      );
      tracker.destroyAll();
    }, this.#drainBoundMs());
    await closed;
    clearTimeout(timer);
    // 3. every site's pool lets in-flight work finish and stops its workers, all at once: the
    //    plugin's own close (app.close) ran them one site after another, so a drain grew by two
    //    destroy_timeouts a site and could outlast systemd's TimeoutStopSec
    await Promise.all([...this.#built.backends].map(([name, backend]) => this.#stopSite(name, backend)));
    await app.close();
    // 4. ops listeners and the admin socket last: /ready said 503 until the very end
    await closeServers(opsListeners.map((l) => l.server));
    await this.#admin?.close();
    await this.#rpc?.close();
    this.#built.accessLog?.close();
    this.#removeSignals();
    out.success(`stopped in ${formatDuration(performance.now() - started)}`);
    this.#finish(EXIT_OK);
  }

  /** One site's PHP at the end of a drain: its workers stop (or its php-fpm connections close), said as it goes. */
  async #stopSite(name: string, backend: SiteBackend): Promise<void> {
    if (backend.pool === null && backend.fastcgi === null) return;
    const started = performance.now();
    const what = backend.pool === null ? 'connections to php-fpm' : 'PHP workers';
    this.#out.info(`site ${name}: stopping its ${what}`);
    await Promise.all([backend.pool?.close(), backend.fastcgi?.close()]);
    this.#out.success(`site ${name}: ${what} stopped in ${formatDuration(performance.now() - started)}`);
  }

  /** The longest destroy_timeout of the sites (the pools' own drain bound), default 60 s. */
  #drainBoundMs(): number {
    // a site without PHP processes of its own (php-fpm, proxy routes, static files) has no pool
    // and no destroy_timeout: it takes the top level's, so one open event stream there no longer
    // holds every stop for 60 s whatever the operator set
    const top = this.#options.loaded.config.http.pool?.destroy_timeout;
    const fallback = top === undefined ? DEFAULT_DRAIN_MS : parseDuration(top, 'http.pool.destroy_timeout');
    let bound = 0;
    for (const site of this.#options.server.sites) {
      const value = site.plugin.pool?.destroy_timeout;
      bound = Math.max(bound, value === undefined ? fallback : parseDuration(value, 'destroy_timeout'));
    }
    return bound || fallback;
  }

  #force(signal: NodeJS.Signals): void {
    this.#out.error(`${signal} again: exiting now; in-flight requests are cut and workers killed`);
    const kill = Promise.all(
      [...poolsOf(this.#built.backends).values()].map(async (pool: AnyPool) => {
        for (const worker of await pool.workers()) {
          try {
            process.kill(worker.pid, 'SIGKILL');
          } catch {
            // gone already
          }
        }
      }),
    );
    void Promise.race([kill, new Promise((resolve) => setTimeout(resolve, 500))]).finally(() =>
      process.exit(EXIT_FAILED),
    );
  }

  /** A reload said in the server's own output, whoever asked: SIGHUP or `warmpool reload`. */
  async #reloadAndPrint(by = 'SIGHUP'): Promise<string[]> {
    if (this.#phase === 'draining') {
      this.#out.info(`${by} while draining: ignored (the server is stopping)`);
      return [];
    }
    // the certificate files only when the config names some: ACME's are renewed by the server itself
    const ssl = this.#options.server.http.ssl;
    const files = this.#options.tls !== null && (tlsFilesOf(ssl) !== null || (ssl?.certificates ?? []).length > 0);
    this.#out.info(`${by}: reloading ${files ? 'TLS certificate files, ' : ''}log levels and checking the config`);
    const lines = await this.#reload();
    for (const line of lines) {
      if (/NOT|cannot|needs a restart|browsers refuse/.test(line)) this.#out.warn(line);
      else this.#out.success(line);
    }
    return lines;
  }

  /** What SIGHUP and the admin `reload` do; one line per change. */
  async #reload(): Promise<string[]> {
    const { server, loggers, loaded } = this.#options;
    const lines: string[] = [];
    const files = tlsFilesOf(server.http.ssl);
    if (this.#options.tls !== null && files !== null) {
      try {
        const credentials = reloadCredentials(this.#options.tls, files);
        const problem = validityProblem(credentials.x509);
        lines.push(`TLS certificate reloaded: ${credentials.summary}${problem === null ? '' : `, but ${problem}`}`);
        loggers.root.info({ serial: credentials.serial }, 'TLS certificate reloaded');
      } catch (error) {
        lines.push(`TLS certificate NOT reloaded, the previous one stays: ${(error as Error).message}`);
        loggers.root.error({ err: { message: (error as Error).message } }, 'TLS certificate reload failed');
      }
    }
    const more = server.http.ssl?.certificates ?? [];
    if (this.#options.tls !== null && more.length > 0) {
      try {
        for (const line of loadMoreCertificates(this.#options.tls, more))
          lines.push(`TLS certificate reloaded: ${line}`);
        for (const { credentials } of this.#options.tls.filePairs) {
          const problem = validityProblem(credentials.x509);
          if (problem !== null) lines.push(`TLS certificate ${credentials.summary}: ${problem}`);
        }
      } catch (error) {
        lines.push(`http.ssl.certificates NOT reloaded, the previous pairs stay: ${(error as Error).message}`);
        loggers.root.error({ err: { message: (error as Error).message } }, 'TLS certificates reload failed');
      }
    }
    let next: LoadedConfig;
    try {
      next = await loadConfigFile(this.#args.config, { overrides: this.#args.overrides ?? [] });
    } catch (error) {
      // every error the file has (the message's first line counts them), then what to do
      const errors = (error as Error).message
        .split('\n')
        .map((line) => line.trim())
        // the loader's advice for a file that is not there (pass -c) is no use to a running server
        .map((line) => line.replace('; pass the right path with -c, or create it', ''))
        .filter((line) => line !== '');
      const missing = (error as { code?: unknown }).code === 'WP_CONFIG_FILE_UNREADABLE';
      lines.push(
        `config NOT re-read, the running config stays (${missing ? `put the file back at ${this.#args.config}` : 'fix the file'}, then reload again): ${errors.join(' | ')}`,
      );
      return lines;
    }
    lines.push(...loggers.applyLevels(next.config.logs ?? {}));
    const changed = changedKeys(loaded.config, next.config).filter((key) => !appliedOnReload(key));
    if (changed.length > 0) {
      const more = changed.length > CHANGED_KEYS_SHOWN ? ` and ${changed.length - CHANGED_KEYS_SHOWN} more` : '';
      lines.push(
        `changed in the file, needs a restart to apply: ${changed.slice(0, CHANGED_KEYS_SHOWN).join(', ')}${more}`,
      );
    }
    // a php-fpm operator's `systemctl reload` after a deploy: say what re-reads PHP code
    if (lines.length === 0)
      lines.push('nothing to reload: the file is unchanged (new PHP code of a worker site: `warmpool reset`)');
    return lines;
  }

  /** SIGUSR1: logrotate moved the log files away; write to new ones at the same paths. */
  #reopenLogs(): void {
    const files = [...this.#options.loggers.reopen(), ...(this.#built.accessLog?.reopen() ?? [])];
    const reopened = files.filter((file) => file.error === null).map((file) => file.path);
    if (files.length === 0) this.#out.info('SIGUSR1: no log file to reopen');
    else if (reopened.length > 0) this.#out.info(`SIGUSR1: reopened ${reopened.join(', ')}`);
    for (const { path, error } of files)
      if (error !== null)
        this.#out.error(
          `SIGUSR1: cannot reopen ${path} (${(error as NodeJS.ErrnoException).code ?? error.message}): still writing to the file it had open (now renamed); let the server's user create files in ${dirname(path)} (logrotate: create with its owner), then send SIGUSR1 again`,
        );
  }

  async #reset(): Promise<void> {
    const out = this.#out;
    if (this.#phase === 'draining') return out.info('SIGUSR2 while draining: ignored (the server is stopping)');
    out.info("SIGUSR2: rolling reset of every site's workers");
    const started = performance.now();
    try {
      const result = await createPoolHandlers(() => poolsOf(this.#built.backends)).reset(undefined, (p) =>
        // the second event of a site with a request in flight is its wait, not a second "replaced"
        out.info(`site ${describeResetProgress(p)}`),
      );
      out.success(
        `reset done in ${formatDuration(performance.now() - started)}: ${plural(result.replaced, 'worker')} replaced`,
      );
    } catch (error) {
      out.error(`reset failed: ${(error as Error).message}`);
    }
  }

  #finish(code: number): void {
    this.#removeSignals();
    this.#done(code);
  }
}

/** The keys whose values differ between two configs, as dotted paths down to the values that changed. */
export function changedKeys(before: unknown, after: unknown, path = ''): string[] {
  const at = (key: string) => (path === '' ? key : `${path}.${key}`);
  // a section added or removed: each of its keys, so an added logs.level alone is applied too; the
  // loader gives null for a section the file leaves out (a logs: added later read as all of logs changed)
  if ((before === undefined || before === null) && isPlainObject(after)) before = {};
  if ((after === undefined || after === null) && isPlainObject(before)) after = {};
  // sites by their hosts, not their place: a site inserted above the others named their keys as changed
  if (path === 'sites' && Array.isArray(before) && Array.isArray(after)) return changedSites(before, after);
  if (Array.isArray(before) && Array.isArray(after)) {
    const length = Math.max(before.length, after.length);
    return Array.from({ length }, (_, i) => changedKeys(before[i], after[i], `${path}[${i}]`)).flat();
  }
  if (isPlainObject(before) && isPlainObject(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    return [...keys].flatMap((key) => changedKeys(before[key], after[key], at(key)));
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [path];
}

/**
 * Sites matched by their hosts (the same list first, then any host in common, in file order): an
 * added or removed one is named as such, a kept one by its keys at its new place.
 */
function changedSites(before: readonly unknown[], after: readonly unknown[]): string[] {
  const hostsOf = (site: unknown): string[] =>
    isPlainObject(site) && Array.isArray(site.hosts) ? site.hosts.map((host) => String(host)) : [];
  const pairOf = new Map<number, number>(); // after index → before index
  const taken = new Set<number>();
  const match = (same: (a: string[], b: string[]) => boolean) => {
    after.forEach((site, i) => {
      if (pairOf.has(i)) return;
      const hosts = hostsOf(site);
      const j = before.findIndex((old, k) => !taken.has(k) && same(hostsOf(old), hosts));
      if (j === -1) return;
      pairOf.set(i, j);
      taken.add(j);
    });
  };
  match((a, b) => a.length > 0 && a.join(' ') === b.join(' '));
  match((a, b) => a.some((host) => b.includes(host)));
  const named = (site: unknown) => hostsOf(site).join(', ') || 'no hosts';
  const keys: string[] = [];
  before.forEach((site, j) => {
    if (!taken.has(j)) keys.push(`sites[${j}] (${named(site)}) removed`);
  });
  after.forEach((site, i) => {
    const j = pairOf.get(i);
    keys.push(
      ...(j === undefined ? [`sites[${i}] (${named(site)}) added`] : changedKeys(before[j], site, `sites[${i}]`)),
    );
  });
  return keys;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A certificate the server starts with whose dates browsers refuse: said, with what to do. */
function warnOfDates(out: CliOutput, credentials: Credentials, key: string): void {
  const problem = validityProblem(credentials.x509);
  if (problem !== null) out.warn(`${key}: ${credentials.summary}: ${problem}`);
}
