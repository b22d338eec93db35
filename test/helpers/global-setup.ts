import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { phpPids, phpPidsOfRun, TEST_RUN_VARIABLE } from './php.js';

const run = randomUUID();
let before: ReadonlySet<number> = new Set();

// Every test spawns real PHP: fail fast with the fix when it is missing, and prove at the end that
// no test left a php process behind.
export function setup(): void {
  try {
    execFileSync('php', ['-v'], { stdio: 'ignore' });
  } catch {
    throw new Error('php is not installed: run `apt-get install -y php-cli` (or `bash .ci/run`, which installs it)');
  }
  // Stamp this run: test workers, and every php they start, inherit the variable, so the teardown
  // counts only this run's php even when another run shares the machine.
  process.env[TEST_RUN_VARIABLE] = run;
  before = new Set(phpPids());
}

export async function teardown(): Promise<void> {
  // Give exiting workers a moment to be reaped.
  let left = phpPidsOfRun(run, before);
  for (let i = 0; i < 50 && left.stamped.length + left.unstamped.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = phpPidsOfRun(run, before);
  }
  const { stamped, unstamped } = left;
  if (unstamped.length > 0) {
    // maybe ours, maybe another program's: said, not failed on (a bench on the same machine is not our leak)
    console.warn(
      `php processes without a test-run stamp started during the suite and still run: ${unstamped.join(', ')}`,
    );
  }
  if (stamped.length > 0) {
    // vitest prints an error thrown here but still exits 0: fail the run's exit code ourselves
    process.exitCode = 1;
    throw new Error(
      `php processes left running after the suite: ${stamped.join(', ')} — a pool or test does not clean up`,
    );
  }
}
