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

/**
 * Incremental FastCGI record decoder. Bytes arrive in chunks cut anywhere (a header split over
 * reads, many records in one read); records come out whole, in order, padding dropped. A record
 * inside one chunk is a view of it; one spanning chunks is joined once (at most 64 KiB).
 * Types are not judged here (an unknown type decodes like any other) except that the fixed-size
 * bodies (BEGIN_REQUEST, END_REQUEST, UNKNOWN_TYPE) must be 8 bytes.
 * After a thrown error the decoder refuses further input: the stream cannot be resynchronised.
 */
export class RecordDecoder {
  // biome-ignore lint/suspicious/noConfusingVoidType: a callback that returns nothing keeps reading
  readonly #onRecord: (record: FastCgiRecord) => boolean | void;
  readonly #maxContentBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** content + padding of the record whose header has been read, or -1 */
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
    return this.#buffered;
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
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    if (this.#held) return;
    this.#run();
  }

  /** Delivers records held back after onRecord returned false. */
  resume(): void {
    if (!this.#held || this.#failed !== null) return;
    this.#held = false;
    this.#run();
  }

  #run(): void {
    try {
      this.#drain();
    } catch (error) {
      this.#failed = error as Error;
      this.#chunks = [];
      this.#buffered = 0;
      throw error;
    }
  }

  #drain(): void {
    for (;;) {
      if (this.#bodyLength < 0) {
        if (this.#buffered < RECORD_HEADER_BYTES) return;
        this.#readHeader(this.#take(RECORD_HEADER_BYTES));
      }
      if (this.#buffered < this.#bodyLength) return;
      const body = this.#take(this.#bodyLength);
      this.#bodyLength = -1;
      const record: FastCgiRecord = {
        type: this.#type,
        requestId: this.#requestId,
        content: body.length === this.#contentLength ? body : body.subarray(0, this.#contentLength),
      };
      this.#recordsSeen++;
      if (this.#onRecord(record) === false) {
        this.#held = true;
        return;
      }
    }
  }

  #readHeader(header: Buffer): void {
    const version = header[0]!;
    if (version !== FCGI_VERSION) {
      throw new FastCgiMalformedRecordError(
        `not a FastCGI record: ${describeBytes(Buffer.concat([header, this.#peek(56)]))}. ${likelyCause(this.#recordsSeen, header)}`,
        { version },
      );
    }
    const type = header[1]!;
    const contentLength = header.readUInt16BE(4);
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
    this.#requestId = header.readUInt16BE(2);
    this.#contentLength = contentLength;
    this.#bodyLength = contentLength + header[6]!;
  }

  /** Up to n buffered bytes, without consuming them (for error messages). */
  #peek(n: number): Buffer {
    return Buffer.concat(this.#chunks, Math.min(n, this.#buffered));
  }

  /** Consumes n bytes: a view when they sit in one chunk, one copy otherwise. */
  #take(n: number): Buffer {
    if (n === 0) return EMPTY;
    const first = this.#chunks[0]!;
    this.#buffered -= n;
    if (first.length > n) {
      this.#chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.#chunks.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let offset = 0;
    let used = 0;
    while (offset < n) {
      const chunk = this.#chunks[used]!;
      const count = Math.min(chunk.length, n - offset);
      chunk.copy(out, offset, 0, count);
      offset += count;
      if (count === chunk.length) used++;
      else this.#chunks[used] = chunk.subarray(count);
    }
    // One splice, not a shift per chunk: a record trickling in as many tiny chunks stays linear.
    this.#chunks.splice(0, used);
    return out;
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
