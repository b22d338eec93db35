// The life of one automatic certificate (the names of one site):
//
//   boot      a stored certificate that is still good for these names and this CA is served at once,
//             with no order; otherwise a temporary self-signed one is served while the first order runs
//   order     under the certificate's lock in certs_dir; another server holding it (blue-green) is
//             waited for, and its result read back from the store instead of ordering twice
//   renewal   at two thirds of the lifetime (renewal.ts); the new pair replaces the old one for new
//             handshakes only (tls.ts), so open connections are not dropped
//   failure   the certificate served so far stays; the error says what to do; retried with backoff
//             (or after the CA's Retry-After)
//   partly    a name that fails validation does not hold back the others: while their certificate
//             is temporary or in the last sixth of its life, one is ordered for the names that
//             validate (served to them; the failing name keeps what it had), and the whole set is
//             retried on the failure's schedule (Caddy manages each name alone for the same reason)
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import type * as acme from 'acme-client';
import type { TlsContexts, Credentials } from '../tls.js';
import { credentialsFromPem } from '../tls.js';
import type { ChallengeResponder } from './challenges.js';
import { tryLock, type HeldLock, type LockOwner } from './lock.js';
import { orderCertificate, type ChallengeType } from './order.js';
import type { PlannedCertificate } from './plan.js';
import { type AcmeFailure, type AcmeProblem, explainFailure, recordProblems } from './problems.js';
import { callAt, isDue, type Lifetime, renewalTime, retryDelay } from './renewal.js';
import {
  type CertificateState,
  type CertificateStatus,
  issuerOf,
  lifetimeOf,
  sanNames,
  type ServedState,
} from './certificate-status.js';
import { type CertificateStore, isFileSystemError, type StoredCertificate, storeError } from './store.js';
import { createTemporaryCertificate } from './temporary-certificate.js';

/**
 * Where lines about this certificate go: the server prints `message` and logs `fields` under the
 * short `event` ("acme order failed"), as its other log lines do.
 */
export interface CertificateReporter {
  info(event: string, message: string, fields: Record<string, unknown>): void;
  success(event: string, message: string, fields: Record<string, unknown>): void;
  error(event: string, message: string, fields: Record<string, unknown>): void;
}

export interface ManagedCertificateDeps {
  store: CertificateStore;
  responder: ChallengeResponder;
  contexts: TlsContexts;
  /** the account client, opened once per process (and again after a failure) */
  account: () => Promise<acme.Client>;
  /** the account client failed: open a new one next time */
  dropAccount: () => void;
  directory: string;
  challengeType: ChallengeType;
  report: CertificateReporter;
  /** this certificate is also the server's default (no SNI, unknown names) */
  isDefault: boolean;
  /** how often to look whether another server released the lock */
  lockPollMs?: number;
  random?: () => number;
  now?: () => number;
}

interface Served {
  credentials: Credentials;
  /** the names it is served for: all the certificate's, or the ones that validated (partly) */
  names: readonly string[];
  /** the other CA directory it was stored from (not the configured one): served until this CA issues one */
  otherCa?: string;
  /** from the CA (stored or just issued) or made here while waiting */
  temporary: boolean;
  lifetime: Lifetime;
  /** ISO */
  issuer: string;
}

export class ManagedCertificate {
  readonly name: string;
  readonly domains: readonly string[];
  readonly #deps: ManagedCertificateDeps;
  readonly #now: () => number;
  readonly #random: () => number;
  #served: Served | null = null;
  /** what each name is served: a name left out of a partial issuance keeps what it had (temporary or an old one) */
  readonly #servedTo = new Map<string, { notAfter: number; temporary: boolean }>();
  #state: CertificateState = 'temporary';
  #nextRenewal: number | null = null;
  #nextAttempt: number | null = null;
  #failures = 0;
  #lastError: CertificateStatus['lastError'] = null;
  #cancelTimer: (() => void) | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;

  constructor(plan: PlannedCertificate, deps: ManagedCertificateDeps) {
    this.name = plan.name;
    this.domains = plan.domains;
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#random = deps.random ?? Math.random;
  }

