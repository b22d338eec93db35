import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Chunks, FileBody, JOIN_MAX_BYTES } from '@warmpool/pool';
import { errorCodes, type FastifyRequest } from 'fastify';
import { SpoolFailedError } from '../errors.js';
import { bodyTooLarge } from '../limits.js';
import { HeldBytes } from './held-bytes.js';
import { openUnlinked, writeAll } from './spooled-body.js';

/** The bound on request bodies held in memory while they arrive, over the whole process. */
export const DEFAULT_REQUEST_BODY_MEMORY_BYTES = 64 * 1024 * 1024;

/**
 * One bound, over the whole process, on the bytes of request bodies held in memory, from their
 * first byte until their request is done (a worker has had them and the response went out). A
 * worker gets its body in one frame, so a body is read whole first: clients that send most of a
 * large body and then stall held it all in memory until request_timeout (100 HTTP/2 streams of
 * 30 MB took the server from 85 MB to 3.2 GB), and finished bodies waiting for a busy worker were
 * held whole too (ten queued 100 MB uploads: 1.1 GB), where nginx keeps such bodies in
 * client_body_temp_path. Past the bound, a body goes on in an unlinked temp file, and reaches the
 * worker from there in pieces (FileBody), never read back whole.
 */
export class RequestBodyMemory extends HeldBytes {
  constructor() {
    super(DEFAULT_REQUEST_BODY_MEMORY_BYTES);
  }

  /** Whether `bytes` more would pass the bound (a body past SMALL_BODY_BYTES then goes to a file). */
  wouldPass(bytes: number): boolean {
    return this.heldBytes + bytes > this.maxBytes;
  }

  metrics(): string {
    return this.metricLines(
      [
        'warmpool_request_body_memory_bytes',
        'Bytes of request bodies held in memory, arriving or waiting for PHP (those over 16 KiB until their response).',
      ],
      null,
      [
        'warmpool_request_bodies_filed_total',
        'Request bodies that went to a temp file because the bound was reached while they came.',
      ],
    );
  }
}

/** A body this small always stays in memory (a socket's own buffers hold as much). */
export const SMALL_BODY_BYTES = 16 * 1024;

/** The process's one bound (one Node thread, every site). */
export const requestBodyMemory = new RequestBodyMemory();

/** What a request holds until it is done: bytes counted in requestBodyMemory, or its body's temp file. */
const heldBodies = new WeakMap<object, number | FileBody>();

/**
 * Lets go of what the request's body held (its bytes in requestBodyMemory, its temp file): call
 * it when the request is done (its response sent, or its client gone). Idempotent.
 */
export function releaseRequestBody(request: object): void {
  const held = heldBodies.get(request);
  if (held === undefined) return;
  heldBodies.delete(request);
  if (typeof held === 'number') requestBodyMemory.free(held);
  else held.dispose();
}

/**
 * The '*' content-type parser (a request body as the plugin forwards it: one Buffer, over 64 KiB
 * its chunks in order as Chunks, or past requestBodyMemory's bound a FileBody): reads the body as
 * Fastify's `parseAs: 'buffer'` does (same limit and Content-Length checks, same errors), but does
 * not join a large body. It goes to PHP as it arrived, in one writev after the frame head: joining
 * 1 MiB cost a copy into fresh memory and doubled the external memory V8 collects, for bytes that
 * are only written to a pipe again. A body over SMALL_BODY_BYTES stays counted in the bound until
 * releaseRequestBody(request); past the bound it goes on in a temp file in `dir`.
 * `whole`: the bytes are wanted now, and let go of at once (a form parsed here): a body that went
 * to a file is read back, and nothing stays counted.
 */
