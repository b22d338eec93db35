// What the machine lets this process use: CPUs and memory, honouring cgroup v2/v1 limits inside
// containers and systemd units. Every path is read under `root` so tests can pass a fake tree.
import { readFile, stat } from 'node:fs/promises';
import { availableParallelism, freemem, totalmem } from 'node:os';
import { posix } from 'node:path';

export type CpuSource = 'cgroup-v2' | 'cgroup-v1' | 'cores';
export type MemorySource = 'cgroup-v2' | 'cgroup-v1' | 'meminfo' | 'os';

export interface MachineLimits {
  /** whole CPUs workers can keep busy: the cgroup quota rounded to the nearest integer (min 1), capped at `cores` */
  cpus: number;
  /** the tightest cgroup CPU quota in CPUs (1.5 for "150000 100000"); null when there is none */
  cpuQuota: number | null;
  /** CPUs the scheduler lets this process run on (os.availableParallelism() unless given) */
  cores: number;
  /** what decided `cpus`: a cgroup quota below `cores`, or the cores */
  cpuSource: CpuSource;
  /** memory available to new workers now: min(cgroup limit − cgroup working set, MemAvailable) */
  memoryBytes: number;
  /** what decided `memoryBytes` */
  memorySource: MemorySource;
  /** the memory ceiling: min(cgroup limit, MemTotal); what Passenger's formula calls total RAM */
  totalMemoryBytes: number;
}

export interface MachineLimitsOptions {
  /** folder that stands for `/` (default '/'); tests pass a fake tree with proc/ and sys/fs/cgroup/ */
  root?: string;
  /** CPUs before any cgroup quota (default os.availableParallelism(), which honours the affinity mask) */
  cores?: number;
}

/** A memory.max / memory.limit_in_bytes at or above this means "no limit" (v1 writes 2^63 − page size). */
const UNLIMITED_BYTES = 2 ** 62;

/**
 * Reads the CPU and memory this process (and the workers it spawns, which share its cgroup) may use.
 * 1. /proc/meminfo gives MemTotal and MemAvailable (os.totalmem/freemem when it cannot be read).
 * 2. The cgroup version is v2 when <root>/sys/fs/cgroup/cgroup.controllers exists, else v1 when the
 *    memory or cpu hierarchy is mounted there, else none.
 * 3. The process's own cgroup comes from /proc/self/cgroup; when that path is not visible under the
 *    mount (a container without a cgroup namespace), the mount root is the process's cgroup.
 * 4. Limits are the tightest along the path from that cgroup up to the mount root (a parent slice's
 *    memory.max binds its children too).
 */
export async function readMachineLimits(options: MachineLimitsOptions = {}): Promise<MachineLimits> {
  const root = options.root ?? '/';
  const cores = Math.max(1, Math.floor(options.cores ?? availableParallelism()));
  const [meminfo, cgroup] = await Promise.all([readMeminfo(root), readCgroupLimits(root)]);

  let cpus = cores;
  let cpuSource: CpuSource = 'cores';
  if (cgroup !== null && cgroup.cpuQuota !== null && cgroup.cpuQuota < cores) {
    cpus = Math.min(cores, Math.max(1, Math.round(cgroup.cpuQuota)));
    cpuSource = cgroup.version;
  }

  let memoryBytes = meminfo.availableBytes;
  let memorySource: MemorySource = meminfo.source;
  if (cgroup !== null && cgroup.memoryAvailableBytes !== null && cgroup.memoryAvailableBytes < memoryBytes) {
    memoryBytes = cgroup.memoryAvailableBytes;
    memorySource = cgroup.version;
  }
  const totalMemoryBytes = Math.min(meminfo.totalBytes, cgroup?.memoryLimitBytes ?? Infinity);

  return { cpus, cpuQuota: cgroup?.cpuQuota ?? null, cores, cpuSource, memoryBytes, memorySource, totalMemoryBytes };
}

// ---- /proc/meminfo ----

interface Meminfo {
  totalBytes: number;
  availableBytes: number;
  source: 'meminfo' | 'os';
}

async function readMeminfo(root: string): Promise<Meminfo> {
  const text = await readText(posix.join(root, 'proc/meminfo'));
  const kb = (key: string): number | null => {
    const match = text === null ? null : new RegExp(`^${key}:\\s+(\\d+)\\s*kB`, 'm').exec(text);
    return match === null ? null : Number(match[1]) * 1024;
  };
  const total = kb('MemTotal');
  if (total === null) return { totalBytes: totalmem(), availableBytes: freemem(), source: 'os' };
  // Kernels before 3.14 have no MemAvailable: free plus page cache is the usual estimate.
  const available = kb('MemAvailable') ?? (kb('MemFree') ?? 0) + (kb('Buffers') ?? 0) + (kb('Cached') ?? 0);
  return { totalBytes: total, availableBytes: Math.min(available, total), source: 'meminfo' };
}

// ---- cgroups ----

interface CgroupLimits {
  version: 'cgroup-v2' | 'cgroup-v1';
  /** tightest quota/period along the path, in CPUs */
  cpuQuota: number | null;
  /** tightest memory limit along the path */
  memoryLimitBytes: number | null;
  /** tightest (limit − working set) along the path; working set = usage − inactive file cache */
  memoryAvailableBytes: number | null;
}

