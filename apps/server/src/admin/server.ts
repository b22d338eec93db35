// The admin socket, server side: a local unix socket (0600 from birth) that answers the CLI's
// `warmpool workers | reset | tune | reload` with newline-delimited JSON (admin/protocol.ts).
import { mkdir, lstat, chmod, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { isMainThread } from 'node:worker_threads';
import type { AnyPool, Logger } from '@warmpool/pool';
import { measureTuning, type TuneReport } from '../tuning.js';
import { adminRequest } from './client.js';
import {
  AdminBadRequestError,
  AdminSocketError,
  AdminUnsupportedError,
  AlreadyRunningError,
  DEFAULT_TUNE_WINDOW_MS,
  DrainingError,
  NoCacheError,
  MAX_REQUEST_LINE_BYTES,
  NoPhpSiteError,
  PassSiteError,
  UnknownSiteError,
  encodeLine,
  parseAdminRequest,
  toWireError,
  type AdminRequest,
  type CertsData,
  type PurgeData,
  type ResetData,
  type ResetProgress,
  type SiteStats,
  type PhpFpmConnections,
  type SiteWorkers,
  type TuneProgress,
} from './protocol.js';

/**
 * What the admin socket can do; the server core implements it over its pools (createPoolHandlers
 * does it for a map of site → Pool). `site` is optional everywhere: without it, a command applies to
 * every site (workers, stats, reset) or to the only one (tune).
 */
export interface AdminHandlers {
  /** names of the sites the server runs, in config order */
  sites(): string[];
  workers(site?: string): Promise<SiteWorkers[]>;
  stats(site?: string): SiteStats[];
  /** rolling restart; calls onProgress after each replaced worker */
  reset(site: string | undefined, onProgress: (progress: ResetProgress) => void): Promise<ResetData>;
  /** measures for windowMs; calls onProgress once when the window starts; stops when signal aborts */
  tune(
    site: string | undefined,
    windowMs: number,
    onProgress: (progress: TuneProgress) => void,
    signal: AbortSignal,
  ): Promise<TuneReport>;
  /** the config file the server was started from (absolute), for `ping` */
  config?: string;
  /** true once the server drains: reset, tune and reload are refused (WP_SERVER_DRAINING) */
  draining?: () => boolean;
  /** re-read the configuration; returns what changed, one line each. Absent: `reload` answers WP_SERVER_ADMIN_UNSUPPORTED */
  reload?(): Promise<string[]>;
  /** the certificates served (`warmpool cert status`). Absent: `certs` answers WP_SERVER_ADMIN_UNSUPPORTED */
  certificates?(): CertsData;
  /** drop micro-cache entries under a path prefix (all without one). Absent: WP_SERVER_ADMIN_UNSUPPORTED */
  cachePurge?(site: string | undefined, prefix: string | undefined): PurgeData;
}

export interface AdminServer {
  readonly path: string;
  /** stops listening, ends open connections (a running tune is aborted), removes the socket file */
  close(): Promise<void>;
}

/** Linux sun_path is 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * Listens on a unix socket at `path`, mode 0600.
 * 1. A file at `path` that is not a socket is never removed: that is an error.
 * 2. A socket that accepts a connection belongs to a live server: AlreadyRunningError.
 *    A socket that refuses (ECONNREFUSED) is left over from a server that died: it is removed.
 * 3. The parent folder is created (0700) when missing.
 * 4. The socket is created with umask 0177, so it is never wider than 0600, not even between bind
 *    and chmod; the umask is restored right after the synchronous bind.
 */
export async function startAdminServer(path: string, handlers: AdminHandlers, logger: Logger): Promise<AdminServer> {
  if (!isMainThread)
    throw new AdminSocketError(
      `the admin socket must be created on the main thread (the umask is process-wide): ${path}`,
      path,
    );
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new AdminSocketError(
      `admin socket path ${path} is ${Buffer.byteLength(path)} bytes; unix sockets allow ${MAX_SOCKET_PATH_BYTES}: choose a shorter admin.socket in warmpool.yaml`,
      path,
    );
  }
  await claimSocketPath(path);

  const sockets = new Set<Socket>();
  const aborter = new AbortController();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    serveConnection(socket, handlers, logger, aborter.signal);
  });
  try {
    await listen(server, path);
  } catch (error) {
    // Two servers raced past claimSocketPath: the loser sees the winner's socket.
    if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE' && (await isLive(path)))
      throw new AlreadyRunningError(path);
    throw new AdminSocketError(
      `cannot listen on the admin socket ${path}: ${(error as Error).message}${unwritableAdvice(error)}`,
      path,
      error,
    );
  }
  await chmod(path, 0o600); // no-op after the umask; guards filesystems that ignore it
  logger.debug({ path }, 'admin socket listening');

  let closed: Promise<void> | null = null;
  return {
    path,
    close() {
      closed ??= (async () => {
        aborter.abort(new Error('the admin socket is closing'));
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await done;
        await unlink(path).catch(() => {}); // libuv unlinks it on close already
      })();
      return closed;
    },
  };
}

