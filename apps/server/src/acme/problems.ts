// What went wrong with the CA, in words an operator can act on.
//
// acme-client turns the CA's problem documents (RFC 8555 section 6.7: a type URN, a detail, per-name
// subproblems, and Retry-After on rate limits) into plain Errors holding only the detail. So every
// response from the CA is looked at on its way in (an axios interceptor on acme-client's own
// instance) and the last problem is kept for the order that is running (AsyncLocalStorage: orders
// of different certificates may overlap). explainFailure then names the name, the cause, and what
// to do: point DNS here, open the port, wait until the rate limit's time, check outbound HTTPS.
import { AsyncLocalStorage } from 'node:async_hooks';
import * as acme from 'acme-client';
import {
  AcmeCaUnreachableError,
  AcmeChallengeError,
  AcmeDnsError,
  AcmeOrderError,
  AcmeRateLimitError,
  AcmeStoreError,
  AcmeUnreachableError,
  type AcmeErrorDetails,
} from '../errors.js';
import { isFileSystemError, storeError } from './store.js';

export interface AcmeProblem {
  /** urn:ietf:params:acme:error:<kind> */
  type: string;
  detail: string;
  /** the name a challenge or subproblem was about */
  domain?: string;
  /** Retry-After, in ms from when it was received */
  retryAfterMs?: number;
}

/** The errors an order can end with (each a WarmpoolError with a WP_SERVER_ACME_* code). */
export type AcmeFailure =
  | AcmeDnsError
  | AcmeUnreachableError
  | AcmeChallengeError
  | AcmeRateLimitError
  | AcmeCaUnreachableError
  | AcmeOrderError
  | AcmeStoreError;

const PREFIX = 'urn:ietf:params:acme:error:';
const recorded = new AsyncLocalStorage<AcmeProblem[]>();
let installed = false;
/** orders being recorded now: the last one to end turns the recording off */
let recording = 0;

interface AcmeResponse {
  status?: number;
  headers?: Record<string, string | undefined>;
  data?: unknown;
}

/**
 * Configures acme-client's HTTP layer once per process:
 * - its own retries are off: it would sleep through a rate limit's Retry-After (hours) inside one
 *   request; the renewal schedule retries instead, with backoff, and honours Retry-After;
 * - every request is bounded (a CA that hangs must not hold an order forever);
 * - responses carrying a problem are recorded for the running order.
 */
export function installProblemRecorder(): void {
  if (installed) return;
  installed = true;
  const settings = (acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number } }).acmeSettings;
  settings.retryMaxAttempts = 0;
  acme.axios.defaults.timeout = 30_000;
  acme.axios.interceptors.response.use((response) => {
    const problem = problemOf(response as unknown as AcmeResponse);
    if (problem !== null) recorded.getStore()?.push(problem);
    return response;
  });
}

/** Runs one order with its own problem record; returns the record alongside. */
export async function recordProblems<T>(
  fn: () => Promise<T>,
): Promise<{ ok: true; value: T; problems: AcmeProblem[] } | { ok: false; error: unknown; problems: AcmeProblem[] }> {
  const problems: AcmeProblem[] = [];
  recording += 1;
  try {
    return { ok: true, value: await recorded.run(problems, fn), problems };
  } catch (error) {
    return { ok: false, error, problems };
  } finally {
    // On Node 20 and 22, run() turns on a promise hook that every promise of the process pays for
    // (each request's: a sixth of a plain Fastify route's rps) until disable(); orders are rare
    recording -= 1;
    if (recording === 0) recorded.disable();
  }
}

/**
 * Whether the running order's last problem is of `type` (the URN's last part); when it is, it is
 * removed: an expected answer (no account yet for this key) must not explain a later failure.
 */
export function takeProblem(type: string): boolean {
  const problems = recorded.getStore();
  if (problems?.at(-1)?.type !== `${PREFIX}${type}`) return false;
  problems.pop();
  return true;
}

