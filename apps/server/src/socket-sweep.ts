// One interval over the sockets a module watches, running only while it holds any. send_timeout's
// stalled-reader check and the proxied WebSockets' idle check both read byte counters this way,
// rather than a timer per socket (ws clears any socket timeout when it takes a socket).
import type { Socket } from 'node:net';

export class SocketSweep<State> {
  readonly #entries = new Map<Socket, State>();
  readonly #everyMs: number;
  readonly #visit: (entries: Map<Socket, State>, now: number) => void;
  #timer: NodeJS.Timeout | null = null;

  /** `visit` gets every watched socket with its state; it may delete entries as it goes. */
  constructor(everyMs: number, visit: (entries: Map<Socket, State>, now: number) => void) {
    this.#everyMs = everyMs;
    this.#visit = visit;
  }

  /** Watches `socket` until it closes; false when it is watched already. */
  add(socket: Socket, state: State): boolean {
    if (this.#entries.has(socket)) return false;
    this.#entries.set(socket, state);
    socket.once('close', () => this.delete(socket));
    this.#timer ??= setInterval(() => this.#visit(this.#entries, Date.now()), this.#everyMs).unref();
    return true;
  }

  delete(socket: Socket): void {
    this.#entries.delete(socket);
    if (this.#entries.size === 0 && this.#timer !== null) {
      clearInterval(this.#timer);
      this.#timer = null;
    }
  }

  get size(): number {
    return this.#entries.size;
  }

  keys(): IterableIterator<Socket> {
    return this.#entries.keys();
  }
}
