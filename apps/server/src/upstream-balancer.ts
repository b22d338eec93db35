// A proxy route's several upstreams, as nginx's `upstream { server a; server b; }`: requests go
// round robin, and one that could not be connected to sits out FAIL_TIMEOUT_MS (nginx's defaults,
// max_fails=1 fail_timeout=10s), so a Node app restarting behind one port does not cost requests.

/** How long an upstream that refused a connection is passed over (nginx's fail_timeout). */
export const FAIL_TIMEOUT_MS = 10_000;

/** Connection failures: the request never reached the upstream, so it may go to another (nginx's proxy_next_upstream error). */
const CONNECT_ERRORS = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** True when `error` says the connection was never made (nothing of the request was sent). */
export function isConnectFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CONNECT_ERRORS.has(code);
}

export class UpstreamBalancer {
  /** origins (`http://host:port`), in the order configured */
  readonly origins: readonly string[];
  readonly #downUntil: number[];
  readonly #failTimeoutMs: number;
  readonly #now: () => number;
  #next = 0;

  constructor(origins: readonly string[], failTimeoutMs = FAIL_TIMEOUT_MS, now: () => number = Date.now) {
    if (origins.length === 0) throw new Error('an upstream balancer needs at least one origin');
    this.origins = origins;
    this.#downUntil = origins.map(() => 0);
    this.#failTimeoutMs = failTimeoutMs;
    this.#now = now;
  }

  /**
   * The origin for the next request, not one of `tried`: the next live one round robin; when every
   * untried one is down, the one soonest back (nginx answers 502 "no live upstreams" there; one try
   * is kinder to an upstream that came back early). null once all are tried.
   */
  pick(tried: ReadonlySet<string> | null = null): string | null {
    const count = this.origins.length;
    const now = this.#now();
    let soonest = -1;
    for (let step = 0; step < count; step++) {
      const index = (this.#next + step) % count;
      const origin = this.origins[index]!;
      if (tried?.has(origin) === true) continue;
      if (this.#downUntil[index]! <= now) {
        this.#next = (index + 1) % count;
        return origin;
      }
      if (soonest === -1 || this.#downUntil[index]! < this.#downUntil[soonest]!) soonest = index;
    }
    return soonest === -1 ? null : this.origins[soonest]!;
  }

  /** `origin` could not be connected to: passed over until the fail timeout is out. */
  failed(origin: string): void {
    const index = this.origins.indexOf(origin);
    if (index !== -1) this.#downUntil[index] = this.#now() + this.#failTimeoutMs;
  }

  /** `origin` answered: it is live again at once (a try after the timeout that succeeded). */
  answered(origin: string): void {
    const index = this.origins.indexOf(origin);
    if (index !== -1) this.#downUntil[index] = 0;
  }
}
