// Pipelining in the connection pool to a real php-fpm: with every connection busy, a replayable
// request (GET or HEAD without a body) is written behind a running one on its kept connection, and
// the php-fpm child goes on to it without a round trip through us; a waiter takes the place behind
// once the queued one began; a child that leaves at pm.max_requests before the queued one began
// costs nothing (it runs once, on a new connection); a POST is never queued.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFastCgiClientPool, type FastCgiClientPool } from '../../src/fastcgi/client-pool.js';
import { eventually } from '../php-fixtures.js';
import {
  appendRequest as append,
  appendedRuns as runs,
  bodyText as body,
  type PhpFpmOptions,
  replayableGet as get,
  scriptParams,
  startPhpFpm,
} from './php-servers.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-fpm-queue-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const newFile = () => join(dir, `file-${++files}`);

const waiting = (flag: string) => get('wait-for-flag.php', `flag=${flag}`);

async function withFpm<T>(
  fpmOptions: PhpFpmOptions,
  fn: (pool: FastCgiClientPool) => Promise<T>,
  // by default queue behind any running request, however long it has run: the tests decide when scripts end
  queueBehindMs = 3_600_000,
): Promise<T> {
  const fpm = await startPhpFpm(fpmOptions);
  const pool = createFastCgiClientPool({ address: fpm.address, maxConnections: 1, queueBehindMs });
  try {
    return await fn(pool);
  } finally {
    await pool.close();
    await fpm.stop();
  }
}

describe('FastCGI client pool: a request queued behind a running one (php-fpm)', () => {
  it('the child runs it right after the running one, on the same connection', async () => {
    await withFpm({ maxChildren: 1 }, async (pool) => {
      const flag = newFile();
      const log = newFile();
      const running = await pool.request(waiting(flag));
      const queued = pool.request(append(log, 'q'));
      expect(pool.stats()).toMatchObject({ busy: 1, queued: 0, pipelined: 1 });
      writeFileSync(flag, '');
      expect(await body(running)).toBe('started\nfinished\n');
      const pid = String(running.headers['x-pid']);
      expect(await body(await queued)).toBe(`appended q pid ${pid}`);
      expect(runs(log)).toEqual([`${pid} q`]);
      expect(pool.stats()).toMatchObject({ opened: 1, retries: 0 });
    });
  });

  it('nothing behind a script known to run longer than the window, even as it starts', async () => {
    await withFpm(
      { maxChildren: 1 },
      async (pool) => {
        const [flag1, flag2] = [newFile(), newFile()];
        const log = newFile();
        const first = await pool.request(waiting(flag1));
        const behindUnknown = pool.request(append(log, 'behind-unknown'));
        expect(pool.stats()).toMatchObject({ queued: 0, pipelined: 1 });
        // held past the 1 s window: wait-for-flag.php is now known to run long
        await new Promise((resolve) => setTimeout(resolve, 1100));
        writeFileSync(flag1, '');
        await body(first);
        expect(await body(await behindUnknown)).toMatch(/^appended behind-unknown/);
        const second = await pool.request(waiting(flag2));
        const afterKnown = pool.request(append(log, 'after-known'));
        expect(pool.stats()).toMatchObject({ queued: 1, pipelined: 1 });
        writeFileSync(flag2, '');
        await body(second);
        expect(await body(await afterKnown)).toMatch(/^appended after-known/);
      },
      1000,
    );
  });

  it('a waiting request takes the place behind once the queued one began; a POST waits its turn', async () => {
    await withFpm({ maxChildren: 1 }, async (pool) => {
      const [flag1, flag2] = [newFile(), newFile()];
      const log = newFile();
      const first = await pool.request(waiting(flag1));
      const second = pool.request(waiting(flag2));
      const post = pool.request({ ...append(log, 'post'), replayable: false });
      const third = pool.request(append(log, 'third'));
      expect(pool.stats()).toMatchObject({ queued: 2, pipelined: 1 });
      writeFileSync(flag1, '');
      await body(first);
      // the second began: the place behind it goes to the first waiter that may be queued
      await eventually(() => pool.stats().pipelined === 2, 'the third request to be queued behind the second');
      expect(pool.stats().queued).toBe(1);
      writeFileSync(flag2, '');
      await body(await second);
      expect(await body(await third)).toMatch(/^appended third/);
      expect(await body(await post)).toMatch(/^appended post/);
      expect(runs(log).map((line) => line.split(' ')[1])).toEqual(['third', 'post']);
    });
  });

  it('a request that begins on a freed connection while others wait gets the first one it can queue behind it', async () => {
    await withFpm({ maxChildren: 1 }, async (pool) => {
      const [flag1, flag2] = [newFile(), newFile()];
      const log = newFile();
      const first = await pool.request(waiting(flag1));
      const post = pool.request({
        params: scriptParams('wait-for-flag.php', { method: 'POST', query: `flag=${flag2}`, contentLength: 1 }),
        stdin: Buffer.from('x'),
      });
      const later = pool.request(append(log, 'behind-post'));
      expect(pool.stats()).toMatchObject({ queued: 2, pipelined: 0 });
      writeFileSync(flag1, '');
      await body(first);
      await eventually(() => pool.stats().pipelined === 1, 'the GET to be queued behind the POST');
      expect(pool.stats().queued).toBe(0);
      writeFileSync(flag2, '');
      expect(await body(await post)).toBe('started\nfinished\n');
      expect(await body(await later)).toMatch(/^appended behind-post/);
    });
  });

  it('a child that leaves at pm.max_requests before the queued request began: it runs once, on a new connection', async () => {
    await withFpm({ maxChildren: 1, maxRequests: 2 }, async (pool) => {
      const flag = newFile();
      const log = newFile();
      await body(await pool.request(get('hello.php'))); // the child's first request
      const running = await pool.request(waiting(flag)); // its last
      const queued = pool.request(append(log, 'moved'));
      expect(pool.stats().pipelined).toBe(1);
      writeFileSync(flag, '');
      await body(running);
      const text_ = await body(await queued);
      const pid = text_.split(' ').pop()!;
      expect(pid).not.toBe(String(running.headers['x-pid']));
      expect(runs(log)).toEqual([`${pid} moved`]);
      expect(pool.stats()).toMatchObject({ opened: 2, retries: 1 });
      expect(pool.stats().errors).toEqual({});
    });
  });
});
