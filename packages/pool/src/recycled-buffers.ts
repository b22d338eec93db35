// Memory for response bodies that is handed back once a response is sent and reused for the next
// one. Fresh memory for every response (a 76 KB DokuWiki page, many a second) is external memory
// V8 must account for, and it answers with full Mark-Compact collections on the one Node thread:
// reusing the same buffers keeps that memory constant.
//
// The rule that keeps it safe: a buffer is given back only when nothing can read it any more (the
// HTTP response that wrote it has closed; see sendResponse), and whoever keeps bytes past that
// (the micro-cache) copies them. Until given back, a buffer is never handed out twice.

/** The smallest buffer handed out: most pages fit, and the sizes above it double. */
export const RECYCLED_MIN_BYTES = 32 * 1024;
/** A larger buffer is handed out fresh and left to the garbage collector when given back. */
export const RECYCLED_MAX_BYTES = 1024 * 1024;
/** Free buffers kept for reuse, in all sizes together (the rest are left to the garbage collector). */
export const DEFAULT_RECYCLED_POOL_BYTES = 16 * 1024 * 1024;

export interface RecycledBuffersStats {
  /** buffers handed out fresh */
  allocated: number;
  /** buffers handed out again */
  reused: number;
  /** bytes of free buffers waiting to be reused */
  pooledBytes: number;
}

export class RecycledBuffers {
  readonly maxPooledBytes: number;
  /** free buffers by capacity (powers of two from RECYCLED_MIN_BYTES) */
  readonly #free = new Map<number, Buffer[]>();
  /** the buffers in #free: a buffer given back twice must not be handed out twice */
  readonly #isFree = new WeakSet<Buffer>();
  #pooledBytes = 0;
  #allocated = 0;
  #reused = 0;

  constructor(maxPooledBytes = DEFAULT_RECYCLED_POOL_BYTES) {
    this.maxPooledBytes = maxPooledBytes;
  }

  /** A buffer of at least `bytes`, with any content: the caller writes before it reads. */
  take(bytes: number): Buffer {
    const capacity = capacityFor(bytes);
    const free = this.#free.get(capacity);
    const buffer = free?.pop();
    if (buffer !== undefined) {
      this.#isFree.delete(buffer);
      this.#pooledBytes -= capacity;
      this.#reused++;
      return buffer;
    }
    this.#allocated++;
    // outside Node's small-buffer pool: a whole ArrayBuffer of its own, nothing else shares it
    return Buffer.allocUnsafeSlow(capacity);
  }

  /**
   * Gives a buffer from take() back. Nothing may read or write it afterwards: its next owner will.
   * A second give while it is still free is ignored; once it is handed out again it cannot be told
   * apart, so each owner gives back once (CgiResponseReader's release() guards that).
   */
  give(buffer: Buffer): void {
    const capacity = buffer.length;
    if (this.#isFree.has(buffer) || capacity > RECYCLED_MAX_BYTES || capacity !== capacityFor(capacity)) return;
    if (this.#pooledBytes + capacity > this.maxPooledBytes) return;
    let free = this.#free.get(capacity);
    if (free === undefined) {
      free = [];
      this.#free.set(capacity, free);
    }
    free.push(buffer);
    this.#isFree.add(buffer);
    this.#pooledBytes += capacity;
  }

  stats(): RecycledBuffersStats {
    return { allocated: this.#allocated, reused: this.#reused, pooledBytes: this.#pooledBytes };
  }
}

/** The capacity handed out for `bytes`: a power of two from RECYCLED_MIN_BYTES; the size itself above the largest. */
function capacityFor(bytes: number): number {
  if (bytes > RECYCLED_MAX_BYTES) return bytes;
  let capacity = RECYCLED_MIN_BYTES;
  while (capacity < bytes) capacity *= 2;
  return capacity;
}

/** The process's buffers for response bodies (one Node thread: no reason for more than one). */
export const responseBuffers = new RecycledBuffers();
