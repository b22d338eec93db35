// Waits for the server's RST_STREAM NO_ERROR after a complete answer (RFC 9113 8.1: "stop sending").
// Node's client closes such a stream only once its own side has ended as well. A test client that
// never ends its body gets 'close' when the reset arrives after the answer's end was read, and
// none when the reset arrives with the answer: the stream is then marked closed and kept, with what
// it had not sent. Waiting for 'close' alone hung in that case (under load, one run in three).
import type { ClientHttp2Stream } from 'node:http2';

/**
 * Resolves with the stream's RST_STREAM code once the server has reset it. The caller reads the
 * answer (`resume()`): the reset is seen at the answer's end or after it. Never resolves without a
 * reset: wrap it in a deadline that names the step.
 */
export function serverReset(stream: ClientHttp2Stream): Promise<number | undefined> {
  return new Promise((resolve) => {
    const reset = () => resolve(stream.rstCode);
    if (stream.destroyed || (stream.readableEnded && stream.closed)) return reset();
    stream.once('close', reset);
    stream.once('end', () => {
      if (stream.closed) reset();
    });
  });
}
