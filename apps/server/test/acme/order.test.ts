// order.ts against pebble (the ACME test CA, Debian package): the account found again by its key
// with or without an email, and one order answered by HTTP-01 on a real listener.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as acme from 'acme-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../../test/helpers/free-port.js';
import { hasPebble, startPebble, type Pebble } from '../../../../test/helpers/pebble.js';
import { ChallengeResponder, createHttpChallengeServer } from '../../src/acme/challenges.js';
import { openAccount, orderCertificate } from '../../src/acme/order.js';
import { installProblemRecorder, recordProblems } from '../../src/acme/problems.js';
import { CertificateStore, slugOf } from '../../src/acme/store.js';

const available = await hasPebble();
let pebble: Pebble;
let dir: string;
let store: CertificateStore;
let http: Server;
let responder: ChallengeResponder;

beforeAll(async () => {
  if (!available) return;
  const httpPort = await freePort();
  pebble = await startPebble({ httpPort, tlsPort: await freePort() });
  // pebble's HTTPS is signed by the test CA (the server gets NODE_EXTRA_CA_CERTS; this process
  // read its CAs at startup already, so acme-client's requests are given the CA directly)
  acme.axios.defaults.httpsAgent = new HttpsAgent({ ca: await readFile(pebble.caFile) });
  installProblemRecorder();
  dir = await mkdtemp(join(tmpdir(), 'wp-acme-order-'));
  store = new CertificateStore(dir);
  await store.prepare();
  responder = new ChallengeResponder(store);
  http = createHttpChallengeServer(responder);
  await new Promise<void>((resolve) => http.listen(httpPort, '127.0.0.1', resolve));
});
afterAll(async () => {
  if (!available) return;
  await new Promise((resolve) => http.close(resolve));
  await pebble.stop();
  acme.axios.defaults.httpsAgent = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!available)('order.ts against pebble', () => {
  it('opens the account of the stored key again, with or without an email (no empty update)', async () => {
    const directory = pebble.directory;
    const urls: string[] = [];
    for (const email of [undefined, undefined, 'ops@example.com', 'ops@example.com', 'new@example.com']) {
      const result = await recordProblems(() => openAccount(store, { directory, ...(email ? { email } : {}) }));
      if (!result.ok) throw result.error;
      expect(result.problems).toEqual([]);
      urls.push(result.value.getAccountUrl());
    }
    expect(new Set(urls).size).toBe(1);
  });

  it('a damaged account key is moved aside and a new account made, with a notice naming both files', async () => {
    const own = await mkdtemp(join(tmpdir(), 'wp-acme-damaged-'));
    try {
      const damagedStore = new CertificateStore(own);
      await damagedStore.prepare();
      const folder = join(own, 'accounts', slugOf(pebble.directory));
      await mkdir(folder, { recursive: true });
      // a truncated PEM: before, every order failed with "DECODER routines::unsupported" (WP_SERVER_ACME_ORDER)
      await writeFile(join(folder, 'account.key'), '-----BEGIN PRIVATE KE', { mode: 0o600 });
      const notices: string[] = [];
      const result = await recordProblems(() =>
        openAccount(damagedStore, { directory: pebble.directory, notice: (message) => notices.push(message) }),
      );
      if (!result.ok) throw result.error;
      expect(notices).toHaveLength(1);
      expect(notices[0]).toContain(join(folder, 'account.key'));
      const files = await readdir(folder);
      const aside = files.find((name) => name.startsWith('account.key.damaged-'));
      expect(aside).toBeDefined();
      expect(await readFile(join(folder, aside!), 'utf8')).toBe('-----BEGIN PRIVATE KE');
      createPrivateKey(await readFile(join(folder, 'account.key'), 'utf8'));
    } finally {
      await rm(own, { recursive: true, force: true });
    }
  });

  it('orders a certificate for two names, answering HTTP-01 on a listener', async () => {
    const client = await openAccount(store, { directory: pebble.directory });
    const issued = await orderCertificate(
      client,
      { domains: ['o.test', 'www.o.test'], challengeType: 'http-01' },
      responder,
    );
    const leaf = new X509Certificate(issued.cert);
    expect(leaf.subjectAltName).toBe('DNS:o.test, DNS:www.o.test');
    expect(leaf.checkPrivateKey(createPrivateKey(issued.key))).toBe(true);
    expect(responder.pending()).toBe(false);
  });
});
