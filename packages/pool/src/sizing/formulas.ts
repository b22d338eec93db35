// The operators' rules of thumb we print next to our own answer in `warmpool tune`.
// Both are ratios of two memory amounts, so any unit works as long as both sides use the same one
// (1 GB / 100 MB and 1 GiB / 100 MiB give the same answer; 1 GiB / 100 MB does not).

/** Share of total RAM Passenger gives its application processes. */
export const PASSENGER_RAM_SHARE = 0.75;

/**
 * Passenger's `max_pool_size = (TOTAL_RAM * 0.75) / RAM_PER_PROCESS`, floored, at least 1.
 * Example from its guide: 1 GB total, 100 MB per process → 7.
 */
export function passengerMax(totalRamBytes: number, perWorkerBytes: number): number {
  assertPositive(perWorkerBytes, 'perWorkerBytes');
  return Math.max(1, Math.floor((Math.max(0, totalRamBytes) * PASSENGER_RAM_SHARE) / perWorkerBytes));
}

/**
 * NOW LMS (gunicorn/waitress): `min(2*CPU+1, floor(available_RAM / worker_RAM))`, divided by the
 * threads per worker (floored), at least 1. Examples from its guide: 4 cores, 2 GB, 200 MB → 9;
 * 4 cores, 1 GB, 200 MB → 5.
 */
export function nowLmsWorkers(cpus: number, availableRamBytes: number, perWorkerBytes: number, threads = 1): number {
  assertPositive(perWorkerBytes, 'perWorkerBytes');
  assertPositive(threads, 'threads');
  const byCpu = 2 * cpus + 1;
  const byRam = Math.floor(Math.max(0, availableRamBytes) / perWorkerBytes);
  return Math.max(1, Math.floor(Math.min(byCpu, byRam) / threads));
}

export function assertPositive(value: number, name: string): void {
  if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`${name} must be a positive number, got ${value}`);
}
