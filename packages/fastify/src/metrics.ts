import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { RECYCLE_REASONS } from '@warmpool/pool';
import { isOpsRequest, markOpsRequest, resolveOpsPath, type PoolView } from './health.js';
import { isPastPipeliningBound } from './http/pipelined-turn.js';

/**
 * Prometheus text exposition (format 0.0.4) of the pool's stats plus request counters.
 *
 * Request counting is a close listener per response doing integer adds into arrays sized at registration:
 * `warmpool_requests_total{status}` by status code and `warmpool_request_duration_seconds` by
 * status class (1xx..5xx: 5 × 12 buckets, low cardinality), timed from the request's first hook. Requests to
 * the health, ready and metrics routes are not counted (probes would swamp the numbers).
 * Everything else is read from `pool.stats()` / `pool.workers()` at scrape time.
 */
export interface MetricsOptions {
  /** default: off (false); the endpoint shows pids, memory and error codes: guard it with `access` */
  metrics_path?: string | false;
}

export interface ResolvedMetrics {
  metricsPath: string | null;
}

export const DEFAULT_METRICS_PATH = '/metrics';
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Upper bounds in seconds (Prometheus client defaults); +Inf is implied. */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function resolveMetricsOptions(raw: MetricsOptions): ResolvedMetrics {
  return { metricsPath: resolveOpsPath(raw.metrics_path, 'metrics_path') };
}

const WORKER_STATES_SHOWN = ['ready', 'working', 'booting', 'stopping'] as const;
const BUCKET_LIMITS_MS = DURATION_BUCKETS_SECONDS.map((s) => s * 1000);
const SLOTS = BUCKET_LIMITS_MS.length + 1; // + the +Inf bucket
const CLASSES = 5;

/**
 * Request counters: preallocated, written when a response closes (the plugin's; `warmpool serve`'s
 * proxy routes keep one per upstream and render them with renderRequestFamilies).
 */
export class RequestCounters {
  /** index = status code 0..599; other codes land in 0 */
  readonly byStatus = new Float64Array(600);
  /** [class * SLOTS + bucket], non-cumulative; cumulated at scrape */
  readonly buckets = new Float64Array(CLASSES * SLOTS);
  readonly sumSeconds = new Float64Array(CLASSES);
  readonly count = new Float64Array(CLASSES);

  record(status: number, elapsedMs: number): void {
    const code = status >= 100 && status < 600 ? status : 0;
    this.byStatus[code]!++;
    const cls = code === 0 ? 4 : ((code / 100) | 0) - 1;
    let b = 0;
    while (b < BUCKET_LIMITS_MS.length && elapsedMs > BUCKET_LIMITS_MS[b]!) b++;
    this.buckets[cls * SLOTS + b]!++;
    this.sumSeconds[cls]! += elapsedMs / 1000;
    this.count[cls]!++;
  }
}

/** nginx's status for a request whose client left before its response was sent (the access log's too). */
export const CLIENT_CLOSED_REQUEST = 499;

/**
 * Calls `record(status, elapsedMs)` once `reply`'s response closes (call it when the request
 * starts: elapsedMs counts from then): its status, or 499 when its
 * client left first, as the access log writes it. onResponse alone missed an HTTP/1.1 client that
 * left after sending its request (no onResponse runs for an answer written to a closed socket) and
 * took an HTTP/2 stream the client reset for a 200 (its response can look finished).
 */
export function recordWhenClosed(
  reply: FastifyReply,
  record: (status: number, elapsedMs: number) => void,
  /** requests not to count, asked when they close */
  skip: ((request: FastifyRequest) => boolean) | null = null,
): void {
  const res = reply.raw;
  // timed here: Fastify times a reply only when some onResponse hook or a logger wants it
  const startedAt = performance.now();
  res.once('close', () => {
    // a request past the pipelining bound never ran: the server closed its connection
    if (isPastPipeliningBound(reply.request.raw) || skip?.(reply.request) === true) return;
    record(statusOf(reply, res), performance.now() - startedAt);
  });
}

function statusOf(reply: FastifyReply, res: FastifyReply['raw']): number {
  // cut once its head was out (a download stopped halfway): the status sent, as nginx logs it
  if (!clientLeft(res) || res.headersSent) return reply.statusCode;
  // a WebSocket (or other upgrade) handed on: its response is never ended, and nobody left
  return reply.request.headers.upgrade !== undefined && !res.writableEnded ? 101 : CLIENT_CLOSED_REQUEST;
}

function clientLeft(res: FastifyReply['raw']): boolean {
  // not ended: closed under it (writableFinished would also count an answer the kernel still held)
  if (!res.writableEnded) return true;
  // an HTTP/2 stream closed with an error code (the client's CANCEL) did not deliver its answer
  const rstCode = (res as { stream?: { rstCode?: number } }).stream?.rstCode;
  return rstCode !== undefined && rstCode !== 0;
}

