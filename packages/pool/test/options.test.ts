import { availableParallelism, tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { InvalidPoolOptionError } from '../src/errors.js';
import {
  DEFAULT_ALLOCATE_TIMEOUT_MS,
  DEFAULT_DESTROY_TIMEOUT_MS,
  DEFAULT_RESET_TIMEOUT_MS,
  DEFAULT_STREAM_TIMEOUT_MS,
  DEFAULT_WATCH_TICK_MS,
  parseDuration,
  resolvePoolOptions,
  type PoolOptions,
} from '../src/options.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../src/protocol/decoder.js';
import { DEFAULT_WORKER_NICE } from '../src/worker/priority.js';

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

/** Asserts an InvalidPoolOptionError naming `key` (in the message and in details.key). */
function expectInvalid(fn: () => unknown, key: string): InvalidPoolOptionError {
  const error = caught(fn);
  expect(error).toBeInstanceOf(InvalidPoolOptionError);
  const typed = error as InvalidPoolOptionError;
  expect(typed.code).toBe('WP_POOL_INVALID_OPTION');
  expect(typed.message).toContain(`"${key}"`);
  expect(typed.details.key).toBe(key);
  return typed;
}

/** Options with deliberately wrong types, as they come from YAML or plain JS. */
function loose(options: Record<string, unknown>): PoolOptions {
  return { command: 'php worker.php', ...options } as unknown as PoolOptions;
}

describe('parseDuration', () => {
  it.each([
    ['60s', 60_000],
    ['1m30s', 90_000],
    ['500ms', 500],
    ['1h', 3_600_000],
    ['1.5s', 1_500],
    ['1h30m', 5_400_000],
    ['2m', 120_000],
    ['0', 0],
    ['0s', 0],
    ['5', 5_000],
    ['120', 120_000],
    [' 2s ', 2_000],
    ['1s500ms', 1_500],
    ['250us', 0.25],
    ['1000000ns', 1],
  ])('parses %j as %d ms', (text, ms) => {
    expect(parseDuration(text, 'allocate_timeout')).toBe(ms);
  });

  it('takes a number as milliseconds', () => {
    expect(parseDuration(250, 'allocate_timeout')).toBe(250);
    expect(parseDuration(0, 'allocate_timeout')).toBe(0);
    expect(parseDuration(1.5, 'allocate_timeout')).toBe(1.5);
  });

  it.each(['', 'soon', '5x', 's', '-1s', '1s junk', '1 s', 'ms', '5.5', '1d', '60S', '1s-'])(
    'rejects %j with an error naming the key and the value',
    (text) => {
      const error = expectInvalid(() => parseDuration(text, 'supervisor.exec_ttl'), 'supervisor.exec_ttl');
      expect(error.message).toContain(JSON.stringify(text).slice(1, -1));
      expect(error.message).toMatch(/60s/);
    },
  );

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('rejects the number %d', (value) => {
    expectInvalid(() => parseDuration(value, 'destroy_timeout'), 'destroy_timeout');
  });

  it('rejects non-string, non-number values', () => {
    expectInvalid(() => parseDuration(null as unknown as string, 'ttl'), 'ttl');
    expectInvalid(() => parseDuration({} as unknown as string, 'ttl'), 'ttl');
  });
});

describe('resolvePoolOptions: defaults', () => {
  const resolved = resolvePoolOptions({ command: 'php worker.php' });

  it("uses RoadRunner's defaults", () => {
    expect(resolved.numWorkers).toBe(availableParallelism());
    expect(resolved.maxJobs).toBe(0);
    expect(resolved.allocateTimeoutMs).toBe(60_000);
    expect(resolved.destroyTimeoutMs).toBe(60_000);
    expect(resolved.resetTimeoutMs).toBe(60_000);
    expect(resolved.streamTimeoutMs).toBe(60_000);
    expect(resolved.watchTickMs).toBe(1_000);
    expect(resolved.maxQueueSize).toBeNull();
    expect(resolved.ttlMs).toBe(0);
    expect(resolved.idleTtlMs).toBe(0);
    expect(resolved.execTtlMs).toBe(0);
    expect(resolved.maxWorkerMemoryBytes).toBe(0);
    expect(resolved.maxFrameBytes).toBe(DEFAULT_MAX_FRAME_BYTES);
    // not RoadRunner's: workers run below the server's CPU priority (worker/priority.ts)
    expect(resolved.nice).toBe(DEFAULT_WORKER_NICE);
  });

  it('exports the defaults as named constants', () => {
    expect(DEFAULT_ALLOCATE_TIMEOUT_MS).toBe(60_000);
    expect(DEFAULT_DESTROY_TIMEOUT_MS).toBe(60_000);
    expect(DEFAULT_RESET_TIMEOUT_MS).toBe(60_000);
    expect(DEFAULT_STREAM_TIMEOUT_MS).toBe(60_000);
    expect(DEFAULT_WATCH_TICK_MS).toBe(1_000);
  });

  it('splits the command, relays over pipes, runs in http mode', () => {
    expect(resolved.argv).toEqual(['php', 'worker.php']);
    expect(resolved.relay).toEqual({ kind: 'pipes' });
    expect(resolved.mode).toBe('http');
    expect(resolved.env).toEqual({});
    expect(resolved.cwd).toBeUndefined();
    expect(resolved.uid).toBeUndefined();
    expect(resolved.gid).toBeUndefined();
    expect(typeof resolved.logger.error).toBe('function');
  });
});

describe('resolvePoolOptions: values', () => {
  it('resolves durations, counts and units', () => {
    const logger = { debug() {}, info() {}, warn() {}, error() {} };
    const resolved = resolvePoolOptions({
      command: ['php', '-d', 'memory_limit=1G', 'worker.php'],
      env: { APP_ENV: 'prod' },
      cwd: tmpdir(),
      relay: 'tcp://127.0.0.1:7000',
      mode: 'jobs',
      num_workers: 4,
      max_jobs: 100,
      allocate_timeout: '30s',
      max_queue_size: 50,
      destroy_timeout: '5s',
      reset_timeout: 2_000,
      stream_timeout: '1m',
      max_frame_size: 1024 * 1024,
      supervisor: { watch_tick: '5s', ttl: '1h', idle_ttl: '10s', exec_ttl: '1.5s', max_worker_memory: 128 },
      uid: 1000,
      gid: 1000,
      nice: 12,
      logger,
    });
    expect(resolved).toMatchObject({
      argv: ['php', '-d', 'memory_limit=1G', 'worker.php'],
      env: { APP_ENV: 'prod' },
      cwd: tmpdir(),
      relay: { kind: 'tcp', host: '127.0.0.1', port: 7000 },
      mode: 'jobs',
      numWorkers: 4,
      maxJobs: 100,
      allocateTimeoutMs: 30_000,
      maxQueueSize: 50,
      destroyTimeoutMs: 5_000,
      resetTimeoutMs: 2_000,
      streamTimeoutMs: 60_000,
      maxFrameBytes: 1024 * 1024,
      watchTickMs: 5_000,
      ttlMs: 3_600_000,
      idleTtlMs: 10_000,
      execTtlMs: 1_500,
      maxWorkerMemoryBytes: 128 * 1024 * 1024,
      uid: 1000,
      gid: 1000,
      nice: 12,
    });
    expect(resolved.logger).toBe(logger);
  });

  it('converts max_worker_memory from MB to bytes', () => {
    expect(
      resolvePoolOptions({ command: 'php w.php', supervisor: { max_worker_memory: 1 } }).maxWorkerMemoryBytes,
    ).toBe(1_048_576);
    expect(
      resolvePoolOptions({ command: 'php w.php', supervisor: { max_worker_memory: 0.5 } }).maxWorkerMemoryBytes,
    ).toBe(524_288);
  });

  it('treats allocate_timeout, destroy_timeout, reset_timeout and watch_tick of 0 as the default (RoadRunner)', () => {
    const resolved = resolvePoolOptions({
      command: 'php w.php',
      allocate_timeout: 0,
      destroy_timeout: '0s',
      reset_timeout: 0,
      supervisor: { watch_tick: '0s' },
    });
    expect(resolved.allocateTimeoutMs).toBe(60_000);
    // before: reset_timeout 0 killed busy workers at once (502), destroy_timeout 0 never stopped a hung one
    expect(resolved.destroyTimeoutMs).toBe(60_000);
    expect(resolved.resetTimeoutMs).toBe(60_000);
    expect(resolved.watchTickMs).toBe(1_000);
  });

  it('accepts the limits of num_workers', () => {
    expect(resolvePoolOptions({ command: 'php w.php', num_workers: 1 }).numWorkers).toBe(1);
    expect(resolvePoolOptions({ command: 'php w.php', num_workers: 500 }).numWorkers).toBe(500);
  });
});

describe('resolvePoolOptions: errors name the option', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['num_workers -1', { num_workers: -1 }, 'num_workers'],
    ['num_workers 501', { num_workers: 501 }, 'num_workers'],
    ['num_workers 1.5', { num_workers: 1.5 }, 'num_workers'],
    ['num_workers "4"', { num_workers: '4' }, 'num_workers'],
    ['max_jobs -1', { max_jobs: -1 }, 'max_jobs'],
    ['max_queue_size -1', { max_queue_size: -1 }, 'max_queue_size'],
    ['max_frame_size 10', { max_frame_size: 10 }, 'max_frame_size'],
    ['max_frame_size 5 GiB', { max_frame_size: 5 * 1024 ** 3 }, 'max_frame_size'],
    ['allocate_timeout "soon"', { allocate_timeout: 'soon' }, 'allocate_timeout'],
    ['destroy_timeout -5', { destroy_timeout: -5 }, 'destroy_timeout'],
    ['reset_timeout "1x"', { reset_timeout: '1x' }, 'reset_timeout'],
    ['stream_timeout "abc"', { stream_timeout: 'abc' }, 'stream_timeout'],
    ['supervisor.foo', { supervisor: { foo: 1 } }, 'supervisor.foo'],
    ['supervisor.ttl "x"', { supervisor: { ttl: 'x' } }, 'supervisor.ttl'],
    ['supervisor.idle_ttl "1 day"', { supervisor: { idle_ttl: '1 day' } }, 'supervisor.idle_ttl'],
    ['supervisor.exec_ttl "fast"', { supervisor: { exec_ttl: 'fast' } }, 'supervisor.exec_ttl'],
    ['supervisor.watch_tick "-1s"', { supervisor: { watch_tick: '-1s' } }, 'supervisor.watch_tick'],
    ['supervisor.max_worker_memory -1', { supervisor: { max_worker_memory: -1 } }, 'supervisor.max_worker_memory'],
    [
      'supervisor.max_worker_memory "128"',
      { supervisor: { max_worker_memory: '128' } },
      'supervisor.max_worker_memory',
    ],
    ['relay "ftp://x"', { relay: 'ftp://x' }, 'relay'],
    ['relay "tcp://host"', { relay: 'tcp://host' }, 'relay'],
    ['unknown key numWorkers', { numWorkers: 4 }, 'numWorkers'],
    ['unknown key pool', { pool: {} }, 'pool'],
    ['env value not a string', { env: { PORT: 8080 } }, 'env.PORT'],
    ['command ""', { command: '' }, 'command'],
    ['command []', { command: [] }, 'command'],
    ['uid -1', { uid: -1 }, 'uid'],
    ['nice -1 (a higher priority than the server)', { nice: -1 }, 'nice'],
    ['nice 20', { nice: 20 }, 'nice'],
    ['nice 2.5', { nice: 2.5 }, 'nice'],
    ['nice "5"', { nice: '5' }, 'nice'],
    ['gid "www"', { gid: 'www' }, 'gid'],
  ])('%s', (_name, options, key) => {
    expectInvalid(() => resolvePoolOptions(loose(options)), key);
  });

  it('requires command', () => {
    const error = expectInvalid(() => resolvePoolOptions({} as PoolOptions), 'command');
    expect(error.message).toMatch(/required/);
  });

  it('lists the known options when a key is unknown', () => {
    const error = expectInvalid(() => resolvePoolOptions(loose({ workers: 2 })), 'workers');
    expect(error.message).toContain('num_workers');
    expect(error.message).toContain('allocate_timeout');
  });

  it('lists the known supervisor options when a supervisor key is unknown', () => {
    const error = expectInvalid(
      () => resolvePoolOptions(loose({ supervisor: { max_memory: 1 } })),
      'supervisor.max_memory',
    );
    expect(error.message).toContain('max_worker_memory');
  });

  it('rejects options that are not an object', () => {
    expect(() => resolvePoolOptions(null as unknown as PoolOptions)).toThrow(InvalidPoolOptionError);
  });

  it('num_workers: 0 is one worker per CPU, as RoadRunner reads it', () => {
    expect(resolvePoolOptions(loose({ num_workers: 0 })).numWorkers).toBe(availableParallelism());
  });

  it('shows the offending value', () => {
    expect(() => resolvePoolOptions(loose({ num_workers: -2 }))).toThrow(/got -2/);
    expect(() => resolvePoolOptions(loose({ relay: 'ftp://x' }))).toThrow(/ftp:\/\/x/);
  });

  it('cwd must be a folder that exists: a missing one is named, not reported later as a missing command', () => {
    expect(() => resolvePoolOptions({ command: 'php w.php', cwd: '/nonexistent/shop' })).toThrow(
      /"cwd".*"\/nonexistent\/shop" does not exist or is not a folder; create it or fix the path/,
    );
    expect(resolvePoolOptions({ command: 'php w.php', cwd: tmpdir() }).cwd).toBe(tmpdir());
  });
});
