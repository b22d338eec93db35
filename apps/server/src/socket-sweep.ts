// One interval over the sockets a module watches, running only while it holds any. send_timeout's
// stalled-reader check and the proxied WebSockets' idle check both read byte counters this way,
// rather than a timer per socket (ws clears any socket timeout when it takes a socket).
import type { Socket } from 'node:net';

/** What a sweep can watch: a socket, or an HTTP/2 stream; anything that says when it is gone. */
export interface Closable {
  once(event: 'close', listener: () => void): unknown;
}

export class SocketSweep<State, Key extends Closable = Socket> {
  readonly #entries = new Map<Key, State>();
  readonly #everyMs: number;
  readonly #visit: (entries: Map<Key, State>, now: number) => void;
  #timer: NodeJS.Timeout | null = null;

  /** `visit` gets every watched socket with its state; it may delete entries as it goes. */
  constructor(everyMs: number, visit: (entries: Map<Key, State>, now: number) => void) {
    this.#everyMs = everyMs;
    this.#visit = visit;
  }

  /** Watches `socket` until it closes; false when it is watched already. */
  add(socket: Key, state: State): boolean {
    if (this.#entries.has(socket)) return false;
    this.#entries.set(socket, state);
    socket.once('close', () => this.delete(socket));
    this.#timer ??= setInterval(() => this.#visit(this.#entries, Date.now()), this.#everyMs).unref();
    return true;
  }

  delete(socket: Key): void {
    this.#entries.delete(socket);
    if (this.#entries.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  keys(): IterableIterator<Key> {
    return this.#entries.keys();
  }
}
