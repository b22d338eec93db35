// The rpc.listen listener: RoadRunner's goridge RPC (rpc/protocol.ts) on tcp or a unix socket, the
// methods of rpc/methods.ts answered from the admin handlers. Calls on one connection run
// concurrently and are answered as they finish, matched by their sequence number, as Go's net/rpc
// server does. JSON and raw bodies are read (roadrunner-php/goridge's JsonCodec is its default);
// gob, msgpack and proto calls are refused with an error frame that says so.
import { lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '@warmpool/pool';
import { FrameDecoder } from '@warmpool/pool/protocol';
import { isExposedRpc, type LoadedConfig, type RpcAddress, type ServerOptions } from '@warmpool/config';
import type { AdminHandlers } from '../admin/server.js';
import { ListenError } from '../errors.js';
import { callMethod, RpcCallError } from './methods.js';
import {
  codecName,
  encodeRpcFrame,
  FLAG_CODEC_JSON,
  FLAG_CODEC_RAW,
  FLAG_ERROR,
  MAX_RPC_FRAME_BYTES,
  readRpcCall,
} from './protocol.js';

export interface RpcServer {
  /** tcp://host:port as bound (the real port when 0 was asked), or unix:///path */
  readonly url: string;
  /** stops listening, ends open connections (a running tune is aborted), removes a unix socket file */
  close(): Promise<void>;
}

/**
 * The warning for an rpc.listen other machines can reach (RoadRunner's advice: never listen on
 * 0.0.0.0 for RPC): anyone who reaches it resets the workers and reads their state.
 */
export function exposedRpcWarning(
  server: Pick<ServerOptions, 'rpc' | 'sites'>,
  loaded: Pick<LoadedConfig, 'positionOf' | 'file'>,
): { key: string; file: string; line: number; col: number; message: string } | null {
  if (server.rpc === null) return null;
  const at = loaded.positionOf('rpc.listen') ?? { file: loaded.file, line: 1, col: 1 };
  const warning = (message: string) => ({ key: 'rpc.listen', file: at.file, line: at.line, col: at.col, message });
  if (isExposedRpc(server.rpc))
    return warning(
      `${server.rpc.url} can be reached from other machines: anyone who reaches it can reset the workers and read their state (never listen on 0.0.0.0 for RPC); use tcp://127.0.0.1:PORT or unix:///path`,
    );
  // one RPC for every site, with no credentials: on loopback, every local user reaches it, so a
  // tenant's PHP reset the other tenants' workers, purged their caches and read their in-flight URLs
  const users = new Set(server.sites.map((site) => site.plugin.pool?.uid ?? 'own'));
  if (server.rpc.kind === 'tcp' && users.size > 1)
    return warning(
      `${server.rpc.url} is one RPC for every site, and PHP here runs as ${users.size} users: any of them (any local user) can reset every site's workers, purge every cache and read the requests in flight; give each tenant a warmpool of its own, or drop rpc for them`,
    );
  return null;
}

/** Methods that change something log at info; the rest (lists, workers) at debug. */
const ACTIONS = new Set(['resetter.Reset', 'warmpool.Command']);
/** warmpool.Command requests that only read (`workers -i` asks every second) */
const READ_ONLY_COMMANDS = new Set(['ping', 'workers', 'stats']);

export async function startRpcServer(address: RpcAddress, handlers: AdminHandlers, logger: Logger): Promise<RpcServer> {
  const sockets = new Set<Socket>();
  const aborter = new AbortController();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    serveConnection(socket, handlers, logger, aborter.signal);
  });
  if (address.kind === 'unix') await claimUnixPath(address.path);
  try {
    await listen(server, address);
  } catch (error) {
    throw new ListenError('rpc', address.url, error);
  }
  const bound = server.address();
  const url =
    address.kind === 'unix' || bound === null || typeof bound === 'string'
      ? address.url
      : `tcp://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  logger.debug({ url }, 'rpc listening');
  let closed: Promise<void> | null = null;
  return {
    url,
    close() {
      closed ??= (async () => {
        aborter.abort(new Error('the RPC listener is closing'));
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const socket of sockets) socket.destroy();
        await done;
        if (address.kind === 'unix') await unlink(address.path).catch(() => {});
      })();
      return closed;
    },
  };
}

function listen(server: Server, address: RpcAddress): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = () => {
      server.off('error', reject);
      resolve();
    };
    if (address.kind === 'tcp') {
      server.listen(address.port, address.host, done);
      return;
    }
    // the socket is born 0600, as the admin socket: only the server's user may reset its workers
    const previous = process.umask(0o177);
    try {
      server.listen(address.path, done);
    } finally {
      process.umask(previous);
    }
  });
}

/** A socket file left by a server that died is removed; a live one is someone else's (EADDRINUSE). */
async function claimUnixPath(path: string): Promise<void> {
  const stat = await lstat(path).catch(() => null);
  if (stat === null || !stat.isSocket()) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!live) await unlink(path).catch(() => {});
}

function serveConnection(socket: Socket, handlers: AdminHandlers, logger: Logger, signal: AbortSignal): void {
  socket.on('error', () => {}); // a client that goes away mid-answer is not the server's problem
  const send = (frame: Buffer) => {
    if (!socket.destroyed && socket.writable) socket.write(frame);
  };
  const decoder = new FrameDecoder(
    (frame) => {
      const call = readRpcCall(frame);
      if (typeof call === 'string') {
        // net/rpc drops a connection whose request header it cannot read
        send(encodeRpcFrame(FLAG_ERROR, frame.options[0] ?? 0, '', call));
        socket.end();
        return false;
      }
      const codec = codecName(call.codec);
      let argument: unknown;
      try {
        argument = decodeArgument(codec, call.body);
      } catch (error) {
        send(encodeRpcFrame(FLAG_ERROR, call.seq, call.method, (error as Error).message));
        return;
      }
      const readOnly =
        !ACTIONS.has(call.method) || READ_ONLY_COMMANDS.has((argument as { cmd?: string } | null)?.cmd ?? '');
      (readOnly ? logger.debug : logger.info).call(logger, { method: call.method }, `rpc: ${call.method}`);
      callMethod(call.method, argument, handlers, signal).then(
        (value) => {
          const flags = codec === 'raw' ? FLAG_CODEC_RAW : FLAG_CODEC_JSON;
          send(encodeRpcFrame(flags, call.seq, call.method, JSON.stringify(value ?? null)));
        },
        (error: unknown) => {
          if (!(error instanceof RpcCallError))
            logger.warn(
              { method: call.method, err: { message: (error as Error)?.message } },
              `rpc: ${call.method} failed`,
            );
          send(encodeRpcFrame(FLAG_ERROR, call.seq, call.method, (error as Error)?.message ?? String(error)));
        },
      );
    },
    { maxFrameBytes: MAX_RPC_FRAME_BYTES },
  );
  socket.on('data', (chunk: Buffer) => {
    try {
      decoder.push(chunk);
    } catch (error) {
      // not goridge frames (an HTTP client, a port scanner): nothing to answer
      logger.debug({ err: { message: (error as Error).message } }, 'rpc: not a goridge frame; connection closed');
      socket.destroy();
    }
  });
}

function decodeArgument(codec: ReturnType<typeof codecName>, body: Buffer): unknown {
  switch (codec) {
    case 'json':
      if (body.length === 0) return undefined;
      try {
        return JSON.parse(body.toString('utf8'));
      } catch {
        throw new Error(`the call's body is not JSON: ${JSON.stringify(body.subarray(0, 80).toString('utf8'))}`);
      }
    case 'raw':
      return body.toString('utf8');
    default:
      throw new Error(
        `the ${codec} codec is not supported by warmpool's RPC; call with JSON (roadrunner-php/goridge's default codec)`,
      );
  }
}
