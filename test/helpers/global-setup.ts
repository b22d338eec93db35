import { execFileSync } from 'node:child_process';
import { phpPids } from './php.js';

// Every test spawns real PHP: fail fast with the fix when it is missing, and prove at the end that
// no test left a php process behind.
export function setup(): void {
  try {
    execFileSync('php', ['-v'], { stdio: 'ignore' });
  } catch {
    throw new Error('php is not installed: run `apt-get install -y php-cli` (or `bash .ci/run`, which installs it)');
  }
}

export async function teardown(): Promise<void> {
  // Give exiting workers a moment to be reaped.
  for (let i = 0; i < 50 && phpPids().length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  const left = phpPids();
  if (left.length > 0) {
    throw new Error(`php processes left running after the suite: ${left.join(', ')} — a pool or test does not clean up`);
  }
}
