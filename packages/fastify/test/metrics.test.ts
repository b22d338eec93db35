import { once } from 'node:events';
import { connect as connectHttp2, constants as httpConstants } from 'node:http2';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { createPool, SILENT_LOGGER, type Pool, type PoolOptions } from '@warmpool/pool';
import { FLAG_CODEC_JSON } from '@warmpool/pool/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { registerHealth, resolveHealthOptions } from '../src/health.js';
import {
  DURATION_BUCKETS_SECONDS,
  registerMetrics,
  resolveMetricsOptions,
  type MetricsOptions,
} from '../src/metrics.js';

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

const pools: Pool[] = [];
const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

async function startPool(options: Partial<PoolOptions> = {}): Promise<Pool> {
  const pool = createPool({
    command: ['php', fixture('crash-mid-request.php')],
    num_workers: 1,
    logger: SILENT_LOGGER,
    ...options,
  });
  pools.push(pool);
  await pool.start();
  return pool;
}

/**
 * The integrator's wiring: the plugin's encapsulated child holds the PHP catch-all, health and
 * metrics. The catch-all sends the body to PHP; `?status=N` answers N without PHP; `/slow` waits.
 */
async function appWith(pool: Pool, options: MetricsOptions = { metrics_path: '/metrics' }): Promise<FastifyInstance> {
  const app = Fastify();
  apps.push(app);
  app.get('/host-route', async () => 'host');
  await app.register(async (child) => {
    registerMetrics(child, pool, resolveMetricsOptions(options));
    registerHealth(child, pool, resolveHealthOptions({ health_path: '/health', ready_path: '/ready' }));
    child.get('/slow', async () => {
      await new Promise((resolve) => setTimeout(resolve, 80));
      return 'slow';
    });
    child.all('/*', async (request, reply) => {
      const status = (request.query as { status?: string }).status;
      if (status !== undefined) return reply.code(Number(status)).send('');
      try {
        const result = await pool.exec({
          flags: FLAG_CODEC_JSON,
          context: '{}',
          body: Buffer.from(String(request.headers['x-body'] ?? '')),
        });
        return reply.send(result.body);
      } catch {
        return reply.code(502).send('');
      }
    });
  });
  await app.ready();
  return app;
}

