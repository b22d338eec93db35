import { Readable } from 'node:stream';
import { frameBodyParts, type Frame } from '../protocol/frame.js';
import type { ReplyStream } from '../worker/worker.js';

/**
 * The bytes of a streamed worker reply: the first frame's body, then each later frame's body
 * (later contexts are ignored, PROTOCOL.md §11.6). Backpressure flows through: this stream reads
 * a frame only when its consumer asks for more, so a slow client pauses the worker.
 *
 * Destroying it (the client went away, send_timeout) destroys the frame stream at once, which
 * sends STOP to the worker; a frame stream that fails (exec_ttl, the worker died) fails this one.
 */
export class ReplyBody extends Readable {
  readonly #frames: ReplyStream;
  #first: readonly Buffer[] | null;
  /** the consumer asked for more (_read) and has not been given enough yet */
  #wanted = false;

  constructor(first: readonly Buffer[], frames: ReplyStream) {
    super();
    this.#first = first;
    this.#frames = frames;
    frames.on('readable', () => this.#pump());
    frames.once('end', () => this.push(null));
    frames.once('error', (error) => this.destroy(error));
    // the worker's error frame can come in the same read as the first frame: the frame stream
    // failed before this body was built on it, and its 'error' is gone
    if (frames.destroyed) this.destroy(frames.errored ?? new Error("the worker's reply stopped before its end"));
  }

  override _read(): void {
    this.#wanted = true;
    const first = this.#first;
    if (first !== null) {
      this.#first = null;
      this.#give(first);
    }
    this.#pump();
  }

  /**
   * Moves frames into this stream only while its consumer wants more: frames left unread in the
   * frame stream are what pauses the worker (its high-water mark), so a client that does not read
   * holds at most a few frames here, never the whole reply.
   */
  #pump(): void {
    while (this.#wanted) {
      const frame = this.#frames.read() as Frame | null;
      if (frame === null) return;
      this.#give(frameBodyParts(frame));
    }
  }

  #give(parts: readonly Buffer[]): void {
    for (const part of parts) if (part.length > 0 && !this.push(part)) this.#wanted = false;
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    // an early end cancels the worker's stream (STOP); after its last frame this does nothing
    this.#frames.destroy();
    callback(error);
  }
}
