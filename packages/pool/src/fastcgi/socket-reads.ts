// Reading a FastCGI connection without allocating: every read goes into one buffer per connection.

/** A read fills at most this much (net's default read size): one FastCGI record and its header. */
const READ_BUFFER_BYTES = 64 * 1024;

/**
 * The one buffer every read of a connection goes into (net's `onread`), so reading a response
 * allocates nothing: fresh memory for each read is what made V8 run full GCs under load (a
 * DokuWiki page is two 64 KiB reads). Each chunk is valid until the next read: the decoder keeps
 * nothing past push() and the sinks copy what they keep; while the socket is paused (a reader is
 * behind) nothing is read, so the records the decoder holds stay intact.
 */
export class SocketReads {
  readonly buffer = Buffer.allocUnsafeSlow(READ_BUFFER_BYTES);
  #onData: ((chunk: Buffer) => void) | null = null;
  /** copies of anything read before a consumer was attached (a FastCGI server never speaks first) */
  #early: Buffer[] = [];

  /** net's onread callback; pausing is the connection's (socket.pause() while a reader is behind) */
  readonly callback = (bytes: number, buffer: Uint8Array): boolean => {
    const chunk = (buffer as Buffer).subarray(0, bytes);
    if (this.#onData === null) this.#early.push(Buffer.from(chunk));
    else this.#onData(chunk);
    return true;
  };

  attach(onData: (chunk: Buffer) => void): void {
    this.#onData = onData;
    const early = this.#early;
    this.#early = [];
    for (const chunk of early) onData(chunk);
  }
}
