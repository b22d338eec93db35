// `warmpool cert [--out DIR] [--host NAME]... [--days N] [--force]`: a self-signed certificate and
// key for development (never for production: browsers warn, and nothing can revoke it). Made with
// the `openssl` command line tool (ECDSA P-256, SHA-256), which Debian/Ubuntu have as the `openssl`
// package; no JavaScript crypto dependency is added for a dev convenience.
//
// `warmpool cert status [-c FILE] [--json]`: what the running server serves (its admin socket): each
// certificate's names, state, issuer, expiry, next renewal, and the last ACME error with what to do.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { adminRequest, exitCodeOf, type AdminCommandArgs, type RunContext } from '../admin/client.js';
import type { CertificateStatus } from '../acme/certificate-status.js';
import type { CertsData } from '../admin/protocol.js';
import { CertToolError, UsageError } from '../errors.js';
import { EXIT_CONFIG, EXIT_FAILED, EXIT_OK } from '../exit-codes.js';
import type { CliOutput } from '../output.js';

const run$ = promisify(execFile);

export interface CertArgs {
  out?: string;
  hosts?: string[];
  days?: string;
  force?: boolean;
}

export const DEFAULT_CERT_HOSTS = ['localhost', '127.0.0.1', '::1'];
export const DEFAULT_CERT_DAYS = 825; // the longest validity Apple platforms accept for a TLS server cert
export const CERT_FILE = 'cert.pem';
export const KEY_FILE = 'key.pem';

export async function run(args: CertArgs, out: CliOutput): Promise<number> {
  let made: { cert: string; key: string; hosts: string[]; days: number };
  try {
    made = await makeCertificate(args);
  } catch (error) {
    out.error((error as Error).message);
    return error instanceof UsageError ? EXIT_CONFIG : EXIT_FAILED;
  }
  out.success(
    `wrote ${made.cert} and ${made.key} (self-signed, for development: ${made.hosts.join(', ')}; valid ${made.days} days)`,
  );
  out.info('use them in warmpool.yaml:');
  out.raw(`http:\n  ssl:\n    address: 127.0.0.1:8443\n    cert: ${made.cert}\n    key: ${made.key}`);
  // the names it holds: localhost by default, else the first --host (which may not resolve here yet)
  const host = made.hosts.includes('localhost') ? 'localhost' : made.hosts[0]!;
  const resolveHere = host === 'localhost' || /^[\d.]+$|:/.test(host) ? '' : ` --resolve ${host}:8443:127.0.0.1`;
  out.detail(`curl trusts it with: curl --cacert ${made.cert}${resolveHere} https://${host}:8443/`);
  return EXIT_OK;
}

export async function makeCertificate(
  args: CertArgs,
): Promise<{ cert: string; key: string; hosts: string[]; days: number }> {
  const dir = resolve(args.out ?? '.');
  const hosts = args.hosts !== undefined && args.hosts.length > 0 ? args.hosts : DEFAULT_CERT_HOSTS;
  for (const host of hosts) {
    if (
      isIP(host) === 0 &&
      !/^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)
    ) {
      throw new UsageError(`--host ${host} is not a host name or IP address`);
    }
  }
  const days = args.days === undefined ? DEFAULT_CERT_DAYS : Number(args.days);
  if (!Number.isInteger(days) || days < 1 || days > 3650)
    throw new UsageError(`--days must be a whole number from 1 to 3650, got ${args.days}`);
  const cert = join(dir, CERT_FILE);
  const key = join(dir, KEY_FILE);
  if (args.force !== true) {
    for (const file of [cert, key])
      if (existsSync(file)) throw new UsageError(`${file} exists; pass --force to replace it, or --out another folder`);
  }
  await mkdir(dir, { recursive: true });
  const san = hosts.map((h) => (isIP(h) === 0 ? `DNS:${h}` : `IP:${h}`)).join(',');
  const cn = hosts.find((h) => isIP(h) === 0) ?? hosts[0]!;
  try {
    await run$('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-sha256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      String(days),
      '-subj',
      `/CN=${cn}`,
      '-addext',
      `subjectAltName=${san}`,
      '-addext',
      'extendedKeyUsage=serverAuth',
    ]);
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT')
      throw new CertToolError(
        'openssl is not installed: run `apt-get install -y openssl` (or make the pair with mkcert / certbot) and try again',
        error,
      );
    throw new CertToolError(`openssl failed: ${(err.stderr ?? err.message).trim()}`, error);
  }
  await chmod(key, 0o600);
  return { cert, key, hosts, days };
}

/** `warmpool cert status`: exit 0 when every name has its CA certificate and no attempt failed, 1 otherwise. */
export async function runStatus(args: AdminCommandArgs, out: CliOutput, context: RunContext = {}): Promise<number> {
  let data: CertsData;
  try {
    data = await adminRequest(args.socket, { cmd: 'certs' }, undefined, { timeoutMs: 10_000 });
  } catch (error) {
    out.error((error as Error).message);
    return exitCodeOf(error);
  }
  if (args.json === true) {
    (context.stdout ?? process.stdout).write(`${JSON.stringify(data)}\n`);
    return EXIT_OK;
  }
  if (data.certificates.length === 0) {
    out.info('this server serves no HTTPS (no http.ssl in its config)');
    return EXIT_OK;
  }
  const day = (iso: string | null) => (iso === null ? '-' : iso.replace(/:\d\d\.\d+Z$|:\d\dZ$/, 'Z').replace('T', ' '));
  out.table(
    data.certificates.map((c) => [
      c.domains.join(', '),
      c.state,
      c.issuer ?? '-',
      day(c.notAfter),
      c.state === 'file' ? 'by you (SIGHUP reloads)' : day(c.nextAttempt ?? c.nextRenewal),
    ]),
    ['names', 'state', 'issuer', 'expires', 'next renewal'],
  );
  for (const c of data.certificates)
    if (c.state === 'file' && !servesHealthy(c))
      out.error(
        notYetValid(c)
          ? `${c.name}: not valid before ${day(c.notBefore ?? null)}: browsers refuse it until then (is this machine's clock right?)`
          : `${c.name}: expired on ${day(c.notAfter)}: browsers refuse it. Renew it (certbot renew, or your CA) and reload (SIGHUP or \`warmpool reload\`)`,
      );
  for (const c of data.certificates)
    if (c.lastError !== null) {
      const about = c.lastError.message.startsWith(`${c.name}: `) ? '' : `${c.name}: `;
      out.error(`${about}${c.lastError.message} [${c.lastError.code}] (${c.lastError.at})`);
    }
  if (!data.automatic)
    out.info('certificates come from http.ssl.cert / key: add http.ssl.acme to get them automatically');
  return data.certificates.every((c) => servesHealthy(c)) ? EXIT_OK : EXIT_FAILED;
}

/**
 * What `cert status` exits 0 for: a CA's certificate is served (renewing counts; the temporary one,
 * which has its end date too, has no issuer) and the last attempt did not fail; a file's, until it
 * expires (nobody renews it here: a monitoring check must say so).
 */
export function servesHealthy(
  c: Pick<CertificateStatus, 'state' | 'issuer' | 'lastError'> & {
    notAfter?: string | null;
    notBefore?: string | null;
  },
  now: number = Date.now(),
): boolean {
  if (c.state === 'file') return (c.notAfter == null || Date.parse(c.notAfter) > now) && !notYetValid(c, now);
  return c.issuer !== null && c.state !== 'expired' && c.lastError === null;
}

function notYetValid(c: { notBefore?: string | null }, now: number = Date.now()): boolean {
  return c.notBefore != null && Date.parse(c.notBefore) > now;
}
