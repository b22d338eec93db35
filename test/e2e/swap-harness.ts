// Shared by the swap-*.test.ts files: wrapper "binaries" around the REAL built server, a running
// warmpool-swap supervisor, and a load loop over an undici Pool.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Pool, request } from 'undici';
import { freePort } from '../helpers/free-port.js';
import { FIXTURES, SERVER_MAIN } from '../helpers/warmpool-server.js';
import { expect } from 'vitest';

export const SWAP_MAIN = fileURLToPath(new URL('../../apps/swap/dist/main.js', import.meta.url));
export const SWAP_YAML = join(FIXTURES, 'server', 'swap.yaml');

/**
 * A wrapper script (run with node by warmpool-swap) that sets env and runs the real server; with
 * `config`, the server reads that file instead of the one after `-c` (a release with another config).
 */
export async function makeBinary(
  dir: string,
  name: string,
  env: Record<string, string>,
  config?: string,
): Promise<string> {
  const file = join(dir, `${name}.mjs`);
  const swapConfig =
    config === undefined ? '' : `process.argv[process.argv.indexOf('-c') + 1] = ${JSON.stringify(config)};\n`;
  await writeFile(
    file,
    `Object.assign(process.env, ${JSON.stringify(env)});\n${swapConfig}process.argv[1] = ${JSON.stringify(SERVER_MAIN)};\nawait import(${JSON.stringify(new URL(`file://${SERVER_MAIN}`).href)});\n`,
  );
  return file;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export async function swapCli(args: string[], timeoutMs = 30_000): Promise<CliResult> {
  const child = spawn(process.execPath, [SWAP_MAIN, ...args], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c));
  child.stderr!.on('data', (c: Buffer) => (stderr += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export class Supervisor {
  readonly child: ChildProcess;
  readonly stateDir: string;
  readonly httpPort: number;
  readonly statusPort: number;
  output = '';
  readonly exited: Promise<number | null>;

  constructor(child: ChildProcess, stateDir: string, httpPort: number, statusPort: number) {
    this.child = child;
    this.stateDir = stateDir;
    this.httpPort = httpPort;
    this.statusPort = statusPort;
    child.stdout!.on('data', (c: Buffer) => (this.output += c));
    child.stderr!.on('data', (c: Buffer) => (this.output += c));
    this.exited = once(child, 'exit').then(([code]) => code as number | null);
  }

  /** Waits until the output has `text` (`from`: only what was printed after that offset). */
  async waitFor(text: string, timeoutMs = 15_000, from = 0): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.output.includes(text, from)) {
      if (this.child.exitCode !== null || this.child.signalCode !== null)
        throw new Error(`warmpool-swap exited before "${text}":\n${this.output}`);
      if (Date.now() > deadline) throw new Error(`warmpool-swap did not print "${text}":\n${this.output}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  state(): {
    active: { colour: string; pid: number; binary: string } | null;
    children: { pid: number | null }[];
    previous: string | null;
    history: { ok: boolean }[];
  } {
    return JSON.parse(readFileSync(join(this.stateDir, 'state.json'), 'utf8'));
  }

  /** SIGTERM (forwarded to the server, which drains); SIGKILL of everything after 10 s. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    let pids: number[] = [];
    try {
      pids = this.state()
        .children.map((c) => c.pid)
        .filter((p): p is number => p !== null);
    } catch {
      // no state yet
    }
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      this.child.kill('SIGKILL');
      for (const pid of pids) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }, 10_000);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** Starts `warmpool-swap start --binary BINARY -- serve -c swap.yaml` and waits until it is ready. */
export async function startSupervisor(dir: string, binary: string, extra: string[] = []): Promise<Supervisor> {
  if (!existsSync(SWAP_MAIN)) throw new Error(`${SWAP_MAIN} is missing: run \`pnpm build\` first`);
  const httpPort = await freePort();
  const statusPort = await freePort();
  const stateDir = join(dir, `state-${httpPort}`);
  const child = spawn(
    process.execPath,
    [SWAP_MAIN, 'start', '--binary', binary, '--state', stateDir, ...extra, '--', 'serve', '-c', SWAP_YAML],
    {
      env: {
        ...process.env,
        NO_COLOR: '1',
        FIXTURES,
        SWAP_DIR: dir,
        HTTP_PORT: String(httpPort),
        STATUS_PORT: String(statusPort),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const supervisor = new Supervisor(child, stateDir, httpPort, statusPort);
  await supervisor.waitFor('warmpool-swap ready');
  return supervisor;
}

export interface LoadResult {
  ok: number;
  failed: number;
  errors: string[];
  versions: Map<string, number>;
}

/**
 * 32 connections, each sending GETs back to back until stop() resolves the result. With `fresh`,
 * every GET comes on a new connection (the ones a server accepts from the shared sockets now).
 */
export function load(port: number, connections = 32, fresh = false): { stop(): Promise<LoadResult> } {
  const origin = `http://127.0.0.1:${port}`;
  const pool = fresh ? null : new Pool(origin, { connections, keepAliveTimeout: 60_000 });
  const result: LoadResult = { ok: 0, failed: 0, errors: [], versions: new Map() };
  let running = true;
  const loops = Array.from({ length: connections }, async () => {
    while (running) {
      // Every GET must get its 200: the draining server serves a request that arrives on an idle
      // keep-alive connection within its grace, so not even a reused connection may be reset.
      const client = pool ?? new Client(origin);
      try {
        const res = await client.request({ path: '/', method: 'GET' });
        const body = await res.body.text();
        if (res.statusCode === 200) {
          result.ok++;
          result.versions.set(body, (result.versions.get(body) ?? 0) + 1);
        } else {
          result.failed++;
          result.errors.push(`${res.statusCode} ${body.slice(0, 100)}`);
        }
      } catch (error) {
        result.failed++;
        result.errors.push(
          `${(error as NodeJS.ErrnoException).code ?? (error as Error).name}: ${(error as Error).message}`,
        );
      } finally {
        if (pool === null) await client.close();
      }
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      await pool?.close();
      return result;
    },
  };
}

/**
 * Swaps to a broken v2 under load (keep-alive connections, and new ones all along) and checks the
 * rollback: the swap exits 1, no request failed, only v1 answered, and blue is still the one
 * active child. Returns the swap CLI's result.
 */
export async function brokenSwap(
  supervisor: Supervisor,
  dir: string,
  name: string,
  env: Record<string, string>,
  config?: string,
): Promise<CliResult> {
  const bluePid = supervisor.state().active!.pid;
  const binary = await makeBinary(dir, name, { APP_VERSION: 'v2', ...env }, config);
  // 28 + 4 connections: swap.yaml's server queues 32 requests at most (max_queue_size), then 503
  const traffic = load(supervisor.httpPort, 28);
  const newcomers = load(supervisor.httpPort, 4, true);
  await new Promise((r) => setTimeout(r, 200));
  const swap = await swapCli(['swap', '--binary', binary, '--state', supervisor.stateDir]);
  await new Promise((r) => setTimeout(r, 200));
  const result = await traffic.stop();
  const fresh = await newcomers.stop();
  expect(swap.code).toBe(1);
  expect([...result.errors, ...fresh.errors].slice(0, 5)).toEqual([]);
  expect(result.failed + fresh.failed).toBe(0);
  expect(fresh.ok).toBeGreaterThan(0);
  expect([...result.versions.keys(), ...fresh.versions.keys()]).toEqual(['v1', 'v1']);
  expect(supervisor.state().active!.pid).toBe(bluePid);
  expect(supervisor.state().children).toHaveLength(1);
  const after = await request(`http://127.0.0.1:${supervisor.httpPort}/`);
  expect(await after.body.text()).toBe('v1');
  expect(swap.stdout + swap.stderr).toMatch(/keeps serving/);
  // and that its restarts would read the config file as it is now
  expect(swap.stderr).toContain('a restart (after a crash) reads the file as it is now, so fix or restore it');
  return swap;
}
