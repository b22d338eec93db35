// FastCGI 1.0 records (the specification's §3 and §5; its §8 gives the C structs).
//   header: version(1) type(1) requestId(2, BE) contentLength(2, BE) paddingLength(1) reserved(1)
//   then contentLength bytes of content and paddingLength bytes of padding.
// Encoders build what a web server sends (and, for tests, what an application answers); the
// incremental decoder is in decoder.ts.
import { FastCgiMalformedRecordError, FastCgiParamTooLargeError } from '../errors.js';
import { EncodedParams } from './params.js';

export const FCGI_VERSION = 1;
export const RECORD_HEADER_BYTES = 8;
/** The content length field is 16 bits. */
export const MAX_CONTENT_BYTES = 0xffff;
/**
 * The most content we put in one record: a multiple of 8, so that with its padding a record stays
 * within 65535 bytes. php's fastcgi.c refuses a PARAMS or BEGIN_REQUEST record whose content plus
 * padding exceeds 65535, and it writes 0xfff8-byte records itself.
 */
export const MAX_WRITE_CONTENT_BYTES = 0xfff8;
/** Management records (GET_VALUES, UNKNOWN_TYPE) use request id 0. */
export const MANAGEMENT_REQUEST_ID = 0;

export const RecordType = {
  BEGIN_REQUEST: 1,
  ABORT_REQUEST: 2,
  END_REQUEST: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  STDERR: 7,
  DATA: 8,
  GET_VALUES: 9,
  GET_VALUES_RESULT: 10,
  UNKNOWN_TYPE: 11,
} as const;
export type RecordTypeName = keyof typeof RecordType;

export const Role = { RESPONDER: 1, AUTHORIZER: 2, FILTER: 3 } as const;

/** BEGIN_REQUEST flag: keep the connection open after END_REQUEST. */
export const FLAG_KEEP_CONN = 1;

export const ProtocolStatus = {
  REQUEST_COMPLETE: 0,
  CANT_MPX_CONN: 1,
  OVERLOADED: 2,
  UNKNOWN_ROLE: 3,
} as const;

/** The management variables a web server may ask for with GET_VALUES (§4.1). */
export const GET_VALUES_NAMES: readonly string[] = Object.freeze([
  'FCGI_MAX_CONNS',
  'FCGI_MAX_REQS',
  'FCGI_MPXS_CONNS',
]);

export interface FastCgiRecord {
  type: number;
  requestId: number;
  /** The content without padding; a view of the bytes read when they arrived in one chunk. */
  content: Buffer;
}

export interface EndRequestBody {
  appStatus: number;
  protocolStatus: number;
}

export interface BeginRequestBody {
  role: number;
  keepConn: boolean;
}

/** A record's name for messages: "STDOUT", or "type 42" for types FastCGI 1.0 does not define. */
export function recordTypeName(type: number): string {
  for (const [name, value] of Object.entries(RecordType)) if (value === type) return name;
  return `type ${type}`;
}

/** The padding that aligns content to 8 bytes, as the specification recommends and php does. */
export function paddingFor(contentLength: number): number {
  return -contentLength & 7;
}

export function encodeRecordHeader(
  type: number,
  requestId: number,
  contentLength: number,
  paddingLength: number = paddingFor(contentLength),
): Buffer {
  if (contentLength < 0 || contentLength > MAX_CONTENT_BYTES || !Number.isInteger(contentLength)) {
    throw new RangeError(`record content length ${contentLength} is outside 0..${MAX_CONTENT_BYTES}`);
  }
  const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  header[0] = FCGI_VERSION;
  header[1] = type;
  header.writeUInt16BE(requestId, 2);
  header.writeUInt16BE(contentLength, 4);
  header[6] = paddingLength;
  header[7] = 0;
  return header;
}

const EMPTY = Buffer.alloc(0);
const ZEROES = Buffer.alloc(255);

