import { FastCgiMalformedRecordError, FastCgiRecordTooLargeError } from '../errors.js';
import {
  FCGI_VERSION,
  FIXED_BODY_BYTES,
  type FastCgiRecord,
  MAX_CONTENT_BYTES,
  RECORD_HEADER_BYTES,
  recordTypeName,
} from './records.js';

export interface RecordDecoderOptions {
  /**
   * Largest content accepted (default and maximum 65535, what the 16-bit field allows). A record
   * announcing more is refused as soon as its header arrives, before its content is buffered.
   */
  maxContentBytes?: number;
}

/** The largest record on the wire: header, 65535 content bytes, 255 padding bytes. */
const MAX_RECORD_BYTES = RECORD_HEADER_BYTES + MAX_CONTENT_BYTES + 255;

/**
 * Incremental FastCGI record decoder. Bytes arrive in chunks cut anywhere (a header split over
 * reads, many records in one read); records come out whole, in order, padding dropped.
 *
 * Nothing here keeps a chunk after push() returns, so the caller may read every chunk into the
 * same memory (a socket's `onread` buffer) and no read allocates: a record inside one chunk is a
 * view of it; the start of a record cut by the chunk's end is copied into the decoder's own buffer
 * (one per decoder, at most one record) and completed there. So a record's content is valid only
 * during onRecord: a consumer that keeps it copies it. The one exception is backpressure: once
 * onRecord returns false, the rest of that chunk is kept as is until resume(), and the caller must
 * not reuse its memory before then (a paused socket does not read).
 * Types are not judged here (an unknown type decodes like any other) except that the fixed-size
 * bodies (BEGIN_REQUEST, END_REQUEST, UNKNOWN_TYPE) must be 8 bytes.
 * After a thrown error the decoder refuses further input: the stream cannot be resynchronised.
 */
export class RecordDecoder {
  // biome-ignore lint/suspicious/noConfusingVoidType: a callback that returns nothing keeps reading
  readonly #onRecord: (record: FastCgiRecord) => boolean | void;
  readonly #maxContentBytes: number;
  /** the start of a record cut by a chunk's end (allocated on first use, then reused) */
  #partial: Buffer | null = null;
  #partialLength = 0;
  /** what followed the record onRecord paused on: delivered on resume() */
  #rest: Buffer | null = null;
  /** content + padding of the record whose header is in #partial, or -1 */
  #bodyLength = -1;
  #type = 0;
  #requestId = 0;
  #contentLength = 0;
  #failed: Error | null = null;
  #recordsSeen = 0;
  /** set when onRecord returned false: records stay buffered until resume() */
  #held = false;

  /** `onRecord` may return false to stop delivery (backpressure) until resume(). */
  // biome-ignore lint/suspicious/noConfusingVoidType: a callback that returns nothing keeps reading
  constructor(onRecord: (record: FastCgiRecord) => boolean | void, options: RecordDecoderOptions = {}) {
    this.#onRecord = onRecord;
    const max = options.maxContentBytes ?? MAX_CONTENT_BYTES;
    if (!Number.isInteger(max) || max < 0 || max > MAX_CONTENT_BYTES) {
      throw new RangeError(`maxContentBytes must be an integer in 0..${MAX_CONTENT_BYTES}, got ${max}`);
    }
    this.#maxContentBytes = max;
  }

  /** Bytes held that do not yet make a whole record (or that wait for resume()). */
  get pendingBytes(): number {
    return this.#partialLength + (this.#rest?.length ?? 0);
  }

  get recordsSeen(): number {
    return this.#recordsSeen;
  }

  /** Whether delivery is paused because onRecord returned false. */
  get held(): boolean {
    return this.#held;
  }

