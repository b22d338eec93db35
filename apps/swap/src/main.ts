#!/usr/bin/env node
// `warmpool-swap`: argv → command → exit code.
//   start     the supervisor: binds the public sockets, runs the server binary as a child, listens on
//             <state>/control.sock (0600) for the clients below; SIGUSR2 swaps to `pending` of state.json
//   swap, rollback, status   clients of the control socket (newline-delimited JSON), printing progress
import { chmodSync, existsSync, mkdirSync, realpathSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Socket } from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type SwapError, UnreachableError, UsageError, ControlError } from './errors.js';
import { addressesFromYaml, LISTENER_NAMES, type ListenerName } from './listeners.js';
import { SwapOrchestrator } from './orchestrator.js';
import { controlSocket, readState, type SwapState } from './state-file.js';

export const EXIT_OK = 0;
/** The codes of a swap that was tried and given up: the server before keeps serving. */
const ROLLED_BACK = new Set(['WP_SWAP_CHECK_FAILED', 'WP_SWAP_BOOT_FAILED', 'WP_SWAP_NOT_READY']);
export const EXIT_FAILED = 1; // the swap failed and was rolled back; the supervisor's child failed
export const EXIT_USAGE = 2;
export const EXIT_UNREACHABLE = 3;
export const EXIT_LISTEN = 5;

const DEFAULT_STATE = '/run/warmpool-swap';
/**
 * Above the server's own worst drain with its default destroy_timeout (60 s): 3 × 60 s (connections,
 * then requests reaching PHP, then workers exiting). At 30 s a drain the server still bounded was cut
 * with SIGKILL, and the requests it served with it.
 */
const DEFAULT_DRAIN_TIMEOUT = '190s';

const HELP = `warmpool-swap: blue-green supervisor for warmpool (owns the listening sockets, one server child at a time)

usage:
  warmpool-swap start --binary PATH [--listen NAME=HOST:PORT]... [--state DIR] [--ready-timeout 30s]
                      [--settle 2s] [--drain-timeout ${DEFAULT_DRAIN_TIMEOUT}] -- serve -c warmpool.yaml
  warmpool-swap swap --binary PATH [--state DIR] [--json]
  warmpool-swap rollback [--state DIR] [--json]
  warmpool-swap status [--state DIR] [--json]

  NAME is http, https, status or metrics. Without --listen, the addresses are read from the -c file
  (http.address, http.ssl.address, status.address, metrics.address). A PATH ending in .js/.mjs/.cjs
  runs with this node. --state defaults to ${DEFAULT_STATE} (state.json and control.sock).

exit codes: 0 ok, 1 failed (a swap was rolled back), 2 usage, 3 no supervisor on the control socket, 5 cannot bind
`;

const VALUE_FLAGS = new Set(['--binary', '--listen', '--state', '--ready-timeout', '--settle', '--drain-timeout']);
const SWITCHES = new Set(['--json', '-h', '--help']);

interface Args {
  words: string[];
  values: Map<string, string[]>;
  switches: Set<string>;
  rest: string[];
}

export function parseArgs(argv: readonly string[]): Args {
  const args: Args = { words: [], values: new Map(), switches: new Set(), rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      args.rest = argv.slice(i + 1);
      break;
    }
    if (!arg.startsWith('-')) {
      args.words.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    if (VALUE_FLAGS.has(flag)) {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined || value === '') throw new UsageError(`${flag} needs a value`);
      args.values.set(flag, [...(args.values.get(flag) ?? []), value]);
    } else if (SWITCHES.has(flag) && eq === -1) args.switches.add(flag);
    else throw new UsageError(`unknown flag ${arg}; see warmpool-swap --help`);
  }
  return args;
}

/** "30s", "500ms", "2m", "1500" (ms). */
export function parseDuration(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (m === null) throw new UsageError(`${flag} ${value}: use 500ms, 30s or 2m`);
  const n = Number(m[1]);
  return Math.round(m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n);
}

const one = (args: Args, flag: string): string | undefined => args.values.get(flag)?.at(-1);

