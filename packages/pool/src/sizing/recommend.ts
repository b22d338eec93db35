// How many workers to run, from measured inputs: min(cpu-based, ram-based), with the reason in words.
import { assertPositive, nowLmsWorkers, passengerMax } from './formulas.js';
import type { MachineLimits } from './machine-limits.js';
import type { WorkerMemory } from './worker-usage.js';

/** Memory kept free by default: workers are budgeted 75% of what is available (Passenger's share too). */
export const DEFAULT_HEADROOM = 0.25;
/**
 * A workload is I/O-bound from this I/O-wait share up. Below it, an extra worker per CPU would gain
 * less than the measurement's own noise (tick granularity, relay time counted as busy), so CPU-bound
 * workloads get exactly one worker per CPU.
 */
export const IO_BOUND_SHARE = 0.25;
/**
 * The I/O formula gives at most this many workers per CPU (reached at 87.5% I/O wait). Past it the
 * backend being waited on (database, API) is the bottleneck: more PHP workers add connections to it
 * and memory, not throughput. Operators who know better set num_workers themselves.
 */
export const IO_BOUND_MAX_WORKERS_PER_CPU = 8;
/** Same ceiling as the num_workers option. */
export const DEFAULT_MAX_WORKERS = 500;

export type Workload = 'cpu-bound' | 'io-bound' | 'unmeasured';
export type SizingLimit = 'cpu' | 'memory' | 'max_workers';

export interface SizingInput {
  limits: MachineLimits;
  /** the warm worker's memory; its RSS is the per-worker budget (see SizingResult.perWorkerBytes) */
  worker: WorkerMemory;
  /** from ioWaitShare / measureWorkload; null when not measured (sized as CPU-bound) */
  ioShare: number | null;
  /** share of available memory kept free, in [0, 1) (default 0.25) */
  headroom?: number;
  /** upper bound of the answer (default 500) */
  maxWorkers?: number;
}

export interface BudgetRow {
  workers: number;
  /** workers × perWorkerBytes */
  bytes: number;
  /** bytes / available memory */
  share: number;
  /** whether bytes fit in available memory minus headroom */
  fits: boolean;
}

export interface SizingResult {
  numWorkers: number;
  workload: Workload;
  /** which bound decided numWorkers */
  limitedBy: SizingLimit;
  /** cpu-bound/unmeasured: cpus; io-bound: ceil(cpus / (1 − ioShare)), at most 8 × cpus */
  cpuBased: number;
  /** floor(memory × (1 − headroom) / perWorkerBytes); may be 0 (numWorkers is still at least 1) */
  ramBased: number;
  /** bytes budgeted per worker: its RSS (shared pages counted in full, so the budget errs high) */
  perWorkerBytes: number;
  headroom: number;
  /** one sentence naming the inputs and the rule that decided */
  reason: string;
  /** Passenger's max_pool_size from total memory (for comparison) */
  passenger: number;
  /** NOW LMS's min(2*CPU+1, available / per worker) (for comparison) */
  nowLms: number;
  /** memory needed for a few worker counts: 1, cpus, 2*cpus+1, cpuBased, ramBased, numWorkers (sorted, unique) */
  budget: BudgetRow[];
}

