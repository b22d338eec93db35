import { BadHandshakeError } from '../errors.js';
import { encodeFrame, FLAG_CODEC_JSON, FLAG_CONTROL, payloadLength, PONG, STOP, type Frame } from './frame.js';

/** Server → worker pid request (§3.1): CONTROL|JSON, {"pid":<server pid>}. */
export function encodePidRequest(serverPid: number = process.pid): Buffer {
  return encodeFrame(FLAG_CONTROL | FLAG_CODEC_JSON, `{"pid":${serverPid}}`);
}

/** Server → worker stop command (§3.2); the worker exits at its next waitPayload(). */
export const STOP_COMMAND: Buffer = encodeFrame(FLAG_CONTROL | FLAG_CODEC_JSON, '{"stop":true}');

/** Answer to a PING during a stream (§3.5). */
export const PONG_FRAME: Buffer = encodeFrame(0, '', PONG);

/** Cancels a stream (§3.6). */
export const STOP_STREAM_FRAME: Buffer = encodeFrame(0, '', STOP);

/** The worker's reply to the pid request: CONTROL bit set, JSON {"pid": n > 0}. Returns the pid. */
export function parsePidReply(frame: Frame): number {
  if ((frame.flags & FLAG_CONTROL) === 0) {
    throw new BadHandshakeError(
      `expected the pid handshake (a CONTROL frame), got flags 0x${frame.flags.toString(16)}; ` +
        'the worker must call waitPayload()/waitRequest() right after it boots',
    );
  }
  let pid: unknown;
  try {
    pid = (JSON.parse(frame.payload.toString('utf8')) as { pid?: unknown }).pid;
  } catch {
    pid = undefined;
  }
  if (typeof pid !== 'number' || !Number.isInteger(pid) || pid <= 0) {
    throw new BadHandshakeError(
      `bad pid handshake payload: ${JSON.stringify(frame.payload.toString('utf8').slice(0, 80))}`,
    );
  }
  return pid;
}

const STOP_REPLY = Buffer.from('{"stop":true}');

/** A data frame whose context is exactly {"stop":true} with an empty body: "retire me, re-run elsewhere" (§3.3). */
export function isStopReply(frame: Frame): boolean {
  return (
    (frame.flags & FLAG_CONTROL) === 0 &&
    frame.options.length === 1 &&
    frame.options[0] === STOP_REPLY.length &&
    payloadLength(frame) === STOP_REPLY.length &&
    frame.payload.equals(STOP_REPLY)
  );
}
