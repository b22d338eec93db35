import { existsSync } from 'node:fs';
import { chown, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { BadHandshakeError, InvalidPoolOptionError, ProtocolError } from '../errors.js';
import { encodePidRequest, parsePidReply } from '../protocol/control.js';
import { FrameDecoder } from '../protocol/decoder.js';
import type { Relay, RelaySpec } from './relay.js';

interface Waiter {
  resolve(relay: Relay): void;
  reject(error: Error): void;
}

/**
 * unix/tcp relay: workers connect back to one listener per pool (as RoadRunner's socket factory).
 * Each connection gets the pid request; the pid in the reply pairs it with the process we spawned.
 */
export class SocketRelayListener {
  readonly #spec: Extract<RelaySpec, { kind: 'unix' | 'tcp' }>;
  readonly #server: Server;
  readonly #waiters = new Map<number, Waiter>();
  /** connections whose pid arrived before anyone waited for it */
  readonly #early = new Map<number, Relay>();
  readonly #sockets = new Set<Socket>();

  constructor(spec: Extract<RelaySpec, { kind: 'unix' | 'tcp' }>) {
    this.#spec = spec;
    this.#server = createServer((socket) => this.#onConnection(socket));
  }

  /**
   * Listens; `owner` (server.user) gets the unix socket, so workers running as that user may
   * connect (made by root, srwxr-xr-x, it refused them). A failure names the relay and what to do.
   */
  async listen(owner: { uid?: number | undefined; gid?: number | undefined } = {}): Promise<void> {
    const spec = this.#spec;
    if (spec.kind === 'unix') await unlink(spec.path).catch(() => {});
    try {
      await new Promise<void>((resolve, reject) => {
        this.#server.once('error', reject);
        const done = () => {
          this.#server.off('error', reject);
          resolve();
        };
        if (spec.kind === 'unix') this.#server.listen(spec.path, done);
        else this.#server.listen(spec.port, spec.host, done);
      });
      if (spec.kind === 'unix' && owner.uid !== undefined) await chown(spec.path, owner.uid, owner.gid ?? -1);
    } catch (error) {
      throw listenError(spec, error as NodeJS.ErrnoException);
    }
    this.#server.unref();
  }

  /** The port actually bound (tcp://host:0 picks one). */
  get port(): number | undefined {
    const address = this.#server.address();
    return address !== null && typeof address === 'object' ? (address as AddressInfo).port : undefined;
  }

  /** Resolves with the relay of the worker whose handshake reports `pid`. */
  accept(pid: number): { relay: Promise<Relay>; cancel(): void } {
    const early = this.#early.get(pid);
    if (early !== undefined) {
      this.#early.delete(pid);
      return { relay: Promise.resolve(early), cancel() {} };
    }
    let waiter!: Waiter;
    const relay = new Promise<Relay>((resolve, reject) => {
      waiter = { resolve, reject };
    });
    this.#waiters.set(pid, waiter);
    return { relay, cancel: () => this.#waiters.delete(pid) };
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    for (const relay of this.#early.values()) relay.close();
    this.#early.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    if (this.#spec.kind === 'unix') await unlink(this.#spec.path).catch(() => {});
  }

  #onConnection(socket: Socket): void {
    this.#sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => {});
    let paired = false;
    const decoder = new FrameDecoder((frame) => {
      if (paired) return;
      paired = true;
      socket.off('data', onData);
      socket.pause();
      let pid: number;
      try {
        pid = parsePidReply(frame);
      } catch {
        socket.destroy();
        return;
      }
      const relay: Relay = {
        input: socket,
        output: socket,
        handshakePid: pid,
        close: () => socket.destroy(),
      };
      const waiter = this.#waiters.get(pid);
      if (waiter === undefined) this.#early.set(pid, relay);
      else {
        this.#waiters.delete(pid);
        waiter.resolve(relay);
      }
    });
    const onData = (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (error) {
        socket.destroy(error instanceof ProtocolError ? error : new BadHandshakeError(String(error)));
      }
    };
    socket.on('data', onData);
    socket.write(encodePidRequest());
  }
}

/** Why the relay's listener could not be made, as the relay option's error. */
function listenError(spec: Extract<RelaySpec, { kind: 'unix' | 'tcp' }>, error: NodeJS.ErrnoException): Error {
  const where = spec.kind === 'unix' ? `unix://${spec.path}` : `tcp://${spec.host}:${spec.port}`;
  let why: string;
  if (spec.kind === 'unix' && !existsSync(dirname(spec.path)))
    // libuv reports a missing folder as EACCES when run as root
    why = `the folder ${dirname(spec.path)} does not exist: create it, or leave relay unset (pipes)`;
  else if (error.code === 'EADDRINUSE')
    why =
      'the address is in use (another program, or a listener of this server: status, metrics, rpc): pick a free one, or leave relay unset (pipes)';
  else if (error.code === 'EACCES' || error.code === 'EPERM')
    why = `permission denied: warmpool's user may not make ${spec.kind === 'unix' ? 'a socket in that folder' : 'that port'}`;
  else why = error.message;
  return new InvalidPoolOptionError('relay', `cannot listen on ${where}: ${why}`, where);
}
