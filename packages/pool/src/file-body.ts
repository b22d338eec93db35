// A request body kept in a temp file rather than in memory: a large body that came while the
// process already held its bound of request bodies in memory (the HTTP side's RequestBodyMemory).
// Its length is known, so a worker's frame head is written first and the file follows it in
// pieces as the pipe takes them: read back whole, ten 100 MB bodies queued behind busy workers took
// the server from 114 MB to 1.1 GB.
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';

/** One read of the file: what a body being sent holds in memory, with the pipe's own buffer. */
export const FILE_BODY_READ_BYTES = 64 * 1024;

export class FileBody {
  /** total bytes */
  readonly length: number;
  readonly #handle: FileHandle;
  /** reads under way (a frame being written, a STDIN stream) */
  #readers = 0;
  #disposed = false;
  #closed = false;

  /** `handle`: an open file (unlinked: nothing is left behind) holding `length` bytes from offset 0. */
  constructor(handle: FileHandle, length: number) {
    this.#handle = handle;
    this.length = length;
  }

  /**
   * Marks a read of the body (the file stays open until release()); false once its owner disposed
   * of it. A request that runs again on another worker reads it again, from the start.
   */
  acquire(): boolean {
    if (this.#disposed) return false;
    this.#readers++;
    return true;
  }

  release(): void {
    this.#readers--;
    if (this.#readers === 0 && this.#disposed) this.#close();
  }

  /** Its owner (the request) is done with it: the file closes now, or once the last read is released. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#readers === 0) this.#close();
  }

  /** Reads up to `buffer.length` bytes at `position` into `buffer`; the bytes read (0: the file ended early). */
  async readAt(buffer: Buffer, position: number): Promise<number> {
    const { bytesRead } = await this.#handle.read(buffer, 0, Math.min(buffer.length, this.length - position), position);
    return bytesRead;
  }

  /** The body as a byte stream (a FastCGI STDIN); a read of its own while it runs. */
  stream(): Readable & { readonly byteLength: number } {
    let position = 0;
    let acquired = false;
    const body = new Readable({
      highWaterMark: FILE_BODY_READ_BYTES,
      read: () => {
        if (!acquired) {
          if (!this.acquire()) {
            body.destroy(new Error('the request body was let go before it was read'));
            return;
          }
          acquired = true;
        }
        if (position >= this.length) {
          body.push(null);
          return;
        }
        const piece = Buffer.allocUnsafe(Math.min(FILE_BODY_READ_BYTES, this.length - position));
        this.readAt(piece, position).then(
          (read) => {
            if (read === 0) {
              body.destroy(new Error('the request body temp file ended early'));
              return;
            }
            position += read;
            body.push(read === piece.length ? piece : piece.subarray(0, read));
          },
          (error: Error) => body.destroy(error),
        );
      },
      destroy: (error, callback) => {
        if (acquired) this.release();
        acquired = false;
        callback(error);
      },
    });
    return Object.assign(body, { byteLength: this.length });
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // FileHandle.close waits for reads still under way
    this.#handle.close().catch(() => {});
  }
}
