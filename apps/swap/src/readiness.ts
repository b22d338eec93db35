// Polls a child's PRIVATE status listener (/ready) until it answers 200; fails on 503 past the
// deadline, on a timeout, or at once when the child exits. Uses Node's built-in fetch (undici).
import { NotReadyError } from './errors.js';

export interface ReadyOptions {
  url: string;
  timeoutMs: number;
  /** resolves when the child exits: stop polling */
  exited: Promise<unknown>;
  intervalMs?: number;
}

export async function waitReady(options: ReadyOptions): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  let exited = false;
  void options.exited.then(() => (exited = true));
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (exited) return; // the caller reports the exit
    try {
      const res = await fetch(options.url, {
        signal: AbortSignal.timeout(Math.max(100, Math.min(2_000, deadline - Date.now()))),
      });
      await res.arrayBuffer();
      if (res.status === 200) return;
      last = `answered ${res.status}`;
    } catch (error) {
      last = `no answer (${((error as Error).cause as Error | undefined)?.message ?? (error as Error).message})`;
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 100));
  }
  throw new NotReadyError(`${options.url} not ready within ${options.timeoutMs} ms: last ${last}`);
}

/** One GET; the status code, or 0 when nothing answered. */
export async function probe(url: string, timeoutMs = 2_000): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}
