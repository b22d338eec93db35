/**
 * Bodies up to this size are joined into one buffer (the copy is cheaper than more iovecs and
 * objects); larger ones stay separate buffers, never copied: a request body after its frame head,
 * a reply frame as the chunks it arrived in (decoder), a request body as it arrived (the plugin).
 */
export const JOIN_MAX_BYTES = 64 * 1024;

/**
 * Bytes kept as the chunks they arrived in: a large request body as the socket delivered it, a
 * large reply as the pipe reads brought it. Joining 1 MiB costs a copy into fresh memory and
 * doubles the external memory V8 must collect, for bytes that are only written out again, so
 * bodies over JOIN_MAX_BYTES cross the pool, the exchange and the HTTP side as Chunks, and are
 * joined only by code that must keep one buffer (a cache), once.
 */
export class Chunks {
  readonly parts: readonly Buffer[];
  /** total bytes */
  readonly length: number;
  #joined: Buffer | null = null;

  constructor(parts: readonly Buffer[], length = partsLength(parts)) {
    this.parts = parts;
    this.length = length;
  }

  /** The bytes as one buffer: one copy, made once. */
  join(): Buffer {
    this.#joined ??= this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.length);
    return this.#joined;
  }
}

/** Total bytes of a list of buffers. */
export function partsLength(parts: readonly Buffer[]): number {
  let length = 0;
  for (const part of parts) length += part.length;
  return length;
}
