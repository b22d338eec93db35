// What marks a backend's reply as streamed on purpose, for every layer that would otherwise hold it
// back: nginx's `X-Accel-Buffering: no`, and server-sent events (`text/event-stream`), which never
// end by design. The FastCGI reader does not buffer such a reply whole, the HTTP layer does not
// spool it, and compression flushes each piece of one marked so.

const EVENT_STREAM = /^\s*text\/event-stream\b/i;

/** An `X-Accel-Buffering` value that asks for no buffering ("no", any case). */
export function isUnbuffered(accelBuffering: string | undefined): boolean {
  return accelBuffering !== undefined && accelBuffering.trim().toLowerCase() === 'no';
}

/** A `Content-Type` of server-sent events, with any parameters. */
export function isEventStream(contentType: string | undefined): boolean {
  return contentType !== undefined && EVENT_STREAM.test(contentType);
}

/** A reply with these header values goes at the client's pace, as it comes. */
export function streamsOnPurpose(accelBuffering: string | undefined, contentType: string | undefined): boolean {
  return isUnbuffered(accelBuffering) || isEventStream(contentType);
}
