// One order at a time per certificate, across processes: two servers sharing certs_dir (a
// blue-green swap starts the new one while the old one still runs) must not both order the same
// names. The lock is a file created with O_EXCL, holding who took it; a holder refreshes its mtime
// while it works. A lock whose holder is gone (same host, pid not alive) or that was not refreshed
// for `staleMs` (a crashed holder on another host sharing the folder) is taken over.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { open, readFile, stat, unlink, utimes } from 'node:fs/promises';

export interface LockOwner {
  pid: number;
  host: string;
  /** ISO time the lock was taken */
  since: string;
}

export interface HeldLock {
  readonly path: string;
  /** removes the file if it is still ours */
  release(): Promise<void>;
}

/** A lock nobody refreshed for this long is abandoned. Orders take seconds; a minute's refresh keeps it fresh. */
export const DEFAULT_LOCK_STALE_MS = 10 * 60_000;
const REFRESH_MS = 60_000;

/**
 * Takes the lock at `path`, or returns its live owner. The parent folder must exist.
 * 1. create the file exclusively (0600) with our owner record and a token;
 * 2. on EEXIST read the owner: alive → return it; gone or stale → remove and try once more.
 */
export async function tryLock(path: string, staleMs = DEFAULT_LOCK_STALE_MS): Promise<HeldLock | LockOwner> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const token = randomBytes(8).toString('hex');
    const record = { pid: process.pid, host: hostname(), since: new Date().toISOString(), token };
    try {
      const file = await open(path, 'wx', 0o600);
      try {
        await file.writeFile(JSON.stringify(record));
      } finally {
        await file.close();
      }
      return holdLock(path, token);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = await readOwner(path);
    if (owner === 'gone') continue;
    if (owner !== 'unreadable' && !(await isStale(path, owner, staleMs))) return owner;
    if (owner === 'unreadable' && !(await isOlderThan(path, 5_000))) {
      // being written right now by its creator
      return { pid: 0, host: 'unknown', since: new Date().toISOString() };
    }
    await unlink(path).catch(() => {});
  }
  // someone else took it between our unlink and our create
  const owner = await readOwner(path);
  return typeof owner === 'string' ? { pid: 0, host: 'unknown', since: new Date().toISOString() } : owner;
}

function holdLock(path: string, token: string): HeldLock {
  const refresh = setInterval(() => {
    const now = new Date();
    void utimes(path, now, now).catch(() => {});
  }, REFRESH_MS);
  refresh.unref();
  let released = false;
  return {
    path,
    async release() {
      if (released) return;
      released = true;
      clearInterval(refresh);
      try {
        const current = JSON.parse(await readFile(path, 'utf8')) as { token?: string };
        if (current.token === token) await unlink(path);
      } catch {
        // already gone, or replaced by someone who judged ours stale
      }
    },
  };
}

async function readOwner(path: string): Promise<LockOwner | 'gone' | 'unreadable'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw error;
  }
  try {
    const { pid, host, since } = JSON.parse(text) as Partial<LockOwner>;
    if (typeof pid === 'number' && typeof host === 'string' && typeof since === 'string') return { pid, host, since };
  } catch {
    // a half-written file
  }
  return 'unreadable';
}

async function isStale(path: string, owner: LockOwner, staleMs: number): Promise<boolean> {
  if (owner.host === hostname() && !isAlive(owner.pid)) return true;
  return isOlderThan(path, staleMs);
}

async function isOlderThan(path: string, ms: number): Promise<boolean> {
  try {
    return Date.now() - (await stat(path)).mtimeMs > ms;
  } catch {
    return true;
  }
}

/** kill(pid, 0): ESRCH means no such process; EPERM means it exists under another user. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
