import { open, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import type { Chunks } from '@warmpool/pool';

/** Bytes of a whole body written at once, before the client's pace counts (one writev for most replies). */
export const BODY_MEMORY_BYTES = 1024 * 1024;
/** How long a client may keep the rest of a large body waiting before it is moved to a temp file. */
export const SPILL_AFTER_MS = 100;
/** One read of a spilled body's temp file. */
const SPILL_READ_BYTES = 64 * 1024;
/**
 * One read of a body filed whole because memory was short (`toFile`): what each stalled client then
 * holds, with its socket's or stream's own buffer, is about twice this.
 */
const FILED_READ_BYTES = 16 * 1024;

/**
 * The stream face of Chunks (the pool's one type for bytes kept in pieces) for Fastify: a reply
 * body PHP sent whole that reached Node in several chunks (large bodies: 64 KiB pipe reads), sent
 * without joining them. Joining 1 MiB costs a copy into fresh memory and doubles the external
 * memory V8 has to collect; profiles showed that copy and the garbage collection it caused as most
 * of the Node time of a 1 MiB reply.
 *
 * It is a Readable so Fastify and onSend hooks (compression) treat it as a stream, but `pipe`
 * writes the first BODY_MEMORY_BYTES in the same tick: Node corks the response for that tick, so
 * the status line, headers and those parts leave in one writev, as a Buffer body would.
 *
 * The rest of a larger body follows at the client's pace; a client that keeps it waiting longer
 * than SPILL_AFTER_MS gets it from an unlinked temp file instead, and the memory is let go, as
 * nginx's proxy buffers spill to proxy_temp_path: twenty slow readers of a 10 MB reply hold about
 * 1 MB each in Node, not 10. The worker was freed when its reply arrived either way. It emits
 * 'spill' once the rest of the body is on disk and no longer held in memory.
 */
export class BodyParts extends Readable {
  /** total bytes: the Content-Length */
  readonly length: number;
  #chunks: Chunks | null;
  #written = false;
  readonly #toFile: boolean;

  /**
   * `toFile`: the whole body goes to a temp file before anything is written, and is sent from there
   * (the process holds too much for slow clients already: response-memory.ts); it emits 'spill'
   * once its memory is no longer read. Without a temp file it emits 'kept' and is sent from memory
   * at the client's pace.
   */
  constructor(chunks: Chunks, options?: { toFile?: boolean }) {
    super();
    this.#chunks = chunks;
    this.length = chunks.length;
    this.#toFile = options?.toFile === true;
  }

  /** The parts still held in memory (none once the body went to a temp file). */
  get parts(): readonly Buffer[] {
    return this.#chunks?.parts ?? [];
  }

  /** The body as one buffer (one copy, made once), for code that keeps it, such as a cache. */
  join(): Buffer {
    if (this.#chunks === null) throw new Error('the body was moved to a temp file and is no longer in memory');
    return this.#chunks.join();
  }

  override _read(): void {
    // only a consumer that reads instead of piping (e.g. a hook's pipeline) gets here
    if (this.#written) return;
    this.#written = true;
    for (const part of this.parts) this.push(part);
    this.push(null);
  }

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    if (this.#written) return super.pipe(destination, options);
    this.#written = true;
    const target = destination as unknown as Writable;
    const end = options?.end !== false;
    const parts = this.parts;
    if (this.#toFile) {
      this.#sendFromFile(target, parts, end, FILED_READ_BYTES, () => {
        this.emit('kept', this.length);
        this.#writePaced(target, parts, 0, end, true);
      });
      return destination;
    }
    let index = 0;
    for (let sent = 0; index < parts.length && sent < BODY_MEMORY_BYTES; index++) {
      target.write(parts[index]!);
      sent += parts[index]!.length;
    }
    if (index === parts.length) this.#finish(target, end);
    else this.#writePaced(target, parts, index, end);
    return destination;
  }

  /**
   * The rest of a large body, as the client takes it; moved to a temp file if it keeps us waiting
   * (`noSpill`: a temp file failed already).
   */
  #writePaced(target: Writable, body: readonly Buffer[], from: number, end: boolean, noSpill = false): void {
    let parts = body;
    let index = from;
    let timer: NodeJS.Timeout | null = null;
    const stop = (): void => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      target.off('drain', next);
      target.off('close', onClose);
    };
    const onClose = (): void => {
      stop();
      this.#chunks = null;
      this.destroy();
    };
    const next = (): void => {
      if (timer !== null) clearTimeout(timer);
      timer = null;
      while (index < parts.length) {
        if (!target.write(parts[index++]!)) {
          if (!noSpill && index < parts.length) timer = setTimeout(spill, SPILL_AFTER_MS);
          return;
        }
      }
      stop();
      this.#finish(target, end);
    };
    const spill = (): void => {
      stop();
      // Closures made here share this scope (V8 contexts): none may hold the parts, or they outlive
      // the spill; the rest goes straight to #sendFromFile and this scope's `parts` lets go.
      const rest = parts.slice(index);
      parts = [];
      this.#sendFromFile(target, rest, end, SPILL_READ_BYTES, () => {
        // no temp file (disk full, no tmp): keep the bytes in memory and go on at the client's pace
        parts = rest;
        index = 0;
        noSpill = true;
        target.on('drain', next);
        target.once('close', onClose);
        // a 'drain' while the file was being written went unheard
        next();
      });
    };
    target.on('drain', next);
    target.once('close', onClose);
    next();
  }

  /**
   * Sends `rest` from a temp file; `failed` is called instead when there is none (the parts are
   * still here to send from memory). `readBytes`: the file's reads, what a stalled client holds.
   */
  #sendFromFile(target: Writable, rest: readonly Buffer[], end: boolean, readBytes: number, failed: () => void): void {
    this.#spill(rest, readBytes, (error, file, bytes) => {
      if (error === null && file !== null) this.#pipeFile(target, file, end, bytes);
      else if (!target.destroyed) failed();
      else {
        this.#chunks = null;
        this.destroy();
      }
    });
  }

  /**
   * The body's file to the client. Its listeners are made here, not in #sendFromFile: closures share
   * their function's context (V8), and one made beside `failed` would keep it, and the parts it
   * holds, as long as the client stalls.
   */
  #pipeFile(target: Writable, file: Readable, end: boolean, bytes: number): void {
    this.#chunks = null;
    this.emit('spill', bytes);
    if (target.destroyed) {
      file.destroy();
      this.destroy();
      return;
    }
    file.pipe(target, { end });
    file.once('end', () => this.#finish(null, false));
    file.once('error', () => this.destroy());
    target.once('close', () => file.destroy());
  }

  /** Writes `rest` to a temp file unlinked at once (nothing is left behind) and reads it back. */
  #spill(
    rest: readonly Buffer[],
    readBytes: number,
    done: (error: Error | null, file: Readable | null, bytes: number) => void,
  ): void {
    const path = join(tmpdir(), `warmpool-body-${process.pid}-${Math.random().toString(36).slice(2)}`);
    void (async () => {
      const handle = await open(path, 'wx+', 0o600);
      let position = 0;
      try {
        await unlink(path);
        // a write may take less than asked: write until all is on disk
        for (const part of rest) {
          for (let offset = 0; offset < part.length; ) {
            const { bytesWritten } = await handle.write(part, offset, part.length - offset, position);
            offset += bytesWritten;
            position += bytesWritten;
          }
        }
      } catch (error) {
        await handle.close();
        throw error;
      }
      return {
        file: handle.createReadStream({ start: 0, autoClose: true, highWaterMark: readBytes }),
        bytes: position,
      };
    })().then(
      ({ file, bytes }) => done(null, file, bytes),
      (error: Error) => done(error, null, 0),
    );
  }

  #finish(target: Writable | null, end: boolean): void {
    if (end) target?.end();
    // end this side too: whoever waits for the source to finish (Fastify's end-of-stream) sees it
    this.push(null);
    this.resume();
  }
}