/** The recommendation: max(1, min(cpuBased, ramBased, maxWorkers)). Pure; throws RangeError on nonsense input. */
export function recommendWorkers(input: SizingInput): SizingResult {
  const { limits, ioShare } = input;
  const headroom = input.headroom ?? DEFAULT_HEADROOM;
  const maxWorkers = input.maxWorkers ?? DEFAULT_MAX_WORKERS;
  const perWorkerBytes = input.worker.rssBytes;
  assertPositive(perWorkerBytes, 'worker.rssBytes');
  assertPositive(limits.cpus, 'limits.cpus');
  if (!(headroom >= 0 && headroom < 1)) throw new RangeError(`headroom must be in [0, 1), got ${headroom}`);
  if (!(Number.isInteger(maxWorkers) && maxWorkers >= 1))
    throw new RangeError(`maxWorkers must be an integer >= 1, got ${maxWorkers}`);
  if (ioShare !== null && !(ioShare >= 0 && ioShare <= 1))
    throw new RangeError(`ioShare must be in [0, 1] or null, got ${ioShare}`);

  const cpus = limits.cpus;
  const workload: Workload = ioShare === null ? 'unmeasured' : ioShare >= IO_BOUND_SHARE ? 'io-bound' : 'cpu-bound';
  // A worker waiting on I/O a share s of its busy time uses (1 − s) of a CPU, so cpus / (1 − s) of them keep the CPUs busy.
  const cpuBased =
    workload === 'io-bound'
      ? Math.min(IO_BOUND_MAX_WORKERS_PER_CPU * cpus, Math.ceil(cpus / (1 - ioShare!) - 1e-9))
      : cpus;
  const budgetBytes = limits.memoryBytes * (1 - headroom);
  const ramBased = Math.max(0, Math.floor(budgetBytes / perWorkerBytes));

  let numWorkers = Math.min(cpuBased, ramBased);
  let limitedBy: SizingLimit = ramBased < cpuBased ? 'memory' : 'cpu';
  if (numWorkers > maxWorkers) {
    numWorkers = maxWorkers;
    limitedBy = 'max_workers';
  }
  numWorkers = Math.max(1, numWorkers);

  const counts = [...new Set([1, cpus, 2 * cpus + 1, cpuBased, ramBased, numWorkers])]
    .filter((n) => n >= 1)
    .sort((a, b) => a - b);
  const budget = counts.map((workers) => {
    const bytes = workers * perWorkerBytes;
    return {
      workers,
      bytes,
      share: limits.memoryBytes > 0 ? bytes / limits.memoryBytes : Infinity,
      fits: bytes <= budgetBytes,
    };
  });

  const decided: Decided = {
    numWorkers,
    workload,
    limitedBy,
    cpuBased,
    ramBased,
    perWorkerBytes,
    headroom,
    ioShare,
    limits,
    maxWorkers,
  };
  return {
    numWorkers,
    workload,
    limitedBy,
    cpuBased,
    ramBased,
    perWorkerBytes,
    headroom,
    reason: explain(decided),
    passenger: passengerMax(limits.totalMemoryBytes, perWorkerBytes),
    nowLms: nowLmsWorkers(cpus, limits.memoryBytes, perWorkerBytes),
    budget,
  };
}

/** What recommendWorkers decided, for the reason sentence. */
type Decided = Pick<
  SizingResult,
  'numWorkers' | 'workload' | 'limitedBy' | 'cpuBased' | 'ramBased' | 'perWorkerBytes' | 'headroom'
> &
  Pick<SizingInput, 'ioShare' | 'limits'> & { maxWorkers: number };

function explain(r: Decided): string {
  const cpu = plural(r.limits.cpus, 'CPU');
  const memory = `${formatBytes(r.limits.memoryBytes)} available less ${percent(r.headroom)} headroom fits ${plural(r.ramBased, 'worker')} of ${formatBytes(r.perWorkerBytes)} RSS`;
  let why: string;
  switch (r.workload) {
    case 'unmeasured':
      why = `I/O wait was not measured, so sized as CPU-bound: one worker per CPU (${cpu})`;
      break;
    case 'cpu-bound':
      why = `CPU-bound (I/O wait ${percent(r.ioShare!)} < ${percent(IO_BOUND_SHARE)}): one worker per CPU (${cpu})`;
      break;
    case 'io-bound':
      why =
        r.cpuBased === IO_BOUND_MAX_WORKERS_PER_CPU * r.limits.cpus
          ? `I/O-bound (I/O wait ${percent(r.ioShare!)}): ${r.cpuBased} workers, the cap of ${IO_BOUND_MAX_WORKERS_PER_CPU} per CPU (${cpu})`
          : `I/O-bound (I/O wait ${percent(r.ioShare!)}): each busy worker uses ${percent(1 - r.ioShare!)} of a CPU, so ${r.cpuBased} workers keep ${cpu} busy`;
      break;
    default:
      throw new Error(`unknown workload ${r.workload satisfies never}`);
  }
  switch (r.limitedBy) {
    case 'cpu':
      return `${r.numWorkers}: ${why}; ${memory}.`;
    case 'memory':
      return r.ramBased === 0
        ? `1: memory is the limit and ${memory}, so running the minimum of 1 (CPU would allow ${r.cpuBased}). ${why}.`
        : `${r.numWorkers}: memory is the limit: ${memory} (CPU would allow ${r.cpuBased}; ${why}).`;
    case 'max_workers':
      return `${r.numWorkers}: capped by max workers ${r.maxWorkers}; ${why}; ${memory}.`;
    default:
      throw new Error(`unknown limit ${r.limitedBy satisfies never}`);
  }
}

