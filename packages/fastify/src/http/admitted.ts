// Requests of the plugin's routes that have begun (their head is in) and not yet reached the pool:
// a body still uploading, a form being parsed, a hook still running. On app.close() the pool stops
// taking requests; one of these reaching it afterwards got 503 WP_POOL_CLOSED after its client had
// sent the whole body, though Fastify lets in-flight requests finish. The pool's drain waits for
// them first (bounded), while Fastify answers 503 to requests that come after close began.
// No hook or listener per request (an onRequestAbort hook adds a 'close' listener to each): one
// answered without reaching the pool (a static file, a 403) is swept once its response has ended.
import type { FastifyReply } from 'fastify';

const FIRST_SWEEP = 256;

export class Admitted {
  readonly #waiting = new Set<FastifyReply>();
  #sweepAt = FIRST_SWEEP;
  #closing = false;
  #settled: (() => void) | null = null;

  /** A request of the plugin's routes began (its onRequest hook); none counts once close began. */
  begin(reply: FastifyReply): void {
    if (this.#closing) return;
    this.#waiting.add(reply);
    if (this.#waiting.size >= this.#sweepAt) {
      this.#sweep();
      this.#sweepAt = Math.max(FIRST_SWEEP, this.#waiting.size * 2);
    }
  }

  /** It reached the pool: a drain that starts now lets it finish. */
  end(reply: FastifyReply): void {
    if (this.#waiting.delete(reply) && this.#closing && this.#waiting.size === 0) this.#settled?.();
  }

  /** At close: resolves when every request begun before has reached the pool or ended, or after `timeoutMs`. */
  settled(timeoutMs: number): Promise<void> {
    this.#closing = true;
    this.#sweep();
    if (this.#waiting.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.#settled = null;
        resolve();
      }
      this.#settled = done;
      // ended without reaching the pool (answered before PHP, a body refused, the client gone)
      for (const reply of this.#waiting) reply.raw.once('close', () => this.end(reply));
    });
  }

  /** Forgets the requests whose response has ended or whose connection is gone. */
  #sweep(): void {
    for (const reply of this.#waiting) if (gone(reply.raw)) this.#waiting.delete(reply);
  }
}

/** Its response ended, or its connection (HTTP/1) or stream (HTTP/2: one the client cancelled) is gone. */
function gone(raw: FastifyReply['raw']): boolean {
  if (raw.writableEnded) return true;
  // an Http2ServerResponse has no `destroyed`: its stream says it, and it never ends once reset
  const stream = (raw as { stream?: { destroyed: boolean } }).stream;
  return stream === undefined ? raw.destroyed : stream.destroyed;
}
