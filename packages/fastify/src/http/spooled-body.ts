// A classic request's body, read whole before PHP is asked (nginx's fastcgi_request_buffering, on
// by default there too): a client sending its body slowly then holds one of our sockets, never a
// PHP process. Measured before this: one client trickling a POST held a one-process pool, and every
// other request waited behind it (HTTP/1.1 up to request_timeout, HTTP/2 without end). Small
// bodies stay in memory; a larger one goes to a temp file (0600, unlinked at once, so nothing is
// left behind whatever happens) and is read back into STDIN as PHP reads it.
import { randomBytes } from 'node:crypto';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { SpoolFailedError } from '../errors.js';
import { bodyTooLarge } from '../limits.js';

/** A body up to this size is kept in memory (nginx's client_body_buffer_size is 8-16 KB). */
export const SPOOL_MEMORY_BYTES = 64 * 1024;

/** A spooled body read back from its temp file; `byteLength` is PHP's CONTENT_LENGTH. */
export type SpooledFile = Readable & { readonly byteLength: number };

/**
 * Reads `payload` whole, at most `limit` bytes (413 past it: a chunked body's length shows only
 * as it arrives; a Content-Length was checked before): a Buffer, or the temp file it went to.
 * The payload is only listened to, never destroyed: a 413 still reaches the client. The temp file
 * goes to `dir` (http.uploads.dir, where upload files go: os.tmpdir() by default, which is RAM on a
 * tmpfs /tmp; nginx keeps its on disk, in client_body_temp_path).
 */
export function spoolRequestBody(payload: Readable, limit: number, dir: string): Promise<Buffer | SpooledFile> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    let file: FileHandle | null = null;
    /** the writes to the file, in order; the payload is paused while one runs */
    let writing: Promise<void> = Promise.resolve();
    let settled = false;
    const stop = (): void => {
      payload.off('data', onData);
      payload.off('end', onEnd);
      payload.off('error', fail);
      payload.off('close', onClose);
    };
    function fail(error: Error & { statusCode?: number }): void {
      if (settled) return;
      settled = true;
      stop();
      if (!(typeof error.statusCode === 'number' && error.statusCode >= 400)) error.statusCode = 400;
      void writing.then(
        () => file?.close(),
        () => file?.close(),
      );
      reject(error);
    }
    function onData(chunk: Buffer): void {
      received += chunk.length;
      if (received > limit) {
        fail(bodyTooLarge(limit));
        return;
      }
      if (file === null && received <= SPOOL_MEMORY_BYTES) {
        chunks.push(chunk);
        return;
      }
      payload.pause();
      writing = writing.then(async () => {
        try {
          if (file === null) {
            file = await openUnlinked(dir);
            for (const held of chunks.splice(0)) await writeAll(file, held);
          }
          await writeAll(file, chunk);
        } catch (error) {
          throw new SpoolFailedError(dir, error);
        }
        if (!settled) payload.resume();
      });
      writing.catch(fail);
    }
    function onEnd(): void {
      stop();
      writing.then(() => {
        if (settled) return;
        settled = true;
        if (file === null) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
        // closes the file once read to its end, or once destroyed (a body PHP never read: routes.ts)
        else resolve(Object.assign(file.createReadStream({ start: 0 }), { byteLength: received }));
      }, fail);
    }
    function onClose(): void {
      fail(new Error('the client left before its request body ended'));
    }
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', fail);
    payload.on('close', onClose);
    payload.resume();
  });
}

/** A temp file only this process can reach (0600, its name gone at once: nothing is left behind). */
export async function openUnlinked(dir: string): Promise<FileHandle> {
  const path = join(dir, `warmpool-request-${process.pid}-${randomBytes(6).toString('hex')}`);
  const handle = await open(path, 'wx+', 0o600);
  try {
    await unlink(path);
  } catch (error) {
    await handle.close();
    throw error;
  }
  return handle;
}

export async function writeAll(file: FileHandle, bytes: Buffer): Promise<void> {
  for (let written = 0; written < bytes.length; ) {
    written += (await file.write(bytes, written, bytes.length - written)).bytesWritten;
  }
}
