import { spawn } from 'node:child_process';
import { chmod, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { type CliResult, RunningServer, runToCompletion, SERVER_MAIN } from './warmpool-server.js';

/**
 * Makes `DIR/rr`, a link to the built server (as a user links or copies the warmpool binary into a
 * Laravel app as `rr`), and returns its path. The link runs dist/main.js through its shebang, so the
 * file is made executable (the pnpm bin link does the same when the package is installed).
 */
export async function linkAsRr(dir: string): Promise<string> {
  await chmod(SERVER_MAIN, 0o755);
  const rr = join(dir, 'rr');
  await symlink(SERVER_MAIN, rr);
  return rr;
}

/** Runs `rr ARGS` to completion (the binary itself, not `node main.js`: its name is what matters). */
export function runRr(
  rr: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  return runToCompletion(rr, args, options);
}

/** Starts `rr ARGS` (usually `-c .rr.yaml -o … serve`); stop it with stop() or stopAllServers(). */
export function startRr(
  rr: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): RunningServer {
  return new RunningServer(
    spawn(rr, args, {
      cwd: options.cwd,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}
