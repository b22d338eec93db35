import { describe, expect, it } from 'vitest';
import {
  ExecAbortedError,
  NoFreeWorkerError,
  PoolClosedError,
  QueueFullError,
  WorkerExitedError,
} from '../../src/errors.js';
import { createPool } from '../../src/pool/pool.js';
import { Cancellation } from '../../src/cancel.js';
import { eventually, fixture, recordingLogger, request, sleep, withPool } from '../php-fixtures.js';

const pidOf = async (reply: Promise<{ body: Buffer }>) => Number((await reply).body.toString());

describe('Pool: serving', () => {
  it('keeps workers warm: one process serves request after request', async () => {
    await withPool('echo.php', {}, async (pool) => {
      const seen: { pid: number; count: number }[] = [];
      for (let i = 0; i < 5; i++) {
        const reply = await pool.exec(request(`hello ${i}`));
        const body = JSON.parse(reply.body.toString());
        expect(body.body).toBe(`hello ${i}`);
        seen.push({ pid: body.pid, count: body.count });
      }
      expect(new Set(seen.map((s) => s.pid)).size).toBe(1);
      expect(seen.map((s) => s.count)).toEqual([1, 2, 3, 4, 5]);
      expect(pool.stats().requests).toBe(5);
    });
  });

  it('boots num_workers workers and runs requests on them in parallel', async () => {
    await withPool('sleep.php', { num_workers: 3 }, async (pool) => {
      expect(pool.stats().workers.ready).toBe(3);
      const pids = await Promise.all([1, 2, 3].map(() => pidOf(pool.exec(request('200')))));
      expect(new Set(pids).size).toBe(3);
    });
  });

  it('picks the most recently used worker first', async () => {
    await withPool('sleep.php', { num_workers: 3 }, async (pool) => {
      // Two workers run at once; the slower one (a) is released last, so it is on top of the free list.
      const [a, b] = await Promise.all([pidOf(pool.exec(request('100'))), pidOf(pool.exec(request('10')))]);
      expect(a).not.toBe(b);
      expect(await pidOf(pool.exec(request('0')))).toBe(a);
      expect(await pidOf(pool.exec(request('0')))).toBe(a);
    });
  });

  it('round-trips a 5 MB body in both directions', async () => {
    await withPool('echo.php', {}, async (pool) => {
      const big = 'x'.repeat(5 * 1024 * 1024);
      const reply = await pool.exec(request(big));
      expect(JSON.parse(reply.body.toString()).body.length).toBe(big.length);
    });
  });

  it('gives workers the RR_* environment and server.env with upper-cased keys', async () => {
    await withPool('echo.php', { env: { app_name: 'shop-$USER_SUFFIX' } }, async (pool) => {
      const { env } = JSON.parse((await pool.exec(request())).body.toString());
      expect(env).toMatchObject({ RR_RELAY: 'pipes', RR_MODE: 'http', APP_NAME: 'shop-' });
      expect(env.RR_VERSION).toMatch(/^\d{4}\.\d+\.\d+$/);
    });
  });
});

describe('Pool: max_jobs', () => {
  it('recycles a worker after max_jobs (plus at most 14% jitter) and keeps serving', async () => {
    await withPool('echo.php', { max_jobs: 5 }, async (pool) => {
      const pids: number[] = [];
      for (let i = 0; i < 14; i++) pids.push(JSON.parse((await pool.exec(request())).body.toString()).pid);
      // lengths of the runs of equal pids
      const runs: number[] = [];
      for (const [i, pid] of pids.entries()) {
        if (i > 0 && pid === pids[i - 1]) runs[runs.length - 1]!++;
        else runs.push(1);
      }
      expect(runs.length).toBeGreaterThanOrEqual(2);
      // every complete run is max_jobs..max_jobs*1.14 (5 here: jitter floors to 0)
      expect(runs.slice(0, -1).every((n) => n === 5)).toBe(true);
      await eventually(() => (pool.stats().recycles.max_jobs ?? 0) >= 2, 'two max_jobs recycles');
    });
  });
});