/** A problem document in a response: an error body, or a challenge/authorization with an `error`. */
export function problemOf(response: AcmeResponse): AcmeProblem | null {
  const retryAfterMs = parseRetryAfter(response.headers?.['retry-after']);
  const data = response.data as Record<string, unknown> | undefined;
  if (data === undefined || data === null || typeof data !== 'object' || typeof data.type !== 'string') {
    // a CA in maintenance or overloaded answers 5xx, often with a page and no problem document
    if (response.status !== undefined && response.status >= 500 && !isProblemBody(data))
      return unavailable(response.status, retryAfterMs);
    if (data === undefined || data === null || typeof data !== 'object') return null;
  }
  const body = (
    typeof data.type === 'string' && data.type.startsWith(PREFIX)
      ? data
      : typeof data.error === 'object' && data.error !== null
        ? data.error
        : null
  ) as { type?: unknown; detail?: unknown; subproblems?: unknown } | null;
  if (body === null || typeof body.type !== 'string') return null;
  const problem: AcmeProblem = { type: body.type, detail: typeof body.detail === 'string' ? body.detail : '' };
  // a challenge's error belongs to its authorization's name; a subproblem names its identifier
  const identifier = (data as { identifier?: { value?: unknown } }).identifier?.value;
  const sub = Array.isArray(body.subproblems)
    ? (body.subproblems[0] as { identifier?: { value?: unknown } } | undefined)
    : undefined;
  const domain = sub?.identifier?.value ?? identifier ?? domainInUrl(problem.detail);
  if (typeof domain === 'string') problem.domain = domain;
  if (retryAfterMs !== null) problem.retryAfterMs = retryAfterMs;
  return problem;
}

function isProblemBody(data: unknown): boolean {
  return typeof data === 'object' && data !== null && typeof (data as { error?: unknown }).error === 'object';
}

function unavailable(status: number, retryAfterMs: number | null): AcmeProblem {
  const problem: AcmeProblem = { type: `${PREFIX}serverInternal`, detail: `HTTP ${status}` };
  if (retryAfterMs !== null) problem.retryAfterMs = retryAfterMs;
  return problem;
}

/** The store's own error, or a filesystem error (one with a path: not a socket's), in `error` or its causes; else null. */
function localCause(error: unknown): Error | null {
  for (let at = error, depth = 0; at !== null && typeof at === 'object' && depth < 5; depth++) {
    if (at instanceof AcmeStoreError || isFileSystemError(at)) return at as Error;
    at = (at as { cause?: unknown }).cause;
  }
  return null;
}

/** "Get \"http://b.test/.well-known/...\"" → b.test (the CA's detail names the URL it fetched). */
function domainInUrl(detail: string): string | undefined {
  return /https?:\/\/([a-z0-9.-]+)[:/]/i.exec(detail)?.[1];
}

