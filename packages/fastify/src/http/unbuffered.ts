// A backend's X-Accel-* headers are the server's instructions: they never reach the client (nginx
// drops them all), yet X-Accel-Buffering: no must still have the reply sent, and compressed, piece
// by piece as it comes, and X-Accel-Expires is the micro-cache's to read. The reply remembers them
// here once the headers are taken off.
import { isUnbuffered } from '@warmpool/pool';

const unbuffered = new WeakSet<object>();

/** Keeps a backend's X-Accel-Buffering: no for `reply` (a Fastify reply), whose header is dropped. */
export function noteUnbuffered(reply: object, value: string | readonly string[] | undefined): void {
  const text = typeof value === 'string' ? value : value?.[0];
  if (text !== undefined && isUnbuffered(text)) unbuffered.add(reply);
}

/** Whether the backend marked `reply` as one to stream as it comes. */
export function markedUnbuffered(reply: object): boolean {
  return unbuffered.has(reply);
}

const accelExpires = new WeakMap<object, string>();

/** Keeps a backend's X-Accel-Expires (the micro-cache's to read), whose header is dropped. */
export function noteAccelExpires(reply: object, value: string | readonly string[] | undefined): void {
  const text = typeof value === 'string' ? value : value?.[0];
  if (text !== undefined) accelExpires.set(reply, text);
}

/** The X-Accel-Expires the backend sent for `reply`; undefined without one. */
export function accelExpiresOf(reply: object): string | undefined {
  return accelExpires.get(reply);
}
