// What a test opened, closed after it in reverse order (servers, sockets, sessions, timers).
import { afterEach } from 'vitest';

/** Push a closer for each thing a test opens; after each test they run, last first. */
export function useClosers(): Array<() => unknown> {
  const closers: Array<() => unknown> = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  return closers;
}
