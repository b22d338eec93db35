import Fastify, { type FastifyBaseLogger } from 'fastify';
import { describe, expect, it } from 'vitest';
import {
  FastCgiClosedError,
  FastCgiOverloadedError,
  NoFreeWorkerError,
  PoolClosedError,
  QueueFullError,
  WorkerExitedError,
  WorkersDownError,
} from '@warmpool/pool';
import { OverloadLog } from '../src/http/overload-log.js';
import { statusOf } from '../src/http/status.js';
import { until } from '../../../test/helpers/until.js';

/** Fastify's own (pino) logger, its lines landing in `lines`. */
function capture(): { log: FastifyBaseLogger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = { write: (line: string) => void lines.push(JSON.parse(line)) };
  return { log: Fastify({ logger: { level: 'info', stream } }).log, lines };
}

describe('OverloadLog', () => {
  it('statusOf knows load shedding from failure', () => {
    expect(statusOf(new QueueFullError('full')).overloaded).toBe(true);
    expect(statusOf(new FastCgiOverloadedError('php-fpm overloaded')).overloaded).toBe(true);
    expect(statusOf(new WorkerExitedError('exited')).overloaded).toBe(false);
    // workers that cannot boot are PHP down (502, as nginx with php-fpm down), not load shedding
    expect(statusOf(new WorkersDownError('down'))).toEqual({ status: 502, retryAfter: null, overloaded: false });
    expect(statusOf(new Error('no code')).overloaded).toBe(false);
    // 503s that are not load shedding: the pool is closing
    expect(statusOf(new PoolClosedError()).overloaded).toBe(false);
    expect(statusOf(new FastCgiClosedError()).overloaded).toBe(false);
  });

  it('writes the first refusal at once, then one line per period with the count since, by code', async () => {
    const { log, lines } = capture();
    const overload = new OverloadLog(30);
    overload.refused(log, 'WP_POOL_QUEUE_FULL', 'request queue is full');
    for (let i = 0; i < 50; i++) overload.refused(log, 'WP_POOL_QUEUE_FULL', 'request queue is full');
    overload.refused(log, 'WP_POOL_NO_FREE_WORKER', 'no free worker');
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 40, refused: { WP_POOL_QUEUE_FULL: 1 } });
    // the period's end writes the rest
    await until(() => lines.length === 2, 'the summary line');
    expect(lines[1]).toMatchObject({ refused: { WP_POOL_QUEUE_FULL: 50, WP_POOL_NO_FREE_WORKER: 1 } });
    expect(String(lines[1]!.msg)).toMatch(/^overloaded: refused 51 request\(s\) with 503/);
  });

  it('writes the tail of a burst when its period ends, with no later refusal', async () => {
    const { log, lines } = capture();
    const overload = new OverloadLog(50);
    for (let i = 0; i < 20; i++) overload.refused(log, 'WP_POOL_QUEUE_FULL', 'request queue is full');
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toHaveLength(1);
    await until(() => lines.length === 2, 'the summary of the 19 held back');
    expect(lines[1]).toMatchObject({ refused: { WP_POOL_QUEUE_FULL: 19 } });
    expect(String(lines[1]!.msg)).toMatch(/^overloaded: refused 19 request\(s\) with 503/);
  });

  it('tells a site passing to php-fpm to raise its connections and php-fpm children, not num_workers', async () => {
    const { log, lines } = capture();
    new OverloadLog(50).refused(log, 'WP_FASTCGI_NO_FREE_CONNECTION', 'no FastCGI connection became free');
    await new Promise((resolve) => setImmediate(resolve));
    expect(String(lines[0]!.msg)).toMatch(
      /raise fastcgi\.max_connections \(with the php-fpm pool's pm\.max_children\) or allocate_timeout if the machine has room$/,
    );
  });

  it('points at exec_ttl, not at more workers, when every worker is held by a long request', async () => {
    const { log, lines } = capture();
    const held = new NoFreeWorkerError(
      'no free worker within allocate_timeout (60000ms): 2 busy, 2 queued. Every worker…',
      {
        heldByLongRequests: true,
      },
    );
    new OverloadLog(50).refused(log, held.code, held.message, held);
    await new Promise((resolve) => setImmediate(resolve));
    expect(String(lines[0]!.msg)).toMatch(/more workers would be held the same way: set http.pool.supervisor.exec_ttl/);
    expect(String(lines[0]!.msg)).not.toMatch(/raise num_workers/);
  });
});
