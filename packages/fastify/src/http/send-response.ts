// An exchange response → the Fastify reply: status, repeated headers (several Set-Cookie) and the
// body, whole or streamed. No wire protocol here: the pool decoded the backend's reply.
import type { ServerResponse } from 'node:http';
import { type Http2ServerResponse, constants as http2 } from 'node:http2';
import type { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import {
  Chunks,
  type ExchangeResponse,
  type HeaderMap,
  headerWireValue,
  isEventStream,
  isUnbuffered,
} from '@warmpool/pool';
import { BODY_MEMORY_BYTES, BodyParts } from './body-parts.js';
import { REPLY_HOP_HEADERS } from './connection-headers.js';
import { noteAccelExpires, noteUnbuffered } from './unbuffered.js';
import { holdToDeclaredLength, holdWholeToDeclaredLength } from './declared-length.js';
import { SMALL_REPLY_BYTES, responseMemory } from './response-memory.js';
import { unsentBytes } from './unsent-bytes.js';
import { SpooledReply } from './spooled-reply.js';
import { keepReasonPhrase } from './reason-phrase.js';
import { forbidsContent, impliedContentType, isEmptyBody } from './content-type.js';

/**
 * Headers only the server reads: X-Accel-*, and the hand-overs (followed before this when
 * internal_files is set; else dropped, as they name private paths nginx never passes on).
 */
const SENT_TO_SERVER_ONLY = new Set([
  'x-accel-buffering',
  'x-accel-charset',
  'x-accel-limit-rate',
  'x-accel-expires',
  'x-accel-redirect',
  'x-sendfile',
]);
/** The sites (their Fastify instance) told once that PHP hands files over with no internal_files. */
const toldOfHandoff = new WeakSet<object>();

/**
 * 1xx headers for writeEarlyHints (103): lower-case names, UTF-8 values as PHP sent them; none of
 * the connection's (HTTP/2 refused the hint: the request became a 500) nor a body's framing.
 */
export function hintHeaders(headers: HeaderMap): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null);
  for (const name in headers) {
    const lower = name.toLowerCase();
    if (!REPLY_HOP_HEADERS.has(lower) && lower !== 'content-length') out[lower] = headers[name]!.map(headerWireValue);
  }
  return out;
}

/**
 * Writes an exchange response. A whole body is sent as one Buffer (or BodyParts, its chunks in one
 * writev); a stream flows with backpressure, held to the Content-Length PHP declared, and,
 * destroyed early (the client left), cancels the backend's work.
 */
