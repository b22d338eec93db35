import { describe, expect, it } from 'vitest';
import {
  describeSizing,
  describeTuning,
  formatBytes,
  recommendWorkers,
  type MachineLimits,
  type SizingInput,
} from '../../src/sizing/index.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

function limits(overrides: Partial<MachineLimits> = {}): MachineLimits {
  return {
    cpus: 2,
    cpuQuota: null,
    cores: 2,
    cpuSource: 'cores',
    memoryBytes: 1.5 * GiB,
    memorySource: 'meminfo',
    totalMemoryBytes: 4 * GiB,
    ...overrides,
  };
}

const input = (overrides: Partial<SizingInput> = {}): SizingInput => ({
  limits: limits(),
  worker: { rssBytes: 28 * MiB, pssBytes: 22 * MiB },
  ioShare: 0.12,
  ...overrides,
});

describe('recommendWorkers', () => {
  it('CPU-bound: one worker per CPU when memory allows more', () => {
    const result = recommendWorkers(input());
    expect(result).toMatchObject({
      numWorkers: 2,
      workload: 'cpu-bound',
      limitedBy: 'cpu',
      cpuBased: 2,
      ramBased: 41,
      perWorkerBytes: 28 * MiB,
      headroom: 0.25,
    });
    expect(result.reason).toBe(
      '2: CPU-bound (I/O wait 12% < 25%): one worker per CPU (2 CPUs); 1.5 GiB available less 25% headroom fits 41 workers of 28 MiB RSS.',
    );
  });

  it('I/O-bound: cpus / (1 − io share) workers keep the CPUs busy', () => {
    expect(recommendWorkers(input({ ioShare: 0.8 }))).toMatchObject({
      numWorkers: 10,
      workload: 'io-bound',
      cpuBased: 10,
    });
    expect(recommendWorkers(input({ ioShare: 0.6 })).numWorkers).toBe(5); // 2 / 0.4, no float creep to 6
    expect(recommendWorkers(input({ ioShare: 0.5 })).numWorkers).toBe(4);
  });

  it('classifies from 25% I/O wait up as I/O-bound', () => {
    expect(recommendWorkers(input({ ioShare: 0.2499 }))).toMatchObject({ workload: 'cpu-bound', numWorkers: 2 });
    expect(recommendWorkers(input({ ioShare: 0.25 }))).toMatchObject({ workload: 'io-bound', numWorkers: 3 });
  });

  it('caps the I/O formula at 8 workers per CPU', () => {
    const result = recommendWorkers(input({ ioShare: 1 }));
    expect(result).toMatchObject({ numWorkers: 16, cpuBased: 16, limitedBy: 'cpu' });
    expect(result.reason).toMatch(/cap of 8 per CPU/);
  });

  it('sizes an unmeasured workload as CPU-bound', () => {
    const result = recommendWorkers(input({ ioShare: null }));
    expect(result).toMatchObject({ numWorkers: 2, workload: 'unmeasured' });
    expect(result.reason).toMatch(/not measured/);
  });

  it('memory bounds an I/O-bound workload: floor(memory × 0.75 / RSS)', () => {
    const result = recommendWorkers(
      input({
        limits: limits({ memoryBytes: 256 * MiB }),
        worker: { rssBytes: 64 * MiB, pssBytes: null },
        ioShare: 0.8,
      }),
    );
    expect(result).toMatchObject({ numWorkers: 3, limitedBy: 'memory', cpuBased: 10, ramBased: 3 });
    expect(result.reason).toBe(
      '3: memory is the limit: 256 MiB available less 25% headroom fits 3 workers of 64 MiB RSS (CPU would allow 10; I/O-bound (I/O wait 80%): each busy worker uses 20% of a CPU, so 10 workers keep 2 CPUs busy).',
    );
  });

  it('runs at least one worker even when none fits, and says so', () => {
    const result = recommendWorkers(
      input({ limits: limits({ memoryBytes: 64 * MiB }), worker: { rssBytes: 100 * MiB, pssBytes: null } }),
    );
    expect(result).toMatchObject({ numWorkers: 1, ramBased: 0, limitedBy: 'memory' });
    expect(result.reason).toMatch(/minimum of 1/);
  });

  it('honours headroom and maxWorkers', () => {
    expect(
      recommendWorkers(input({ headroom: 0.5, ioShare: 1, worker: { rssBytes: 128 * MiB, pssBytes: null } })).ramBased,
    ).toBe(6);
    const big = limits({ cpus: 64, cores: 64, memoryBytes: 1024 * GiB });
    expect(recommendWorkers(input({ limits: big, ioShare: 0.9 }))).toMatchObject({
      numWorkers: 500,
      limitedBy: 'max_workers',
      cpuBased: 512,
    });
    expect(recommendWorkers(input({ limits: big, ioShare: 0.9, maxWorkers: 100 })).numWorkers).toBe(100);
  });

  it('rejects inputs that cannot be sized', () => {
    expect(() => recommendWorkers(input({ headroom: 1 }))).toThrow(RangeError);
    expect(() => recommendWorkers(input({ ioShare: 1.5 }))).toThrow(RangeError);
    expect(() => recommendWorkers(input({ worker: { rssBytes: 0, pssBytes: null } }))).toThrow(RangeError);
    expect(() => recommendWorkers(input({ maxWorkers: 0 }))).toThrow(RangeError);
  });

  it('gives the Passenger and NOW LMS answers for the same inputs (published examples)', () => {
    const example = (memory: number) =>
      recommendWorkers(
        input({
          limits: limits({ cpus: 4, cores: 4, memoryBytes: memory, totalMemoryBytes: memory }),
          worker: { rssBytes: 200 * MiB, pssBytes: null },
        }),
      );
    expect(example(2 * GiB)).toMatchObject({ nowLms: 9, passenger: 7 });
    expect(example(1 * GiB)).toMatchObject({ nowLms: 5, passenger: 3 });
    const passenger = recommendWorkers(
      input({ limits: limits({ totalMemoryBytes: GiB }), worker: { rssBytes: 100 * MiB, pssBytes: null } }),
    );
    expect(passenger.passenger).toBe(7);
  });

  it('lists the memory budget for 1, cpus, 2×cpus+1, cpu-based, ram-based and the answer', () => {
    const { budget } = recommendWorkers(input());
    expect(budget.map((row) => row.workers)).toEqual([1, 2, 5, 41]);
    expect(budget[1]).toEqual({ workers: 2, bytes: 56 * MiB, share: 56 / 1536, fits: true });
    expect(budget.every((row) => row.fits)).toBe(true);
    const tight = recommendWorkers(input({ limits: limits({ memoryBytes: 100 * MiB }) }));
    expect(tight.budget.map((row) => [row.workers, row.fits])).toEqual([
      [1, true],
      [2, true],
      [5, false],
    ]);
  });
});

