// http.send_timeout, nginx's send_timeout: a connection whose client has stopped reading is closed
// once nothing more of it has gone out for that long. Node has no such bound: a client that asks
// for a large file or page and then reads nothing holds the connection, and the open file or the
// reply kept for it, for as long as it likes (measured: still open after 150 s, static file and PHP
// reply alike, over HTTP/1.1 and HTTP/2). One sweep reads, for every TCP connection of the public
// listeners, what waits to be written (Node's buffer, and libuv's queue of what the kernel has not
// taken: for TLS and HTTP/2 that queue is the only place it shows) and how much was written; while
// something waits and nothing moves, nothing goes out. As with nginx, the kernel's send buffer
// takes a slow reader's bytes in bulk, so progress shows when room frees up, not byte by byte.
//
// An HTTP/2 client can stop reading one stream and keep its connection moving: it leaves the
// stream's flow-control window at zero (from its SETTINGS on), so the stream's bytes wait in
// Node's HTTP/2 layer, not on the socket. Each stream of the HTTPS listener is therefore watched
// the same way, and reset (CANCEL) once nothing of it has gone out for send_timeout: the PHP
// worker streaming it is let go. Before, a few such streams held every worker.
import { type ServerHttp2Stream, constants as http2 } from 'node:http2';
import type { Server as NetServer, Socket } from 'node:net';
import type { Logger } from 'pino';
import { unsentBytes } from '@warmpool/fastify';
import { ThrottledCount } from '@warmpool/pool';
import { tcpOf } from './http2-session-bounds.js';
import { SocketSweep } from './socket-sweep.js';

/**
 * What a connection or stream had waiting, and how far it had moved (a socket's bytes written, a
 * stream's drains), when it last moved or last had nothing waiting.
 */
interface Progress {
  pending: number;
  moved: number;
  since: number;
}

/** A stream's progress, and its drains so far (counted by its 'drain' listener). */
interface StreamProgress extends Progress {
  drains: number;
}

/** The TCP connection under an HTTP/2 stream has bytes of its own waiting for the kernel. */
function connectionBackedUp(stream: ServerHttp2Stream): boolean {
  const tcp = stream.session === undefined ? null : tcpOf(stream.session);
  return tcp !== null && unsentBytes(tcp) > 0;
}

export class SendTimeouts {
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #connections: SocketSweep<Progress>;
  readonly #streams: SocketSweep<StreamProgress, ServerHttp2Stream>;
  #closed = 0;
  /** one warning at most every 10 s, with the count closed since */
  readonly #warnings = new ThrottledCount((closed) =>
    this.#logger.warn(
      { closed, sendTimeoutMs: this.#timeoutMs },
      `closed ${closed} ${this.#what} whose client read nothing for ${this.#timeoutMs / 1000}s (http.send_timeout)`,
    ),
  );
  /** what the last ones closed were, for the summary line */
  #what = 'connection(s)';

  /** `timeoutMs` > 0 (0 means no bound: make no SendTimeouts then). */
  constructor(timeoutMs: number, logger: Logger) {
    this.#timeoutMs = timeoutMs;
    this.#logger = logger;
    const everyMs = Math.min(1000, Math.max(50, timeoutMs / 4));
    this.#connections = new SocketSweep(everyMs, (connections, now) => this.#sweep(connections, now));
    this.#streams = new SocketSweep(everyMs, (streams, now) => this.#sweepStreams(streams, now));
  }

  /**
   * Every TCP connection `server` accepts (for the HTTPS listener: under TLS, HTTP/1.1 and HTTP/2
   * alike), and every HTTP/2 stream.
   */
  watch(server: NetServer): void {
    // an Upgrade served as a plain request comes back through 'connection': add() keeps the first
    server.on('connection', (socket: Socket) => this.#connections.add(socket, { pending: 0, moved: 0, since: 0 }));
    server.on('stream', (stream: ServerHttp2Stream) => {
      const progress: StreamProgress = { pending: 0, moved: 0, since: 0, drains: 0 };
      stream.on('drain', () => progress.drains++);
      this.#streams.add(stream, progress);
    });
  }

  /** Connections closed because their client read nothing for send_timeout. */
  get closed(): number {
    return this.#closed;
  }

  metrics(): string {
    return [
      '# HELP warmpool_send_timeouts_total Client connections (and HTTP/2 streams) closed because nothing more could be sent to them for http.send_timeout.',
      '# TYPE warmpool_send_timeouts_total counter',
      `warmpool_send_timeouts_total ${this.#closed}`,
      '',
    ].join('\n');
  }

  #sweepStreams(streams: Map<ServerHttp2Stream, StreamProgress>, now: number): void {
    let closed = 0;
    for (const [stream, progress] of streams) {
      // A connection that is itself backed up holds every stream's bytes: the connection sweep
      // judges it (and counts it once); a stream cancelled meanwhile was counted a second time,
      // by whichever sweep came first on a busy machine
      if (connectionBackedUp(stream)) continue;
      // written to the stream and not yet sent in a DATA frame (a zero window keeps it there)
      if (this.#stalled(progress, stream.writableLength, progress.drains, now)) {
        this.#streams.delete(stream);
        stream.close(http2.NGHTTP2_CANCEL);
        closed++;
      }
    }
    this.#report(closed, 'HTTP/2 stream(s)');
  }

  #sweep(connections: Map<Socket, Progress>, now: number): void {
    let closed = 0;
    for (const [socket, progress] of connections) {
      if (this.#stalled(progress, unsentBytes(socket), socket.bytesWritten, now)) {
        this.#connections.delete(socket);
        socket.destroy();
        closed++;
      }
    }
    this.#report(closed, 'connection(s)');
  }

  /** Something waits and nothing has moved for send_timeout; else the progress is brought up to now. */
  #stalled(progress: Progress, pending: number, moved: number, now: number): boolean {
    if (pending === 0 || pending !== progress.pending || moved !== progress.moved) {
      progress.pending = pending;
      progress.moved = moved;
      progress.since = now;
      return false;
    }
    return now - progress.since >= this.#timeoutMs;
  }

  #report(closed: number, what: string): void {
    if (closed === 0) return;
    this.#closed += closed;
    this.#what = what;
    this.#warnings.add(closed);
  }
}
