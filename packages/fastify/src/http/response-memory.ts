// One bound, over the whole process, on the bytes of PHP replies held in memory for clients that
// have not read them yet. A reply PHP sent whole (a classic body up to 1 MiB, a worker's frame) is
// written to its response at once, and waits there, in Node's socket or HTTP/2 stream, until the
// client takes it; a streamed reply keeps up to 1 MiB in memory before its temp file. Clients that
// read nothing (an HTTP/2 stream left at a zero window, a socket never read) held about 1 MiB per
// response with no overall limit: 24 TLS connections x 120 such streams took the process from
// 85 MB to 3 GB in 25 s, and the OOM killer then takes every site down. nginx holds such replies
// in its fastcgi_buffers up to a bound and spools the rest to fastcgi_temp_path.
//
// Here, past the bound (http.max_response_memory), a new whole reply over SMALL_REPLY_BYTES is
// written to an unlinked temp file first, its memory let go, and sent from the file at the
// client's pace (BodyParts, `toFile`); a streamed reply sends what it cannot pass on at once to its
// temp file instead of memory (SpooledReply). Every client still gets its whole reply: only where
// the bytes wait changes. A reply counts from when it is written until its response closes (all
// of it taken by the kernel, or the client gone), or until it moved to a file; a whole reply that
// an HTTP/1.1 socket took at once is not counted at all, and one of SMALL_REPLY_BYTES or less is
// never counted (the sockets' and streams' own buffers hold that much anyway).
import { HeldBytes } from './held-bytes.js';

/** http.max_response_memory when unset. */
export const DEFAULT_MAX_RESPONSE_MEMORY_BYTES = 64 * 1024 * 1024;
/** A whole reply this small is always sent from memory, and not counted. */
export const SMALL_REPLY_BYTES = 16 * 1024;

export class ResponseMemory extends HeldBytes {
  constructor() {
    super(DEFAULT_MAX_RESPONSE_MEMORY_BYTES);
  }

  /** A whole reply of `bytes` goes to a temp file first: the bound would be passed. */
  fileFirst(bytes: number): boolean {
    return bytes > SMALL_REPLY_BYTES && this.heldBytes + bytes > this.maxBytes;
  }

  /** The bound is reached: a streamed reply keeps nothing more in memory. */
  get full(): boolean {
    return this.heldBytes >= this.maxBytes;
  }

  metrics(): string {
    return this.metricLines(
      [
        'warmpool_response_memory_bytes',
        'Bytes of PHP replies held in memory for clients that have not read them yet.',
      ],
      ['warmpool_response_memory_max_bytes', 'The bound on them (http.max_response_memory).'],
      ['warmpool_responses_filed_total', 'Replies sent from a temp file because the bound was reached when they came.'],
    );
  }
}

/** The process's one bound (one Node thread, every site: the memory is the process's). */
export const responseMemory = new ResponseMemory();
