// The renewal schedule as numbers: two thirds of the lifetime with jitter, backoff, Retry-After.
import { describe, expect, it } from 'vitest';
import { isDue, renewalTime, retryDelay, RETRY_MAX_MS, RETRY_MIN_MS } from '../../src/acme/renewal.js';
import { planCertificates } from '../../src/acme/plan.js';

const DAY = 86_400_000;
const lifetime = { notBefore: 0, notAfter: 90 * DAY };

describe('renewalTime', () => {
  it('is day 60 of a 90-day certificate, moved earlier by up to 4.5 days at random, never later', () => {
    expect(renewalTime(lifetime, 0)).toBe(60 * DAY);
    expect(renewalTime(lifetime, 0.999999)).toBeGreaterThan(55.5 * DAY);
    for (let i = 0; i < 100; i++) {
      const at = renewalTime(lifetime, Math.random());
      expect(at).toBeLessThanOrEqual(60 * DAY);
      expect(at).toBeGreaterThan(55.5 * DAY);
    }
  });

  it('isDue from two thirds of the lifetime on', () => {
    expect(isDue(lifetime, 59 * DAY)).toBe(false);
    expect(isDue(lifetime, 60 * DAY)).toBe(true);
  });
});

describe('retryDelay', () => {
  it('doubles from one minute to one hour, with up to 10 % jitter', () => {
    expect(retryDelay(1, 0)).toBe(RETRY_MIN_MS);
    expect(retryDelay(2, 0)).toBe(2 * RETRY_MIN_MS);
    expect(retryDelay(3, 0.5)).toBe(4 * RETRY_MIN_MS * 1.05);
    expect(retryDelay(30, 0)).toBe(RETRY_MAX_MS);
  });

  it("waits for the CA's Retry-After when it is later, and never past half the time left on a served certificate", () => {
    expect(retryDelay(1, 0, { retryAfterMs: 3 * 3_600_000 })).toBe(3 * 3_600_000);
    expect(retryDelay(10, 0, { expiresInMs: 20 * 60_000 })).toBe(10 * 60_000);
    // but a minute apart at least: halving the last seconds made a burst of attempts at the CA
    expect(retryDelay(10, 0, { expiresInMs: 30_000 })).toBe(RETRY_MIN_MS);
    expect(retryDelay(1, 0, { expiresInMs: 30_000 })).toBe(RETRY_MIN_MS);
  });
});

describe('planCertificates', () => {
  const sites = [
    { name: 'example.com', hosts: ['example.com', 'www.example.com'] },
    { name: 'shop.test', hosts: ['shop.test', '*.shop.test'] },
    { name: 'default', hosts: null },
  ];

  it('one certificate per site; names of no site (the default site) share one', () => {
    expect(
      planCertificates(
        ['example.com', 'a.shop.test', 'www.example.com', 'other.org', 'shop.test', 'x.y.shop.test'],
        sites,
      ),
    ).toEqual([
      { name: 'example.com', domains: ['example.com', 'www.example.com'], site: 'example.com' },
      { name: 'a.shop.test', domains: ['a.shop.test', 'shop.test'], site: 'shop.test' },
      // "*.shop.test" covers one label only
      { name: 'other.org', domains: ['other.org', 'x.y.shop.test'], site: null },
    ]);
  });

  it('splits a site of more than 100 names (the CA limit)', () => {
    const hosts = Array.from({ length: 150 }, (_, i) => `h${i}.example.com`);
    const plan = planCertificates(hosts, [{ name: 'big', hosts }]);
    expect(plan.map((p) => p.domains.length)).toEqual([100, 50]);
    expect(plan[1]!.name).toBe('h100.example.com');
  });
});
