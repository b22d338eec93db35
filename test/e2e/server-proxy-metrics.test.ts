import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { until } from '../helpers/until.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { FIXTURES, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';

// `warmpool serve` counts proxied requests in /metrics as it counts PHP's: a live upstream's 200s
// and a dead upstream's 502s, by site, upstream and status, with their durations; and the body
// bytes each site sent, as the access log's body_bytes_sent.
let dir: string;
let upstream: Upstream;
let server: RunningServer;
let base: string;
let metricsUrl: string;
let live: string;
let down: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-proxy-metrics-'));
  upstream = await startUpstream();
  const [httpPort, metricsPort, downPort] = [await freePort(), await freePort(), await freePort()];
  base = `http://127.0.0.1:${httpPort}`;
  metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  live = `http://127.0.0.1:${upstream.port}`;
  down = `http://127.0.0.1:${downPort}`;
  server = startServer(['serve', '-c', join(FIXTURES, 'server', 'proxy-metrics.yaml')], {
    env: {
      HTTP_PORT: String(httpPort),
      METRICS_PORT: String(metricsPort),
      UPSTREAM_PORT: String(upstream.port),
      DOWN_PORT: String(downPort),
      ADMIN_SOCKET: join(dir, 'admin.sock'),
      FIXTURES,
    },
  });
  await server.ready();
});

afterAll(async () => {
  await stopAllServers();
  await upstream?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function scrape(): Promise<string> {
  const res = await request(metricsUrl);
  return res.body.text();
}

/** The value of one sample, or 0 when the series is absent. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('serve with proxy routes and /metrics', () => {
  it('counts proxied requests by site, upstream and status (a dead upstream 502s too), with durations and body bytes', async () => {
    let bytes = 0;
    const get = async (path: string, status: number) => {
      const res = await request(`${base}${path}`);
      expect(res.statusCode).toBe(status);
      bytes += (await res.body.arrayBuffer()).byteLength;
    };
    for (let i = 0; i < 3; i++) await get(`/api/users?i=${i}`, 200);
    for (let i = 0; i < 2; i++) await get('/down/x', 502);
    await get('/page', 200);

    const counted = (text: string) =>
      sample(text, `warmpool_requests_total{site="default",upstream="${live}",status="200"}`) === 3 &&
      sample(text, `warmpool_requests_total{site="default",upstream="${down}",status="502"}`) === 2 &&
      sample(text, 'warmpool_requests_total{site="default",status="200"}') === 1 &&
      sample(text, 'warmpool_response_bytes_total{site="default"}') === bytes;
    let text = '';
    await until(async () => {
      text = await scrape();
      return counted(text);
    }, 'every request counted in /metrics');
    expect(sample(text, `warmpool_request_duration_seconds_count{site="default",upstream="${down}",class="5xx"}`)).toBe(
      2,
    );
    expect(
      sample(text, `warmpool_request_duration_seconds_bucket{site="default",upstream="${live}",class="2xx",le="+Inf"}`),
    ).toBe(3);
    // one HELP and TYPE per family: the proxied samples join the family PHP's are in
    expect(text.match(/^# TYPE warmpool_requests_total /gm)).toHaveLength(1);
    expect(text.match(/^# TYPE warmpool_request_duration_seconds /gm)).toHaveLength(1);
    expect(text).toMatch(/^# TYPE warmpool_response_bytes_total counter$/m);
  });
});