function parseRetryAfter(header: string | undefined): number | null {
  if (header === undefined || header.trim() === '') return null;
  if (/^\d+$/.test(header.trim())) return Number(header.trim()) * 1000;
  const at = Date.parse(header);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

export interface FailureContext {
  /** the certificate's first name */
  certificate: string;
  domains: readonly string[];
  challengeType: 'http-01' | 'tlsalpn-01';
  directory: string;
  /** where the error came from when no problem was recorded: can the directory be reached at all? */
  probeDirectory?: () => Promise<string | null>;
  now?: () => number;
}

/**
 * The error an order ended with, as the class and message an operator acts on. `problems` are the
 * CA's, newest last; without one, the CA itself may be unreachable (probeDirectory says).
 */
export async function explainFailure(
  error: unknown,
  problems: readonly AcmeProblem[],
  context: FailureContext,
): Promise<AcmeFailure> {
  const problem = problems.at(-1);
  const base: AcmeErrorDetails = { certificate: context.certificate };
  // a fault of this machine (certs_dir full or read-only while answering a challenge): not the CA's
  const local = localCause(error);
  if (local !== null) return local instanceof AcmeStoreError ? local : storeError('write in certs_dir', local);
  if (problem === undefined) {
    const unreachable = await context.probeDirectory?.();
    const message = (error as Error)?.message ?? String(error);
    if (unreachable !== null && unreachable !== undefined)
      return new AcmeCaUnreachableError(
        `cannot reach the CA at ${context.directory}: ${unreachable}. Check this server's outbound HTTPS (firewall, proxy, DNS) and http.ssl.acme.directory; warmpool tries again on its own`,
        base,
        // acme-client's own TypeError when its retries end with no response ("reading 'config'"):
        // the log appends a cause's message, and that one says nothing to an operator
        error instanceof TypeError ? undefined : error,
      );
    return new AcmeOrderError(
      `ordering the certificate for ${context.domains.join(', ')} failed: ${message}`,
      base,
      error,
    );
  }
  const kind = problem.type.startsWith(PREFIX) ? problem.type.slice(PREFIX.length) : problem.type;
  const domain = (error as { acmeDomain?: string } | null)?.acmeDomain ?? problem.domain ?? context.certificate;
  const details: AcmeErrorDetails = { ...base, domain, problem: problem.type };
  const port = context.challengeType === 'http-01' ? 80 : 443;
  const said = problem.detail === '' ? '' : ` (the CA says: ${problem.detail})`;
  // a binding the CA refused at newAccount (pebble says unauthorized, others malformed)
  if (
    (error as { acmeAccount?: string } | null)?.acmeAccount === 'eab' &&
    (kind === 'unauthorized' || kind === 'malformed')
  )
    return new AcmeOrderError(
      `the CA at ${context.directory} refused the account's External Account Binding${said}: check http.ssl.acme.eab's key_id and mac_key against the CA's dashboard (a pair may be good for one account only: make a new one if this one was used before)`,
      details,
      error,
    );
  // a connection problem that is a name lookup (pebble, Boulder before its "dns" type): the DNS's fault
  const lookup = kind === 'connection' && /could not resolve|no such host|NXDOMAIN|SERVFAIL/i.test(problem.detail);
  switch (lookup ? 'dns' : kind) {
    case 'dns':
      return new AcmeDnsError(
        `${domain}: the CA could not find this name's address${said}. Point its DNS A/AAAA records at this server's public address (\`dig +short ${domain}\` should print it), wait for DNS to spread; warmpool tries again on its own`,
        details,
        error,
      );
    case 'connection':
      return new AcmeUnreachableError(
        `${domain}: the CA could not connect to port ${port} of this name's address${said}. Open port ${port} to the internet (firewall, cloud security group), and check that the DNS of ${domain} points at this server${context.challengeType === 'http-01' ? ' (or use challenge_type: tlsalpn-01 when only 443 can be open)' : ''}; warmpool tries again on its own`,
        details,
        error,
      );
    case 'unauthorized':
    case 'incorrectResponse':
    case 'tls':
      return new AcmeChallengeError(
        `${domain}: the CA reached a server for this name but not the answer warmpool gave${said}. The name's DNS points at another server, or something in front (a CDN, a proxy, a load balancer) ${context.challengeType === 'http-01' ? 'does not pass /.well-known/acme-challenge/ through' : 'ends TLS itself'}; point ${domain} here`,
        details,
        error,
      );
    case 'rateLimited': {
      const now = context.now?.() ?? Date.now();
      const until =
        problem.retryAfterMs === undefined
          ? 'the time in the CA message'
          : new Date(now + problem.retryAfterMs).toISOString().replace(/\.\d+Z$/, 'Z');
      return new AcmeRateLimitError(
        `the CA's rate limit was hit ordering ${context.domains.join(', ')}${said}; warmpool tries again after ${until}. Nothing else to do but wait; while trying a setup, use Let's Encrypt staging (use_production_endpoint: false)`,
        problem.retryAfterMs === undefined ? details : { ...details, retryAfterMs: problem.retryAfterMs },
        error,
      );
    }
    case 'serverInternal':
    case 'badNonce': {
      // the CA itself failed (maintenance, overload, a nonce it lost): nothing for the operator to fix
      const now = context.now?.() ?? Date.now();
      const when =
        problem.retryAfterMs === undefined
          ? 'on its own'
          : `after ${new Date(now + problem.retryAfterMs).toISOString().replace(/\.\d+Z$/, 'Z')} (its Retry-After)`;
      return new AcmeCaUnreachableError(
        `the CA at ${context.directory} could not serve the order for ${context.domains.join(', ')}${said}: it is unavailable or failing, not refusing the names; warmpool tries again ${when}`,
        problem.retryAfterMs === undefined ? details : { ...details, retryAfterMs: problem.retryAfterMs },
        error,
      );
    }
    case 'externalAccountRequired':
      return new AcmeOrderError(
        `the CA at ${context.directory} requires External Account Binding (EAB: ZeroSSL, Google, Sectigo ask for one)${said}: set http.ssl.acme.eab's key_id and mac_key to the ones the CA's dashboard gives for your account`,
        details,
        error,
      );
    case 'rejectedIdentifier':
    case 'caa':
      return new AcmeOrderError(
        `${domain}: the CA will not issue a certificate for this name${said}${kind === 'caa' ? '; its CAA DNS record names another CA: add this one, or remove the record' : '; remove it from http.ssl.acme.domains (or the site hosts)'}`,
        details,
        error,
      );
    default:
      return new AcmeOrderError(
        `ordering the certificate for ${context.domains.join(', ')} failed: ${kind}${said}`,
        details,
        error,
      );
  }
}
