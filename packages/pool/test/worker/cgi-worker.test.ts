// php-cgi processes as pool workers (classic mode, managed), against real php-cgi: each process is
// a worker on one kept FastCGI connection, and every pool rule applies to it as to a goridge worker
// (max_jobs, exec_ttl, max_worker_memory during a request, idle scale to zero, reset, stats).
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BootFailedError,
  CommandNotFoundError,
  ExecTimeoutError,
  StreamStalledError,
  WorkerExitedError,
} from '../../src/errors.js';
import { createCgiPool } from '../../src/worker/cgi-driver.js';
import type { CgiReply, CgiRequest } from '../../src/worker/cgi-worker.js';
import { processGroupMembers, scriptParams, streamed } from '../fastcgi/php-servers.js';
import { eventually, recordingLogger } from '../php-fixtures.js';
import { withCgiPool } from './cgi-pools.js';

const flags = mkdtempSync(join(tmpdir(), 'warmpool-cgi-flags-'));
afterAll(() => rmSync(flags, { recursive: true, force: true }));
let flagCount = 0;
const newFlag = () => join(flags, `flag-${++flagCount}`);

function request(script: string, options: Parameters<typeof scriptParams>[1] & { body?: CgiRequest['stdin'] } = {}) {
  const { body, ...params } = options;
  return {
    params: scriptParams(script, params),
    stdin: body ?? null,
    signal: null,
    onStderr: null,
  } satisfies CgiRequest as CgiRequest;
}

const body = async (reply: CgiReply) => text(streamed(reply.body));
const alive = (pid: number) => processGroupMembers(pid).length > 0;

