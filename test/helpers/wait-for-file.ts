import { readFile } from 'node:fs/promises';

/**
 * Resolves with the file's text once it matches `pattern` (a log line written after the reply went
 * out). Reads again every 25 ms; fails after `timeoutMs` with what the file held.
 */
export async function waitForFile(path: string, pattern: string | RegExp, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(path, 'utf8').catch(() => '');
    if (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`${path} did not show ${pattern} within ${timeoutMs} ms:\n${text}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
