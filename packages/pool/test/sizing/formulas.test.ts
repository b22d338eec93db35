import { describe, expect, it } from 'vitest';
import { nowLmsWorkers, passengerMax } from '../../src/sizing/index.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const MB = 1000 ** 2;
const GB = 1000 ** 3;

describe('passengerMax: (TOTAL_RAM × 0.75) / RAM_PER_PROCESS', () => {
  it('gives the published example: 1 GB, 100 MB per process → 7 (binary or decimal units alike)', () => {
    expect(passengerMax(1024 * MiB, 100 * MiB)).toBe(7);
    expect(passengerMax(GiB, 100 * MiB)).toBe(7);
    expect(passengerMax(GB, 100 * MB)).toBe(7);
  });

  it('is a ratio: mixing units (1 GiB over 100 MB) is the mistake that changes the answer', () => {
    expect(passengerMax(GiB, 100 * MB)).toBe(8);
  });

  it('floors, and never answers less than 1', () => {
    expect(passengerMax(4 * GiB, 300 * MiB)).toBe(10); // 3072 / 300 = 10.24
    expect(passengerMax(100 * MiB, 200 * MiB)).toBe(1);
    expect(passengerMax(0, 200 * MiB)).toBe(1);
  });

  it('rejects a per-process size that is not positive', () => {
    expect(() => passengerMax(GiB, 0)).toThrow(RangeError);
  });
});

describe('nowLmsWorkers: min(2×CPU+1, available_RAM / worker_RAM) / threads', () => {
  it('gives the published examples: 4 cores, 2 GB, 200 MB → 9; 4 cores, 1 GB, 200 MB → 5', () => {
    expect(nowLmsWorkers(4, 2 * GiB, 200 * MiB)).toBe(9);
    expect(nowLmsWorkers(4, GiB, 200 * MiB)).toBe(5);
    expect(nowLmsWorkers(4, 2 * GB, 200 * MB)).toBe(9);
    expect(nowLmsWorkers(4, GB, 200 * MB)).toBe(5);
  });

  it('divides by threads per worker (floored), never below 1', () => {
    expect(nowLmsWorkers(4, 2 * GiB, 200 * MiB, 2)).toBe(4); // 9 / 2
    expect(nowLmsWorkers(4, 2 * GiB, 200 * MiB, 4)).toBe(2);
    expect(nowLmsWorkers(1, 2 * GiB, 200 * MiB, 8)).toBe(1);
    expect(nowLmsWorkers(4, 100 * MiB, 200 * MiB)).toBe(1);
  });

  it('rejects zero threads or a zero worker size', () => {
    expect(() => nowLmsWorkers(4, GiB, 200 * MiB, 0)).toThrow(RangeError);
    expect(() => nowLmsWorkers(4, GiB, 0)).toThrow(RangeError);
  });
});
