// How long an HTTP/2 session of the HTTPS listener may live without serving anything, and how it
// ends. Node closes a session only when asked, and its graceful close (GOAWAY, then wait for the
// open streams) never ends for a stream nghttp2 holds but JavaScript never saw:
// - a header block the client starts and never finishes (HEADERS without END_HEADERS, then
//   silence or a CONTINUATION now and then) makes no 'stream', so neither headers_timeout nor
//   request_timeout sees it. A probe held one connection 693 s and, with 990 of them, every fd of a
//   server whose limit was 1,024, with no log line (nginx cuts it at client_header_timeout, 60 s);
// - a client that resets streams in a flood ("rapid reset") gets nghttp2's GOAWAY, after which the
//   session reads and writes nothing, yet Node kept its socket for the 72 s idle timeout.
// So: a session with no open stream for `idleMs` (PINGs and stray frames do not count, as with
// nginx's keepalive_timeout) or with no frame either way for as long (Node's own session timeout:
// it also resets the streams whose client stopped granting window) is closed; a closed one's
// streams go on while frames move; a closed session
// that still has not ended CLOSE_GRACE_MS after its last stream is destroyed with its socket. A
// client that resets more streams than nghttp2's own rate allows is cut at once.
import {
  constants as http2Constants,
  type Http2SecureServer,
  type Http2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { ThrottledCount } from '@warmpool/pool';

/** Fastify's http2SessionTimeout, nginx's keepalive_timeout is 75 s. */
const HTTP2_SESSION_TIMEOUT_MS = 72_000;
/** After GOAWAY with no stream left, how long the client has to close its side. */
const CLOSE_GRACE_MS = 5000;
/** A closed session silent this long has streams stuck on a client that grants no window. */
const STALLED_AFTER_CLOSE_MS = 5000;
/**
 * Resets a client may make: a bucket that refills 33 a second, as nghttp2's own limit (1.57, the
 * CVE-2023-44487 fix), with half its burst of 1,000, so the socket is closed here before nghttp2's
 * GOAWAY leaves it open. No browser cancels 500 streams in a burst.
 */
const RESET_BURST = 500;
const RESETS_PER_SECOND = 33;

/** The TCP socket under a session (session.socket is Node's proxy of the TLS socket). */
export function tcpOf(session: Http2Session): Socket | null {
  const socket = session.socket as (Socket & { _parent?: Socket | null }) | undefined;
  if (socket === undefined) return null;
  return socket._parent ?? socket;
}

/** Ends `session` now: it and its TCP socket (destroying the session alone left the socket open). */
function destroySession(session: Http2Session): void {
  const tcp = tcpOf(session);
  session.destroy();
  tcp?.destroy();
}

/** Resets the client made, as nghttp2 counts them: a bucket refilled over time. */
class ResetBucket {
  #tokens = RESET_BURST;
  #at = Date.now();

  /** One more reset; false once the bucket is empty. */
  take(now: number): boolean {
    this.#tokens = Math.min(RESET_BURST, this.#tokens + ((now - this.#at) * RESETS_PER_SECOND) / 1000);
    this.#at = now;
    this.#tokens -= 1;
    return this.#tokens >= 0;
  }
}

export interface SessionBoundsOptions {
  /** no open stream, or no frame either way, for this long: the session is closed (default 72 s) */
  idleMs?: number;
  /** where a reset flood is reported (one warning line at most every 10 s); none: not reported */
  logger?: Logger;
  /** after GOAWAY with no stream left, how long the client has to close its side (default 5 s) */
  closeGraceMs?: number;
  /** after GOAWAY, how long a silent session's streams may stay stuck before they are cancelled (default 5 s) */
  stalledMs?: number;
}

const openStreamsOf = new WeakMap<Http2Session, ReadonlySet<ServerHttp2Stream>>();
/** each bounded session's close: GOAWAY, then destroyed CLOSE_GRACE_MS after its last stream */
const closers = new WeakMap<Http2Session, () => void>();

/**
 * Closes `session` as the bounds do (the drain's close): GOAWAY, its streams left to finish
 * (cancelled once the session has been silent STALLED_AFTER_CLOSE_MS: their client stopped granting
 * window), and the session destroyed with its socket if it has not ended CLOSE_GRACE_MS after its
 * last stream. A bare session.close() could wait for good: a probe's drain
 * waited its whole 60 s bound on a session with one frame it could never send after a 413.
 */
export function closeSession(session: Http2Session): void {
  const close = closers.get(session);
  if (close !== undefined) close();
  else session.close();
}

/**
 * `session`'s streams not yet closed, kept by one 'stream' listener and one 'close' listener per
 * stream, whoever asks (the bounds here, DeadSessions). A stream has left it by the time any
 * 'close' listener added after the first call runs.
 */
export function openStreams(session: Http2Session): ReadonlySet<ServerHttp2Stream> {
  const known = openStreamsOf.get(session);
  if (known !== undefined) return known;
  const streams = new Set<ServerHttp2Stream>();
  openStreamsOf.set(session, streams);
  session.on('stream', (stream: ServerHttp2Stream) => {
    streams.add(stream);
    stream.once('close', () => streams.delete(stream));
  });
  return streams;
}

/** Bounds every HTTP/2 session of `server` as the header comment says. */
export function boundSessions(server: Http2SecureServer, options: SessionBoundsOptions = {}): void {
  const idleMs = options.idleMs ?? HTTP2_SESSION_TIMEOUT_MS;
  const closeGraceMs = options.closeGraceMs ?? CLOSE_GRACE_MS;
  const stalledMs = options.stalledMs ?? STALLED_AFTER_CLOSE_MS;
  const floods = new ThrottledCount((closed) =>
    options.logger?.warn(
      { closed },
      `closed ${closed} HTTP/2 connection(s) that reset streams faster than ${RESETS_PER_SECOND} a second past a burst of ${RESET_BURST} (rapid reset)`,
    ),
  );
  server.on('session', (session: Http2Session) => {
    // made before this listener's own 'stream' listener: a closed stream has left it when that runs
    const streams = openStreams(session);
    let resets: ResetBucket | null = null;
    let closing = false;
    let grace: NodeJS.Timeout | null = null;

    // once closed, the session gets CLOSE_GRACE_MS after its last stream to end by itself
    const closeWhenEmpty = () => {
      if (streams.size > 0 || grace !== null || session.destroyed) return;
      grace = setTimeout(() => {
        if (!session.destroyed) destroySession(session);
      }, closeGraceMs).unref();
    };
    const close = () => {
      if (closing || session.destroyed) return;
      closing = true;
      session.close();
      // its streams go on (a download in flight at a drain ends whole, as behind nginx), unless
      // the session falls silent: then they are stuck on a client that stopped granting window
      session.setTimeout(Math.min(idleMs, stalledMs));
      closeWhenEmpty();
    };
    // no frame either way for so long: a stream with bytes waiting has a client that stopped
    // granting window, and the session is closed
    const silent = () => {
      for (const stream of streams) if (stream.bufferSize > 0) stream.close(http2Constants.NGHTTP2_CANCEL);
      close();
    };
    closers.set(session, close);
    // one timer, restarted each time the session runs out of streams; firing with a stream open does nothing
    const idle = setTimeout(() => {
      if (streams.size === 0) close();
    }, idleMs).unref();

    session.on('stream', (stream: ServerHttp2Stream) => {
      stream.once('close', () => {
        if ((stream.rstCode ?? 0) !== http2Constants.NGHTTP2_NO_ERROR && !session.destroyed) {
          resets ??= new ResetBucket();
          if (!resets.take(Date.now())) {
            destroySession(session);
            floods.add(1);
            return;
          }
        }
        if (streams.size > 0) return;
        if (closing) closeWhenEmpty();
        else idle.refresh();
      });
    });
    session.setTimeout(idleMs, silent);
    session.once('close', () => {
      clearTimeout(idle);
      if (grace !== null) clearTimeout(grace);
    });
  });
}
