// Pipelining in a pool of php-cgi workers, against real php-cgi: when every worker is busy, a
// replayable request (GET or HEAD without a body) is queued behind a running one on its kept
// connection, so PHP goes on to it without a round trip through warmpool. Every pool rule still
// holds: nothing runs twice, a request whose worker went away before it began runs elsewhere,
// max_jobs counts it, a client that leaves costs no process, and POSTs never queue there.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { ExecTimeoutError, FastCgiConnectionClosedError, WorkerExitedError } from '../../src/errors.js';
import type { CgiDriverOptions } from '../../src/worker/cgi-driver.js';
import type { CgiReply, CgiRequest } from '../../src/worker/cgi-worker.js';
import { appendedRuns as runs, scriptParams, streamed } from '../fastcgi/php-servers.js';
import { eventually } from '../php-fixtures.js';
import { withCgiPool } from './cgi-pools.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-cgi-pipelining-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;
const newFile = () => join(dir, `file-${++files}`);

/** A GET as the FastCGI exchange makes it: replayable, so it may be queued behind a running one. */
function get(script: string, query = '', signal: AbortSignal | null = null): CgiRequest {
  return { params: scriptParams(script, { query }), stdin: null, signal, onStderr: null, replayable: true, script };
}

/** Runs append.php, which logs one line per run ("<pid> <tag>") to `log`. */
const append = (log: string, tag: string, signal: AbortSignal | null = null) =>
  get('append.php', `log=${log}&tag=${tag}`, signal);

const body = async (reply: CgiReply) => text(streamed(reply.body));

/** wait-for-flag.php: its head is in once exec resolves; it ends once `flag` exists. */
const waiting = (flag: string, done = newFile()) => get('wait-for-flag.php', `flag=${flag}&done=${done}`);

/** A running request that waits for its flag, and a log for the requests queued behind it. */
async function startWaiting(pool: { exec(request: CgiRequest): Promise<CgiReply> }) {
  const flag = newFile();
  const running = await pool.exec(waiting(flag));
  return { flag, log: newFile(), running, pid: Number(running.headers['x-pid']) };
}

/** Queue behind any running request, however long it has run: the tests decide when scripts end. */
const ALWAYS: CgiDriverOptions = { queueBehindMs: 3_600_000 };

