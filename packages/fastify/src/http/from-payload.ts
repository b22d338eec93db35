import { Readable } from 'node:stream';
import type { FastifyReply } from 'fastify';
import type { ExecReply } from '@warmpool/pool';
import {
  decodeResponseContext,
  frameBodyParts,
  frameContext,
  partsLength,
  STREAM,
  type Frame,
  type HeaderMap,
  type HttpResponseContext,
} from '@warmpool/pool/protocol';
import { BodyParts } from './body-parts.js';
import { BadReplyError } from '../errors.js';

/** Hop-by-hop headers a worker may not set: Node frames the response itself. */
const HOP_BY_HOP = new Set(['transfer-encoding', 'connection', 'keep-alive', 'upgrade']);

// Header values decoded from the worker are Unicode strings; Node writes header strings as latin1.
// Turn non-ASCII text back into its UTF-8 bytes (one char per byte) so the client gets what PHP sent.
function headerValue(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is the point
  return /[^\x00-\x7f]/.test(value) ? Buffer.from(value, 'utf8').toString('latin1') : value;
}

function decodeHead(flags: number, context: Buffer): HttpResponseContext {
  let head: HttpResponseContext;
  try {
    head = decodeResponseContext(flags, context);
  } catch (error) {
    throw new BadReplyError(`worker reply has an undecodable context: ${(error as Error).message}`, { cause: error });
  }
  if (head.status < 100 || head.status > 599)
    throw new BadReplyError(`worker replied with status ${head.status}, outside 100-599`);
  return head;
}

function hintHeaders(headers: HeaderMap): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null);
  for (const name in headers) out[name.toLowerCase()] = headers[name]!.map(headerValue);
  return out;
}

/**
 * Writes a worker reply: status, repeated headers (several Set-Cookie too) and the body. A streamed
 * reply flows with backpressure; 1xx frames go out as informational responses first (103 Early
 * Hints) and their headers do not leak into the final response.
 */
export async function sendReply(reply: FastifyReply, result: ExecReply): Promise<void> {
  let head = decodeHead(result.flags, result.context);
  // a large body stays in the chunks it arrived in (BodyParts); others are one Buffer
  let body: Buffer | readonly Buffer[] = result.bodyParts ?? result.body;
  let frames: AsyncIterator<Frame> | null = result.stream === null ? null : result.stream[Symbol.asyncIterator]();
  while (head.status < 200) {
    if (frames === null) throw new BadReplyError(`worker sent a final reply with informational status ${head.status}`);
    if (head.status === 103) reply.raw.writeEarlyHints(hintHeaders(head.headers));
    const next = await frames.next();
    if (next.done === true) throw new BadReplyError('worker ended the stream after an informational reply');
    const frame = next.value;
    head = decodeHead(frame.flags, frameContext(frame));
    body = frameBodyParts(frame);
    if ((frame.control & STREAM) === 0) {
      // That was the last frame: no body stream follows.
      await frames.return?.();
      frames = null;
    }
  }
  reply.code(head.status);
  for (const name in head.headers) {
    if (HOP_BY_HOP.has(name.toLowerCase())) continue;
    const values = head.headers[name]!;
    reply.header(name, values.length === 1 ? headerValue(values[0]!) : values.map(headerValue));
  }
  if (frames === null) return reply.send(wholeBody(reply, body)) as unknown as Promise<void>;
  return reply.send(Readable.from(streamBodies(body, frames), { objectMode: false })) as unknown as Promise<void>;
}

/**
 * A body PHP sent whole: a Buffer, or BodyParts for one that arrived in chunks. Fastify sets
 * Content-Length and a default Content-Type for a Buffer, not for a stream: BodyParts gets the same.
 */
function wholeBody(reply: FastifyReply, body: Buffer | readonly Buffer[]): Buffer | BodyParts {
  if (Buffer.isBuffer(body)) return body;
  if (body.length === 1) return body[0]!;
  const length = partsLength(body);
  if (reply.request.method !== 'HEAD' || !reply.hasHeader('content-length'))
    reply.header('content-length', String(length));
  if (!reply.hasHeader('content-type')) reply.header('content-type', 'application/octet-stream');
  return new BodyParts(body, length);
}

/** The first body, then each later frame's body (later contexts are ignored: PROTOCOL.md §11.6). */
async function* streamBodies(first: Buffer | readonly Buffer[], frames: AsyncIterator<Frame>): AsyncGenerator<Buffer> {
  try {
    yield* nonEmpty(first);
    for (;;) {
      const next = await frames.next();
      if (next.done === true) return;
      yield* nonEmpty(frameBodyParts(next.value));
    }
  } finally {
    // Consumer went away early: closing the iterator destroys the stream, which cancels it (STOP).
    await frames.return?.();
  }
}

function* nonEmpty(body: Buffer | readonly Buffer[]): Generator<Buffer> {
  if (Buffer.isBuffer(body)) {
    if (body.length > 0) yield body;
    return;
  }
  for (const part of body) if (part.length > 0) yield part;
}
