// Shared by the pool tests: real PHP fixtures from test/fixtures/php and a few small helpers.
import { fileURLToPath } from 'node:url';
import type { Logger } from '../src/logger.js';
import { createPool, type Pool } from '../src/pool/pool.js';
import type { PoolOptions } from '../src/options.js';
import { FLAG_CODEC_JSON, type Frame } from '../src/protocol/frame.js';
import { decodeResponseContext } from '../src/protocol/http-context.js';
import type { ExecReply, ExecRequest } from '../src/worker/worker.js';

export function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

/** A JSON-codec request whose body tells the fixture what to do. */
export function request(body = '', context: object = { method: 'GET', uri: 'http://localhost/' }): ExecRequest {
  return { flags: FLAG_CODEC_JSON, context: JSON.stringify(context), body: Buffer.from(body) };
}

export function status(reply: ExecReply | Frame): number {
  if ('context' in reply) return decodeResponseContext(reply.flags, reply.context).status;
  return decodeResponseContext(reply.flags, reply.payload.subarray(0, reply.options[0])).status;
}

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: Record<string, unknown>;
  msg: string;
}

/** A logger that keeps every line, to check what operators would see. */
export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: LogLine['level']) => (obj: object, msg?: string) =>
    void lines.push({ level, obj: obj as Record<string, unknown>, msg: msg ?? '' });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Starts a pool on a fixture and closes it after `fn`, whatever happens. */
export async function withPool<T>(
  name: string,
  options: Partial<PoolOptions>,
  fn: (pool: Pool) => Promise<T>,
): Promise<T> {
  const pool = createPool({ command: ['php', fixture(name)], num_workers: 1, logger: recordingLogger(), ...options });
  await pool.start();
  try {
    return await fn(pool);
  } finally {
    await pool.close();
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true, failing after `ms` with `what`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(20);
  }
}