/** One whole record as one buffer (the content is copied: meant for small records). */
export function encodeRecord(
  type: number,
  requestId: number,
  content: Buffer = EMPTY,
  paddingLength: number = paddingFor(content.length),
): Buffer {
  const out = Buffer.alloc(RECORD_HEADER_BYTES + content.length + paddingLength);
  encodeRecordHeader(type, requestId, content.length, paddingLength).copy(out, 0);
  content.copy(out, RECORD_HEADER_BYTES);
  return out;
}

/**
 * A stream's data (STDIN, and STDOUT/STDERR in test servers) as records: headers and padding are
 * new buffers, the data itself is sliced, never copied. Empty data gives no records; the empty
 * record that ends a stream is encodeRecord(type, requestId).
 */
export function encodeStreamRecords(type: number, requestId: number, data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += MAX_WRITE_CONTENT_BYTES) {
    const part = data.subarray(offset, offset + MAX_WRITE_CONTENT_BYTES);
    const padding = paddingFor(part.length);
    out.push(encodeRecordHeader(type, requestId, part.length, padding), part);
    if (padding > 0) out.push(ZEROES.subarray(0, padding));
  }
  return out;
}

export function encodeBeginRequest(requestId: number, options: { role?: number; keepConn?: boolean } = {}): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt16BE(options.role ?? Role.RESPONDER, 0);
  body[2] = (options.keepConn ?? true) ? FLAG_KEEP_CONN : 0;
  return encodeRecord(RecordType.BEGIN_REQUEST, requestId, body);
}

export function decodeBeginRequest(content: Buffer): BeginRequestBody {
  expectBodyLength(RecordType.BEGIN_REQUEST, content);
  return { role: content.readUInt16BE(0), keepConn: (content[2]! & FLAG_KEEP_CONN) !== 0 };
}

export function encodeAbortRequest(requestId: number): Buffer {
  return encodeRecord(RecordType.ABORT_REQUEST, requestId);
}

export function encodeEndRequest(requestId: number, appStatus: number, protocolStatus: number): Buffer {
  const body = Buffer.alloc(8);
  body.writeUInt32BE(appStatus >>> 0, 0);
  body[4] = protocolStatus;
  return encodeRecord(RecordType.END_REQUEST, requestId, body);
}

export function decodeEndRequest(content: Buffer): EndRequestBody {
  expectBodyLength(RecordType.END_REQUEST, content);
  return { appStatus: content.readUInt32BE(0), protocolStatus: content[4]! };
}

export function encodeUnknownType(unknownType: number): Buffer {
  const body = Buffer.alloc(8);
  body[0] = unknownType;
  return encodeRecord(RecordType.UNKNOWN_TYPE, MANAGEMENT_REQUEST_ID, body);
}

export function decodeUnknownType(content: Buffer): number {
  expectBodyLength(RecordType.UNKNOWN_TYPE, content);
  return content[0]!;
}

/** The content length each fixed-size body must have; the decoder checks it as records arrive. */
export const FIXED_BODY_BYTES: ReadonlyMap<number, number> = new Map([
  [RecordType.BEGIN_REQUEST, 8],
  [RecordType.END_REQUEST, 8],
  [RecordType.UNKNOWN_TYPE, 8],
]);

function expectBodyLength(type: number, content: Buffer): void {
  const expected = FIXED_BODY_BYTES.get(type)!;
  if (content.length !== expected) {
    throw new FastCgiMalformedRecordError(
      `${recordTypeName(type)} record has ${content.length} content bytes; FastCGI 1.0 defines ${expected}`,
      { type, contentLength: content.length },
    );
  }
}

// ---- name-value pairs (§3.4): PARAMS, GET_VALUES, GET_VALUES_RESULT ----

/**
 * Params as ordered pairs, or a plain object (values may be bytes: a header's exact octets), or
 * already encoded (encodeFastCgiParams).
 */
export type FastCgiParams =
  | Iterable<readonly [string, string | Buffer]>
  | Readonly<Record<string, string | Buffer>>
  | EncodedParams;

function lengthBytes(length: number): number {
  return length < 0x80 ? 1 : 4;
}