/** Parses the exposition text: metric line → value; checks every sample's family has HELP and TYPE. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  const typed = new Set<string>();
  const helped = new Set<string>();
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.trimEnd().split('\n')) {
    let m = /^# (HELP|TYPE) ([a-z_]+) (.+)$/.exec(line);
    if (m !== null) {
      (m[1] === 'HELP' ? helped : typed).add(m[2]!);
      if (m[1] === 'TYPE') expect(['counter', 'gauge', 'histogram']).toContain(m[3]);
      continue;
    }
    m = /^([a-z_]+)(\{(?:[a-z_]+="(?:[^"\\]|\\.)*",?)*\})? (-?[0-9.e+]+)$/.exec(line);
    expect(m, `bad sample line ${JSON.stringify(line)}`).not.toBeNull();
    const family = m![1]!.replace(/_(bucket|sum|count)$/, (suffix) => (typed.has(m![1]!) ? suffix : ''));
    expect(typed.has(family) && helped.has(family), `${family} lacks HELP/TYPE`).toBe(true);
    samples.set(`${m![1]}${m![2] ?? ''}`, Number(m![3]));
  }
  return samples;
}

async function scrape(app: FastifyInstance): Promise<Map<string, number>> {
  const res = await app.inject('/metrics');
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parse(res.body);
}

describe('resolveMetricsOptions', () => {
  it('is off unless a path is given', () => {
    expect(resolveMetricsOptions({})).toEqual({ metricsPath: null });
    expect(resolveMetricsOptions({ metrics_path: false })).toEqual({ metricsPath: null });
    expect(resolveMetricsOptions({ metrics_path: '/_/metrics' })).toEqual({ metricsPath: '/_/metrics' });
  });

  it('rejects a path that is not a plain absolute path, naming metrics_path', () => {
    expect(() => resolveMetricsOptions({ metrics_path: 'metrics' })).toThrow(/"metrics_path"/);
    expect(() => resolveMetricsOptions({ metrics_path: '/m/*' })).toThrow(/"metrics_path"/);
  });
});

describe('registerMetrics with a real pool', () => {
  it('counts responses by status, not the probes or the host app’s own routes', async () => {
    const pool = await startPool();
    const app = await appWith(pool);
    for (let i = 0; i < 3; i++) expect((await app.inject('/page')).statusCode).toBe(200);
    await app.inject('/page?status=404');
    await app.inject('/page?status=503');
    await app.inject('/health');
    await app.inject('/ready');
    await app.inject('/host-route');
    await app.inject('/metrics');
    const m = await scrape(app);
    expect(m.get('warmpool_requests_total{status="200"}')).toBe(3);
    expect(m.get('warmpool_requests_total{status="404"}')).toBe(1);
    expect(m.get('warmpool_requests_total{status="503"}')).toBe(1);
    const total = [...m].filter(([k]) => k.startsWith('warmpool_requests_total')).reduce((sum, [, v]) => sum + v, 0);
    expect(total).toBe(5);
  });

  it('observes durations into a cumulative histogram by status class', async () => {
    const pool = await startPool();
    const app = await appWith(pool);
    await app.inject('/page');
    await app.inject('/slow');
    await app.inject('/x?status=404');
    const m = await scrape(app);
    const ok = (le: string) => m.get(`warmpool_request_duration_seconds_bucket{class="2xx",le="${le}"}`);
    let previous = 0;
    for (const le of [...DURATION_BUCKETS_SECONDS.map(String), '+Inf']) {
      expect(ok(le)).toBeGreaterThanOrEqual(previous);
      previous = ok(le)!;
    }
    expect(ok('+Inf')).toBe(2);
    expect(m.get('warmpool_request_duration_seconds_count{class="2xx"}')).toBe(2);
    // /slow waits 80 ms, so it cannot be in the 50 ms bucket
    expect(ok('0.05')).toBeLessThanOrEqual(1);
    expect(m.get('warmpool_request_duration_seconds_sum{class="2xx"}')).toBeGreaterThanOrEqual(0.07);
    expect(m.get('warmpool_request_duration_seconds_count{class="4xx"}')).toBe(1);
    expect(m.has('warmpool_request_duration_seconds_count{class="5xx"}')).toBe(false);
  });

  it('shows workers by state, queue, per-worker RSS, recycles by reason, errors by code and boot failures', async () => {
    const pool = await startPool();
    const app = await appWith(pool);
    const before = await scrape(app);
    expect(before.get('warmpool_workers{state="ready"}')).toBe(1);
    expect(before.get('warmpool_workers{state="working"}')).toBe(0);
    expect(before.get('warmpool_workers{state="booting"}')).toBe(0);
    expect(before.get('warmpool_workers{state="stopping"}')).toBe(0);
    expect(before.get('warmpool_queue_length')).toBe(0);
    expect(before.get('warmpool_workers_target')).toBe(1);
    expect(before.get('warmpool_boot_failures_total')).toBe(0);
    expect(before.get('warmpool_recycles_total{reason="crashed"}')).toBe(0);
    const [worker] = await pool.workers();
    expect(before.get(`warmpool_worker_rss_bytes{pid="${worker!.pid}"}`)).toBeGreaterThan(1024 * 1024);

    // a worker that dies mid-request: a 502 here, an error and a recycle in the pool
    expect((await app.inject({ url: '/crash', headers: { 'x-body': 'crash' } })).statusCode).toBe(502);
    const after = await scrape(app);
    expect(after.get('warmpool_worker_errors_total{code="WP_WORKER_EXITED"}')).toBe(1);
    expect(after.get('warmpool_recycles_total{reason="crashed"}')).toBe(1);
    expect(after.get('warmpool_requests_total{status="502"}')).toBe(1);
    expect(after.has(`warmpool_worker_rss_bytes{pid="${worker!.pid}"}`)).toBe(false);
  });

  it('counts recycles by max_jobs', async () => {
    const pool = await startPool({ max_jobs: 1 });
    const app = await appWith(pool);
    // the worker leaves after its reply went out, once its replacement is ready: wait for its exit,
    // which the counter counts
    const exited = once(pool, 'worker:exit');
    await app.inject('/a');
    await app.inject('/b');
    const [event] = (await exited) as [{ reason: string }];
    expect(event.reason).toBe('max_jobs');
    const m = await scrape(app);
    expect(m.get('warmpool_recycles_total{reason="max_jobs"}')).toBeGreaterThanOrEqual(1);
  });

  it('counts a request whose client left before its answer as 499, as the access log writes it (HTTP/1.1 and HTTP/2)', async () => {
    const pool = await startPool();
    const counted = async (http2: boolean) => {
      const app = (http2 ? Fastify({ http2: true }) : Fastify()) as unknown as FastifyInstance;
      apps.push(app);
      let closed = 0;
      let arrived = false;
      const waitFor = async (check: () => boolean, what: string) => {
        for (let i = 0; !check(); i++) {
          if (i > 400) throw new Error(`waited in vain for ${what}`);
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      };
      await app.register(async (child) => {
        registerMetrics(child, pool, resolveMetricsOptions({ metrics_path: '/metrics' }));
        child.addHook('onRequest', (_request, reply, done) => {
          reply.raw.once('close', () => closed++);
          done();
        });
        // answers once its client is gone: written to a closed socket (HTTP/1.1), a reset stream (HTTP/2)
        child.get('/late', (request, reply) => {
          arrived = true;
          request.raw.socket.once('close', () => setImmediate(() => reply.send('late')));
        });
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as { port: number };
      if (http2) {
        const session = connectHttp2(`http://127.0.0.1:${port}`);
        const stream = session.request({ ':path': '/late' });
        stream.on('error', () => {});
        await waitFor(() => arrived, 'the request to arrive');
        stream.close(httpConstants.NGHTTP2_CANCEL);
        session.destroy();
      } else {
        const socket = connect(port, '127.0.0.1', () => socket.write('GET /late HTTP/1.1\r\nHost: t\r\n\r\n'));
        socket.on('error', () => {});
        await waitFor(() => arrived, 'the request to arrive');
        socket.destroy();
      }
      // before: nothing counted over HTTP/1.1 (no onResponse for an answer to a closed socket), 200 over HTTP/2
      await waitFor(() => closed > 0, 'the response to close');
      const m = parse((await app.inject('/metrics')).body);
      return [...m].filter(([k]) => k.startsWith('warmpool_requests_total'));
    };
    expect(await counted(false)).toEqual([['warmpool_requests_total{status="499"}', 1]]);
    expect(await counted(true)).toEqual([['warmpool_requests_total{status="499"}', 1]]);
  });

  it('is off for a null path: no route and no counting hook', async () => {
    const pool = await startPool();
    const app = Fastify();
    apps.push(app);
    let hooks = 0;
    await app.register(async (child) => {
      const addHook = child.addHook.bind(child);
      (child as { addHook: unknown }).addHook = (...args: Parameters<typeof addHook>) => {
        hooks++;
        return addHook(...args);
      };
      registerMetrics(child, pool, resolveMetricsOptions({}));
    });
    await app.ready();
    expect(hooks).toBe(0);
    expect((await app.inject('/metrics')).statusCode).toBe(404);
  });
});
