// PHP workers run at a lower CPU priority than the server that feeds them. The server process reads
// every request, forwards it, and writes every response; when it waits for a CPU behind PHP, every
// response waits with it. nginx and php-fpm get this from the kernel without asking: each runs in
// a session (an autogroup) of its own, and php-fpm's children share one. Our workers are spawned
// detached, each in a session of its own, so each weighed as much as the whole server: at 32
// connections on 2 cores the server waited ~300 µs per DokuWiki page for a CPU (nginx ~60 µs), and
// the slowest 1 % of pages came a few ms later than nginx's.
//
// Both knobs are set, because which one the kernel reads depends on the machine: the process's
// nice (a systemd service with a CPU controller, a container, a kernel without autogroups) and
// its autogroup's nice (a plain session: the kernel's default on Debian). Raising a nice value
// needs no privilege. Failures are ignored: the worker then runs at the server's priority, as before.
import { readFileSync, writeFileSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** The default: the workers' nice is the server's plus this (each step is about 1.25x less CPU weight). */
export const DEFAULT_WORKER_NICE = 5;
/** The largest nice value: the lowest priority. */
const MAX_NICE = 19;
/** The kernel lets an unprivileged process change an autogroup's nice once per 100 ms (EAGAIN else). */
const AUTOGROUP_RETRY_MS = 110;
const AUTOGROUP_TRIES = 50;

/**
 * Lowers process `pid`'s CPU priority `steps` below the server's own (capped at nice 19): its nice
 * value, and its autogroup's when it leads one (a detached child does). 0: left as it is.
 * `alive` is asked before a retry: the pid of a process that has exited may be another's by then.
 */
export function lowerWorkerPriority(pid: number, steps: number, alive: () => boolean = () => true): void {
  if (steps <= 0 || process.platform === 'win32') return;
  try {
    setPriority(pid, Math.min(MAX_NICE, getPriority() + steps));
  } catch {
    // gone already, or not ours to change
  }
  const own = autogroupNice(process.pid);
  if (own !== null) setAutogroupNice(pid, Math.min(MAX_NICE, own + steps), AUTOGROUP_TRIES, alive);
}

/** The nice value of `pid`'s autogroup; null where the kernel has none (or the process is gone). */
export function autogroupNice(pid: number): number | null {
  try {
    const match = /\bnice (-?\d+)/.exec(readFileSync(`/proc/${pid}/autogroup`, 'utf8'));
    return match === null ? null : Number(match[1]);
  } catch {
    return null;
  }
}

function setAutogroupNice(pid: number, nice: number, tries: number, alive: () => boolean): void {
  if (!alive()) return;
  try {
    writeFileSync(`/proc/${pid}/autogroup`, String(nice));
  } catch (error) {
    // rate-limited (unprivileged, another worker's change came first): again shortly
    if ((error as NodeJS.ErrnoException).code === 'EAGAIN' && tries > 1) {
      setTimeout(() => setAutogroupNice(pid, nice, tries - 1, alive), AUTOGROUP_RETRY_MS).unref();
    }
  }
}
