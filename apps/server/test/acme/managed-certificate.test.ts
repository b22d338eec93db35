// What `warmpool cert status` says of a certificate whose renewals failed until past its notAfter:
// it is still served (nothing better is there), but said to be expired, not valid.
import { X509Certificate } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ManagedCertificate } from '../../src/acme/managed-certificate.js';
import { CertificateStore } from '../../src/acme/store.js';
import { createTemporaryCertificate } from '../../src/acme/temporary-certificate.js';
import { TlsContexts } from '../../src/tls.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

const DIRECTORY = 'https://ca.test/dir';

async function newStore(): Promise<CertificateStore> {
  const dir = await mkdtemp(join(tmpdir(), 'wp-managed-'));
  dirs.push(dir);
  const store = new CertificateStore(dir);
  await store.prepare();
  return store;
}

/** What a ManagedCertificate needs, with no CA: these tests look at what it loads and says. */
function depsFor(store: CertificateStore, now: () => number) {
  return {
    store,
    responder: {} as never,
    contexts: new TlsContexts(),
    account: () => Promise.reject(new Error('no CA in this test')),
    dropAccount: () => {},
    directory: DIRECTORY,
    challengeType: 'http-01' as const,
    report: { info: () => {}, success: () => {}, error: () => {} },
    isDefault: true,
    now,
  };
}

