// `warmpool serve [-c warmpool.yaml]`: load the config, boot every site's workers, listen, and run
// until SIGTERM/SIGINT (lifecycle.ts has the signals). Resolves with the exit code.
//
// Boot, in order (each step fails with its own exit code, see main.ts):
// 1. take over sockets handed down with LISTEN_FDS, and drop the variables before any worker starts;
// 2. load and check the config (every problem at once, with file:line:col) → exit 2;
// 3. TLS pair (http.ssl) → exit 2 with the line of http.ssl.cert;
// 4. boot each site's pool (progress lines with count and time) → exit 6 (workers) or 2 (an option);
// 5. listen on every listener → exit 5; then the admin socket; then print where logs go.
import { performance } from 'node:perf_hooks';
import { parseDuration, type Pool } from '@warmpool/pool';
import {
  ConfigError,
  InvalidValueError,
  loadConfigFile,
  toServerOptions,
  type LoadedConfig,
  type ServerOptions,
  type WarmpoolConfig,
} from '@warmpool/config';
import { createPoolHandlers, startAdminServer, type AdminServer } from '../admin/server.js';
import { SiteSetupError, type BuildOptions, buildApp, checkSites, locateSetupError, type BuiltApp } from '../app.js';
import { BootError, ListenError, ListenFdsError, TlsError } from '../errors.js';
import {
  LISTENER_ORDER,
  adoptListenFds,
  boundUrl,
  closeServers,
  installSignals,
  listenAll,
  type ListenerName,
} from '../lifecycle.js';
import { createLoggers } from '../logging.js';
import { formatDuration, formatWarning, plural, printConfigError, type CliOutput } from '../output.js';
import { exposedOpsWarnings } from '../status.js';
import { H2C_UNSUPPORTED, loadCredentials, reloadCredentials, type Credentials } from '../tls.js';
import { EXIT_BOOT, EXIT_CONFIG, EXIT_FAILED, EXIT_LISTEN, EXIT_OK } from '../exit-codes.js';

export interface ServeArgs {
  /** the config file (main.ts resolved the default) */
  config: string;
}

/** Sections whose changes SIGHUP cannot apply: a restart (or warmpool-swap) is needed. */
const RESTART_SECTIONS = ['server', 'http', 'sites', 'status', 'metrics', 'proxy', 'cache', 'admin'] as const;
const DEFAULT_DRAIN_MS = 60_000;

