// One certificate order with acme-client (RFC 8555 7.4), the names of one site in it:
// 1. the account: its key from certs_dir (made once per CA), registered or found again by newAccount;
// 2. a new order for the names; for each pending authorization, publish the answer to the chosen
//    challenge (responder), tell the CA to check, wait for "valid", withdraw the answer;
// 3. a fresh P-256 key and a CSR for the names; finalize; download the chain.
// The CA's own pre-check (acme-client's verifyChallenge) is skipped: it resolves names through this
// machine's DNS, which can differ from the CA's, and the CA's verdict is the one that counts.
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import * as acme from 'acme-client';
import type { ChallengeResponder } from './challenges.js';
import { takeProblem } from './problems.js';
import type { CertificateStore } from './store.js';

export type ChallengeType = 'http-01' | 'tlsalpn-01';

export interface AcmeAccount {
  directory: string;
  email?: string;
  /** External Account Binding (http.ssl.acme.eab): sent when the account is created */
  eab?: { key_id: string; mac_key: string };
  /** said when the stored account key was damaged and a new one was made */
  notice?: (message: string) => void;
}

export interface OrderRequest {
  domains: readonly string[];
  challengeType: ChallengeType;
}

export interface IssuedCertificate {
  /** the chain, leaf first */
  cert: string;
  key: string;
}

/** acme-client spells TLS-ALPN-01 as the RFC does; RoadRunner's config says tlsalpn-01. */
const WIRE_TYPE: Record<ChallengeType, string> = { 'http-01': 'http-01', 'tlsalpn-01': 'tls-alpn-01' };

/** Polling an order or challenge: first look after 0.5 s, then doubling up to 5 s, about two minutes in all. */
const POLL = { backoffAttempts: 28, backoffMin: 500, backoffMax: 5_000 };

export function createPrivateKeyPem(): string {
  return generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
}

/**
 * A client for the account of `account.directory`:
 * 1. the key is certs_dir's (made once per CA; another server sharing the folder may have made it);
 * 2. an account with that key is looked up (onlyReturnExisting); found, its contact is brought up to
 *    date when an email is set (acme-client would otherwise send an update without any change, which
 *    CAs refuse);
 * 3. not found, it is created, agreeing to the CA's terms of service, as certbot --agree-tos, Caddy
 *    and RoadRunner do.
 */
export async function openAccount(store: CertificateStore, account: AcmeAccount): Promise<acme.Client> {
  const accountKey = await store.accountKey(account.directory, createPrivateKeyPem, {
    usable: isPrivateKeyPem,
    moved: (file, aside) =>
      account.notice?.(
        `http.ssl.acme: the account key ${file} could not be read (damaged); it was moved to ${aside} and a new account is made with a new key`,
      ),
  });
  const client = new acme.Client({
    directoryUrl: account.directory,
    accountKey,
    ...POLL,
    ...(account.eab === undefined
      ? {}
      : { externalAccountBinding: { kid: account.eab.key_id, hmacKey: account.eab.mac_key } }),
  });
  const contact = account.email === undefined ? undefined : [`mailto:${account.email}`];
  let existing: Awaited<ReturnType<acme.Client['createAccount']>> | null = null;
  try {
    existing = await client.createAccount({ onlyReturnExisting: true });
  } catch (error) {
    if (!takeProblem('accountDoesNotExist')) throw error;
  }
  if (existing === null) {
    try {
      await client.createAccount({ termsOfServiceAgreed: true, ...(contact ? { contact } : {}) });
    } catch (error) {
      // the CA refused the account itself, with or without a binding: the message says which to fix
      if (error !== null && typeof error === 'object')
        (error as { acmeAccount?: 'eab' | 'plain' }).acmeAccount = account.eab === undefined ? 'plain' : 'eab';
      throw error;
    }
  } else if (contact !== undefined && JSON.stringify(existing.contact ?? []) !== JSON.stringify(contact))
    await client.updateAccount({ contact });
  return client;
}

function isPrivateKeyPem(pem: string): boolean {
  try {
    createPrivateKey(pem);
    return true;
  } catch {
    return false;
  }
}

export async function orderCertificate(
  client: acme.Client,
  request: OrderRequest,
  responder: ChallengeResponder,
): Promise<IssuedCertificate> {
  const order = await client.createOrder({ identifiers: request.domains.map((value) => ({ type: 'dns', value })) });
  const authorizations = await client.getAuthorizations(order);
  const results = await Promise.allSettled(
    authorizations.map((authz) => satisfy(client, authz, request.challengeType, responder)),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed !== undefined) throw failed.reason;

  const key = createPrivateKeyPem();
  const [, csr] = await acme.crypto.createCsr({ commonName: request.domains[0]!, altNames: [...request.domains] }, key);
  const finalized = await client.finalizeOrder(order, csr);
  const cert = await client.getCertificate(finalized);
  return { cert, key };
}

/** Proves one name; a failure carries the name (acmeDomain) for the error message. */
async function satisfy(
  client: acme.Client,
  authz: acme.Authorization,
  type: ChallengeType,
  responder: ChallengeResponder,
): Promise<void> {
  const domain = authz.identifier.value;
  if (authz.status === 'valid') return; // proved recently for this account: the CA reuses it
  try {
    const challenge = authz.challenges.find((c) => c.type === WIRE_TYPE[type]);
    if (challenge === undefined)
      throw new Error(
        `the CA offers no ${type} challenge for ${domain} (it offers ${authz.challenges.map((c) => c.type).join(', ')}); set http.ssl.acme.challenge_type to one of those`,
      );
    const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
    if (type === 'http-01') await responder.addHttp(challenge.token, keyAuthorization);
    else await responder.addTlsAlpn(authz, keyAuthorization);
    try {
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(challenge);
    } finally {
      if (type === 'http-01') await responder.removeHttp(challenge.token);
      else responder.removeTlsAlpn(domain);
    }
  } catch (error) {
    if (error !== null && typeof error === 'object') (error as { acmeDomain?: string }).acmeDomain ??= domain;
    throw error;
  }
}
