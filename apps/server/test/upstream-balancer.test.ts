import { describe, expect, it } from 'vitest';
import { FAIL_TIMEOUT_MS, isConnectFailure, UpstreamBalancer } from '../src/upstream-balancer.js';

describe('UpstreamBalancer', () => {
  it('takes the origins in turn, passes over a failed one for the fail timeout, then tries it again', () => {
    const clock = { now: 1000 };
    const balancer = new UpstreamBalancer(['a', 'b', 'c'], FAIL_TIMEOUT_MS, () => clock.now);
    expect([balancer.pick(), balancer.pick(), balancer.pick(), balancer.pick()]).toEqual(['a', 'b', 'c', 'a']);
    balancer.failed('b');
    expect([balancer.pick(), balancer.pick(), balancer.pick()]).toEqual(['c', 'a', 'c']);
    clock.now += FAIL_TIMEOUT_MS - 1;
    expect(balancer.pick()).toBe('a');
    clock.now += 1;
    expect([balancer.pick(), balancer.pick()]).toEqual(['b', 'c']);
  });

  it('skips what one request tried already, and says null once it tried them all', () => {
    const balancer = new UpstreamBalancer(['a', 'b']);
    const tried = new Set(['a']);
    expect(balancer.pick(tried)).toBe('b');
    tried.add('b');
    expect(balancer.pick(tried)).toBeNull();
  });

  it('all passed over: the one back soonest; an answer makes one live again at once', () => {
    const clock = { now: 0 };
    const balancer = new UpstreamBalancer(['a', 'b'], FAIL_TIMEOUT_MS, () => clock.now);
    balancer.failed('a');
    clock.now += 100;
    balancer.failed('b');
    expect([balancer.pick(), balancer.pick()]).toEqual(['a', 'a']);
    balancer.answered('b');
    expect(balancer.pick()).toBe('b');
  });

  it('a connection failure is one where nothing was sent; a reset or timeout after is not', () => {
    for (const code of ['ECONNREFUSED', 'EHOSTUNREACH', 'ENOTFOUND', 'UND_ERR_CONNECT_TIMEOUT'])
      expect(isConnectFailure(Object.assign(new Error(code), { code }))).toBe(true);
    for (const code of ['ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT'])
      expect(isConnectFailure(Object.assign(new Error(code), { code }))).toBe(false);
    expect(isConnectFailure(null)).toBe(false);
  });
});
