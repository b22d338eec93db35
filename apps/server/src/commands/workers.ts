// `warmpool workers [--site NAME] [-i] [--json]`: the running server's workers as a table;
// -i refreshes every second until Ctrl-C (the screen is cleared between frames on a terminal only).
import type { WorkerInfo } from '@warmpool/pool';
import {
  adminRequest,
  adminFailure,
  exitCodeOf,
  EXIT_OK,
  type AdminCommandArgs,
  type Output,
  type RunContext,
} from '../admin/client.js';
import type { SiteWorkers } from '../admin/protocol.js';

const DEFAULT_INTERVAL_MS = 1000;
/** Cursor home + clear screen: only written when stdout is a terminal. */
const CLEAR_SCREEN = '\x1b[H\x1b[2J';

export async function run(args: AdminCommandArgs, out: Output, context: RunContext = {}): Promise<number> {
  const stdout = context.stdout ?? process.stdout;
  const request = args.site === undefined ? { cmd: 'workers' as const } : { cmd: 'workers' as const, site: args.site };
  if (args.interactive !== true) {
    try {
      const sites = await adminRequest(args.socket, request);
      if (args.json === true) stdout.write(`${JSON.stringify(sites, null, 2)}\n`);
      else printWorkers(sites, out);
      return EXIT_OK;
    } catch (error) {
      return adminFailure(error, out, args.json, stdout);
    }
  }

  // Interactive: until Ctrl-C (or the caller's signal), one frame per interval.
  const stop = stopSignal(context.signal);
  const intervalMs = context.intervalMs ?? DEFAULT_INTERVAL_MS;
  try {
    while (!stop.signal.aborted) {
      let sites: SiteWorkers[];
      try {
        sites = await adminRequest(args.socket, request, undefined, { signal: stop.signal });
      } catch (error) {
        if (stop.signal.aborted) break;
        out.error((error as Error).message);
        return exitCodeOf(error);
      }
      if (args.json === true) stdout.write(`${JSON.stringify(sites)}\n`);
      else {
        if (stdout.isTTY === true) stdout.write(CLEAR_SCREEN);
        out.info(
          `warmpool workers at ${new Date().toLocaleTimeString()} (every ${intervalMs / 1000}s; Ctrl-C to stop)`,
        );
        printWorkers(sites, out);
      }
      await delay(intervalMs, stop.signal);
    }
    return EXIT_OK;
  } finally {
    stop.dispose();
  }
}

/**
 * The table: pid, state, jobs, RSS (MiB), age, idle, busy (how long the running request has run); a
 * site column when several sites run, a request column (method and path) when a worker runs one, a
 * recycle column when a worker is marked.
 */
export function printWorkers(sites: readonly SiteWorkers[], out: Output): void {
  // a site passing PHP to php-fpm has no workers of ours: one line on warmpool's connections to it
  for (const { site, phpFpm } of sites) {
    if (phpFpm === undefined) continue;
    const queued = phpFpm.queued === 0 ? '' : `; ${phpFpm.queued} requests waiting for one`;
    if (phpFpm.unreachable !== null) {
      out.error(`site ${site}: php-fpm at ${phpFpm.address} does not answer: ${phpFpm.unreachable}`);
      continue;
    }
    // fewer than max_connections: php-fpm was found serving fewer at once (pm.max_children below it,
    // or children held by other clients), which warmpool checks again whenever requests wait
    const limit =
      phpFpm.capacity < phpFpm.maxConnections
        ? `${phpFpm.capacity} for now (php-fpm had no more children free; max_connections is ${phpFpm.maxConnections})`
        : `${phpFpm.maxConnections}`;
    out.info(
      `site ${site}: PHP runs in php-fpm at ${phpFpm.address} (its processes, not warmpool's); ` +
        `connections to it: ${phpFpm.busy} busy, ${phpFpm.idle} idle, at most ${limit}${queued}`,
    );
  }
  const poolSites = sites.filter((s) => s.phpFpm === undefined);
  const all = poolSites.flatMap(({ site, workers }) => workers.map((worker) => ({ site, worker })));
  // what the table cannot show: workers still booting, requests waiting, why boots fail
  for (const { site, workers, pool } of poolSites) {
    if (pool === undefined) continue;
    const running = workers.some((worker) => worker.state !== 'exited');
    if (pool.bootError !== null && !running && pool.booting === 0)
      out.error(
        `site ${site}: workers cannot boot: ${pool.bootError} (retried on its own; \`warmpool reset\` tries now)`,
      );
    const notes = [
      ...(pool.booting > 0 ? [`${pool.booting} worker${pool.booting === 1 ? '' : 's'} booting`] : []),
      ...(pool.queued > 0 ? [`${pool.queued} request${pool.queued === 1 ? '' : 's'} waiting for a worker`] : []),
    ];
    if (notes.length > 0) out.info(`site ${site}: ${notes.join(', ')}`);
  }
  if (all.length === 0) {
    if (poolSites.length > 0) out.info(`no workers running (${poolSites.map((s) => s.site).join(', ')})`);
    else if (sites.length === 0) out.info('no site of this server runs PHP (static files and proxy routes only)');
    return;
  }
  // beside a php-fpm site's line too: the table would read as that site's
  const withSite = poolSites.length > 1 || poolSites.length < sites.length;
  const withMark = all.some(({ worker }) => worker.markedFor !== null);
  // a worker held by one request that never ends shows here, with what it runs
  const withRequest = all.some(({ worker }) => typeof worker.request === 'string');
  const columns = [
    ...(withSite ? ['site'] : []),
    'pid',
    'state',
    'jobs',
    'RSS (MiB)',
    'age',
    'idle',
    'busy',
    ...(withRequest ? ['request'] : []),
    ...(withMark ? ['recycle'] : []),
  ];
  const rows = all.map(({ site, worker }) => [
    ...(withSite ? [site] : []),
    ...workerCells(worker),
    ...(withRequest ? [worker.request ?? ''] : []),
    ...(withMark ? [worker.markedFor ?? ''] : []),
  ]);
  out.table(rows, columns);
}

function workerCells(worker: WorkerInfo): string[] {
  return [
    String(worker.pid),
    worker.state,
    String(worker.jobs),
    (worker.rssBytes / (1024 * 1024)).toFixed(1),
    formatAge(worker.ageMs),
    // idle since its last request: a working row has none (its busy column runs instead)
    worker.idleMs === null || worker.state === 'working' ? '-' : formatAge(worker.idleMs),
    // a server older than this field sends none
    typeof worker.requestMs === 'number' ? formatAge(worker.requestMs) : '-',
  ];
}

/** "42s", "3m05s", "2h03m", "4d07h": two units at most, enough to read at a glance. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86_400)}d${pad(Math.floor((s % 86_400) / 3600))}h`;
}

/** The caller's signal, or one that SIGINT aborts (the handler is removed again by dispose). */
function stopSignal(given: AbortSignal | undefined): { signal: AbortSignal; dispose(): void } {
  if (given !== undefined) return { signal: given, dispose: () => {} };
  const controller = new AbortController();
  const onSigint = () => controller.abort();
  process.once('SIGINT', onSigint);
  return { signal: controller.signal, dispose: () => process.off('SIGINT', onSigint) };
}

function delay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