export async function main(argv: readonly string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
    if (args.switches.has('-h') || args.switches.has('--help') || args.words.length === 0) {
      process.stdout.write(HELP);
      return args.words.length === 0 && !args.switches.has('-h') && !args.switches.has('--help') ? EXIT_USAGE : EXIT_OK;
    }
    const stateDir = resolve(one(args, '--state') ?? DEFAULT_STATE);
    refuseStartFlags(args);
    switch (args.words[0]) {
      case 'start':
        return await start(args, stateDir);
      case 'swap': {
        const binary = one(args, '--binary');
        if (binary === undefined) throw new UsageError('swap needs --binary PATH');
        return await client(stateDir, { cmd: 'swap', binary: resolve(binary) }, args.switches.has('--json'));
      }
      case 'rollback':
        return await client(stateDir, { cmd: 'rollback' }, args.switches.has('--json'));
      case 'status':
        return await client(stateDir, { cmd: 'status' }, args.switches.has('--json'));
      default:
        throw new UsageError(`unknown command ${args.words[0]}; see warmpool-swap --help`);
    }
  } catch (error) {
    return fail(error);
  }
}

/** Flags only `start` reads: given to another command they did nothing (`swap --settle 0` waited 2 s). */
const START_FLAGS = ['--listen', '--ready-timeout', '--settle', '--drain-timeout'];

function refuseStartFlags(args: Args): void {
  if (args.words[0] === 'start') return;
  const given = START_FLAGS.filter((flag) => args.values.has(flag));
  if (given.length > 0)
    throw new UsageError(
      `${given.join(', ')}: set by \`warmpool-swap start\` for the supervisor's life, not per ${args.words[0]}; restart the supervisor with ${given.length === 1 ? 'it' : 'them'} (systemctl edit warmpool-swap)`,
    );
}

function fail(error: unknown): number {
  const code = (error as SwapError).code;
  process.stderr.write(`✗ ${code === undefined ? '' : `${code}: `}${(error as Error).message ?? String(error)}\n`);
  if (code === 'WP_SWAP_USAGE') return EXIT_USAGE;
  if (code === 'WP_SWAP_UNREACHABLE') return EXIT_UNREACHABLE;
  if (code === 'WP_SWAP_LISTEN_FAILED') return EXIT_LISTEN;
  return EXIT_FAILED;
}

function listenAddresses(args: Args): Map<ListenerName, string> {
  const listen = new Map<ListenerName, string>();
  for (const item of args.values.get('--listen') ?? []) {
    const eq = item.indexOf('=');
    const name = item.slice(0, eq) as ListenerName;
    if (eq === -1 || !LISTENER_NAMES.includes(name))
      throw new UsageError(`--listen ${item}: use NAME=HOST:PORT with NAME one of ${LISTENER_NAMES.join(', ')}`);
    listen.set(name, item.slice(eq + 1));
  }
  if (listen.size > 0) return listen;
  const c = args.rest.findIndex((a) => a === '-c' || a === '--config');
  const eqForm = args.rest.find((a) => a.startsWith('--config='));
  const file =
    c !== -1
      ? args.rest[c + 1]
      : eqForm !== undefined
        ? eqForm.slice('--config='.length)
        : existsSync('warmpool.yaml')
          ? 'warmpool.yaml'
          : '.rr.yaml';
  if (file === undefined || !existsSync(file))
    throw new UsageError(`no --listen flags and no config file ${file ?? ''} to read addresses from`);
  return addressesFromYaml(file);
}

