// One server child: spawned with the shared sockets as fds 3.. (LISTEN_FDS + LISTEN_FDNAMES), in its
// own process group so a last-resort SIGKILL also takes its PHP workers. Output lines are relayed
// with a colour prefix and the tail is kept for error messages.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import type { BoundSocket } from './listeners.js';

export type Colour = 'blue' | 'green';

/** A ".js"/".mjs"/".cjs" binary is a script: run it with this Node. */
export function commandFor(binary: string): { file: string; prefix: string[] } {
  return /\.(m|c)?js$/.test(binary) ? { file: process.execPath, prefix: [binary] } : { file: binary, prefix: [] };
}

/** Runs `<binary> ARGS` to completion (version, config check). */
export function runCheck(
  binary: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 30_000,
): Promise<{ code: number | null; output: string }> {
  const { file, prefix } = commandFor(binary);
  return new Promise((resolve) => {
    let output = '';
    let child: ChildProcess;
    try {
      child = spawn(file, [...prefix, ...args], { env: { ...env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      resolve({ code: null, output: (error as Error).message });
      return;
    }
    child.stdout!.on('data', (c: Buffer) => (output += c));
    child.stderr!.on('data', (c: Buffer) => (output += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, output: output + error.message });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

export interface ChildOptions {
  colour: Colour;
  binary: string;
  args: string[];
  /** in fd order: fds 3, 4, … */
  sockets: BoundSocket[];
  env: NodeJS.ProcessEnv;
  log: (line: string) => void;
}

export class ServerChild {
  readonly colour: Colour;
  readonly binary: string;
  readonly startedAt = Date.now();
  readonly process: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  version = '';
  #tail: string[] = [];
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(options: ChildOptions) {
    this.colour = options.colour;
    this.binary = options.binary;
    const { file, prefix } = commandFor(options.binary);
    const env: NodeJS.ProcessEnv = {
      ...options.env,
      LISTEN_FDS: String(options.sockets.length),
      LISTEN_FDNAMES: options.sockets.map((s) => s.name).join(':'),
      WARMPOOL_SWAP_COLOUR: options.colour,
    };
    delete env.LISTEN_PID; // the pid is only known after spawn; the server accepts an unset LISTEN_PID
    this.process = spawn(file, [...prefix, ...options.args], {
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe', ...options.sockets.map((s) => s.fd)],
    });
    const relay = (chunk: Buffer, rest: { s: string }) => {
      rest.s += chunk.toString();
      const lines = rest.s.split('\n');
      rest.s = lines.pop()!;
      for (const line of lines) {
        this.#tail.push(line);
        if (this.#tail.length > 50) this.#tail.shift();
        // a JSON log line is passed as it is: a prefix made it no JSON for the tools reading
        // the supervisor's output (journald, Octane-style readers, log shippers)
        options.log(line.startsWith('{') ? line : `[${this.colour} ${this.process.pid ?? '?'}] ${line}`);
      }
    };
    const out = { s: '' };
    const err = { s: '' };
    this.process.stdout!.on('data', (c: Buffer) => relay(c, out));
    this.process.stderr!.on('data', (c: Buffer) => relay(c, err));
    this.exited = new Promise((resolve) => {
      this.process.once('error', (error) => {
        this.#tail.push(error.message);
        this.#exit = { code: null, signal: null };
        resolve(this.#exit);
      });
      this.process.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
  }

  get pid(): number | undefined {
    return this.process.pid;
  }

  get alive(): boolean {
    return this.#exit === undefined;
  }

  get exitDescription(): string {
    if (this.#exit === undefined) return 'running';
    return this.#exit.signal !== null ? `killed by ${this.#exit.signal}` : `exit code ${this.#exit.code}`;
  }

  get output(): string {
    return this.#tail.join('\n');
  }

  /** a SIGTERM or SIGINT was sent: the server drains */
  #stopSignalled = false;

  /**
   * Sends `signal`; a second SIGTERM/SIGINT is not: the server takes it as "exit now, cut the
   * requests" (a supervisor stopped while the old colour drained cut that colour's requests).
   */
  signal(signal: NodeJS.Signals): void {
    if (!this.alive) return;
    if (signal === 'SIGTERM' || signal === 'SIGINT') {
      if (this.#stopSignalled) return;
      this.#stopSignalled = true;
    }
    this.process.kill(signal);
  }

  /**
   * SIGKILL to the server, its process group and every descendant (PHP workers run in process
   * groups of their own, so the group alone is not enough). Descendants are found in /proc.
   */
  killGroup(): void {
    const pid = this.process.pid;
    if (pid === undefined) return;
    this.rememberDescendants();
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
    this.#killRemembered();
  }

  /** Remembers the current descendants (call before the server may exit and orphan them). */
  rememberDescendants(): void {
    if (this.process.pid !== undefined)
      for (const d of descendants(this.process.pid)) this.#descendants.set(d, startTime(d));
  }

  /** SIGKILL to remembered descendants still alive — the same process (start time checked), not a reused pid. */
  #killRemembered(): void {
    for (const [pid, started] of this.#descendants) {
      if (started === null || startTime(pid) !== started) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  #descendants = new Map<number, string | null>();

  /** SIGTERM (the server drains), SIGKILL of the group after graceMs; resolves on exit. */
  async stop(graceMs: number): Promise<void> {
    this.rememberDescendants();
    this.signal('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.killGroup();
        resolve();
      }, graceMs);
    });
    const watch = setInterval(() => this.rememberDescendants(), 250);
    await Promise.race([this.exited, killed]);
    clearInterval(watch);
    clearTimeout(timer);
    await this.exited;
    this.#killRemembered(); // workers the server left behind, if any
  }
}

/** Pids whose parent chain leads to `root` (Linux /proc; empty elsewhere). */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(entry), Number(fields[1]));
    } catch {
      // exited meanwhile
    }
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const [pid, ppid] of parent)
      if (ppid === p) {
        found.push(pid);
        queue.push(pid);
      }
  }
  return found;
}

function startTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}