async function readCgroupLimits(root: string): Promise<CgroupLimits | null> {
  const mount = posix.join(root, 'sys/fs/cgroup');
  const own = parseProcCgroup(await readText(posix.join(root, 'proc/self/cgroup')));
  if (await exists(posix.join(mount, 'cgroup.controllers'))) {
    const dirs = await pathToMount(mount, own.v2);
    return {
      version: 'cgroup-v2',
      cpuQuota: await tightestCpuQuota(dirs, 'v2'),
      ...(await tightestMemory(dirs, 'v2')),
    };
  }
  const memoryMount = posix.join(mount, 'memory');
  let cpuMount: string | null = null;
  for (const name of ['cpu', 'cpu,cpuacct', 'cpuacct,cpu']) {
    if (await exists(posix.join(mount, name))) {
      cpuMount = posix.join(mount, name);
      break;
    }
  }
  const hasMemory = await exists(memoryMount);
  if (!hasMemory && cpuMount === null) return null;
  const memory = hasMemory
    ? await tightestMemory(await pathToMount(memoryMount, own.v1.get('memory') ?? null), 'v1')
    : null;
  const cpuQuota =
    cpuMount === null ? null : await tightestCpuQuota(await pathToMount(cpuMount, own.v1.get('cpu') ?? null), 'v1');
  return {
    version: 'cgroup-v1',
    cpuQuota,
    memoryLimitBytes: memory?.memoryLimitBytes ?? null,
    memoryAvailableBytes: memory?.memoryAvailableBytes ?? null,
  };
}

/** /proc/self/cgroup: "0::/path" for v2, "4:memory:/path" or "2:cpu,cpuacct:/path" for v1. */
function parseProcCgroup(text: string | null): { v2: string | null; v1: Map<string, string> } {
  let v2: string | null = null;
  const v1 = new Map<string, string>();
  for (const line of (text ?? '').split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const path = line.slice(second + 1).trim();
    if (line.slice(0, first) === '0' && controllers === '') v2 = path;
    else for (const controller of controllers.split(',')) v1.set(controller, path);
  }
  return { v2, v1 };
}

/** The process's cgroup folder and each parent up to the mount root, innermost first. */
async function pathToMount(mount: string, cgroupPath: string | null): Promise<string[]> {
  const relative = posix.normalize(`/${cgroupPath ?? ''}`).replace(/^\/+/, '');
  let dir = posix.join(mount, relative);
  if (relative === '' || !dir.startsWith(`${mount}/`) || !(await exists(dir))) return [mount];
  const dirs: string[] = [];
  while (dir !== mount) {
    dirs.push(dir);
    dir = posix.dirname(dir);
  }
  dirs.push(mount);
  return dirs;
}

async function tightestCpuQuota(dirs: string[], version: 'v1' | 'v2'): Promise<number | null> {
  let tightest: number | null = null;
  for (const dir of dirs) {
    let quota: number | null = null;
    if (version === 'v2') {
      // cpu.max: "$MAX $PERIOD", MAX may be "max"
      const [max, period] = (await readText(posix.join(dir, 'cpu.max')))?.trim().split(/\s+/) ?? [];
      quota = ratio(max, period);
    } else {
      // cpu.cfs_quota_us is -1 when unlimited
      quota = ratio(
        await readText(posix.join(dir, 'cpu.cfs_quota_us')),
        await readText(posix.join(dir, 'cpu.cfs_period_us')),
      );
    }
    if (quota !== null && (tightest === null || quota < tightest)) tightest = quota;
  }
  return tightest;
}

function ratio(quota: string | null | undefined, period: string | null | undefined): number | null {
  const q = Number(quota?.trim());
  const p = Number(period?.trim());
  return Number.isFinite(q) && Number.isFinite(p) && q > 0 && p > 0 ? q / p : null;
}

async function tightestMemory(
  dirs: string[],
  version: 'v1' | 'v2',
): Promise<Pick<CgroupLimits, 'memoryLimitBytes' | 'memoryAvailableBytes'>> {
  const files =
    version === 'v2'
      ? { limit: 'memory.max', usage: 'memory.current', inactive: ['inactive_file'] }
      : {
          limit: 'memory.limit_in_bytes',
          usage: 'memory.usage_in_bytes',
          inactive: ['total_inactive_file', 'inactive_file'],
        };
  let limitBytes: number | null = null;
  let availableBytes: number | null = null;
  for (const dir of dirs) {
    const limit = Number((await readText(posix.join(dir, files.limit)))?.trim() ?? 'max');
    if (!Number.isFinite(limit) || limit <= 0 || limit >= UNLIMITED_BYTES) continue; // "max", missing, or v1's "unlimited"
    const usage = Number((await readText(posix.join(dir, files.usage)))?.trim() ?? Number.NaN);
    const stat = await readText(posix.join(dir, 'memory.stat'));
    let inactive = 0;
    for (const key of files.inactive) {
      const match = stat === null ? null : new RegExp(`^${key} (\\d+)$`, 'm').exec(stat);
      if (match !== null) {
        inactive = Number(match[1]);
        break;
      }
    }
    // Page cache the kernel can drop is not in use: available = limit − (usage − inactive file).
    const available = Number.isFinite(usage) ? Math.max(0, limit - Math.max(0, usage - inactive)) : limit;
    limitBytes = limitBytes === null ? limit : Math.min(limitBytes, limit);
    availableBytes = availableBytes === null ? available : Math.min(availableBytes, available);
  }
  return { memoryLimitBytes: limitBytes, memoryAvailableBytes: availableBytes };
}

// ---- files ----

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'latin1');
  } catch {
    return null;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