async function start(args: Args, stateDir: string): Promise<number> {
  const binary = one(args, '--binary');
  if (binary === undefined) throw new UsageError('start needs --binary PATH');
  if (args.rest.length === 0)
    throw new UsageError('start needs the server arguments after --, e.g. -- serve -c warmpool.yaml');
  const listen = listenAddresses(args);
  if (!listen.has('status'))
    throw new UsageError(
      'the server needs a status listener (status.address or --listen status=HOST:PORT): warmpool-swap reads /ready to know a new binary is ready',
    );
  const log = (line: string) => process.stdout.write(`${line}\n`);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const socketPath = controlSocket(stateDir);
  if (existsSync(socketPath)) {
    if (await answers(socketPath)) throw new ControlError(`another warmpool-swap answers on ${socketPath}`);
    unlinkSync(socketPath);
  }
  const orchestrator = new SwapOrchestrator({
    binary: resolve(binary),
    args: args.rest,
    listen,
    stateDir,
    readyTimeoutMs: parseDuration(one(args, '--ready-timeout') ?? '30s', '--ready-timeout'),
    drainTimeoutMs: parseDuration(one(args, '--drain-timeout') ?? DEFAULT_DRAIN_TIMEOUT, '--drain-timeout'),
    settleMs: parseDuration(one(args, '--settle') ?? '2s', '--settle'),
    log,
    // read again at each swap, when the addresses come from the config
    currentListen: args.values.has('--listen') ? null : () => listenAddresses(args),
  });
  let resolveExit!: (code: number) => void;
  const exit = new Promise<number>((r) => (resolveExit = r));
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`• ${signal}: forwarding to the server`);
    void orchestrator.shutdown(signal).then(() => resolveExit(EXIT_OK));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // the server's own signals reach it through the supervisor: SIGHUP reloads the active server's
  // config, SIGUSR1 has every server reopen its log files (logrotate). Unhandled, SIGHUP killed the
  // supervisor and left its server unsupervised, and SIGUSR1 opened Node's inspector
  process.on('SIGHUP', () => {
    const active = orchestrator.active;
    log(
      active === undefined
        ? '▲ SIGHUP: no server to reload'
        : `• SIGHUP: forwarding to ${active.colour} pid ${active.pid} (reload)`,
    );
    active?.signal('SIGHUP');
  });
  process.on('SIGUSR1', () => {
    log('• SIGUSR1: forwarding to the servers (reopen log files)');
    orchestrator.signalAll('SIGUSR1');
  });
  orchestrator.onActiveExit = (code) => {
    stopping = true;
    void orchestrator.shutdown('SIGTERM').then(() => resolveExit(code === 0 ? EXIT_FAILED : code));
  };
  log(`• warmpool-swap pid ${process.pid}: ${[...listen].map(([n, a]) => `${n} ${a}`).join(', ')}`);
  await orchestrator.start();
  const control = serveControl(orchestrator, socketPath, log);
  process.on('SIGUSR2', () => {
    let pending: string | undefined;
    try {
      pending = readState(stateDir).pending;
    } catch (error) {
      log(`▲ SIGUSR2: ${(error as Error).message}`);
      return;
    }
    if (pending === undefined) {
      log('▲ SIGUSR2: no "pending" binary in the state file');
      return;
    }
    log(`• SIGUSR2: swapping to ${pending}`);
    orchestrator
      .swap(pending, log)
      .catch((error: unknown) =>
        log(`✗ swap failed, still on ${orchestrator.active?.binary}: ${(error as Error).message}`),
      );
  });
  log(
    `✓ warmpool-swap ready: ${orchestrator.active!.colour} pid ${orchestrator.active!.pid} (${orchestrator.options.binary}); control ${socketPath}`,
  );
  const code = await exit;
  control.close();
  try {
    unlinkSync(socketPath);
  } catch {
    // gone
  }
  return code;
}

function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** The control socket: one JSON request line in; progress lines then one result line out. */
function serveControl(orchestrator: SwapOrchestrator, path: string, log: (line: string) => void) {
  const server = createServer((socket: Socket) => {
    let buffer = '';
    socket.on('error', () => {});
    socket.on('data', (chunk) => {
      buffer += chunk.toString();
      const nl = buffer.indexOf('\n');
      if (nl === -1) return;
      const line = buffer.slice(0, nl);
      buffer = '';
      socket.removeAllListeners('data');
      void handle(line);
    });
    const send = (message: object) => {
      if (!socket.destroyed) socket.write(`${JSON.stringify(message)}\n`);
    };
    const progress = (message: string) => {
      log(message);
      send({ type: 'progress', message });
    };
    async function handle(line: string): Promise<void> {
      let request: { cmd?: string; binary?: string };
      try {
        request = JSON.parse(line) as typeof request;
      } catch {
        send({ type: 'result', ok: false, code: 'WP_SWAP_CONTROL', message: 'malformed request' });
        socket.end();
        return;
      }
      try {
        if (request.cmd === 'status') send({ type: 'result', ok: true, state: orchestrator.state() });
        else if (request.cmd === 'swap' && typeof request.binary === 'string') {
          await orchestrator.swap(request.binary, progress);
          send({ type: 'result', ok: true, state: orchestrator.state() });
        } else if (request.cmd === 'rollback') {
          await orchestrator.rollback(progress);
          send({ type: 'result', ok: true, state: orchestrator.state() });
        } else
          send({
            type: 'result',
            ok: false,
            code: 'WP_SWAP_CONTROL',
            message: `unknown command ${String(request.cmd)}`,
          });
      } catch (error) {
        send({
          type: 'result',
          ok: false,
          code: (error as SwapError).code ?? 'WP_SWAP_CONTROL',
          message: (error as Error).message,
          state: orchestrator.state(),
        });
      }
      socket.end();
    }
  });
  const umask = process.umask(0o177);
  server.listen(path, () => {
    process.umask(umask);
    chmodSync(path, 0o600);
  });
  return server;
}

