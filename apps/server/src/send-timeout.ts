// http.send_timeout, nginx's send_timeout: a connection whose client has stopped reading is closed
// once nothing more of it has gone out for that long. Node has no such bound: a client that asks
// for a large file or page and then reads nothing holds the connection, and the open file or the
// reply kept for it, for as long as it likes (measured: still open after 150 s, static file and PHP
// reply alike, over HTTP/1.1 and HTTP/2). One sweep reads, for every TCP connection of the public
// listeners, what waits to be written (Node's buffer, and libuv's queue of what the kernel has not
// taken: for TLS and HTTP/2 that queue is the only place it shows) and how much was written; while
// something waits and nothing moves, nothing goes out. As with nginx, the kernel's send buffer
// takes a slow reader's bytes in bulk, so progress shows when room frees up, not byte by byte.
import type { Server as NetServer, Socket } from 'node:net';
import type { Logger } from 'pino';
import { ThrottledCount } from '@warmpool/pool';
import { SocketSweep } from './socket-sweep.js';

/** What a connection had waiting, and had written, when it last moved (or last had nothing waiting). */
interface Progress {
  pending: number;
  written: number;
  since: number;
}

/** libuv's bytes not yet taken by the kernel (Node's stream handle; not public API, read defensively). */
function queuedInLibuv(socket: Socket): number {
  const handle = (socket as Socket & { _handle?: { writeQueueSize?: unknown } | null })._handle;
  return typeof handle?.writeQueueSize === 'number' ? handle.writeQueueSize : 0;
}

export class SendTimeouts {
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #connections: SocketSweep<Progress>;
  #closed = 0;
  /** one warning at most every 10 s, with the count closed since */
  readonly #warnings = new ThrottledCount();

  /** `timeoutMs` > 0 (0 means no bound: make no SendTimeouts then). */
  constructor(timeoutMs: number, logger: Logger) {
    this.#timeoutMs = timeoutMs;
    this.#logger = logger;
    this.#connections = new SocketSweep(Math.min(1000, Math.max(50, timeoutMs / 4)), (connections, now) =>
      this.#sweep(connections, now),
    );
  }

  /** Every TCP connection `server` accepts (for the HTTPS listener: under TLS, HTTP/1.1 and HTTP/2 alike). */
  watch(server: NetServer): void {
    // an Upgrade served as a plain request comes back through 'connection': add() keeps the first
    server.on('connection', (socket: Socket) => this.#connections.add(socket, { pending: 0, written: 0, since: 0 }));
  }

  /** Connections closed because their client read nothing for send_timeout. */
  get closed(): number {
    return this.#closed;
  }

  metrics(): string {
    return [
      '# HELP warmpool_send_timeouts_total Client connections closed because nothing more could be sent to them for http.send_timeout.',
      '# TYPE warmpool_send_timeouts_total counter',
      `warmpool_send_timeouts_total ${this.#closed}`,
      '',
    ].join('\n');
  }

  #sweep(connections: Map<Socket, Progress>, now: number): void {
    let closed = 0;
    for (const [socket, progress] of connections) {
      const pending = socket.writableLength + queuedInLibuv(socket);
      const written = socket.bytesWritten;
      if (pending === 0 || pending !== progress.pending || written !== progress.written) {
        progress.pending = pending;
        progress.written = written;
        progress.since = now;
      } else if (now - progress.since >= this.#timeoutMs) {
        this.#connections.delete(socket);
        socket.destroy();
        closed++;
      }
    }
    if (closed === 0) return;
    this.#closed += closed;
    const report = this.#warnings.add(closed);
    if (report === 0) return;
    this.#logger.warn(
      { closed: report, sendTimeoutMs: this.#timeoutMs },
      `closed ${report} connection(s) whose client read nothing for ${this.#timeoutMs / 1000}s (http.send_timeout)`,
    );
  }
}