describe('ManagedCertificate status', () => {
  it('a served certificate past its notAfter is "expired", not "valid"', async () => {
    const store = await newStore();
    const directory = DIRECTORY;
    const pair = await createTemporaryCertificate(['a.test']);
    await store.writeCertificate('a.test', pair.cert, pair.key, {
      directory,
      domains: ['a.test'],
      storedAt: new Date().toISOString(),
    });
    let now = Date.now();
    const deps = depsFor(store, () => now);
    const certificate = new ManagedCertificate({ name: 'a.test', domains: ['a.test'], site: null }, deps);
    expect(await certificate.load()).toBe('stored');
    const status = certificate.status();
    expect(status.state).toBe('valid');
    now = Date.parse(status.notAfter!) + 1_000;
    expect(certificate.status().state).toBe('expired');

    // a server started after that: the stored one is not used, and the line says why (not "none stored")
    const later = new ManagedCertificate(
      { name: 'a.test', domains: ['a.test'], site: null },
      { ...deps, now: () => now },
    );
    expect(await later.load()).toBe('temporary');
    expect(later.unusedStored).toBe(`the stored one expired ${status.notAfter}`);
  });

  it('the same names listed in another order use the certificate stored under the first name before: no order, no temporary one', async () => {
    const store = await newStore();
    const pair = await createTemporaryCertificate(['shop.test', 'www.shop.test']);
    await store.writeCertificate('shop.test', pair.cert, pair.key, {
      directory: DIRECTORY,
      domains: ['shop.test', 'www.shop.test'],
      storedAt: new Date().toISOString(),
    });
    const reordered = new ManagedCertificate(
      { name: 'www.shop.test', domains: ['www.shop.test', 'shop.test'], site: null },
      depsFor(store, () => Date.now()),
    );
    // before: "none stored yet", a temporary certificate and a duplicate order
    expect(await reordered.load()).toBe('stored');
    expect(reordered.status()).toMatchObject({ state: 'valid', serial: expect.any(String) });
    expect(reordered.unusedStored).toBeNull();
    // a set that is not the same (a name more) still orders: only some of its names are covered
    const grown = new ManagedCertificate(
      { name: 'api.shop.test', domains: ['api.shop.test', 'shop.test', 'www.shop.test'], site: null },
      depsFor(store, () => Date.now()),
    );
    await grown.load();
    expect(grown.status().state).toBe('temporary');
  });

  it('a damaged stored version is said with the file to look at, not as "none stored yet"', async () => {
    const store = await newStore();
    const pair = await createTemporaryCertificate(['d.test']);
    const path = await store.writeCertificate('d.test', pair.cert, pair.key, {
      directory: DIRECTORY,
      domains: ['d.test'],
      storedAt: new Date().toISOString(),
    });
    const loaded = async () => {
      const certificate = new ManagedCertificate(
        { name: 'd.test', domains: ['d.test'], site: null },
        depsFor(store, () => Date.now()),
      );
      expect(await certificate.load()).toBe('temporary');
      return certificate.unusedStored;
    };
    await writeFile(join(path, 'meta.json'), '{');
    expect(await loaded()).toBe(`the stored one cannot be used: ${join(path, 'meta.json')} is not JSON`);
    await writeFile(
      join(path, 'meta.json'),
      JSON.stringify({ directory: DIRECTORY, domains: ['d.test'], storedAt: '' }),
    );
    await writeFile(join(path, 'key.pem'), '');
    expect(await loaded()).toBe(`the stored one cannot be read: ${join(path, 'key.pem')} is not a private key`);
    await writeFile(join(path, 'cert.pem'), pair.cert.slice(0, 40));
    expect(await loaded()).toBe(`the stored one cannot be read: ${join(path, 'cert.pem')} is not a certificate`);
    await writeFile(join(path, 'cert.pem'), pair.cert);
    await writeFile(join(path, 'key.pem'), (await createTemporaryCertificate(['d.test'])).key);
    expect(await loaded()).toBe(
      `the stored one cannot be read: ${join(path, 'key.pem')} is not the key of ${join(path, 'cert.pem')}`,
    );
  });

  it('a damaged current version falls back to the version before it, while that one is good', async () => {
    const store = await newStore();
    const first = await createTemporaryCertificate(['v.test']);
    const meta = { directory: DIRECTORY, domains: ['v.test'], storedAt: new Date().toISOString() };
    await store.writeCertificate('v.test', first.cert, first.key, meta);
    const second = await createTemporaryCertificate(['v.test']);
    const current = await store.writeCertificate('v.test', second.cert, second.key, meta);
    await writeFile(join(current, 'cert.pem'), '');
    const certificate = new ManagedCertificate(
      { name: 'v.test', domains: ['v.test'], site: null },
      depsFor(store, () => Date.now()),
    );
    // before: the temporary certificate until the CA answered
    expect(await certificate.load()).toBe('stored');
    expect(certificate.credentials?.serial).toBe(new X509Certificate(first.cert).serialNumber);
    expect(certificate.olderVersionUsed).toBe(
      `the stored one cannot be read: ${join(current, 'cert.pem')} is not a certificate`,
    );
  });

  it('failed attempts carry over a restart: the first waits for the next one set before, at most 15 minutes', async () => {
    const store = await newStore();
    const now = Date.parse('2026-12-06T12:00:00Z');
    const lastError = { code: 'WP_SERVER_ACME_DNS', message: 'b.test: no address', at: '2026-12-06T11:59:00Z' };
    const deps = depsFor(store, () => now);
    const plan = { name: 'b.test', domains: ['b.test'], site: null };
    await store.writeFailures('b.test', {
      directory: deps.directory,
      attempts: 6,
      nextAttempt: '2026-12-06T12:05:00Z',
      lastError,
    });
    const soon = new ManagedCertificate(plan, deps);
    await soon.load();
    expect(soon.carriedFailure).toEqual({ code: 'WP_SERVER_ACME_DNS', nextAttempt: '2026-12-06T12:05:00.000Z' });
    expect(soon.status()).toMatchObject({ lastError });

    // a backoff of two hours: a server restarted after a fix waits 15 minutes at most
    await store.writeFailures('b.test', {
      directory: deps.directory,
      attempts: 9,
      nextAttempt: '2026-12-06T14:00:00Z',
      lastError,
    });
    const capped = new ManagedCertificate(plan, deps);
    await capped.load();
    expect(capped.carriedFailure?.nextAttempt).toBe('2026-12-06T12:15:00.000Z');

    // the CA's Retry-After (a rate limit) holds over a restart: no attempt before it
    await store.writeFailures('b.test', {
      directory: deps.directory,
      attempts: 1,
      nextAttempt: '2026-12-06T13:00:00Z',
      notBefore: '2026-12-06T13:00:00Z',
      lastError: { ...lastError, code: 'WP_SERVER_ACME_RATE_LIMITED' },
    });
    const limited = new ManagedCertificate(plan, deps);
    await limited.load();
    expect(limited.carriedFailure?.nextAttempt).toBe('2026-12-06T13:00:00.000Z');

    // failures at another CA do not count here
    await store.writeFailures('b.test', {
      directory: 'https://other.test/dir',
      attempts: 9,
      nextAttempt: '2026-12-06T14:00:00Z',
      lastError,
    });
    const elsewhere = new ManagedCertificate(plan, deps);
    await elsewhere.load();
    expect(elsewhere.carriedFailure).toBeNull();
  });
});

