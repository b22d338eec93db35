import { describe, expect, it } from 'vitest';
import { Cancellation } from '../src/cancel.js';

describe('Cancellation (the CancelSignal a server makes per request)', () => {
  it('fires its listeners once, in order, without the removed ones, with an AbortError reason', () => {
    const cancellation = new Cancellation();
    const calls: string[] = [];
    const removed = () => calls.push('removed');
    cancellation.addEventListener('abort', () => calls.push('first'));
    cancellation.addEventListener('abort', removed);
    cancellation.addEventListener('abort', () => calls.push(`second, aborted=${cancellation.aborted}`));
    cancellation.removeEventListener('abort', removed);
    expect([cancellation.aborted, cancellation.reason]).toEqual([false, undefined]);
    cancellation.cancel();
    cancellation.cancel();
    expect(calls).toEqual(['first', 'second, aborted=true']);
    expect(cancellation.reason).toBeInstanceOf(DOMException);
    expect((cancellation.reason as DOMException).name).toBe('AbortError');
  });

  it('never runs a listener added after it fired (as AbortSignal), and keeps a given reason', () => {
    const cancellation = new Cancellation();
    const reason = new Error('the client left');
    cancellation.cancel(reason);
    let ran = false;
    cancellation.addEventListener('abort', () => {
      ran = true;
    });
    cancellation.cancel(new Error('again'));
    expect([ran, cancellation.reason]).toEqual([false, reason]);
  });

  it('a listener that throws does not keep the others from running; cancel() throws its error after', () => {
    const cancellation = new Cancellation();
    const boom = new Error('listener failed');
    const calls: string[] = [];
    cancellation.addEventListener('abort', () => {
      throw boom;
    });
    cancellation.addEventListener('abort', () => calls.push('second'));
    expect(() => cancellation.cancel()).toThrow(boom);
    expect([calls, cancellation.aborted]).toEqual([['second'], true]);
  });
});
