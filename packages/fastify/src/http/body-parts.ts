import { Readable, type Writable } from 'node:stream';
import type { Chunks } from '@warmpool/pool';

/**
 * The stream face of Chunks (the pool's one type for bytes kept in pieces) for Fastify: a reply
 * body PHP sent whole that reached Node in several chunks (large bodies: 64 KiB pipe
 * reads), sent without joining them. Joining 1 MiB costs a copy into fresh memory and doubles the
 * external memory V8 has to collect; profiles showed that copy and the garbage collection it
 * caused as most of the Node time of a 1 MiB reply.
 *
 * It is a Readable so Fastify and onSend hooks (compression) treat it as a stream, but `pipe`
 * writes every part in the same tick: Node corks the response for that tick, so the status line,
 * headers and all parts leave in one writev, as a Buffer body would. The bytes are already in
 * memory, so writing them at once holds nothing more than waiting would.
 */
export class BodyParts extends Readable {
  readonly parts: readonly Buffer[];
  /** total bytes: the Content-Length */
  readonly length: number;
  #written = false;

  readonly #chunks: Chunks;

  constructor(chunks: Chunks) {
    super();
    this.#chunks = chunks;
    this.parts = chunks.parts;
    this.length = chunks.length;
  }

  /** The body as one buffer (one copy, made once), for code that keeps it, such as a cache. */
  join(): Buffer {
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
    for (const part of this.parts) target.write(part);
    if (options?.end !== false) target.end();
    // end this side too: whoever waits for the source to finish (Fastify's end-of-stream) sees it
    this.push(null);
    this.resume();
    return destination;
  }
}
