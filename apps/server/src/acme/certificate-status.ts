// What `warmpool cert status` shows of a certificate, and what it reads from one: light enough for
// the server to load at every start (the ACME client itself is loaded only when http.ssl.acme is set).
import type { X509Certificate } from 'node:crypto';
import type { Credentials } from '../tls.js';
import type { Lifetime } from './renewal.js';

/** valid | partial (issued for the names that validated; the others keep what they had, see lastError) | expired (renewals failed past its notAfter; still served, browsers refuse it) | temporary (self-signed while the first order runs) | ordering | renewing | waiting (for another server's order) | file (http.ssl.cert: renewed by you) */
export type CertificateState =
  | 'valid'
  | 'partial'
  | 'expired'
  | 'temporary'
  | 'ordering'
  | 'renewing'
  | 'waiting'
  | 'file';

/**
 * The states of what a name is served (/metrics' warmpool_cert_state): an attempt in flight
 * (ordering, renewing, waiting) is none of them, the certificate served stays what it was.
 */
export const SERVED_STATES = [
  'valid',
  'partial',
  'expired',
  'temporary',
] as const satisfies readonly CertificateState[];
export type ServedState = (typeof SERVED_STATES)[number];

/** One line of `warmpool cert status` (the admin socket's `certs` answer). */
export interface CertificateStatus {
  name: string;
  domains: string[];
  state: CertificateState;
  /** "CN=R11, O=Let's Encrypt, C=US"; null while only the temporary certificate is served */
  issuer: string | null;
  serial: string | null;
  /** ISO times */
  notAfter: string | null;
  /** a file certificate's start (ISO): one not valid yet is refused by browsers too */
  notBefore?: string | null;
  nextRenewal: string | null;
  /** the last failure, kept until an order succeeds */
  lastError: { code: string; message: string; at: string } | null;
  /** when the next attempt after a failure runs */
  nextAttempt: string | null;
}

export function fileCertificateStatus(credentials: Credentials, file: string): CertificateStatus {
  const { notBefore, notAfter } = lifetimeOf(credentials.x509);
  return {
    name: file,
    domains: sanNames(credentials.x509),
    state: 'file',
    issuer: issuerOf(credentials.x509),
    serial: credentials.serial,
    notAfter: new Date(notAfter).toISOString(),
    notBefore: new Date(notBefore).toISOString(),
    nextRenewal: null,
    lastError: null,
    nextAttempt: null,
  };
}

export function lifetimeOf(x509: X509Certificate): Lifetime {
  return { notBefore: Date.parse(x509.validFrom), notAfter: Date.parse(x509.validTo) };
}

export function issuerOf(x509: X509Certificate): string {
  return x509.issuer.split('\n').reverse().join(', ');
}

export function sanNames(x509: X509Certificate): string[] {
  return (x509.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4).toLowerCase());
}
