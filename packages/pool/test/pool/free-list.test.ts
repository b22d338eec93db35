import { afterEach, describe, expect, it, vi } from 'vitest';
import { NoFreeWorkerError } from '../../src/errors.js';
import { FreeList } from '../../src/pool/free-list.js';
import type { Worker } from '../../src/worker/worker.js';

/** The free list only stores and hands out workers; a tagged object stands in for one. */
function fakeWorker(name: string): Worker {
  return { name } as unknown as Worker;
}

const a = fakeWorker('a');
const b = fakeWorker('b');
const c = fakeWorker('c');

interface Tracked {
  state: 'pending' | 'resolved' | 'rejected';
  value?: Worker;
  error?: unknown;
}

/** Tracks a wait() promise without leaving a rejection unhandled. */
function track(promise: Promise<Worker>): Tracked {
  const tracked: Tracked = { state: 'pending' };
  promise.then(
    (value) => Object.assign(tracked, { state: 'resolved', value }),
    (error: unknown) => Object.assign(tracked, { state: 'rejected', error }),
  );
  return tracked;
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

function timeoutList(ms: number): { list: FreeList<Worker>; waits: number[] } {
  const waits: number[] = [];
  const list = new FreeList<Worker>(ms, (waited) => {
    waits.push(waited);
    return new NoFreeWorkerError(`no free worker within ${waited}ms`);
  });
  return { list, waits };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('FreeList: ready workers', () => {
  it('hands out the most recently put worker first (MRU)', () => {
    const { list } = timeoutList(1000);
    list.put(a);
    list.put(b);
    list.put(c);
    expect(list.readyCount).toBe(3);
    expect(list.take()).toBe(c);
    expect(list.take()).toBe(b);
    list.put(c);
    expect(list.take()).toBe(c);
    expect(list.take()).toBe(a);
    expect(list.take()).toBeNull();
    expect(list.readyCount).toBe(0);
  });

  it('removes an idle worker, and says false for one it does not hold', () => {
    const { list } = timeoutList(1000);
    list.put(a);
    list.put(b);
    list.put(c);
    expect(list.remove(b)).toBe(true);
    expect(list.remove(b)).toBe(false);
    expect(list.remove(fakeWorker('other'))).toBe(false);
    expect(list.readyCount).toBe(2);
    expect(list.take()).toBe(c);
    expect(list.take()).toBe(a);
  });

  it('returns a snapshot from idle()', () => {
    const { list } = timeoutList(1000);
    list.put(a);
    list.put(b);
    const idle = list.idle();
    expect(idle).toEqual([a, b]);
    list.take();
    expect(idle).toEqual([a, b]);
    expect(list.idle()).toEqual([a]);
  });
});

describe('FreeList: waiters', () => {
  it('serves waiters first-in first-out', async () => {
    const { list } = timeoutList(10_000);
    const first = list.wait();
    const second = list.wait();
    const third = list.wait();
    expect(list.waiting).toBe(3);
    const order: string[] = [];
    void first.then(() => order.push('first'));
    void second.then(() => order.push('second'));
    void third.then(() => order.push('third'));
    list.put(a);
    list.put(b);
    expect(list.waiting).toBe(1);
    expect(list.readyCount).toBe(0);
    await expect(first).resolves.toBe(a);
    await expect(second).resolves.toBe(b);
    list.put(c);
    await expect(third).resolves.toBe(c);
    expect(order).toEqual(['first', 'second', 'third']);
    expect(list.waiting).toBe(0);
    list.rejectAll(new Error('cleanup'));
  });

  it('keeps a worker on the stack once nobody waits', async () => {
    const { list } = timeoutList(10_000);
    const waiter = list.wait();
    list.put(a);
    list.put(b);
    await expect(waiter).resolves.toBe(a);
    expect(list.readyCount).toBe(1);
    expect(list.take()).toBe(b);
  });

  it('rejects a waiter after the timeout with the error from the factory (real timers)', async () => {
    const { list, waits } = timeoutList(50);
    const error = await list.wait().then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(NoFreeWorkerError);
    expect((error as NoFreeWorkerError).message).toBe('no free worker within 50ms');
    expect(waits).toEqual([50]);
    expect(list.waiting).toBe(0);
  });

  it('rejects only the waiters past their deadline', async () => {
    vi.useFakeTimers({ now: 1_000_000 });
    const { list, waits } = timeoutList(50);
    const first = track(list.wait());
    await vi.advanceTimersByTimeAsync(20);
    const second = track(list.wait());
    await vi.advanceTimersByTimeAsync(20);
    const third = track(list.wait());

    await vi.advanceTimersByTimeAsync(10); // t = 50: only the first is due
    expect(first.state).toBe('rejected');
    expect(first.error).toBeInstanceOf(NoFreeWorkerError);
    expect(second.state).toBe('pending');
    expect(third.state).toBe('pending');
    expect(list.waiting).toBe(2);

    list.put(a); // served before its deadline: never rejected later
    await vi.advanceTimersByTimeAsync(0);
    expect(second.state).toBe('resolved');
    expect(second.value).toBe(a);

    await vi.advanceTimersByTimeAsync(39); // t = 89: the third is due at 40 + 50 = 90
    expect(third.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(third.state).toBe('rejected');
    expect(waits).toEqual([50, 50]);
    expect(list.waiting).toBe(0);

    await vi.advanceTimersByTimeAsync(1_000);
    expect(second.state).toBe('resolved');
    expect(waits).toHaveLength(2);
  });

  it('rejects waiters that share a deadline together', async () => {
    vi.useFakeTimers({ now: 0 });
    const { list } = timeoutList(50);
    const waiters = [track(list.wait()), track(list.wait()), track(list.wait())];
    await vi.advanceTimersByTimeAsync(49);
    expect(waiters.map((w) => w.state)).toEqual(['pending', 'pending', 'pending']);
    await vi.advanceTimersByTimeAsync(1);
    expect(waiters.map((w) => w.state)).toEqual(['rejected', 'rejected', 'rejected']);
    // Each waiter gets its own error object from the factory.
    expect(waiters[0]!.error).not.toBe(waiters[1]!.error);
  });

  it('arms a fresh timer for waiters that come after the queue emptied', async () => {
    vi.useFakeTimers({ now: 0 });
    const { list } = timeoutList(50);
    const early = track(list.wait());
    list.put(a);
    await vi.advanceTimersByTimeAsync(30);
    expect(early.state).toBe('resolved');
    const late = track(list.wait()); // due at 80, not at the stale 50
    await vi.advanceTimersByTimeAsync(25);
    expect(late.state).toBe('pending');
    await vi.advanceTimersByTimeAsync(25);
    expect(late.state).toBe('rejected');
  });

  it('serves many waiters in order', async () => {
    const { list } = timeoutList(10_000);
    const waiters = Array.from({ length: 3000 }, () => track(list.wait()));
    const workers = Array.from({ length: 3000 }, (_, i) => fakeWorker(`w${i}`));
    for (const worker of workers) list.put(worker);
    await flush();
    for (const [i, w] of waiters.entries()) expect(w.value).toBe(workers[i]);
    expect(list.waiting).toBe(0);
    expect(list.readyCount).toBe(0);
  });
});

describe('FreeList: rejectAll', () => {
  it('rejects every waiter with the given error and stops the timer', async () => {
    vi.useFakeTimers({ now: 0 });
    const { list, waits } = timeoutList(50);
    const waiters = [track(list.wait()), track(list.wait())];
    await vi.advanceTimersByTimeAsync(10);
    const closed = new Error('pool closed');
    list.rejectAll(closed);
    await vi.advanceTimersByTimeAsync(0);
    expect(waiters.map((w) => w.state)).toEqual(['rejected', 'rejected']);
    expect(waiters[0]!.error).toBe(closed);
    expect(waiters[1]!.error).toBe(closed);
    expect(list.waiting).toBe(0);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(waits).toEqual([]);
  });

  it('leaves ready workers alone and keeps working afterwards', async () => {
    vi.useFakeTimers({ now: 0 });
    const { list } = timeoutList(50);
    list.put(a);
    list.rejectAll(new Error('x'));
    expect(list.readyCount).toBe(1);
    expect(list.take()).toBe(a);
    const next = track(list.wait());
    list.put(b);
    await vi.advanceTimersByTimeAsync(0);
    expect(next.value).toBe(b);
    const late = track(list.wait());
    await vi.advanceTimersByTimeAsync(50);
    expect(late.state).toBe('rejected');
  });

  it('is harmless with no waiters', () => {
    const { list } = timeoutList(50);
    expect(() => list.rejectAll(new Error('x'))).not.toThrow();
    expect(list.waiting).toBe(0);
  });
});

describe('FreeList: waiters that give up', () => {
  it('an aborted waiter leaves the queue at once; the next worker goes to the next live waiter', async () => {
    const { list } = timeoutList(10_000);
    const first = new AbortController();
    const second = new AbortController();
    const w1 = track(list.wait(first.signal, () => new Error('gone')));
    const w2 = track(list.wait(second.signal, () => new Error('gone')));
    const w3 = track(list.wait());
    expect(list.waiting).toBe(3);
    second.abort();
    await flush();
    expect(w2.state).toBe('rejected');
    expect((w2.error as Error).message).toBe('gone');
    expect(list.waiting).toBe(2);
    list.put(a);
    list.put(b);
    await flush();
    expect(w1.value).toBe(a);
    expect(w3.value).toBe(b);
    expect(list.waiting).toBe(0);
    // aborting after the hand-over changes nothing
    first.abort();
    list.put(c);
    expect(list.readyCount).toBe(1);
  });

  it('an already aborted signal rejects without queueing', async () => {
    const { list } = timeoutList(10_000);
    const waiter = track(list.wait(AbortSignal.abort(), () => new Error('gone')));
    await flush();
    expect(waiter.state).toBe('rejected');
    expect(list.waiting).toBe(0);
  });

  it('many aborted waiters in the middle of a long queue keep the count and the order right', async () => {
    const { list } = timeoutList(10_000);
    const controllers = Array.from({ length: 3000 }, () => new AbortController());
    const waiters = controllers.map((c) => track(list.wait(c.signal, () => new Error('gone'))));
    for (let i = 0; i < 3000; i++) if (i % 3 !== 0) controllers[i]!.abort();
    await flush();
    expect(list.waiting).toBe(1000);
    const workers = Array.from({ length: 1000 }, (_, i) => fakeWorker(`w${i}`));
    for (const worker of workers) list.put(worker);
    await flush();
    for (let i = 0; i < 3000; i += 3) expect(waiters[i]!.value).toBe(workers[i / 3]);
    expect(list.waiting).toBe(0);
    expect(list.readyCount).toBe(0);
  });
});

describe('FreeList: offer (a place behind a busy worker)', () => {
  it('goes to the oldest waiter that accepts it; one passed over keeps its place', async () => {
    const { list } = timeoutList(10_000);
    const post = track(list.wait(undefined, undefined, 'POST'));
    const get1 = track(list.wait(undefined, undefined, 'GET'));
    const get2 = track(list.wait(undefined, undefined, 'GET'));
    expect(list.offer(a, (tag) => tag === 'GET')).toBe(true);
    await flush();
    expect([post.state, get1.value, get2.state]).toEqual(['pending', a, 'pending']);
    expect(list.waiting).toBe(2);
    list.put(b); // a free worker still goes to the oldest waiter
    await flush();
    expect(post.value).toBe(b);
    expect(list.offer(c, () => false)).toBe(false);
    expect(list.waiting).toBe(1);
    list.put(c);
    await flush();
    expect(get2.value).toBe(c);
    expect(list.waiting).toBe(0);
  });

  it('holds no slot for waiters that left through offer, however long it runs', async () => {
    // a pipelining pool under load: every waiter leaves through offer(), none through put()
    const { list } = timeoutList(10_000);
    const waiters = Array.from({ length: 32 }, () => track(list.wait(undefined, undefined, 'GET')));
    for (let i = 0; i < 10_000; i++) {
      expect(list.offer(a, () => true)).toBe(true);
      waiters.push(track(list.wait(undefined, undefined, 'GET')));
    }
    await flush();
    expect(list.waiting).toBe(32);
    expect(list.slots).toBe(32);
    expect(waiters.slice(0, 10_000).every((w) => w.value === a)).toBe(true);
    expect(waiters.slice(10_000).every((w) => w.state === 'pending')).toBe(true);
    list.rejectAll(new Error('closing'));
  });

  it('drops the holes of aborted waiters in front of the one it takes', async () => {
    const { list } = timeoutList(10_000);
    const gone = Array.from({ length: 5 }, () => new AbortController());
    const early = gone.map((c) => track(list.wait(c.signal, () => new Error('gone'), 'GET')));
    const live = track(list.wait(undefined, undefined, 'GET'));
    for (const c of gone) c.abort();
    expect(list.slots).toBe(6);
    expect(list.offer(a, () => true)).toBe(true);
    await flush();
    expect(early.every((w) => w.state === 'rejected')).toBe(true);
    expect(live.value).toBe(a);
    expect([list.waiting, list.slots]).toEqual([0, 0]);
  });
});
