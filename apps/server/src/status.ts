// The ops listeners, as RoadRunner has them: `status.address` answers /health and /ready (RR's
// status plugin) and `metrics.address` answers /metrics (Prometheus), each on its own listener so
// they are never reachable through the public one. Nothing is served for a section the file omits.
// When both sections name the same address, one listener serves all three paths.
//
// /health  200 {"status":"ok"} while every site serves; else status.unavailable_status_code (503)
//          with "closing" or "failing" (no worker up and boots keep failing).
// /ready   200 {"status":"ready"} when every site has a worker ready or working; else the
//          unavailable code with "draining" (shutdown started), "closing" or "not_ready".
// Both carry per-site details: {"status":…, "sites":{"default":{"status":…,"workers":{…}}}}.
// /metrics the warmpool plugin's exposition for each site (rendered by the site's own plugin
//          instance), merged with a `site` label on every sample.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { LoadedConfig, ServerOptions } from '@warmpool/config';
import { livenessOf, PROMETHEUS_CONTENT_TYPE, readinessOf, workerCounts } from '@warmpool/fastify';
import type { PoolStats } from '@warmpool/pool';
import { parseAddress } from './lifecycle.js';

export const STATUS_HEALTH_PATH = '/health';
export const STATUS_READY_PATH = '/ready';
export const METRICS_PATH = '/metrics';

export interface OpsState {
  /** every site's stats (its pool's, or for a site passing to php-fpm its connections') */
  pools(): ReadonlyMap<string, { stats(): PoolStats }>;
  draining(): boolean;
  /** false until the public listeners take connections (/ready is not_ready before) */
  accepting(): boolean;
}

export interface OpsServerOptions {
  /** serve /health and /ready */
  status: { unavailableStatus: number } | null;
  /** serve /metrics with this renderer */
  metrics: (() => Promise<string>) | null;
}

/** A host part that binds every interface: empty (":9090"), 0.0.0.0, :: (and its spellings). */
export function isAllInterfaces(address: string): boolean {
  const { host } = parseAddress(address);
  // "0" too: it is no address, and resolves to 0.0.0.0
  return (
    host === undefined ||
    /^0+$/.test(host) ||
    host === '0.0.0.0' ||
    /^(::|0*:(0*:)*:?0*|::ffff:0\.0\.0\.0|::ffff:0+:0+)$/i.test(host)
  );
}

/**
 * Warnings for ops listeners bound to every interface: /metrics tells anyone who reaches the port
 * the site names, worker counts and memory, /health and /ready the server's state. Each warning is
 * `{ key, file, line, col, message }` (output.ts formatWarning).
 */
export function exposedOpsWarnings(server: Pick<ServerOptions, 'status' | 'metrics'>, loaded: LoadedConfig) {
  const warnings: Array<{ key: string; file: string; line: number; col: number; message: string }> = [];
  for (const [key, address, what] of [
    ['status.address', server.status?.address, '/health and /ready'],
    ['metrics.address', server.metrics?.address, '/metrics (site names, workers, memory)'],
  ] as const) {
    if (address === undefined || !isAllInterfaces(address)) continue;
    const at = loaded.positionOf(key) ?? { file: loaded.file, line: 1, col: 1 };
    warnings.push({
      key,
      file: at.file,
      line: at.line,
      col: at.col,
      message: `"${address}" listens on every interface: anyone who can reach this port reads ${what}; bind it to 127.0.0.1 (or a private address your monitoring reaches) or firewall the port`,
    });
  }
  return warnings;
}