function writeLength(out: Buffer, offset: number, length: number): number {
  if (length < 0x80) {
    out[offset] = length;
    return offset + 1;
  }
  out.writeUInt32BE((length | 0x80000000) >>> 0, offset);
  return offset + 4;
}

/** One pair: lengths of 1 byte below 128, else 4 bytes with the high bit set. */
export function encodeNameValuePair(name: string | Buffer, value: string | Buffer): Buffer {
  const n = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  if (n.length > 0x7fffffff || v.length > 0x7fffffff) throw new RangeError('a name or value is over 2^31 - 1 bytes');
  const out = Buffer.allocUnsafe(lengthBytes(n.length) + lengthBytes(v.length) + n.length + v.length);
  let offset = writeLength(out, 0, n.length);
  offset = writeLength(out, offset, v.length);
  n.copy(out, offset);
  v.copy(out, offset + n.length);
  return out;
}

/** Pairs in one record's content, as bytes; throws when a length runs past the content. */
export function decodeNameValuePairs(content: Buffer): Array<[Buffer, Buffer]> {
  const pairs: Array<[Buffer, Buffer]> = [];
  let offset = 0;
  const readLength = (): number => {
    if (offset >= content.length) throw malformedPairs(content, offset);
    const first = content[offset]!;
    if (first < 0x80) {
      offset += 1;
      return first;
    }
    if (offset + 4 > content.length) throw malformedPairs(content, offset);
    const length = content.readUInt32BE(offset) & 0x7fffffff;
    offset += 4;
    return length;
  };
  while (offset < content.length) {
    const nameLength = readLength();
    const valueLength = readLength();
    if (nameLength + valueLength > content.length - offset) throw malformedPairs(content, offset);
    const name = content.subarray(offset, offset + nameLength);
    const value = content.subarray(offset + nameLength, offset + nameLength + valueLength);
    pairs.push([name, value]);
    offset += nameLength + valueLength;
  }
  return pairs;
}

function malformedPairs(content: Buffer, offset: number): FastCgiMalformedRecordError {
  return new FastCgiMalformedRecordError(
    `name-value pairs cut short at byte ${offset} of ${content.length}: a length runs past the record`,
    { offset, contentLength: content.length },
  );
}

function* entriesOf(params: FastCgiParams): Iterable<readonly [string, string | Buffer]> {
  if (Symbol.iterator in params) yield* params as Iterable<readonly [string, string | Buffer]>;
  else for (const name of Object.keys(params)) yield [name, (params as Record<string, string | Buffer>)[name]!];
}

/** Where the pairs of a PARAMS stream go: each pair's byte lengths, and the records they fill. */
interface ParamsLayout {
  names: Array<string | Buffer>;
  values: Array<string | Buffer>;
  /** name bytes, value bytes, for each pair */
  lengths: number[];
  /** where each record starts (an index into the pairs), and its content bytes */
  records: Array<{ first: number; bytes: number }>;
  /** every PARAMS record, the empty one that ends the stream included */
  totalBytes: number;
}

function layoutParams(params: Exclude<FastCgiParams, EncodedParams>): ParamsLayout {
  const names: Array<string | Buffer> = [];
  const values: Array<string | Buffer> = [];
  const lengths: number[] = [];
  const records: Array<{ first: number; bytes: number }> = [];
  let current = { first: 0, bytes: 0 };
  let total = RECORD_HEADER_BYTES; // the empty record that ends the stream
  for (const [name, value] of entriesOf(params)) {
    const nameBytes = typeof name === 'string' ? stringBytes(name) : (name as Buffer).length;
    const valueBytes = typeof value === 'string' ? stringBytes(value) : (value as Buffer).length;
    if (nameBytes > 0x7fffffff || valueBytes > 0x7fffffff)
      throw new RangeError('a name or value is over 2^31 - 1 bytes');
    const pair = lengthBytes(nameBytes) + lengthBytes(valueBytes) + nameBytes + valueBytes;
    if (pair > MAX_WRITE_CONTENT_BYTES) {
      throw new FastCgiParamTooLargeError(
        `FastCGI param ${name} is ${pair} bytes with its name; one PARAMS record holds ${MAX_WRITE_CONTENT_BYTES}`,
        { name, bytes: pair },
      );
    }
    if (current.bytes + pair > MAX_WRITE_CONTENT_BYTES) {
      records.push(current);
      current = { first: names.length, bytes: 0 };
    }
    names.push(name);
    values.push(value);
    lengths.push(nameBytes, valueBytes);
    current.bytes += pair;
  }
  if (current.bytes > 0) records.push(current);
  for (const record of records) total += RECORD_HEADER_BYTES + record.bytes + paddingFor(record.bytes);
  return { names, values, lengths, records, totalBytes: total };
}

