// One order at a time per certificate, across processes: two servers sharing certs_dir (a
// blue-green swap starts the new one while the old one still runs) must not both order the same
// names. The lock is a file holding who took it, written aside and then hard-linked into place:
// link() fails when the name exists, and the file appears whole, so a rival never reads a lock
// still being written (an O_EXCL create is empty until its write lands, and a rival that read it
// then saw no owner). A holder refreshes its mtime while it works. A lock whose holder is gone (same host, pid not alive) or that was not refreshed
// for `staleMs` (a crashed holder on another host sharing the folder) is taken over.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname, basename, join } from 'node:path';
import { link, readFile, stat, unlink, utimes, writeFile } from 'node:fs/promises';

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
 * 1. write our owner record and a token to a dot file beside it (0600; the store's prune skips
 *    dot files) and link it to `path`;
 * 2. on EEXIST read the owner: alive → return it; gone, stale or garbled → remove and try once more.
 */
export async function tryLock(path: string, staleMs = DEFAULT_LOCK_STALE_MS): Promise<HeldLock | LockOwner> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const token = randomBytes(8).toString('hex');
    const record = { pid: process.pid, host: hostname(), since: new Date().toISOString(), token };
    if (await linkWhole(path, JSON.stringify(record), token)) return holdLock(path, token);
    const owner = await readOwner(path);
    if (owner === 'gone') continue;
    // a garbled file is nobody's lock: a lock appears whole, so it was damaged (a full disk, an edit)
    if (owner !== 'unreadable' && !(await isStale(path, owner, staleMs))) return owner;
    await unlink(path).catch(() => {});
  }
  // someone else took it between our unlink and our link
  const owner = await readOwner(path);
  return typeof owner === 'string' ? { pid: 0, host: 'unknown', since: new Date().toISOString() } : owner;
}

/** true when `path` now holds `text`; false when it already existed. */
async function linkWhole(path: string, text: string, token: string): Promise<boolean> {
  const aside = join(dirname(path), `.${basename(path)}.${token}`);
  try {
    await writeFile(aside, text, { mode: 0o600, flag: 'wx' });
  } catch (error) {
    // a full disk leaves a partial file: no stray lock record behind
    await unlink(aside).catch(() => {});
    throw error;
  }
  try {
    await link(aside, path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return false;
  } finally {
    await unlink(aside).catch(() => {});
  }
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
