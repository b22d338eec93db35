// Requests refused because every worker (or every php-fpm connection) is busy and the queue is
// full (statusOf's `overloaded`): load shedding, the 503 the pool is there to give, not a failure
// of PHP. Logged as one ERROR line each, a flood wrote as many lines as it sent requests (measured:
// 82,733 lines, 24.6 MB in 8 s against one worker), filling the disk and costing the one Node thread
// more than the refusals did. One warning per site at most every 10 s instead, with the count
// refused since by code; the first refusal of a quiet spell is written at once.
import type { FastifyBaseLogger } from 'fastify';
import { ThrottledCount } from '@warmpool/pool';

export class OverloadLog {
  readonly #lines: ThrottledCount;
  /** refused since the last line, by code */
  readonly #byCode = new Map<string, number>();

  /** `everyMs`: ThrottledCount's period (10 s) unless given */
  constructor(everyMs?: number) {
    this.#lines = new ThrottledCount(everyMs);
  }

  /** Counts one refusal; writes the summary line when the last one is `everyMs` old, with `error` (the last refusal's) as its err. */
  refused(log: FastifyBaseLogger, code: string, message: string, error?: unknown): void {
    this.#byCode.set(code, (this.#byCode.get(code) ?? 0) + 1);
    const total = this.#lines.add();
    if (total === 0) return;
    log.warn(
      { refused: Object.fromEntries(this.#byCode), err: error === undefined ? { code, message } : loggedError(error) },
      `overloaded: refused ${total} request(s) with 503 since the last such line (${message}); ${adviceFor(this.#byCode)}`,
    );
    this.#byCode.clear();
  }
}

/**
 * Requests failed at once because no worker runs and none can boot (WP_POOL_WORKERS_DOWN: a broken
 * deploy, a database gone at boot). Each had its own ERROR line repeating the boot error: 20,823
 * lines (11.8 MB) in 2 s of load (a pool probe). The boot failure itself is logged by the pool, at
 * each retry; the requests it fails are one line at most every 10 s, with their count.
 */
export class WorkersDownLog {
  readonly #lines: ThrottledCount;

  constructor(everyMs?: number) {
    this.#lines = new ThrottledCount(everyMs);
  }

  failed(log: FastifyBaseLogger, message: string, fields: Record<string, unknown>, error?: unknown): void {
    const total = this.#lines.add();
    if (total === 0) return;
    log.error(
      {
        ...fields,
        failed: total,
        err: error === undefined ? { code: 'WP_POOL_WORKERS_DOWN', message } : loggedError(error),
      },
      `PHP workers are down: failed ${total} request(s) with 502 since the last such line (${message})`,
    );
  }
}

/**
 * What a log line says of a failure (its `err`): its class, message, stack and code, which pino's err
 * serializer writes as it writes Fastify's own errors (err.type "WorkerExitedError"; the bare
 * { message, code } was logged as type "Object" with an empty stack). Not the error itself: its
 * details would repeat the worker's pid, which has its own key (workerPid), and a second "pid" made
 * JSON readers keep one of the two. No prototype, so pino takes the type from `name`, not from a
 * constructor.
 */
export function loggedError(error: unknown): { name: string; message: string; stack: string; code?: string } {
  const logged = Object.create(null) as { name: string; message: string; stack: string; code?: string };
  if (error instanceof Error) {
    logged.name = error.name;
    logged.message = error.message;
    logged.stack = error.stack ?? '';
    const { code } = error as { code?: unknown };
    if (typeof code === 'string') logged.code = code;
  } else {
    logged.name = typeof error;
    logged.message = String(error);
    logged.stack = '';
  }
  return logged;
}

/**
 * What to raise, by what refused: a full queue asks for more workers or a deeper queue; a request
 * that waited allocate_timeout in a queue with room asks for more workers or a longer wait (a
 * deeper queue cannot help it).
 */
function adviceFor(byCode: ReadonlyMap<string, number>): string {
  const queueFull = (byCode.get('WP_POOL_QUEUE_FULL') ?? 0) + (byCode.get('WP_FASTCGI_QUEUE_FULL') ?? 0) > 0;
  const waitedOut =
    (byCode.get('WP_POOL_NO_FREE_WORKER') ?? 0) + (byCode.get('WP_FASTCGI_NO_FREE_CONNECTION') ?? 0) > 0;
  const raise = [
    'num_workers',
    ...(queueFull ? ['max_queue_size'] : []),
    ...(waitedOut || !queueFull ? ['allocate_timeout'] : []),
  ];
  return `raise ${raise.slice(0, -1).join(', ')}${raise.length > 1 ? ' or ' : ''}${raise.at(-1)} if the machine has room`;
}