export function readRawBody(
  request: FastifyRequest,
  payload: Readable,
  limit: number,
  done: (error: Error | null, body?: Buffer | Chunks | FileBody) => void,
  dir: string,
  whole = false,
): void {
  const contentLength = Number(request.headers['content-length']);
  if (contentLength > limit) {
    done(bodyTooLarge(limit));
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  /** bytes of `chunks` counted in requestBodyMemory */
  let held = 0;
  let file: FileHandle | null = null;
  /** the writes to the file, in order; the payload is paused while one runs */
  let writing: Promise<void> | null = null;
  let settled = false;
  const stop = (): void => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onEnd);
    payload.removeListener('close', onClose);
  };
  const settle = (error: Error | null, body?: Buffer | Chunks | FileBody): void => {
    if (settled) return;
    settled = true;
    stop();
    // a body in memory over SMALL_BODY_BYTES stays counted until its request is done
    if (error === null && !whole && held > SMALL_BODY_BYTES && body !== undefined && !(body instanceof FileBody)) {
      releaseRequestBody(request);
      heldBodies.set(request, held);
    } else requestBodyMemory.free(held);
    held = 0;
    done(error, body);
  };
  function onData(chunk: Buffer | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    received += bytes.length;
    if (received > limit) {
      fail(bodyTooLarge(limit));
      return;
    }
    if (file === null && writing === null) {
      if (received <= SMALL_BODY_BYTES || !requestBodyMemory.wouldPass(bytes.length)) {
        chunks.push(bytes);
        held += bytes.length;
        requestBodyMemory.hold(bytes.length);
        return;
      }
      requestBodyMemory.countFiled();
    }
    toFile(bytes);
  }
  function toFile(bytes: Buffer): void {
    payload.pause();
    writing = (writing ?? Promise.resolve()).then(async () => {
      if (settled) return;
      if (file === null) {
        file = await openUnlinked(dir);
        for (const earlier of chunks.splice(0)) await writeAll(file, earlier);
        requestBodyMemory.free(held);
        held = 0;
      }
      await writeAll(file, bytes);
      if (!settled) payload.resume();
    });
    // the disk's failure (full, not writable), not the client's: a 500 with a line saying where
    // (before: a 400 with the errno in Fastify's JSON, and no line)
    writing.catch((error: Error) => fail(new SpoolFailedError(dir, error)));
  }
  function fail(error: Error & { statusCode?: number }): void {
    if (!(typeof error.statusCode === 'number' && error.statusCode >= 400)) error.statusCode = 400;
    closeFile();
    settle(error);
  }
  function closeFile(): void {
    const closing = writing ?? Promise.resolve();
    void closing.then(
      () => file?.close(),
      () => file?.close(),
    );
  }
  function onEnd(error?: Error & { statusCode?: number }): void {
    stop();
    if (error != null) {
      fail(error);
      return;
    }
    if (!Number.isNaN(contentLength) && received !== contentLength) {
      closeFile();
      settle(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      return;
    }
    if (writing !== null) {
      writing.then(
        () => {
          if (settled) return;
          if (whole) {
            readBack(file!, received).then(
              (body) => {
                closeFile();
                settle(null, body);
              },
              (readError: Error) => fail(readError),
            );
            return;
          }
          // it all came: it stays in its file, which closes when the request is done
          const body = new FileBody(file!, received);
          releaseRequestBody(request);
          heldBodies.set(request, body);
          settle(null, body);
        },
        (writeError: Error) => fail(writeError),
      );
      return;
    }
    if (chunks.length === 1) settle(null, chunks[0]);
    else settle(null, received <= JOIN_MAX_BYTES ? Buffer.concat(chunks, received) : new Chunks(chunks, received));
  }
  function onClose(): void {
    // the client left before its body ended ('end' comes before 'close' otherwise)
    if (!payload.readableEnded) fail(new Error('the client left before its request body ended'));
  }
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onEnd);
  payload.on('close', onClose);
  payload.resume();
}

/** A filed form body read back whole (a urlencoded form, at most 10 MB, parsed at once). */
async function readBack(file: FileHandle, length: number): Promise<Buffer> {
  const body = Buffer.allocUnsafe(length);
  for (let at = 0; at < length; ) {
    const { bytesRead } = await file.read(body, at, length - at, at);
    if (bytesRead === 0) throw new Error('the request body temp file ended early');
    at += bytesRead;
  }
  return body;
}
