// A streamed body PHP gave a Content-Length is held to it, as nginx and RoadRunner (Go) hold an
// upstream: Node sends the header as it is and then whatever bytes come, so a script whose length
// is wrong would have its client (or a proxy sharing the connection) read the rest of its body as
// the next response, or wait for bytes that never come and then read the next response as them.
// Bytes past the length are dropped (the script's output is still read to its end, so its worker
// is free again); a body that ends short fails, which closes the connection. A whole body is held
// to it too (holdWholeToDeclaredLength): Fastify would otherwise replace the length with the
// body's, and a download cut short would reach its client, and the micro-cache, as complete.
import { Readable, Transform, type TransformCallback, pipeline } from 'node:stream';
import type { FastifyReply } from 'fastify';
import { Chunks } from '@warmpool/pool';
import { ShortBodyError } from '../errors.js';

/** The one Content-Length PHP declared; null when there is none; NaN when it is not one number. */
function declaredLength(reply: FastifyReply): number | null {
  const header = reply.getHeader('content-length');
  if (header === undefined) return null;
  const values = Array.isArray(header) ? header : [String(header)];
  const first = values[0]!.trim();
  if (!/^\d{1,15}$/.test(first) || values.some((value) => value.trim() !== first)) return Number.NaN;
  return Number(first);
}

/** A Content-Length that is not one number (two values, "ten") is left out, and said: `goes` how the body goes then. */
function forgetUnreadableLength(reply: FastifyReply, goes: string): void {
  reply.log.warn(
    { contentLength: reply.getHeader('content-length') },
    `PHP sent a Content-Length that is not one number; the body goes ${goes}`,
  );
  reply.removeHeader('content-length');
}

function warnDropped(reply: FastifyReply, declared: number, dropped: number): void {
  reply.log.warn(
    { url: reply.request.url, declared, dropped },
    `PHP sent ${dropped} bytes more than its Content-Length (${declared}); they were dropped: fix the length the script sends`,
  );
}

/** Replies whose body ended short of PHP's length, with the error that said so. */
const cutShort = new WeakMap<FastifyReply, ShortBodyError>();

/** The ShortBodyError of a reply whose body ended short of its declared length, or null. */
export function shortBodyOf(reply: FastifyReply): ShortBodyError | null {
  return cutShort.get(reply) ?? null;
}

class DeclaredLength extends Transform {
  readonly #declared: number;
  #left: number;
  #dropped = 0;
  readonly #reply: FastifyReply;

  constructor(declared: number, reply: FastifyReply) {
    super();
    this.#declared = declared;
    this.#left = declared;
    this.#reply = reply;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (chunk.length <= this.#left) {
      this.#left -= chunk.length;
      callback(null, chunk);
      return;
    }
    const kept = this.#left;
    this.#left = 0;
    this.#dropped += chunk.length - kept;
    callback(null, kept === 0 ? undefined : chunk.subarray(0, kept));
  }

  override _flush(callback: TransformCallback): void {
    if (this.#dropped > 0) warnDropped(this.#reply, this.#declared, this.#dropped);
    if (this.#left === 0) {
      callback();
      return;
    }
    const sent = this.#declared - this.#left;
    this.#reply.log.warn(
      { url: this.#reply.request.url, declared: this.#declared, sent },
      `PHP's body ended after ${sent} of the ${this.#declared} bytes its Content-Length said; the connection was closed: fix the length the script sends`,
    );
    const error = new ShortBodyError(sent, this.#declared);
    // what reaches the error handler may be another error: a compressor's pump says "Premature
    // close" (Node 26) for the stream this one failed
    cutShort.set(this.#reply, error);
    callback(error);
  }
}

/**
 * `body` as the client may get it: held to the Content-Length PHP declared; without that header
 * as it is; with a header that is no single length (two different values, "ten"), without it (a
 * chunked response instead: never two lengths on the wire). Destroying what is returned (the
 * client left) destroys `body`, which cancels the backend's work.
 */
export function holdToDeclaredLength(reply: FastifyReply, body: Readable): Readable {
  const declared = declaredLength(reply);
  if (declared === null || reply.request.method === 'HEAD') return body;
  if (Number.isNaN(declared)) {
    forgetUnreadableLength(reply, 'without it (chunked)');
    return body;
  }
  // pipeline: an error or early close on either side destroys the other
  return pipeline(body, new DeclaredLength(declared, reply), () => {});
}

/**
 * A body the backend sent whole, held to the Content-Length PHP declared, as a streamed one is:
 * longer, it is cut to the length; shorter, it goes as a stream that fails at its end (the
 * connection closed, the HTTP/2 stream reset, as nginx does: the client sees a broken download,
 * and the micro-cache, which keeps only whole bodies, never stores it). Otherwise as it is.
 */
export function holdWholeToDeclaredLength(reply: FastifyReply, body: Buffer | Chunks): Buffer | Chunks | Readable {
  const declared = reply.request.method === 'HEAD' ? null : declaredLength(reply);
  if (declared === null || declared === body.length) return body;
  if (Number.isNaN(declared)) {
    forgetUnreadableLength(reply, 'with its own length');
    return body;
  }
  if (declared > body.length) {
    const parts = Buffer.isBuffer(body) ? [body] : body.parts;
    return holdToDeclaredLength(reply, Readable.from(parts, { objectMode: false }));
  }
  warnDropped(reply, declared, body.length - declared);
  return Buffer.isBuffer(body) ? body.subarray(0, declared) : firstBytes(body, declared);
}

/** The first `length` bytes of `body`, sharing its memory. */
function firstBytes(body: Chunks, length: number): Chunks {
  const parts: Buffer[] = [];
  let left = length;
  for (const part of body.parts) {
    if (left === 0) break;
    const kept = part.length <= left ? part : part.subarray(0, left);
    parts.push(kept);
    left -= kept.length;
  }
  return new Chunks(parts, length);
}