  push(chunk: Buffer): void {
    if (this.#failed !== null) throw this.#failed;
    if (chunk.length === 0) return;
    if (this.#held) {
      // bytes that came while paused: copied, since their memory may be reused after this returns
      this.#rest = this.#rest === null ? Buffer.from(chunk) : Buffer.concat([this.#rest, chunk]);
      return;
    }
    this.#run(chunk);
  }

  /** Delivers records held back after onRecord returned false. */
  resume(): void {
    if (!this.#held || this.#failed !== null) return;
    this.#held = false;
    const rest = this.#rest;
    this.#rest = null;
    if (rest !== null) this.#run(rest);
  }

  #run(chunk: Buffer): void {
    try {
      const offset = this.#partialLength > 0 ? this.#completePartial(chunk) : 0;
      if (offset >= 0) this.#decode(chunk, offset);
    } catch (error) {
      this.#failed = error as Error;
      this.#partialLength = 0;
      this.#rest = null;
      throw error;
    }
  }

  /**
   * Adds the chunk's first bytes to the record in #partial; delivers it once whole. Returns where
   * the chunk's next record starts, or -1 when the chunk is used up or delivery paused.
   */
  #completePartial(chunk: Buffer): number {
    const partial = this.#partial!;
    let offset = 0;
    if (this.#partialLength < RECORD_HEADER_BYTES) {
      const count = Math.min(RECORD_HEADER_BYTES - this.#partialLength, chunk.length);
      chunk.copy(partial, this.#partialLength, 0, count);
      this.#partialLength += count;
      offset = count;
      if (this.#partialLength < RECORD_HEADER_BYTES) return -1;
      this.#readHeader(partial, 0, chunk.subarray(offset));
    }
    const total = RECORD_HEADER_BYTES + this.#bodyLength;
    const count = Math.min(total - this.#partialLength, chunk.length - offset);
    chunk.copy(partial, this.#partialLength, offset, offset + count);
    this.#partialLength += count;
    offset += count;
    if (this.#partialLength < total) return -1;
    this.#partialLength = 0;
    if (!this.#deliver(partial, RECORD_HEADER_BYTES, chunk, offset)) return -1;
    return offset;
  }

  /** Records in place from `offset`; the start of a record cut by the chunk's end goes to #partial. */
  #decode(chunk: Buffer, offset: number): void {
    for (;;) {
      const left = chunk.length - offset;
      if (left === 0) return;
      if (left >= RECORD_HEADER_BYTES) {
        this.#readHeader(chunk, offset, null);
        const end = offset + RECORD_HEADER_BYTES + this.#bodyLength;
        if (end <= chunk.length) {
          if (!this.#deliver(chunk, offset + RECORD_HEADER_BYTES, chunk, end)) return;
          offset = end;
          continue;
        }
      }
      this.#partial ??= Buffer.allocUnsafeSlow(MAX_RECORD_BYTES);
      chunk.copy(this.#partial, 0, offset);
      this.#partialLength = left;
      return;
    }
  }

  /** Hands one record to onRecord; false when it paused delivery (the chunk's rest is kept). */
  #deliver(source: Buffer, contentStart: number, chunk: Buffer, next: number): boolean {
    const record: FastCgiRecord = {
      type: this.#type,
      requestId: this.#requestId,
      content: this.#contentLength === 0 ? EMPTY : source.subarray(contentStart, contentStart + this.#contentLength),
    };
    this.#bodyLength = -1;
    this.#recordsSeen++;
    if (this.#onRecord(record) !== false) return true;
    this.#held = true;
    if (next < chunk.length) this.#rest = chunk.subarray(next);
    return false;
  }

  /** Reads and checks the header at `offset`; `after` is what follows it (for error messages). */
  #readHeader(bytes: Buffer, offset: number, after: Buffer | null): void {
    const version = bytes[offset]!;
    if (version !== FCGI_VERSION) {
      const seen = bytes.subarray(offset, offset + RECORD_HEADER_BYTES + 56);
      const shown = after === null ? seen : Buffer.concat([seen, after.subarray(0, 56)]);
      throw new FastCgiMalformedRecordError(
        `not a FastCGI record: ${describeBytes(shown)}. ${likelyCause(this.#recordsSeen, bytes.subarray(offset, offset + RECORD_HEADER_BYTES))}`,
        { version },
      );
    }
    const type = bytes[offset + 1]!;
    const contentLength = bytes.readUInt16BE(offset + 4);
    if (contentLength > this.#maxContentBytes) {
      throw new FastCgiRecordTooLargeError(
        `${recordTypeName(type)} record of ${contentLength} content bytes exceeds the limit of ${this.#maxContentBytes}`,
        { type, contentLength, maxContentBytes: this.#maxContentBytes },
      );
    }
    const fixed = FIXED_BODY_BYTES.get(type);
    if (fixed !== undefined && contentLength !== fixed) {
      throw new FastCgiMalformedRecordError(
        `${recordTypeName(type)} record has ${contentLength} content bytes; FastCGI 1.0 defines ${fixed}`,
        { type, contentLength },
      );
    }
    this.#type = type;
    this.#requestId = bytes.readUInt16BE(offset + 2);
    this.#contentLength = contentLength;
    this.#bodyLength = contentLength + bytes[offset + 6]!;
  }
}

const EMPTY = Buffer.alloc(0);

/** Printable ASCII as text, the rest as \xNN, for error messages. */
function describeBytes(bytes: Buffer): string {
  let out = '';
  for (const b of bytes) {
    if (b >= 0x20 && b < 0x7f && b !== 0x5c) out += String.fromCharCode(b);
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x0d) out += '\\r';
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return `"${out}"`;
}

/** The usual cause of non-FastCGI bytes, named in the message (the address is a web server...). */
function likelyCause(recordsSeen: number, header: Buffer): string {
  const text = header.toString('latin1');
  if (text.startsWith('HTTP/')) {
    return 'Likely cause: the address answered in HTTP; it is a web server, not a FastCGI server such as php-fpm.';
  }
  if (header.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09)) {
    return recordsSeen === 0
      ? 'Likely cause: the address speaks a text protocol, not FastCGI; check that it is php-fpm\'s "listen" address.'
      : 'Likely cause: the stream lost sync (text where a record header should be).';
  }
  return 'Likely cause: the address is not a FastCGI server, or the stream lost sync.';
}
