// A streamed reply is read from its backend at the backend's pace, not the client's, as nginx's
// fastcgi_buffering and proxy_buffering do with their temp files: a client that reads slowly, or
// not at all (an HTTP/2 stream left at a zero window), holds a temp file, not the PHP process
// streaming the reply. Before, such clients held every worker until a send timeout cut them.
//
// What the client has not taken yet is kept in memory up to SPOOL_MEMORY_BYTES, then appended to
// a temp file unlinked at once (nothing is left behind; in os.tmpdir(), so $TMPDIR) and read back
// in order; once the client has read it all back, it is closed (its space goes back to the disk)
// and the next lag starts a new one. Once a file is SPOOL_FILE_MAX_BYTES long (nginx's
// fastcgi_max_temp_file_size, 1 GiB), once all the files of the process take SPOOL_TOTAL_MAX_BYTES
// (many clients that read nothing cannot fill the disk, or the memory of a tmpfs /tmp), or without
// a temp file at all (no room, no folder), the backend waits for the client again, as before. The
// bounds are on the files' sizes: a client reading steadily, a little slower than PHP, once sent
// a whole 2.6 GB reply through one file, which never shrank.
//
// The memory part counts against the process's bound on reply bytes held for slow clients
// (response-memory.ts); once that is reached, what the client has not taken goes to the file
// straight away.
import type { FileHandle } from 'node:fs/promises';
import { open, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { responseMemory } from './response-memory.js';

/** Bytes kept in memory for a client that is behind, before the rest goes to a temp file. */
export const SPOOL_MEMORY_BYTES = 1024 * 1024;
/** The temp file's size at most; there the backend waits for the client to read it back. */
export const SPOOL_FILE_MAX_BYTES = 1024 * 1024 * 1024;
/** The size of all the temp files of the process at most. */
export const SPOOL_TOTAL_MAX_BYTES = 2 * 1024 * 1024 * 1024;
/** One read of the temp file. */
const FILE_READ_BYTES = 64 * 1024;

/** The size of the open temp files of every reply of the process: the disk they take. */
let filedBytes = 0;

/** The disk the temp files take now, over all replies (for tests and metrics). */
export function spooledFileBytes(): number {
  return filedBytes;
}

export interface SpoolOptions {
  memoryBytes?: number;
  fileMaxBytes?: number;
  /** the bound over all the files of the process; default SPOOL_TOTAL_MAX_BYTES */
  totalMaxBytes?: number;
  /** where the temp file goes; default os.tmpdir() */
  dir?: string;
}

export class SpooledReply extends Readable {
  readonly #source: Readable;
  readonly #memoryMax: number;
  readonly #fileMax: number;
  readonly #totalMax: number;
  readonly #dir: string;
  /** what the client has not taken yet, in order: the memory part comes before the file part */
  readonly #memory: Buffer[] = [];
  #memoryBytes = 0;
  /** appended to the file, not yet written */
  #toFile: Buffer[] = [];
  #toFileBytes = 0;
  /** being written now (taken from #toFile, not yet in #fileWritten) */
  #writingBytes = 0;
  #file: FileHandle | null = null;
  /** no temp file (it failed once): the backend waits for the client instead */
  #noFile = false;
  #fileWritten = 0;
  #fileRead = 0;
  #writing = false;
  #reading = false;
  /** the client asked for more and has not been refused since (Readable's _read/push) */
  #wanted = false;
  #sourceEnded = false;
  #paused = false;

  constructor(source: Readable, options: SpoolOptions = {}) {
    super();
    this.#source = source;
    this.#memoryMax = options.memoryBytes ?? SPOOL_MEMORY_BYTES;
    this.#fileMax = options.fileMaxBytes ?? SPOOL_FILE_MAX_BYTES;
    this.#totalMax = options.totalMaxBytes ?? SPOOL_TOTAL_MAX_BYTES;
    this.#dir = options.dir ?? tmpdir();
    source.on('data', (chunk: Buffer) => this.#take(chunk));
    source.once('end', () => {
      this.#sourceEnded = true;
      this.#pump();
    });
    source.once('error', (error) => this.destroy(error));
    // destroyed without an error before its end (a stream the backend gave up): the reply is cut
    // too, as a pipe would cut it; waiting for an end that never comes would hold the client
    source.once('close', () => {
      if (!this.#sourceEnded && !this.destroyed) this.destroy(new Error("the backend's reply stopped before its end"));
    });
    // failed before this reply was built on it: its 'error' and 'close' are gone
    if (source.destroyed && !source.readableEnded)
      this.destroy(source.errored ?? new Error("the backend's reply stopped before its end"));
  }

  /** Bytes taken from the backend that the client has not taken yet. */
  get spooledBytes(): number {
    return this.#memoryBytes + this.#fileWritten - this.#fileRead + this.#toFileBytes + this.#writingBytes;
  }

  override _read(): void {
    this.#wanted = true;
    this.#pump();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.#source.destroy();
    this.#memory.length = 0;
    this.#addMemory(-this.#memoryBytes);
    this.#toFile = [];
    this.#toFileBytes = 0;
    // this reply's file no longer counts against the process's bound
    filedBytes -= this.#fileWritten;
    this.#fileRead = this.#fileWritten = 0;
    const file = this.#file;
    this.#file = null;
    if (file === null) {
      callback(error);
      return;
    }
    const done = () => callback(error);
    file.close().then(done, done);
  }

  #take(chunk: Buffer): void {
    if (this.destroyed) return;
    // straight through while the client keeps up and nothing is waiting before this chunk
    if (this.#wanted && this.#memory.length === 0 && this.#fileEmpty()) {
      this.#wanted = this.push(chunk);
      return;
    }
    if (this.#fileEmpty() && ((this.#memoryBytes < this.#memoryMax && !responseMemory.full) || this.#noFile)) {
      this.#memory.push(chunk);
      this.#addMemory(chunk.length);
    } else {
      this.#toFile.push(chunk);
      this.#toFileBytes += chunk.length;
      this.#writeFile();
    }
    this.#holdBackend();
    this.#pump();
  }

  /** Gives the client what it asks for: memory first, then the file, then the end. */
  #pump(): void {
    while (this.#wanted && !this.destroyed) {
      const chunk = this.#memory.shift();
      if (chunk !== undefined) {
        this.#addMemory(-chunk.length);
        this.#wanted = this.push(chunk);
        continue;
      }
      if (this.#fileRead < this.#fileWritten) {
        this.#readFile();
        return;
      }
      this.#releaseReadFile();
      if (this.#fileEmpty() && this.#sourceEnded) {
        this.push(null);
        this.#wanted = false;
      }
      break;
    }
    this.#holdBackend();
  }

  /**
   * The backend waits while too much waits for the client: past the file's bound, past memory
   * without a file, or past memory's worth on its way to the disk (the file being opened, a slow
   * disk).
   */
  #holdBackend(): void {
    const held =
      this.#toFileBytes >= this.#memoryMax ||
      (this.#noFile
        ? this.#memoryBytes >= this.#memoryMax
        : this.#fileWritten >= this.#fileMax ||
          // a reply going through its file waits while all the files hold the process's bound
          (!this.#fileEmpty() && filedBytes >= this.#totalMax));
    if (held && !this.#paused) {
      this.#paused = true;
      this.#source.pause();
    } else if (!held && this.#paused) {
      this.#paused = false;
      this.#source.resume();
    }
  }

  /** The memory part grows or shrinks by `bytes`, and the process's count with it. */
  #addMemory(bytes: number): void {
    this.#memoryBytes += bytes;
    responseMemory.hold(bytes);
  }

  /**
   * A file read back to its end, with nothing on its way to it, is closed: unlinked, its space
   * goes back to the disk, and the process's count with it; the next bytes that wait start a new one.
   */
  #releaseReadFile(): void {
    const file = this.#file;
    if (file === null || this.#writing || this.#reading || this.#toFile.length > 0) return;
    if (this.#fileRead !== this.#fileWritten) return;
    filedBytes -= this.#fileWritten;
    this.#file = null;
    this.#fileRead = this.#fileWritten = 0;
    file.close().catch(() => {});
  }

  #fileEmpty(): boolean {
    return this.#fileRead === this.#fileWritten && this.#toFile.length === 0 && !this.#writing;
  }

  #writeFile(): void {
    if (this.#writing || this.#toFile.length === 0 || this.destroyed) return;
    this.#writing = true;
    const chunks = this.#toFile;
    this.#writingBytes = this.#toFileBytes;
    this.#toFile = [];
    this.#toFileBytes = 0;
    this.#append(chunks).then(
      () => {
        this.#writing = false;
        this.#writingBytes = 0;
        if (this.destroyed) return;
        this.#writeFile();
        this.#pump();
      },
      (error: Error) => {
        this.#writing = false;
        this.#writingBytes = 0;
        if (this.destroyed) return;
        // bytes already in the file come before these: they cannot wait in memory instead
        if (this.#file !== null) {
          this.destroy(error);
          return;
        }
        // no temp file at all: these bytes wait in memory, and the backend waits for the client
        this.#noFile = true;
        for (const chunk of [...chunks, ...this.#toFile]) {
          this.#memory.push(chunk);
          this.#addMemory(chunk.length);
        }
        this.#toFile = [];
        this.#toFileBytes = 0;
        this.#pump();
      },
    );
  }

  async #append(chunks: Buffer[]): Promise<void> {
    if (this.#file === null) {
      const path = join(this.#dir, `warmpool-reply-${process.pid}-${Math.random().toString(36).slice(2)}`);
      const file = await open(path, 'wx+', 0o600);
      await unlink(path).catch(() => {});
      if (this.destroyed) {
        await file.close();
        return;
      }
      this.#file = file;
    }
    const file = this.#file;
    for (const chunk of chunks) {
      // a write may take less than asked: write until all of it is on disk
      for (let offset = 0; offset < chunk.length; ) {
        const { bytesWritten } = await file.write(chunk, offset, chunk.length - offset, this.#fileWritten);
        // given up meanwhile: its file's bytes were counted out already (_destroy)
        if (this.destroyed) return;
        offset += bytesWritten;
        this.#fileWritten += bytesWritten;
        this.#writingBytes -= bytesWritten;
        filedBytes += bytesWritten;
      }
    }
  }

  #readFile(): void {
    const file = this.#file;
    if (this.#reading || file === null) return;
    this.#reading = true;
    const length = Math.min(FILE_READ_BYTES, this.#fileWritten - this.#fileRead);
    const buffer = Buffer.allocUnsafe(length);
    file.read(buffer, 0, length, this.#fileRead).then(
      ({ bytesRead }) => {
        this.#reading = false;
        if (this.destroyed) return;
        if (bytesRead === 0) {
          this.destroy(new Error('the reply spooled to a temp file came back short'));
          return;
        }
        // once caught up, the next bytes go to memory again (#take), and the file is let go (#pump)
        this.#fileRead += bytesRead;
        this.#wanted = this.push(buffer.subarray(0, bytesRead));
        this.#pump();
      },
      (error: Error) => {
        this.#reading = false;
        this.destroy(error);
      },
    );
  }
}
