// What one worker really uses: memory from /proc/<pid>/status and smaps_rollup, CPU time and
// run-queue wait from /proc/<pid>/stat and schedstat, and the workload's I/O-wait share from those.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { performance } from 'node:perf_hooks';

export interface WorkerMemory {
  /** resident set size (VmRSS), shared pages counted in full */
  rssBytes: number;
  /** proportional set size (Pss of smaps_rollup): shared pages split among their users; null when unreadable */
  pssBytes: number | null;
}

/**
 * Reads a live worker's memory. Throws when /proc/<pid>/status cannot be read or has no VmRSS
 * (the process is gone or a zombie); PSS is null when smaps_rollup is missing (kernel < 4.14) or
 * not readable (another user's process).
 */
export async function readWorkerMemory(pid: number, root = '/'): Promise<WorkerMemory> {
  const status = await readProcFile(root, pid, 'status');
  const rss = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (rss === null)
    throw new Error(`process ${pid} has no resident memory (VmRSS) in /proc/${pid}/status: it has exited`);
  let pssBytes: number | null = null;
  try {
    const pss = /^Pss:\s+(\d+)\s+kB/m.exec(
      await readFile(posix.join(root, 'proc', String(pid), 'smaps_rollup'), 'latin1'),
    );
    if (pss !== null) pssBytes = Number(pss[1]) * 1024;
  } catch {
    // not available: RSS alone
  }
  return { rssBytes: Number(rss[1]) * 1024, pssBytes };
}

export interface CpuSample {
  pid: number;
  /** CPU time used so far: utime + stime, plus cutime + cstime of children it has waited for (exec'd tools) */
  cpuMs: number;
  /** time spent runnable but waiting for a CPU (schedstat field 2); null when the kernel does not expose it */
  runQueueMs: number | null;
  /** when the sample was taken: performance.now(), monotonic milliseconds */
  at: number;
}

/**
 * Samples a worker's CPU counters. Only differences between two samples of the same pid mean
 * anything (see diffCpuSamples). Throws when /proc/<pid>/stat cannot be read.
 */
export async function readCpuSample(pid: number, root = '/'): Promise<CpuSample> {
  const [stat, ticksPerSecond, schedstat] = await Promise.all([
    readProcFile(root, pid, 'stat'),
    clockTicksPerSecond(),
    readFile(posix.join(root, 'proc', String(pid), 'schedstat'), 'latin1').catch(() => null),
  ]);
  const at = performance.now();
  const ticks = parseStatCpuTicks(stat, pid);
  const waitNs = schedstat === null ? Number.NaN : Number(schedstat.trim().split(/\s+/)[1]);
  return {
    pid,
    cpuMs: (ticks * 1000) / ticksPerSecond,
    runQueueMs: Number.isFinite(waitNs) ? waitNs / 1e6 : null,
    at,
  };
}

/**
 * Sum of fields 14-17 (utime, stime, cutime, cstime) of /proc/<pid>/stat, in clock ticks.
 * Field 2 (comm) is in parentheses and may itself hold spaces and ')' ("php (x) y"), so fields
 * are counted from after the last ')'.
 */
export function parseStatCpuTicks(stat: string, pid = 0): number {
  const close = stat.lastIndexOf(')');
  // after ')' come field 3 (state) onwards: field n is at index n - 3
  const fields =
    close < 0
      ? []
      : stat
          .slice(close + 1)
          .trim()
          .split(/\s+/);
  const values = [14, 15, 16, 17].map((n) => Number(fields[n - 3]));
  if (values.some((v) => !Number.isFinite(v)))
    throw new Error(`/proc/${pid}/stat is not in the expected format: ${JSON.stringify(stat.slice(0, 200))}`);
  return values.reduce((a, b) => a + b, 0);
}

export interface CpuWindow {
  /** CPU time used between the samples */
  cpuMs: number;
  /** run-queue wait between the samples (0 when the kernel does not expose it) */
  runQueueMs: number;
  /** wall time between the samples */
  wallMs: number;
}

