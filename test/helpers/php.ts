import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Absolute path of a PHP fixture in test/fixtures/php. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/php/${name}`, import.meta.url));
}

/** Pids of php processes currently running on this machine: php, and classic mode's php-cgi and php-fpm. */
export function phpPids(): number[] {
  try {
    // stderr dropped: pgrep warns that a pattern over 15 chars matches nothing, though each alternative fits
    return execFileSync('pgrep', ['-x', 'php|php-cgi|php-fpm[0-9.]*'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** The value of `variable` in a process's environment: undefined when unset, null when the process is gone. */
export function environValue(pid: number, variable: string): string | undefined | null {
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return null;
  }
  const entry = environ.split('\0').find((e) => e.startsWith(`${variable}=`));
  return entry === undefined ? undefined : entry.slice(variable.length + 1);
}

/** php processes whose environment has `variable=value` (stamped by whoever started them). */
export function phpPidsStamped(variable: string, value: string): number[] {
  return phpPids().filter((pid) => environValue(pid, variable) === value);
}

/** The variable the global setup stamps on this run's environment; every php a test starts inherits it. */
export const TEST_RUN_VARIABLE = 'WARMPOOL_TEST_RUN';

/**
 * php processes this test run left. `stamped`: those carrying this run's stamp, surely ours.
 * `unstamped`: php without any stamp that was not running when the run began — a test that gave
 * php an environment of its own, or php started meanwhile by something else on the machine (a
 * bench). php started by another test run carries that run's stamp and is in neither list.
 */
export function phpPidsOfRun(run: string, before: ReadonlySet<number>): { stamped: number[]; unstamped: number[] } {
  const stamped: number[] = [];
  const unstamped: number[] = [];
  for (const pid of phpPids()) {
    const stamp = environValue(pid, TEST_RUN_VARIABLE);
    if (stamp === run) stamped.push(pid);
    else if (stamp === undefined && !before.has(pid)) unstamped.push(pid);
  }
  return { stamped, unstamped };
}

/** Whether a pid is alive (signal 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
