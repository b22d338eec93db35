import { describe, expect, it } from 'vitest';
import { BadChecksumError, FrameTooLargeError, MalformedFrameError, ProtocolError } from '../../src/errors.js';
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder } from '../../src/protocol/decoder.js';
import {
  FLAG_CODEC_JSON,
  FLAG_CODEC_PROTO,
  FLAG_CONTROL,
  PING,
  STREAM,
  ChunkedFrame,
  crc32,
  encodeDataFrame,
  encodeFrame,
  frameBody,
  frameBodyParts,
  frameContext,
  payloadLength,
  type Frame,
} from '../../src/protocol/frame.js';
import { isStopReply } from '../../src/protocol/control.js';

function hex(dump: string): Buffer {
  return Buffer.from(dump.replace(/\s+/g, ''), 'hex');
}

/** A frame with any number of options, built here (not by the code under test) from §2. */
function buildFrame(flags: number, control: number, options: readonly number[], payload: Buffer): Buffer {
  const head = Buffer.alloc(12 + options.length * 4);
  head[0] = 0x10 | (3 + options.length);
  head[1] = flags;
  head.writeUInt32LE(payload.length, 2);
  head.writeUInt32LE(crc32(head, 0, 6), 6);
  head[10] = control;
  for (const [i, option] of options.entries()) head.writeUInt32LE(option, 12 + i * 4);
  return Buffer.concat([head, payload]);
}

/** A header with a valid CRC for whatever bytes 0-5 say. */
function header(byte0: number, flags: number, payloadLength: number): Buffer {
  const head = Buffer.alloc(12);
  head[0] = byte0;
  head[1] = flags;
  head.writeUInt32LE(payloadLength, 2);
  head.writeUInt32LE(crc32(head, 0, 6), 6);
  return head;
}

function collect(options?: { maxFrameBytes?: number }): { decoder: FrameDecoder; frames: Frame[] } {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((frame) => {
    frames.push(frame);
  }, options);
  return { decoder, frames };
}

/** Plain data for comparing frames; payloads as hex for readable diffs. */
function plain(frame: Frame): { flags: number; control: number; options: number[]; payload: string } {
  return {
    flags: frame.flags,
    control: frame.control,
    options: [...frame.options],
    payload: frame.payload.toString('hex'),
  };
}

/** The error a call throws (fails the test when it does not throw). */
function thrown(fn: () => void): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to throw');
}