export function sendResponse(reply: FastifyReply, response: ExchangeResponse): FastifyReply {
  // a recycled body's memory goes back once the response is over: written, or the client gone
  if (response.release !== undefined) reply.raw.once('close', response.release);
  reply.code(response.status);
  if (response.statusText !== undefined) keepReasonPhrase(reply, response.status, response.statusText);
  const { headers } = response;
  for (const name in headers) {
    const lower = name.toLowerCase();
    if (REPLY_HOP_HEADERS.has(lower)) continue;
    const values = headers[name]!;
    // the server's instructions, as nginx drops them: X-Accel-Buffering: no is kept on the reply
    if (SENT_TO_SERVER_ONLY.has(lower)) {
      if (lower === 'x-accel-buffering') noteUnbuffered(reply, values);
      // the micro-cache's to read; with none, it reached the client (before)
      else if (lower === 'x-accel-expires') noteAccelExpires(reply, values);
      else if ((lower === 'x-accel-redirect' || lower === 'x-sendfile') && !toldOfHandoff.has(reply.server)) {
        toldOfHandoff.add(reply.server);
        reply.log.warn(
          { header: lower, value: values[0] },
          `warmpool: PHP sent ${lower === 'x-accel-redirect' ? 'X-Accel-Redirect' : 'X-Sendfile'}: ${values[0]}, but http.internal_files is not set: the header was dropped and PHP's own body sent (an empty download, likely). Set http.internal_files to the folder it names (said once)`,
        );
      }
      continue;
    }
    if (lower === 'content-type') {
      // one type: the last PHP sent, as nginx takes it (two would make the body a download); an
      // empty one (header('Content-Type:'), PHP's "no type") is none, and the body's is sniffed
      const type = values[values.length - 1]!;
      if (type.trim() !== '') reply.header(name, headerWireValue(type));
      continue;
    }
    reply.header(name, values.length === 1 ? headerWireValue(values[0]!) : values.map(headerWireValue));
  }
  const { body } = response;
  // content headers as RoadRunner (Go) sends them: none on 204/304, a sniffed type when PHP set none
  if (forbidsContent(response.status)) {
    reply.removeHeader('content-type').removeHeader('content-length');
    if (!Buffer.isBuffer(body) && !(body instanceof Chunks)) (body as Readable).destroy();
    return reply.send();
  }
  if (Buffer.isBuffer(body) || body instanceof Chunks) {
    const bytes = Buffer.isBuffer(body) ? body : body.parts;
    const sniffed = impliedContentType(response.status, (name) => reply.hasHeader(name), bytes);
    if (sniffed !== null) reply.header('content-type', sniffed);
    else if (isEmptyBody(bytes) && !reply.hasHeader('content-type')) return reply.send(); // not octet-stream
    // PHP sends no body for HEAD: a Content-Length of 0 would misstate the GET's length (nginx sends none)
    if (reply.request.method === 'HEAD' && !reply.hasHeader('content-length') && isEmptyBody(bytes)) {
      return reply.send();
    }
  }
  if (Buffer.isBuffer(body) || body instanceof Chunks) {
    const held = holdWholeToDeclaredLength(reply, body);
    if (Buffer.isBuffer(held) || held instanceof Chunks) return sendWhole(reply, held, response.release);
    return reply.send(resetOnError(reply, held));
  }
  const streamed = body as Readable;
  // a HEAD's answer is its head: a stream behind it (an event stream that never ends) kept the
  // answer, and PHP, until it ended; nginx answers and lets PHP go at its next write. Destroyed,
  // the stream cancels the backend's work, as a client leaving does
  if (reply.request.method === 'HEAD') {
    streamed.destroy();
    return reply.send();
  }
  const onPurpose = repliesAsItComes(headers);
  if (onPurpose) sendHeadAtOnce(reply.raw);
  logSilenceCut(reply, streamed);
  const paced = onPurpose ? streamed : new SpooledReply(streamed);
  return reply.send(resetOnError(reply, holdToDeclaredLength(reply, paced)));
}

/**
 * A reply php-fpm stopped sending for the read timeout (exec_ttl with fastcgi.pass) after its head
 * is cut, and says so, as nginx logs "upstream timed out while reading upstream": managed php-cgi
 * and workers are killed with a line of their own, and this one had none.
 */
function logSilenceCut(reply: FastifyReply, body: Readable): void {
  body.once('error', (error: Error & { code?: string }) => {
    if (error.code !== 'WP_FASTCGI_READ_TIMEOUT' || !reply.raw.headersSent) return;
    reply.log.error(
      { err: { code: error.code, message: error.message }, url: reply.request.url },
      `PHP reply cut after its head: ${error.message} (exec_ttl: a stream sends something, a comment line of server-sent events, more often, or exec_ttl is raised)`,
    );
  });
}

/**
 * A reply streamed on purpose has its head sent as its body starts to flow, not with its first
 * byte: a browser's EventSource opens then, and a long poll shows its answer began (nginx sends the
 * head at once too). Fastify only sets the headers and lets the first write carry them.
 */
export function sendHeadAtOnce(raw: ServerResponse | Http2ServerResponse): void {
  const response = raw as ServerResponse;
  response.once('pipe', () => {
    if (!response.headersSent) response.flushHeaders();
  });
}

/**
 * A body the backend sent whole. A large one goes as BodyParts: it is sent at the client's pace,
 * and spilled to a temp file for a slow one. It counts against the process's bound on reply bytes
 * held for slow clients (response-memory.ts) until its response closes, unless the socket took it
 * at once; past the bound, it goes to a temp file first and is sent from there (counted only if
 * there is no temp file: its few milliseconds on the way to the disk wait for no client).
 */
