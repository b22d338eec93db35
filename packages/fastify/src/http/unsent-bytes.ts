// What a socket still has to send: bytes written to it that the kernel has not taken yet. Node
// keeps some in the stream's buffer (writableLength) and hands the rest to libuv, whose queue is
// the only place they show for TLS and HTTP/2 (Node's stream handle: not public API, read
// defensively). The send timeout, and the bound on reply memory, judge a client by it.
import type { Socket } from 'node:net';

/** Bytes written to `socket` that the kernel has not taken yet; 0: all of it went out. */
export function unsentBytes(socket: Socket): number {
  const handle = (socket as Socket & { _handle?: { writeQueueSize?: unknown } | null })._handle;
  return socket.writableLength + (typeof handle?.writeQueueSize === 'number' ? handle.writeQueueSize : 0);
}