/** The CPU used between two samples of the same process. Throws when the pids differ. */
export function diffCpuSamples(before: CpuSample, after: CpuSample): CpuWindow {
  if (before.pid !== after.pid)
    throw new RangeError(`cpu samples of different processes (${before.pid} and ${after.pid}) cannot be compared`);
  const runQueueMs = before.runQueueMs === null || after.runQueueMs === null ? 0 : after.runQueueMs - before.runQueueMs;
  return {
    cpuMs: Math.max(0, after.cpuMs - before.cpuMs),
    runQueueMs: Math.max(0, runQueueMs),
    wallMs: Math.max(0, after.at - before.at),
  };
}

/**
 * Windows shorter than this (of busy time, summed over workers) give no share: CPU time comes in
 * 10 ms clock ticks, so below 100 ms a single tick moves the share by more than 10 points.
 */
export const MIN_MEASURED_BUSY_MS = 100;

/**
 * Share of a worker's busy time (executing requests) spent waiting for I/O rather than computing:
 * 1 − (cpu + run-queue wait) / busy, clamped to [0, 1]. Run-queue wait is time the worker was
 * runnable but another process had the CPU: it counts as wanting CPU, so a CPU-bound worker on a
 * loaded machine does not look I/O-bound. (An I/O-bound worker's wake-ups queue too, which moves it
 * towards CPU-bound: the error is on the side of fewer workers.) Null when busyMs <
 * MIN_MEASURED_BUSY_MS, too short to tell.
 */
export function ioWaitShare(busyMs: number, cpuMs: number, runQueueMs = 0): number | null {
  if (!(busyMs >= MIN_MEASURED_BUSY_MS)) return null;
  const share = 1 - (Math.max(0, cpuMs) + Math.max(0, runQueueMs)) / busyMs;
  return Math.min(1, Math.max(0, share));
}

/** One worker as seen at one moment, for measureWorkload: the pool's busy-time counter plus a CPU sample. */
export interface WorkerSnapshot {
  pid: number;
  /** total wall time this worker has spent executing requests (exec start → reply), a counter kept by the pool */
  busyMs: number;
  cpu: CpuSample;
}

export interface WorkloadShape {
  /** workers present in both snapshots (recycled and new workers are left out) */
  workers: number;
  busyMs: number;
  cpuMs: number;
  runQueueMs: number;
  /** ioWaitShare of the sums; null when the workers were too idle to tell */
  ioShare: number | null;
}

/**
 * The workload's shape over a window, from snapshots of every worker at its start and end (what
 * `warmpool tune` does on a running server). Only pids present in both count.
 */
export function measureWorkload(before: readonly WorkerSnapshot[], after: readonly WorkerSnapshot[]): WorkloadShape {
  const start = new Map(before.map((s) => [s.pid, s]));
  let workers = 0;
  let busyMs = 0;
  let cpuMs = 0;
  let runQueueMs = 0;
  for (const end of after) {
    const begin = start.get(end.pid);
    if (begin === undefined) continue;
    const window = diffCpuSamples(begin.cpu, end.cpu);
    workers++;
    busyMs += Math.max(0, end.busyMs - begin.busyMs);
    cpuMs += window.cpuMs;
    runQueueMs += window.runQueueMs;
  }
  return { workers, busyMs, cpuMs, runQueueMs, ioShare: ioWaitShare(busyMs, cpuMs, runQueueMs) };
}

// ---- files and clock ----

async function readProcFile(root: string, pid: number, name: string): Promise<string> {
  const path = posix.join(root, 'proc', String(pid), name);
  try {
    return await readFile(path, 'latin1');
  } catch (error) {
    throw new Error(
      `cannot read ${path}: process ${pid} has exited or is not visible (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
      { cause: error },
    );
  }
}

/** USER_HZ, the unit of /proc/<pid>/stat times: `getconf CLK_TCK` once, 100 when that fails (it is 100 on every Linux port in use). */
let clockTicks: Promise<number> | null = null;
export function clockTicksPerSecond(): Promise<number> {
  clockTicks ??= new Promise((resolve) => {
    execFile('getconf', ['CLK_TCK'], { timeout: 2000 }, (error, stdout) => {
      const value = Number(String(stdout).trim());
      resolve(error === null && Number.isInteger(value) && value > 0 ? value : 100);
    });
  });
  return clockTicks;
}