  /** Why the stored certificate was not used at load (expired, unreadable, ...); null when none was stored. */
  unusedStored: string | null = null;
  /** Why the current version was not used when the one before it is served instead; else null. */
  olderVersionUsed: string | null = null;
  /** the next attempt the server before a restart had set, when its attempts were failing */
  #carriedNextAttempt: number | null = null;
  /** the CA's Retry-After the server before a restart was told: no attempt before it */
  #carriedNotBefore: number | null = null;

  /** Serves the stored certificate when it is still good, else a temporary one. Returns which. */
  async load(): Promise<'stored' | 'temporary'> {
    const failures = await this.#deps.store.readFailures(this.name);
    if (failures !== null && failures.directory === this.#deps.directory) {
      this.#failures = failures.attempts;
      this.#lastError = failures.lastError;
      this.#carriedNextAttempt = Date.parse(failures.nextAttempt);
      this.#carriedNotBefore = failures.notBefore === undefined ? null : Date.parse(failures.notBefore);
    }
    const found = await this.#deps.store.readCertificate(this.name);
    let stored = this.#usable(found, true);
    if (found !== null && stored === null) {
      this.unusedStored = this.#whyUnusable(found);
      // the version before it, which the store keeps, while it is still good
      stored = await this.#olderVersion();
      if (stored !== null) this.olderVersionUsed = this.unusedStored;
    }
    if (stored === null || stored.names.length < this.domains.length)
      stored = (await this.#storedUnderOtherName()) ?? stored;
    if (stored !== null && stored.names.length === this.domains.length) {
      this.#serve(stored);
      return 'stored';
    }
    const temporary = await createTemporaryCertificate(this.domains);
    const credentials = credentialsFromPem(temporary.cert, temporary.key);
    this.#serve({
      credentials,
      names: this.domains,
      temporary: true,
      lifetime: lifetimeOf(credentials.x509),
      issuer: 'self-signed',
    });
    if (stored === null) return 'temporary';
    // one stored for some of the names (issued partly, or the site gained names): theirs until the
    // whole set is issued; the others keep the temporary one
    this.#serve(stored);
    return 'stored';
  }

  /** The newest older version of this certificate that may be served, or null. */
  async #olderVersion(): Promise<Served | null> {
    const versions = await this.#deps.store.readOlderVersions(this.name).catch(() => []);
    for (const version of versions) {
      const served = this.#usable(version, true);
      if (served !== null) return served;
    }
    return null;
  }

  /**
   * A stored certificate for every one of these names kept under another of them: the folder is
   * named after the first name, so the same names listed in another order (hosts reordered) found
   * nothing and ordered a duplicate (Let's Encrypt allows 5 a week), serving a self-signed one
   * meanwhile. The next issuance is stored under this name.
   */
  async #storedUnderOtherName(): Promise<Served | null> {
    for (const other of this.domains) {
      if (other === this.name) continue;
      const found = await this.#deps.store.readCertificate(other).catch(() => null);
      const stored = this.#usable(found, true);
      if (stored !== null && stored.names.length === this.domains.length) {
        this.unusedStored = null;
        return stored;
      }
    }
    return null;
  }

  /** The CA directory the served certificate came from when it is not the configured one, else null. */
  get servedFromOtherCa(): string | null {
    return this.#served?.otherCa ?? null;
  }

  /** The names the served CA certificate covers (all once issued; fewer after a partial issuance). */
  get coveredDomains(): readonly string[] {
    const served = this.#served;
    return served === null || served.temporary ? [] : served.names;
  }

  /** Starts the schedule: order now (temporary or due), or wait for the renewal time. */
  start(): void {
    const served = this.#served;
    if (
      served === null ||
      served.temporary ||
      served.otherCa !== undefined ||
      served.names.length < this.domains.length ||
      isDue(served.lifetime, this.#now())
    ) {
      this.#schedule(this.#firstAttemptAt());
      return;
    }
    this.#nextRenewal = renewalTime(served.lifetime, this.#random());
    this.#schedule(this.#nextRenewal);
  }

  /**
   * No new attempt starts. One in flight is not waited for (a drain should not wait for a CA): if
   * the process exits first, its lock is taken over by the next server (holder gone).
   */
  stop(): void {
    this.#stopped = true;
    this.#cancelTimer?.();
  }

  /** The failure carried over a restart, when the first attempt waits for it (the start line says so). */
  get carriedFailure(): { code: string; nextAttempt: string } | null {
    const carried = this.#carriedNextAttempt;
    if (carried === null || Number.isNaN(carried) || carried <= this.#now() || this.#lastError === null) return null;
    // the backoff is cut short after a restart, never the CA's Retry-After
    const notBefore = this.#carriedNotBefore;
    const at = Math.max(
      Math.min(carried, this.#now() + RESTART_RETRY_MAX_MS),
      notBefore === null || Number.isNaN(notBefore) ? 0 : notBefore,
    );
    return { code: this.#lastError.code, nextAttempt: new Date(at).toISOString() };
  }

  /**
   * When the first attempt after a start runs: now, unless attempts were failing before the
   * restart; then when the server before had set, at most RESTART_RETRY_MAX_MS from now (a server
   * restarted after a fix does not wait the whole backoff; one in a restart loop asks the CA a few
   * times an hour, not at each start), but never before a Retry-After the CA gave.
   */
  #firstAttemptAt(): number {
    const carried = this.carriedFailure;
    if (carried === null) return this.#now();
    this.#nextAttempt = Date.parse(carried.nextAttempt);
    return this.#nextAttempt;
  }

  /** The attempt in flight, if any (tests wait for it). */
  get settled(): Promise<void> {
    return this.#running ?? Promise.resolve();
  }

  /** Runs an attempt now (tests, and a future `warmpool cert renew`); resolves when it ends. */
  async renewNow(): Promise<void> {
    this.#cancelTimer?.();
    this.#running ??= this.#attempt().finally(() => {
      this.#running = null;
    });
    await this.#running;
  }

  get state(): CertificateState {
    return this.#state;
  }

  get credentials(): Credentials | null {
    return this.#served?.credentials ?? null;
  }

  status(): CertificateStatus {
    const served = this.#served;
    const real = served !== null && !served.temporary;
    // a served certificate past its notAfter is said as such, whatever the schedule's state
    const expired =
      real && (this.#state === 'valid' || this.#state === 'partial') && served.lifetime.notAfter <= this.#now();
    return {
      name: this.name,
      domains: [...this.domains],
      state: expired ? 'expired' : this.#state,
      issuer: real ? served.issuer : null,
      serial: real ? served.credentials.serial : null,
      // the temporary certificate's too: it is what browsers are served (and what /metrics counts down)
      notAfter: served !== null ? new Date(served.lifetime.notAfter).toISOString() : null,
      nextRenewal: this.#nextRenewal === null ? null : new Date(this.#nextRenewal).toISOString(),
      lastError: this.#lastError,
      nextAttempt: this.#nextAttempt === null ? null : new Date(this.#nextAttempt).toISOString(),
    };
  }

  /**
   * What each name is served (the /metrics series), the temporary certificate included: the seconds
   * until that certificate expires (negative once it has), and its state. An attempt in flight
   * (ordering, renewing, waiting) is not a state here: the series says what visitors get.
   */
  servedByName(): Array<{ domain: string; expiresInSeconds: number; state: ServedState }> {
    const now = this.#now();
    const served = this.#served;
    const whole = served !== null && !served.temporary && served.names.length === this.domains.length;
    return this.domains.flatMap((domain) => {
      const to = this.#servedTo.get(domain);
      if (to === undefined) return []; // before load()
      const state: ServedState = to.temporary
        ? 'temporary'
        : to.notAfter <= now
          ? 'expired'
          : whole
            ? 'valid'
            : 'partial';
      return [{ domain, expiresInSeconds: (to.notAfter - now) / 1000, state }];
    });
  }

  #schedule(at: number): void {
    if (this.#stopped) return;
    this.#cancelTimer?.();
    this.#cancelTimer = callAt(
      at,
      () => {
        this.#cancelTimer = null;
        // an attempt says its own failures; one it could not say must not take the server down
        this.renewNow().catch((error: unknown) =>
          this.#deps.report.error(
            'acme attempt failed',
            `certificate ${this.name}: ${(error as Error)?.message ?? String(error)}`,
            {
              certificate: this.name,
              err: error,
            },
          ),
        );
      },
      this.#now,
    );
  }

  /**
   * One attempt:
   * 1. take the lock, or wait for the server holding it and use what it stored;
   * 2. with the lock, read the store again (another server may have just renewed);
   * 3. order, store, serve; on failure keep serving what we have and schedule a retry.
   */
  async #attempt(): Promise<void> {
    if (this.#stopped) return;
    const renewing = this.#served !== null && !this.#served.temporary;
    this.#state = renewing ? 'renewing' : 'ordering';
    let lock: HeldLock | null;
    try {
      lock = await this.#takeLock();
    } catch (error) {
      // certs_dir cannot be written (read-only, full, its owner changed): what is served stays
      await this.#failed(asStoreFailure(`take the order lock of ${this.name}`, error));
      return;
    }
    if (lock === null) return; // stopped while waiting, or the other server's certificate is in use
    try {
      const fresh = this.#usable(await this.#deps.store.readCertificate(this.name));
      if (
        fresh !== null &&
        fresh.names.length === this.domains.length &&
        fresh.credentials.serial !== this.#served?.credentials.serial &&
        !isDue(fresh.lifetime, this.#now())
      ) {
        this.#adopt(fresh, 'taken from certs_dir (another server stored it)');
        return;
      }
      if (this.#stopped) return;
      const how = this.#deps.challengeType === 'http-01' ? 'HTTP-01' : 'TLS-ALPN-01';
      this.#deps.report.info(
        renewing ? 'acme renewal started' : 'acme order started',
        `certificate ${this.name}: ${renewing ? 'renewing' : 'ordering'} for ${this.domains.join(', ')} from ${this.#deps.directory} (${how})`,
        { certificate: this.name, domains: this.domains },
      );
      const result = await recordProblems(async () =>
        orderCertificate(
          await this.#deps.account(),
          { domains: this.domains, challengeType: this.#deps.challengeType },
          this.#deps.responder,
        ),
      );
      if (!result.ok) {
        this.#deps.dropAccount();
        const failure = await this.#explain(result, this.domains);
        if (this.#healthyNamesNeedOne()) await this.#issuePartly(failure);
        await this.#failed(failure);
        return;
      }
      const credentials = credentialsFromPem(result.value.cert, result.value.key);
      await this.#deps.store.writeCertificate(this.name, result.value.cert, result.value.key, {
        directory: this.#deps.directory,
        domains: [...this.domains],
        storedAt: new Date(this.#now()).toISOString(),
      });
      this.#adopt(
        {
          credentials,
          names: this.domains,
          temporary: false,
          lifetime: lifetimeOf(credentials.x509),
          issuer: issuerOf(credentials.x509),
        },
        renewing ? 'renewed' : 'issued',
      );
    } catch (error) {
      // the store could not be written, or something unexpected: same treatment as a CA failure
      await this.#failed(asStoreFailure(`store the certificate ${this.name}`, error));
    } finally {
      await lock.release();
    }
  }

  /** The lock, or null when stopped or when waiting ended with another server's good certificate. */
  async #takeLock(): Promise<HeldLock | null> {
    const path = await this.#deps.store.lockPath(this.name);
    let announced = false;
    for (;;) {
      if (this.#stopped) return null;
      const result = await tryLock(path);
      if ('release' in result) return result;
      if (!announced) {
        announced = true;
        this.#state = 'waiting';
        this.#deps.report.info(
          'acme waiting for another server',
          `certificate ${this.name}: ${describeOwner(result)} is ordering it (certs_dir is shared); waiting for its result instead of ordering twice`,
          { certificate: this.name, owner: result },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, this.#deps.lockPollMs ?? 1_000));
      const stored = this.#usable(await this.#deps.store.readCertificate(this.name));
      if (
        stored !== null &&
        stored.names.length === this.domains.length &&
        stored.credentials.serial !== this.#served?.credentials.serial &&
        !isDue(stored.lifetime, this.#now())
      ) {
        this.#adopt(stored, 'taken from certs_dir (another server stored it)');
        return null;
      }
    }
  }

  #adopt(served: Served, how: string): void {
    this.#serve(served);
    if (this.#failures > 0) void this.#deps.store.writeFailures(this.name, null).catch(() => {});
    this.#failures = 0;
    this.#lastError = null;
    this.#nextAttempt = null;
    const next = renewalTime(served.lifetime, this.#random());
    this.#nextRenewal = next;
    this.#deps.report.success(
      how === 'issued' || how === 'renewed' ? `certificate ${how}` : 'certificate taken from certs_dir',
      `certificate ${this.name} ${how}: ${served.credentials.summary}, issuer ${served.issuer}; renewal from ${new Date(next).toISOString()}`,
      {
        certificate: this.name,
        serial: served.credentials.serial,
        notAfter: new Date(served.lifetime.notAfter).toISOString(),
      },
    );
    this.#schedule(next);
  }

  #serve(served: Served): void {
    this.#served = served;
    this.#state = this.#restingState();
    for (const name of served.names)
      this.#servedTo.set(name, { notAfter: served.lifetime.notAfter, temporary: served.temporary });
    this.#deps.contexts.setNames(served.names, served.credentials);
    if (this.#deps.isDefault) this.#deps.contexts.setDefault(served.credentials);
  }

  /** The state between attempts: what is served. */
  #restingState(): CertificateState {
    const served = this.#served;
    if (served === null || served.temporary) return 'temporary';
    return served.names.length < this.domains.length ? 'partial' : 'valid';
  }

  #explain(failed: { error: unknown; problems: AcmeProblem[] }, domains: readonly string[]): Promise<AcmeFailure> {
    return explainFailure(failed.error, failed.problems, {
      certificate: this.name,
      domains,
      challengeType: this.#deps.challengeType,
      directory: this.#deps.directory,
      probeDirectory: () => probeDirectory(this.#deps.directory),
    });
  }

  /**
   * Whether the names that validate should get a certificate of their own now: theirs is the
   * temporary one, or in the last sixth of its life (15 days of Let's Encrypt's 90). Before that the
   * whole set is retried and the current certificate serves every name meanwhile.
   */
  #healthyNamesNeedOne(): boolean {
    const served = this.#served;
    if (served === null || served.temporary) return true;
    const { notBefore, notAfter } = served.lifetime;
    return notAfter - this.#now() < (notAfter - notBefore) * PARTIAL_AT_REMAINING_FRACTION;
  }

  /**
   * The order for every name failed on one name's validation: orders for the others (again without
   * each name that fails next), serves and stores what is issued. Its own failures are only said:
   * the whole set's failure schedules the next attempt.
   */
  async #issuePartly(failure: AcmeFailure): Promise<void> {
    /** each failing name, and why: validation (DNS, port, answer) or the CA's refusal (policy, CAA) */
    const failing = new Map<string, string>();
    let error = failure;
    for (;;) {
      const name = failedName(error, this.domains);
      if (name === null || failing.has(name) || this.#stopped) return;
      failing.set(name, error.code === 'WP_SERVER_ACME_ORDER' ? 'refused by the CA' : 'failed validation');
      const healthy = this.domains.filter((domain) => !failing.has(domain));
      if (healthy.length === 0) return;
      const left = [...failing.keys()].join(', ');
      const without = [...failing].map(([domain, why]) => `${domain} (${why})`).join(', ');
      this.#deps.report.info(
        'acme order started',
        `certificate ${this.name}: ordering for ${healthy.join(', ')} without ${without}`,
        { certificate: this.name, domains: healthy, without: [...failing.keys()] },
      );
      const result = await recordProblems(async () =>
        orderCertificate(
          await this.#deps.account(),
          { domains: healthy, challengeType: this.#deps.challengeType },
          this.#deps.responder,
        ),
      );
      if (!result.ok) {
        this.#deps.dropAccount();
        error = await this.#explain(result, healthy);
        continue;
      }
      const credentials = credentialsFromPem(result.value.cert, result.value.key);
      await this.#deps.store.writeCertificate(this.name, result.value.cert, result.value.key, {
        directory: this.#deps.directory,
        domains: healthy,
        storedAt: new Date(this.#now()).toISOString(),
      });
      const served: Served = {
        credentials,
        names: healthy,
        temporary: false,
        lifetime: lifetimeOf(credentials.x509),
        issuer: issuerOf(credentials.x509),
      };
      this.#serve(served);
      this.#deps.report.success(
        'certificate issued',
        `certificate ${this.name} issued for ${healthy.join(', ')} only: ${credentials.summary}, issuer ${served.issuer}; ${left} keep${failing.size === 1 ? 's' : ''} what ${failing.size === 1 ? 'it' : 'they'} had until the whole set is issued`,
        {
          certificate: this.name,
          domains: healthy,
          serial: credentials.serial,
          notAfter: new Date(served.lifetime.notAfter).toISOString(),
        },
      );
      return;
    }
  }

  async #failed(error: AcmeFailure): Promise<void> {
    this.#failures++;
    const served = this.#served;
    const expiresInMs = served === null || served.temporary ? undefined : served.lifetime.notAfter - this.#now();
    const retryAfterMs = (error as { details?: { retryAfterMs?: number } }).details?.retryAfterMs;
    const delay = retryDelay(this.#failures, this.#random(), {
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      ...(expiresInMs === undefined ? {} : { expiresInMs }),
    });
    const at = this.#now() + delay;
    this.#nextAttempt = at;
    this.#state = this.#restingState();
    const message = (error as Error)?.message ?? String(error);
    const code = (error as { code?: string })?.code ?? 'WP_SERVER_ACME_ORDER';
    this.#lastError = { code, message, at: new Date(this.#now()).toISOString() };
    // kept for the next start (a write that fails only loses that)
    await this.#deps.store
      .writeFailures(this.name, {
        directory: this.#deps.directory,
        attempts: this.#failures,
        nextAttempt: new Date(at).toISOString(),
        ...(retryAfterMs === undefined ? {} : { notBefore: new Date(this.#now() + retryAfterMs).toISOString() }),
        lastError: this.#lastError,
      })
      .catch(() => {});
    const keeping = this.#keeping(served);
    const about = message.startsWith(`${this.name}: `) ? message : `${this.name}: ${message}`;
    this.#deps.report.error(
      'acme order failed',
      `certificate ${about} [${code}]; next attempt at ${new Date(at).toISOString()}, ${keeping}`,
      {
        certificate: this.name,
        code,
        attempt: this.#failures,
        err: error,
        nextAttempt: new Date(at).toISOString(),
      },
    );
    this.#schedule(at);
  }

  /** What the names are served until the next attempt, as the failure line says it. */
  #keeping(served: Served | null): string {
    if (served === null || served.temporary) return 'the temporary self-signed certificate stays until then';
    const expires = new Date(served.lifetime.notAfter).toISOString();
    if (served.names.length === this.domains.length) return `the current certificate stays (it expires ${expires})`;
    // issued partly: the names it lacks are served the temporary one, and browsers warn for them
    const missing = this.domains.filter((domain) => !served.names.includes(domain));
    return `${served.names.join(', ')} keep${served.names.length === 1 ? 's' : ''} the current certificate (it expires ${expires}); ${missing.join(', ')} ${missing.length === 1 ? 'is' : 'are'} served the temporary self-signed one until then`;
  }

  /**
   * A stored certificate this server may serve: parses, covers some of our names, from our CA (or,
   * `anyCa` at load, from the CA configured before: still good until this one issues), not expired.
   */
  #usable(stored: StoredCertificate | null, anyCa = false): Served | null {
    if (stored === null || stored.damaged !== undefined) return null;
    const otherCa = stored.meta.directory !== this.#deps.directory;
    if (otherCa && !anyCa) return null;
    let credentials: Credentials;
    try {
      credentials = credentialsFromPem(stored.cert, stored.key);
    } catch {
      return null;
    }
    const names = sanNames(credentials.x509);
    // the names it covers: all, or some (issued partly, or the site has gained names since)
    const covered = this.domains.filter((domain) => names.includes(domain));
    if (covered.length === 0) return null;
    const lifetime = lifetimeOf(credentials.x509);
    if (lifetime.notAfter <= this.#now()) return null;
    return {
      credentials,
      names: covered,
      temporary: false,
      lifetime,
      issuer: issuerOf(credentials.x509),
      ...(otherCa ? { otherCa: stored.meta.directory } : {}),
    };
  }

  #whyUnusable(stored: StoredCertificate): string {
    if (stored.damaged !== undefined) return `the stored one cannot be used: ${stored.damaged}`;
    let credentials: Credentials;
    try {
      credentials = credentialsFromPem(stored.cert, stored.key);
    } catch {
      return `the stored one cannot be read: ${damagedFile(stored)}`;
    }
    const { notAfter } = lifetimeOf(credentials.x509);
    if (notAfter <= this.#now()) return `the stored one expired ${new Date(notAfter).toISOString()}`;
    return 'the stored one names none of these names';
  }
}

