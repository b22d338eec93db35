import { describe, expect, it } from 'vitest';
import { resolvePoolOptions } from '../../src/options.js';
import { BootBackoff, createWorkerSpec, jobLimitWithJitter } from '../../src/pool/allocator.js';
import type { SocketRelayListener } from '../../src/relay/socket.js';

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('jobLimitWithJitter', () => {
  it('is 0 (unlimited) for 0', () => {
    expect(jobLimitWithJitter(0)).toBe(0);
    expect(jobLimitWithJitter(0, () => 0.99)).toBe(0);
  });

  it('is 0 for a negative limit', () => {
    expect(jobLimitWithJitter(-5)).toBe(0);
  });

  it('adds 0-14 % on top: the bounds', () => {
    expect(jobLimitWithJitter(100, () => 0)).toBe(100);
    expect(jobLimitWithJitter(100, () => 0.5)).toBe(107);
    expect(jobLimitWithJitter(100, () => 0.999_999)).toBe(113);
    expect(jobLimitWithJitter(1000, () => 0.5)).toBe(1070);
  });

  it('stays within [max, max * 1.14] as an integer, for many draws', () => {
    const rand = prng(42);
    for (const max of [1, 2, 7, 10, 100, 999, 12_345, 1_000_000]) {
      let seenAbove = false;
      const outOfRange: number[] = [];
      for (let i = 0; i < 2000; i++) {
        const limit = jobLimitWithJitter(max, rand);
        if (!Number.isInteger(limit) || limit < max || limit > max * 1.14) outOfRange.push(limit);
        if (limit > max) seenAbove = true;
      }
      expect(outOfRange, `max ${max}`).toEqual([]);
      // Jitter shows once 14 % of max reaches 1.
      if (max >= 10) expect(seenAbove, `max ${max}`).toBe(true);
    }
  });

  it('uses Math.random by default and stays within bounds', () => {
    const limits = Array.from({ length: 1000 }, () => jobLimitWithJitter(500));
    expect(limits.filter((limit) => !Number.isInteger(limit) || limit < 500 || limit > 570)).toEqual([]);
    expect(new Set(limits).size).toBeGreaterThan(1);
  });
});

describe('BootBackoff', () => {
  it('doubles from 100ms and caps at 10s', () => {
    const backoff = new BootBackoff();
    expect(backoff.failures).toBe(0);
    const waits = Array.from({ length: 10 }, () => backoff.fail());
    expect(waits).toEqual([100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
    expect(backoff.failures).toBe(10);
  });

  it('stays at the cap after many failures', () => {
    const backoff = new BootBackoff();
    for (let i = 0; i < 100; i++) backoff.fail();
    expect(backoff.fail()).toBe(10_000);
  });

  it('resets on success', () => {
    const backoff = new BootBackoff();
    backoff.fail();
    backoff.fail();
    backoff.fail();
    backoff.succeed();
    expect(backoff.failures).toBe(0);
    expect(backoff.fail()).toBe(100);
    expect(backoff.fail()).toBe(200);
  });
});

describe('createWorkerSpec', () => {
  it('builds the environment and limits once from resolved options', () => {
    const options = resolvePoolOptions({
      command: 'php worker.php',
      env: { app_env: 'test' },
      allocate_timeout: '5s',
      destroy_timeout: '2s',
      stream_timeout: '3s',
      max_frame_size: 4096,
    });
    const spec = createWorkerSpec(options, null);
    expect(spec.argv).toEqual(['php', 'worker.php']);
    expect(spec.env.APP_ENV).toBe('test');
    expect(spec.env.RR_RELAY).toBe('pipes');
    expect(spec.env.RR_MODE).toBe('http');
    expect(spec.env.WARMPOOL_RELAY_FDS).toBeUndefined();
    expect(spec.bootTimeoutMs).toBe(5_000);
    expect(spec.destroyTimeoutMs).toBe(2_000);
    expect(spec.streamTimeoutMs).toBe(3_000);
    expect(spec.maxFrameBytes).toBe(4096);
    expect(spec.listener).toBeNull();
  });

  it('announces the fds relay to the SDK while RR_RELAY stays pipes', () => {
    const spec = createWorkerSpec(resolvePoolOptions({ command: 'php w.php', relay: 'fds' }), null);
    expect(spec.env.RR_RELAY).toBe('pipes');
    expect(spec.env.WARMPOOL_RELAY_FDS).toBe('3,4');
  });

  it('gives workers the port the listener bound', () => {
    const listener = { port: 43_210 } as unknown as SocketRelayListener;
    const spec = createWorkerSpec(resolvePoolOptions({ command: 'php w.php', relay: 'tcp://127.0.0.1:0' }), listener);
    expect(spec.env.RR_RELAY).toBe('tcp://127.0.0.1:43210');
    expect(spec.listener).toBe(listener);
  });
});
