import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import {
  clockTicksPerSecond,
  diffCpuSamples,
  IO_BOUND_SHARE,
  ioWaitShare,
  measureWorkload,
  parseStatCpuTicks,
  readCpuSample,
  readWorkerMemory,
  recommendWorkers,
  type CpuSample,
  type MachineLimits,
} from '../../src/sizing/index.js';
import { fixture } from '../php-fixtures.js';

const MiB = 1024 ** 2;
/** Long enough that CPU ticks (10 ms) and scheduling noise on a loaded 2-core machine cannot flip the class. */
const WINDOW_MS = 400;

interface Php {
  pid: number;
  /** sends one job of `ms` milliseconds and waits for its "done" */
  run(ms: number): Promise<void>;
}

/** Every php this file started; each must be gone at the end (checked here, since other suites may share the machine). */
const spawned: number[] = [];
afterAll(() => {
  const alive = spawned.filter((pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  });
  expect(alive).toEqual([]);
});

/** Runs a standalone php fixture that takes one job per stdin line; always killed and reaped at the end. */
async function withPhp<T>(name: string, fn: (php: Php) => Promise<T>): Promise<T> {
  const child = spawn('php', [fixture(name)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(child, 'exit').catch(() => undefined);
  if (child.pid !== undefined) spawned.push(child.pid);
  try {
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    const next = async (): Promise<string> => {
      const line = await lines.next();
      if (line.done === true) throw new Error(`${name} exited early`);
      return line.value;
    };
    expect(await next()).toBe('ready');
    return await fn({
      pid: child.pid!,
      run: async (ms) => {
        child.stdin.write(`${ms}\n`);
        expect(await next()).toBe('done');
      },
    });
  } finally {
    child.stdin.end();
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  }
}

/** One busy window of a worker: samples around one job, busy time = the wall time of the job. */
async function measure(php: Php, ms: number) {
  const before = await readCpuSample(php.pid);
  await php.run(ms);
  const after = await readCpuSample(php.pid);
  const window = diffCpuSamples(before, after);
  return { ...window, ioShare: ioWaitShare(window.wallMs, window.cpuMs, window.runQueueMs) };
}

const LIMITS: MachineLimits = {
  cpus: 2,
  cpuQuota: null,
  cores: 2,
  cpuSource: 'cores',
  memoryBytes: 4096 * MiB,
  memorySource: 'meminfo',
  totalMemoryBytes: 8192 * MiB,
};

describe('readWorkerMemory (real php)', () => {
  it('reads RSS from status and PSS from smaps_rollup (PSS ≤ RSS, or null when unreadable)', async () => {
    await withPhp('io-bound.php', async (php) => {
      const memory = await readWorkerMemory(php.pid);
      expect(memory.rssBytes).toBeGreaterThan(1 * MiB);
      if (memory.pssBytes !== null) {
        expect(memory.pssBytes).toBeGreaterThan(0);
        expect(memory.pssBytes).toBeLessThanOrEqual(memory.rssBytes);
      }
    });
  });

  it('rejects with the pid and the path when the process is gone', async () => {
    await expect(readWorkerMemory(999_999_999)).rejects.toThrow(
      /\/proc\/999999999\/status: process 999999999 has exited/,
    );
    await expect(readCpuSample(999_999_999)).rejects.toThrow(/\/proc\/999999999\/stat/);
  });
});

describe('readCpuSample + ioWaitShare (real php)', () => {
  it('a CPU-bound worker uses CPU for (nearly) its whole busy time and sizes to one worker per CPU', async () => {
    await withPhp('cpu-bound.php', async (php) => {
      const window = await measure(php, WINDOW_MS);
      expect(window.cpuMs).toBeGreaterThan(0);
      expect(window.cpuMs + window.runQueueMs).toBeGreaterThan(window.wallMs * (1 - IO_BOUND_SHARE));
      expect(window.ioShare).not.toBeNull();
      expect(window.ioShare!).toBeLessThan(IO_BOUND_SHARE);
      const result = recommendWorkers({
        limits: LIMITS,
        worker: await readWorkerMemory(php.pid),
        ioShare: window.ioShare,
      });
      expect(result).toMatchObject({ workload: 'cpu-bound', numWorkers: 2 });
    });
  });

  it('an I/O-bound (usleep) worker uses almost no CPU and gets more workers than the CPU-bound one', async () => {
    const shares: Record<string, { ioShare: number; numWorkers: number }> = {};
    for (const name of ['cpu-bound.php', 'io-bound.php']) {
      await withPhp(name, async (php) => {
        const window = await measure(php, WINDOW_MS);
        if (name === 'io-bound.php') expect(window.cpuMs).toBeLessThan(window.wallMs * IO_BOUND_SHARE);
        const { numWorkers } = recommendWorkers({
          limits: LIMITS,
          worker: await readWorkerMemory(php.pid),
          ioShare: window.ioShare,
        });
        shares[name] = { ioShare: window.ioShare!, numWorkers };
      });
    }
    expect(shares['io-bound.php']!.ioShare).toBeGreaterThanOrEqual(IO_BOUND_SHARE);
    expect(shares['cpu-bound.php']!.ioShare).toBeLessThan(IO_BOUND_SHARE);
    expect(shares['io-bound.php']!.numWorkers).toBeGreaterThan(shares['cpu-bound.php']!.numWorkers);
  });

  it('measureWorkload sums the busy windows of several workers (the tune path)', async () => {
    await withPhp('cpu-bound.php', (cpu) =>
      withPhp('io-bound.php', async (io) => {
        const before = [
          { pid: cpu.pid, busyMs: 1000, cpu: await readCpuSample(cpu.pid) },
          { pid: io.pid, busyMs: 5000, cpu: await readCpuSample(io.pid) },
        ];
        const started = performance.now();
        await Promise.all([cpu.run(WINDOW_MS), io.run(WINDOW_MS)]);
        const busy = performance.now() - started;
        const after = [
          { pid: cpu.pid, busyMs: 1000 + busy, cpu: await readCpuSample(cpu.pid) },
          { pid: io.pid, busyMs: 5000 + busy, cpu: await readCpuSample(io.pid) },
          { pid: 1, busyMs: 10, cpu: { pid: 1, cpuMs: 0, runQueueMs: 0, at: 0 } }, // a worker born in the window: left out
        ];
        const shape = measureWorkload(before, after);
        expect(shape.workers).toBe(2);
        expect(shape.busyMs).toBeCloseTo(2 * busy);
        // half the busy time computes, half sleeps: far from both ends
        expect(shape.ioShare).toBeGreaterThan(0.1);
        expect(shape.ioShare).toBeLessThan(0.9);
      }),
    );
  });
});

describe('parsing /proc/<pid>/stat and schedstat (fake root)', () => {
  const statLine = (comm: string) =>
    `4242 (${comm}) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 30 7 3 20 0 1 0 12345 300000000 7000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n`;

  it('counts fields after the last ")" so a comm with spaces and parentheses cannot shift them', () => {
    expect(parseStatCpuTicks(statLine('php'))).toBe(190);
    expect(parseStatCpuTicks(statLine('php (x) 1 2 3'))).toBe(190);
    expect(() => parseStatCpuTicks('4242 (php) S 1 2')).toThrow(/not in the expected format/);
  });

  it('reads utime+stime+cutime+cstime in ms and the run-queue wait from a fake root', async () => {
    const root = await mkdtemp(join(tmpdir(), 'warmpool-sizing-'));
    try {
      await mkdir(join(root, 'proc/4242'), { recursive: true });
      await writeFile(join(root, 'proc/4242/stat'), statLine('php worker.php) R'));
      await writeFile(join(root, 'proc/4242/schedstat'), '1900000000 25000000 812\n');
      await writeFile(join(root, 'proc/4242/status'), 'Name:\tphp\nVmRSS:\t   28672 kB\n');
      const sample = await readCpuSample(4242, root);
      const hz = await clockTicksPerSecond();
      expect(sample).toMatchObject({ pid: 4242, cpuMs: (190 * 1000) / hz, runQueueMs: 25 });
      expect(await readWorkerMemory(4242, root)).toEqual({ rssBytes: 28 * MiB, pssBytes: null });
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('diffCpuSamples refuses samples of different processes', () => {
    const a: CpuSample = { pid: 1, cpuMs: 10, runQueueMs: null, at: 0 };
    expect(diffCpuSamples(a, { pid: 1, cpuMs: 30, runQueueMs: 5, at: 100 })).toEqual({
      cpuMs: 20,
      runQueueMs: 0,
      wallMs: 100,
    });
    expect(() => diffCpuSamples(a, { ...a, pid: 2 })).toThrow(RangeError);
  });
});

describe('ioWaitShare', () => {
  it('is 1 − (cpu + run-queue wait) / busy, clamped to [0, 1]', () => {
    expect(ioWaitShare(1000, 200)).toBeCloseTo(0.8);
    // a CPU-bound worker that got half a CPU on a loaded machine: still CPU-bound
    expect(ioWaitShare(1000, 500, 480)).toBeCloseTo(0.02);
    expect(ioWaitShare(1000, 1200)).toBe(0);
    expect(ioWaitShare(1000, 0)).toBe(1);
    expect(ioWaitShare(1000, 0, 1000)).toBe(0);
  });

  it('is null for a window too short to tell (clock ticks are 10 ms)', () => {
    expect(ioWaitShare(0, 0)).toBeNull();
    expect(ioWaitShare(99, 10)).toBeNull();
    expect(ioWaitShare(100, 10)).toBeCloseTo(0.9);
  });
});
