// goridge RPC framing (docs/RR-COMPAT.md "RPC protocol"): RoadRunner's RPC is Go's net/rpc over
// goridge frames (roadrunner-server/goridge pkg/rpc codec.go, before v4 dropped it; the PHP side is
// roadrunner-php/goridge src/RPC/RPC.php). The frame header is the worker protocol's
// (@warmpool/pool/protocol: version, flags, payload length, CRC-32, stream byte); an RPC frame has
// exactly two option words and its payload starts with the method name:
//
//   options[0] = sequence number (the client's; the answer echoes it)
//   options[1] = byte length of the method name ("resetter.Reset")
//   payload    = method name ‖ body (encoded as the codec flag says: JSON 0x08, raw 0x04, …)
//
// A failed call is answered with the ERROR flag (0x40) alone and the error text as the body.
import {
  crc32,
  FLAG_CODEC_JSON,
  FLAG_CODEC_MSGPACK,
  FLAG_CODEC_PROTO,
  FLAG_CODEC_RAW,
  FLAG_ERROR,
  FRAME_VERSION,
  HEADER_BYTES,
  type Frame,
} from '@warmpool/pool/protocol';

export { FLAG_CODEC_JSON, FLAG_CODEC_RAW, FLAG_ERROR };

/** Largest RPC frame read: calls are a method name and a small argument. */
export const MAX_RPC_FRAME_BYTES = 1024 * 1024;

export interface RpcCall {
  seq: number;
  method: string;
  /** the codec flags of the request (the answer uses the same codec) */
  codec: number;
  body: Buffer;
}

/** Encodes one RPC frame: header with the two options, then method ‖ body. */
export function encodeRpcFrame(flags: number, seq: number, method: string, body: Buffer | string = ''): Buffer {
  const name = Buffer.from(method, 'utf8');
  const data = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const out = Buffer.allocUnsafe(HEADER_BYTES + 8 + name.length + data.length);
  out[0] = (FRAME_VERSION << 4) | (3 + 2);
  out[1] = flags;
  out.writeUInt32LE(name.length + data.length, 2);
  out.writeUInt32LE(crc32(out, 0, 6), 6);
  out[10] = 0;
  out[11] = 0;
  out.writeUInt32LE(seq >>> 0, HEADER_BYTES);
  out.writeUInt32LE(name.length, HEADER_BYTES + 4);
  name.copy(out, HEADER_BYTES + 8);
  data.copy(out, HEADER_BYTES + 8 + name.length);
  return out;
}

/** Reads a decoded frame as a call; a description of what is wrong when it is not one. */
export function readRpcCall(frame: Frame): RpcCall | string {
  if (frame.options.length !== 2) return `should be 2 options. SEQ_ID and METHOD_LEN, got ${frame.options.length}`;
  const [seq, length] = frame.options as [number, number];
  const payload = frame.payload;
  if (length > payload.length) return 'method length offset exceeds payload bounds';
  return {
    seq,
    method: payload.subarray(0, length).toString('utf8'),
    codec: frame.flags,
    body: payload.subarray(length),
  };
}

/** The codec a flags byte names, for messages; JSON and raw are the ones warmpool reads and writes. */
export function codecName(flags: number): 'json' | 'raw' | 'proto' | 'msgpack' | 'gob' {
  if (flags & FLAG_CODEC_PROTO) return 'proto';
  if (flags & FLAG_CODEC_JSON) return 'json';
  if (flags & FLAG_CODEC_RAW) return 'raw';
  if (flags & FLAG_CODEC_MSGPACK) return 'msgpack';
  // the gob bit, or none: net/rpc's fallback
  return 'gob';
}
