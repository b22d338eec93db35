// goridge v1 frame layout (PROTOCOL.md §2). All integers little-endian uint32.
//   0: version<<4 | header length in words   1: flags   2-5: payload length
//   6-9: CRC-32 of bytes 0-5                 10: stream bits   11: reserved   12..: options

import { JOIN_MAX_BYTES, partsLength } from '../chunks.js';
export const FRAME_VERSION = 1;
export const HEADER_BYTES = 12;
export const MAX_OPTIONS = 10;

// flags (byte 1)
export const FLAG_CONTROL = 0x01;
export const FLAG_CODEC_RAW = 0x04;
export const FLAG_CODEC_JSON = 0x08;
export const FLAG_CODEC_MSGPACK = 0x10;
export const FLAG_CODEC_GOB = 0x20;
export const FLAG_ERROR = 0x40;
export const FLAG_CODEC_PROTO = 0x80;

// stream bits (byte 10)
export const STREAM = 0x01;
export const STOP = 0x02;
export const PING = 0x04;
export const PONG = 0x08;

export { JOIN_MAX_BYTES, partsLength };

export interface Frame {
  /** byte 1 */
  flags: number;
  /** byte 10: STREAM | STOP | PING | PONG */
  control: number;
  /** option words; data frames carry exactly one: the context length */
  options: readonly number[];
  /**
   * The payload bytes. For a frame the decoder left in the chunks it arrived in (`parts`), reading
   * this joins them: one copy, made once. Code that can take a list of buffers should use
   * frameBodyParts() instead.
   */
  readonly payload: Buffer;
  /** Set when the payload is still the chunks it arrived in (views, in order, not copied). */
  readonly parts?: readonly Buffer[];
}

/**
 * A large frame kept as the chunks it arrived in: joining a 1 MiB reply costs a copy into fresh
 * memory (page faults) and doubles the external memory V8 must collect, for bytes that are only
 * written to a socket again. `payload` joins on demand for the code that needs one buffer.
 */
export class ChunkedFrame implements Frame {
  readonly flags: number;
  readonly control: number;
  readonly options: readonly number[];
  readonly parts: readonly Buffer[];
  readonly length: number;
  #payload: Buffer | null = null;

  constructor(flags: number, control: number, options: readonly number[], parts: readonly Buffer[], length: number) {
    this.flags = flags;
    this.control = control;
    this.options = options;
    this.parts = parts;
    this.length = length;
  }

  get payload(): Buffer {
    this.#payload ??= Buffer.concat(this.parts, this.length);
    return this.#payload;
  }
}

/** The payload's length, without joining a chunked frame. */
export function payloadLength(frame: Frame): number {
  return frame instanceof ChunkedFrame ? frame.length : frame.payload.length;
}

const CRC_TABLE = (() => {
  const table = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  return table;
})();