interface ResultLine {
  type: 'result' | 'progress';
  ok?: boolean;
  code?: string;
  message?: string;
  state?: SwapState;
}

async function client(stateDir: string, request: object, json: boolean): Promise<number> {
  const path = controlSocket(stateDir);
  const socket = createConnection(path);
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', (error) => reject(new UnreachableError(path, error)));
  });
  socket.write(`${JSON.stringify(request)}\n`);
  let buffer = '';
  let result: ResultLine | undefined;
  for await (const chunk of socket) {
    buffer += (chunk as Buffer).toString();
    for (let nl = buffer.indexOf('\n'); nl !== -1; nl = buffer.indexOf('\n')) {
      const message = JSON.parse(buffer.slice(0, nl)) as ResultLine;
      buffer = buffer.slice(nl + 1);
      if (message.type === 'progress') {
        if (!json) process.stdout.write(`${message.message}\n`);
      } else result = message;
    }
  }
  if (result === undefined) throw new ControlError('the supervisor closed the control socket without an answer');
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else if (result.state !== undefined && (request as { cmd: string }).cmd === 'status')
    process.stdout.write(formatStatus(result.state));
  if (!result.ok) {
    process.stderr.write(`✗ ${result.code}: ${result.message}\n`);
    // only a swap that started a new server and gave it up rolled back; a busy supervisor, no
    // previous binary or a stop changed nothing, or everything
    if (result.state?.active && ROLLED_BACK.has(result.code ?? ''))
      process.stderr.write(
        `  rolled back: ${result.state.active.colour} pid ${result.state.active.pid} (${result.state.active.binary}) keeps serving\n` +
          // the probe's outage: a rollback for a broken config left the file broken, and the
          // running server's next crash restarted it from that file, five times, then stopped
          '  it runs the config as it was when it started: a restart (after a crash) reads the file as it is now, so fix or restore it (warmpool config check)\n',
      );
    return EXIT_FAILED;
  }
  return EXIT_OK;
}

function formatStatus(state: SwapState): string {
  const a = state.active;
  const lines = [
    `supervisor pid ${state.supervisorPid}, up ${Math.round((Date.now() - Date.parse(state.startedAt)) / 1000)} s, phase ${state.phase}`,
    a === null
      ? 'active: none'
      : `active: ${a.colour} pid ${a.pid} ${a.binary} (${a.version}), up ${Math.round((Date.now() - Date.parse(a.startedAt)) / 1000)} s`,
    `previous: ${state.previous ?? 'none'}`,
    `children: ${state.children.map((c) => `${c.colour} pid ${c.pid}`).join(', ') || 'none'}`,
    'history:',
    ...(state.history.length === 0
      ? ['  (no swaps)']
      : state.history.map(
          (h) =>
            `  ${h.at} ${h.ok ? '✓' : '✗'} ${h.from} → ${h.to} (${h.ms} ms)${h.reason === undefined ? '' : `: ${h.reason.split('\n')[0]}`}`,
        )),
  ];
  return `${lines.join('\n')}\n`;
}

const invokedAs = process.argv[1];
if (invokedAs !== undefined && import.meta.url === pathToFileURL(realpathSync(invokedAs)).href) {
  process.exitCode = await main(process.argv.slice(2));
}