describe('Pool: allocate_timeout and max_queue_size', () => {
  it('fails a request with NoFreeWorkerError when no worker frees up within allocate_timeout', async () => {
    // allocate_timeout also bounds a worker's boot (RR), so keep it well above PHP's start-up time.
    await withPool('sleep.php', { allocate_timeout: 500 }, async (pool) => {
      const busy = pool.exec(request('1500'));
      await sleep(20);
      const started = Date.now();
      const error = await pool.exec(request('0')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(NoFreeWorkerError);
      expect((error as NoFreeWorkerError).code).toBe('WP_POOL_NO_FREE_WORKER');
      expect((error as Error).message).toMatch(/allocate_timeout \(500ms\)/);
      expect(Date.now() - started).toBeGreaterThanOrEqual(490);
      await busy;
    });
  });

  it('queues up to max_queue_size requests and rejects the next with QueueFullError', async () => {
    await withPool('sleep.php', { max_queue_size: 2 }, async (pool) => {
      let queueFull = 0;
      pool.on('pool:queue-full', () => queueFull++);
      const busy = pool.exec(request('300'));
      await sleep(20);
      const queued = [pool.exec(request('0')), pool.exec(request('0'))];
      expect(pool.stats().queued).toBe(2);
      await expect(pool.exec(request('0'))).rejects.toBeInstanceOf(QueueFullError);
      expect(queueFull).toBe(1);
      await Promise.all([busy, ...queued]);
      expect(pool.stats().errors).toEqual({ WP_POOL_QUEUE_FULL: 1 });
    });
  });
});

describe('Pool: callers that give up', () => {
  // a server's requests carry a Cancellation (cheaper than an AbortController); both cancel alike
  const signals = {
    AbortController: () => {
      const controller = new AbortController();
      return { signal: controller.signal, cancel: () => controller.abort() };
    },
    Cancellation: () => {
      const cancellation = new Cancellation();
      return { signal: cancellation, cancel: () => cancellation.cancel() };
    },
  };
  it.each(Object.keys(signals) as Array<keyof typeof signals>)(
    'a queued request whose caller aborts (%s) leaves the queue at once and never reaches PHP',
    async (kind) => {
      await withPool('sleep.php', { num_workers: 1 }, async (pool) => {
        const busy = pool.exec(request('300'));
        const controllers = [signals[kind](), signals[kind](), signals[kind]()];
        const queued = controllers.map((c) => pool.exec(request('0'), { signal: c.signal }));
        const kept = pool.exec(request('0'));
        expect(pool.stats().queued).toBe(4);
        controllers[1]!.cancel();
        controllers[0]!.cancel();
        await expect(queued[0]).rejects.toBeInstanceOf(ExecAbortedError);
        await expect(queued[1]).rejects.toBeInstanceOf(ExecAbortedError);
        expect(pool.stats().queued).toBe(2);
        await Promise.all([busy, queued[2], kept]);
        // the worker ran the busy request, the third queued one and the kept one: 3 jobs, not 5
        const [worker] = await pool.workers();
        expect(worker!.jobs).toBe(3);
        expect(pool.stats().errors).toEqual({ WP_WORKER_EXEC_ABORTED: 2 });
      });
    },
  );

  it('a request whose signal is already aborted fails at once without taking a worker', async () => {
    await withPool('sleep.php', { num_workers: 1 }, async (pool) => {
      await expect(pool.exec(request('0'), { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(ExecAbortedError);
      expect((await pool.workers())[0]!.jobs).toBe(0);
      expect(pool.stats().workers.ready).toBe(1);
    });
  });
});

describe('Pool: the default queue bound', () => {
  it('lets 16 requests per worker wait and refuses the next at once with QueueFullError', async () => {
    await withPool('sleep.php', { num_workers: 1 }, async (pool) => {
      expect(pool.maxQueueSize).toBe(16);
      const busy = pool.exec(request('200'));
      const queued = Array.from({ length: 16 }, () => pool.exec(request('0')));
      expect(pool.stats().queued).toBe(16);
      await expect(pool.exec(request('0'))).rejects.toBeInstanceOf(QueueFullError);
      await Promise.all([busy, ...queued]);
    });
  });

  it("max_queue_size: 0 keeps RoadRunner's unlimited queue", async () => {
    await withPool('sleep.php', { num_workers: 1, max_queue_size: 0 }, async (pool) => {
      const busy = pool.exec(request('100'));
      const queued = Array.from({ length: 40 }, () => pool.exec(request('0')));
      expect(pool.stats().queued).toBe(40);
      await Promise.all([busy, ...queued]);
    });
  });
});

describe('Pool: worker asks to stop', () => {
  it('re-runs the request on another worker and retires the one that asked', async () => {
    const marker = `/tmp/warmpool-stop-${process.pid}-${Date.now()}`;
    await withPool('asks-to-stop.php', { num_workers: 2, env: { STOP_MARKER: marker } }, async (pool) => {
      const recycled: string[] = [];
      pool.on('worker:recycle', ({ reason }) => recycled.push(reason));
      const reply = await pool.exec(request('stop-once'));
      expect(Number(reply.body.toString())).toBeGreaterThan(0);
      expect(recycled).toEqual(['worker_stop']);
      await eventually(() => pool.stats().workers.ready === 2, 'a replacement worker');
    });
  });
});

describe('Pool: reset()', () => {
  it('replaces every worker one at a time while requests keep being served', async () => {
    await withPool('sleep.php', { num_workers: 2 }, async (pool) => {
      const before = new Set((await pool.workers()).map((w) => w.pid));
      let failures = 0;
      let served = 0;
      let minCapacity = Infinity;
      let resetting = true;
      const load = (async () => {
        while (resetting) {
          const s = pool.stats();
          minCapacity = Math.min(minCapacity, s.workers.ready + s.workers.working);
          await Promise.all([pool.exec(request('5')), pool.exec(request('5'))]).then(
            () => (served += 2),
            () => failures++,
          );
        }
      })();
      const progress: number[] = [];
      pool.on('pool:reset-progress', ({ replaced }) => progress.push(replaced));
      await pool.reset();
      resetting = false;
      await load;
      const after = (await pool.workers()).map((w) => w.pid);
      expect(after).toHaveLength(2);
      expect(after.some((pid) => before.has(pid))).toBe(false);
      expect(progress).toEqual([1, 2]);
      expect(failures).toBe(0);
      expect(served).toBeGreaterThan(0);
      expect(minCapacity).toBeGreaterThanOrEqual(1);
      expect(pool.stats().recycles.reset).toBe(2);
    });
  });
});

describe('Pool: reset() waiting for a request', () => {
  it('says which old worker it waits for and for how long, then logs why it kills it', async () => {
    const logger = recordingLogger();
    await withPool('hang.php', { num_workers: 1, reset_timeout: '300ms', logger }, async (pool) => {
      const [old] = (await pool.workers()).map((w) => w.pid);
      const hung = pool.exec(request('hang'));
      hung.catch(() => {});
      await eventually(() => pool.stats().workers.working === 1, 'the hung request running');
      const waits: Array<{ pids: number[]; timeoutMs: number }> = [];
      pool.on('pool:reset-waiting', (w) => waits.push(w));
      await pool.reset();
      expect(waits).toEqual([{ pids: [old], timeoutMs: 300 }]);
      const said = logger.lines.map((l) => `${l.level}: ${l.msg}`);
      expect(said).toContain(
        `info: reset: waiting for the request of worker ${old} to end (up to reset_timeout 0.3s; killed then, its request fails)`,
      );
      expect(said).toContain(
        `warn: reset: worker ${old} still runs a request after reset_timeout (0.3s); killing it (its request fails with 502)`,
      );
      await expect(hung).rejects.toThrow(/by a reset \(its request outlasted reset_timeout\)/);
    });
  });

  it('waits for nothing when every old worker was idle', async () => {
    await withPool('echo.php', { num_workers: 2 }, async (pool) => {
      const waits: unknown[] = [];
      pool.on('pool:reset-waiting', (w) => waits.push(w));
      await pool.reset();
      expect(waits).toEqual([]);
    });
  });
});

describe('Pool: close()', () => {
  it('lets in-flight and queued requests finish, then refuses new ones and stops every worker', async () => {
    const pool = createPool({ command: ['php', fixture('sleep.php')], num_workers: 1, logger: recordingLogger() });
    await pool.start();
    const pids = (await pool.workers()).map((w) => w.pid);
    const inFlight = pool.exec(request('300'));
    await sleep(20);
    const queued = pool.exec(request('0'));
    const closed = pool.close();
    await expect(pool.exec(request('0'))).rejects.toBeInstanceOf(PoolClosedError);
    expect(Number((await inFlight).body.toString())).toBe(pids[0]);
    expect(Number((await queued).body.toString())).toBe(pids[0]);
    await closed;
    expect(pool.stats().workers).toMatchObject({ ready: 0, working: 0, booting: 0 });
    expect(() => process.kill(pids[0]!, 0)).toThrow();
  });

  it('kills a request still running after destroy_timeout', async () => {
    const pool = createPool({
      command: ['php', fixture('hang.php')],
      num_workers: 1,
      destroy_timeout: 200,
      logger: recordingLogger(),
    });
    await pool.start();
    const hung = pool.exec(request('hang')).catch((e: unknown) => e);
    await sleep(50);
    await pool.close();
    expect(await hung).toBeInstanceOf(WorkerExitedError);
    expect(pool.stats().recycles.shutdown).toBe(1);
  });
});

describe('Pool: stopping workers', () => {
  it('stops idle workers with the protocol stop command: they leave their loop and exit 0', async () => {
    const pool = createPool({ command: ['php', fixture('echo.php')], num_workers: 2, logger: recordingLogger() });
    await pool.start();
    const exits: { code: number | null; signal: string | null; reason: string | null }[] = [];
    pool.on('worker:exit', ({ code, signal, reason }) => exits.push({ code, signal, reason }));
    await pool.exec(request());
    await pool.close();
    expect(exits).toEqual([
      { code: 0, signal: null, reason: 'shutdown' },
      { code: 0, signal: null, reason: 'shutdown' },
    ]);
  });
});

describe('Pool: misuse', () => {
  it('exec() before start() fails at once, saying what to do', async () => {
    const pool = createPool({ command: ['php', fixture('echo.php')], num_workers: 1 });
    await expect(pool.exec(request())).rejects.toThrow(/await pool.start\(\) before exec\(\)/);
  });
});