/** CRC-32 (IEEE, as PHP crc32()) of buf[start, end). */
export function crc32(buf: Uint8Array, start = 0, end = buf.length): number {
  let crc = -1;
  for (let i = start; i < end; i++) crc = CRC_TABLE[(crc ^ buf[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ -1) >>> 0;
}

function writeHeader(out: Buffer, flags: number, payloadLength: number, control: number, optionCount: number): void {
  out[0] = (FRAME_VERSION << 4) | (3 + optionCount);
  out[1] = flags;
  out.writeUInt32LE(payloadLength, 2);
  out.writeUInt32LE(crc32(out, 0, 6), 6);
  out[10] = control;
  out[11] = 0;
}

/** A frame with no options (control frames, error frames). */
export function encodeFrame(flags: number, payload: Buffer | string = '', control = 0): Buffer {
  const length = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length;
  const out = Buffer.allocUnsafe(HEADER_BYTES + length);
  writeHeader(out, flags, length, control, 0);
  if (typeof payload === 'string') out.write(payload, HEADER_BYTES, 'utf8');
  else payload.copy(out, HEADER_BYTES);
  return out;
}

/**
 * A data frame: one option (the context length), payload = context ‖ body (§2.1).
 * `body` may be a list of buffers (a request body as it arrived). Returns the parts to write
 * together: one buffer for small frames, the head and the body's buffers themselves (not copied)
 * for large ones. Relays write the parts in one writev so the 12-byte header is never split.
 */
export function encodeDataFrame(
  flags: number,
  context: Buffer | string,
  body: Buffer | readonly Buffer[] | null,
  control = 0,
): Buffer[] {
  const contextLength = typeof context === 'string' ? Buffer.byteLength(context) : context.length;
  const single = body === null || Buffer.isBuffer(body);
  const bodyLength = body === null ? 0 : single ? (body as Buffer).length : partsLength(body as readonly Buffer[]);
  const inline = bodyLength <= JOIN_MAX_BYTES;
  const out = Buffer.allocUnsafe(HEADER_BYTES + 4 + contextLength + (inline ? bodyLength : 0));
  writeDataHead(out, flags, context, contextLength, bodyLength, control);
  if (body === null || bodyLength === 0) return [out];
  if (single) {
    if (!inline) return [out, body as Buffer];
    (body as Buffer).copy(out, HEADER_BYTES + 4 + contextLength);
    return [out];
  }
  if (!inline) return [out, ...(body as readonly Buffer[])];
  let offset = HEADER_BYTES + 4 + contextLength;
  for (const part of body as readonly Buffer[]) offset += part.copy(out, offset);
  return [out];
}

/**
 * A data frame's head and context for a body of `bodyLength` bytes written after it (a body in a
 * temp file, sent in pieces): the frame's parts but the body.
 */
export function encodeDataFrameHead(flags: number, context: Buffer | string, bodyLength: number): Buffer {
  const contextLength = typeof context === 'string' ? Buffer.byteLength(context) : context.length;
  const out = Buffer.allocUnsafe(HEADER_BYTES + 4 + contextLength);
  writeDataHead(out, flags, context, contextLength, bodyLength, 0);
  return out;
}

/** A data frame's 12-byte header, its option (the context length) and its context, at the start of `out`. */
function writeDataHead(
  out: Buffer,
  flags: number,
  context: Buffer | string,
  contextLength: number,
  bodyLength: number,
  control: number,
): void {
  writeHeader(out, flags, contextLength + bodyLength, control, 1);
  out.writeUInt32LE(contextLength, HEADER_BYTES);
  if (typeof context === 'string') out.write(context, HEADER_BYTES + 4, 'utf8');
  else context.copy(out, HEADER_BYTES + 4);
}

/** The context part of a data frame (empty when the frame has no option). */
export function frameContext(frame: Frame): Buffer {
  const length = frame.options[0] ?? 0;
  const parts = frame.parts;
  // the context is small and almost always inside the first chunk: a view, no join
  if (parts !== undefined && parts[0]!.length < length) return Buffer.concat(sliceParts(parts, 0, length), length);
  return parts !== undefined ? parts[0]!.subarray(0, length) : frame.payload.subarray(0, length);
}

/** The body part of a data frame (the whole payload when the frame has no option). Joins a chunked frame. */
export function frameBody(frame: Frame): Buffer {
  const length = frame.options[0];
  return length === undefined ? frame.payload : frame.payload.subarray(length);
}

/** The body part of a data frame as buffers to write in order: views of a chunked frame's parts, no copy. */
export function frameBodyParts(frame: Frame): readonly Buffer[] {
  const parts = frame.parts;
  if (parts === undefined) return [frameBody(frame)];
  return sliceParts(parts, frame.options[0] ?? 0, Infinity);
}

/** Views of bytes [start, end) of a list of buffers taken as one. */
function sliceParts(parts: readonly Buffer[], start: number, end: number): Buffer[] {
  const out: Buffer[] = [];
  let offset = 0;
  for (const part of parts) {
    const from = Math.max(start - offset, 0);
    const to = Math.min(end - offset, part.length);
    if (from < to) out.push(from === 0 && to === part.length ? part : part.subarray(from, to));
    offset += part.length;
    if (offset >= end) break;
  }
  return out;
}

/** Human-readable first bytes of what a worker sent, for log lines about broken frames. */
export function describeBytes(bytes: Uint8Array, max = 48): string {
  const head = Buffer.from(bytes.subarray(0, max));
  const text = head.toString('latin1').replace(/[^\x20-\x7e]/g, '.');
  return `${JSON.stringify(text)} (hex ${head.toString('hex')}${bytes.length > max ? '…' : ''})`;
}