describe('CgiWorker: php-cgi processes as pool workers', () => {
  it('serves many requests per process on one kept connection; one process per worker, no children', async () => {
    await withCgiPool({ num_workers: 2 }, async (pool) => {
      const workers = await pool.workers();
      expect(workers.map((w) => w.state)).toEqual(['ready', 'ready']);
      // PHP_FCGI_CHILDREN=0: the process the pool counts is the one that runs PHP
      for (const worker of workers) expect(processGroupMembers(worker.pid)).toEqual([worker.pid]);
      // each listens on a socket in a folder of its own that only its user may enter
      for (const worker of workers) {
        const argv = readFileSync(`/proc/${worker.pid}/cmdline`, 'utf8').split('\0');
        const socket = argv[argv.indexOf('-b') + 1]!;
        expect(statSync(dirname(socket)).mode & 0o777).toBe(0o700);
      }
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const reply = await pool.exec(request('hello.php'));
        expect(reply.status).toBe(200);
        const line = await body(reply);
        expect(line).toMatch(/^hello from cgi-fcgi pid \d+$/);
        seen.add(line.split(' ').pop()!);
      }
      const pids = workers.map((w) => String(w.pid));
      for (const pid of seen) expect(pids).toContain(pid);
      const after = await pool.workers();
      expect(after.reduce((n, w) => n + w.jobs, 0)).toBe(20);
      // PHP_FCGI_MAX_REQUESTS=0: php-cgi never leaves on its own; the same processes still serve
      expect(after.map((w) => w.pid).sort()).toEqual(workers.map((w) => w.pid).sort());
    });
  });

  it('passes the CGI head: several Set-Cookie lines and a script 404', async () => {
    await withCgiPool({}, async (pool) => {
      const cookies = await pool.exec(request('cookies.php'));
      expect(cookies.headers['set-cookie']).toHaveLength(3);
      expect(await body(cookies)).toBe('cookies set');
      const missing = await pool.exec(request('not-found.php'));
      expect([missing.status, await body(missing)]).toEqual([404, 'no such page']);
    });
  });

  it("starts php-cgi with the server's environment cleared (php-fpm's clear_env): no secret of it reaches $_SERVER", async () => {
    const names = 'names=WARMPOOL_TEST_SECRET,APP_KEY,PATH';
    process.env.WARMPOOL_TEST_SECRET = 'hunter2';
    try {
      const cleared = await withCgiPool({ env: { app_key: 'given-by-name' } }, async (pool) =>
        JSON.parse(await body(await pool.exec(request('environment.php', { query: names })))),
      );
      expect(cleared.environment).toEqual(
        [
          'APP_KEY',
          ...['PATH', 'TMPDIR', 'PHPRC', 'PHP_INI_SCAN_DIR'].filter((key) => process.env[key] !== undefined),
          'PHP_FCGI_CHILDREN',
          'PHP_FCGI_MAX_REQUESTS',
          'WARMPOOL',
        ].sort(),
      );
      expect(cleared.seen).toEqual({
        WARMPOOL_TEST_SECRET: { server: null, getenv: null },
        APP_KEY: { server: 'given-by-name', getenv: 'given-by-name' },
        PATH: { server: process.env.PATH, getenv: process.env.PATH },
      });
      const inherited = await withCgiPool(
        {},
        async (pool) => JSON.parse(await body(await pool.exec(request('environment.php', { query: names })))),
        { clearEnv: false },
      );
      expect(inherited.seen.WARMPOOL_TEST_SECRET).toEqual({ server: 'hunter2', getenv: 'hunter2' });
    } finally {
      delete process.env.WARMPOOL_TEST_SECRET;
    }
  });

  it('streams a request body to PHP', async () => {
    await withCgiPool({}, async (pool) => {
      const payload = randomBytes(3 * 1024 * 1024 + 5);
      const stream = new PassThrough();
      const reply = pool.exec(
        request('post-sha256.php', { method: 'POST', contentLength: payload.length, body: stream }),
      );
      stream.end(payload);
      expect(JSON.parse(await body(await reply))).toMatchObject({
        sha256: createHash('sha256').update(payload).digest('hex'),
        bytes: payload.length,
      });
    });
  });

  it('hands STDERR lines to the logger with the pid', async () => {
    const logger = recordingLogger();
    await withCgiPool({ logger }, async (pool) => {
      const reply = await pool.exec(request('stderr.php'));
      expect(await body(reply)).toBe('logged');
      const pid = reply.pid;
      await eventually(() => logger.lines.some((l) => l.msg === 'second line to stderr'), 'the stderr lines');
      expect(logger.lines.find((l) => l.msg === 'first line to stderr')?.obj).toMatchObject({ workerPid: pid });
    });
  });

  it('max_jobs: a process is recycled after its jobs and replaced by a fresh one', async () => {
    await withCgiPool({ max_jobs: 3 }, async (pool) => {
      const first = (await pool.workers())[0]!.pid;
      const recycled = new Promise((resolve) => pool.once('worker:recycle', resolve));
      for (let i = 0; i < 3; i++) await body(await pool.exec(request('hello.php')));
      expect(await recycled).toEqual({ pid: first, reason: 'max_jobs' });
      const next = await body(await pool.exec(request('hello.php')));
      expect(next).not.toContain(`pid ${first}`);
      await eventually(() => !alive(first), 'the recycled php-cgi to exit');
      expect(pool.stats().recycles.max_jobs).toBe(1);
    });
  });

  it('exec_ttl: a silent script fails with 504 (ExecTimeoutError); its process is killed and replaced', async () => {
    await withCgiPool({ supervisor: { exec_ttl: '300ms' } }, async (pool) => {
      const first = (await pool.workers())[0]!.pid;
      const error = await pool.exec(request('hangs.php')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ExecTimeoutError);
      expect((error as Error).message).toMatch(/exec_ttl \(300ms without output from PHP\)/);
      await eventually(() => !alive(first), 'the hung php-cgi to be killed');
      expect(await body(await pool.exec(request('hello.php')))).toMatch(/^hello from cgi-fcgi/);
      expect(pool.stats().recycles.exec_ttl).toBe(1);
    });
  });

  it("exec_ttl bounds a script's whole run, output or not (php-fpm's request_terminate_timeout)", async () => {
    const log = join(flags, 'ticks-run.log');
    await withCgiPool({ supervisor: { exec_ttl: '300ms' } }, async (pool) => {
      const first = (await pool.workers())[0]!.pid;
      // ticks.php writes a line every 10 ms for 20 s: never silent for 300 ms
      const error = await pool
        .exec(request('ticks.php', { query: `log=${encodeURIComponent(log)}` }))
        .then(body)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ExecTimeoutError);
      expect((error as Error).message).toMatch(/exec_ttl \(300ms running\)/);
      await eventually(() => !alive(first), 'the runaway php-cgi to be killed');
      expect(await body(await pool.exec(request('hello.php')))).toMatch(/^hello from cgi-fcgi/);
      expect(pool.stats().recycles.exec_ttl).toBe(1);
    });
  });

  it("without exec_ttl a silent script gets 504 at the silence limit (nginx's fastcgi_read_timeout, 60 s by default) and runs to its end, as php-fpm's does behind nginx", async () => {
    await withCgiPool(
      {},
      async (pool) => {
        const first = (await pool.workers())[0]!.pid;
        const flag = newFlag();
        const done = newFlag();
        const error = await pool
          .exec(
            request('silent-until-flag.php', {
              query: `flag=${encodeURIComponent(flag)}&done=${encodeURIComponent(done)}`,
            }),
          )
          .catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ExecTimeoutError);
        expect((error as Error).message).toMatch(
          /the classic default \(exec_ttl unset.*\(300ms without output from PHP\); php-cgi \d+ finishes the script/,
        );
        // before: the process was killed here, and the script's work (a subscription saved) lost
        writeFileSync(flag, '');
        await eventually(() => existsSync(done) && readFileSync(done, 'utf8') === 'finished', 'the script to finish');
        expect(await body(await pool.exec(request('hello.php')))).toMatch(/^hello from cgi-fcgi/);
        expect((await pool.workers())[0]!.pid).toBe(first);
        expect(pool.stats().recycles.exec_ttl ?? 0).toBe(0);
      },
      { silenceTimeoutMs: 300 },
    );
  });

  it('a script silent past the limit that never ends is killed at stream_timeout after its 504', async () => {
    await withCgiPool(
      { stream_timeout: '500ms' },
      async (pool) => {
        const first = (await pool.workers())[0]!.pid;
        const error = await pool.exec(request('hangs.php')).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(ExecTimeoutError);
        expect(await body(await pool.exec(request('hello.php')))).toMatch(/^hello from cgi-fcgi/);
        expect(alive(first)).toBe(false);
      },
      { silenceTimeoutMs: 300 },
    );
  });

  it('request_slowlog_timeout without exec_ttl: the slow-request line says the silence limit ends it', async () => {
    const logger = recordingLogger();
    await withCgiPool(
      // the hung script is killed once silent past the limit and stream_timeout more
      { logger, stream_timeout: '500ms', supervisor: { request_slowlog_timeout: 200, watch_tick: 50 } },
      async (pool) => {
        const hung = pool.exec(request('hangs.php')).catch((e: unknown) => e);
        const slow = () => logger.lines.filter((l) => l.obj.reason === 'slow_request');
        await eventually(() => slow().length === 1, 'the slow-request warning');
        // before: "it holds its worker until it ends", which the silence limit does not let it do
        expect(slow()[0]!.msg).toMatch(
          /; it holds its worker until it ends \(its client gets 504 once PHP is silent for 3s; the script runs on, killed stream_timeout later\): set http\.pool\.supervisor\.exec_ttl to bound a request$/,
        );
        expect(await hung).toBeInstanceOf(ExecTimeoutError);
      },
      { silenceTimeoutMs: 3000 },
    );
  });

  it('php-cgi that leaves between requests on its own (PHP_FCGI_MAX_REQUESTS in a wrapper): none fails, each runs once', async () => {
    // one by one on one process: each third request meets a process that has just left
    const sequential = join(flags, `runs-${++flagCount}`);
    await withCgiPool({ num_workers: 1, command: 'env PHP_FCGI_MAX_REQUESTS=2 php-cgi' }, async (pool) => {
      for (let i = 0; i < 9; i++) {
        const reply = await pool.exec(request('append.php', { query: `log=${sequential}&tag=${i}` }));
        expect(await body(reply)).toMatch(new RegExp(`^appended ${i} pid`));
      }
    });
    expect(
      readFileSync(sequential, 'utf8')
        .trim()
        .split('\n')
        .map((line) => line.split(' ')[1]),
    ).toEqual(Array.from({ length: 9 }, (_, i) => String(i)));
    // side by side, pipelined: a request queued behind a process's last one, or handed a process
    // that is leaving, runs on another
    const concurrent = join(flags, `runs-${++flagCount}`);
    const tags: string[] = [];
    await withCgiPool({ num_workers: 2, command: 'env PHP_FCGI_MAX_REQUESTS=5 php-cgi' }, async (pool) => {
      await Promise.all(
        Array.from({ length: 6 }, async (_, client) => {
          for (let i = 0; i < 8; i++) {
            const tag = `${client}-${i}`;
            tags.push(tag);
            const reply = await pool.exec(request('append.php', { query: `log=${concurrent}&tag=${tag}` }));
            expect(await body(reply)).toMatch(new RegExp(`^appended ${tag} pid`));
          }
        }),
      );
    });
    const ran = readFileSync(concurrent, 'utf8')
      .trim()
      .split('\n')
      .map((line) => line.split(' ')[1]);
    expect(ran.sort()).toEqual(tags.sort());
  });

  it('a script that dies before any output (its GET body end left unread) fails once: it is not run again', async () => {
    const log = join(flags, `runs-${++flagCount}`);
    await withCgiPool({ num_workers: 2 }, async (pool) => {
      const error = await pool.exec(request('crashes-silently.php', { query: `log=${log}` })).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      await eventually(() => pool.stats().workers.ready === 2, 'the replacement');
      expect(readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(1);
      expect(pool.stats().recycles.crashed).toBe(1);
    });
  });

  it('a script that crashes fails that request only; the process is replaced', async () => {
    await withCgiPool({ num_workers: 2 }, async (pool) => {
      const [crashed, fine] = await Promise.allSettled([
        pool.exec(request('crashes.php')).then(body),
        pool.exec(request('hello.php')).then(body),
      ]);
      expect(crashed.status).toBe('rejected');
      expect(fine).toMatchObject({ status: 'fulfilled', value: expect.stringMatching(/^hello/) });
      await eventually(() => pool.stats().recycles.crashed === 1, 'the crash to be counted');
      await eventually(() => pool.stats().workers.ready === 2, 'the replacement');
    });
  });

  it('a client that leaves a silent script: the process finishes it and serves again', async () => {
    await withCgiPool({}, async (pool) => {
      const flag = newFlag();
      const done = newFlag();
      const controller = new AbortController();
      const reply = await pool.exec({
        ...request('wait-for-flag.php', { query: `flag=${flag}&done=${done}` }),
        signal: controller.signal,
      });
      const pid = reply.pid;
      controller.abort();
      await eventually(() => streamed(reply.body).destroyed, 'the body to be destroyed');
      // php does not read the socket while a script runs: a script that prints nothing more runs on,
      // and the process is busy until it ends
      expect(pool.stats().workers.working).toBe(1);
      writeFileSync(flag, '');
      await eventually(() => pool.stats().workers.ready === 1, 'the worker to be free again');
      expect(existsSync(done)).toBe(true);
      expect(await body(await pool.exec(request('hello.php')))).toBe(`hello from cgi-fcgi pid ${pid}`);
      expect(pool.stats().recycles).toEqual({});
    });
  });

  it('a client that leaves a streaming script: the script stops at its next output, as behind nginx; the process serves again', async () => {
    await withCgiPool({}, async (pool) => {
      const log = newFlag();
      const controller = new AbortController();
      const reply = await pool.exec({ ...request('ticks.php', { query: `log=${log}` }), signal: controller.signal });
      const stream = streamed(reply.body);
      await new Promise((resolve) => stream.once('data', resolve));
      controller.abort();
      // its next tick fails: connection_aborted() is 1 and the loop ended long before its 2,000 ticks
      await eventually(() => existsSync(log), 'the script to stop');
      expect(readFileSync(log, 'utf8')).toMatch(/^aborted 1 ticks \d+$/);
      expect(Number(readFileSync(log, 'utf8').split(' ').pop())).toBeLessThan(2000);
      await eventually(() => pool.stats().workers.ready === 1, 'the worker to be free again');
      expect(await body(await pool.exec(request('hello.php')))).toBe(`hello from cgi-fcgi pid ${reply.pid}`);
      expect(pool.stats().recycles).toEqual({});
    });
  });

  it('stream_timeout: an aborted script that does not end in time gets its process killed', async () => {
    await withCgiPool({ stream_timeout: '200ms' }, async (pool) => {
      const reply = await pool.exec(request('wait-for-flag.php', { query: `flag=${newFlag()}` }));
      streamed(reply.body).destroy();
      await eventually(() => pool.stats().recycles.errored === 1, 'the process to be killed and counted');
      expect(alive(reply.pid)).toBe(false);
      expect(await body(await pool.exec(request('hello.php')))).toMatch(/^hello/);
    });
  });

  it('exec_ttl holds for a script whose client left: killed at exec_ttl, not at stream_timeout', async () => {
    // before: a looping script of a 1 s visit ran on for stream_timeout (60 s) past a 5 s exec_ttl
    await withCgiPool({ supervisor: { exec_ttl: '500ms' } }, async (pool) => {
      const reply = await pool.exec(request('wait-for-flag.php', { query: `flag=${newFlag()}` }));
      streamed(reply.body).destroy();
      await eventually(() => pool.stats().recycles.exec_ttl === 1, 'the process to be killed at exec_ttl');
      expect(alive(reply.pid)).toBe(false);
      expect(await body(await pool.exec(request('hello.php')))).toMatch(/^hello/);
    });
  });

  it('send_timeout: a reader that stops reading fails with StreamStalledError; the process serves again', async () => {
    await withCgiPool({ send_timeout: '200ms' }, async (pool) => {
      const reply = await pool.exec(request('big-response.php', { query: 'mb=8' }));
      const failed = new Promise<unknown>((resolve) => streamed(reply.body).once('error', resolve));
      streamed(reply.body).pause();
      streamed(reply.body).read(0); // start the flow once, then read nothing
      expect(await failed).toBeInstanceOf(StreamStalledError);
      await eventually(() => pool.stats().workers.ready === 1, 'the worker to be free again');
      expect(await body(await pool.exec(request('hello.php')))).toBe(`hello from cgi-fcgi pid ${reply.pid}`);
    });
  });

  it('max_worker_memory: a request that stays over it is killed while it runs (502), and replaced', async () => {
    const command = ['php-cgi', '-d', 'memory_limit=-1'];
    await withCgiPool({ command, supervisor: { max_worker_memory: 40, watch_tick: '100ms' } }, async (pool) => {
      const error = await pool
        .exec(request('grows.php', { query: `mb=96&flag=${newFlag()}` }))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WorkerExitedError);
      expect((error as Error).message).toMatch(/max_worker_memory/);
      await eventually(() => pool.stats().recycles.memory === 1, 'the killed process to be counted');
      expect(await body(await pool.exec(request('hello.php')))).toMatch(/^hello/);
    });
  });

  it('reset rolls every process to a fresh one; idle scale to zero boots one on the next request', async () => {
    await withCgiPool({ num_workers: 2 }, async (pool) => {
      const before = (await pool.workers()).map((w) => w.pid);
      await pool.reset();
      const after = (await pool.workers()).filter((w) => w.state === 'ready').map((w) => w.pid);
      expect(after).toHaveLength(2);
      for (const pid of after) expect(before).not.toContain(pid);
    });
    await withCgiPool(
      { min_workers: 0, max_workers: 2, supervisor: { idle_ttl: '100ms', watch_tick: '50ms' } },
      async (pool) => {
        await eventually(() => pool.stats().workers.ready === 0 && pool.stats().numWorkers === 0, 'scale to zero');
        expect(await body(await pool.exec(request('hello.php')))).toMatch(/^hello/);
        expect(pool.stats().numWorkers).toBe(1);
      },
    );
  });

  it('a process that dies while idle is logged once, as a warning, and replaced', async () => {
    const logger = recordingLogger();
    await withCgiPool({ num_workers: 1, logger }, async (pool) => {
      const victim = (await pool.workers())[0]!.pid;
      process.kill(victim, 'SIGKILL');
      await eventually(() => pool.stats().recycles.crashed === 1, 'the idle process to be seen exiting');
      const said = logger.lines.filter((l) => l.obj.reason === 'crashed');
      expect(said.map((l) => [l.level, l.msg])).toEqual([
        ['warn', `php-cgi ${victim} was killed by SIGKILL while idle.`],
      ]);
      expect(await body(await pool.exec(request('hello.php')))).toMatch(/^hello/);
    });
  });

  it('the PHP CLI as the command: says so and what to install, without its usage text in the log', async () => {
    const logger = recordingLogger();
    const cli = createCgiPool({ command: 'php', num_workers: 1, logger });
    const error = await cli.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailedError);
    expect((error as Error).message).toBe(
      '"php" is the PHP CLI, not php-cgi: it exited at once ("Error in argument 1, char 2: option not found b"). ' +
        'Classic sites need php-cgi: set fastcgi.command: php-cgi (Debian/Ubuntu: apt-get install php-cgi), or run php-fpm and set fastcgi.pass.',
    );
    expect(logger.lines.filter((l) => /Usage: php|option not found/.test(l.msg))).toEqual([]);
  });

  it("php-cgi's output during a boot that succeeds is still logged (held only until the boot's outcome)", async () => {
    const logger = recordingLogger();
    const pool = createCgiPool({
      command: ['php-cgi', '-d', 'extension=warmpool_no_such_extension'],
      num_workers: 1,
      logger,
    });
    await pool.start();
    try {
      await eventually(
        // PHP's "Warning: PHP Startup: Unable to load dynamic library": a warning, logged as one
        () => logger.lines.some((l) => l.level === 'warn' && /warmpool_no_such_extension/.test(l.msg)),
        "php-cgi's startup warning in the log",
      );
    } finally {
      await pool.close();
    }
  });

  it('a command that is no FastCGI server explains itself; a missing command is named', async () => {
    const logger = recordingLogger();
    const fake = createCgiPool({
      // (not php -r: the PHP CLI refuses php-cgi's -b before running any code; that case is above)
      command: ['sh', '-c', 'echo "not a fastcgi server" >&2; exit 2'],
      num_workers: 1,
      logger,
    });
    const error = await fake.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailedError);
    expect((error as Error).message).toMatch(/php-cgi exited during boot \(exited with code \d+\)/);
    expect((error as Error).message).toContain('not a fastcgi server');
    // the boot failure says it all: no second line calls the exit a crash while idle
    expect(logger.lines.filter((l) => l.obj.reason === 'crashed')).toEqual([]);
    const missing = createCgiPool({ command: 'php-cgi-that-is-not-installed', logger: recordingLogger() });
    expect(await missing.start().catch((e: unknown) => e)).toBeInstanceOf(CommandNotFoundError);
  });
});