describe('php-cgi pool: a request queued behind a running one (pipelining)', () => {
  it('runs right after the running one on the same process, counted as a job of its own', async () => {
    await withCgiPool(
      {},
      async (pool) => {
        const { flag, log, running, pid } = await startWaiting(pool);
        let answered = false;
        const queued = pool.exec(append(log, 'q')).then((reply) => {
          answered = true;
          return reply;
        });
        expect(pool.stats()).toMatchObject({ queued: 0, pipelined: 1 });
        expect((await pool.workers()).map((w) => w.state)).toEqual(['working']);
        writeFileSync(flag, '');
        expect(await body(running)).toBe('started\nfinished\n');
        expect(await body(await queued)).toBe(`appended q pid ${pid}`);
        expect(answered).toBe(true);
        expect(runs(log)).toEqual([`${pid} q`]);
        await eventually(async () => (await pool.workers())[0]!.state === 'ready', 'the worker to be free');
        expect((await pool.workers())[0]).toMatchObject({ pid, jobs: 2 });
        // the kept connection serves on
        expect(await body(await pool.exec(get('hello.php')))).toBe(`hello from cgi-fcgi pid ${pid}`);
      },
      ALWAYS,
    );
  });

  it('queues no POST, nothing with pipelining off, and nothing behind a request that has run long', async () => {
    const cases: [string, CgiDriverOptions, (log: string) => CgiRequest][] = [
      ['a POST', ALWAYS, (log) => ({ ...append(log, 'post'), replayable: false })],
      ['pipelining off', { queueBehindMs: 0 }, (log) => append(log, 'off')],
      ['behind a long request', { queueBehindMs: 5 }, (log) => append(log, 'late')],
    ];
    for (const [what, cgi, make] of cases) {
      await withCgiPool(
        {},
        async (pool) => {
          const flag = newFile();
          const log = newFile();
          const running = await pool.exec(waiting(flag));
          // the running request has now run 30 ms, over 5 ms and twice its worker's average (none yet)
          if (cgi.queueBehindMs === 5) await new Promise((resolve) => setTimeout(resolve, 30));
          const later = pool.exec(make(log));
          expect(pool.stats(), what).toMatchObject({ queued: 1, pipelined: 0 });
          writeFileSync(flag, '');
          await body(running);
          expect(await body(await later)).toMatch(/^appended/);
          expect(runs(log)).toHaveLength(1);
        },
        cgi,
      );
    }
  });

  it('nothing behind a script known to run longer than the window, even as it starts', async () => {
    await withCgiPool(
      {},
      async (pool) => {
        const log = newFile();
        // its first run: nothing is known of wait-for-flag.php, the GET goes behind it
        const first = await startWaiting(pool);
        const behindUnknown = pool.exec(append(log, 'behind-unknown'));
        expect(pool.stats()).toMatchObject({ queued: 0, pipelined: 1 });
        // held past the 1 s window: the script is now known to run long
        await new Promise((resolve) => setTimeout(resolve, 1100));
        writeFileSync(first.flag, '');
        await body(first.running);
        expect(await body(await behindUnknown)).toMatch(/^appended behind-unknown/);
        // its second run has only begun, yet the GET waits for a free worker instead
        const second = await startWaiting(pool);
        const afterKnown = pool.exec(append(log, 'after-known'));
        expect(pool.stats()).toMatchObject({ queued: 1, pipelined: 1 });
        writeFileSync(second.flag, '');
        await body(second.running);
        expect(await body(await afterKnown)).toMatch(/^appended after-known/);
      },
      { queueBehindMs: 1000 },
    );
  });

  it('a request that begins on a freed worker while others wait gets the first one it can queue behind it', async () => {
    await withCgiPool(
      {},
      async (pool) => {
        const [flag1, flag2] = [newFile(), newFile()];
        const log = newFile();
        const first = await pool.exec(waiting(flag1));
        // a POST cannot be queued behind the first: it waits; so does the GET after it, in order
        const post = pool.exec({
          ...waiting(flag2),
          params: scriptParams('wait-for-flag.php', { method: 'POST', query: `flag=${flag2}`, contentLength: 1 }),
          stdin: Buffer.from('x'),
          replayable: false,
        });
        const later = pool.exec(append(log, 'behind-post'));
        expect(pool.stats()).toMatchObject({ queued: 2, pipelined: 0 });
        writeFileSync(flag1, '');
        await body(first);
        // the POST began on the freed worker, and the GET went behind it at once
        await eventually(() => pool.stats().pipelined === 1, 'the GET to be queued behind the POST');
        expect(pool.stats().queued).toBe(0);
        writeFileSync(flag2, '');
        expect(await body(await post)).toBe('started\nfinished\n');
        expect(await body(await later)).toMatch(/^appended behind-post/);
      },
      ALWAYS,
    );
  });

  it('a worker killed before the queued request began: that request runs once, on its replacement', async () => {
    await withCgiPool(
      {},
      async (pool) => {
        const { log, running, pid } = await startWaiting(pool);
        const queued = pool.exec(append(log, 'moved'));
        expect(pool.stats().pipelined).toBe(1);
        process.kill(pid, 'SIGKILL');
        // 502: the connection closed, or the exit was seen first
        const error = await body(running).catch((e: unknown) => e);
        expect(error instanceof FastCgiConnectionClosedError || error instanceof WorkerExitedError).toBe(true);
        const reply = await queued;
        expect(reply.pid).not.toBe(pid);
        expect(await body(reply)).toBe(`appended moved pid ${reply.pid}`);
        expect(runs(log)).toEqual([`${reply.pid} moved`]);
        expect(pool.stats().errors).not.toHaveProperty('WP_FASTCGI_QUEUED_NOT_RUN');
      },
      ALWAYS,
    );
  });

  it('exec_ttl on the running request: it fails with 504, the queued one runs once elsewhere', async () => {
    await withCgiPool(
      { supervisor: { exec_ttl: '300ms' } },
      async (pool) => {
        const log = newFile();
        const hung = pool.exec(get('hangs.php'));
        await eventually(async () => (await pool.workers())[0]?.state === 'working', 'hangs.php to run');
        const queued = pool.exec(append(log, 'after-ttl'));
        expect(pool.stats().pipelined).toBe(1);
        await expect(hung).rejects.toBeInstanceOf(ExecTimeoutError);
        const reply = await queued;
        expect(await body(reply)).toBe(`appended after-ttl pid ${reply.pid}`);
        expect(runs(log)).toHaveLength(1);
        expect(pool.stats().recycles.exec_ttl).toBe(1);
      },
      ALWAYS,
    );
  });

  it('the client of the running request leaves: PHP ends it, the queued one follows, the process stays', async () => {
    await withCgiPool(
      {},
      async (pool) => {
        const flag = newFile();
        const done = newFile();
        const log = newFile();
        const controller = new AbortController();
        const running = await pool.exec({ ...waiting(flag, done), signal: controller.signal });
        const pid = Number(running.headers['x-pid']);
        const queued = pool.exec(append(log, 'next'));
        controller.abort();
        await expect(body(running)).rejects.toThrow();
        writeFileSync(flag, '');
        expect(await body(await queued)).toBe(`appended next pid ${pid}`);
        expect(readFileSync(done, 'utf8')).toBe('finished');
        await eventually(async () => (await pool.workers())[0]?.state === 'ready', 'the worker to be free');
        expect(pool.stats().recycles).toEqual({});
        expect(await body(await pool.exec(get('hello.php')))).toBe(`hello from cgi-fcgi pid ${pid}`);
      },
      ALWAYS,
    );
  });

  it('the client of the queued request leaves before it began: PHP had it and runs it once; the worker goes on', async () => {
    await withCgiPool(
      {},
      async (pool) => {
        const { flag, log, running, pid } = await startWaiting(pool);
        const controller = new AbortController();
        const queued = pool.exec(append(log, 'gone', controller.signal), { signal: controller.signal });
        controller.abort();
        writeFileSync(flag, '');
        expect(await body(running)).toBe('started\nfinished\n');
        await expect(queued).rejects.toMatchObject({ code: expect.stringMatching(/ABORTED$/) });
        await eventually(async () => (await pool.workers())[0]?.state === 'ready', 'the worker to be free');
        expect(runs(log)).toEqual([`${pid} gone`]);
        expect(pool.stats().recycles).toEqual({});
        expect(await body(await pool.exec(get('hello.php')))).toBe(`hello from cgi-fcgi pid ${pid}`);
      },
      ALWAYS,
    );
  });

  it('under load each request runs exactly once and answers its own client; max_jobs counts queued ones', async () => {
    await withCgiPool(
      { num_workers: 2, max_jobs: 7, max_queue_size: 200 },
      async (pool) => {
        const log = newFile();
        const tags = Array.from({ length: 120 }, (_, i) => `t${i}`);
        const replies = await Promise.all(
          tags.map(async (tag) => [tag, await body(await pool.exec(append(log, tag)))]),
        );
        for (const [tag, text] of replies) expect(text).toMatch(new RegExp(`^appended ${tag} pid \\d+$`));
        const lines = runs(log);
        expect(lines.map((line) => line.split(' ')[1]).sort()).toEqual([...tags].sort());
        // max_jobs 7 (plus up to 14 % jitter: 7): no process ran more than 7 requests
        const perPid = new Map<string, number>();
        for (const line of lines) perPid.set(line.split(' ')[0]!, (perPid.get(line.split(' ')[0]!) ?? 0) + 1);
        expect(Math.max(...perPid.values())).toBeLessThanOrEqual(7);
        expect(pool.stats().pipelined).toBeGreaterThan(0);
        expect(pool.stats().recycles.max_jobs).toBeGreaterThan(0);
      },
      ALWAYS,
    );
  });
});