/** Writes a record header at `offset`; returns the offset after it. */
function writeRecordHeader(
  out: Buffer,
  offset: number,
  type: number,
  requestId: number,
  contentBytes: number,
  padding: number,
): number {
  out[offset] = FCGI_VERSION;
  out[offset + 1] = type;
  out[offset + 2] = requestId >>> 8;
  out[offset + 3] = requestId & 0xff;
  out[offset + 4] = contentBytes >>> 8;
  out[offset + 5] = contentBytes & 0xff;
  out[offset + 6] = padding;
  out[offset + 7] = 0;
  return offset + RECORD_HEADER_BYTES;
}

/** Writes the PARAMS records of a layout at `offset`; returns the offset after the last one. */
function writeParams(out: Buffer, offset: number, requestId: number, layout: ParamsLayout | EncodedParams): number {
  if (layout instanceof EncodedParams) return writeEncodedParams(out, offset, requestId, layout);
  const { names, values, lengths, records } = layout;
  for (let r = 0; r < records.length; r++) {
    const { first, bytes } = records[r]!;
    const end = r + 1 < records.length ? records[r + 1]!.first : names.length;
    const padding = paddingFor(bytes);
    offset = writeRecordHeader(out, offset, RecordType.PARAMS, requestId, bytes, padding);
    for (let i = first; i < end; i++) {
      offset = writeLength(out, offset, lengths[2 * i]!);
      offset = writeLength(out, offset, lengths[2 * i + 1]!);
      offset += writeBytes(out, offset, names[i]!);
      offset += writeBytes(out, offset, values[i]!);
    }
    out.fill(0, offset, offset + padding);
    offset += padding;
  }
  return writeRecordHeader(out, offset, RecordType.PARAMS, requestId, 0, 0);
}

/**
 * The PARAMS stream: pairs packed whole into records of at most MAX_WRITE_CONTENT_BYTES (php parses
 * each record on its own, so a pair never spans two), then the empty PARAMS record that ends it.
 * Everything is written into one buffer (a request's params are a few hundred bytes to a few KB):
 * one allocation, one iovec, instead of three buffers per pair.
 */
export function encodeParams(requestId: number, params: FastCgiParams): Buffer[] {
  const layout = params instanceof EncodedParams ? params : layoutParams(params);
  const out = Buffer.allocUnsafe(paramsBytes(layout));
  writeParams(out, 0, requestId, layout);
  return [out];
}

/** Bytes of the PARAMS stream, the empty record that ends it included. */
function paramsBytes(layout: ParamsLayout | EncodedParams): number {
  if (!(layout instanceof EncodedParams)) return layout.totalBytes;
  let total = RECORD_HEADER_BYTES;
  let start = 0;
  for (let r = 0; r <= layout.breaks.length; r++) {
    const end = r < layout.breaks.length ? layout.breaks[r]! : layout.bytes.length;
    if (end > start) total += RECORD_HEADER_BYTES + (end - start) + paddingFor(end - start);
    start = end;
  }
  return total;
}

