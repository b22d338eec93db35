import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from './free-port.js';

/** The BUILT server, as users run it. */
export const SERVER_MAIN = fileURLToPath(new URL('../../apps/server/dist/main.js', import.meta.url));
/** test/fixtures, absolute (configs reach PHP fixtures and static roots through it). */
export const FIXTURES = fileURLToPath(new URL('../fixtures', import.meta.url));

/**
 * `serve` started as root warns at each site whose PHP it starts itself without server.user (the
 * suite runs as root in CI): splits those lines from the rest of stderr, so a test that wants no
 * other warning can say so, and check these.
 */
export function splitRootPhpWarnings(stderr: string): { sites: string[]; rest: string } {
  const sites: string[] = [];
  const rest = stderr.replace(
    /^▲ .*? (\S*)server\.user: not set, and warmpool runs as root: the PHP processes(?: of (.+?))? run as root.*\n?/gm,
    (_line, _prefix: string, hosts: string | undefined) => {
      sites.push(hosts ?? 'default');
      return '';
    },
  );
  return { sites, rest };
}

function assertBuilt(): void {
  if (!existsSync(SERVER_MAIN)) throw new Error(`${SERVER_MAIN} is missing: run \`pnpm build\` first`);
}

/** `-o key=value` arguments, RoadRunner's overrides: overrides('a=1', 'b=2') → ['-o', 'a=1', '-o', 'b=2']. */
export function overrides(...pairs: string[]): string[] {
  return pairs.flatMap((pair) => ['-o', pair]);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `warmpool ARGS` to completion. */
export function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  assertBuilt();
  return runToCompletion(process.execPath, [SERVER_MAIN, ...args], options);
}

/** setpriv's arguments that run what follows as nobody:nogroup with no other group (the suite runs as root). */
export const AS_NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups', '--'];

/** Runs `warmpool ARGS` to completion as nobody, as an operator's unprivileged server runs it. */
export function runCliAsNobody(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  assertBuilt();
  return runToCompletion('setpriv', [...AS_NOBODY, process.execPath, SERVER_MAIN, ...args], options);
}

/** Runs `command ARGS` to completion (SIGKILL after timeoutMs, 10 s by default): its exit code and output. */
export async function runToCompletion(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<CliResult> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c));
  child.stderr!.on('data', (c: Buffer) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 10_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

const running = new Set<RunningServer>();

export class RunningServer {
  readonly child: ChildProcess;
  #stdout = '';
  #stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(child: ChildProcess) {
    this.child = child;
    child.stdout!.on('data', (c: Buffer) => (this.#stdout += c));
    child.stderr!.on('data', (c: Buffer) => (this.#stderr += c));
    this.exited = once(child, 'exit').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** Waits until stdout+stderr match; throws with the output when the server exits first or time runs out. */
  async waitFor(pattern: string | RegExp, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const seen = () =>
      typeof pattern === 'string'
        ? (this.#stdout + this.#stderr).includes(pattern)
        : pattern.test(this.#stdout + this.#stderr);
    while (!seen()) {
      if (this.child.exitCode !== null || this.child.signalCode !== null)
        throw new Error(
          `server exited (${this.child.exitCode ?? this.child.signalCode}) before printing ${pattern}:\n${this.#stdout}\n${this.#stderr}`,
        );
      if (Date.now() > deadline)
        throw new Error(`server did not print ${pattern} within ${timeoutMs} ms:\n${this.#stdout}\n${this.#stderr}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /**
   * Waits for "warmpool ready". The bound only turns a server that never gets ready into a failure
   * with its output: below the 30 s a test may take, above what a loaded machine needs to boot one.
   */
  ready(timeoutMs = 25_000): Promise<void> {
    return this.waitFor('warmpool ready', timeoutMs);
  }

  /** Sends a signal and waits for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Starts `warmpool ARGS` (usually `serve -c FILE`); stop it with stop() or stopAllServers(). */
export function startServer(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; stdio?: StdioOptions; openFiles?: number } = {},
): RunningServer {
  assertBuilt();
  // openFiles: the shell lowers the limit, then execs node (the child's pid is the server's)
  const [command, argv] =
    options.openFiles === undefined
      ? [process.execPath, [SERVER_MAIN, ...args]]
      : ['sh', ['-c', `ulimit -n ${options.openFiles} && exec "$0" "$@"`, process.execPath, SERVER_MAIN, ...args]];
  const child = spawn(command, argv, {
    cwd: options.cwd,
    env: { ...process.env, NO_COLOR: '1', ...options.env },
    stdio: options.stdio ?? ['ignore', 'pipe', 'pipe'],
  });
  return new RunningServer(child);
}

/** Starts `warmpool ARGS` as nobody (setpriv execs node: the child's pid is the server's). */
export function startServerAsNobody(args: string[], options: { cwd?: string } = {}): RunningServer {
  assertBuilt();
  const child = spawn('setpriv', [...AS_NOBODY, process.execPath, SERVER_MAIN, ...args], {
    cwd: options.cwd,
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new RunningServer(child);
}

/** For afterAll: SIGTERM every server still running, SIGKILL after 5 s. */
export async function stopAllServers(): Promise<void> {
  await Promise.all(
    [...running].map(async (server) => {
      const timer = setTimeout(() => server.child.kill('SIGKILL'), 5_000);
      await server.stop('SIGTERM');
      clearTimeout(timer);
    }),
  );
}

/**
 * A one-worker echo config written to `file` on a free port, quiet logs; `admin` gives it an
 * admin.socket (none: the default socket).
 */
export async function writeEchoConfig(file: string, admin?: string): Promise<string> {
  writeFileSync(
    file,
    [
      'version: "3"',
      `server: { command: "php ${join(FIXTURES, 'php', 'echo.php')}" }`,
      `http: { address: "127.0.0.1:${await freePort()}", pool: { num_workers: 1 } }`,
      'logs: { mode: production, level: error }',
      ...(admin === undefined ? [] : ['admin:', `  socket: ${admin}`]),
      '',
    ].join('\n'),
  );
  return file;
}
