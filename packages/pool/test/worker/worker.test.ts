import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  BootFailedError,
  CommandNotFoundError,
  ExecTimeoutError,
  MalformedFrameError,
  StreamStalledError,
  WorkerExitedError,
  WorkerReportedError,
} from '../../src/errors.js';
import { createPool } from '../../src/pool/pool.js';
import { describeSpawnError } from '../../src/worker/process.js';
import { frameBody, PING, STREAM, type Frame } from '../../src/protocol/frame.js';
import { decodeResponseContext } from '../../src/protocol/http-context.js';
import { eventually, fixture, recordingLogger, request, sleep, status, withPool } from '../php-fixtures.js';

const text = (reply: { body: Buffer }) => reply.body.toString();

async function collect(stream: AsyncIterable<Frame>): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const frame of stream) frames.push(frame);
  return frames;
}

describe('Worker: failures fail one request and the worker is replaced', () => {
  it('a worker that exits mid-request fails that request only (WorkerExitedError) and is replaced', async () => {
    const logger = recordingLogger();
    await withPool('crash-mid-request.php', { num_workers: 2, logger }, async (pool) => {
      const [crashed, fine] = await Promise.allSettled([pool.exec(request('crash')), pool.exec(request('ok'))]);
      expect(crashed.status).toBe('rejected');
      const error = (crashed as PromiseRejectedResult).reason as WorkerExitedError;
      expect(error).toBeInstanceOf(WorkerExitedError);
      expect(error.message).toMatch(/exited with code 3 during a request/);
      expect(error.message).toContain('about to crash');
      expect(fine.status).toBe('fulfilled');
      await eventually(() => pool.stats().workers.ready === 2, 'the replacement worker');
      expect(pool.stats().recycles.crashed).toBe(1);
      // stderr reached the logger, tagged with the pid
      const line = logger.lines.find((l) => l.msg === 'about to crash');
      expect(line?.obj).toMatchObject({ workerPid: error.details.pid, stream: 'stderr' });
    });
  });

  it('a worker that dies while idle is replaced: the pool comes back to num_workers', async () => {
    // No request fails here, so only the exit itself can trigger the replacement.
    const logger = recordingLogger();
    await withPool('crash-mid-request.php', { num_workers: 2, logger }, async (pool) => {
      const victim = Number(text(await pool.exec(request('ok'))));
      process.kill(victim, 'SIGKILL');
      await eventually(() => pool.stats().recycles.crashed === 1, 'the idle worker to be seen exiting');
      const said = logger.lines.filter((l) => l.obj.reason === 'crashed');
      expect(said.map((l) => [l.level, l.msg])).toEqual([
        ['warn', `worker ${victim} was killed by SIGKILL while idle.`],
      ]);
      await eventually(() => pool.stats().workers.ready === 2, 'a replacement for the idle worker');
      const pids = await Promise.all([1, 2].map(() => pool.exec(request('ok')).then((r) => Number(text(r)))));
      expect(pids).not.toContain(victim);
    });
  });

  it('garbage on stdout is a protocol error for that worker: request fails, one clear log line, replaced', async () => {
    const logger = recordingLogger();
    await withPool('garbage-stdout.php', { logger }, async (pool) => {
      const first = (await pool.workers())[0]!.pid;
      const error = await pool.exec(request('garbage')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MalformedFrameError);
      expect((error as Error).message).toMatch(/printed to stdout during a request/);
      expect((error as Error).message).toContain('Notice: something');
      const logged = logger.lines.filter((l) => l.level === 'error' && l.obj.reason === 'protocol');
      expect(logged).toHaveLength(1);
      const reply = await pool.exec(request('ok'));
      expect(Number(text(reply))).not.toBe(first);
    });
  });

  it('with the SDK, echo/print/warnings during a request go to the log and the reply stays intact', async () => {
    const logger = recordingLogger();
    await withPool('echo-stray.php', { logger }, async (pool) => {
      expect(text(await pool.exec(request()))).toBe('intact');
      expect(text(await pool.exec(request()))).toBe('intact');
      const messages = logger.lines.map((l) => l.msg).join('\n');
      expect(messages).toContain('stray echo from the app');
      expect(messages).toContain('a stray warning');
    });
  });

  it("the pipes relay reaches stdin over a real pipe: no socket stream, so no timeout on the idle read (RoadRunner's relay lost its worker)", async () => {
    // Node's stdio pipes are socketpairs, and PHP opens a socket stdin as a socket stream, on which
    // default_socket_timeout (60 s) bounds every blocking read: spiral's StreamRelay threw after a
    // minute idle and the worker was lost. Over a FIFO PHP opens a plain stream, without a timeout.
    // (stdout stays a socketpair: its larger buffer carries large replies faster.)
    await withPool('socket-timeout-relay.php', {}, async (pool) => {
      expect(JSON.parse(text(await pool.exec(request())))).toEqual({
        stdin: 'STDIO',
        stdout: 'tcp_socket',
        timeoutOnStdin: false,
      });
    });
  });

  it('a worker that asks to stop after its reply is retired as it asked; the next request never gets its 502', async () => {
    // RoadRunner reads that stop frame as the next request's reply and re-runs the request: the
    // worker sent it while idle, which was taken for a protocol error, and the pool still handed
    // the dying worker the next request (502 "worker … is stopping, not ready")
    const logger = recordingLogger();
    await withPool('stop-after-reply.php', { num_workers: 1, logger }, async (pool) => {
      const pids = new Set<number>();
      for (let i = 0; i < 10; i++) {
        pids.add(Number(text(await pool.exec(request('stop')))));
        pids.add(Number(text(await pool.exec(request('again')))));
      }
      expect(pids.size).toBeGreaterThan(1);
      expect(pool.stats().recycles.protocol).toBeUndefined();
      expect(pool.stats().errors).toEqual({});
      expect(logger.lines.some((l) => /frame while idle/.test(l.msg))).toBe(false);
    });
  });

  it('with the SDK, a PHP warning is logged once, not once logged and once displayed', async () => {
    // php-cli logs errors to stderr (log_errors on, no error_log): the SDK displayed them there too
    const logger = recordingLogger();
    const pool = createPool({ command: ['php', fixture('echo-stray.php')], num_workers: 1, logger });
    await pool.start();
    expect(text(await pool.exec(request()))).toBe('intact');
    expect(text(await pool.exec(request()))).toBe('intact');
    await pool.close(); // the worker's stderr is read to its end
    expect(logger.lines.filter((l) => l.msg.includes('a stray warning'))).toHaveLength(2);
  });

  it('an error frame fails the request with WorkerReportedError and the worker stays in service', async () => {
    await withPool('error-frame.php', {}, async (pool) => {
      const pid = Number(text(await pool.exec(request('ok'))));
      const error = await pool.exec(request('fail')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WorkerReportedError);
      expect((error as Error).message).toBe('RuntimeException: boom from worker');
      expect(Number(text(await pool.exec(request('ok'))))).toBe(pid);
      expect(pool.stats().errors).toEqual({ WP_WORKER_ERROR: 1 });
    });
  });

  it('a frame arriving while the worker is idle kills that worker (it would desync later replies)', async () => {
    const logger = recordingLogger();
    await withPool('double-reply.php', { logger }, async (pool) => {
      const pid = Number(text(await pool.exec(request('twice'))));
      await eventually(() => pool.stats().recycles.protocol === 1, 'the idle frame to kill the worker');
      expect(logger.lines.some((l) => l.level === 'error' && l.obj.code === 'WP_PROTOCOL_UNEXPECTED_FRAME')).toBe(true);
      expect(Number(text(await pool.exec(request('ok'))))).not.toBe(pid);
    });
  });
});

