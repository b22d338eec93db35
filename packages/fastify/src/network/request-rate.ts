// `limit_req`: nginx's limit_req with nodelay. Per path prefix, one client (an IPv4 address, an IPv6
// /64) may make `rate` requests a second or a minute, and `burst` more at once; the next one is
// 429 with Retry-After, before the static layer or PHP. A password guesser on wp-login.php or
// xmlrpc.php then costs itself the wait, not the server a WordPress boot per guess.
import { METHODS } from 'node:http';
import { LRUCache } from 'lru-cache';
import { InvalidOptionError } from '../errors.js';
import { clientKey } from './client-key.js';
import { longestPrefixRule, normalizePrefix, type PrefixRule, prefixRule } from './access.js';

export interface RequestRateRule {
  /** path prefix, on segment boundaries ("/wp-login.php") */
  prefix: string;
  /** "10r/s" or "30r/m", as nginx writes it */
  rate: string;
  /** requests allowed at once above the rate; default 0 */
  burst?: number;
  /**
   * only requests with these methods are counted ("POST": a login form posted to the page every
   * other request reads, as Adminer's and phpMyAdmin's); default: all
   */
  methods?: string[];
}

/**
 * 0: allowed (and counted); else the seconds the client should wait (Retry-After). `counted`: a
 * path this request was checked for already (the one asked, when `path` is the script it led to):
 * the rule both meet is not counted twice.
 */
export type RequestRateCheck = (path: string, clientAddr: string, method: string, counted?: string) => number;

/** Clients remembered per rule; the least recently seen are forgotten first (nginx's zone does the same). */
const MAX_CLIENTS = 65_536;
const RATE = /^(\d+(?:\.\d+)?)r\/(s|m)$/;

/** A rule checked and read: its prefix as paths are compared, its rate per millisecond. */
export interface ResolvedRequestRateRule {
  prefix: string;
  /** requests per millisecond */
  perMs: number;
  burst: number;
  /** null: every method */
  methods: readonly string[] | null;
}

interface CompiledRule extends ResolvedRequestRateRule, PrefixRule {
  clients: LRUCache<string, ClientState>;
}

/** nginx's excess: requests above the rate, still to drain. */
interface ClientState {
  excess: number;
  at: number;
}

/** "10r/s" → 0.01 requests a millisecond; null when it is no rate. */
function perMsOf(rate: unknown): number | null {
  const match = typeof rate === 'string' ? RATE.exec(rate.trim()) : null;
  const count = match === null ? 0 : Number(match[1]);
  return count > 0 ? count / (match![2] === 's' ? 1000 : 60_000) : null;
}

/** Why a rate is wrong, or null: "10r/s", "30r/m". */
export function rateProblem(rate: unknown): string | null {
  if (perMsOf(rate) !== null) return null;
  return `must be requests per second or minute, like "10r/s" or "5r/m", got ${JSON.stringify(rate)}`;
}

/**
 * Checks and reads the rules, longest prefix first; [] when there are none. Throws naming the key.
 * It allocates nothing per client: `config check` calls it alone.
 */
export function resolveRequestRateRules(
  rules: readonly RequestRateRule[] | undefined,
  key = 'limit_req',
): ResolvedRequestRateRule[] {
  if (rules === undefined) return [];
  if (!Array.isArray(rules))
    throw new InvalidOptionError(key, `must be a list of { prefix, rate, burst? }, got ${JSON.stringify(rules)}`);
  const seen = new Set<string>();
  const resolved = rules.map((rule, index): ResolvedRequestRateRule => {
    const at = `${key}[${index}]`;
    if (rule === null || typeof rule !== 'object')
      throw new InvalidOptionError(at, 'must be an object like { prefix: "/wp-login.php", rate: "5r/m", burst: 3 }');
    for (const name of Object.keys(rule)) {
      if (name !== 'prefix' && name !== 'rate' && name !== 'burst' && name !== 'methods')
        throw new InvalidOptionError(`${at}.${name}`, 'is not a rule key; known keys: prefix, rate, burst, methods');
    }
    const prefix = normalizePrefix(rule.prefix, `${at}.prefix`);
    const methods = methodsOf(rule.methods, `${at}.methods`);
    const id = `${prefix} ${methods?.join(',') ?? '*'}`;
    if (seen.has(id))
      throw new InvalidOptionError(`${at}.prefix`, `"${prefix}" appears in two rules for the same methods; merge them`);
    seen.add(id);
    const perMs = perMsOf(rule.rate);
    if (perMs === null) throw new InvalidOptionError(`${at}.rate`, rateProblem(rule.rate)!);
    const burst = rule.burst ?? 0;
    if (!Number.isInteger(burst) || burst < 0)
      throw new InvalidOptionError(`${at}.burst`, `must be a whole number of requests, 0 or more, got ${burst}`);
    return { prefix, perMs, burst, methods };
  });
  // longest prefix first; for one prefix, a rule for some methods before the one for all
  return resolved.sort(
    (a, b) => b.prefix.length - a.prefix.length || Number(b.methods !== null) - Number(a.methods !== null),
  );
}

