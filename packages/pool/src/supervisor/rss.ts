import { readFile } from 'node:fs/promises';

/** Resident set size of a pid in bytes (VmRSS of /proc/<pid>/status); 0 when it cannot be read. */
export async function readRss(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'latin1');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match === null ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}
