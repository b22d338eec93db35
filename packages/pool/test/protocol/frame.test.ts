import { describe, expect, it } from 'vitest';
import { PONG_FRAME, STOP_COMMAND, STOP_STREAM_FRAME, encodePidRequest } from '../../src/protocol/control.js';
import {
  FLAG_CODEC_JSON,
  FLAG_CODEC_PROTO,
  FLAG_CONTROL,
  FLAG_ERROR,
  HEADER_BYTES,
  PING,
  PONG,
  STOP,
  STREAM,
  crc32,
  describeBytes,
  encodeDataFrame,
  encodeFrame,
  frameBody,
  frameContext,
  type Frame,
} from '../../src/protocol/frame.js';

/** Bytes from the hex dumps of PROTOCOL.md §10 (spaces and newlines ignored). */
function hex(dump: string): Buffer {
  return Buffer.from(dump.replace(/\s+/g, ''), 'hex');
}

function concat(parts: Buffer[]): Buffer {
  return Buffer.concat(parts);
}

// §10.2 request context (protobuf), §10.3 response context (protobuf).
const REQUEST_CONTEXT_10_2 = hex(`
  0a 09 31 32 37 2e 30 2e 30 2e 31 12 08 48 54 54
  50 2f 31 2e 31 1a 03 47 45 54 22 1f 68 74 74 70
  3a 2f 2f 6c 6f 63 61 6c 68 6f 73 74 3a 38 30 38
  30 2f 68 65 6c 6c 6f 3f 78 3d 31 2a 16 0a 0a 55
  73 65 72 2d 41 67 65 6e 74 12 08 0a 06 63 75 72
  6c 2f 38 3a 03 78 3d 31`);
const RESPONSE_CONTEXT_10_3 = hex(`
  08 c8 01 12 1c 0a 0c 43 6f 6e 74 65 6e 74 2d 54
  79 70 65 12 0c 0a 0a 74 65 78 74 2f 70 6c 61 69
  6e`);

describe('crc32', () => {
  it('matches the IEEE/zlib check values (PHP crc32())', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
    expect(crc32(Buffer.from('a'))).toBe(0xe8b7be43);
    expect(crc32(Buffer.from('The quick brown fox jumps over the lazy dog'))).toBe(0x414fa339);
    expect(crc32(Buffer.alloc(32, 0xff))).toBe(0xff6cab0b);
  });

  it('returns an unsigned 32-bit integer', () => {
    const value = crc32(Buffer.from('123456789'));
    expect(value).toBeGreaterThan(0x7fffffff);
    expect(value >>> 0).toBe(value);
  });

  it('covers only [start, end)', () => {
    const buf = Buffer.from('xx123456789yy');
    expect(crc32(buf, 2, 11)).toBe(0xcbf43926);
    expect(crc32(buf, 2, 2)).toBe(0);
  });

  it('gives the header CRCs of §10 (bytes 0-5 only)', () => {
    expect(crc32(hex('13 09 0d 00 00 00'))).toBe(0xcbfa6b3a);
    expect(crc32(hex('13 00 00 00 00 00'))).toBe(0x3480d196);
  });
});

describe('encodeFrame', () => {
  it('builds the pid request of §10.1 (server pid 21705)', () => {
    const expected = concat([hex('13 09 0d 00 00 00 3a 6b fa cb 00 00'), Buffer.from('{"pid":21705}')]);
    expect(encodeFrame(FLAG_CONTROL | FLAG_CODEC_JSON, '{"pid":21705}')).toEqual(expected);
    expect(encodePidRequest(21705)).toEqual(expected);
    expect(hex('13 09 0d 00 00 00 3a 6b fa cb 00 00 7b 22 70 69 64 22 3a 32 31 37 30 35 7d')).toEqual(expected);
  });

  it('builds the worker pid reply of §10.1 (CONTROL only)', () => {
    const expected = hex('13 01 0d 00 00 00 fb 20 8a fb 00 00 7b 22 70 69 64 22 3a 32 31 37 31 36 7d');
    expect(encodeFrame(FLAG_CONTROL, '{"pid":21716}')).toEqual(expected);
    expect(encodeFrame(FLAG_CONTROL, Buffer.from('{"pid":21716}'))).toEqual(expected);
  });

  it('builds the stop command with the pid request header (§3.2, §10.1)', () => {
    const expected = concat([hex('13 09 0d 00 00 00 3a 6b fa cb 00 00'), Buffer.from('{"stop":true}')]);
    expect(STOP_COMMAND).toEqual(expected);
    expect(encodeFrame(FLAG_CONTROL | FLAG_CODEC_JSON, '{"stop":true}')).toEqual(expected);
  });

  it('builds the PONG and STOP frames of §10.5', () => {
    const pong = hex('13 00 00 00 00 00 96 d1 80 34 08 00');
    const stop = hex('13 00 00 00 00 00 96 d1 80 34 02 00');
    expect(encodeFrame(0, '', PONG)).toEqual(pong);
    expect(PONG_FRAME).toEqual(pong);
    expect(encodeFrame(0, '', STOP)).toEqual(stop);
    expect(STOP_STREAM_FRAME).toEqual(stop);
    expect(encodeFrame(0, Buffer.alloc(0), PONG)).toEqual(pong);
  });

  it('builds the error frame header of §10.6', () => {
    const message = 'x'.repeat(0x6b);
    const frame = encodeFrame(FLAG_ERROR, message);
    expect(frame.subarray(0, HEADER_BYTES)).toEqual(hex('13 40 6b 00 00 00 dd f9 54 80 00 00'));
    expect(frame.subarray(HEADER_BYTES).toString()).toBe(message);
  });

  it('counts a string payload in UTF-8 bytes, not characters', () => {
    const frame = encodeFrame(FLAG_ERROR, 'é😀');
    expect(frame.length).toBe(HEADER_BYTES + 6);
    expect(frame.readUInt32LE(2)).toBe(6);
    expect(frame.subarray(HEADER_BYTES).toString('utf8')).toBe('é😀');
    expect(frame.readUInt32LE(6)).toBe(crc32(frame, 0, 6));
  });
});

