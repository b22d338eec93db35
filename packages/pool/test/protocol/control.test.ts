import { describe, expect, it } from 'vitest';
import { BadHandshakeError, ProtocolError } from '../../src/errors.js';
import { STOP_COMMAND, encodePidRequest, isStopReply, parsePidReply } from '../../src/protocol/control.js';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import { FLAG_CODEC_JSON, FLAG_CONTROL, encodeDataFrame, encodeFrame, type Frame } from '../../src/protocol/frame.js';

function hex(dump: string): Buffer {
  return Buffer.from(dump.replace(/\s+/g, ''), 'hex');
}

/** Runs bytes through the real decoder and returns the one frame they make. */
function decodeOne(bytes: Buffer): Frame {
  const frames: Frame[] = [];
  new FrameDecoder((frame) => {
    frames.push(frame);
  }).push(bytes);
  expect(frames).toHaveLength(1);
  return frames[0]!;
}

function frame(flags: number, payload: string, options: number[] = []): Frame {
  return { flags, control: 0, options, payload: Buffer.from(payload) };
}

describe('encodePidRequest', () => {
  it('sends CONTROL|JSON with the given pid', () => {
    const decoded = decodeOne(encodePidRequest(4242));
    expect(decoded.flags).toBe(FLAG_CONTROL | FLAG_CODEC_JSON);
    expect(decoded.options).toEqual([]);
    expect(decoded.payload.toString()).toBe('{"pid":4242}');
  });

  it('defaults to the server process pid', () => {
    expect(decodeOne(encodePidRequest()).payload.toString()).toBe(`{"pid":${process.pid}}`);
  });
});

describe('parsePidReply', () => {
  it('accepts {"pid":123} with the CONTROL flag', () => {
    expect(parsePidReply(frame(FLAG_CONTROL, '{"pid":123}'))).toBe(123);
  });

  it('accepts the captured worker reply of §10.1 (CONTROL only, no JSON flag)', () => {
    const reply = decodeOne(hex('13 01 0d 00 00 00 fb 20 8a fb 00 00 7b 22 70 69 64 22 3a 32 31 37 31 36 7d'));
    expect(parsePidReply(reply)).toBe(21716);
  });

  it('accepts CONTROL together with other flags and extra JSON keys', () => {
    expect(parsePidReply(frame(FLAG_CONTROL | FLAG_CODEC_JSON, '{"pid":7,"x":1}'))).toBe(7);
  });

  it('rejects a frame without the CONTROL flag', () => {
    for (const flags of [0x00, FLAG_CODEC_JSON, 0x80, 0x40]) {
      const call = () => parsePidReply(frame(flags, '{"pid":123}'));
      expect(call, `flags ${flags}`).toThrow(BadHandshakeError);
      expect(call).toThrow(/CONTROL/);
    }
  });

  it.each([
    ['not JSON', 'pid=123'],
    ['empty payload', ''],
    ['JSON null', 'null'],
    ['JSON array', '[123]'],
    ['no pid key', '{"ppid":123}'],
    ['pid 0', '{"pid":0}'],
    ['negative pid', '{"pid":-5}'],
    ['fractional pid', '{"pid":12.5}'],
    ['pid as a string', '{"pid":"123"}'],
    ['pid null', '{"pid":null}'],
    ['truncated JSON', '{"pid":12'],
  ])('rejects %s with BadHandshakeError', (_name, payload) => {
    let error: unknown;
    try {
      parsePidReply(frame(FLAG_CONTROL, payload));
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(BadHandshakeError);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as BadHandshakeError).code).toBe('WP_PROTOCOL_BAD_HANDSHAKE');
  });

  it('shows the offending payload in the message', () => {
    expect(() => parsePidReply(frame(FLAG_CONTROL, '{"pid":-5}'))).toThrow(/-5/);
  });
});

describe('isStopReply', () => {
  const WORKER_STOP_10_6 = hex(
    '14 00 0d 00 00 00 f3 39 ef db 00 00 0d 00 00 00 7b 22 73 74 6f 70 22 3a 74 72 75 65 7d',
  );

  it('is true for the captured Worker::stop() frame of §10.6', () => {
    expect(WORKER_STOP_10_6.subarray(16).toString()).toBe('{"stop":true}');
    expect(isStopReply(decodeOne(WORKER_STOP_10_6))).toBe(true);
  });

  it('is true for the same frame built by encodeDataFrame', () => {
    expect(isStopReply(decodeOne(Buffer.concat(encodeDataFrame(0, '{"stop":true}', null))))).toBe(true);
  });

  it('is false for the server stop command (CONTROL, no option)', () => {
    expect(isStopReply(decodeOne(STOP_COMMAND))).toBe(false);
  });

  it('is false with the CONTROL flag even when the data frame matches', () => {
    expect(isStopReply(decodeOne(Buffer.concat(encodeDataFrame(FLAG_CONTROL, '{"stop":true}', null))))).toBe(false);
  });

  it('is false when a body follows the context', () => {
    expect(isStopReply(decodeOne(Buffer.concat(encodeDataFrame(0, '{"stop":true}', Buffer.from('x')))))).toBe(false);
  });

  it('is false when {"stop":true} is the body rather than the context', () => {
    expect(isStopReply(decodeOne(Buffer.concat(encodeDataFrame(0, '', Buffer.from('{"stop":true}')))))).toBe(false);
  });

  it('is false without exactly one option', () => {
    expect(isStopReply(decodeOne(encodeFrame(0, '{"stop":true}')))).toBe(false);
    expect(isStopReply(frame(0, '{"stop":true}', [13, 0]))).toBe(false);
  });

  it('is false for a context that is not byte-equal to {"stop":true}', () => {
    for (const context of ['{"stop": true}', '{"stop":false}', '{"stop":1}', '{"STOP":true}', ' {"stop":true}']) {
      const encoded = decodeOne(Buffer.concat(encodeDataFrame(0, context, null)));
      expect(isStopReply(encoded), context).toBe(false);
    }
  });

  it('is false for an ordinary JSON response', () => {
    const reply = decodeOne(
      Buffer.concat(encodeDataFrame(FLAG_CODEC_JSON, '{"status":200,"headers":{}}', Buffer.from('ok'))),
    );
    expect(isStopReply(reply)).toBe(false);
  });
});
