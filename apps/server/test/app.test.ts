import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseConfig, toServerOptions } from '@warmpool/config';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp, describeBootWorkers, type BuiltApp } from '../src/app.js';
import { createLoggers } from '../src/logging.js';
import { createOutput } from '../src/output.js';
import { INTERNAL_SITE_HEADER } from '../src/sites.js';

const ECHO = fileURLToPath(new URL('../../../test/fixtures/php/echo.php', import.meta.url));
const quiet = { write: () => true } as unknown as NodeJS.WritableStream;

const built: BuiltApp[] = [];
afterEach(async () => {
  await Promise.all(built.splice(0).map((b) => b.app.close()));
});

/** The app `warmpool serve` would build from `yaml` (listeners are not bound: requests go through inject). */
async function build(yaml: string): Promise<BuiltApp> {
  const loaded = parseConfig(yaml, { file: '/tmp/warmpool-test.yaml', env: {} });
  const server = toServerOptions(loaded);
  const loggers = createLoggers(server.logs, { stderr: quiet, stdout: quiet });
  const app = buildApp({
    loaded,
    server,
    loggers,
    out: createOutput({ stdout: quiet, stderr: quiet, color: false }),
    tls: null,
  });
  built.push(app);
  await app.app.ready();
  return app;
}

const BASE = `version: "3"
server:
  command: php ${ECHO}
http:
  address: 127.0.0.1:0
  pool:
    num_workers: 1
metrics:
  address: 127.0.0.1:0
logs:
  mode: off
`;

describe('buildApp', () => {
  it("the plugin's metrics route answers only the server's own scrape (the token header); other paths reach PHP", async () => {
    const { app } = await build(BASE);
    const token = /__warmpool_metrics_([0-9a-f]+)/.exec(app.printRoutes({ commonPrefix: false }))?.[1];
    expect(token).toBeDefined();
    const path = `/__warmpool_metrics_${token}`;

    const outside = await app.inject(path);
    expect(outside.statusCode).toBe(404);
    expect(outside.body).toBe('Not Found\n');
    const forged = await app.inject({ url: path, headers: { [INTERNAL_SITE_HEADER]: 'not-the-token ' } });
    expect(forged.statusCode).toBe(404);

    const scrape = await app.inject({ url: path, headers: { [INTERNAL_SITE_HEADER]: `${token} ` } });
    expect(scrape.statusCode).toBe(200);
    expect(scrape.body).toContain('warmpool_workers{state="ready"}');

    const page = await app.inject('/page');
    expect(page.statusCode).toBe(200);
    expect(page.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect((page.json() as { context: { uri: string } }).context.uri).toMatch(/\/page$/);
  });

  it('becomes ready with a proxy route next to the site (the route answers, PHP takes the rest)', async () => {
    const upstream = createServer((req, res) => res.end(`upstream saw ${req.url}`));
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    try {
      const { port } = upstream.address() as AddressInfo;
      const { app } = await build(`${BASE}proxy:\n  - prefix: /api\n    upstream: http://127.0.0.1:${port}\n`);
      const proxied = await app.inject('/api/users?page=2');
      expect(proxied.statusCode).toBe(200);
      expect(proxied.body).toBe('upstream saw /api/users?page=2');
      const php = await app.inject('/page');
      expect((php.json() as { context: { uri: string } }).context.uri).toMatch(/\/page$/);
    } finally {
      upstream.close();
    }
  });
});

describe('describeBootWorkers: the boot line says what the pool starts', () => {
  const poolOf = (yaml: string) =>
    toServerOptions(
      parseConfig(`version: "3"\nhttp:\n  address: 127.0.0.1:8080\n  pool: ${yaml}\nfastcgi: { root: /var/www }\n`),
    ).sites[0]!.plugin.pool;

  it('a dynamic pool from min_workers: 0 boots one worker, not one per CPU, and says how it sizes itself', () => {
    expect(describeBootWorkers(poolOf('{ min_workers: 0, max_workers: 4 }'), 2)).toBe(
      '1 worker to check that it starts (min_workers 0, max_workers 4: more start while requests wait; idle ones stop after idle_ttl 1 min, down to none)',
    );
    expect(describeBootWorkers(poolOf('{ min_workers: 2, max_workers: 6, supervisor: { idle_ttl: 30s } }'), 2)).toBe(
      '2 workers (min_workers 2, max_workers 6: more start while requests wait; idle ones stop after idle_ttl 30 s, down to 2)',
    );
    // max_workers unset: one per CPU, as the pool's own default
    expect(describeBootWorkers(poolOf('{ min_workers: 1 }'), 3)).toMatch(/^1 worker \(min_workers 1, max_workers 3:/);
  });

  it('a fixed pool: its num_workers, one per CPU when unset, or auto', () => {
    expect(describeBootWorkers(poolOf('{ num_workers: 4 }'), 2)).toBe('4 workers');
    expect(describeBootWorkers(poolOf('{ max_jobs: 10 }'), 2)).toBe('2 workers, one per CPU');
    expect(describeBootWorkers(poolOf('{ num_workers: auto }'), 2)).toBe('workers (num_workers: auto, measuring)');
  });
});