describe('Worker: boot', () => {
  it('a worker that never boots fails start() with its own output and the next step', async () => {
    const pool = createPool({
      command: ['php', fixture('never-boots.php')],
      num_workers: 2,
      logger: recordingLogger(),
    });
    const error = await pool.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailedError);
    expect((error as Error).message).toMatch(/exited during boot \(exited with code 255\)/);
    expect((error as Error).message).toContain('Class "App\\Kernel" not found');
    expect(pool.stats().workers).toMatchObject({ ready: 0, booting: 0 });
  });

  it('a command that does not exist fails start() naming the command', async () => {
    const pool = createPool({ command: 'php-does-not-exist worker.php', num_workers: 2 });
    const error = await pool.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandNotFoundError);
    expect((error as Error).message).toMatch(/command not found: "php-does-not-exist"/);
    expect((error as Error).message).toContain("give its full path in the pool's command (server.command;");
  });

  it('a PHP binary that is not installed is named with its Debian package and the key to set', () => {
    const enoent = Object.assign(new Error('spawn php-cgi8.9 ENOENT'), { code: 'ENOENT' });
    expect(describeSpawnError(enoent, ['php-cgi8.9', '-b', '/tmp/x.sock']).message).toBe(
      'command not found: "php-cgi8.9" (from "php-cgi8.9 -b /tmp/x.sock"). ' +
        'Install it (Debian/Ubuntu: apt-get install php-cgi) or give its full path in fastcgi.command.',
    );
    expect(describeSpawnError(enoent, ['php8.2', 'worker.php']).message).toContain(
      'apt-get install php-cli) or give its full path in server.command.',
    );
  });

  it('a worker that does not finish the handshake within allocate_timeout fails to boot', async () => {
    const pool = createPool({
      command: ['php', fixture('slow-boot.php')],
      env: { SLOW_BOOT_MS: '3000' },
      num_workers: 1,
      allocate_timeout: 200,
      logger: recordingLogger(),
    });
    const error = await pool.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailedError);
    expect((error as Error).message).toMatch(/within 200ms \(allocate_timeout\)/);
  });

  it('a slow bootstrap is waited for when it fits allocate_timeout', async () => {
    await withPool('slow-boot.php', { env: { SLOW_BOOT_MS: '300' } }, async (pool) => {
      expect(Number(text(await pool.exec(request())))).toBeGreaterThan(0);
    });
  });
});