describe('ManagedCertificate: certs_dir that cannot be written', () => {
  it('an attempt that cannot take its lock keeps what is served, says WP_SERVER_ACME_STORE with the path, and schedules a retry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wp-managed-'));
    dirs.push(dir);
    // the lock's folder gone from under it: the lock file's write fails (ENOENT), as it does on a
    // read-only or full certs_dir (EROFS, ENOSPC), which a test cannot make as root without mount
    const gone = join(dir, 'certificates', 'c.test', 'gone');
    const store = new (class extends CertificateStore {
      override async lockPath(name: string): Promise<string> {
        await super.lockPath(name);
        return join(gone, 'order.lock');
      }
    })(dir);
    await store.prepare();
    const errors: Array<{ message: string; fields: Record<string, unknown> }> = [];
    const deps = {
      ...depsFor(store, () => Date.now()),
      report: {
        info: () => {},
        success: () => {},
        error: (_event: string, message: string, fields: Record<string, unknown>) => errors.push({ message, fields }),
      },
    };
    const certificate = new ManagedCertificate({ name: 'c.test', domains: ['c.test'], site: null }, deps);
    expect(await certificate.load()).toBe('temporary');
    // before: the error escaped the attempt (and, from the timer, took the whole server down)
    await certificate.renewNow();
    expect(certificate.status()).toMatchObject({ state: 'temporary', lastError: { code: 'WP_SERVER_ACME_STORE' } });
    expect(certificate.status().nextAttempt).not.toBeNull();
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toContain(gone);
    expect(errors[0]!.message).toMatch(/\[WP_SERVER_ACME_STORE\]/);
    expect(errors[0]!.fields.err).toBeInstanceOf(Error);
    certificate.stop();
  });
});

describe('ManagedCertificate: the failure line says what each name is served', () => {
  it('issued partly: the names it lacks are said to get the temporary certificate, not the current one', async () => {
    const store = await newStore();
    const pair = await createTemporaryCertificate(['p.test']);
    await store.writeCertificate('p.test', pair.cert, pair.key, {
      directory: DIRECTORY,
      domains: ['p.test'],
      storedAt: new Date().toISOString(),
    });
    const errors: string[] = [];
    const deps = {
      ...depsFor(store, () => Date.now()),
      report: { info: () => {}, success: () => {}, error: (_event: string, message: string) => errors.push(message) },
    };
    const certificate = new ManagedCertificate({ name: 'p.test', domains: ['p.test', 'q.test'], site: null }, deps);
    expect(await certificate.load()).toBe('stored');
    await certificate.renewNow(); // no CA here: the attempt fails
    certificate.stop();
    expect(errors).toHaveLength(1);
    // before: "the current certificate stays (it expires ...)", while q.test was served the self-signed one
    expect(errors[0]).toMatch(
      /p\.test keeps the current certificate \(it expires [^)]+\); q\.test is served the temporary self-signed one until then$/,
    );
  });
});

