// The OS side of a worker, whatever protocol it speaks (goridge Worker, FastCGI CgiWorker): spawning
// in a process group of its own, telling a missing command from a failing one, and killing the
// whole group.
import { execFileSync, spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { basename, delimiter, join, resolve } from 'node:path';
import { BootFailedError, CommandNotFoundError, WorkerExitedError } from '../errors.js';
import { lowerWorkerPriority } from './priority.js';
import type { RecycleReason } from './state.js';
import { PHP_ERROR_LINE, SHOWN_LINES } from './output.js';
import { SCRIPT_NOT_OPENED_HINT } from '../protocol/decoder.js';

/** What every worker process needs to start and stop; each kind of worker adds its own fields. */
export interface ProcessSpec {
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd: string | undefined;
  /** how long a boot may take before it fails (allocate_timeout) */
  bootTimeoutMs: number;
  /** grace between a graceful stop and SIGKILL (destroy_timeout) */
  destroyTimeoutMs: number;
  /** how long a cancelled request may take to end before the worker is killed (stream_timeout) */
  streamTimeoutMs: number;
  /** how long a streamed reply may wait for its reader before it is cancelled (send_timeout) */
  sendTimeoutMs: number;
  uid: number | undefined;
  gid: number | undefined;
  /** nice steps below the server's CPU priority (worker/priority.ts); 0: the same */
  nice: number;
}

/**
 * Spawns argv detached: its own process group, so a kill reaches everything it started. Through
 * setpriv(1) when there is one, with a parent-death signal: if the server itself is killed
 * (SIGKILL, the OOM killer), the kernel kills its PHP processes too. A php-cgi waiting in accept()
 * would otherwise live on with no parent, as would a worker stuck in a long request.
 */
export function spawnProcess(spec: ProcessSpec, stdio: StdioOptions, extraArgs: readonly string[] = []): ChildProcess {
  const launch = throughSetpriv([...spec.argv, ...extraArgs], spec);
  const argv = launch ?? [...spec.argv, ...extraArgs];
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: spec.cwd,
    env: spec.env,
    stdio,
    // Own process group: a Ctrl-C on the server's terminal does not reach PHP, and a kill reaches
    // everything the worker started.
    detached: true,
    // setpriv changes the user itself, with the user's groups
    ...(launch === null || !IS_ROOT ? { uid: spec.uid, gid: spec.gid } : {}),
  });
  if (child.pid !== undefined) {
    lowerWorkerPriority(child.pid, spec.nice, () => child.exitCode === null && child.signalCode === null);
  }
  return child;
}

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => isExecutable(path)) ?? null;

/**
 * The server's ambient capabilities, which every child inherits: systemd's
 * AmbientCapabilities=CAP_NET_BIND_SERVICE (so a non-root server binds port 443) reached every PHP
 * worker too (CapAmb 0x400, a blue-green probe), and PHP has no use for it. setpriv drops them.
 */
const HAS_AMBIENT_CAPS = (() => {
  try {
    const line = /^CapAmb:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return line !== null && /[1-9a-f]/.test(line[1]!);
  } catch {
    return false;
  }
})();

const IS_ROOT = process.getuid?.() === 0;

/**
 * argv run through `setpriv --pdeathsig KILL` (the same process: setpriv execs it), or null. Only
 * when the command itself is found, so a missing command is still reported by its own name
 * (spawn's ENOENT). A server running as root has setpriv change the user too, with that user's
 * supplementary groups, as php-fpm's initgroups gives them: Node's spawn drops them all, and
 * Debian's `usermod -a -G icingaweb2 www-data` (what the package tells you to do to let PHP read
 * /etc/icingaweb2) did nothing for warmpool's PHP (a probe). A uid with no passwd entry gets none.
 */
function throughSetpriv(argv: readonly string[], spec: ProcessSpec): string[] | null {
  if (SETPRIV === null || process.platform !== 'linux' || !commandExists(argv[0]!, spec.env, spec.cwd)) return null;
  let user: string[] = [];
  if (spec.uid !== undefined && IS_ROOT) {
    const groups = groupsOf(spec.uid, spec.gid);
    user = [
      ...['--reuid', String(spec.uid)],
      ...(spec.gid === undefined ? [] : ['--regid', String(spec.gid)]),
      ...(groups === null ? ['--clear-groups'] : ['--groups', groups.join(',')]),
    ];
  }
  return [
    SETPRIV,
    '--pdeathsig',
    'KILL',
    ...(HAS_AMBIENT_CAPS ? ['--ambient-caps', '-all'] : []),
    ...user,
    '--',
    ...argv,
  ];
}

/**
 * The groups php-fpm's initgroups(user, group) gives: the user's supplementary groups and `gid`
 * (server.group), not the user's own primary group when another is set (setpriv's --init-groups
 * takes the passwd one: `group: nogroup` kept PHP in www-data's group, a probe). Null for a uid no
 * passwd entry knows. Asked of `id` (NSS: LDAP users too) once per uid: read at start.
 */
const knownGroups = new Map<number, { primary: number; others: number[] } | null>();
function groupsOf(uid: number, gid: number | undefined): number[] | null {
  let known = knownGroups.get(uid);
  if (known === undefined) {
    try {
      // the primary group first, then the others
      const [primary, ...others] = execFileSync('id', ['-G', String(uid)], {
        encoding: 'utf8',
        timeout: 5000,
        stdio: ['ignore', 'pipe', 'ignore'],
      })
        .trim()
        .split(/\s+/)
        .map(Number);
      known = { primary: primary!, others: others.filter((group) => group !== primary) };
    } catch {
      known = null;
    }
    knownGroups.set(uid, known);
  }
  if (known === null) return null;
  return [...new Set([gid ?? known.primary, ...known.others])];
}