/**
 * Registers GET `metricsPath` in `app` and a hook counting `app`'s requests when they close. Pass the
 * instance whose requests should be counted: the plugin's encapsulated child with the PHP
 * catch-all route. Does nothing when the path is null (metrics off).
 */
export function registerMetrics(app: FastifyInstance, pool: PoolView, options: ResolvedMetrics): void {
  if (options.metricsPath === null) return;
  const counters = new RequestCounters();
  const record = (status: number, elapsedMs: number) => counters.record(status, elapsedMs);

  app.addHook(
    'onRequest',
    function countRequest(_request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
      // probes are marked by their handler, after this hook: known once they close
      recordWhenClosed(reply, record, isOpsRequest);
      done();
    },
  );

  app.route({
    method: ['GET', 'HEAD'],
    url: options.metricsPath,
    exposeHeadRoute: false,
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      markOpsRequest(request);
      const text = await renderMetrics(pool, counters);
      return reply.code(200).header('cache-control', 'no-store').type(PROMETHEUS_CONTENT_TYPE).send(text);
    },
  });
}

async function renderMetrics(pool: PoolView, counters: RequestCounters): Promise<string> {
  const stats = pool.stats();
  const workers = await pool.workers();
  const out: string[] = [];

  renderRequestFamilies(out, [{ labels: '', counters }]);

  family(out, 'warmpool_workers', 'gauge', 'Workers by state.');
  for (const state of WORKER_STATES_SHOWN) out.push(`warmpool_workers{state="${state}"} ${stats.workers[state]}`);

  family(out, 'warmpool_workers_target', 'gauge', 'Configured number of workers (num_workers).');
  out.push(`warmpool_workers_target ${stats.numWorkers}`);

  family(out, 'warmpool_queue_length', 'gauge', 'Requests waiting for a free worker.');
  out.push(`warmpool_queue_length ${stats.queued}`);

  family(out, 'warmpool_worker_rss_bytes', 'gauge', 'Resident memory of each live worker.');
  for (const worker of workers) {
    if (worker.state !== 'exited') out.push(`warmpool_worker_rss_bytes{pid="${worker.pid}"} ${worker.rssBytes}`);
  }

  family(out, 'warmpool_recycles_total', 'counter', 'Workers that left service, by reason.');
  for (const reason of RECYCLE_REASONS)
    out.push(`warmpool_recycles_total{reason="${reason}"} ${stats.recycles[reason] ?? 0}`);

  family(out, 'warmpool_worker_errors_total', 'counter', 'Failed executions by error code.');
  for (const [code, n] of Object.entries(stats.errors))
    out.push(`warmpool_worker_errors_total{code="${escapeLabel(code)}"} ${n}`);

  family(
    out,
    'warmpool_pipelined_total',
    'counter',
    'Requests queued behind a running one on a busy PHP process (pipelining).',
  );
  out.push(`warmpool_pipelined_total ${stats.pipelined}`);

  family(out, 'warmpool_boot_failures_total', 'counter', 'Worker boots that failed.');
  out.push(`warmpool_boot_failures_total ${stats.bootFailures}`);

  out.push('');
  return out.join('\n');
}

/**
 * warmpool_requests_total and warmpool_request_duration_seconds, HELP and TYPE once, then each
 * series' samples with its `labels` (`upstream="…"`, or '') before status or class.
 */
export function renderRequestFamilies(
  out: string[],
  series: ReadonlyArray<{ labels: string; counters: RequestCounters }>,
): void {
  family(out, 'warmpool_requests_total', 'counter', 'HTTP responses by status code.');
  for (const { labels, counters } of series) {
    const prefix = labels === '' ? '' : `${labels},`;
    for (let code = 0; code < 600; code++) {
      const n = counters.byStatus[code]!;
      if (n > 0) out.push(`warmpool_requests_total{${prefix}status="${code === 0 ? 'other' : code}"} ${n}`);
    }
  }

  family(
    out,
    'warmpool_request_duration_seconds',
    'histogram',
    'Time from request start to response end, by status class.',
  );
  for (const { labels, counters } of series) {
    const prefix = labels === '' ? '' : `${labels},`;
    for (let cls = 0; cls < CLASSES; cls++) {
      const count = counters.count[cls]!;
      if (count === 0) continue;
      const label = `${prefix}class="${cls + 1}xx"`;
      let cumulative = 0;
      for (let b = 0; b < SLOTS; b++) {
        cumulative += counters.buckets[cls * SLOTS + b]!;
        const le = b < DURATION_BUCKETS_SECONDS.length ? String(DURATION_BUCKETS_SECONDS[b]) : '+Inf';
        out.push(`warmpool_request_duration_seconds_bucket{${label},le="${le}"} ${cumulative}`);
      }
      out.push(`warmpool_request_duration_seconds_sum{${label}} ${counters.sumSeconds[cls]}`);
      out.push(`warmpool_request_duration_seconds_count{${label}} ${count}`);
    }
  }
}

function family(out: string[], name: string, type: string, help: string): void {
  out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
}

/** Label values escape backslash, double quote and newline (exposition format). */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}