/** What to do when this user may not make the socket where admin.socket says. */
function unwritableAdvice(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') return '';
  return `; give admin.socket a path in a folder this user (uid ${process.getuid?.() ?? '?'}) can write, e.g. /run/warmpool/admin.sock with systemd's RuntimeDirectory=warmpool (the CLI's workers, reset and reload need the socket)`;
}

async function claimSocketPath(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new AdminSocketError(`cannot use the admin socket path ${path}: ${(error as Error).message}`, path, error);
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    } catch (mkdirError) {
      throw new AdminSocketError(
        `cannot create the folder of the admin socket ${path}: ${(mkdirError as Error).message}${unwritableAdvice(mkdirError)}`,
        path,
        mkdirError,
      );
    }
    return;
  }
  if (!isSocket)
    throw new AdminSocketError(
      `${path} exists and is not a socket; it was left alone: remove it or choose another admin.socket in warmpool.yaml`,
      path,
    );
  if (await isLive(path)) throw new AlreadyRunningError(path);
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT')
      throw new AdminSocketError(`cannot remove the stale admin socket ${path}: ${error.message}`, path, error);
  });
}

/**
 * Who holds the admin socket at `path`, asked before a server boots: null when nothing answers (no
 * socket, or one a dead server left), else what its ping says (pid and config file; empty when
 * what answers is not a warmpool, or a socket this user may not open).
 */
export async function adminSocketHolder(path: string): Promise<{ pid?: number; config?: string } | null> {
  if (!(await isLive(path))) return null;
  try {
    const { pid, config } = await adminRequest(path, { cmd: 'ping' }, undefined, { timeoutMs: 5_000 });
    return config === undefined ? { pid } : { pid, config };
  } catch {
    return {};
  }
}

/** Whether something accepts connections on the unix socket at `path`. */
function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    // ECONNREFUSED: nobody listens (stale); ENOENT: gone meanwhile. EACCES: someone else's socket
    // we cannot even probe — treat it as live rather than delete another user's server socket.
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'EACCES' || error.code === 'EPERM'));
  });
}

function listen(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const previous = process.umask(0o177);
    try {
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    } finally {
      process.umask(previous);
    }
  });
}

/** One connection: read one request line, answer with progress lines and one final line, close. */
function serveConnection(socket: Socket, handlers: AdminHandlers, logger: Logger, signal: AbortSignal): void {
  socket.setEncoding('utf8');
  socket.on('error', () => {}); // a client that goes away mid-answer is not the server's problem
  let buffer = '';
  let started = false;
  const send = (value: unknown) => {
    if (!socket.destroyed && socket.writable) socket.write(encodeLine(value));
  };
  const finish = (value: unknown) => {
    if (!socket.destroyed && socket.writable) socket.end(encodeLine(value));
  };
  const start = (line: string) => {
    started = true;
    socket.pause();
    let request: AdminRequest;
    try {
      request = parseAdminRequest(line);
    } catch (error) {
      finish({ ok: false, error: toWireError(error) });
      return;
    }
    // `workers -i` asks every second: read-only commands log at debug, actions at info.
    const readOnly = request.cmd === 'ping' || request.cmd === 'workers' || request.cmd === 'stats';
    (readOnly ? logger.debug : logger.info).call(
      logger,
      { cmd: request.cmd, site: 'site' in request ? request.site : undefined },
      `admin: ${request.cmd}`,
    );
    runCommand(request, handlers, (progress) => send({ progress }), signal).then(
      (data) => finish({ ok: true, data }),
      (error: unknown) => {
        logger.warn(
          { cmd: request.cmd, err: { message: (error as Error)?.message, code: (error as { code?: string })?.code } },
          `admin: ${request.cmd} failed`,
        );
        finish({ ok: false, error: toWireError(error) });
      },
    );
  };
  socket.on('data', (chunk: string) => {
    if (started) return;
    buffer += chunk;
    // a request line is JSON: anything else (a goridge RPC frame, `-o rpc.listen=` naming this
    // socket) would wait forever for a newline that never comes
    const first = buffer.trimStart();
    if (first !== '' && first[0] !== '{') {
      started = true;
      finish({
        ok: false,
        error: toWireError(
          new AdminBadRequestError(
            "this is warmpool's admin socket, which speaks newline-delimited JSON (not RoadRunner's RPC): pass it with --socket, and rpc.listen's address with -o rpc.listen",
          ),
        ),
      });
      return;
    }
    const newline = buffer.indexOf('\n');
    if (newline >= 0) start(buffer.slice(0, newline));
    else if (buffer.length > MAX_REQUEST_LINE_BYTES) {
      started = true;
      finish({
        ok: false,
        error: toWireError(new AdminBadRequestError(`the request line is longer than ${MAX_REQUEST_LINE_BYTES} bytes`)),
      });
    }
  });
  // A client that half-closes without a newline still gets its answer.
  socket.on('end', () => {
    if (!started && buffer.trim() !== '') start(buffer);
    else if (!started) socket.end();
  });
}