/** Which of a stored version's PEM files is damaged: the certificate, the key, or the pair. */
function damagedFile(stored: StoredCertificate): string {
  const cert = join(stored.path, 'cert.pem');
  const key = join(stored.path, 'key.pem');
  try {
    new X509Certificate(stored.cert);
  } catch {
    return `${cert} is not a certificate`;
  }
  try {
    createPrivateKey(stored.key);
  } catch {
    return `${key} is not a private key`;
  }
  return `${key} is not the key of ${cert}`;
}

/** An error of the store's filesystem as AcmeStoreError (what to fix); any other failure as it is. */
function asStoreFailure(what: string, error: unknown): AcmeFailure {
  return isFileSystemError(error) ? storeError(what, error) : (error as AcmeFailure);
}

/** After a restart, the longest wait for an attempt the server before had set later (its backoff). */
const RESTART_RETRY_MAX_MS = 15 * 60_000;

/** Names whose certificate is ordered alone once the others' has less than this part of its life left. */
const PARTIAL_AT_REMAINING_FRACTION = 1 / 6;

/** The name a validation failure was about (a name of ours), or null when the failure is not one name's. */
function failedName(error: AcmeFailure, domains: readonly string[]): string | null {
  const details = (error as { details?: { domain?: string; problem?: string } }).details;
  const domain = details?.domain;
  if (domain === undefined || !domains.includes(domain)) return null;
  const code = (error as { code?: string }).code;
  if (code === 'WP_SERVER_ACME_DNS' || code === 'WP_SERVER_ACME_UNREACHABLE' || code === 'WP_SERVER_ACME_CHALLENGE')
    return domain;
  // the CA refuses this name (rejectedIdentifier, caa)
  return code === 'WP_SERVER_ACME_ORDER' && /:(rejectedIdentifier|caa)$/.test(details?.problem ?? '') ? domain : null;
}

/** The status line of http.ssl.cert (served to names without an automatic certificate). */
function describeOwner(owner: LockOwner): string {
  return owner.pid === 0 ? 'another server' : `warmpool pid ${owner.pid} on ${owner.host}`;
}

/** Null when the CA's directory answers; else why not ("connect ECONNREFUSED 127.0.0.1:14000"). */
export async function probeDirectory(directory: string): Promise<string | null> {
  try {
    const response = await fetch(directory, { signal: AbortSignal.timeout(15_000) });
    await response.body?.cancel();
    return response.ok ? null : `the directory answered HTTP ${response.status}`;
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return cause?.message ?? (error as Error).message;
  }
}
