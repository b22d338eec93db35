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
  /** the last refusal: the summary line is written with its logger, message and error */
  #last: { log: FastifyBaseLogger; code: string; message: string; error: unknown } | null = null;

  /** `everyMs`: ThrottledCount's period (10 s) unless given */
  constructor(everyMs?: number) {
    this.#lines = new ThrottledCount((total) => this.#write(total), everyMs);
  }

  /** Counts one refusal; the summary line is written at once after a quiet spell, else when the period ends. */
  refused(log: FastifyBaseLogger, code: string, message: string, error?: unknown): void {
    this.#byCode.set(code, (this.#byCode.get(code) ?? 0) + 1);
    this.#last = { log, code, message, error };
    this.#lines.add();
  }

  #write(total: number): void {
    const last = this.#last;
    if (last === null) return;
    const { log, code, message, error } = last;
    log.warn(
      { refused: Object.fromEntries(this.#byCode), err: error === undefined ? { code, message } : loggedError(error) },
      `overloaded: refused ${total} request(s) with 503 since the last such line (${message}); ${isHeldByLongRequests(error) ? HELD_ADVICE : adviceFor(this.#byCode)}`,
    );
    this.#byCode.clear();
    this.#last = null;
  }
}

/**
 * Requests failed at once because no worker runs and none can boot (WP_POOL_WORKERS_DOWN: a broken
 * deploy, a database gone at boot), or because fastcgi.pass's php-fpm does not take connections
 * (WP_FASTCGI_CONNECT_FAILED: stopped, restarting). Each had its own ERROR line repeating the
 * error and its stack: 20,823 lines (11.8 MB) in 2 s of load (a pool probe); 141 lines of 1.1 KB
 * in 10 s of a php-fpm restart at 10 requests a second (a day-2 probe). The boot failure itself is
 * logged by the pool, at each retry; the requests it fails are one line at most every 10 s, with
 * their count.
 */
export class WorkersDownLog {
  readonly #lines: ThrottledCount;
  #last: { log: FastifyBaseLogger; message: string; fields: Record<string, unknown>; error: unknown } | null = null;

  /** `what`: the line's subject; `everyMs`: ThrottledCount's period (10 s) unless given */
  constructor(
    private readonly what = 'PHP workers are down',
    everyMs?: number,
  ) {
    this.#lines = new ThrottledCount((total) => this.#write(total), everyMs);
  }

  failed(log: FastifyBaseLogger, message: string, fields: Record<string, unknown>, error?: unknown): void {
    this.#last = { log, message, fields, error };
    this.#lines.add();
  }

  #write(total: number): void {
    const last = this.#last;
    if (last === null) return;
    const { log, message, fields, error } = last;
    log.error(
      {
        ...fields,
        failed: total,
        err: error === undefined ? { code: 'WP_POOL_WORKERS_DOWN', message } : loggedError(error),
      },
      `${this.what}: failed ${total} request(s) with 502 since the last such line (${message})`,
    );
    this.#last = null;
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

/** The pool's refusal says every worker has been on one request for longer than allocate_timeout. */
function isHeldByLongRequests(error: unknown): boolean {
  return (error as { details?: { heldByLongRequests?: unknown } } | null)?.details?.heldByLongRequests === true;
}

/** More workers would be held the same way: bound the requests instead. */
const HELD_ADVICE =
  'more workers would be held the same way: set http.pool.supervisor.exec_ttl to end such requests, or fix what they wait for';

/**
 * What to raise, by what refused: a full queue asks for more workers or a deeper queue; a request
 * that waited allocate_timeout in a queue with room asks for more workers or a longer wait (a
 * deeper queue cannot help it). A site passing to php-fpm (WP_FASTCGI_*) has no workers of its own:
 * its connections and php-fpm's children are what run its scripts.
 */
function adviceFor(byCode: ReadonlyMap<string, number>): string {
  let fpm = false;
  for (const code of byCode.keys()) if (code.startsWith('WP_FASTCGI_')) fpm = true;
  const queueFull = (byCode.get('WP_POOL_QUEUE_FULL') ?? 0) + (byCode.get('WP_FASTCGI_QUEUE_FULL') ?? 0) > 0;
  const waitedOut =
    (byCode.get('WP_POOL_NO_FREE_WORKER') ?? 0) + (byCode.get('WP_FASTCGI_NO_FREE_CONNECTION') ?? 0) > 0;
  const raise = [
    fpm ? "fastcgi.max_connections (with the php-fpm pool's pm.max_children)" : 'num_workers',
    ...(queueFull ? ['max_queue_size'] : []),
    ...(waitedOut || !queueFull ? ['allocate_timeout'] : []),
  ];
  return `raise ${raise.slice(0, -1).join(', ')}${raise.length > 1 ? ' or ' : ''}${raise.at(-1)} if the machine has room`;
}