/** Runs one admin request (the admin socket's, and the RPC listener's warmpool.Command). */
export async function runCommand(
  request: AdminRequest,
  handlers: AdminHandlers,
  progress: (p: object) => void,
  signal: AbortSignal,
): Promise<unknown> {
  if ((request.cmd === 'reset' || request.cmd === 'tune' || request.cmd === 'reload') && handlers.draining?.() === true)
    throw new DrainingError(request.cmd);
  switch (request.cmd) {
    case 'ping':
      return {
        pid: process.pid,
        sites: handlers.sites(),
        ...(handlers.config === undefined ? {} : { config: handlers.config }),
      };
    case 'workers':
      return handlers.workers(request.site);
    case 'stats':
      return handlers.stats(request.site);
    case 'reset':
      return handlers.reset(request.site, progress);
    case 'tune':
      return handlers.tune(request.site, request.windowMs ?? DEFAULT_TUNE_WINDOW_MS, progress, signal);
    case 'reload':
      if (handlers.reload === undefined) throw new AdminUnsupportedError('reload');
      return { changes: await handlers.reload() };
    case 'certs':
      if (handlers.certificates === undefined) throw new AdminUnsupportedError('certs');
      return handlers.certificates();
    case 'cache-purge':
      if (handlers.cachePurge === undefined) throw new AdminUnsupportedError('cache-purge');
      return handlers.cachePurge(request.site, request.prefix);
    default:
      throw new Error(`unhandled command ${(request as { cmd: string }).cmd}`);
  }
}

/** A site passing PHP to php-fpm (fastcgi.pass), as the admin commands see it: its connection pool. */
export interface PassSite {
  stats(): PhpFpmConnections;
  /** closes the idle connections and keeps none from now on (a drain) */
  releaseIdle(): void;
}

export interface PoolHandlersOptions {
  /** site → its php-fpm connection pool, for the sites that pass PHP to php-fpm (they have no pool of ours) */
  passes?: () => ReadonlyMap<string, PassSite>;
  /** the sites of no PHP (static files and proxy routes): named by `ping`, refused by reset, tune and workers */
  noPhp?: () => readonly string[];
  /** `reload` command; omitted: the server answers WP_SERVER_ADMIN_UNSUPPORTED */
  reload?: () => Promise<string[]>;
  /** `certs` command; omitted: the server answers WP_SERVER_ADMIN_UNSUPPORTED */
  certificates?: () => CertsData;
  /** site → its micro-cache (the sites that have one), for `cache-purge` */
  caches?: () => ReadonlyMap<string, { purge(prefix?: string): number }>;
  /** the config file the server was started from (absolute), which `ping` tells */
  config?: string;
  /** true once the server drains (reset, tune and reload are refused then) */
  draining?: () => boolean;
}

/**
 * AdminHandlers over the server's pools, one per site. `sites` is read on every command, so a reload
 * that swaps pools is seen at once. Resets run site after site, so at most one site is rolling.
 */
