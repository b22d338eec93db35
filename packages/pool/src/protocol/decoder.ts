import { BadChecksumError, FrameTooLargeError, MalformedFrameError } from '../errors.js';
import {
  ChunkedFrame,
  crc32,
  describeBytes,
  FRAME_VERSION,
  HEADER_BYTES,
  JOIN_MAX_BYTES,
  MAX_OPTIONS,
  type Frame,
} from './frame.js';

export const DEFAULT_MAX_FRAME_BYTES = 256 * 1024 * 1024;

export interface FrameDecoderOptions {
  /** Largest payload accepted; bigger frames are refused before they are buffered. */
  maxFrameBytes?: number;
  /**
   * The hint when PHP printed "Could not open input file" instead of a frame (the worker knows who
   * PHP runs as); default: SCRIPT_NOT_OPENED_HINT.
   */
  scriptNotOpenedHint?: () => string;
}

/** What a worker whose script PHP could not open is told to check, without more to go on. */
export const SCRIPT_NOT_OPENED_HINT =
  'Likely cause: PHP could not open the worker script; check the command and its path.';

/**
 * Incremental goridge frame decoder. Chunks are kept as a list; a small frame that spans chunks is
 * joined once, a large one is handed on as the chunks themselves (ChunkedFrame), never copied.
 * After a thrown error the decoder refuses further input: the stream cannot be resynchronised.
 */
export class FrameDecoder {
  // biome-ignore lint/suspicious/noConfusingVoidType: a callback that returns nothing keeps reading
  readonly #onFrame: (frame: Frame) => boolean | void;
  readonly #maxFrameBytes: number;
  readonly #scriptNotOpenedHint: () => string;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Total length of the frame whose header has been read, or -1. */
  #frameLength = -1;
  #header: Buffer | null = null;
  #failed: Error | null = null;
  /** Bytes received since the start: lets errors say whether the stream ever made sense. */
  #framesSeen = 0;

  /** set when onFrame returned false: frames stay buffered until resume() */
  #held = false;

  /** `onFrame` may return false to stop delivery (backpressure) until resume(). */
  // biome-ignore lint/suspicious/noConfusingVoidType: a callback that returns nothing keeps reading
  constructor(onFrame: (frame: Frame) => boolean | void, options: FrameDecoderOptions = {}) {
    this.#onFrame = onFrame;
    this.#maxFrameBytes = options.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.#scriptNotOpenedHint = options.scriptNotOpenedHint ?? (() => SCRIPT_NOT_OPENED_HINT);
  }

  /** Bytes held that do not yet make a whole frame. */
  get pendingBytes(): number {
    return this.#buffered;
  }

  get framesSeen(): number {
    return this.#framesSeen;
  }

