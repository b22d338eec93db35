import { describe, expect, it } from 'vitest';
import {
  BootFailedError,
  BadChecksumError,
  FrameTooLargeError,
  MalformedFrameError,
  WorkerExitedError,
} from '../../src/errors.js';
import { createPool } from '../../src/pool/pool.js';
import { CUT_MARK, MAX_LINE_CHARS, phpLineLevel } from '../../src/worker/output.js';
import { eventually, fixture, recordingLogger, request, withPool } from '../php-fixtures.js';

// Broken protocol bytes fail that request only: the worker is killed and replaced, and the
// server logs one clear line naming the problem.
describe('hostile workers', () => {
  const cases = [
    { body: 'oversized', error: FrameTooLargeError, log: /exceeds the limit of 1048576 bytes/ },
    { body: 'checksum', error: BadChecksumError, log: /checksum mismatch/ },
    { body: 'options', error: MalformedFrameError, log: /3 options; a data frame carries exactly 1/ },
    { body: 'context', error: MalformedFrameError, log: /context length 1000 exceeds its payload/ },
  ] as const;

  for (const { body, error, log } of cases) {
    it(`${body}: the request fails with ${error.name}, the worker is killed and replaced`, async () => {
      const logger = recordingLogger();
      await withPool('hostile-worker.php', { max_frame_size: 1024 * 1024, logger }, async (pool) => {
        const pid = Number((await pool.exec(request('ok'))).body.toString());
        await expect(pool.exec(request(body))).rejects.toBeInstanceOf(error);
        const lines = logger.lines.filter((l) => l.level === 'error' && l.obj.reason === 'protocol');
        expect(lines).toHaveLength(1);
        expect(lines[0]!.msg).toMatch(log);
        expect(lines[0]!.obj.workerPid).toBe(pid);
        const next = Number((await pool.exec(request('ok'))).body.toString());
        expect(next).not.toBe(pid);
        // counted when the killed worker's exit is seen, which its replacement does not wait for
        await eventually(() => pool.stats().recycles.protocol === 1, 'the recycle counted');
        expect(pool.stats().recycles.protocol).toBe(1);
      });
    });
  }

  it('partial frame then exit: WorkerExitedError, replaced', async () => {
    await withPool('hostile-worker.php', {}, async (pool) => {
      await expect(pool.exec(request('partial'))).rejects.toBeInstanceOf(WorkerExitedError);
      await eventually(() => pool.stats().workers.ready === 1, 'a replacement');
      expect(Number((await pool.exec(request('ok'))).body.toString())).toBeGreaterThan(0);
    });
  });

  it('a wrong handshake fails the boot with a clear message', async () => {
    const pool = createPool({
      command: ['php', fixture('wrong-handshake.php')],
      num_workers: 1,
      logger: recordingLogger(),
    });
    const error = await pool.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailedError);
    expect((error as Error).message).toMatch(/expected the pid handshake \(a CONTROL frame\)/);
  });

  it('a flood of stderr is rate-limited in the log and the request is still served', async () => {
    const logger = recordingLogger();
    await withPool('hostile-worker.php', { logger }, async (pool) => {
      expect((await pool.exec(request('flood'))).body.toString()).toBe('survived the flood');
      const flood = logger.lines.filter((l) => l.obj.stream === 'stderr' && l.level === 'info');
      expect(flood.length).toBeLessThanOrEqual(2000);
      expect(flood.length).toBeGreaterThan(0);
      await pool.close();
      const suppressed = logger.lines.filter((l) => l.level === 'warn' && typeof l.obj.suppressed === 'number');
      expect(suppressed.reduce((n, l) => n + (l.obj.suppressed as number), 0) + flood.length).toBe(20000);
    });
  });

  it('a flood of stderr: the count of dropped lines is written when its second ends, with no later line', async () => {
    const logger = recordingLogger();
    await withPool('hostile-worker.php', { logger }, async (pool) => {
      expect((await pool.exec(request('flood'))).body.toString()).toBe('survived the flood');
      const logged = () =>
        logger.lines.filter((l) => l.obj.stream === 'stderr' && l.level === 'info').length +
        logger.lines.reduce((n, l) => n + (l.level === 'warn' ? ((l.obj.suppressed as number) ?? 0) : 0), 0);
      // the worker lives on and prints nothing more: only the timer can write the count
      await eventually(() => logged() === 20000, 'every dropped line counted in a warning');
      expect(pool.stats().workers.ready).toBe(1);
    });
  });

  it('a 1 MiB stderr line is logged cut at 8 KiB, saying so, and the rest of it dropped', async () => {
    // before: logged whole, in 64 KiB pieces (one 20 MB write put 21 MB into the log); php-fpm cuts
    // at its log_limit (1 KiB), nginx at 2 KiB
    const logger = recordingLogger();
    await withPool('hostile-worker.php', { logger }, async (pool) => {
      const reply = await pool.exec(request('longline'), { label: 'GET /long' });
      expect(reply.body.toString()).toBe('survived the long line');
      await pool.close();
      const lines = logger.lines.filter((l) => l.obj.stream === 'stderr');
      expect(lines.map((l) => l.msg)).toEqual([`${'L'.repeat(MAX_LINE_CHARS)}${CUT_MARK}`]);
      // cut while PHP still wrote it, in its request: the line names it, to match the access log
      expect(lines[0]!.obj.request).toBe('GET /long');
    });
  });

  it("PHP's errors are logged at error, its warnings at warn, whatever else it prints at info", () => {
    expect(phpLineLevel('PHP Fatal error:  Uncaught Error: Call to undefined function f()', 'info')).toBe('error');
    expect(phpLineLevel('PHP Parse error:  syntax error, unexpected end of file', 'warn')).toBe('error');
    // the stack trace under an uncaught exception stays with it (logs.level: error kept only its first line)
    for (const line of [
      'PHP Stack trace:',
      'PHP #0 /app/index.php(3): f()',
      '#1 {main}',
      '  thrown in /app/a.php on line 3',
    ])
      expect(phpLineLevel(line, 'info'), line).toBe('error');
    expect(phpLineLevel('PHP Warning:  Undefined array key "x" in /app/a.php on line 3', 'info')).toBe('warn');
    expect(phpLineLevel('Warning: PHP Startup: Unable to load dynamic library', 'info')).toBe('warn');
    expect(phpLineLevel('an error_log() message', 'info')).toBe('info');
    expect(phpLineLevel('an error_log() message', 'warn')).toBe('warn');
  });
});
