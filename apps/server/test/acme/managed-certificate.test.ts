// What `warmpool cert status` says of a certificate whose renewals failed until past its notAfter:
// it is still served (nothing better is there), but said to be expired, not valid.
import { mkdtemp, rm } from 'node:fs/promises';
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

describe('ManagedCertificate status', () => {
  it('a served certificate past its notAfter is "expired", not "valid"', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wp-managed-'));
    dirs.push(dir);
    const store = new CertificateStore(dir);
    await store.prepare();
    const directory = 'https://ca.test/dir';
    const pair = await createTemporaryCertificate(['a.test']);
    await store.writeCertificate('a.test', pair.cert, pair.key, {
      directory,
      domains: ['a.test'],
      storedAt: new Date().toISOString(),
    });
    let now = Date.now();
    const quiet = { info: () => {}, success: () => {}, error: () => {} };
    const deps = {
      store,
      responder: {} as never,
      contexts: new TlsContexts(),
      account: () => Promise.reject(new Error('no CA in this test')),
      dropAccount: () => {},
      directory,
      challengeType: 'http-01' as const,
      report: quiet,
      isDefault: true,
      now: () => now,
    };
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
});