describe('Worker: streamed replies', () => {
  it('delivers STREAM frames in order and ends with the frame that clears STREAM', async () => {
    await withPool('stream.php', {}, async (pool) => {
      const reply = await pool.exec(request('stream:8'));
      expect(status(reply)).toBe(200);
      expect(text(reply)).toBe('chunk-0\n');
      expect(reply.stream).not.toBeNull();
      const frames = await collect(reply.stream!);
      expect(frames.map((f) => frameBody(f).toString())).toEqual([
        ...Array.from({ length: 7 }, (_, i) => `chunk-${i + 1}\n`),
        'done\n',
      ]);
      expect(frames.slice(0, -1).every((f) => (f.control & STREAM) !== 0)).toBe(true);
      expect(frames.at(-1)!.control & STREAM).toBe(0);
      // the SDK pings on the 6th frame
      expect(frames.some((f) => (f.control & PING) !== 0)).toBe(true);
      // the worker is free again once the stream ended
      expect(status(await pool.exec(request()))).toBe(200);
    });
  });

  it('answers PING with PONG (a worker that blocks for the PONG completes)', async () => {
    await withPool('ping-wait.php', {}, async (pool) => {
      const reply = await pool.exec(request());
      const frames = await collect(reply.stream!);
      expect(frames.map((f) => frameBody(f).toString())).toEqual(['got pong\n']);
    });
  });

  it('cancels a stream whose consumer went away: STOP, the worker ends it and stays in service', async () => {
    await withPool('stream.php', {}, async (pool) => {
      const reply = await pool.exec(request('stream:1000:5'));
      let received = 0;
      for await (const frame of reply.stream!) {
        void frame;
        if (++received === 2) break; // break destroys the stream
      }
      // The next request is served by the same worker, which counted one cancel.
      await eventually(() => pool.stats().workers.ready === 1, 'the worker to finish the cancelled stream');
      const next = await pool.exec(request());
      expect(decodeResponseContext(next.flags, next.context).headers['X-Cancels']).toEqual(['1']);
      expect(pool.stats().recycles).toEqual({});
    });
  });

  it('kills a worker that ignores STOP after stream_timeout, and its log line names the worker and request', async () => {
    const logger = recordingLogger();
    await withPool('ignores-stop.php', { stream_timeout: 300, logger }, async (pool) => {
      const reply = await pool.exec(request(), { label: 'GET /events' });
      const pid = (await pool.workers())[0]!.pid;
      reply.stream!.destroy();
      await eventually(() => pool.stats().recycles.errored === 1, 'the worker to be killed after stream_timeout');
      const line = logger.lines.find((l) => l.obj.reason === 'stream_timeout');
      expect(line?.msg).toBe(
        `worker ${pid} did not end a cancelled stream (GET /events) within stream_timeout (300ms); killing it`,
      );
      expect(line?.obj.workerPid).toBe(pid);
      await eventually(() => pool.stats().workers.ready === 1, 'its replacement');
    });
  });

  it('applies backpressure: a slow consumer pauses the worker instead of buffering the whole stream', async () => {
    await withPool('stream.php', {}, async (pool) => {
      const reply = await pool.exec(request('stream:2000'));
      const stream = reply.stream!;
      await sleep(300);
      // Unread frames are bounded by the stream's high-water mark plus what sits in the pipe.
      expect(stream.readableLength).toBeLessThanOrEqual(stream.readableHighWaterMark + 1);
      const frames = await collect(stream);
      expect(frames).toHaveLength(2000);
    });
  });

  it('cancels a stream whose reader stops reading after send_timeout: the worker ends it and stays in service', async () => {
    const logger = recordingLogger();
    await withPool('stream.php', { send_timeout: 200, logger }, async (pool) => {
      const reply = await pool.exec(request('stream:100000'));
      const failed = new Promise<Error>((resolve) => reply.stream!.once('error', resolve));
      // nobody reads: the stream fills, the worker pauses, send_timeout fires
      expect(await failed).toBeInstanceOf(StreamStalledError);
      await eventually(() => pool.stats().workers.ready === 1, 'the worker to end the cancelled stream');
      const next = await pool.exec(request());
      expect(decodeResponseContext(next.flags, next.context).headers['X-Cancels']).toEqual(['1']);
      expect(pool.stats().recycles).toEqual({});
      expect(logger.lines.some((l) => (l.obj as { reason?: string }).reason === 'send_timeout')).toBe(true);
    });
  });

  it('keeps exec_ttl counting while a stream waits for its reader: a stalled reader cannot hold a worker past it', async () => {
    await withPool('stream.php', { send_timeout: 0, supervisor: { exec_ttl: 300 } }, async (pool) => {
      const reply = await pool.exec(request('stream:100000'));
      const failed = new Promise<Error>((resolve) => reply.stream!.once('error', resolve));
      expect(await failed).toBeInstanceOf(ExecTimeoutError);
      await eventually(() => pool.stats().recycles.exec_ttl === 1, 'the stalled worker to be killed');
      await eventually(() => pool.stats().workers.ready === 1, 'its replacement');
    });
  });

  it('passes a 1xx frame before the final reply (103 Early Hints)', async () => {
    await withPool('stream.php', {}, async (pool) => {
      const reply = await pool.exec(request('hints'));
      const hint = decodeResponseContext(reply.flags, reply.context);
      expect(hint.status).toBe(103);
      expect(hint.headers.Link).toEqual(['</app.css>; rel=preload']);
      const [final] = await collect(reply.stream!);
      expect(status(final!)).toBe(200);
      expect(frameBody(final!).toString()).toBe('after hints');
    });
  });

  it('a worker that dies mid-stream destroys the stream with WorkerExitedError', async () => {
    await withPool('stream.php', {}, async (pool) => {
      const reply = await pool.exec(request('stream:100000:1'));
      const pid = (await pool.workers())[0]!.pid;
      const consumed = collect(reply.stream!).catch((e: unknown) => e);
      await sleep(50);
      process.kill(pid, 'SIGKILL');
      expect(await consumed).toBeInstanceOf(WorkerExitedError);
    });
  });
});