function sendWhole(reply: FastifyReply, body: Buffer | Chunks, release: (() => void) | undefined): FastifyReply {
  const length = body.length;
  if (length <= SMALL_REPLY_BYTES) return reply.send(Buffer.isBuffer(body) ? body : chunksBody(reply, body));
  const memory = responseMemory;
  if (memory.fileFirst(length)) {
    memory.countFiled();
    const filed = chunksBody(reply, Buffer.isBuffer(body) ? new Chunks([body]) : body, true);
    // nothing was written from its memory: a recycled body's goes back once it is on disk
    if (release !== undefined) filed.once('spill', release);
    let kept = 0;
    filed.once('kept', () => {
      kept = length;
      memory.hold(kept);
    });
    reply.raw.once('close', () => memory.free(kept));
    return reply.send(filed);
  }
  let parts: BodyParts | null = null;
  let payload: Buffer | BodyParts;
  if (Buffer.isBuffer(body) && length <= BODY_MEMORY_BYTES) {
    payload = body;
  } else {
    payload = parts = chunksBody(reply, Buffer.isBuffer(body) ? new Chunks([body]) : body);
  }
  memory.hold(length);
  reply.send(payload);
  const raw = reply.raw;
  if (sentAtOnce(raw)) {
    memory.free(length);
    return reply;
  }
  let held = length;
  parts?.on('spill', (bytes: number) => {
    const moved = Math.min(bytes, held);
    memory.free(moved);
    held -= moved;
  });
  raw.once('close', () => {
    memory.free(held);
    held = 0;
  });
  return reply;
}

/**
 * The whole response was written, and an HTTP/1.1 socket took all of it at once: nothing waits
 * for the client. An HTTP/2 stream always waits for its session's next write.
 */
function sentAtOnce(raw: FastifyReply['raw']): boolean {
  if (!raw.writableEnded || 'stream' in raw) return false;
  const socket = raw.socket;
  return socket !== null && unsentBytes(socket) === 0;
}

/**
 * A reply the backend streams on purpose goes at the client's pace, as it comes (nginx's
 * `X-Accel-Buffering: no`, and server-sent events); any other streamed reply is spooled
 * (SpooledReply), so a slow client holds a temp file, not the worker.
 */
function repliesAsItComes(headers: HeaderMap): boolean {
  for (const name in headers) {
    const lower = name.toLowerCase();
    if (lower === 'x-accel-buffering' && isUnbuffered(headers[name]![0])) return true;
    if (lower === 'content-type' && isEventStream(headers[name]![0])) return true;
  }
  return false;
}

/**
 * A streamed body that fails after its head was sent (a worker that died, a body short of its
 * Content-Length) resets its HTTP/2 stream as broken (INTERNAL_ERROR, as nginx does): Fastify's
 * destroy resets it with NO_ERROR, which a client takes for the end of a whole body. HTTP/1.1
 * needs nothing: Fastify closes the connection, and a chunked body then lacks its last chunk.
 */
export function resetOnError(reply: FastifyReply, body: Readable): Readable {
  const stream = (reply.raw as unknown as Partial<Http2ServerResponse>).stream;
  // before its head went out, it is answered with the backend's error status instead (error-pages.ts)
  if (stream !== undefined)
    body.once('error', () => {
      if (reply.raw.headersSent) stream.close(http2.NGHTTP2_INTERNAL_ERROR);
    });
  return body;
}

/**
 * A body the backend sent whole that arrived in chunks. Fastify sets Content-Length and a default
 * Content-Type for a Buffer, not for a stream: BodyParts gets the same.
 */
function chunksBody(reply: FastifyReply, body: Chunks, toFile = false): BodyParts {
  if (reply.request.method !== 'HEAD' || !reply.hasHeader('content-length')) {
    reply.header('content-length', String(body.length));
  }
  if (!reply.hasHeader('content-type')) reply.header('content-type', 'application/octet-stream');
  return new BodyParts(body, { toFile });
}