describe('describeSizing: the num_workers auto log line', () => {
  it('names every input and the rule in one line', () => {
    const given = input();
    expect(describeSizing(given, recommendWorkers(given))).toBe(
      'num_workers auto: 2 (cpu 2 cores [cores], memory 1.5 GiB available [meminfo], worker 28 MiB RSS / 22 MiB PSS, headroom 25%, io-wait 12% → cpu-bound: min(cpu 2, ram 41) = 2)',
    );
  });

  it('shows a cgroup quota, an unmeasured workload and the minimum of one', () => {
    const given = input({
      limits: limits({
        cpus: 2,
        cpuQuota: 1.5,
        cores: 4,
        cpuSource: 'cgroup-v2',
        memoryBytes: 64 * MiB,
        memorySource: 'cgroup-v2',
      }),
      worker: { rssBytes: 100 * MiB, pssBytes: null },
      ioShare: null,
    });
    expect(describeSizing(given, recommendWorkers(given))).toBe(
      'num_workers auto: 1 (cpu 2 (quota 1.5 of 4 cores) [cgroup-v2], memory 64 MiB available [cgroup-v2], worker 100 MiB RSS, headroom 25%, io-wait unmeasured → unmeasured: min(cpu 2, ram 0) = 0, raised to the minimum of 1)',
    );
  });
});

describe('describeTuning: the warmpool tune report', () => {
  it('prints the inputs, both rules of thumb with their numbers, the recommendation and the budget', () => {
    const given = input({
      limits: limits({ cpus: 4, cores: 4, memoryBytes: 2 * GiB, totalMemoryBytes: 2 * GiB }),
      worker: { rssBytes: 200 * MiB, pssBytes: 150 * MiB },
      ioShare: 0.5,
    });
    const result = recommendWorkers(given);
    const text = describeTuning(given, result).join('\n');
    expect(text).toContain('  Passenger         7  = floor(2 GiB × 0.75 / 200 MiB)');
    expect(text).toContain('  gunicorn          9  = min(2 × 4 + 1, floor(2 GiB / 200 MiB))');
    expect(text).toContain('  num_workers: 7');
    expect(text).toContain(`  ${result.reason}`);
    expect(text).toContain('  I/O wait          50% (I/O-bound from 25%)');
    expect(text).toMatch(/^ {8}7 {2}1\.4 GiB +68%$/m);
    expect(text).toMatch(/^ {8}8 {2}1\.6 GiB +78% {2}over budget$/m);
  });
});

describe('formatBytes', () => {
  it('uses binary units with at most one decimal', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(28 * MiB)).toBe('28 MiB');
    expect(formatBytes(1.5 * GiB)).toBe('1.5 GiB');
    expect(formatBytes(150 * MiB)).toBe('150 MiB');
    expect(formatBytes(1023.96 * MiB)).toBe('1 GiB');
  });
});