  push(chunk: Buffer): void {
    if (this.#failed !== null) throw this.#failed;
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    if (this.#held) return;
    this.#run();
  }

  /** Delivers frames held back after onFrame returned false. */
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
      if (this.#frameLength < 0) {
        if (this.#buffered < HEADER_BYTES) return;
        const header = this.#peek(HEADER_BYTES);
        this.#frameLength = this.#checkHeader(header);
        this.#header = header;
      }
      if (this.#buffered < this.#frameLength) return;
      const header = this.#header!;
      const frameLength = this.#frameLength;
      this.#frameLength = -1;
      this.#header = null;
      const headerWords = header[0]! & 0x0f;
      const headLength = headerWords * 4;
      const payloadLength = frameLength - headLength;
      let frame: Frame;
      if (this.#chunks[0]!.length >= frameLength || payloadLength <= JOIN_MAX_BYTES) {
        const raw = this.#take(frameLength);
        frame = {
          flags: header[1]!,
          control: header[10]!,
          options: readOptions(raw, headerWords),
          payload: raw.subarray(headLength),
        };
      } else {
        const head = this.#take(headLength);
        frame = new ChunkedFrame(
          header[1]!,
          header[10]!,
          readOptions(head, headerWords),
          this.#takeParts(payloadLength),
          payloadLength,
        );
      }
      this.#framesSeen++;
      const more = this.#onFrame(frame);
      if (more === false) {
        this.#held = true;
        return;
      }
    }
  }

  /** Validates a header and returns the whole frame's length. */
  #checkHeader(header: Buffer): number {
    const version = header[0]! >> 4;
    const headerWords = header[0]! & 0x0f;
    if (version !== FRAME_VERSION || headerWords < 3) {
      throw new MalformedFrameError(
        `not a protocol frame: ${describeBytes(this.#peek(Math.min(this.#buffered, 64)))}. ` +
          likelyCause(this.#framesSeen, header, this.#scriptNotOpenedHint),
        { version, headerWords },
      );
    }
    const expected = header.readUInt32LE(6);
    const actual = crc32(header, 0, 6);
    if (expected !== actual) {
      throw new BadChecksumError(
        `frame header checksum mismatch (got ${hex(expected)}, computed ${hex(actual)}): ` +
          `${describeBytes(this.#peek(Math.min(this.#buffered, 64)))}. ${likelyCause(this.#framesSeen, header, this.#scriptNotOpenedHint)}`,
        { expected, actual },
      );
    }
    if (headerWords - 3 > MAX_OPTIONS) {
      throw new MalformedFrameError(`frame declares ${headerWords - 3} options; at most ${MAX_OPTIONS} are allowed`);
    }
    const payloadLength = header.readUInt32LE(2);
    if (payloadLength > this.#maxFrameBytes) {
      throw new FrameTooLargeError(
        `frame payload of ${payloadLength} bytes exceeds the limit of ${this.#maxFrameBytes} bytes`,
        { payloadLength, maxFrameBytes: this.#maxFrameBytes },
      );
    }
    return headerWords * 4 + payloadLength;
  }

  /** The first n buffered bytes, without consuming them (copies only when they span chunks). */
  #peek(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length >= n) return first.subarray(0, n);
    const out = Buffer.allocUnsafe(n);
    let offset = 0;
    for (const chunk of this.#chunks) {
      const count = Math.min(chunk.length, n - offset);
      chunk.copy(out, offset, 0, count);
      offset += count;
      if (offset === n) break;
    }
    return out;
  }

  /** Consumes n bytes: a view when they sit in one chunk, one copy otherwise. */
  #take(n: number): Buffer {
    const first = this.#chunks[0]!;
    if (first.length < n) return Buffer.concat(this.#takeParts(n), n);
    this.#buffered -= n;
    if (first.length === n) this.#chunks.shift();
    else this.#chunks[0] = first.subarray(n);
    return first.subarray(0, n);
  }

  /**
   * Consumes n bytes as views of the chunks they sit in (no copy), dropping the used chunks with one
   * splice (not a shift per chunk: a frame trickling in as thousands of tiny chunks stays linear).
   */
  #takeParts(n: number): Buffer[] {
    const parts: Buffer[] = [];
    let taken = 0;
    let used = 0;
    while (taken < n) {
      const chunk = this.#chunks[used]!;
      const count = Math.min(chunk.length, n - taken);
      if (count === chunk.length) {
        parts.push(chunk);
        used++;
      } else {
        parts.push(chunk.subarray(0, count));
        this.#chunks[used] = chunk.subarray(count);
      }
      taken += count;
    }
    this.#chunks.splice(0, used);
    this.#buffered -= n;
    return parts;
  }
}

/** The option words after the 12-byte header (data frames carry one: the context length). */
function readOptions(head: Buffer, headerWords: number): number[] {
  const options: number[] = [];
  for (let i = 0; i < headerWords - 3; i++) options.push(head.readUInt32LE(HEADER_BYTES + i * 4));
  return options;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

/** RoadRunner's most common support question, answered in the log line (PROTOCOL.md §1, §11.13). */
function likelyCause(framesSeen: number, header: Buffer, scriptNotOpenedHint: () => string): string {
  if (header.subarray(0, 12).toString('latin1') === 'Could not op') return scriptNotOpenedHint();
  const printable = header.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09);
  if (printable || (header[0] === 0xef && header[1] === 0xbb)) {
    return framesSeen === 0
      ? 'Likely cause: the worker printed to stdout before the protocol started (echo, a PHP warning with display_errors=stdout, a BOM, or a write to php://stdout or STDOUT: a logger, a framework rendering its boot error for the console). Send output to stderr (display_errors=stderr), or set server.relay: fds, which keeps the protocol off stdout so any output there is only logged.'
      : "Likely cause: the worker printed to stdout during a request (echo, var_dump, a PHP warning, or a write to php://stdout or STDOUT, which the warmpool SDK's output capture does not see: a logger writing to stdout, Symfony Console rendering an error). Send output to stderr, or set server.relay: fds, which keeps the protocol off stdout so any output there is only logged.";
  }
  return 'Likely cause: the worker wrote bytes outside the protocol, or the stream lost sync.';
}