/** Running (not gone, not a zombie waiting for a reaper). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The pids the spawns-child.php fixture printed on stderr, one per request. */
function grandchildren(logger: ReturnType<typeof recordingLogger>): number[] {
  return logger.lines.flatMap((l) => {
    const match = /^grandchild (\d+)$/.exec(l.msg);
    return match === null ? [] : [Number(match[1])];
  });
}

/** Kills what a failed check left running, so one failure does not leak into the teardown. */
function killLeft(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
}

// Workers run in their own process group and are killed as a group: what PHP starts (a shell,
// a background job) cannot outlive it, whether the worker was killed or left on its own.
describe('Worker: nothing is orphaned', () => {
  it('a worker killed by exec_ttl takes the processes it started with it', async () => {
    const logger = recordingLogger();
    try {
      await withPool('spawns-child.php', { logger, supervisor: { exec_ttl: 500 } }, async (pool) => {
        await expect(pool.exec(request('hang'))).rejects.toBeInstanceOf(ExecTimeoutError);
        await eventually(() => grandchildren(logger).length === 1, 'the fixture to print its grandchild pid');
        await eventually(() => !running(grandchildren(logger)[0]!), 'the grandchild to die with its worker');
      });
    } finally {
      killLeft(grandchildren(logger));
    }
  });

  it('a worker that exits on its own leaves nothing behind: its process group is killed at its exit', async () => {
    const logger = recordingLogger();
    try {
      await withPool('spawns-child.php', { logger }, async (pool) => {
        const answered = Number(text(await pool.exec(request('ok'))));
        expect(running(answered)).toBe(true); // the grandchild does live while its worker does
        await expect(pool.exec(request('exit'))).rejects.toBeInstanceOf(WorkerExitedError);
        await eventually(() => grandchildren(logger).length === 2, 'the fixture to print its grandchild pid');
        await eventually(
          () => grandchildren(logger).every((pid) => !running(pid)),
          'the grandchildren to die with their worker',
        );
      });
    } finally {
      killLeft(grandchildren(logger));
    }
  });
});

describe('Worker: destroy_timeout', () => {
  it('a worker that does not stop when asked is killed after destroy_timeout, and that is said', async () => {
    const logger = recordingLogger();
    let pid = 0;
    await withPool('hangs-at-stop.php', { destroy_timeout: '300ms', logger }, async (pool) => {
      pid = Number(text(await pool.exec(request('ok'))));
    });
    // withPool closed the pool: its stop waited 300 ms, then SIGKILL
    expect(running(pid)).toBe(false);
    const line = logger.lines.find((l) => l.obj.reason === 'destroy_timeout');
    expect(line).toMatchObject({ level: 'warn', obj: { workerPid: pid } });
    expect(line!.msg).toBe(
      `worker ${pid} did not stop within destroy_timeout (300ms) of being asked; killed (SIGKILL)`,
    );
  });
});
