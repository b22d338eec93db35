import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NoFreeWorkerError, WorkerExitedError } from '../../src/errors.js';
import { eventually, recordingLogger, request, sleep, withPool } from '../php-fixtures.js';

describe('Pool: workers that fail to boot', () => {
  it('retries with backoff instead of spinning, reports the failure, and recovers when boots work again', async () => {
    const gate = join(tmpdir(), `warmpool-gate-${process.pid}-${Date.now()}`);
    const logger = recordingLogger();
    await withPool('boot-gate.php', { env: { BOOT_GATE: gate }, allocate_timeout: 300, logger }, async (pool) => {
      const retries: number[] = [];
      pool.on('pool:boot-failed', ({ retryInMs }) => retries.push(retryInMs));
      // A broken deploy: replacements cannot boot from now on.
      writeFileSync(gate, '');
      try {
        await expect(pool.exec(request('crash'))).rejects.toBeInstanceOf(WorkerExitedError);
        await sleep(1_000);
        // 100 + 200 + 400 ms of backoff fit in a second: a handful of attempts, not hundreds.
        expect(retries.length).toBeGreaterThanOrEqual(2);
        expect(retries.length).toBeLessThanOrEqual(6);
        expect(retries.slice(0, 3)).toEqual([100, 200, 400]);
        const stats = pool.stats();
        expect(stats.bootError).toMatch(/exited during boot/);
        expect(stats.bootFailures).toBe(retries.length);
        // Requests meanwhile get a clear NoFreeWorker that says why.
        const error = await pool.exec(request('ok')).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(NoFreeWorkerError);
        expect((error as Error).message).toMatch(/failing to boot.*boot refused/s);
        expect(
          logger.lines.some(
            (l) => l.level === 'error' && /failed to boot \(attempt 1\); retrying in 100ms/.test(l.msg),
          ),
        ).toBe(true);
      } finally {
        rmSync(gate, { force: true });
      }
      // Fixed deploy: the next retry boots a worker and the pool serves again.
      await eventually(() => pool.stats().workers.ready === 1, 'the pool to recover', 15_000);
      expect(Number((await pool.exec(request('ok'))).body.toString())).toBeGreaterThan(0);
      expect(pool.stats().bootError).toBeNull();
    });
  });
});
