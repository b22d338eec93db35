// HTTP/2 request bodies: what Node and Fastify do for an HTTP/1.1 body and not for a stream's.
// - Node applies requestTimeout to HTTP/1.1 connections only: a client could send an HTTP/2 body a
//   byte at a time for as long as it liked (measured: 21 s of trickle against a 2 s
//   request_timeout, answered 200).
// - A stream answered before its body is all in is left half-open, and Node reads on (measured:
//   4.9 MB taken after a 1 MB limit's 413); HTTP/1.1 closes the connection instead.
// - Fastify reads no body that has neither Content-Type nor a length, which an HTTP/2 body needs
//   none of (curl --http2 -T - sends neither): PHP got an empty body.
import { constants as http2Constants, type Http2ServerRequest, type ServerHttp2Stream } from 'node:http2';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { RequestTimeoutError } from '../errors.js';

/** request_timeout for HTTP/2 streams when unset: Node's requestTimeout for HTTP/1.1 (300 s). */
export const DEFAULT_STREAM_REQUEST_TIMEOUT_MS = 300_000;

/**
 * One HTTP/2 request with a body:
 * - answered before all of it came, once something had started reading it (413 past
 *   max_request_size, 408 below): RST_STREAM NO_ERROR once the answer is written (RFC 9113 8.1: the
 *   client is to stop sending). A stream answered before anything read its body (a 403 from an
 *   access rule, a 413 from its Content-Length) Node resets itself;
 * - still arriving `timeoutMs` after its head (request_timeout): 408 when nothing has been answered
 *   yet, else RST_STREAM CANCEL at once;
 * - sent with neither Content-Type nor Content-Length: read all the same.
 * A request with no body costs nothing here; the timer ends with the stream. limits.ts calls it
 * for every HTTP/2 request it lets through: one answered earlier, with its body unread (a 403, a
 * 413 from Content-Length, a 431), Node resets itself.
 */
export function guardStreamBody(request: FastifyRequest, reply: FastifyReply, timeoutMs: number): void {
  const stream = (request.raw as unknown as Http2ServerRequest).stream;
  if (stream.endAfterHeaders) return;
  // marked chunked for Fastify only: what PHP gets comes from rawHeaders, and its length from the body read
  const headers = request.raw.headers;
  if (
    headers['content-type'] === undefined &&
    headers['content-length'] === undefined &&
    request.method !== 'GET' &&
    request.method !== 'HEAD'
  )
    headers['transfer-encoding'] = 'chunked';
  stream.once('finish', () => {
    if (!stream.closed && !bodyReceived(stream)) stream.close(http2Constants.NGHTTP2_NO_ERROR);
  });
  if (timeoutMs === 0) return;
  const timer = setTimeout(() => {
    if (stream.closed || bodyReceived(stream)) return;
    request.log.info({ timeoutMs }, 'warmpool: HTTP/2 request body not received within request_timeout; 408');
    if (reply.sent) stream.close(http2Constants.NGHTTP2_CANCEL);
    else reply.code(408).send(new RequestTimeoutError(timeoutMs));
  }, timeoutMs);
  stream.once('close', () => clearTimeout(timer));
}

/** The client has sent END_STREAM (a destroyed stream's state is empty: nothing more will come either). */
function bodyReceived(stream: ServerHttp2Stream): boolean {
  return stream.state.remoteClose !== 0;
}
