// Waits for an event seen by polling (a count in `warmpool workers`, a file), never for a fixed time:
// the check runs every 50 ms until it holds, and fails naming what it waited for.

/** Resolves once `check()` holds; rejects after `timeoutMs` (20 s) with `what` in the message. */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
