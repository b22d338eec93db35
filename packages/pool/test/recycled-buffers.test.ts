import { describe, expect, it } from 'vitest';
import { RECYCLED_MAX_BYTES, RECYCLED_MIN_BYTES, RecycledBuffers } from '../src/recycled-buffers.js';

describe('RecycledBuffers', () => {
  it('hands out powers of two from the smallest size, a given-back buffer again, never one still out', () => {
    const buffers = new RecycledBuffers();
    const small = buffers.take(1);
    expect(small.length).toBe(RECYCLED_MIN_BYTES);
    expect(buffers.take(RECYCLED_MIN_BYTES + 1).length).toBe(2 * RECYCLED_MIN_BYTES);
    const other = buffers.take(10);
    expect(other).not.toBe(small); // both are out: two buffers
    buffers.give(small);
    expect(buffers.take(100)).toBe(small);
    expect(buffers.take(100)).not.toBe(small); // handed out once, not twice
    expect(buffers.stats()).toMatchObject({ allocated: 4, reused: 1 });
  });

  it('ignores a buffer given back twice, so it cannot be handed to two owners', () => {
    const buffers = new RecycledBuffers();
    const one = buffers.take(5000);
    buffers.give(one);
    buffers.give(one);
    expect(buffers.stats().pooledBytes).toBe(RECYCLED_MIN_BYTES);
    const first = buffers.take(5000);
    const second = buffers.take(5000);
    expect(first).toBe(one);
    expect(second).not.toBe(one);
  });

  it('keeps at most maxPooledBytes free, and never keeps sizes above the largest or foreign buffers', () => {
    const buffers = new RecycledBuffers(3 * RECYCLED_MIN_BYTES);
    const out = [1, 2, 3, 4].map(() => buffers.take(1));
    for (const buffer of out) buffers.give(buffer);
    expect(buffers.stats().pooledBytes).toBe(3 * RECYCLED_MIN_BYTES);
    const huge = buffers.take(RECYCLED_MAX_BYTES + 1);
    expect(huge.length).toBe(RECYCLED_MAX_BYTES + 1);
    buffers.give(huge);
    buffers.give(Buffer.alloc(1000)); // not one of ours: its size is no class
    expect(buffers.stats().pooledBytes).toBe(3 * RECYCLED_MIN_BYTES);
  });
});
