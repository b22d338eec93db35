// The admin socket, CLI side: send one request, pass progress lines on, resolve with the final
// answer. Connection failures become errors that say what to do (start the server, fix the path,
// run as the server's user).
import { readFileSync, statSync } from 'node:fs';
import { createConnection } from 'node:net';
import { isRpcTarget, rpcAdminRequest } from '../rpc/client.js';
import {
  AdminDeniedError,
  AdminRemoteError,
  AdminUnreachableError,
  type AdminCommand,
  type AdminProgressData,
  type AdminRequest,
  type AdminResponseData,
  type AdminResponseLine,
} from './protocol.js';

export interface AdminRequestOptions {
  /** give up after this long without the final line (default: none; `tune` takes its window) */
  timeoutMs?: number;
  /** aborting closes the connection (the command keeps running on the server) */
  signal?: AbortSignal;
}

/** Exit codes the admin commands return (main.ts's table lists them with the others). */
export const EXIT_OK = 0;
/** the server answered with an error, or the command found a problem */
export const EXIT_FAILED = 1;
/** bad arguments */
export const EXIT_USAGE = 2;
/** no server answers on the admin socket */
export const EXIT_UNREACHABLE = 3;
/** the admin socket exists but this user may not use it */
export const EXIT_DENIED = 4;

/** The exit code for an error thrown by adminRequest. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof AdminUnreachableError) return EXIT_UNREACHABLE;
  if (error instanceof AdminDeniedError) return EXIT_DENIED;
  return EXIT_FAILED;
}

/**
 * An admin command's failure: its line on stderr, and with --json its code and message as one JSON
 * line on stdout too (`{"error":{"code":"WP_SERVER_NO_PHP_SITE","message":…}}`), so a script tells
 * one refusal from another without reading the text. Returns the exit code.
 */
export function adminFailure(
  error: unknown,
  out: Pick<Output, 'error'>,
  json: boolean | undefined,
  stdout: { write(text: string): unknown } = process.stdout,
): number {
  const message = (error as Error).message;
  out.error(message);
  if (json === true) {
    const code = (error as { code?: unknown }).code;
    stdout.write(
      `${JSON.stringify({ error: { code: typeof code === 'string' ? code : 'WP_SERVER_ADMIN_FAILED', message } })}\n`,
    );
  }
  return exitCodeOf(error);
}

/**
 * Sends `request` to the server listening on the unix socket `path` and resolves with its `data`.
 * Progress lines go to `onProgress` as they arrive. Rejects with AdminUnreachableError (no server,
 * stale socket, connection lost), AdminDeniedError (permissions) or AdminRemoteError (the server's
 * own error, its WP_ code kept).
 */
export function adminRequest<C extends AdminCommand>(
  path: string,
  request: Extract<AdminRequest, { cmd: C }>,
  onProgress?: (progress: AdminProgressData[C]) => void,
  options: AdminRequestOptions = {},
): Promise<AdminResponseData[C]> {
  // rpc.listen (tcp://… or unix://…): the same request over RoadRunner's RPC (progress comes with the answer)
  if (isRpcTarget(path)) return rpcAdminRequest(path, request, onProgress, { signal: options.signal });
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    socket.setEncoding('utf8');
    let buffer = '';
    let connected = false;
    let settled = false;
    let timer: NodeJS.Timeout | null = null;
    const settle = (error: Error | null, data?: unknown) => {
      if (settled) return;
      settled = true;
      if (timer !== null) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (error === null) resolve(data as AdminResponseData[C]);
      else reject(error);
    };
    const onAbort = () =>
      settle(options.signal?.reason instanceof Error ? options.signal.reason : new Error('admin request aborted'));
    if (options.signal?.aborted === true) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.timeoutMs !== undefined) {
      timer = setTimeout(
        () =>
          settle(
            new AdminUnreachableError(
              `warmpool did not answer "${request.cmd}" within ${options.timeoutMs} ms on its admin socket ${path}`,
              path,
            ),
          ),
        options.timeoutMs,
      );
    }

    socket.once('connect', () => {
      connected = true;
      socket.write(`${JSON.stringify(request)}\n`);
    });
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      for (let newline = buffer.indexOf('\n'); newline >= 0 && !settled; newline = buffer.indexOf('\n')) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.trim() === '') continue;
        let message: AdminResponseLine;
        try {
          message = JSON.parse(line) as AdminResponseLine;
        } catch {
          settle(
            new AdminUnreachableError(
              `${path} answered something that is not warmpool's admin protocol: ${JSON.stringify(line.slice(0, 80))}`,
              path,
            ),
          );
          return;
        }
        if ('progress' in message) onProgress?.(message.progress as unknown as AdminProgressData[C]);
        else if (message.ok) settle(null, message.data);
        else settle(new AdminRemoteError(message.error));
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => settle(connectError(path, error, connected)));
    socket.on('close', () =>
      settle(
        new AdminUnreachableError(
          `warmpool closed its admin socket ${path} before answering "${request.cmd}" (did the server stop?)`,
          path,
        ),
      ),
    );
  });
}

