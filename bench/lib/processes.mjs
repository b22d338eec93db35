// Every process the bench starts, and how each one is stopped — on success, on error and on Ctrl-C.
//
// 1. Each contender is spawned in its own process group (detached), so Ctrl-C on the terminal does
//    not reach it half-way and one kill(-pgid) reaches everything it forked.
// 2. warmpool's PHP workers get their own groups too (the pool spawns them detached), so stopping
//    also kills the contender's whole process tree as read from /proc.
// 3. <tmp>/pgids lists the live group leaders (and the running wrk): run.sh's trap kills those
//    trees if this Node process itself dies (SIGKILL, OOM) before it could clean up. The file only
//    ever holds live entries, and the trap checks each one's command line, so a recycled pid is
//    never hit.
// 4. The Node contenders also watch their stdin pipe and exit when this process goes away.
import { spawn } from 'node:child_process';
import { openSync, closeSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const PAGE_BYTES = 4096;
/** pid → child process, for every group leader still possibly alive */
const live = new Map();
/** other children to kill if we die (wrk): pid → child */
const tracked = new Map();
let pgidFile = null;

export function setPgidFile(path) {
  pgidFile = path;
  writePgidFile();
}

function writePgidFile() {
  if (pgidFile === null) return;
  const lines = [...live.keys(), ...tracked.keys()].map((pid) => `${pid}\n`).join('');
  writeFileSync(pgidFile, lines);
}

/** A short-lived child (wrk) that run.sh's trap must kill too if this process dies. */
export function track(child) {
  if (child.pid === undefined) return;
  tracked.set(child.pid, child);
  writePgidFile();
  child.once('exit', () => {
    tracked.delete(child.pid);
    writePgidFile();
  });
}

/** Spawns `command args` as the leader of a new process group; output goes to logFile. */
export function spawnGroup(command, args, { env = process.env, cwd, logFile, stdinPipe = false } = {}) {
  const out = openSync(logFile, 'a');
  const child = spawn(command, args, { env, cwd, detached: true, stdio: [stdinPipe ? 'pipe' : 'ignore', out, out] });
  closeSync(out);
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  live.set(child.pid, child);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', () => {});
  writePgidFile();
  return child;
}

/** Every pid whose parent chain reaches one of `roots` (roots included), from /proc. */
export function processTree(roots) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'latin1');
    } catch {
      continue; // gone meanwhile
    }
    // comm (field 2) may hold spaces and parentheses: parse after the last ')'
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid);
    if (list === undefined) children.set(ppid, [Number(name)]);
    else list.push(Number(name));
  }
  const seen = new Set();
  const stack = roots.filter((pid) => pidAlive(pid));
  while (stack.length > 0) {
    const pid = stack.pop();
    if (seen.has(pid)) continue;
    seen.add(pid);
    for (const child of children.get(pid) ?? []) stack.push(child);
  }
  return [...seen];
}

/** utime + stime of one pid in clock ticks (null when it is gone). */
export function cpuTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

/** Busy and total clock ticks of the whole machine (all CPUs) from /proc/stat. */
export function machineTicks() {
  const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0];
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/** Resident set size of one pid in bytes (0 when it is gone). */
export function rssBytes(pid) {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ')[1]) * PAGE_BYTES;
  } catch {
    return 0;
  }
}

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function killQuietly(target, signal) {
  try {
    process.kill(target, signal);
  } catch {
    // already gone
  }
}

/**
 * Stops a group leader and everything under it: SIGTERM to the leader's group (a Node contender
 * then closes its pool, nginx and php-fpm stop their workers), then SIGKILL to whatever is left of
 * the tree after graceMs.
 */
export async function stopGroup(child, graceMs = 5000) {
  const pid = child.pid;
  const tree = processTree([pid]);
  killQuietly(-pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && tree.some(pidAlive)) await sleep(50);
  for (const p of tree) killQuietly(p, 'SIGKILL');
  killQuietly(-pid, 'SIGKILL');
  await Promise.race([child.exited, sleep(1000)]);
  live.delete(pid);
  writePgidFile();
}

/** Synchronous last resort (exit handlers): SIGKILL every tree we started. */
export function killEverythingSync() {
  for (const pid of tracked.keys()) killQuietly(pid, 'SIGKILL');
  if (live.size === 0) return;
  const roots = [...live.keys()];
  for (const p of processTree(roots)) killQuietly(p, 'SIGKILL');
  for (const pid of roots) killQuietly(-pid, 'SIGKILL');
  live.clear();
  writePgidFile();
}

/** Kill every tree on exit, Ctrl-C, SIGTERM and uncaught errors. */
export function installCleanup(onSignal) {
  process.once('exit', killEverythingSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: stopping every contender\n`);
      killEverythingSync();
      onSignal?.();
      process.exit(130);
    });
  }
}
