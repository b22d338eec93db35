import type { Readable } from 'node:stream';
import { errorCodes, type FastifyRequest } from 'fastify';
import { bodyTooLarge } from '../limits.js';
import { Chunks, JOIN_MAX_BYTES } from '@warmpool/pool';

/**
 * The '*' content-type parser (a request body as the plugin forwards it: one Buffer, or over
 * 64 KiB its chunks in order, as Chunks): reads the body as Fastify's `parseAs: 'buffer'` does (same limit
 * and Content-Length checks, same errors), but does not join a large body. It goes to PHP as it
 * arrived, in one writev after the frame head: joining 1 MiB cost a copy into fresh memory and
 * doubled the external memory V8 collects, for bytes that are only written to a pipe again.
 */
export function readRawBody(
  request: FastifyRequest,
  payload: Readable,
  limit: number,
  done: (error: Error | null, body?: Buffer | Chunks) => void,
): void {
  const contentLength = Number(request.headers['content-length']);
  if (contentLength > limit) {
    done(bodyTooLarge(limit));
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  const stop = (): void => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onEnd);
  };
  function onData(chunk: Buffer | string): void {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    received += bytes.length;
    if (received > limit) {
      stop();
      done(bodyTooLarge(limit));
      return;
    }
    chunks.push(bytes);
  }
  function onEnd(error?: Error & { statusCode?: number }): void {
    stop();
    if (error != null) {
      if (!(typeof error.statusCode === 'number' && error.statusCode >= 400)) error.statusCode = 400;
      done(error);
      return;
    }
    if (!Number.isNaN(contentLength) && received !== contentLength) {
      done(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      return;
    }
    if (chunks.length === 1) done(null, chunks[0]);
    else done(null, received <= JOIN_MAX_BYTES ? Buffer.concat(chunks, received) : new Chunks(chunks, received));
  }
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onEnd);
  payload.resume();
}