describe('ManagedCertificate: what each name is served (the /metrics series)', () => {
  it('a name served the temporary certificate has its expiry (7 days) and state temporary, not nothing', async () => {
    const store = await newStore();
    const now = Date.now();
    const certificate = new ManagedCertificate(
      { name: 'a.test', domains: ['a.test', 'www.a.test'], site: null },
      depsFor(store, () => now),
    );
    expect(await certificate.load()).toBe('temporary');
    const served = certificate.servedByName();
    expect(served.map((entry) => [entry.domain, entry.state])).toEqual([
      ['a.test', 'temporary'],
      ['www.a.test', 'temporary'],
    ]);
    // made after `now` was taken, so its end is up to that long after now + 7 days (a busy
    // machine took over a second to make the key once, and the bound of exactly 7 days failed)
    for (const entry of served) {
      expect(entry.expiresInSeconds).toBeGreaterThan(7 * 86_400 - 60);
      expect(entry.expiresInSeconds).toBeLessThanOrEqual(7 * 86_400 + 60);
    }
    // `cert status` gives the same end, with no issuer (it is no CA's)
    const status = certificate.status();
    expect(status).toMatchObject({ state: 'temporary', issuer: null, serial: null });
    expect((Date.parse(status.notAfter!) - now) / 1000).toBeCloseTo(served[0]!.expiresInSeconds, -1);
  });

  it('a stored certificate for some of the names: those are partial with its expiry, the others temporary; past its end, expired', async () => {
    const store = await newStore();
    // a week-long pair stands in for the CA's: its notAfter is what counts
    const pair = await createTemporaryCertificate(['a.test']);
    await store.writeCertificate('a.test', pair.cert, pair.key, {
      directory: DIRECTORY,
      domains: ['a.test'],
      storedAt: new Date().toISOString(),
    });
    let now = Date.now();
    const certificate = new ManagedCertificate(
      { name: 'a.test', domains: ['a.test', 'new.a.test'], site: null },
      depsFor(store, () => now),
    );
    expect(await certificate.load()).toBe('stored');
    const notAfter = Date.parse(certificate.status().notAfter!);
    expect(certificate.servedByName()).toEqual([
      { domain: 'a.test', expiresInSeconds: (notAfter - now) / 1000, state: 'partial' },
      { domain: 'new.a.test', expiresInSeconds: expect.any(Number), state: 'temporary' },
    ]);
    now = notAfter + 5_000;
    expect(certificate.servedByName()[0]).toEqual({ domain: 'a.test', expiresInSeconds: -5, state: 'expired' });
  });
});

describe('cert status exit code', () => {
  it('is healthy for a CA certificate with no failed attempt, never for the temporary one, which now has its end date too', async () => {
    const { servesHealthy } = await import('../../src/commands/cert.js');
    const store = await newStore();
    const temporary = new ManagedCertificate(
      { name: 'a.test', domains: ['a.test'], site: null },
      depsFor(store, Date.now),
    );
    await temporary.load();
    const status = temporary.status();
    expect(status.notAfter).not.toBeNull();
    expect(servesHealthy(status)).toBe(false);
    // the first order in flight, nothing failed yet: still the temporary one
    expect(servesHealthy({ ...status, state: 'ordering', lastError: null })).toBe(false);
    expect(servesHealthy({ state: 'valid', issuer: 'CN=R11', lastError: null })).toBe(true);
    expect(servesHealthy({ state: 'renewing', issuer: 'CN=R11', lastError: null })).toBe(true);
    expect(servesHealthy({ state: 'expired', issuer: 'CN=R11', lastError: null })).toBe(false);
    expect(servesHealthy({ state: 'file', issuer: null, lastError: null })).toBe(true);
    // a file certificate nobody renews here: healthy until it expires, then exit 1 for the monitoring check
    const file = { state: 'file' as const, issuer: 'CN=R11', lastError: null, notAfter: '2026-01-01T00:00:00.000Z' };
    expect(servesHealthy(file, Date.parse('2025-12-31T23:00:00Z'))).toBe(true);
    expect(servesHealthy(file, Date.parse('2026-01-01T00:00:01Z'))).toBe(false);
    // nor before its start: browsers refuse it too
    const later = { ...file, notBefore: '2025-12-01T00:00:00.000Z' };
    expect(servesHealthy(later, Date.parse('2025-11-30T00:00:00Z'))).toBe(false);
    expect(servesHealthy(later, Date.parse('2025-12-02T00:00:00Z'))).toBe(true);
  });
});