/** ["post", "PUT"] → ["POST", "PUT"]; undefined → null (all). */
function methodsOf(methods: unknown, key: string): readonly string[] | null {
  if (methods === undefined) return null;
  if (
    !Array.isArray(methods) ||
    methods.length === 0 ||
    methods.some((m) => typeof m !== 'string' || !/^[A-Za-z]+$/.test(m))
  )
    throw new InvalidOptionError(key, `must be a list of HTTP methods, like ["POST"], got ${JSON.stringify(methods)}`);
  const upper = methods.map((m: string) => m.toUpperCase());
  // a typo ("POTS") would make a rule that never counts a request
  const unknown = upper.find((m) => !METHODS.includes(m));
  if (unknown !== undefined)
    throw new InvalidOptionError(key, `"${unknown}" is no HTTP method; name methods such as "POST", "PUT", "DELETE"`);
  // HEAD runs what GET runs: a GET rule counts it too (nginx's limit_except GET covers HEAD)
  if (upper.includes('GET')) upper.push('HEAD');
  return [...new Set(upper)].sort();
}

/** Compiles the rules once, each with its clients; null when there are none. `now` is for tests. */
export function compileRequestRate(
  rules: readonly RequestRateRule[] | undefined,
  now: () => number = Date.now,
  key = 'limit_req',
): RequestRateCheck | null {
  const resolved = resolveRequestRateRules(rules, key);
  if (resolved.length === 0) return null;
  // in any case: /WP-LOGIN.PHP counts as /wp-login.php (access.ts, PrefixRule)
  const compiled: CompiledRule[] = resolved.map(({ prefix, perMs, burst, methods }) => ({
    ...prefixRule(prefix, false),
    perMs,
    burst,
    methods,
    clients: new LRUCache<string, ClientState>({ max: MAX_CLIENTS }),
  }));
  // the rules that count each method, in the same order (Fastify routes known methods only)
  const byMethod = new Map<string, CompiledRule[]>();
  const rulesFor = (method: string): CompiledRule[] => {
    let rules = byMethod.get(method);
    if (rules === undefined) {
      rules = compiled.filter((rule) => rule.methods === null || rule.methods.includes(method));
      byMethod.set(method, rules);
    }
    return rules;
  };
  return (path, clientAddr, method, counted) => {
    const rules = rulesFor(method);
    const rule = longestPrefixRule(rules, path);
    // a rule counts a request once: not again for its script when the path asked met the same one
    // (a site-wide rule on "/" does not switch off a stricter one on the script "/" runs)
    if (counted !== undefined && rule === longestPrefixRule(rules, counted)) return 0;
    return rule === null ? 0 : admit(rule, clientKey(clientAddr), now());
  };
}

/**
 * nginx's leaky bucket (ngx_http_limit_req_lookup): the excess drains at the rate; this request
 * adds one; over the burst it is refused and counts for nothing, else the excess is kept.
 */
function admit(rule: CompiledRule, client: string, now: number): number {
  const state = rule.clients.get(client);
  if (state === undefined) {
    rule.clients.set(client, { excess: 0, at: now });
    return 0;
  }
  const drained = state.excess - rule.perMs * Math.max(0, now - state.at);
  const excess = Math.max(0, drained + 1);
  if (excess > rule.burst) {
    // the excess falls to the burst (this request fits) after this many more milliseconds
    const waitMs = (drained + 1 - rule.burst) / rule.perMs;
    return Math.max(1, Math.ceil(waitMs / 1000));
  }
  state.excess = excess;
  state.at = now;
  return 0;
}