function connectError(path: string, error: NodeJS.ErrnoException, connected: boolean): Error {
  if (connected)
    return new AdminUnreachableError(
      `lost the connection to warmpool's admin socket ${path}: ${error.message}`,
      path,
      error,
    );
  switch (error.code) {
    case 'ENOENT':
      return new AdminUnreachableError(
        `is warmpool running? no admin socket at ${path} (a server makes it at its config's admin.socket): start warmpool, or pass -c FILE or --socket PATH to reach another server`,
        path,
        error,
      );
    case 'ECONNREFUSED':
      // connect(2) refuses a path that is a file, not a socket, the same way
      if (!isSocketPath(path))
        return new AdminUnreachableError(
          `${path} is not a socket (a file): check admin.socket in warmpool.yaml, or the --socket you passed`,
          path,
          error,
        );
      return new AdminUnreachableError(
        `warmpool is not running: nothing answers on ${path}, a socket left by a server that stopped; start warmpool (or check admin.socket in warmpool.yaml)`,
        path,
        error,
      );
    case 'EACCES':
    case 'EPERM':
      return new AdminDeniedError(
        `permission denied on the admin socket ${path}${ownerOf(path)}: it is mode 0600, so run this command as the user warmpool runs as (e.g. sudo -u <that user> warmpool ...)`,
        path,
        error,
      );
    case 'ENOTSOCK':
      return new AdminUnreachableError(`${path} is not a socket: check admin.socket in warmpool.yaml`, path, error);
    default:
      return new AdminUnreachableError(
        `cannot connect to warmpool's admin socket ${path}: ${error.message}`,
        path,
        error,
      );
  }
}

/** ", owned by www-data (uid 33)" when the owner can be found; best effort. */
function ownerOf(path: string): string {
  try {
    const { uid } = statSync(path);
    const passwd = readFileSync('/etc/passwd', 'utf8');
    const name = passwd
      .split('\n')
      .find((line) => line.split(':')[2] === String(uid))
      ?.split(':')[0];
    return `, owned by ${name === undefined ? '' : `${name} `}(uid ${uid})`;
  } catch {
    return '';
  }
}

// ---- what the admin commands (commands/reset.ts, workers.ts, tune.ts) take ----
// Minimal shapes until main.ts's argument parser and output.ts exist; those should satisfy them.

/** Parsed command-line arguments the admin commands read. */
export interface AdminCommandArgs {
  /** admin.socket from warmpool.yaml (or --socket), or an rpc.listen address (tcp://…, unix://…) */
  socket: string;
  /** --site NAME: one site of several */
  site?: string;
  /** -i / --interactive: `workers` refreshes every second until Ctrl-C */
  interactive?: boolean;
  /** --json: print the server's data as JSON instead of text */
  json?: boolean;
  /** --window 30s: how long `tune` measures (default 10 s) */
  windowMs?: number;
}

/** The CLI's output style (output.ts): one line per call, a table for rows. */
export interface Output {
  info(message: string): void;
  success(message: string): void;
  error(message: string): void;
  /** rows of cells under `columns` headers; numbers are right-aligned by the implementation if it likes */
  table(rows: readonly (readonly string[])[], columns: readonly string[]): void;
}

/** Process-level things a command uses, injectable for tests. */
export interface RunContext {
  /** where --json and screen clearing go (default process.stdout) */
  stdout?: { isTTY?: boolean; write(text: string): unknown };
  /** stops `workers -i` (default: SIGINT) */
  signal?: AbortSignal;
  /** `workers -i` refresh interval (default 1000 ms) */
  intervalMs?: number;
}

function isSocketPath(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return true; // gone meanwhile: say what was said before
  }
}