/** mulberry32: a small seeded PRNG, so a failing case can be replayed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const HANDSHAKE_10_1 = hex('13 01 0d 00 00 00 fb 20 8a fb 00 00 7b 22 70 69 64 22 3a 32 31 37 31 36 7d');
const REQUEST_10_2 = hex(`
  14 80 58 00 00 00 f1 76 da 96 00 00 58 00 00 00
  0a 09 31 32 37 2e 30 2e 30 2e 31 12 08 48 54 54
  50 2f 31 2e 31 1a 03 47 45 54 22 1f 68 74 74 70
  3a 2f 2f 6c 6f 63 61 6c 68 6f 73 74 3a 38 30 38
  30 2f 68 65 6c 6c 6f 3f 78 3d 31 2a 16 0a 0a 55
  73 65 72 2d 41 67 65 6e 74 12 08 0a 06 63 75 72
  6c 2f 38 3a 03 78 3d 31`);
const RESPONSE_10_3 = hex(`
  14 80 23 00 00 00 6c 51 e4 2a 00 00 21 00 00 00
  08 c8 01 12 1c 0a 0c 43 6f 6e 74 65 6e 74 2d 54
  79 70 65 12 0c 0a 0a 74 65 78 74 2f 70 6c 61 69
  6e 68 69`);
const PONG_10_5 = hex('13 00 00 00 00 00 96 d1 80 34 08 00');
const TERMINATOR_10_5 = hex('14 00 00 00 00 00 2e e1 85 29 00 00 00 00 00 00');

describe('FrameDecoder: whole frames', () => {
  it('decodes the pid reply of §10.1', () => {
    const { decoder, frames } = collect();
    decoder.push(HANDSHAKE_10_1);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.flags).toBe(FLAG_CONTROL);
    expect(frames[0]!.control).toBe(0);
    expect(frames[0]!.options).toEqual([]);
    expect(frames[0]!.payload.toString()).toBe('{"pid":21716}');
    expect(decoder.pendingBytes).toBe(0);
    expect(decoder.framesSeen).toBe(1);
  });

  it('decodes the response frame of §10.3 with its one option', () => {
    const { decoder, frames } = collect();
    decoder.push(RESPONSE_10_3);
    expect(frames).toHaveLength(1);
    expect(frames[0]!.flags).toBe(FLAG_CODEC_PROTO);
    expect(frames[0]!.options).toEqual([0x21]);
    expect(frames[0]!.payload.length).toBe(0x23);
    expect(frames[0]!.payload.subarray(0x21).toString()).toBe('hi');
  });

  it('decodes control bits (PONG) and an empty data frame (terminator)', () => {
    const { decoder, frames } = collect();
    decoder.push(PONG_10_5);
    decoder.push(TERMINATOR_10_5);
    expect(frames.map(plain)).toEqual([
      { flags: 0, control: 0x08, options: [], payload: '' },
      { flags: 0, control: 0, options: [0], payload: '' },
    ]);
  });

  it('decodes a frame with ten options (the maximum)', () => {
    const options = [1, 2, 3, 4, 5, 6, 7, 8, 9, 0xffffffff];
    const { decoder, frames } = collect();
    decoder.push(buildFrame(0, 0, options, Buffer.from('x')));
    expect(frames.map(plain)).toEqual([{ flags: 0, control: 0, options, payload: '78' }]);
  });

  it('ignores empty chunks', () => {
    const { decoder, frames } = collect();
    decoder.push(Buffer.alloc(0));
    decoder.push(HANDSHAKE_10_1.subarray(0, 5));
    decoder.push(Buffer.alloc(0));
    decoder.push(HANDSHAKE_10_1.subarray(5));
    expect(frames).toHaveLength(1);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('agrees with the encoders of frame.ts', () => {
    const { decoder, frames } = collect();
    decoder.push(encodeFrame(FLAG_CONTROL | FLAG_CODEC_JSON, '{"pid":1}'));
    decoder.push(Buffer.concat(encodeDataFrame(FLAG_CODEC_JSON, '{"a":1}', Buffer.alloc(70_000, 3), STREAM | PING)));
    expect(frames).toHaveLength(2);
    expect(plain(frames[0]!)).toEqual({
      flags: 0x09,
      control: 0,
      options: [],
      payload: Buffer.from('{"pid":1}').toString('hex'),
    });
    expect(frames[1]!.flags).toBe(FLAG_CODEC_JSON);
    expect(frames[1]!.control).toBe(STREAM | PING);
    expect(frames[1]!.options).toEqual([7]);
    expect(frames[1]!.payload.length).toBe(70_007);
    expect(frames[1]!.payload.subarray(0, 7).toString()).toBe('{"a":1}');
    expect(frames[1]!.payload.subarray(7).equals(Buffer.alloc(70_000, 3))).toBe(true);
  });
});

describe('FrameDecoder: split and coalesced input', () => {
  const stream = Buffer.concat([HANDSHAKE_10_1, REQUEST_10_2, PONG_10_5, RESPONSE_10_3, TERMINATOR_10_5]);
  const expected = (() => {
    const { decoder, frames } = collect();
    for (const part of [HANDSHAKE_10_1, REQUEST_10_2, PONG_10_5, RESPONSE_10_3, TERMINATOR_10_5]) decoder.push(part);
    return frames.map(plain);
  })();

  it('decodes the same frames when the stream is split at every byte offset', () => {
    expect(expected).toHaveLength(5);
    for (let at = 0; at <= stream.length; at++) {
      const { decoder, frames } = collect();
      decoder.push(stream.subarray(0, at));
      decoder.push(stream.subarray(at));
      expect(frames.map(plain), `split at ${at}`).toEqual(expected);
      expect(decoder.pendingBytes).toBe(0);
    }
  });

  it('decodes the same frames when split at every pair of offsets', () => {
    for (let a = 0; a <= stream.length; a += 3) {
      for (let b = a; b <= stream.length; b += 5) {
        const { decoder, frames } = collect();
        decoder.push(stream.subarray(0, a));
        decoder.push(stream.subarray(a, b));
        decoder.push(stream.subarray(b));
        expect(frames.map(plain), `split at ${a} and ${b}`).toEqual(expected);
      }
    }
  });

  it('decodes the same frames fed one byte at a time', () => {
    const { decoder, frames } = collect();
    for (let i = 0; i < stream.length; i++) {
      decoder.push(stream.subarray(i, i + 1));
      expect(decoder.pendingBytes).toBeLessThan(stream.length);
    }
    expect(frames.map(plain)).toEqual(expected);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('decodes many frames coalesced in one chunk, in order', () => {
    const parts: Buffer[] = [];
    for (let i = 0; i < 500; i++)
      parts.push(buildFrame(i & 0xff, i % 3 === 0 ? STREAM : 0, [i % 7], Buffer.from(`frame ${i} `.repeat(i % 5))));
    const { decoder, frames } = collect();
    decoder.push(Buffer.concat(parts));
    expect(frames).toHaveLength(500);
    frames.forEach((frame, i) => {
      expect(frame.flags).toBe(i & 0xff);
      expect(frame.options).toEqual([i % 7]);
      expect(frame.payload.toString()).toBe(`frame ${i} `.repeat(i % 5));
    });
    expect(decoder.pendingBytes).toBe(0);
    expect(decoder.framesSeen).toBe(500);
  });

  it('keeps a partial trailing frame pending after whole ones', () => {
    const { decoder, frames } = collect();
    decoder.push(Buffer.concat([HANDSHAKE_10_1, REQUEST_10_2.subarray(0, 20)]));
    expect(frames).toHaveLength(1);
    expect(decoder.pendingBytes).toBe(20);
    decoder.push(REQUEST_10_2.subarray(20));
    expect(frames).toHaveLength(2);
    expect(decoder.pendingBytes).toBe(0);
  });
});

describe('FrameDecoder: randomised chunking (seeded)', () => {
  const ONE_MIB = 1024 * 1024;
  const PATTERN = Buffer.allocUnsafe(ONE_MIB + 4096);
  for (let i = 0; i < PATTERN.length; i++) PATTERN[i] = (i * 131 + (i >>> 8) + (i >>> 16)) & 0xff;

  function randomPayload(rand: () => number): Buffer {
    const r = rand();
    let size: number;
    if (r < 0.15) size = 0;
    else if (r < 0.6) size = Math.floor(rand() * 64);
    else if (r < 0.9) size = Math.floor(rand() * 5000);
    else if (r < 0.985) size = 60_000 + Math.floor(rand() * 20_000);
    else size = ONE_MIB;
    // Position-dependent content from a random offset into a fixed pattern, so a misplaced byte shows up.
    const start = Math.floor(rand() * 4096);
    return Buffer.from(PATTERN.subarray(start, start + size));
  }

  it('round-trips random frames through random chunk boundaries', () => {
    const rand = prng(0x5eed);
    let largeFrames = 0;
    let emptyFrames = 0;
    for (let iteration = 0; iteration < 300; iteration++) {
      const count = 1 + Math.floor(rand() * 8);
      const sent: { flags: number; control: number; options: number[]; payload: Buffer }[] = [];
      for (let i = 0; i < count; i++) {
        const optionCount = Math.floor(rand() * 3);
        const options = Array.from({ length: optionCount }, () => Math.floor(rand() * 0x1_0000_0000));
        const payload = randomPayload(rand);
        if (payload.length === ONE_MIB) largeFrames++;
        if (payload.length === 0) emptyFrames++;
        sent.push({ flags: Math.floor(rand() * 256), control: Math.floor(rand() * 16), options, payload });
      }
      const bytes = Buffer.concat(sent.map((f) => buildFrame(f.flags, f.control, f.options, f.payload)));
      // Chunk sizes from a per-iteration scale: tiny (split headers), medium, or large (coalesced).
      // Tiny chunks only for small iterations: a pipe never delivers 50 KB a few bytes at a time.
      const scales = bytes.length > 50_000 ? [700, 70_000, 2 * ONE_MIB] : [4, 20, 700, 70_000, 2 * ONE_MIB];
      const scale = scales[Math.floor(rand() * scales.length)]!;
      const received: Frame[] = [];
      const decoder = new FrameDecoder((frame) => {
        received.push(frame);
      });
      let offset = 0;
      let pendingOverflow = false;
      while (offset < bytes.length) {
        const size = 1 + Math.floor(rand() * scale);
        const chunk = bytes.subarray(offset, offset + size);
        decoder.push(chunk);
        offset += chunk.length;
        if (decoder.pendingBytes > offset) pendingOverflow = true;
      }
      expect(pendingOverflow).toBe(false);
      const context = `iteration ${iteration}, scale ${scale}`;
      expect(received.length, context).toBe(sent.length);
      received.forEach((frame, i) => {
        const want = sent[i]!;
        expect(frame.flags, context).toBe(want.flags);
        expect(frame.control, context).toBe(want.control);
        expect(frame.options, context).toEqual(want.options);
        expect(frame.payload.length, context).toBe(want.payload.length);
        expect(frame.payload.equals(want.payload), context).toBe(true);
      });
      expect(decoder.pendingBytes, context).toBe(0);
      expect(decoder.framesSeen, context).toBe(sent.length);
    }
    // The seed must actually exercise the edge sizes.
    expect(largeFrames).toBeGreaterThan(0);
    expect(emptyFrames).toBeGreaterThan(0);
  });
});

describe('FrameDecoder: large frames', () => {
  it('decodes a 3 MiB frame pushed in 64 KiB chunks, holding it as pending until complete', () => {
    const body = Buffer.allocUnsafe(3 * 1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i ^ (i >>> 9)) & 0xff;
    const bytes = Buffer.concat(encodeDataFrame(FLAG_CODEC_PROTO, Buffer.from('ctx'), body));
    const { decoder, frames } = collect();
    let offset = 0;
    while (offset < bytes.length) {
      const chunk = bytes.subarray(offset, offset + 64 * 1024);
      decoder.push(chunk);
      offset += chunk.length;
      if (offset < bytes.length) {
        expect(frames).toHaveLength(0);
        expect(decoder.pendingBytes).toBe(offset);
      }
    }
    expect(frames).toHaveLength(1);
    expect(decoder.pendingBytes).toBe(0);
    expect(frames[0]!.options).toEqual([3]);
    expect(frames[0]!.payload.subarray(0, 3).toString()).toBe('ctx');
    expect(frames[0]!.payload.subarray(3).equals(body)).toBe(true);
  });

  it('hands a large frame on as views of the chunks it arrived in: no copy until payload is read', () => {
    const body = Buffer.allocUnsafe(1024 * 1024 + 7);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31 + (i >>> 8)) & 0xff;
    const bytes = Buffer.concat(encodeDataFrame(FLAG_CODEC_JSON, Buffer.from('{"status":200}'), body));
    // chunks as a pipe delivers them: separate allocations, the frame starting mid-chunk after a small frame
    const small = Buffer.concat(encodeDataFrame(FLAG_CODEC_JSON, '{}', Buffer.from('x')));
    const stream = Buffer.concat([small, bytes, small]);
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < stream.length; offset += 65536)
      chunks.push(Buffer.from(stream.subarray(offset, offset + 65536)));
    const { decoder, frames } = collect();
    for (const chunk of chunks) decoder.push(chunk);
    expect(frames).toHaveLength(3);
    const big = frames[1]!;
    expect(big).toBeInstanceOf(ChunkedFrame);
    expect(big.parts!.length).toBeGreaterThan(15);
    // every part is a view of one of the pushed chunks' memory
    for (const part of big.parts!) expect(chunks.some((chunk) => chunk.buffer === part.buffer)).toBe(true);
    expect(payloadLength(big)).toBe(14 + body.length);
    expect(frameContext(big).toString()).toBe('{"status":200}');
    const parts = frameBodyParts(big);
    expect(parts.reduce((n, p) => n + p.length, 0)).toBe(body.length);
    expect(Buffer.concat(parts).equals(body)).toBe(true);
    for (const part of parts) expect(chunks.some((chunk) => chunk.buffer === part.buffer)).toBe(true);
    // the joined view agrees, and is made once
    expect(frameBody(big).equals(body)).toBe(true);
    expect(big.payload).toBe(big.payload);
    expect(isStopReply(big)).toBe(false);
    expect(frameBody(frames[2]!).toString()).toBe('x');
    expect(decoder.pendingBytes).toBe(0);
  });

  it('joins a context that spans chunks and slices the body parts after it', () => {
    const context = Buffer.from(JSON.stringify({ status: 200, headers: { 'X-Long': ['v'.repeat(300)] } }));
    const body = Buffer.alloc(200 * 1024, 'b');
    const bytes = Buffer.concat(encodeDataFrame(FLAG_CODEC_JSON, context, body));
    const { decoder, frames } = collect();
    // first chunk ends inside the context
    decoder.push(Buffer.from(bytes.subarray(0, 100)));
    for (let offset = 100; offset < bytes.length; offset += 65536)
      decoder.push(Buffer.from(bytes.subarray(offset, offset + 65536)));
    expect(frames).toHaveLength(1);
    expect(frames[0]).toBeInstanceOf(ChunkedFrame);
    expect(frameContext(frames[0]!).equals(context)).toBe(true);
    expect(Buffer.concat(frameBodyParts(frames[0]!)).equals(body)).toBe(true);
  });

  it('joins a frame of at most 64 KiB that spans chunks into one buffer', () => {
    const body = Buffer.alloc(60 * 1024, 'c');
    const bytes = Buffer.concat(encodeDataFrame(FLAG_CODEC_JSON, '{}', body));
    const { decoder, frames } = collect();
    decoder.push(bytes.subarray(0, 1000));
    decoder.push(bytes.subarray(1000));
    expect(frames[0]).not.toBeInstanceOf(ChunkedFrame);
    expect(frames[0]!.parts).toBeUndefined();
    expect(frameBodyParts(frames[0]!)).toHaveLength(1);
    expect(frameBody(frames[0]!).equals(body)).toBe(true);
  });

  it('accepts a payload exactly at maxFrameBytes', () => {
    const { decoder, frames } = collect({ maxFrameBytes: 1024 });
    decoder.push(buildFrame(0, 0, [], Buffer.alloc(1024, 1)));
    expect(frames).toHaveLength(1);
  });

  it('defaults maxFrameBytes to 256 MiB', () => {
    expect(DEFAULT_MAX_FRAME_BYTES).toBe(256 * 1024 * 1024);
    const { decoder } = collect();
    decoder.push(header(0x13, 0, DEFAULT_MAX_FRAME_BYTES));
    expect(decoder.pendingBytes).toBe(12);
    const other = collect();
    expect(() => other.decoder.push(header(0x13, 0, DEFAULT_MAX_FRAME_BYTES + 1))).toThrow(FrameTooLargeError);
  });
});

describe('FrameDecoder: holding frames (backpressure)', () => {
  /** A decoder whose onFrame answers from `answers` (true when it runs out). */
  function holding(answers: boolean[]): { decoder: FrameDecoder; frames: Frame[] } {
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((frame) => {
      frames.push(frame);
      return answers.shift() ?? true;
    });
    return { decoder, frames };
  }

  it('stops delivering after onFrame returns false, until resume()', () => {
    const { decoder, frames } = holding([false]);
    decoder.push(Buffer.concat([HANDSHAKE_10_1, PONG_10_5, TERMINATOR_10_5]));
    expect(frames).toHaveLength(1);
    expect(decoder.pendingBytes).toBe(PONG_10_5.length + TERMINATOR_10_5.length);
    decoder.resume();
    expect(frames.map(plain)).toEqual([
      { flags: FLAG_CONTROL, control: 0, options: [], payload: Buffer.from('{"pid":21716}').toString('hex') },
      { flags: 0, control: 0x08, options: [], payload: '' },
      { flags: 0, control: 0, options: [0], payload: '' },
    ]);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('buffers pushed chunks while held and delivers them in order on resume()', () => {
    const { decoder, frames } = holding([false]);
    decoder.push(HANDSHAKE_10_1);
    decoder.push(RESPONSE_10_3.subarray(0, 7));
    decoder.push(RESPONSE_10_3.subarray(7));
    decoder.push(PONG_10_5);
    expect(frames).toHaveLength(1);
    expect(decoder.pendingBytes).toBe(RESPONSE_10_3.length + PONG_10_5.length);
    decoder.resume();
    expect(frames).toHaveLength(3);
    expect(frames[1]!.payload.subarray(0x21).toString()).toBe('hi');
    expect(frames[2]!.control).toBe(0x08);
  });

  it('holds again when onFrame returns false during resume()', () => {
    const { decoder, frames } = holding([false, false, true]);
    decoder.push(Buffer.concat([HANDSHAKE_10_1, PONG_10_5, TERMINATOR_10_5, PONG_10_5]));
    expect(frames).toHaveLength(1);
    decoder.resume();
    expect(frames).toHaveLength(2);
    decoder.resume();
    expect(frames).toHaveLength(4);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('treats resume() without a hold as a no-op', () => {
    const { decoder, frames } = collect();
    decoder.resume();
    decoder.push(HANDSHAKE_10_1.subarray(0, 4));
    decoder.resume();
    expect(frames).toHaveLength(0);
    expect(decoder.pendingBytes).toBe(4);
  });

  it('throws from resume() when the held bytes are broken, and fails for good', () => {
    const bad = Buffer.from(PONG_10_5);
    bad[7] = 0;
    const { decoder, frames } = holding([false]);
    decoder.push(Buffer.concat([HANDSHAKE_10_1, bad]));
    expect(frames).toHaveLength(1);
    const error = thrown(() => decoder.resume());
    expect(error).toBeInstanceOf(BadChecksumError);
    expect(thrown(() => decoder.push(PONG_10_5))).toBe(error);
    expect(() => decoder.resume()).not.toThrow();
    expect(frames).toHaveLength(1);
  });
});

describe('FrameDecoder: errors', () => {
  it('rejects a header checksum mismatch with BadChecksumError', () => {
    const bytes = Buffer.from(HANDSHAKE_10_1);
    bytes[6] = bytes[6]! ^ 0x01;
    const { decoder, frames } = collect();
    const error = thrown(() => decoder.push(bytes));
    expect(error).toBeInstanceOf(BadChecksumError);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as BadChecksumError).code).toBe('WP_PROTOCOL_BAD_CHECKSUM');
    expect(error.message).toMatch(/checksum/);
    expect(frames).toHaveLength(0);
  });

  it('detects a changed payload length through the checksum', () => {
    const bytes = Buffer.from(HANDSHAKE_10_1);
    bytes[2] = 0x0c;
    const { decoder } = collect();
    expect(() => decoder.push(bytes)).toThrow(BadChecksumError);
  });

  it('does not check bytes 10-11 or the options against the CRC (§2)', () => {
    const bytes = Buffer.from(RESPONSE_10_3);
    bytes[10] = STREAM | PING;
    const { decoder, frames } = collect();
    decoder.push(bytes);
    expect(frames[0]!.control).toBe(STREAM | PING);
  });

  it('rejects a version nibble other than 1 with MalformedFrameError', () => {
    for (const byte0 of [0x03, 0x23, 0xf3, 0x04]) {
      const { decoder } = collect();
      const error = thrown(() => decoder.push(header(byte0, 0, 0)));
      expect(error, `byte 0 = ${byte0.toString(16)}`).toBeInstanceOf(MalformedFrameError);
      expect((error as MalformedFrameError).code).toBe('WP_PROTOCOL_MALFORMED_FRAME');
    }
  });

  it('rejects a header length under 3 words with MalformedFrameError', () => {
    for (const byte0 of [0x10, 0x11, 0x12]) {
      const { decoder } = collect();
      expect(() => decoder.push(header(byte0, 0, 0)), `byte 0 = ${byte0.toString(16)}`).toThrow(MalformedFrameError);
    }
  });

  it('rejects more than 10 options with MalformedFrameError', () => {
    for (const byte0 of [0x1e, 0x1f]) {
      const { decoder } = collect();
      const error = thrown(() => decoder.push(header(byte0, 0, 0)));
      expect(error).toBeInstanceOf(MalformedFrameError);
      expect(error.message).toMatch(/options/);
    }
  });

  it('throws FrameTooLargeError as soon as the header arrives, before any payload', () => {
    const { decoder, frames } = collect({ maxFrameBytes: 1024 });
    const head = header(0x14, FLAG_CODEC_PROTO, 1025);
    decoder.push(head.subarray(0, 11));
    expect(decoder.pendingBytes).toBe(11);
    const error = thrown(() => decoder.push(head.subarray(11)));
    expect(error).toBeInstanceOf(FrameTooLargeError);
    expect((error as FrameTooLargeError).code).toBe('WP_PROTOCOL_FRAME_TOO_LARGE');
    expect((error as FrameTooLargeError).details).toMatchObject({ payloadLength: 1025, maxFrameBytes: 1024 });
    expect(error.message).toContain('1025');
    expect(error.message).toContain('1024');
    expect(frames).toHaveLength(0);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('refuses a 4 GiB frame header without waiting for its payload', () => {
    const { decoder } = collect();
    expect(() => decoder.push(header(0x13, 0, 0xffffffff))).toThrow(FrameTooLargeError);
  });

  it('throws the same error for every push after a failure', () => {
    const bytes = Buffer.from(HANDSHAKE_10_1);
    bytes[7] = 0;
    const { decoder, frames } = collect();
    const first = thrown(() => decoder.push(bytes));
    expect(thrown(() => decoder.push(HANDSHAKE_10_1))).toBe(first);
    expect(thrown(() => decoder.push(Buffer.alloc(0)))).toBe(first);
    expect(frames).toHaveLength(0);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('keeps frames decoded before the bad one', () => {
    const bad = Buffer.from(PONG_10_5);
    bad[6] = 0;
    const { decoder, frames } = collect();
    const error = thrown(() => decoder.push(Buffer.concat([HANDSHAKE_10_1, PONG_10_5, bad, HANDSHAKE_10_1])));
    expect(error).toBeInstanceOf(BadChecksumError);
    expect(frames).toHaveLength(2);
  });

  it('waits for 12 bytes before judging a header', () => {
    const { decoder } = collect();
    decoder.push(Buffer.from('Could not '));
    expect(decoder.pendingBytes).toBe(10);
  });
});

describe('FrameDecoder: messages name the likely cause', () => {
  it('explains "Could not open input file" as a missing worker script', () => {
    const { decoder } = collect();
    const error = thrown(() => decoder.push(Buffer.from('Could not open input file: x.php\n')));
    expect(error).toBeInstanceOf(MalformedFrameError);
    expect(error.message).toContain('Could not open input file');
    expect(error.message).toMatch(/could not open the worker script/i);
    expect(error.message).toMatch(/check the command/i);
  });

  it('explains a PHP notice before the first frame as stdout output before the protocol started', () => {
    const { decoder } = collect();
    const error = thrown(() =>
      decoder.push(Buffer.from('Notice: Undefined variable $x in /app/worker.php on line 3\n')),
    );
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.message).toContain('Notice: Undefined');
    expect(error.message).toMatch(/printed to stdout before the protocol started/);
    expect(error.message).toMatch(/display_errors=stderr/);
  });

  it('explains text after valid frames as output during a request', () => {
    const { decoder } = collect();
    decoder.push(HANDSHAKE_10_1);
    const error = thrown(() => decoder.push(Buffer.from('Warning: something went wrong\n')));
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.message).toMatch(/printed to stdout during a request/);
  });

  it('explains a UTF-8 BOM as output before the protocol started', () => {
    const { decoder } = collect();
    const error = thrown(() => decoder.push(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), HANDSHAKE_10_1])));
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.message).toMatch(/BOM/);
  });

  it('shows the bytes received (text and hex) in the message', () => {
    const { decoder } = collect();
    const error = thrown(() => decoder.push(Buffer.from('Could not open input file: x.php\n')));
    expect(error.message).toContain(Buffer.from('Could not op').toString('hex'));
  });

  it('names a desync for binary garbage', () => {
    const garbage = Buffer.from([0x00, 0x01, 0x02, 0xfe, 0xfd, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86]);
    const { decoder } = collect();
    const error = thrown(() => decoder.push(garbage));
    expect(error).toBeInstanceOf(MalformedFrameError);
    expect(error.message).toMatch(/outside the protocol|lost sync/);
  });
});
