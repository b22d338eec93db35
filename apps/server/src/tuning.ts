// `warmpool tune`, server side: measure the running pool's real workload for a window, then size it
// with the pool's own sizing rules (recommendWorkers) and render the report lines (describeTuning).
import { setTimeout as sleep } from 'node:timers/promises';
import { TuneNoWorkersError } from './errors.js';
import {
  describeTuning,
  formatBytes,
  measureWorkload,
  readCpuSample,
  readMachineLimits,
  readWorkerMemory,
  recommendWorkers,
  type MachineLimits,
  type AnyPool,
  type SizingInput,
  type SizingResult,
  type WorkerSnapshot,
  type WorkloadShape,
} from '@warmpool/pool';

/** One worker measured over the window (present at both ends). */
export interface TunedWorker {
  pid: number;
  rssBytes: number;
  pssBytes: number | null;
  /** wall time spent on requests during the window */
  busyMs: number;
  /** CPU time used during the window */
  cpuMs: number;
}

export interface TuneReport {
  site?: string;
  windowMs: number;
  /** workers the pool runs now (its target size) */
  currentWorkers: number;
  /** a dynamic pool's bounds (min_workers/max_workers): the recommendation is then its max_workers */
  dynamic?: { minWorkers: number; maxWorkers: number };
  workers: TunedWorker[];
  /** busy vs CPU time summed over the workers present at both ends */
  workload: WorkloadShape;
  /** memory of the running workers (PSS where readable, else RSS), added back to what is available */
  runningWorkersBytes: number;
  input: SizingInput;
  result: SizingResult;
  /** describeTuning's lines, plus a note when the window was too quiet to measure I/O wait */
  lines: string[];
}

export interface MeasureTuningOptions {
  site?: string;
  /** stops the wait early (the server closing); the measurement then rejects */
  signal?: AbortSignal;
  /** machine limits (tests pass fixed ones); default readMachineLimits() */
  limits?: MachineLimits;
}

/**
 * Measures a running pool and recommends num_workers.
 * 1. Snapshot every live worker: the pool's busy-time counter and a /proc CPU sample.
 * 2. Wait windowMs while real traffic runs.
 * 3. Snapshot again; measureWorkload keeps the workers present at both ends (recycled ones drop out)
 *    and gives the I/O-wait share (null when they were too idle to tell).
 * 4. Per-worker memory is the largest RSS among the workers (budget for the biggest one).
 * 5. Machine limits are read now, while the pool runs: its workers already use part of the memory
 *    that is "available", so their memory is added back (a recommendation is a total, not "how many
 *    more"), capped at the total.
 * 6. recommendWorkers + describeTuning, with the pool's own headroom.
 */
export async function measureTuning(
  pool: AnyPool,
  windowMs: number,
  options: MeasureTuningOptions = {},
): Promise<TuneReport> {
  const before = await snapshot(pool);
  if (before.length === 0) throw new TuneNoWorkersError(options.site);
  await sleep(windowMs, undefined, { signal: options.signal });
  const after = await snapshot(pool);
  const workload = measureWorkload(before, after);

  const start = new Map(before.map((s) => [s.pid, s]));
  const measured: TunedWorker[] = [];
  for (const end of after) {
    const begin = start.get(end.pid);
    if (begin === undefined) continue;
    const memory = await readWorkerMemory(end.pid).catch(() => null);
    if (memory === null) continue; // exited since the sample
    measured.push({
      pid: end.pid,
      rssBytes: memory.rssBytes,
      pssBytes: memory.pssBytes,
      busyMs: Math.max(0, end.busyMs - begin.busyMs),
      cpuMs: Math.max(0, end.cpu.cpuMs - begin.cpu.cpuMs),
    });
  }
  if (measured.length === 0) throw new TuneNoWorkersError(options.site);

  const biggest = measured.reduce((a, b) => (b.rssBytes > a.rssBytes ? b : a));
  const runningWorkersBytes = measured.reduce((sum, w) => sum + (w.pssBytes ?? w.rssBytes), 0);
  const read = options.limits ?? (await readMachineLimits());
  const limits: MachineLimits = {
    ...read,
    memoryBytes: Math.min(read.totalMemoryBytes, read.memoryBytes + runningWorkersBytes),
  };
  const input: SizingInput = {
    limits,
    worker: { rssBytes: biggest.rssBytes, pssBytes: biggest.pssBytes },
    ioShare: workload.ioShare,
    headroom: pool.options.headroom,
  };
  const result = recommendWorkers(input);

  const lines = [
    `Measured ${measured.length} worker${measured.length === 1 ? '' : 's'} for ${seconds(windowMs)}: ${Math.round(workload.busyMs)} ms busy, ${Math.round(workload.cpuMs)} ms CPU` +
      (workload.runQueueMs > 0 ? `, ${Math.round(workload.runQueueMs)} ms waiting for a CPU` : ''),
    `  memory available counts the ${measured.length} running worker${measured.length === 1 ? '' : 's'}' ${formatBytes(runningWorkersBytes)} as free (they are what is being sized)`,
    ...describeTuning(input, result, pool.options.dynamic === null ? 'num_workers' : 'max_workers'),
  ];
  if (workload.ioShare === null) {
    lines.push(
      `Note: the workers were busy ${Math.round(workload.busyMs)} ms in total, too little to measure I/O wait; ` +
        'run warmpool tune while real traffic flows, or with a longer window (--window 60s)',
    );
  }
  const report: TuneReport = {
    windowMs,
    currentWorkers: pool.stats().numWorkers,
    workers: measured,
    workload,
    runningWorkersBytes,
    input,
    result,
    lines,
  };
  const { dynamic } = pool.options;
  if (dynamic !== null) report.dynamic = { minWorkers: dynamic.minWorkers, maxWorkers: dynamic.maxWorkers };
  if (options.site !== undefined) report.site = options.site;
  return report;
}

/** Busy-time counters and CPU samples of the workers that are up (booting/exited ones have nothing to say). */
async function snapshot(pool: AnyPool): Promise<WorkerSnapshot[]> {
  const infos = (await pool.workers()).filter((w) => w.state === 'ready' || w.state === 'working');
  const samples = await Promise.all(
    infos.map(async (info) => {
      const cpu = await readCpuSample(info.pid).catch(() => null);
      return cpu === null ? null : { pid: info.pid, busyMs: info.busyMs, cpu };
    }),
  );
  return samples.filter((s): s is WorkerSnapshot => s !== null);
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`;
}
