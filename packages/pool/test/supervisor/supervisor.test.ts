import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExecTimeoutError, NoFreeWorkerError, WorkerExitedError } from '../../src/errors.js';
import { eventually, recordingLogger, request, sleep, withPool } from '../php-fixtures.js';

const pidOf = async (reply: Promise<{ body: Buffer }>) => Number((await reply).body.toString());

describe('Supervisor', () => {
  it('exec_ttl: a hung request fails with ExecTimeoutError, the worker is killed and replaced', async () => {
    await withPool('hang.php', { supervisor: { exec_ttl: 300 } }, async (pool) => {
      const pid = await pidOf(pool.exec(request('ok')));
      const error = await pool.exec(request('hang')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ExecTimeoutError);
      expect((error as Error).message).toMatch(/exec_ttl \(300ms\)/);
      const next = await pidOf(pool.exec(request('ok')));
      expect(next).not.toBe(pid);
      expect(() => process.kill(pid, 0)).toThrow();
      expect(pool.stats().recycles.exec_ttl).toBe(1);
    });
  });

  it('request_slowlog_timeout: a request running past it is named once (worker, method and path, time); an overload 503 says the workers are held', async () => {
    const logger = recordingLogger();
    const options = {
      logger,
      allocate_timeout: 400,
      destroy_timeout: 200,
      supervisor: { request_slowlog_timeout: 200, watch_tick: 50 },
    };
    await withPool('hang.php', options, async (pool) => {
      const pid = await pidOf(pool.exec(request('ok'), { label: 'GET /ok' }));
      const hung = pool.exec(request('hang'), { label: 'GET /hang?x=1' }).catch((e: unknown) => e);
      const slow = () => logger.lines.filter((l) => l.obj.reason === 'slow_request');
      await eventually(() => slow().length === 1, 'the slow-request warning');
      expect(slow()[0]).toMatchObject({ level: 'warn', obj: { workerPid: pid, request: 'GET /hang?x=1' } });
      expect(slow()[0]!.msg).toMatch(
        new RegExp(
          `^worker ${pid} has run GET /hang\\?x=1 for \\d+s \\(over request_slowlog_timeout 0.2s\\); it holds its worker until it ends: set http.pool.supervisor.exec_ttl`,
        ),
      );
      const [info] = await pool.workers();
      expect(info).toMatchObject({ pid, state: 'working', request: 'GET /hang?x=1' });
      expect(info!.requestMs).toBeGreaterThanOrEqual(200);
      // later ticks say nothing more of the same request
      for (let i = 0; i < 3; i++) await pool.supervise();
      expect(slow()).toHaveLength(1);
      // the worker has been on it for longer than allocate_timeout: the refusal says so, not "add workers"
      const refused = await pool.exec(request('ok'), { label: 'GET /next' }).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(NoFreeWorkerError);
      expect((refused as NoFreeWorkerError).message).toMatch(
        new RegExp(
          `Every worker has been on one request for over 0.4s: GET /hang\\?x=1 \\(worker ${pid}, \\d+s\\); with exec_ttl off they hold their workers until they end`,
        ),
      );
      expect((refused as NoFreeWorkerError).details).toMatchObject({ heldByLongRequests: true });
      void hung;
    });
  });

  it('ttl: a worker older than ttl is replaced when idle', async () => {
    await withPool('sleep.php', { supervisor: { ttl: 400, watch_tick: 100 } }, async (pool) => {
      const first = await pidOf(pool.exec(request('0')));
      await eventually(() => (pool.stats().recycles.ttl ?? 0) >= 1, 'a ttl recycle');
      expect(await pidOf(pool.exec(request('0')))).not.toBe(first);
    });
  });

  it('ttl: workers that reach it together are retired one at a time, each once the last replacement is ready', async () => {
    await withPool(
      'slow-boot.php',
      { num_workers: 3, env: { SLOW_BOOT_MS: '200' }, supervisor: { ttl: 400, watch_tick: 50 } },
      async (pool) => {
        const events: string[] = [];
        pool.on('worker:recycle', ({ reason }) => {
          if (reason === 'ttl') events.push('retire');
        });
        pool.on('worker:ready', () => events.push('ready'));
        await eventually(() => events.filter((e) => e === 'retire').length >= 3, 'three ttl retirements');
        // before: retire, retire, retire (the three booted together), then three boots: no worker left
        const order = events.slice(0, events.lastIndexOf('retire') + 1);
        for (let i = 1; i < order.length; i++) {
          if (order[i] === 'retire') expect(order[i - 1], order.join(' ')).toBe('ready');
        }
      },
    );
  });

  it('ttl: a busy worker past ttl finishes its request first (timers mark, release recycles)', async () => {
    await withPool('sleep.php', { supervisor: { ttl: 200, watch_tick: 50 } }, async (pool) => {
      const pid = await pidOf(pool.exec(request('600')));
      expect(pid).toBeGreaterThan(0);
      await eventually(() => (pool.stats().recycles.ttl ?? 0) >= 1, 'the marked worker to be recycled');
    });
  });

  it('idle_ttl: reaps a worker idle too long, but never one that has not served yet', async () => {
    await withPool('sleep.php', { num_workers: 2, supervisor: { idle_ttl: 300, watch_tick: 100 } }, async (pool) => {
      const before = (await pool.workers()).map((w) => w.pid);
      const used = await pidOf(pool.exec(request('0')));
      await eventually(() => pool.stats().recycles.idle_ttl === 1, 'the used worker to be reaped');
      await sleep(400);
      // the never-used worker is still there; only the used one was replaced
      const after = (await pool.workers()).map((w) => w.pid);
      const unused = before.find((p) => p !== used)!;
      expect(after).toContain(unused);
      expect(after).not.toContain(used);
      expect(pool.stats().recycles.idle_ttl).toBe(1);
    });
  });

  it('max_worker_memory: a leaking worker is recycled after its current request, no request fails', async () => {
    // ~8 MB leaked per request over a ~20 MB baseline; a 60 MB limit recycles after about 5 requests.
    // The watch ticks when the test asks, between requests: with a 50 ms tick, a request slowed by a
    // busy machine was seen over the limit at two ticks while it grew, and killed (as it should be:
    // the next test and the kill's own test cover that), failing this one
    await withPool('leak.php', { supervisor: { max_worker_memory: 60, watch_tick: 3_600_000 } }, async (pool) => {
      const pids = new Set<number>();
      for (let i = 0; i < 20; i++) {
        pids.add(await pidOf(pool.exec(request())));
        await pool.supervise();
      }
      expect(pids.size).toBeGreaterThanOrEqual(2);
      expect(pool.stats().recycles.memory).toBeGreaterThanOrEqual(1);
      expect(pool.stats().errors).toEqual({});
      await eventually(() => pool.stats().workers.ready === 1, 'the replacement');
      const [worker] = await pool.workers();
      expect(worker!.rssBytes).toBeGreaterThan(1024 * 1024);
    });
  });

  it('max_worker_memory: a request that only inherited the memory of the one before is not killed; its worker is recycled after it', async () => {
    const flag = join(mkdtempSync(join(tmpdir(), 'warmpool-holds-')), 'flag');
    // ticks only when the test asks (supervise()): two of them fall inside the second request
    await withPool(
      'holds-memory.php',
      { supervisor: { max_worker_memory: 80, watch_tick: 3_600_000 } },
      async (pool) => {
        const grown = await pidOf(pool.exec(request('grow')));
        const waiting = pidOf(pool.exec(request(flag)));
        await eventually(async () => (await pool.workers())[0]?.state === 'working', 'the second request to run');
        await pool.supervise();
        await pool.supervise();
        writeFileSync(flag, '');
        expect(await waiting).toBe(grown);
        await eventually(() => pool.stats().recycles.memory === 1, 'the recycle after the request');
        expect(pool.stats().errors).toEqual({});
      },
    );
  });

  it('max_worker_memory: a request that keeps growing is killed while it runs (two ticks over), and replaced', async () => {
    const logger = recordingLogger();
    await withPool(
      'runaway-memory.php',
      { supervisor: { max_worker_memory: 60, watch_tick: 100 }, logger },
      async (pool) => {
        const error = await pool.exec(request()).then(
          () => null,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(WorkerExitedError);
        expect((error as Error).message).toMatch(/over max_worker_memory during a request/);
        expect(pool.stats().recycles.memory).toBe(1);
        expect(logger.lines.some((l) => /over max_worker_memory \(60 MB\)/.test(l.msg))).toBe(true);
        await eventually(() => pool.stats().workers.ready === 1, 'the replacement');
      },
    );
  });
});
