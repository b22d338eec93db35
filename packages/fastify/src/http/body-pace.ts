// body_timeout, nginx's client_body_timeout: a client that stops sending its request body. Before
// it only request_timeout (the whole request; off by default in `serve` now, as nginx has none)
// cut it, after 300 s. The clock runs between two pieces of the body, and only
// while we are ready to read: a body our side is not reading (its buffer full because PHP, the
// temp file or the upstream is slow) is ours to wait for, not the client's, as nginx times only
// "a period between two successive read operations".
import type { IncomingMessage } from 'node:http';
import { constants as http2Constants, type Http2ServerRequest } from 'node:http2';
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { BodyTimeoutError } from '../errors.js';

/** http.body_timeout when unset: nginx's client_body_timeout. */
export const DEFAULT_BODY_TIMEOUT_MS = 60_000;

type Push = Readable['push'];

/** Requests whose body body_timeout ended after their 408: their readers' failure is no news. */
const cutBodies = new WeakSet<object>();

/**
 * The body of this request was ended by body_timeout, its 408 sent: a body parser that fails on
 * it calls no `done` (Fastify would try a second answer, and warn "Reply was already sent").
 */
export function bodyWasCut(raw: object): boolean {
  return cutBodies.has(raw);
}

/**
 * Cuts `request` once its client has sent nothing of a body still to come for `timeoutMs` while we
 * were ready to read: 408 when nothing has been answered yet (an HTTP/1.1 connection is then closed,
 * lingering), else the HTTP/2 stream is reset or the HTTP/1.1 connection closed. A request with no
 * body, or one already all in, costs nothing. With `Expect: 100-continue` the clock starts when
 * the body is first read (the client sends nothing before our 100 Continue). 0: no timeout.
 */
export function guardBodyPace(request: FastifyRequest, reply: FastifyReply, timeoutMs: number): void {
  if (timeoutMs === 0) return;
  const raw = request.raw as IncomingMessage | Http2ServerRequest;
  if (!bodyToCome(raw)) return;
  let timer: NodeJS.Timeout | null = null;
  const stalled = (): void => {
    if (raw.destroyed || bodyIn(raw)) return;
    // our side is not reading what came: the wait is ours
    if (notRead(raw)) {
      timer!.refresh();
      return;
    }
    request.log.info({ timeoutMs }, 'warmpool: the client sent nothing of its request body for body_timeout; 408');
    cut(raw, reply, timeoutMs);
  };
  const arm = (): void => {
    timer = setTimeout(stalled, timeoutMs);
  };
  // each piece of the body reaches the request through push(); null is its end
  const push: Push = raw.push;
  raw.push = function pushed(this: Readable, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) {
      raw.push = push;
      if (timer !== null) clearTimeout(timer);
    } else timer?.refresh();
    return push.call(this, chunk, encoding);
  };
  raw.once('close', () => {
    if (timer !== null) clearTimeout(timer);
  });
  if (raw.httpVersionMajor === 1 && /100-continue/i.test(raw.headers.expect ?? '')) {
    // after the lazy 100 Continue (limits.ts), which the first read sends
    const read = raw._read;
    raw._read = function firstRead(this: Readable, size: number): void {
      raw._read = read;
      if (timer === null && !raw.destroyed) arm();
      read.call(this, size);
    };
  } else arm();
}

/**
 * What came is not being read: the request's buffer is full (HTTP/1.1: the socket is paused, and
 * the client's writes wait), or, over HTTP/2, bytes wait in the stream that nobody pulled into the
 * request: a reader would have taken them. There the client waits for our flow control (its 64 KiB
 * window) and was cut at body_timeout while PHP was busy (a probe: 200 KB, 408 after 3 s).
 */
function notRead(raw: IncomingMessage | Http2ServerRequest): boolean {
  if (raw.readableLength >= raw.readableHighWaterMark) return true;
  return 'stream' in raw && raw.stream.readableLength > 0;
}

/** A body is declared and not all received yet. */
function bodyToCome(raw: IncomingMessage | Http2ServerRequest): boolean {
  if ('stream' in raw) return !raw.stream.endAfterHeaders && !bodyIn(raw);
  const length = raw.headers['content-length'];
  if (length === undefined ? raw.headers['transfer-encoding'] === undefined : Number(length) === 0) return false;
  return !raw.complete;
}

function bodyIn(raw: IncomingMessage | Http2ServerRequest): boolean {
  return 'stream' in raw ? raw.stream.state.remoteClose !== 0 || raw.stream.destroyed : raw.complete;
}

function cut(raw: IncomingMessage | Http2ServerRequest, reply: FastifyReply, timeoutMs: number): void {
  const error = new BodyTimeoutError(timeoutMs);
  if (!reply.sent) {
    // HTTP/1.1: what the client still sends is read and dropped until it stops (lingering close);
    // HTTP/2: the stream is reset once the answer is written (http2-bodies.ts)
    if (!('stream' in raw)) reply.header('connection', 'close');
    reply.code(408).send(error);
    // and whoever reads the body (PHP's stdin, an upstream, the temp file) is told it ends here:
    // before, a streamed body's php-fpm child or php-cgi process waited on it for good. HTTP/2: at
    // once, before the stream's reset ends the body as if it were whole (PHP would wait for the
    // rest); HTTP/1.1: once the answer is out, or its reader's failure answers in the 408's place
    if ('stream' in raw) {
      failBody(raw, error);
      return;
    }
    const res = reply.raw;
    const endBody = (): void => {
      res.off('finish', endBody);
      res.off('close', endBody);
      failBody(raw, error);
    };
    res.once('finish', endBody);
    res.once('close', endBody);
  } else if ('stream' in raw) raw.stream.close(http2Constants.NGHTTP2_CANCEL);
  else raw.socket.destroy();
}

/**
 * Ends the request's body with `error` for its readers, leaving the connection to what owns it
 * (the lingering close, the stream's reset): an IncomingMessage destroyed the usual way destroys
 * its socket, which would throw away the answer still on its way.
 */
function failBody(raw: IncomingMessage | Http2ServerRequest, error: Error): void {
  if (raw.destroyed) return;
  cutBodies.add(raw);
  // a body nobody reads yet (its request queued for a busy PHP) has no 'error' listener: the
  // error would be thrown, and the server with it
  raw.on('error', ignoreError);
  (raw as Readable)._destroy = (failure, callback) => callback(failure);
  raw.destroy(error);
}

function ignoreError(): void {}
