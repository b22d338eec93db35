// The RoadRunner HTTP payload contexts (PROTOCOL.md §5, §6) in both codecs: JSON (RR <= 2023,
// every PHP library version) and protobuf http.v1 (RR >= 2024.1). The body travels after the
// context in the same data frame and is not touched here.
import { BadContextError } from '../errors.js';
import { FLAG_CODEC_JSON, FLAG_CODEC_PROTO } from './frame.js';

export type Codec = 'json' | 'proto';

export type HeaderMap = Record<string, string[]>;

export interface HttpRequestContext {
  /** client IP without port */
  remoteAddr: string;
  /** HTTP/1.0 | HTTP/1.1 | HTTP/2.0 */
  protocol: string;
  method: string;
  /** absolute URL (RR quirk: PHP's REQUEST_URI is the full URL) */
  uri: string;
  /** canonical names, Host excluded */
  headers: HeaderMap;
  cookies: Record<string, string>;
  rawQuery: string;
  /** true when the body is a JSON tree of parsed form fields */
  parsed: boolean;
  /** upload tree (JSON-able) or null */
  uploads: unknown;
  attributes: HeaderMap | null;
}

export interface HttpResponseContext {
  status: number;
  headers: HeaderMap;
}

export interface EncodedContext {
  flags: number;
  context: Buffer | string;
}

export function encodeRequestContext(ctx: HttpRequestContext, codec: Codec): EncodedContext {
  if (codec === 'json') return { flags: FLAG_CODEC_JSON, context: JSON.stringify(ctx) };
  return { flags: FLAG_CODEC_PROTO, context: encodeProtoRequest(ctx) };
}

/** Decodes a reply context by the frame's own flags: 0x80 protobuf, 0x08 or 0x00 JSON (§5.1). */
export function decodeResponseContext(flags: number, context: Buffer): HttpResponseContext {
  if ((flags & FLAG_CODEC_PROTO) !== 0) return decodeProtoResponse(context);
  let parsed: unknown;
  try {
    parsed = JSON.parse(context.toString('utf8'));
  } catch (cause) {
    throw new BadContextError(
      `response context is not valid JSON: ${JSON.stringify(context.subarray(0, 80).toString('utf8'))}`,
      { cause },
    );
  }
  if (parsed === null || typeof parsed !== 'object') {
    throw new BadContextError('response context is not a JSON object');
  }
  const { status, headers } = parsed as { status?: unknown; headers?: unknown };
  if (typeof status !== 'number' || !Number.isInteger(status)) {
    throw new BadContextError(`response context has no integer "status": ${JSON.stringify(status)}`);
  }
  return { status, headers: normalizeHeaders(headers) };
}

/** PHP may send `[]` for no headers, or scalar values; shape them as name → string[]. */
function normalizeHeaders(headers: unknown): HeaderMap {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) return {};
  const out: HeaderMap = Object.create(null);
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    if (Array.isArray(value)) out[name] = value.map(String);
    else if (value !== null && value !== undefined) out[name] = [String(value)];
  }
  return out;
}

// ---- protobuf http.v1 (§5.2): hand-written, two passes (size, then write) into one buffer ----

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

function fieldSize(bytes: number): number {
  return 1 + varintSize(bytes) + bytes;
}

function headerValueSize(values: readonly string[]): number {
  let size = 0;
  for (const v of values) size += fieldSize(Buffer.byteLength(v));
  return size;
}

function mapEntrySize(key: string, values: readonly string[]): number {
  return fieldSize(Buffer.byteLength(key)) + fieldSize(headerValueSize(values));
}

function mapSize(map: HeaderMap | null): number {
  if (map === null) return 0;
  let size = 0;
  for (const key in map) size += fieldSize(mapEntrySize(key, map[key]!));
  return size;
}

class ProtoWriter {
  readonly buf: Buffer;
  pos = 0;
  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }
  varint(n: number): void {
    while (n >= 0x80) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }
  string(tag: number, value: string): void {
    if (value === '') return;
    this.buf[this.pos++] = tag;
    this.varint(Buffer.byteLength(value));
    this.pos += this.buf.write(value, this.pos, 'utf8');
  }
  map(tag: number, map: HeaderMap | null): void {
    if (map === null) return;
    for (const key in map) {
      const values = map[key]!;
      const valueSize = headerValueSize(values);
      this.buf[this.pos++] = tag;
      this.varint(mapEntrySize(key, values));
      this.buf[this.pos++] = 0x0a;
      this.varint(Buffer.byteLength(key));
      this.pos += this.buf.write(key, this.pos, 'utf8');
      this.buf[this.pos++] = 0x12;
      this.varint(valueSize);
      for (const v of values) {
        this.buf[this.pos++] = 0x0a;
        this.varint(Buffer.byteLength(v));
        this.pos += this.buf.write(v, this.pos, 'utf8');
      }
    }
  }
}

function stringFieldSize(value: string): number {
  return value === '' ? 0 : fieldSize(Buffer.byteLength(value));
}

function cookiesAsMap(cookies: Record<string, string>): HeaderMap | null {
  let map: HeaderMap | null = null;
  for (const name in cookies) {
    map ??= Object.create(null) as HeaderMap;
    map[name] = [cookies[name]!];
  }
  return map;
}

