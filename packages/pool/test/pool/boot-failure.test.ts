import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PoolClosedError, WorkerExitedError, WorkersDownError } from '../../src/errors.js';
import { createPool } from '../../src/pool/pool.js';
import { eventually, fixture, recordingLogger, request, withPool } from '../php-fixtures.js';

/** Pids of `parent`'s children whose command line names `script` (Linux /proc). */
function childPids(parent: number, script: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(script)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A file boot-gate.php refuses to boot while it exists (a broken deploy), removed after each test. */
function gateFile(): string {
  return join(tmpdir(), `warmpool-gate-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`);
}

/** Far longer than any of these tests may take: a request that waits for it fails the test. */
const ALLOCATE_TIMEOUT_MS = 60_000;

describe('Pool: workers that fail to boot', () => {
  it.each([
    ['stay broken', false],
    ['are fixed', true],
  ])(
    'a worker at max_jobs while fresh ones fail to boot serves on (the pool keeps its size); when boots %s…',
    async (_, fixed) => {
      const gate = gateFile();
      const logger = recordingLogger();
      await withPool(
        'boot-gate.php',
        { env: { BOOT_GATE: gate }, num_workers: 2, max_jobs: 2, allocate_timeout: ALLOCATE_TIMEOUT_MS, logger },
        async (pool) => {
          const first = new Set((await pool.workers()).map((w) => w.pid));
          // a broken deploy, and a reset that stops at its first fresh worker
          writeFileSync(gate, '');
          await expect(pool.reset()).rejects.toThrow(/reset stopped after 0 of 2 workers/);
          if (fixed) rmSync(gate);
          const served = new Set<number>();
          for (let i = 0; i < 8; i++) served.add(Number((await pool.exec(request('echo'))).body.toString()));
          await eventually(() => pool.stats().workers.booting === 0, 'the fresh worker tried to end');
          const stats = pool.stats();
          expect(stats.workers.ready + stats.workers.working).toBe(2);
          const pastLimit = logger.lines.filter((line) => line.msg.includes('serves on past max_jobs'));
          if (!fixed) {
            // the old workers served every request, past their 2 jobs; one fresh worker tried per 10 s
            expect([...served].every((pid) => first.has(pid))).toBe(true);
            expect(pastLimit).toHaveLength(1);
          } else {
            // the first worker at its limit tried a fresh one, which booted: it took over, and the
            // recycling went on as usual
            for (let i = 0; i < 500 && [...served].every((pid) => first.has(pid)); i++) {
              served.add(Number((await pool.exec(request('echo'))).body.toString()));
              await new Promise((resolve) => setTimeout(resolve, 20));
            }
            expect([...served].some((pid) => !first.has(pid))).toBe(true);
            expect(logger.lines.some((line) => line.msg.includes('(max_jobs)'))).toBe(true);
          }
        },
      );
      rmSync(gate, { force: true });
    },
  );

  it('workers reaching max_jobs together while fresh ones fail to boot: every request served, none of them leaves (before: the pool went to 0)', async () => {
    const gate = gateFile();
    const logger = recordingLogger();
    await withPool(
      'boot-gate.php',
      { env: { BOOT_GATE: gate }, num_workers: 3, max_jobs: 2, allocate_timeout: ALLOCATE_TIMEOUT_MS, logger },
      async (pool) => {
        const first = new Set((await pool.workers()).map((w) => w.pid));
        writeFileSync(gate, ''); // broken code deployed, no reset
        for (let round = 0; round < 6; round++) {
          const replies = await Promise.all([1, 2, 3, 4].map(() => pool.exec(request('echo'))));
          for (const reply of replies) expect(first.has(Number(reply.body.toString()))).toBe(true);
        }
        await eventually(() => pool.stats().workers.booting === 0, 'the fresh workers tried to end');
        const stats = pool.stats();
        expect(stats.workers.ready + stats.workers.working).toBe(3);
        expect(logger.lines.some((line) => line.msg.includes('(max_jobs)'))).toBe(false);
      },
    );
    rmSync(gate, { force: true });
  });

  it('a reset while a worker at max_jobs waits for its replacement keeps the pool at its size (before: one more worker each time)', async () => {
    const gate = gateFile(); // never there
    await withPool('boot-gate.php', { env: { BOOT_GATE: gate }, num_workers: 1, max_jobs: 1 }, async (pool) => {
      for (let round = 0; round < 3; round++) {
        await pool.exec(request('echo')); // its worker is held now, its replacement booting
        await pool.reset();
      }
      await eventually(() => {
        const { workers } = pool.stats();
        return workers.booting === 0 && workers.stopping === 0;
      }, 'the replacements to settle');
      const { workers } = pool.stats();
      expect([workers.ready + workers.working, (await pool.workers()).length]).toEqual([1, 1]);
    });
  });

  it('max_jobs: a worker at its limit takes no more requests, and leaves once its replacement is ready', async () => {
    const gate = gateFile(); // never there: boot-gate.php answers with its pid
    await withPool('boot-gate.php', { env: { BOOT_GATE: gate }, num_workers: 1, max_jobs: 1 }, async (pool) => {
      const pids: number[] = [];
      for (let i = 0; i < 3; i++) pids.push(Number((await pool.exec(request('echo'))).body.toString()));
      expect(new Set(pids).size).toBe(3);
      expect(pool.stats().workers.ready + pool.stats().workers.working).toBe(1);
    });
  });

  it('start(signal, keepTrying): nothing boots, yet the pool starts down and retrying; it serves once boots work', async () => {
    // a server of several sites starts the others while one site's deploy is broken
    const gate = gateFile();
    writeFileSync(gate, '');
    const pool = createPool({
      command: ['php', fixture('boot-gate.php')],
      env: { BOOT_GATE: gate },
      num_workers: 1,
      allocate_timeout: ALLOCATE_TIMEOUT_MS,
      logger: recordingLogger(),
    });
    try {
      await pool.start(undefined, true);
      expect(pool.stats().bootError).not.toBeNull();
      await expect(pool.exec(request('echo'))).rejects.toBeInstanceOf(WorkersDownError);
      // a few failed boots: the backoff's next try is seconds away
      const failures: number[] = [];
      pool.on('pool:boot-failed', ({ attempt }) => failures.push(attempt));
      await eventually(() => failures.length >= 3, 'three failed boots');
      rmSync(gate);
      // the deploy is fixed: a reset boots a worker now (before: "0 workers replaced", and a wait)
      await pool.reset();
      expect(pool.stats().workers.ready).toBe(1);
      await expect(pool.exec(request('echo'))).resolves.toBeDefined();
    } finally {
      rmSync(gate, { force: true });
      await pool.close();
    }
  });

  it('retries with backoff instead of spinning, reports the failure, and recovers when boots work again', async () => {
    const gate = gateFile();
    const logger = recordingLogger();
    // boot-gate.php exits when refused, so no wait here depends on allocate_timeout; a short one
    // only failed the first boot on a busy machine (seen at a load of 21 on 2 cores)
    await withPool(
      'boot-gate.php',
      { env: { BOOT_GATE: gate }, allocate_timeout: ALLOCATE_TIMEOUT_MS, logger },
      async (pool) => {
        const retries: number[] = [];
        pool.on('pool:boot-failed', ({ retryInMs }) => retries.push(retryInMs));
        // A broken deploy: replacements cannot boot from now on.
        writeFileSync(gate, '');
        try {
          await expect(pool.exec(request('crash'))).rejects.toBeInstanceOf(WorkerExitedError);
          // three failed boots, each retried after twice the wait before: backoff, not a spin (the
          // count, not the clock: a busy machine boots more slowly)
          await eventually(() => retries.length >= 3, 'three failed boots');
          expect(retries.slice(0, 3)).toEqual([100, 200, 400]);
          const stats = pool.stats();
          expect(stats.bootError).toMatch(/exited during boot/);
          expect(stats.bootFailures).toBe(retries.length);
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
      },
    );
  });

  it('workers that fail together count as one step of backoff, so a short outage stays short', async () => {
    const gate = gateFile();
    await withPool('boot-gate.php', { env: { BOOT_GATE: gate }, num_workers: 4 }, async (pool) => {
      const attempts: number[] = [];
      pool.on('pool:boot-failed', ({ attempt }) => attempts.push(attempt));
      writeFileSync(gate, '');
      try {
        // all four die; their replacements fail to boot together, round after round
        await Promise.allSettled([1, 2, 3, 4].map(() => pool.exec(request('crash'))));
        await eventually(() => attempts.length >= 8, 'eight failed boots');
        // one step per round of four (before: one per boot, 8 steps, the wait at 10 s within two rounds)
        expect(Math.max(...attempts.slice(0, 8))).toBeLessThanOrEqual(6);
        const down = await pool.exec(request('ok')).catch((e: unknown) => e);
        expect((down as Error).message).toMatch(/next in \d+\.\d s, or at once with `warmpool reset`/);
      } finally {
        rmSync(gate, { force: true });
      }
      await eventually(() => pool.stats().workers.ready === 4, 'the pool to recover', 15_000);
    });
  });

  it('fails requests at once with the boot error while no worker runs and boots fail, then serves again', async () => {
    const gate = gateFile();
    await withPool(
      'boot-gate.php',
      { env: { BOOT_GATE: gate }, num_workers: 2, allocate_timeout: ALLOCATE_TIMEOUT_MS },
      async (pool) => {
        writeFileSync(gate, '');
        try {
          // Both workers busy with a request that kills them; a third request waits for a worker.
          const crashes = [pool.exec(request('crash')), pool.exec(request('crash'))];
          const waiting = pool.exec(request('ok'));
          expect(pool.stats().queued).toBe(1);
          for (const crash of await Promise.allSettled(crashes)) {
            expect((crash as PromiseRejectedResult).reason).toBeInstanceOf(WorkerExitedError);
          }
          // It fails once their replacements failed to boot, not after allocate_timeout.
          const waited = await waiting.catch((e: unknown) => e);
          expect(waited).toBeInstanceOf(WorkersDownError);
          expect((waited as Error).message).toMatch(/no worker is running.*cannot boot.*boot refused/s);
          expect((waited as WorkersDownError).cause).toBeInstanceOf(Error);
          // New requests fail at once, whichever moment of the backoff they arrive in.
          for (let i = 0; i < 5; i++) {
            await expect(pool.exec(request('ok'))).rejects.toBeInstanceOf(WorkersDownError);
          }
          expect(pool.stats().errors.WP_POOL_WORKERS_DOWN).toBe(6);
          expect(pool.stats().queued).toBe(0);
        } finally {
          rmSync(gate, { force: true });
        }
        // Fixed: the next retry boots the workers and requests are served as before.
        await eventually(() => pool.stats().workers.ready === 2, 'the pool to recover', 15_000);
        expect(Number((await pool.exec(request('ok'))).body.toString())).toBeGreaterThan(0);
      },
    );
  });

  it('fails the waiting requests when the last worker dies while boots are failing', async () => {
    const gate = gateFile();
    await withPool(
      'boot-gate.php',
      { env: { BOOT_GATE: gate }, num_workers: 2, allocate_timeout: ALLOCATE_TIMEOUT_MS },
      async (pool) => {
        writeFileSync(gate, '');
        try {
          // One worker dies and cannot be replaced: the other serves on while boots back off.
          await expect(pool.exec(request('crash'))).rejects.toBeInstanceOf(WorkerExitedError);
          const backingOff = new Promise<void>((resolve) =>
            pool.on('pool:boot-failed', ({ retryInMs }) => retryInMs >= 1_600 && resolve()),
          );
          await backingOff;
          expect(Number((await pool.exec(request('ok'))).body.toString())).toBeGreaterThan(0);
          // The last worker dies with a request waiting behind it, the next boot over a second away.
          const bootFailures = pool.stats().bootFailures;
          const crash = pool.exec(request('crash'));
          const waiting = pool.exec(request('ok'));
          expect(pool.stats().queued).toBe(1);
          const [crashed, waited] = await Promise.allSettled([crash, waiting]);
          expect((crashed as PromiseRejectedResult).reason).toBeInstanceOf(WorkerExitedError);
          expect((waited as PromiseRejectedResult).reason).toBeInstanceOf(WorkersDownError);
          // at the worker's exit, not at the next boot attempt's failure
          expect(pool.stats().bootFailures).toBe(bootFailures);
        } finally {
          rmSync(gate, { force: true });
        }
      },
    );
  });

  it('a burst after scaling to zero fails at once while the command cannot boot', async () => {
    const gate = gateFile();
    await withPool(
      'boot-gate.php',
      {
        env: { BOOT_GATE: gate },
        num_workers: undefined,
        min_workers: 0,
        max_workers: 4,
        allocate_timeout: ALLOCATE_TIMEOUT_MS,
        supervisor: { idle_ttl: 200, watch_tick: 50 },
      },
      async (pool) => {
        await eventually(() => pool.stats().numWorkers === 0 && pool.stats().workers.stopping === 0, 'scale to zero');
        writeFileSync(gate, '');
        try {
          const burst = await Promise.allSettled([1, 2, 3, 4, 5, 6].map(() => pool.exec(request('ok'))));
          for (const result of burst) {
            expect(result.status).toBe('rejected');
            expect((result as PromiseRejectedResult).reason).toBeInstanceOf(WorkersDownError);
          }
          await expect(pool.exec(request('ok'))).rejects.toBeInstanceOf(WorkersDownError);
        } finally {
          rmSync(gate, { force: true });
        }
        await eventually(() => pool.stats().workers.ready >= 1, 'a worker to boot again', 15_000);
        expect(Number((await pool.exec(request('ok'))).body.toString())).toBeGreaterThan(0);
        expect(pool.stats().bootError).toBeNull();
      },
    );
  });

  it("a PHP exception at boot keeps its own line in the error, ahead of its stack trace's end, and the hint says to fix it", async () => {
    const pool = createPool({
      command: ['php', fixture('throws-at-boot.php')],
      num_workers: 1,
      logger: recordingLogger(),
    });
    const error = (await pool.start().catch((e: unknown) => e)) as Error;
    await pool.close();
    // before: "Last output: #28 ... | #29 ... | #30 ... | #31 {main} | thrown in ...", the cause cut off
    expect(error.message).toMatch(
      /Last output: PHP Fatal error: {2}Uncaught RuntimeException: SQLSTATE\[HY000\] \[2002\] Connection refused \(at boot\)[^|]* \| … \| /,
    );
    expect(error.message).toContain('thrown in');
    expect(error.message).toMatch(
      /Fix the PHP error above \(run "php \S+throws-at-boot\.php" by hand to see it whole\)\.$/,
    );
    expect(error.message).not.toContain('runs a worker loop');
  });

  it('start(signal): aborting it while the workers boot kills them and start() rejects with PoolClosedError', async () => {
    const pool = createPool({
      command: ['php', fixture('swap-version.php')],
      env: { APP_BOOT: 'hang' },
      num_workers: 2,
      allocate_timeout: ALLOCATE_TIMEOUT_MS,
      logger: recordingLogger(),
    });
    const booting = new AbortController();
    const started = pool.start(booting.signal);
    // both processes run (and hang before the handshake) before the stop comes
    const pids: number[] = [];
    await eventually(() => {
      pids.splice(0, pids.length, ...childPids(process.pid, 'swap-version.php'));
      return pids.length === 2;
    }, 'two workers booting');
    booting.abort();
    await expect(started).rejects.toBeInstanceOf(PoolClosedError);
    await pool.close();
    for (const pid of pids) expect(isAlive(pid), `pid ${pid}`).toBe(false);
    expect(pool.stats().workers.booting).toBe(0);
  });

  it('start(signal) with a signal already aborted boots nothing', async () => {
    const pool = createPool({ command: ['php', fixture('hang.php')], logger: recordingLogger() });
    await expect(pool.start(AbortSignal.abort())).rejects.toBeInstanceOf(PoolClosedError);
    expect(pool.stats().workers).toMatchObject({ ready: 0, booting: 0 });
  });
});
