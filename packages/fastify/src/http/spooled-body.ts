// A classic request's body, read whole before PHP is asked (nginx's fastcgi_request_buffering, on
// by default there too): a client sending its body slowly then holds one of our sockets, never a
// PHP process. Measured before this: one client trickling a POST held a one-process pool, and every
// other request waited behind it (HTTP/1.1 up to request_timeout, HTTP/2 without end). Small
// bodies stay in memory; a larger one goes to a temp file (0600, unlinked at once, so nothing is
// left behind whatever happens) and is read back into STDIN as PHP reads it.
import { randomBytes } from 'node:crypto';
import { open, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

/** A body up to this size is kept in memory (nginx's client_body_buffer_size is 8-16 KB). */
export const SPOOL_MEMORY_BYTES = 64 * 1024;

/**
 * Reads `length` bytes of `payload` (its Content-Length, already checked against
 * max_request_size): a Buffer, or a stream of the temp file they were written to.
 */
export async function spoolRequestBody(payload: Readable, length: number): Promise<Buffer | Readable> {
  if (length <= SPOOL_MEMORY_BYTES) {
    const chunks: Buffer[] = [];
    for await (const chunk of payload) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
  const path = join(tmpdir(), `warmpool-request-${process.pid}-${randomBytes(6).toString('hex')}`);
  const handle = await open(path, 'wx+', 0o600);
  try {
    await unlink(path);
    for await (const chunk of payload) {
      const bytes = chunk as Buffer;
      for (let written = 0; written < bytes.length; ) {
        written += (await handle.write(bytes, written, bytes.length - written)).bytesWritten;
      }
    }
  } catch (error) {
    await handle.close();
    throw error;
  }
  // closes the file once read to its end, or once destroyed (a body PHP never read: routes.ts)
  return handle.createReadStream({ start: 0 });
}
