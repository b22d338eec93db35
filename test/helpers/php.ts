import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Absolute path of a PHP fixture in test/fixtures/php. */
export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/php/${name}`, import.meta.url));
}

/** Pids of php processes currently running on this machine. */
export function phpPids(): number[] {
  try {
    return execFileSync('pgrep', ['-x', 'php'], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
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
