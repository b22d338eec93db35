// A script that goes on running after its response (php-fpm's fastcgi_finish_request: Symfony,
// Laravel's afterResponse jobs, WordPress's wp-cron.php), against a real php-fpm. On a kept
// connection its child reads the next request only once the script is done: the pool learns such a
// script from the request that waited behind it, and from then on half-closes its connection at its
// end, so the next request goes to a free child at once; nothing is queued behind it either.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFastCgiClientPool, type FastCgiClientPool } from '../../src/fastcgi/client-pool.js';
import { LINGER_MS } from '../../src/fastcgi/lingering-scripts.js';
import { SILENT_LOGGER } from '../../src/logger.js';
import { eventually } from '../php-fixtures.js';
import {
  appendRequest as append,
  appendedRuns as runs,
  bodyText as body,
  type PhpServer,
  replayableGet as get,
  startPhpFpm,
} from './php-servers.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-fpm-linger-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const newFile = () => join(dir, `file-${++files}`);

/** Fails instead of hanging when `promise` waits for a script the test has not let finish. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function withFpm<T>(
  maxConnections: number,
  queueBehindMs: number,
  fn: (pool: FastCgiClientPool, fpm: PhpServer, logged: string[]) => Promise<T>,
): Promise<T> {
  const fpm = await startPhpFpm({ maxChildren: 2 });
  const logged: string[] = [];
  const logger = { ...SILENT_LOGGER, info: (_: object, message?: string) => logged.push(message ?? '') };
  const pool = createFastCgiClientPool({ address: fpm.address, maxConnections, queueBehindMs, logger });
  try {
    return await fn(pool, fpm, logged);
  } finally {
    await pool.close();
    await fpm.stop();
  }
}

/**
 * Teaches the pool that finishes-early.php lingers, as it happens in production: the request after
 * it on its kept connection waits for it. Returns the pid that ran both.
 */
async function learnLingering(pool: FastCgiClientPool, log: string): Promise<string> {
  // append.php's usual run becomes known: the wait behind the lingering script is told from it
  await body(await pool.request(append(log, 'timed')));
  const flag = newFile();
  const first = await pool.request(get('finishes-early.php', `flag=${flag}`));
  const pid = (await body(first)).split(' ')[1]!;
  await first.done;
  const victim = pool.request(append(log, 'victim'));
  // the lesson: the victim waits behind the script for well over its own run
  await new Promise((resolve) => setTimeout(resolve, 4 * LINGER_MS));
  writeFileSync(flag, '');
  expect(await body(await victim)).toBe(`appended victim pid ${pid}`);
  return pid;
}

describe('FastCGI client pool: a script that goes on after its response (fastcgi_finish_request, php-fpm)', () => {
  it('is learned from the request that waited behind it; after it the next request runs on a free child at once', async () => {
    await withFpm(2, 0, async (pool, _fpm, logged) => {
      const log = newFile();
      await learnLingering(pool, log);
      expect(logged).toEqual([]); // a suspect: its next end is timed first

      const [flag, done] = [newFile(), newFile()];
      const lingering = await pool.request(get('finishes-early.php', `flag=${flag}&done=${done}`));
      const lingeringPid = (await body(lingering)).split(' ')[1];
      await lingering.done;
      // its connection is half-closed, not kept idle; it still counts (its child is busy)
      expect(pool.stats()).toMatchObject({ lingering: 1, idle: 0, busy: 1 });
      const next = await within(pool.request(append(log, 'next')), 5_000, 'the request after the lingering script');
      const answer = await body(next);
      expect(answer).toMatch(/^appended next pid [0-9]+$/);
      expect(answer).not.toBe(`appended next pid ${lingeringPid}`);
      expect(existsSync(done)).toBe(false); // it did not wait for the script: that still runs

      // the child closes the connection when the script is done, and takes new ones again; a
      // linger of LINGER_MS or more makes the suspect known
      await new Promise((resolve) => setTimeout(resolve, 2 * LINGER_MS));
      writeFileSync(flag, '');
      await eventually(() => pool.stats().lingering === 0, 'php-fpm closing the half-closed connection');
      expect(readFileSync(done, 'utf8')).toBe('finished');
      const after = await pool.request(append(log, 'after'));
      expect(await body(after)).toMatch(/^appended after pid [0-9]+$/);
      expect(runs(log).map((line) => line.split(' ')[1])).toEqual(['timed', 'victim', 'next', 'after']);
      // timed as the connection closed: now known, and said once
      expect(logged).toEqual([expect.stringMatching(/finishes-early\.php goes on running after its response/)]);
    });
  });

  it('no request is queued behind it: with one connection, the next one waits for the child to close it', async () => {
    await withFpm(1, 3_600_000, async (pool) => {
      const log = newFile();
      await learnLingering(pool, log);
      const pipelinedBefore = pool.stats().pipelined;

      const [hold, flag, done] = [newFile(), newFile(), newFile()];
      const running = pool.request(get('finishes-early.php', `hold=${hold}&flag=${flag}&done=${done}`));
      await eventually(() => pool.stats().busy === 1, 'the lingering script running');
      const next = pool.request(append(log, 'next'));
      // not written behind it (its END_REQUEST would come long before its child reads the next request)
      expect(pool.stats()).toMatchObject({ pipelined: pipelinedBefore, queued: 1 });
      writeFileSync(hold, '');
      const answered = await running;
      await body(answered);
      await answered.done;
      expect(pool.stats()).toMatchObject({ lingering: 1, queued: 1 });
      writeFileSync(flag, '');
      expect(await body(await next)).toMatch(/^appended next pid [0-9]+$/);
      expect(readFileSync(done, 'utf8')).toBe('finished');
      expect(pool.stats()).toMatchObject({ lingering: 0, pipelined: pipelinedBefore });
    });
  });
});
