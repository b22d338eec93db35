// Worker sizing: how many workers to run, from measured inputs rather than guesses. Backs
// `num_workers: auto` (at boot, from one warmed worker) and `warmpool tune` (from a running pool).
// Pure formulas and recommendation, plus small /proc and cgroup readers that take a root folder.
export { passengerMax, nowLmsWorkers, PASSENGER_RAM_SHARE } from './formulas.js';
export {
  readMachineLimits,
  type MachineLimits,
  type MachineLimitsOptions,
  type CpuSource,
  type MemorySource,
} from './machine-limits.js';
export {
  readWorkerMemory,
  readCpuSample,
  parseStatCpuTicks,
  diffCpuSamples,
  ioWaitShare,
  measureWorkload,
  clockTicksPerSecond,
  MIN_MEASURED_BUSY_MS,
  type WorkerMemory,
  type CpuSample,
  type CpuWindow,
  type WorkerSnapshot,
  type WorkloadShape,
} from './worker-usage.js';
export {
  recommendWorkers,
  describeSizing,
  describeTuning,
  formatBytes,
  DEFAULT_HEADROOM,
  IO_BOUND_SHARE,
  IO_BOUND_MAX_WORKERS_PER_CPU,
  DEFAULT_MAX_WORKERS,
  type SizingInput,
  type SizingResult,
  type BudgetRow,
  type Workload,
  type SizingLimit,
} from './recommend.js';