export function createOpsServer(state: OpsState, options: OpsServerOptions): Server {
  return createServer((req, res) => {
    void handle(req, res, state, options).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${(error as Error).message}\n`);
    });
  });
}

async function handle(
  req: IncomingMessage,
  res: ServerResponse,
  state: OpsState,
  options: OpsServerOptions,
): Promise<void> {
  const [path, query] = (req.url ?? '/').split('?', 2) as [string, string | undefined];
  if (req.method !== 'GET' && req.method !== 'HEAD')
    return send(res, req, 405, 'text/plain; charset=utf-8', 'Method Not Allowed\n', { allow: 'GET, HEAD' });
  if (options.status !== null && (path === STATUS_HEALTH_PATH || path === STATUS_READY_PATH)) {
    // ?site=NAME: that site alone (RoadRunner's /ready?plugin=): one site's php-fpm down took every
    // site out of a load balancer that asked /ready
    const site = new URLSearchParams(query ?? '').get('site');
    const scoped = site === null ? state : onlySite(state, site);
    if (scoped === null)
      return send(
        res,
        req,
        404,
        'text/plain; charset=utf-8',
        `Not Found: no site "${site}"; sites: ${[...state.pools().keys()].join(', ')}\n`,
      );
    const report = path === STATUS_HEALTH_PATH ? health(scoped) : readiness(scoped);
    const ok = report.status === 'ok' || report.status === 'ready';
    return send(
      res,
      req,
      ok ? 200 : options.status.unavailableStatus,
      'application/json; charset=utf-8',
      `${JSON.stringify(report)}\n`,
    );
  }
  if (options.metrics !== null && path === METRICS_PATH) {
    return send(res, req, 200, PROMETHEUS_CONTENT_TYPE, await options.metrics());
  }
  return send(res, req, 404, 'text/plain; charset=utf-8', 'Not Found\n');
}

function send(
  res: ServerResponse,
  req: IncomingMessage,
  status: number,
  type: string,
  body: string,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
    ...extra,
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

interface SiteReport {
  status: string;
  workers: { ready: number; working: number; booting: number; stopping: number };
}

export interface StatusReport {
  status: string;
  sites: Record<string, SiteReport>;
}

/** `state` with the one site named (its first host, as in logs and metrics); null when there is none. */
function onlySite(state: OpsState, name: string): OpsState | null {
  const pool = state.pools().get(name);
  if (pool === undefined) return null;
  const one = new Map([[name, pool]]);
  return { ...state, pools: () => one };
}

/** Liveness: the same per-site rule as the plugin's /health. */
export function health(state: OpsState): StatusReport {
  const sites: Record<string, SiteReport> = {};
  let status = 'ok';
  for (const [name, pool] of state.pools()) {
    const stats = pool.stats();
    const site = livenessOf(stats);
    sites[name] = { status: site, workers: workerCounts(stats) };
    if (site !== 'ok' && status === 'ok') status = site;
  }
  return { status, sites };
}

/** Readiness: the public listeners take connections, every site can take work now, and no drain has started. */
export function readiness(state: OpsState): StatusReport {
  const sites: Record<string, SiteReport> = {};
  let status = state.draining() ? 'draining' : state.accepting() ? 'ready' : 'not_ready';
  for (const [name, pool] of state.pools()) {
    const stats = pool.stats();
    const site = readinessOf(stats, state.draining());
    sites[name] = { status: site, workers: workerCounts(stats) };
    if (site !== 'ready' && status === 'ready') status = site;
  }
  if (state.pools().size === 0 && status === 'ready') status = 'not_ready';
  return { status, sites };
}

/**
 * Merges Prometheus texts of several sites: each family's HELP/TYPE once, then every site's
 * samples with `site="<name>"` as their first label.
 */
export function mergeExpositions(texts: ReadonlyArray<{ site: string; text: string }>): string {
  const families = new Map<string, { head: string[]; samples: string[] }>();
  for (const { site, text } of texts) {
    let current: { head: string[]; samples: string[] } | null = null;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const meta = /^# (HELP|TYPE) (\S+)/.exec(line);
      if (meta !== null) {
        const name = meta[2]!;
        let family = families.get(name);
        if (family === undefined) {
          family = { head: [], samples: [] };
          families.set(name, family);
        }
        if (!family.head.some((h) => h.startsWith(`# ${meta[1]} `))) family.head.push(line);
        current = family;
        continue;
      }
      if (line.startsWith('#') || current === null) continue;
      current.samples.push(addLabel(line, 'site', site));
    }
  }
  const out: string[] = [];
  for (const family of families.values()) out.push(...family.head, ...family.samples);
  out.push('');
  return out.join('\n');
}

function addLabel(sample: string, name: string, value: string): string {
  const label = `${name}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const match = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{)?/.exec(sample);
  if (match === null) return sample;
  const metric = match[1]!;
  if (match[2] === '{') {
    const rest = sample.slice(metric.length + 1);
    return `${metric}{${label}${rest.startsWith('}') ? '' : ','}${rest}`;
  }
  return `${metric}{${label}}${sample.slice(metric.length)}`;
}
