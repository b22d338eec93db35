// When to renew, and when to try again after a failure. Pure functions of time and a random
// number, so the schedule is tested without waiting for it.
//
// Renewal starts at two thirds of the certificate's lifetime (Let's Encrypt's advice: day 60 of 90),
// moved earlier by up to a twentieth of the lifetime at random, so servers (and the certificates of
// one server) that got certificates together do not all renew in the same second. ARI (RFC 9773,
// the CA suggesting a window) is not used: acme-client does not implement it.
//
// A failed attempt is retried with exponential backoff from one minute up to an hour, never before
// the CA's Retry-After when it gave one (a rate limit, a CA unavailable), and never so late that the
// certificate expires first while a retry could still save it (but never sooner than a minute apart:
// halving the time left made a burst of attempts in a certificate's last minute).

export const RENEW_AT_FRACTION = 2 / 3;
export const RENEW_JITTER_FRACTION = 1 / 20;
export const RETRY_MIN_MS = 60_000;
export const RETRY_MAX_MS = 3_600_000;
/** Node's timers hold at most 2^31-1 ms (24.8 days); longer waits are taken in steps of this. */
export const MAX_TIMER_MS = 2_147_483_647;

export interface Lifetime {
  notBefore: number;
  notAfter: number;
}

/** The moment to start renewing (ms since the epoch). `random` is in [0, 1). */
export function renewalTime(lifetime: Lifetime, random: number): number {
  const span = Math.max(0, lifetime.notAfter - lifetime.notBefore);
  return lifetime.notBefore + span * RENEW_AT_FRACTION - span * RENEW_JITTER_FRACTION * random;
}

/** Whether a certificate is past its renewal point without jitter (a stored one at boot: renew now). */
export function isDue(lifetime: Lifetime, now: number): boolean {
  return now >= renewalTime(lifetime, 0);
}

/**
 * The delay before retry number `attempt` (1 = the first retry), in ms: 1 min, 2, 4, ... up to 1 h,
 * with up to 10 % jitter; a CA's Retry-After wins when it is later. With a certificate still served
 * (renewal), the delay is cut so a retry happens before it expires.
 */
export function retryDelay(
  attempt: number,
  random: number,
  options: { retryAfterMs?: number; expiresInMs?: number } = {},
): number {
  const backoff = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.max(0, attempt - 1));
  let delay = backoff + backoff * 0.1 * random;
  if (options.retryAfterMs !== undefined) delay = Math.max(delay, options.retryAfterMs);
  if (options.expiresInMs !== undefined && options.expiresInMs > 0)
    delay = Math.min(delay, Math.max(options.expiresInMs / 2, RETRY_MIN_MS));
  return Math.max(1_000, Math.round(delay));
}

/** Calls `fn` at `at` (ms since the epoch), through steps when that is further than a timer can wait. */
export function callAt(at: number, fn: () => void, now: () => number = Date.now): () => void {
  let timer: NodeJS.Timeout;
  const arm = () => {
    const wait = at - now();
    timer = setTimeout(wait <= MAX_TIMER_MS ? fn : arm, Math.min(Math.max(0, wait), MAX_TIMER_MS));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}
