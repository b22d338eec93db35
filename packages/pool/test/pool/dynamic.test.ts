import { describe, expect, it } from 'vitest';
import { eventually, recordingLogger, request, withPool } from '../php-fixtures.js';

const pidOf = async (reply: Promise<{ body: Buffer }>) => Number((await reply).body.toString());

describe('num_workers: auto', () => {
  it('measures one warmed worker and the machine, sizes the pool, and says why in one line', async () => {
    const logger = recordingLogger();
    await withPool('sleep.php', { num_workers: 'auto', warmup: [request('5'), request('5')], logger }, async (pool) => {
      const sizing = pool.sizing!;
      expect(sizing.numWorkers).toBeGreaterThanOrEqual(1);
      expect(sizing.perWorkerBytes).toBeGreaterThan(1024 * 1024);
      expect(sizing.numWorkers).toBe(Math.max(1, Math.min(sizing.cpuBased, sizing.ramBased, 500)));
      expect(pool.stats().numWorkers).toBe(sizing.numWorkers);
      expect(pool.stats().workers.ready).toBe(sizing.numWorkers);
      const line = logger.lines.find((l) => l.msg.startsWith('num_workers auto:'));
      expect(line?.msg).toMatch(/cpu \d+ cores? .*memory .* available .*worker .* RSS/);
      // the warm-up requests ran on the probe worker
      expect((await pool.workers()).some((w) => w.jobs === 2)).toBe(true);
    });
  });
});

describe('dynamic pool (min_workers / max_workers)', () => {
  it('spawns up to max_workers under load and reaps idle extras back to min_workers', async () => {
    await withPool(
      'sleep.php',
      { num_workers: undefined, min_workers: 1, max_workers: 3, supervisor: { idle_ttl: 300, watch_tick: 50 } },
      async (pool) => {
        const scales: string[] = [];
        pool.on('pool:scale', ({ from, to, reason }) => scales.push(`${from}->${to} ${reason}`));
        expect(pool.stats().workers.ready).toBe(1);
        const pids = await Promise.all([1, 2, 3].map(() => pidOf(pool.exec(request('400')))));
        expect(new Set(pids).size).toBeGreaterThanOrEqual(2);
        expect(pool.stats().numWorkers).toBeLessThanOrEqual(3);
        await eventually(
          () => pool.stats().numWorkers === 1 && pool.stats().workers.ready === 1,
          'scale down to min_workers',
        );
        expect(scales.filter((s) => s.endsWith('demand')).length).toBeGreaterThanOrEqual(1);
        expect(scales.filter((s) => s.endsWith('idle')).length).toBeGreaterThanOrEqual(1);
      },
    );
  });

  it('scales to zero when idle, and the next request waits for one boot (cold start)', async () => {
    await withPool(
      'echo.php',
      { num_workers: undefined, min_workers: 0, max_workers: 2, supervisor: { idle_ttl: 200, watch_tick: 50 } },
      async (pool) => {
        expect(pool.stats().workers.ready).toBe(1);
        await eventually(
          () => pool.stats().workers.ready === 0 && pool.stats().workers.stopping === 0,
          'scale to zero',
        );
        expect(pool.stats().numWorkers).toBe(0);
        let booted = 0;
        pool.on('worker:ready', () => booted++);
        const started = performance.now();
        const reply = JSON.parse((await pool.exec(request('cold'))).body.toString());
        const coldStartMs = performance.now() - started;
        expect(reply.body).toBe('cold');
        expect(reply.count).toBe(1);
        expect(booted).toBe(1);
        console.log(`cold start after scale-to-zero: ${coldStartMs.toFixed(0)} ms (one PHP boot + one request)`);
      },
    );
  });
});