describe('encodeDataFrame', () => {
  it('builds the protobuf request frame of §10.2 byte for byte', () => {
    const expected = concat([hex('14 80 58 00 00 00 f1 76 da 96 00 00 58 00 00 00'), REQUEST_CONTEXT_10_2]);
    const parts = encodeDataFrame(FLAG_CODEC_PROTO, REQUEST_CONTEXT_10_2, null);
    expect(parts).toHaveLength(1);
    expect(parts[0]).toEqual(expected);
    expect(encodeDataFrame(FLAG_CODEC_PROTO, REQUEST_CONTEXT_10_2, Buffer.alloc(0))).toEqual([expected]);
  });

  it('builds the protobuf response frame of §10.3 byte for byte', () => {
    const expected = concat([
      hex('14 80 23 00 00 00 6c 51 e4 2a 00 00 21 00 00 00'),
      RESPONSE_CONTEXT_10_3,
      Buffer.from('hi'),
    ]);
    expect(encodeDataFrame(FLAG_CODEC_PROTO, RESPONSE_CONTEXT_10_3, Buffer.from('hi'))).toEqual([expected]);
  });

  it('builds the JSON reply of §10.3 byte for byte', () => {
    const context = '{"status":200,"headers":{"Content-Type":["text\\/plain"]}}';
    expect(Buffer.byteLength(context)).toBe(0x39);
    const expected = concat([
      hex('14 08 3b 00 00 00 4f d5 df 3e 00 00 39 00 00 00'),
      Buffer.from(context),
      Buffer.from('hi'),
    ]);
    expect(encodeDataFrame(FLAG_CODEC_JSON, context, Buffer.from('hi'))).toEqual([expected]);
    expect(encodeDataFrame(FLAG_CODEC_JSON, Buffer.from(context), Buffer.from('hi'))).toEqual([expected]);
  });

  it('builds the streaming headers of §10.5 (STREAM, STREAM|PING with the same CRC, terminator)', () => {
    const context = Buffer.alloc(33, 0x61);
    const stream = encodeDataFrame(FLAG_CODEC_PROTO, context, Buffer.from('chunk-0\n'), STREAM)[0]!;
    expect(stream.subarray(0, 16)).toEqual(hex('14 80 29 00 00 00 08 b1 59 45 01 00 21 00 00 00'));
    const ping = encodeDataFrame(FLAG_CODEC_PROTO, context, Buffer.from('chunk-5\n'), STREAM | PING)[0]!;
    expect(ping.subarray(0, 16)).toEqual(hex('14 80 29 00 00 00 08 b1 59 45 05 00 21 00 00 00'));
    const last = encodeDataFrame(FLAG_CODEC_PROTO, context, Buffer.from('done\n'))[0]!;
    expect(last.subarray(0, 16)).toEqual(hex('14 80 26 00 00 00 5e a1 3a 1d 00 00 21 00 00 00'));
    expect(encodeDataFrame(0, '', null)).toEqual([hex('14 00 00 00 00 00 2e e1 85 29 00 00 00 00 00 00')]);
  });

  it('builds the early-hints frame header of §10.5 (empty body, context only)', () => {
    const parts = encodeDataFrame(FLAG_CODEC_PROTO, Buffer.alloc(0x2f), null, STREAM);
    expect(parts[0]!.subarray(0, 16)).toEqual(hex('14 80 2f 00 00 00 d4 ee 32 60 01 00 2f 00 00 00'));
  });

  it('builds the Worker::stop() reply of §10.6', () => {
    const expected = concat([hex('14 00 0d 00 00 00 f3 39 ef db 00 00 0d 00 00 00'), Buffer.from('{"stop":true}')]);
    expect(encodeDataFrame(0, '{"stop":true}', null)).toEqual([expected]);
  });

  it('sets the option to the context length in UTF-8 bytes', () => {
    const [frame] = encodeDataFrame(FLAG_CODEC_JSON, '{"é":"😀"}', Buffer.from('body'));
    const contextBytes = Buffer.byteLength('{"é":"😀"}');
    expect(frame!.readUInt32LE(12)).toBe(contextBytes);
    expect(frame!.readUInt32LE(2)).toBe(contextBytes + 4);
    expect(frame!.subarray(16, 16 + contextBytes).toString()).toBe('{"é":"😀"}');
    expect(frame!.subarray(16 + contextBytes).toString()).toBe('body');
  });

  it('returns a small frame as one buffer holding a copy of the body', () => {
    const body = Buffer.alloc(64 * 1024, 7);
    const parts = encodeDataFrame(FLAG_CODEC_JSON, '{}', body);
    expect(parts).toHaveLength(1);
    expect(parts[0]!.length).toBe(16 + 2 + body.length);
    expect(parts[0]!.subarray(18).equals(body)).toBe(true);
    expect(parts[0]!.buffer).not.toBe(body.buffer);
  });

  it('returns a large body (> 64 KiB) as [head, body] without copying the body', () => {
    const body = Buffer.alloc(64 * 1024 + 1, 9);
    const context = '{"status":200}';
    const parts = encodeDataFrame(FLAG_CODEC_JSON, context, body, STREAM);
    expect(parts).toHaveLength(2);
    expect(parts[1]).toBe(body);
    const head = parts[0]!;
    expect(head.length).toBe(16 + context.length);
    expect(head[0]).toBe(0x14);
    expect(head[1]).toBe(FLAG_CODEC_JSON);
    expect(head.readUInt32LE(2)).toBe(context.length + body.length);
    expect(head.readUInt32LE(6)).toBe(crc32(head, 0, 6));
    expect(head[10]).toBe(STREAM);
    expect(head[11]).toBe(0);
    expect(head.readUInt32LE(12)).toBe(context.length);
    expect(head.subarray(16).toString()).toBe(context);
  });

  it('produces the same bytes whether the body is inlined or passed through', () => {
    const body = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
    const parts = encodeDataFrame(FLAG_CODEC_PROTO, RESPONSE_CONTEXT_10_3, body);
    const joined = Buffer.concat(parts);
    const small = encodeDataFrame(FLAG_CODEC_PROTO, RESPONSE_CONTEXT_10_3, body.subarray(0, 10))[0]!;
    // Same layout: the head differs only in the payload length (and so the CRC).
    expect(joined.subarray(12, 16 + RESPONSE_CONTEXT_10_3.length)).toEqual(
      small.subarray(12, 16 + RESPONSE_CONTEXT_10_3.length),
    );
    expect(joined.readUInt32LE(2)).toBe(RESPONSE_CONTEXT_10_3.length + body.length);
    expect(joined.subarray(16 + RESPONSE_CONTEXT_10_3.length).equals(body)).toBe(true);
  });

  it('writes a body given as a list of buffers: copied inline when small, passed through (not copied) when large', () => {
    const small = encodeDataFrame(FLAG_CODEC_PROTO, 'ctx', [Buffer.from('ab'), Buffer.from('cd')]);
    expect(small).toHaveLength(1);
    expect(small[0]!.equals(Buffer.concat(encodeDataFrame(FLAG_CODEC_PROTO, 'ctx', Buffer.from('abcd'))))).toBe(true);
    const parts = [Buffer.alloc(40 * 1024, 'x'), Buffer.alloc(40 * 1024, 'y')];
    const large = encodeDataFrame(FLAG_CODEC_PROTO, 'ctx', parts);
    expect(large).toHaveLength(3);
    expect(large[1]).toBe(parts[0]);
    expect(large[2]).toBe(parts[1]);
    expect(
      Buffer.concat(large).equals(Buffer.concat(encodeDataFrame(FLAG_CODEC_PROTO, 'ctx', Buffer.concat(parts)))),
    ).toBe(true);
  });
});

describe('frameContext / frameBody', () => {
  const frame = (options: number[], payload: string): Frame => ({
    flags: 0,
    control: 0,
    options,
    payload: Buffer.from(payload),
  });

  it('splits a data frame at options[0]', () => {
    expect(frameContext(frame([5], 'hello world')).toString()).toBe('hello');
    expect(frameBody(frame([5], 'hello world')).toString()).toBe(' world');
    expect(frameContext(frame([0], 'abc')).length).toBe(0);
    expect(frameBody(frame([3], 'abc')).length).toBe(0);
  });

  it('treats a frame without options as all body', () => {
    expect(frameContext(frame([], 'abc')).length).toBe(0);
    expect(frameBody(frame([], 'abc')).toString()).toBe('abc');
  });
});

describe('describeBytes', () => {
  it('shows printable text, dots for the rest, and the hex', () => {
    const text = describeBytes(Buffer.from([0x41, 0x00, 0x42]));
    expect(text).toBe('"A.B" (hex 410042)');
  });

  it('cuts long input and marks the cut', () => {
    const text = describeBytes(Buffer.alloc(100, 0x61), 4);
    expect(text).toBe('"aaaa" (hex 61616161…)');
  });
});