function writeEncodedParams(out: Buffer, offset: number, requestId: number, params: EncodedParams): number {
  const { bytes, breaks } = params;
  let start = 0;
  for (let r = 0; r <= breaks.length; r++) {
    const end = r < breaks.length ? breaks[r]! : bytes.length;
    const length = end - start;
    if (length > 0) {
      const padding = paddingFor(length);
      offset = writeRecordHeader(out, offset, RecordType.PARAMS, requestId, length, padding);
      offset += bytes.copy(out, offset, start, end);
      out.fill(0, offset, offset + padding);
      offset += padding;
    }
    start = end;
  }
  return writeRecordHeader(out, offset, RecordType.PARAMS, requestId, 0, 0);
}

const BEGIN_REQUEST_BYTES = RECORD_HEADER_BYTES + 8;

/**
 * The start of a responder request in one buffer: BEGIN_REQUEST (keep the connection), the PARAMS
 * stream, and, when `stdin` is given, the whole STDIN stream (its records and the empty one that
 * ends it). One allocation and one write for a request without a body, or with a small one.
 */
export function encodeRequestHead(requestId: number, params: FastCgiParams, stdin: Uint8Array | null): Buffer {
  const layout = params instanceof EncodedParams ? params : layoutParams(params);
  let stdinBytes = 0;
  if (stdin !== null) {
    for (let offset = 0; offset < stdin.length; offset += MAX_WRITE_CONTENT_BYTES) {
      const part = Math.min(MAX_WRITE_CONTENT_BYTES, stdin.length - offset);
      stdinBytes += RECORD_HEADER_BYTES + part + paddingFor(part);
    }
    stdinBytes += RECORD_HEADER_BYTES;
  }
  const out = Buffer.allocUnsafe(BEGIN_REQUEST_BYTES + paramsBytes(layout) + stdinBytes);
  let offset = writeRecordHeader(out, 0, RecordType.BEGIN_REQUEST, requestId, 8, 0);
  out[offset] = 0;
  out[offset + 1] = Role.RESPONDER;
  out[offset + 2] = FLAG_KEEP_CONN;
  out.fill(0, offset + 3, offset + 8);
  offset = writeParams(out, offset + 8, requestId, layout);
  if (stdin !== null) {
    for (let start = 0; start < stdin.length; start += MAX_WRITE_CONTENT_BYTES) {
      const part = Math.min(MAX_WRITE_CONTENT_BYTES, stdin.length - start);
      const padding = paddingFor(part);
      offset = writeRecordHeader(out, offset, RecordType.STDIN, requestId, part, padding);
      out.set(stdin.subarray(start, start + part), offset);
      offset += part;
      out.fill(0, offset, offset + padding);
      offset += padding;
    }
    writeRecordHeader(out, offset, RecordType.STDIN, requestId, 0, 0);
  }
  return out;
}

/** UTF-8 length; the ASCII params a request is made of are counted in JS, without a call into C++. */
function stringBytes(text: string): number {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return Buffer.byteLength(text, 'utf8');
  return text.length;
}

function writeBytes(out: Buffer, offset: number, data: string | Buffer): number {
  if (typeof data !== 'string') return data.copy(out, offset);
  // short ASCII strings: a JS loop is faster than a call into C++ per param
  if (data.length <= 64) {
    let ascii = true;
    for (let i = 0; i < data.length; i++) {
      const c = data.charCodeAt(i);
      if (c > 0x7f) {
        ascii = false;
        break;
      }
      out[offset + i] = c;
    }
    if (ascii) return data.length;
  }
  return out.write(data, offset, 'utf8');
}

/** A GET_VALUES query (request id 0); values are sent empty, as §4.1 says. */
export function encodeGetValues(names: readonly string[] = GET_VALUES_NAMES): Buffer {
  const content = Buffer.concat(names.map((name) => encodeNameValuePair(name, '')));
  return encodeRecord(RecordType.GET_VALUES, MANAGEMENT_REQUEST_ID, content);
}

/** GET_VALUES_RESULT content as a name → value map (names and values are ASCII). */
export function decodeGetValuesResult(content: Buffer): Record<string, string> {
  const values: Record<string, string> = Object.create(null);
  for (const [name, value] of decodeNameValuePairs(content)) values[name.toString('latin1')] = value.toString('latin1');
  return values;
}
