// HTTP/2 sessions whose client is gone while Node still waits for a write. When a client resets
// its connection (killed, a dead browser) while a response's bytes wait in its socket, the TLS
// write fails with ECONNRESET and Node 20 and 22 drop the error (Node 26 notices): no 'error' and
// no 'close' on the socket, the session or its streams, and the session writes nothing more, not a PING, not a
// RST_STREAM, not a GOAWAY (nodejs/node#48539 is its kin). Its responses were held until restart:
// the open file of a download, a spooled PHP reply with its disk, and every drain waited out its
// bound (measured by a probe: 26 interrupted 100 MB downloads held 2.2 GB of deleted spool files,
// and a stop took 60 s). nginx sees the failed write and closes at once.
//
// From outside it shows as: a stream has bytes waiting, the kernel has taken every byte written,
// and no byte more goes out. A live client in that state (a paused download: its windows at zero)
// answers a PING at once, flow control does not hold PINGs back; a dead session never sends it.
// So a session stalled that way gets a PING, and one that has no answer in PING_TIMEOUT_MS is
// destroyed with its TCP socket (destroying the session alone left the socket open).
import type { Http2Session, ServerHttp2Stream } from 'node:http2';
import type { Logger } from 'pino';
import { unsentBytes } from '@warmpool/fastify';
import { ThrottledCount } from '@warmpool/pool';
import { openStreams, tcpOf } from './http2-session-bounds.js';
import { SocketSweep } from './socket-sweep.js';

/** How long a stalled session's PING may go unanswered (Go's http2 server waits 15 s by default). */
export const PING_TIMEOUT_MS = 10_000;
const SWEEP_EVERY_MS = 1000;

interface SessionWatch {
  /** streams not yet closed */
  streams: ReadonlySet<ServerHttp2Stream>;
  /** the TCP socket's bytesWritten at the last sweep */
  written: number;
  /** when the PING in flight was sent; 0: none */
  pingSentAt: number;
  /** when the last PING was answered: a paused download is asked again only after PING_TIMEOUT_MS */
  answeredAt: number;
}

export class DeadSessions {
  readonly #logger: Logger;
  readonly #pingTimeoutMs: number;
  readonly #sessions: SocketSweep<SessionWatch, Http2Session>;
  #closed = 0;
  readonly #warnings = new ThrottledCount((closed) =>
    this.#logger.warn(
      { closed, pingTimeoutMs: this.#pingTimeoutMs },
      `closed ${closed} HTTP/2 connection(s) whose client was gone while a response waited (no answer to a PING in ${this.#pingTimeoutMs / 1000}s)`,
    ),
  );

  constructor(logger: Logger, pingTimeoutMs = PING_TIMEOUT_MS) {
    this.#logger = logger;
    this.#pingTimeoutMs = pingTimeoutMs;
    this.#sessions = new SocketSweep(Math.min(SWEEP_EVERY_MS, pingTimeoutMs), (sessions, now) =>
      this.#sweep(sessions, now),
    );
  }

  /** Every HTTP/2 session of `server` (an HTTPS listener) until it closes. */
  watch(server: { on(event: 'session', listener: (session: Http2Session) => void): unknown }): void {
    server.on('session', (session) => {
      const watch: SessionWatch = { streams: openStreams(session), written: -1, pingSentAt: 0, answeredAt: 0 };
      this.#sessions.add(session, watch);
    });
  }

  /** Sessions destroyed because their client was gone. */
  get closed(): number {
    return this.#closed;
  }

  metrics(): string {
    return [
      '# HELP warmpool_http2_dead_sessions_total HTTP/2 connections closed because their client was gone while a response waited (no answer to a PING; Node had not noticed the reset).',
      '# TYPE warmpool_http2_dead_sessions_total counter',
      `warmpool_http2_dead_sessions_total ${this.#closed}`,
      '',
    ].join('\n');
  }

  #sweep(sessions: Map<Http2Session, SessionWatch>, now: number): void {
    let closed = 0;
    for (const [session, watch] of sessions) {
      const tcp = tcpOf(session);
      if (tcp === null || session.destroyed) continue;
      const written = tcp.bytesWritten;
      const moved = written !== watch.written;
      watch.written = written;
      // bytes went out, or the kernel still holds some (a slow reader: http.send_timeout's), or nothing waits
      if (moved || unsentBytes(tcp) > 0 || !this.#waiting(watch)) continue;
      if (watch.pingSentAt === 0) {
        if (now - watch.answeredAt >= this.#pingTimeoutMs) this.#ping(session, watch, now);
        continue;
      }
      if (now - watch.pingSentAt < this.#pingTimeoutMs) continue;
      this.#sessions.delete(session);
      session.destroy();
      tcp.destroy();
      closed++;
    }
    this.#report(closed);
  }

  #waiting(watch: SessionWatch): boolean {
    for (const stream of watch.streams) if (stream.bufferSize > 0) return true;
    return false;
  }

  #ping(session: Http2Session, watch: SessionWatch, now: number): void {
    watch.pingSentAt = now;
    try {
      // a live client answers in a round trip; the answer (or the session's end) clears the mark
      session.ping(() => {
        watch.pingSentAt = 0;
        watch.answeredAt = Date.now();
      });
    } catch {
      // too many PINGs in flight already (Node allows 10): the mark stays, the timeout judges
    }
  }

  #report(closed: number): void {
    if (closed === 0) return;
    this.#closed += closed;
    this.#warnings.add(closed);
  }
}