/**
 * The num_workers: auto log line, e.g.
 * "num_workers auto: 2 (cpu 2 cores [cores], memory 1.5 GiB available [meminfo], worker 28 MiB RSS / 22 MiB PSS,
 *  headroom 25%, io-wait 12% → cpu-bound: min(cpu 2, ram 41) = 2)"
 */
export function describeSizing(input: SizingInput, result: SizingResult): string {
  const { limits, worker } = input;
  const cpu =
    limits.cpuQuota !== null && limits.cpuSource !== 'cores'
      ? `cpu ${limits.cpus} (quota ${round2(limits.cpuQuota)} of ${limits.cores} cores) [${limits.cpuSource}]`
      : `cpu ${plural(limits.cpus, 'core')} [${limits.cpuSource}]`;
  const pss = worker.pssBytes === null ? '' : ` / ${formatBytes(worker.pssBytes)} PSS`;
  const io = input.ioShare === null ? 'io-wait unmeasured' : `io-wait ${percent(input.ioShare)}`;
  const capped = result.limitedBy === 'max_workers' ? `, capped at ${result.numWorkers}` : '';
  const floor = result.ramBased === 0 ? ', raised to the minimum of 1' : '';
  return (
    `num_workers auto: ${result.numWorkers} (${cpu}, memory ${formatBytes(limits.memoryBytes)} available [${limits.memorySource}], ` +
    `worker ${formatBytes(worker.rssBytes)} RSS${pss}, headroom ${percent(result.headroom)}, ${io} → ${result.workload}: ` +
    `min(cpu ${result.cpuBased}, ram ${result.ramBased}) = ${Math.min(result.cpuBased, result.ramBased)}${capped}${floor})`
  );
}

/**
 * The `warmpool tune` report, one string per line: inputs, the Passenger and NOW LMS answers, our
 * recommendation with its reason, and the memory budget table.
 */
export function describeTuning(input: SizingInput, result: SizingResult, key = 'num_workers'): string[] {
  const { limits, worker } = input;
  const quota = limits.cpuQuota === null ? 'no cgroup CPU quota' : `cgroup quota ${round2(limits.cpuQuota)} CPUs`;
  const lines = [
    'Inputs',
    `  CPUs              ${limits.cpus} [${limits.cpuSource}] (${plural(limits.cores, 'core')}, ${quota})`,
    `  memory available  ${formatBytes(limits.memoryBytes)} [${limits.memorySource}] of ${formatBytes(limits.totalMemoryBytes)} total`,
    `  worker memory     ${formatBytes(worker.rssBytes)} RSS, ${worker.pssBytes === null ? 'PSS unreadable' : `${formatBytes(worker.pssBytes)} PSS`}`,
    `  I/O wait          ${input.ioShare === null ? 'not measured' : percent(input.ioShare)} (I/O-bound from ${percent(IO_BOUND_SHARE)})`,
    `  headroom          ${percent(result.headroom)}`,
    'Rules of thumb (what two published sizing formulas give here, for comparison)',
    `  Passenger         ${result.passenger}  = floor(${formatBytes(limits.totalMemoryBytes)} × 0.75 / ${formatBytes(result.perWorkerBytes)})  (Phusion Passenger: 75 % of RAM)`,
    `  gunicorn          ${result.nowLms}  = min(2 × ${limits.cpus} + 1, floor(${formatBytes(limits.memoryBytes)} / ${formatBytes(result.perWorkerBytes)}))  (2 × CPUs + 1, bounded by memory)`,
    'Recommendation',
    `  ${key}: ${result.numWorkers}`,
    `  ${result.reason}`,
    'Memory budget',
    '  workers  memory      of available',
    ...result.budget.map(
      (row) =>
        `  ${String(row.workers).padStart(7)}  ${formatBytes(row.bytes).padEnd(10)}  ${percent(row.share).padStart(5)}${row.fits ? '' : '  over budget'}`,
    ),
  ];
  return lines;
}

/** Bytes in binary units with at most one decimal: "512 B", "28 MiB", "1.5 GiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  // compare the rounded value, so 1023.96 MiB reads "1 GiB" rather than "1024 MiB"
  while (Math.abs(Math.round(value)) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 || value >= 100 ? String(Math.round(value)) : String(Math.round(value * 10) / 10);
  return `${text} ${units[unit]}`;
}

const percent = (share: number) => (Number.isFinite(share) ? `${Math.round(share * 100)}%` : '∞');
const round2 = (n: number) => Math.round(n * 100) / 100;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
