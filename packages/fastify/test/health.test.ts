import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { createPool, SILENT_LOGGER, type Pool, type PoolOptions } from '@warmpool/pool';
import { FLAG_CODEC_JSON } from '@warmpool/pool/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { registerHealth, resolveHealthOptions, type HealthOptions } from '../src/health.js';

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

const pools: Pool[] = [];
const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await Promise.all(pools.splice(0).map((pool) => pool.close()));
});

async function startPool(name = 'echo.php', options: Partial<PoolOptions> = {}): Promise<Pool> {
  const pool = createPool({ command: ['php', fixture(name)], num_workers: 1, logger: SILENT_LOGGER, ...options });
  pools.push(pool);
  await pool.start();
  return pool;
}

async function appWith(pool: Pool, options: HealthOptions = { health_path: '/health', ready_path: '/ready' }) {
  const app = Fastify();
  apps.push(app);
  let health!: { setDraining(): void };
  await app.register(async (child) => {
    health = registerHealth(child, pool, resolveHealthOptions(options));
  });
  await app.ready();
  return { app, health };
}

async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('resolveHealthOptions', () => {
  it('is off unless a path is given (so neither the host app’s nor the PHP app’s /health is shadowed)', () => {
    expect(resolveHealthOptions({})).toEqual({ healthPath: null, readyPath: null });
    expect(resolveHealthOptions({ health_path: false, ready_path: '/_ready' })).toEqual({
      healthPath: null,
      readyPath: '/_ready',
    });
  });

  it.each([
    [{ health_path: 'health' }, 'health_path'],
    [{ health_path: '/h?x=1' }, 'health_path'],
    [{ health_path: '/h/:id' }, 'health_path'],
    [{ ready_path: '/ready*' }, 'ready_path'],
    [{ ready_path: '//ready' }, 'ready_path'],
    [{ ready_path: true }, 'ready_path'],
    [{ health_path: '/same', ready_path: '/same' }, 'ready_path'],
  ])('rejects %j naming %s', (raw, key) => {
    try {
      resolveHealthOptions(raw as HealthOptions);
      expect.unreachable();
    } catch (error) {
      expect((error as { code: string }).code).toBe('WP_FASTIFY_INVALID_OPTION');
      expect((error as { details: { key: string } }).details.key).toBe(key);
    }
  });
});

describe('registerHealth with a real pool', () => {
  it('health and ready answer 200 with worker counts; HEAD too; nothing is cached', async () => {
    const pool = await startPool();
    const { app } = await appWith(pool);
    const health = await app.inject('/health');
    expect(health.statusCode).toBe(200);
    expect(health.headers['cache-control']).toBe('no-store');
    expect(health.json()).toEqual({ status: 'ok', workers: { ready: 1, working: 0, booting: 0, stopping: 0 } });
    const ready = await app.inject('/ready');
    expect(ready.statusCode).toBe(200);
    expect(ready.json().status).toBe('ready');
    const head = await app.inject({ method: 'HEAD', url: '/ready' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
  });

  it('ready stays 200 while the only worker is busy (it can still take work: RR would say not ready)', async () => {
    const pool = await startPool('sleep.php');
    const { app } = await appWith(pool);
    const busy = pool.exec({ flags: FLAG_CODEC_JSON, context: '{}', body: Buffer.from('400') });
    await eventually(() => pool.stats().workers.working === 1, 'the worker to be busy');
    const ready = await app.inject('/ready');
    expect(ready.statusCode).toBe(200);
    expect(ready.json().workers).toMatchObject({ ready: 0, working: 1 });
    await busy;
  });

  it('draining: ready 503 at once while health stays 200; closing: both 503', async () => {
    const pool = await startPool();
    const { app, health } = await appWith(pool);
    health.setDraining();
    const ready = await app.inject('/ready');
    expect(ready.statusCode).toBe(503);
    expect(ready.json().status).toBe('draining');
    expect((await app.inject('/health')).statusCode).toBe(200);
    const closing = pool.close();
    const closedHealth = await app.inject('/health');
    expect(closedHealth.statusCode).toBe(503);
    expect(closedHealth.json().status).toBe('closing');
    expect((await app.inject('/ready')).json().status).toBe('closing');
    await closing;
  });

  it('when the worker dies and replacements cannot boot: health 503 "failing", ready 503 "not_ready"; both recover', async () => {
    const gate = join(tmpdir(), `warmpool-health-gate-${process.pid}-${Date.now()}`);
    const pool = await startPool('boot-gate.php', { env: { BOOT_GATE: gate }, allocate_timeout: 300 });
    const { app } = await appWith(pool);
    writeFileSync(gate, '');
    try {
      await pool.exec({ flags: FLAG_CODEC_JSON, context: '{}', body: Buffer.from('crash') }).catch(() => undefined);
      await eventually(() => pool.stats().bootError !== null, 'a failed boot');
      const health = await app.inject('/health');
      expect(health.statusCode).toBe(503);
      expect(health.json().status).toBe('failing');
      const ready = await app.inject('/ready');
      expect(ready.statusCode).toBe(503);
      expect(ready.json().status).toBe('not_ready');
    } finally {
      rmSync(gate, { force: true });
    }
    await eventually(() => pool.stats().workers.ready === 1, 'the pool to recover', 15_000);
    expect((await app.inject('/health')).statusCode).toBe(200);
    expect((await app.inject('/ready')).statusCode).toBe(200);
  });

  it('registers nothing for a disabled path (the request goes to whatever else serves it)', async () => {
    const pool = await startPool();
    const { app } = await appWith(pool, { ready_path: '/_ready' });
    expect((await app.inject('/health')).statusCode).toBe(404);
    expect((await app.inject('/_ready')).statusCode).toBe(200);
  });

  it('its routes are ordinary routes: an onRequest hook of the instance guards them', async () => {
    const pool = await startPool();
    const app = Fastify();
    apps.push(app);
    await app.register(async (child) => {
      child.addHook('onRequest', async (request, reply) => {
        if (request.headers['x-allowed'] !== 'yes') return reply.code(403).send('Forbidden');
      });
      registerHealth(child, pool, resolveHealthOptions({ health_path: '/health' }));
    });
    expect((await app.inject('/health')).statusCode).toBe(403);
    expect((await app.inject({ url: '/health', headers: { 'x-allowed': 'yes' } })).statusCode).toBe(200);
  });
});