/** As spawn finds it: a path (a relative one from the child's cwd), else a name on PATH. */
export function commandExists(command: string, env: NodeJS.ProcessEnv, cwd: string | undefined): boolean {
  if (command.includes('/')) return isExecutable(resolve(cwd ?? '.', command));
  return (env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && isExecutable(join(dir, command)));
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Resolves once the process is running; rejects with a typed error when it cannot start at all. */
export async function waitForSpawn(child: ChildProcess, argv: readonly string[], cwd?: string): Promise<void> {
  const spawnError = await new Promise<Error | null>((resolve) => {
    child.once('spawn', () => resolve(null));
    child.once('error', (error) => resolve(error));
  });
  if (spawnError !== null) throw describeSpawnError(spawnError, argv, cwd);
}

/** What to do about a command that is not there: PHP's own binaries name their Debian package and key. */
export function installHint(command: string): string {
  const name = basename(command);
  if (/^php-cgi[\d.]*$/.test(name)) {
    return 'Install it (Debian/Ubuntu: apt-get install php-cgi) or give its full path in fastcgi.command.';
  }
  if (/^php[\d.]*$/.test(name)) {
    return 'Install it (Debian/Ubuntu: apt-get install php-cli) or give its full path in server.command.';
  }
  return "Install it or give its full path in the pool's command (server.command; fastcgi.command for classic PHP).";
}

export function describeSpawnError(error: Error, argv: readonly string[], cwd?: string): Error {
  const code = (error as NodeJS.ErrnoException).code;
  // spawn says ENOENT for a working directory that is not there too: not the command's fault
  if (code === 'ENOENT' && cwd !== undefined && !isDirectory(cwd)) {
    return new CommandNotFoundError(
      `the workers' folder "${cwd}" does not exist (the pool's cwd: sites[].root in warmpool.yaml), so "${argv[0]}" cannot start there; create the folder or fix the path`,
      { command: argv[0], cwd },
    );
  }
  if (code === 'ENOENT') {
    return new CommandNotFoundError(
      `command not found: "${argv[0]}" (from "${argv.join(' ')}"). ${installHint(argv[0]!)}`,
      {
        command: argv[0],
      },
    );
  }
  if (code === 'EACCES') {
    return new CommandNotFoundError(`command "${argv[0]}" is not executable (EACCES). Check its permissions.`, {
      command: argv[0],
    });
  }
  return new BootFailedError(`could not start "${argv.join(' ')}": ${error.message}`, { cause: error });
}

export function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal !== null) return `was killed by ${signal}`;
  return `exited with code ${code}`;
}

/** SIGKILL to the process group (the worker and whatever it started), or to the pid alone. */
export function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** SIGKILL (via `kill`) when a graceful stop outlasts destroy_timeout; the timer goes with the exit. */
export function killAfterGrace(destroyTimeoutMs: number, kill: () => void, exited: Promise<void>): void {
  const timer = setTimeout(kill, destroyTimeoutMs);
  timer.unref();
  void exited.then(() => clearTimeout(timer));
}

/** What a request's error adds about why its worker was killed. */
export function killedWhy(reason: RecycleReason | null): string {
  if (reason === 'memory') return ' for going over max_worker_memory';
  if (reason === 'reset') return ' by a reset (its request outlasted reset_timeout)';
  return '';
}

/** "Last output: a | b. " from a worker's last lines (five at most), or "". */
export function lastOutputText(lines: readonly string[]): string {
  return lines.length === 0 ? '' : `Last output: ${lines.slice(-SHOWN_LINES).join(' | ')}. `;
}

/**
 * The hint after a failed boot's output: fix PHP's error when it printed one, the script's path
 * (and its user's rights) when PHP could not open it, else `otherwise`.
 */
export function bootHint(lines: readonly string[], argv: readonly string[], otherwise: string, uid?: number): string {
  if (lines.some((line) => PHP_ERROR_LINE.test(line)))
    return `Fix the PHP error above (run "${argv.join(' ')}" by hand to see it whole).`;
  if (lines.some((line) => line.startsWith('Could not open input file'))) return scriptNotOpenedHint(uid);
  return otherwise;
}

/**
 * PHP printed "Could not open input file": the path, or, when the worker runs as another user
 * (server.user, `uid`), that user's rights on the script and the folders above it (a 0700 folder
 * of root's, a script of mode 0600: PHP says the same as for a wrong path).
 */
export function scriptNotOpenedHint(uid: number | undefined): string {
  if (uid === undefined) return SCRIPT_NOT_OPENED_HINT;
  return `${SCRIPT_NOT_OPENED_HINT.slice(0, -1)}, and that ${describeUser(uid)} (server.user) can read it and enter every folder above it.`;
}

/** `user "nobody"` from /etc/passwd, else `uid 1234`. */
export function describeUser(uid: number): string {
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , id] = line.split(':');
      if (id === String(uid) && name !== undefined && name !== '') return `user "${name}"`;
    }
  } catch {
    // no /etc/passwd: the number says it
  }
  return `uid ${uid}`;
}

/** The error of a request whose worker process exited under it. */
export function exitedDuringRequest(
  pid: number,
  exitCode: number | null,
  exitSignal: NodeJS.Signals | null,
  reason: RecycleReason | null,
  lines: readonly string[],
): WorkerExitedError {
  return new WorkerExitedError(
    `worker ${pid} ${describeExit(exitCode, exitSignal)}${killedWhy(reason)} during a request. ${lastOutputText(lines)}`.trim(),
    { pid, exitCode },
  );
}

/** A folder that exists (a path that does not, or a file, is not one). */
export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