export function createPoolHandlers(
  sites: () => ReadonlyMap<string, AnyPool>,
  options: PoolHandlersOptions = {},
): AdminHandlers {
  const passes = options.passes ?? (() => new Map<string, PassSite>());
  const noPhp = options.noPhp ?? ((): readonly string[] => []);
  const siteNames = (): string[] => [...sites().keys(), ...passes().keys(), ...noPhp()];
  const unknown = (site: string): UnknownSiteError =>
    new UnknownSiteError(`no site named "${site}"; this server runs: ${siteNames().join(', ') || 'no sites'}`, site);
  /**
   * Throws unless `site` is absent (all sites) or one of them: with a pool or passing to php-fpm, or
   * of no PHP too when `command` is null (a command that does not act on PHP processes).
   */
  const checkKnown = (site: string | undefined, command: string | null): void => {
    if (site === undefined || sites().has(site) || passes().has(site)) return;
    if (!noPhp().includes(site)) throw unknown(site);
    if (command !== null) throw new NoPhpSiteError(site, command);
  };
  /** The pools of `site` (all when undefined); a php-fpm site has none, which `command` cannot act on. */
  const pick = (site: string | undefined, command: string): Array<[string, AnyPool]> => {
    const all = sites();
    if (site === undefined) {
      const picked = [...all];
      const [pass] = passes();
      if (picked.length === 0 && pass !== undefined) throw new PassSiteError(pass[0], pass[1].stats().address, command);
      return picked;
    }
    const pool = all.get(site);
    if (pool !== undefined) return [[site, pool]];
    const pass = passes().get(site);
    if (pass !== undefined) throw new PassSiteError(site, pass.stats().address, command);
    if (noPhp().includes(site)) throw new NoPhpSiteError(site, command);
    throw unknown(site);
  };
  const pickOne = (site: string | undefined, command: string): [string, AnyPool] => {
    const picked = pick(site, command);
    if (picked.length === 1) return picked[0]!;
    if (picked.length === 0) {
      const [files] = noPhp();
      if (files !== undefined) throw new NoPhpSiteError(files, command);
      throw new UnknownSiteError('this server runs no sites', site);
    }
    throw new UnknownSiteError(
      `this server runs ${picked.length} sites (${picked.map(([name]) => name).join(', ')}): name one, e.g. warmpool ${command} --site ${picked[0]![0]}`,
      site,
    );
  };
  /** The php-fpm sites among `site` (all when undefined), with warmpool's connections to each. */
  const pickPasses = (site: string | undefined): SiteWorkers[] => {
    const all = [...passes()].filter(([name]) => site === undefined || name === site);
    return all.map(([name, pass]) => {
      // only the fields the protocol names (the pool's stats have more)
      const { address, maxConnections, capacity, busy, idle, connecting, queued, unreachable } = pass.stats();
      const phpFpm: PhpFpmConnections = {
        address,
        maxConnections,
        capacity,
        busy,
        idle,
        connecting,
        queued,
        unreachable,
      };
      return { site: name, workers: [], phpFpm };
    });
  };
  const handlers: AdminHandlers = {
    sites: siteNames,
    ...(options.config === undefined ? {} : { config: options.config }),
    ...(options.draining === undefined ? {} : { draining: options.draining }),
    async workers(site) {
      checkKnown(site, 'list');
      const pools = [...sites()].filter(([name]) => site === undefined || name === site);
      const workers = await Promise.all(
        pools.map(async ([name, pool]): Promise<SiteWorkers> => {
          const workers = await pool.workers();
          const stats = pool.stats();
          return {
            site: name,
            workers,
            pool: { booting: stats.workers.booting, queued: stats.queued, bootError: stats.bootError },
          };
        }),
      );
      return [...workers, ...pickPasses(site)];
    },
    stats: (site) =>
      (site === undefined ? [...sites()] : pick(site, 'stats')).map(([name, pool]) => ({
        site: name,
        stats: pool.stats(),
      })),
    async reset(site, onProgress) {
      const picked = pick(site, 'reset');
      let replaced = 0;
      for (const [name, pool] of picked) {
        let done = 0;
        let total = 0;
        const listener = (p: { replaced: number; total: number }) => {
          done = p.replaced;
          total = p.total;
          onProgress({ site: name, replaced: p.replaced, total: p.total });
        };
        const waiting = (w: { pids: number[]; timeoutMs: number }) =>
          onProgress({ site: name, replaced: done, total, waiting: w });
        pool.on('pool:reset-progress', listener);
        pool.on('pool:reset-waiting', waiting);
        try {
          await pool.reset();
        } finally {
          pool.off('pool:reset-progress', listener);
          pool.off('pool:reset-waiting', waiting);
        }
        replaced += done;
      }
      const result: ResetData = { replaced, sites: picked.map(([name]) => name) };
      // every site asked: say which ones pass PHP to php-fpm and were left alone
      const skipped = site === undefined ? [...passes().keys()] : [];
      if (skipped.length > 0) result.skipped = skipped;
      return result;
    },
    async tune(site, windowMs, onProgress, signal) {
      const [name, pool] = pickOne(site, 'tune');
      onProgress({ site: name, windowMs });
      return measureTuning(pool, windowMs, { site: name, signal });
    },
  };
  if (options.reload !== undefined) handlers.reload = options.reload;
  if (options.certificates !== undefined) handlers.certificates = options.certificates;
  const { caches } = options;
  if (caches !== undefined) {
    handlers.cachePurge = (site, prefix) => {
      checkKnown(site, null); // an unknown site is named as such, not as "no cache"
      const all = caches();
      const picked = site === undefined ? [...all] : all.has(site) ? [[site, all.get(site)!] as const] : [];
      if (picked.length === 0)
        throw new NoCacheError(
          site === undefined
            ? 'no site has the micro-cache on: set cache.enabled: true in warmpool.yaml'
            : `site ${site} has no micro-cache (cache.enabled is not true for it)`,
          site,
        );
      let purged = 0;
      for (const [, cache] of picked) purged += cache.purge(prefix);
      return { purged, sites: picked.map(([name]) => name) };
    };
  }
  return handlers;
}
