import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readMachineLimits } from '../../src/sizing/index.js';

const MiB = 1024 ** 2;
const KiB = 1024;
const root = (name: string) => fileURLToPath(new URL(`../fixtures/${name}/`, import.meta.url));
// proc/meminfo of the cgroup fixtures: a 16 GB host with 12 GB available
const HOST_TOTAL = 16_384_000 * KiB;
const HOST_AVAILABLE = 12_288_000 * KiB;

describe('readMachineLimits: cgroup v2', () => {
  it('honours cpu.max and memory.max over the host (1.5 CPUs → 2; 512 MiB limit, 64 MiB working set → 448 MiB)', async () => {
    const limits = await readMachineLimits({ root: root('cgroup-v2-limited'), cores: 4 });
    expect(limits).toEqual({
      cpus: 2,
      cpuQuota: 1.5,
      cores: 4,
      cpuSource: 'cgroup-v2',
      memoryBytes: 448 * MiB,
      memorySource: 'cgroup-v2',
      totalMemoryBytes: 512 * MiB,
    });
  });

  it('a quota above the cores does not raise the CPU count', async () => {
    const limits = await readMachineLimits({ root: root('cgroup-v2-limited'), cores: 1 });
    expect(limits).toMatchObject({ cpus: 1, cpuQuota: 1.5, cpuSource: 'cores' });
  });

  it('"max" limits fall back to the cores and MemAvailable', async () => {
    const limits = await readMachineLimits({ root: root('cgroup-v2-unlimited'), cores: 4 });
    expect(limits).toEqual({
      cpus: 4,
      cpuQuota: null,
      cores: 4,
      cpuSource: 'cores',
      memoryBytes: HOST_AVAILABLE,
      memorySource: 'meminfo',
      totalMemoryBytes: HOST_TOTAL,
    });
  });

  it('follows /proc/self/cgroup and takes the tightest limit up the tree (unit quota, parent slice memory)', async () => {
    const limits = await readMachineLimits({ root: root('cgroup-v2-nested'), cores: 8 });
    expect(limits).toEqual({
      cpus: 2,
      cpuQuota: 2,
      cores: 8,
      cpuSource: 'cgroup-v2',
      memoryBytes: 768 * MiB, // slice: 1 GiB − 256 MiB in use
      memorySource: 'cgroup-v2',
      totalMemoryBytes: 1024 * MiB,
    });
  });
});

describe('readMachineLimits: cgroup v1', () => {
  it('honours cfs quota and memory.limit_in_bytes, reading the mount root when the own path is not visible', async () => {
    const limits = await readMachineLimits({ root: root('cgroup-v1'), cores: 4 });
    expect(limits).toEqual({
      cpus: 1, // 0.5 CPU rounds to the minimum of 1
      cpuQuota: 0.5,
      cores: 4,
      cpuSource: 'cgroup-v1',
      memoryBytes: 196 * MiB, // 256 MiB − (80 MiB usage − 20 MiB total_inactive_file)
      memorySource: 'cgroup-v1',
      totalMemoryBytes: 256 * MiB,
    });
  });

  it('treats quota -1 and the 2^63 "unlimited" value as no limit', async () => {
    const limits = await readMachineLimits({ root: root('cgroup-v1-unlimited'), cores: 2 });
    expect(limits).toEqual({
      cpus: 2,
      cpuQuota: null,
      cores: 2,
      cpuSource: 'cores',
      memoryBytes: HOST_AVAILABLE,
      memorySource: 'meminfo',
      totalMemoryBytes: HOST_TOTAL,
    });
  });
});

describe('readMachineLimits: no cgroup', () => {
  it('uses /proc/meminfo, estimating MemAvailable as free + buffers + cached on old kernels', async () => {
    const limits = await readMachineLimits({ root: root('cgroup-none'), cores: 3 });
    expect(limits).toEqual({
      cpus: 3,
      cpuQuota: null,
      cores: 3,
      cpuSource: 'cores',
      memoryBytes: (512_000 + 20_480 + 491_520) * KiB,
      memorySource: 'meminfo',
      totalMemoryBytes: 2_048_000 * KiB,
    });
  });

  it('falls back to os.totalmem/freemem when there is no /proc/meminfo', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'warmpool-sizing-'));
    try {
      const limits = await readMachineLimits({ root: empty, cores: 2 });
      expect(limits.memorySource).toBe('os');
      expect(limits.memoryBytes).toBeGreaterThan(0);
      expect(limits.totalMemoryBytes).toBeGreaterThanOrEqual(limits.memoryBytes);
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('reads this machine without options', async () => {
    const limits = await readMachineLimits();
    expect(limits.cpus).toBeGreaterThanOrEqual(1);
    expect(limits.cpus).toBeLessThanOrEqual(limits.cores);
    expect(Number.isInteger(limits.cpus)).toBe(true);
    expect(limits.memoryBytes).toBeGreaterThan(0);
    expect(limits.memoryBytes).toBeLessThanOrEqual(limits.totalMemoryBytes);
  });
});