export function encodeProtoRequest(ctx: HttpRequestContext): Buffer {
  const cookies = cookiesAsMap(ctx.cookies);
  const uploads = ctx.uploads === null || ctx.uploads === undefined ? '' : JSON.stringify(ctx.uploads);
  const size =
    stringFieldSize(ctx.remoteAddr) +
    stringFieldSize(ctx.protocol) +
    stringFieldSize(ctx.method) +
    stringFieldSize(ctx.uri) +
    mapSize(ctx.headers) +
    mapSize(cookies) +
    stringFieldSize(ctx.rawQuery) +
    (ctx.parsed ? 2 : 0) +
    stringFieldSize(uploads) +
    mapSize(ctx.attributes);
  const w = new ProtoWriter(size);
  w.string(0x0a, ctx.remoteAddr);
  w.string(0x12, ctx.protocol);
  w.string(0x1a, ctx.method);
  w.string(0x22, ctx.uri);
  w.map(0x2a, ctx.headers);
  w.map(0x32, cookies);
  w.string(0x3a, ctx.rawQuery);
  if (ctx.parsed) {
    w.buf[w.pos++] = 0x40;
    w.buf[w.pos++] = 1;
  }
  w.string(0x4a, uploads);
  w.map(0x52, ctx.attributes);
  return w.buf;
}

class ProtoReader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }
  get done(): boolean {
    return this.pos >= this.end;
  }
  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new BadContextError('protobuf context truncated inside a varint');
      const byte = this.buf[this.pos++]!;
      result += (byte & 0x7f) * mul;
      if (byte < 0x80) return result;
      mul *= 128;
    }
    throw new BadContextError('protobuf varint too long');
  }
  /** Returns [start, end) of a length-delimited field. */
  span(): [number, number] {
    const length = this.varint();
    const start = this.pos;
    const end = start + length;
    if (end > this.end) throw new BadContextError('protobuf length-delimited field runs past the context');
    this.pos = end;
    return [start, end];
  }
  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.pos += 8;
        return;
      case 2:
        this.span();
        return;
      case 5:
        this.pos += 4;
        return;
      default:
        throw new BadContextError(`protobuf wire type ${wireType} is not supported`);
    }
  }
}

function readHeaderEntry(r: ProtoReader, into: HeaderMap): void {
  const [start, end] = r.span();
  const entry = new ProtoReader(r.buf, start, end);
  let key = '';
  const values: string[] = [];
  while (!entry.done) {
    const tag = entry.varint();
    if (tag === 0x0a) {
      const [s, e] = entry.span();
      key = r.buf.toString('utf8', s, e);
    } else if (tag === 0x12) {
      const [s, e] = entry.span();
      const value = new ProtoReader(r.buf, s, e);
      while (!value.done) {
        const vtag = value.varint();
        if (vtag === 0x0a) {
          const [vs, ve] = value.span();
          values.push(r.buf.toString('utf8', vs, ve));
        } else value.skip(vtag & 7);
      }
    } else entry.skip(tag & 7);
  }
  const existing = into[key];
  if (existing === undefined) into[key] = values;
  else existing.push(...values);
}

export function decodeProtoResponse(context: Buffer): HttpResponseContext {
  const r = new ProtoReader(context);
  let status = 0;
  // Null prototype: a header named __proto__ is just a key.
  const headers: HeaderMap = Object.create(null);
  while (!r.done) {
    const tag = r.varint();
    if (tag === 0x08) status = r.varint();
    else if (tag === 0x12) readHeaderEntry(r, headers);
    else r.skip(tag & 7);
  }
  return { status, headers };
}

/** Decodes a protobuf http.v1 Request (used by tests and the bench floor to check what we send). */
export function decodeProtoRequest(context: Buffer): HttpRequestContext {
  const r = new ProtoReader(context);
  const ctx: HttpRequestContext = {
    remoteAddr: '',
    protocol: '',
    method: '',
    uri: '',
    headers: Object.create(null),
    cookies: Object.create(null),
    rawQuery: '',
    parsed: false,
    uploads: null,
    attributes: null,
  };
  const text = (): string => {
    const [s, e] = r.span();
    return context.toString('utf8', s, e);
  };
  while (!r.done) {
    const tag = r.varint();
    switch (tag) {
      case 0x0a:
        ctx.remoteAddr = text();
        break;
      case 0x12:
        ctx.protocol = text();
        break;
      case 0x1a:
        ctx.method = text();
        break;
      case 0x22:
        ctx.uri = text();
        break;
      case 0x2a:
        readHeaderEntry(r, ctx.headers);
        break;
      case 0x32: {
        const cookies: HeaderMap = Object.create(null);
        readHeaderEntry(r, cookies);
        for (const [k, v] of Object.entries(cookies)) ctx.cookies[k] = v.join(',');
        break;
      }
      case 0x3a:
        ctx.rawQuery = text();
        break;
      case 0x40:
        ctx.parsed = r.varint() !== 0;
        break;
      case 0x4a:
        ctx.uploads = JSON.parse(text());
        break;
      case 0x52:
        ctx.attributes ??= Object.create(null) as HeaderMap;
        readHeaderEntry(r, ctx.attributes);
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return ctx;
}

/** Encodes a protobuf http.v1 Response (tests and fixtures use it to play the worker's side). */
export function encodeProtoResponse(res: HttpResponseContext): Buffer {
  const size = 1 + varintSize(res.status) + mapSize(res.headers);
  const w = new ProtoWriter(size);
  w.buf[w.pos++] = 0x08;
  w.varint(res.status);
  w.map(0x12, res.headers);
  return w.buf;
}
