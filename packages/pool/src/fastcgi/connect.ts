// Opening a FastCGI connection: dial a unix socket or TCP address within a timeout, and turn each way
// it can fail into the typed error (and status) nginx would answer with: refused or missing 502,
// accept queue full 503, too slow 504. Also GET_VALUES, which php answers on a connection of its own.
import type { CancelSignal } from '../cancel.js';
import { connect } from 'node:net';
import {
  FastCgiAbortedError,
  FastCgiConnectFailedError,
  FastCgiConnectTimeoutError,
  type FastCgiError,
  FastCgiOverloadedError,
} from '../errors.js';
import { type FastCgiAddress, formatFastCgiAddress } from './address.js';
import { DEFAULT_READ_TIMEOUT_MS, FastCgiConnection } from './connection.js';
import { GET_VALUES_NAMES } from './records.js';
import type { LingeringScripts } from './lingering-scripts.js';
import type { ScriptDurations } from './script-durations.js';
import { SocketReads } from './socket-reads.js';

/**
 * What a probe asks with GET_VALUES: a value php answers whatever its SAPI (php-fpm answers only
 * FCGI_MPXS_CONNS). The answer is what counts: php reads it only when a process is free.
 */
export const PROBE_VALUE_NAMES: readonly string[] = ['FCGI_MPXS_CONNS'];

/** Caddy dials for 3 s, nginx for 60 s; a FastCGI server is local or one hop away. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

export interface FastCgiConnectOptions {
  connectTimeoutMs?: number;
  signal?: CancelSignal;
  /** shared by the connections of one backend: how long each script usually runs (pipelining) */
  scriptDurations?: ScriptDurations;
  /** php-fpm's: the scripts that go on after END_REQUEST (fastcgi_finish_request) */
  lingeringScripts?: LingeringScripts;
}

/** Connects, or rejects with a typed error: 502 refused/missing, 503 accept queue full, 504 timed out. */
export function connectFastCgi(
  address: FastCgiAddress,
  options: FastCgiConnectOptions = {},
): Promise<FastCgiConnection> {
  const timeoutMs = options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const where = formatFastCgiAddress(address);
  return new Promise((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(new FastCgiAbortedError(`connecting to ${where} was aborted`, { cause: options.signal.reason }));
      return;
    }
    const reads = new SocketReads();
    const onread = { buffer: reads.buffer, callback: reads.callback };
    const socket =
      address.kind === 'unix'
        ? connect({ path: address.path, onread })
        : connect({ host: address.host, port: address.port, onread });
    const finish = (error: Error | null) => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      options.signal?.removeEventListener('abort', onAbort);
      if (error === null) {
        resolve(
          new FastCgiConnection(
            socket,
            address,
            reads,
            options.scriptDurations ?? null,
            options.lingeringScripts ?? null,
          ),
        );
      } else {
        socket.destroy();
        reject(error);
      }
    };
    const onConnect = () => finish(null);
    const onError = (error: NodeJS.ErrnoException) => finish(connectError(error, where));
    const onAbort = () =>
      finish(new FastCgiAbortedError(`connecting to ${where} was aborted`, { cause: options.signal!.reason }));
    const timer =
      timeoutMs > 0
        ? setTimeout(
            () =>
              finish(
                new FastCgiConnectTimeoutError(`connecting to FastCGI server ${where} took over ${timeoutMs} ms`, {
                  address: where,
                  timeoutMs,
                }),
              ),
            timeoutMs,
          )
        : undefined;
    socket.once('connect', onConnect);
    socket.once('error', onError);
    options.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function connectError(error: NodeJS.ErrnoException, where: string): FastCgiError {
  const details = { address: where, errno: error.code };
  if (error.code === 'EAGAIN') {
    // a unix socket's accept queue is full: every php-fpm child is busy and listen.backlog is used up
    return new FastCgiOverloadedError(
      `FastCGI server ${where} is overloaded: its accept queue is full (EAGAIN); add php-fpm children or raise listen.backlog`,
      { cause: error, details },
    );
  }
  const hint =
    error.code === 'ENOENT'
      ? 'no socket file there: is php-fpm running, and is this its "listen" path?'
      : error.code === 'ECONNREFUSED'
        ? 'nothing accepts connections there: is php-fpm running?'
        : error.code === 'EACCES'
          ? "permission denied: check the socket's listen.owner, listen.group and listen.mode"
          : 'check that the FastCGI server is up and reachable';
  return new FastCgiConnectFailedError(`cannot connect to FastCGI server ${where} (${error.code}): ${hint}`, {
    cause: error,
    details,
  });
}

/**
 * GET_VALUES on a connection of its own (php answers it only as a connection's first record, then
 * closes): FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS as the server reports them (php-cgi:
 * its PHP_FCGI_CHILDREN, or 1, twice and 0; php-fpm answers only FCGI_MPXS_CONNS, 0).
 */
export async function getFastCgiValues(
  address: FastCgiAddress,
  options: FastCgiConnectOptions & { names?: readonly string[]; readTimeoutMs?: number } = {},
): Promise<Record<string, string>> {
  const connection = await connectFastCgi(address, options);
  return connection.getValues(options.names ?? GET_VALUES_NAMES, options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS);
}