export async function run(args: ServeArgs, out: CliOutput): Promise<number> {
  const startedAt = performance.now();

  // 2. the config
  let loaded: LoadedConfig;
  let server: ServerOptions;
  try {
    loaded = await loadConfigFile(args.config);
    for (const warning of loaded.warnings) out.warn(formatWarning(warning));
    server = toServerOptions(loaded);
    const problems = checkSites(server, loaded);
    if (problems !== null) throw problems;
  } catch (error) {
    if (printConfigError(error, out, args.config)) return EXIT_CONFIG;
    throw error;
  }
  for (const warning of exposedOpsWarnings(server, loaded)) out.warn(formatWarning(warning));
  for (const site of server.sites) {
    for (const { key, reason } of site.ignored) {
      const at = loaded.positionOf(key) ?? loaded.positionOf(key.replace(/^sites\[\d+\]\./, ''));
      out.warn(`${at === null ? loaded.file : `${at.file}:${at.line}:${at.col}`} ${key}: ignored: ${reason}`);
    }
  }

  if (server.http.http2?.h2c === true) {
    const at = loaded.positionOf('http.http2.h2c') ?? { file: loaded.file, line: 1, col: 1 };
    out.warn(`${at.file}:${at.line}:${at.col} http.http2.h2c: ignored: ${H2C_UNSUPPORTED}`);
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

  const loggers = createLoggers(server.logs);
  for (const key of loggers.unsupported) {
    const at = loaded.positionOf(key);
    out.warn(
      `${at === null ? loaded.file : `${at.file}:${at.line}:${at.col}`} ${key}: ignored: every log channel writes to logs.output in the top-level format`,
    );
  }

  // 3. TLS
  let credentials: Credentials | null = null;
  if (server.http.ssl !== null) {
    try {
      credentials = loadCredentials(server.http.ssl);
    } catch (error) {
      if (!(error instanceof TlsError)) throw error;
      const key =
        /private key/.test(error.message) || /key does not belong/.test(error.message)
          ? 'http.ssl.key'
          : 'http.ssl.cert';
      const at = loaded.positionOf(key, { nearest: true }) ?? { file: loaded.file, line: 1, col: 1 };
      printConfigError(new ConfigError(loaded.file, [new InvalidValueError(key, at, error.message)]), out, args.config);
      return EXIT_CONFIG;
    }
  }

  const options: BuildOptions = { loaded, server, loggers, out, credentials };
  const built = buildApp(options);
  const stopped = new Promise<number>((resolve) => {
    const state = new ServerState(args, options, built, resolve);
    state.install();
    void state.boot(fds, startedAt);
  });
  return stopped;
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
  #removeSignals: () => void = () => {};
  readonly #args: ServeArgs;
  readonly #options: BuildOptions;
  readonly #built: BuiltApp;
  readonly #done: (code: number) => void;

  constructor(args: ServeArgs, options: BuildOptions, built: BuiltApp, done: (code: number) => void) {
    this.#args = args;
    this.#options = options;
    this.#built = built;
    this.#done = done;
  }

  get #out(): CliOutput {
    return this.#options.out;
  }

  install(): void {
    this.#removeSignals = installSignals({
      drain: (signal) => this.#drain(signal),
      force: (signal) => this.#force(signal),
      reload: () => this.#reloadAndPrint(),
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
      return this.#finish(this.#bootFailure(error));
    }
    if (this.#stopRequested !== null) {
      out.info(`${this.#stopRequested} during boot: stopping`);
      await app.close();
      return this.#finish(EXIT_OK);
    }
    // 5. listeners
    try {
      await listenAll([...listeners, ...opsListeners], fds);
    } catch (error) {
      if (!(error instanceof ListenError)) throw error;
      out.error(error.message);
      await app.close().catch(() => {});
      return this.#finish(EXIT_LISTEN);
    }
    for (const listener of [...listeners, ...opsListeners]) {
      const via = listener.fd === undefined ? '' : `, socket fd ${listener.fd} from LISTEN_FDS`;
      const what = listener.name === 'status' || listener.name === 'metrics' ? `${listener.name} ` : '';
      out.info(`${what}listening on ${boundUrl(listener)} (${listener.serves}${via})`);
    }
    if (this.#built.https !== null) out.detail(`TLS: ${this.#options.credentials!.summary}`);

    await this.#startAdmin();
    const { server, loggers } = this.#options;
    const access = this.#built.accessLog;
    out.info(
      `logs: ${loggers.describe()}${access !== null ? `; access log: ${access.describe()}` : server.http.access_logs ? ', access log on' : ''}`,
    );
    const workers = [...this.#built.pools.values()].reduce((n, pool) => n + pool.stats().numWorkers, 0);
    this.#phase = 'running';
    out.success(
      `warmpool ready in ${formatDuration(performance.now() - startedAt)}: ${plural(this.#built.pools.size, 'site')}, ${plural(workers, 'worker')} (pid ${process.pid}; SIGTERM drains, SIGHUP reloads, SIGUSR2 resets workers)`,
    );
    loggers.root.info({ pid: process.pid, sites: [...this.#built.pools.keys()] }, 'warmpool ready');
    if (this.#stopRequested !== null) await this.#drain(this.#stopRequested);
  }

  #bootFailure(error: unknown): number {
    const out = this.#out;
    if (error instanceof SiteSetupError) {
      const located = locateSetupError(error, this.#options.loaded);
      if (located !== null) {
        printConfigError(located, out, this.#args.config);
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
      this.#admin = await startAdminServer(
        server.admin.socket,
        createPoolHandlers(() => this.#built.pools, { reload: () => this.#reload(), caches: () => this.#built.caches }),
        loggers.root,
      );
      this.#out.info(`admin socket ${server.admin.socket} (warmpool workers | reset | tune | cache purge)`);
    } catch (error) {
      // Without an admin section the default path is best effort (a non-root user cannot write /run).
      const message = (error as Error).message;
      if (server.admin.explicit) this.#out.warn(`admin socket: ${message}`);
      else
        this.#out.warn(
          `no admin socket (${message}); set admin.socket in the config to use warmpool workers/reset/tune`,
        );
    }
  }

  async #drain(signal: NodeJS.Signals): Promise<void> {
    if (this.#phase === 'booting') {
      // listeners are not up yet: boot() stops right after the pools are ready
      this.#stopRequested = signal;
      return;
    }
    if (this.#phase === 'draining') return;
    this.#phase = 'draining';
    const out = this.#out;
    const { app, listeners, opsListeners, tracker, draining } = this.#built;
    const started = performance.now();
    out.info(
      `${signal}: draining — ${plural(tracker.busy, 'request')} in flight; no new connections, then the workers stop`,
    );
    this.#options.loggers.root.info({ signal }, 'draining');
    // 1. /ready answers 503 on the status listener from now on
    draining.value = true;
    // 2. stop accepting; busy keep-alive connections end after their reply, idle ones after a short grace
    const closed = closeServers(
      listeners.map((l) => l.server),
      tracker,
    );
    tracker.drain();
    this.#built.upgrades.goAway();
    const timer = setTimeout(() => {
      out.warn(`drain: connections still open after ${formatDuration(this.#drainBoundMs())}; closing them`);
      tracker.destroyAll();
    }, this.#drainBoundMs());
    await closed;
    clearTimeout(timer);
    // 3. the plugin marks itself draining, then each pool lets in-flight work finish and stops its workers
    await app.close();
    // 4. ops listeners and the admin socket last: /ready said 503 until the very end
    await closeServers(opsListeners.map((l) => l.server));
    await this.#admin?.close();
    this.#built.accessLog?.close();
    this.#removeSignals();
    out.success(`stopped in ${formatDuration(performance.now() - started)}`);
    this.#finish(EXIT_OK);
  }

  /** The longest destroy_timeout of the sites (the pools' own drain bound), default 60 s. */
  #drainBoundMs(): number {
    let bound = 0;
    for (const site of this.#options.server.sites) {
      const value = site.plugin.pool?.destroy_timeout;
      bound = Math.max(bound, value === undefined ? DEFAULT_DRAIN_MS : parseDuration(value, 'destroy_timeout'));
    }
    return bound || DEFAULT_DRAIN_MS;
  }

  #force(signal: NodeJS.Signals): void {
    this.#out.error(`${signal} again: exiting now; in-flight requests are cut and workers killed`);
    const kill = Promise.all(
      [...this.#built.pools.values()].map(async (pool: Pool) => {
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

  async #reloadAndPrint(): Promise<void> {
    this.#out.info('SIGHUP: reloading TLS certificate, log levels and checking the config');
    for (const line of await this.#reload()) {
      if (/NOT|cannot|needs a restart/.test(line)) this.#out.warn(line);
      else this.#out.success(line);
    }
  }

  /** What SIGHUP and the admin `reload` do; one line per change. */
  async #reload(): Promise<string[]> {
    const { server, loggers, loaded } = this.#options;
    const lines: string[] = [];
    if (this.#built.https !== null && server.http.ssl !== null) {
      try {
        const credentials = reloadCredentials(this.#built.https, server.http.ssl);
        lines.push(`TLS certificate reloaded: ${credentials.summary}`);
        loggers.root.info({ serial: credentials.serial }, 'TLS certificate reloaded');
      } catch (error) {
        lines.push(`TLS certificate NOT reloaded, the previous one stays: ${(error as Error).message}`);
        loggers.root.error({ err: { message: (error as Error).message } }, 'TLS certificate reload failed');
      }
    }
    let next: LoadedConfig;
    try {
      next = await loadConfigFile(this.#args.config);
    } catch (error) {
      lines.push(
        `config NOT re-read (nothing else changed): ${(error as Error).message.split('\n').slice(0, 2).join(' ')}`,
      );
      return lines;
    }
    lines.push(...loggers.applyLevels(next.config.logs ?? {}));
    const changed = changedSections(loaded.config, next.config);
    if (changed.length > 0) lines.push(`changed in the file, needs a restart to apply: ${changed.join(', ')}`);
    if (lines.length === 0) lines.push('nothing to reload: the file is unchanged');
    return lines;
  }

  /** SIGUSR1: logrotate moved the log files away; write to new ones at the same paths. */
  #reopenLogs(): void {
    const files = this.#options.loggers.reopen();
    const access = this.#built.accessLog;
    if (access !== null) {
      access.reopen();
      files.push(access.describe().replace(/^\S+ → /, ''));
    }
    const reopened = files.filter((path) => path !== 'stdout' && path !== 'stderr');
    this.#out.info(
      reopened.length === 0 ? 'SIGUSR1: no log file to reopen' : `SIGUSR1: reopened ${reopened.join(', ')}`,
    );
  }

  async #reset(): Promise<void> {
    const out = this.#out;
    out.info("SIGUSR2: rolling reset of every site's workers");
    const started = performance.now();
    try {
      const result = await createPoolHandlers(() => this.#built.pools).reset(undefined, (p) =>
        out.info(`site ${p.site}: replaced ${p.replaced}/${p.total} ${p.total === 1 ? 'worker' : 'workers'}`),
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

function changedSections(before: WarmpoolConfig, after: WarmpoolConfig): string[] {
  return RESTART_SECTIONS.filter((section) => JSON.stringify(before[section]) !== JSON.stringify(after[section]));
}
