// Cancelling a request (the client left): the part of AbortSignal the pool uses, so a caller may pass
// an AbortSignal, or a Cancellation, which costs a plain object instead of an EventTarget. A server
// makes one per request and almost never fires it: AbortController's construction and listener
// bookkeeping were about 10 µs of every request's Node CPU.

/** What the pool reads and listens to on a request's signal. Every AbortSignal is one. */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

/** A CancelSignal fired once by cancel(); listeners added after that never run, as with AbortSignal. */
export class Cancellation implements CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  #listeners: Array<() => void> | null = null;

  addEventListener(_type: 'abort', listener: () => void): void {
    if (this.aborted) return;
    if (this.#listeners === null) this.#listeners = [listener];
    else this.#listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const listeners = this.#listeners;
    if (listeners === null) return;
    const at = listeners.indexOf(listener);
    if (at !== -1) listeners.splice(at, 1);
  }

  /** Fires the listeners, in the order they were added; later calls do nothing. */
  cancel(reason: unknown = new DOMException('This operation was aborted', 'AbortError')): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.#listeners;
    this.#listeners = null;
    if (listeners === null) return;
    // a listener that throws does not keep the others from running; the first error is thrown after
    let failed: { error: unknown } | null = null;
    for (const listener of listeners) {
      try {
        listener();
      } catch (error) {
        failed ??= { error };
      }
    }
    if (failed !== null) throw failed.error;
  }
}

/**
 * For a boot that races its own ends (handshake, exit, allocate_timeout): a promise that rejects
 * with error() once `signal` fires (at once if it has), and dispose() to stop listening.
 */
export function rejectOnAbort(
  signal: CancelSignal | undefined,
  error: () => Error,
): { promise: Promise<never>; dispose(): void } {
  if (signal === undefined) return { promise: new Promise<never>(() => {}), dispose: () => {} };
  let onAbort = () => {};
  const promise = new Promise<never>((_, reject) => {
    onAbort = () => reject(error());
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  promise.catch(() => {});
  return { promise, dispose: () => signal.removeEventListener('abort', onAbort) };
}
