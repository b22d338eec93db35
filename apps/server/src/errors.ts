// WP_SERVER_* errors of `warmpool serve` and the CLI (the admin socket's own WP_SERVER_ADMIN_*
// classes live in admin/protocol.ts). main.ts turns each into an exit code (EXIT_CODES).
import { WarmpoolError } from '@warmpool/pool';

/** Bad command-line arguments: unknown command or flag, a flag without its value. */
export class UsageError extends WarmpoolError<'WP_SERVER_USAGE'> {
  constructor(message: string) {
    super('WP_SERVER_USAGE', message);
  }
}

/** A listener could not bind: the address is in use, or the port needs root. */
export class ListenError extends WarmpoolError<'WP_SERVER_LISTEN_FAILED'> {
  constructor(listener: string, address: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | null)?.code;
    const why =
      code === 'EADDRINUSE'
        ? 'the address is already in use (another warmpool, nginx, or php -S?); stop it or change the address in the config'
        : code === 'EACCES'
          ? 'permission denied: ports below 1024 need root or CAP_NET_BIND_SERVICE; use a higher port or systemd socket activation'
          : code === 'EADDRNOTAVAIL'
            ? 'this machine has no such address; use 0.0.0.0, 127.0.0.1 or one of its own addresses'
            : ((cause as Error | null)?.message ?? String(cause));
    super('WP_SERVER_LISTEN_FAILED', `cannot listen on ${address} (${listener}): ${why}`, {
      cause,
      details: { listener, address },
    });
  }
}

/** A site's PHP workers did not boot; the message carries the pool's reason (and the worker's output). */
export class BootError extends WarmpoolError<'WP_SERVER_BOOT_FAILED'> {
  constructor(site: string, cause: unknown) {
    super(
      'WP_SERVER_BOOT_FAILED',
      `site ${site}: PHP workers failed to boot: ${(cause as Error | null)?.message ?? String(cause)}`,
      { cause, details: { site } },
    );
  }
}

/** The TLS certificate or key cannot be read or used (missing file, bad PEM, key does not match). */
export class TlsError extends WarmpoolError<'WP_SERVER_TLS'> {
  constructor(message: string, cause?: unknown) {
    super('WP_SERVER_TLS', message, { cause });
  }
}

/** `warmpool cert` could not make a certificate (openssl missing or failing). */
export class CertToolError extends WarmpoolError<'WP_SERVER_CERT_TOOL'> {
  constructor(message: string, cause?: unknown) {
    super('WP_SERVER_CERT_TOOL', message, { cause });
  }
}

/** LISTEN_FDS names sockets this process cannot use (not a socket, or more than the listeners). */
export class ListenFdsError extends WarmpoolError<'WP_SERVER_LISTEN_FDS'> {
  constructor(message: string) {
    super('WP_SERVER_LISTEN_FDS', message);
  }
}

// ---- automatic HTTPS (http.ssl.acme): each says what to do ----

/** What an ACME failure is about, for logs and `warmpool cert status`. */
export interface AcmeErrorDetails {
  [key: string]: unknown;
  /** the certificate (its first name) */
  certificate?: string;
  /** the name the CA failed on */
  domain?: string;
  /** the CA's problem type, e.g. urn:ietf:params:acme:error:connection */
  problem?: string;
  /** when to try again, when the CA said */
  retryAfterMs?: number;
}

/** http.ssl.acme.certs_dir cannot be created, read or written. */
export class AcmeStoreError extends WarmpoolError<'WP_SERVER_ACME_STORE'> {
  constructor(message: string, cause?: unknown) {
    super('WP_SERVER_ACME_STORE', message, { cause });
  }
}

/** The CA's DNS lookup of a name failed or found no address: the name does not point here yet. */
export class AcmeDnsError extends WarmpoolError<'WP_SERVER_ACME_DNS'> {
  constructor(message: string, details: AcmeErrorDetails, cause?: unknown) {
    super('WP_SERVER_ACME_DNS', message, { cause, details });
  }
}

/** The CA could not connect to this server for a name (port 80 or 443 closed, firewall, wrong address). */
export class AcmeUnreachableError extends WarmpoolError<'WP_SERVER_ACME_UNREACHABLE'> {
  constructor(message: string, details: AcmeErrorDetails, cause?: unknown) {
    super('WP_SERVER_ACME_UNREACHABLE', message, { cause, details });
  }
}

/** The CA reached a server for the name but got the wrong answer (another server, a proxy in front). */
export class AcmeChallengeError extends WarmpoolError<'WP_SERVER_ACME_CHALLENGE'> {
  constructor(message: string, details: AcmeErrorDetails, cause?: unknown) {
    super('WP_SERVER_ACME_CHALLENGE', message, { cause, details });
  }
}

/** The CA's rate limit was hit; `details.retryAfterMs` says how long to wait when the CA said. */
export class AcmeRateLimitError extends WarmpoolError<'WP_SERVER_ACME_RATE_LIMITED'> {
  constructor(message: string, details: AcmeErrorDetails, cause?: unknown) {
    super('WP_SERVER_ACME_RATE_LIMITED', message, { cause, details });
  }
}

/** The CA's directory cannot be reached (network, DNS, TLS, or the CA is down). */
export class AcmeCaUnreachableError extends WarmpoolError<'WP_SERVER_ACME_CA_UNREACHABLE'> {
  constructor(message: string, details: AcmeErrorDetails, cause?: unknown) {
    super('WP_SERVER_ACME_CA_UNREACHABLE', message, { cause, details });
  }
}

/** The CA refused the order for another reason (its message is kept: rejected name, CAA, account). */
export class AcmeOrderError extends WarmpoolError<'WP_SERVER_ACME_ORDER'> {
  constructor(message: string, details: AcmeErrorDetails, cause?: unknown) {
    super('WP_SERVER_ACME_ORDER', message, { cause, details });
  }
}

export const SERVER_ERROR_CODES = [
  'WP_SERVER_USAGE',
  'WP_SERVER_LISTEN_FAILED',
  'WP_SERVER_BOOT_FAILED',
  'WP_SERVER_TLS',
  'WP_SERVER_CERT_TOOL',
  'WP_SERVER_LISTEN_FDS',
  'WP_SERVER_ACME_STORE',
  'WP_SERVER_ACME_DNS',
  'WP_SERVER_ACME_UNREACHABLE',
  'WP_SERVER_ACME_CHALLENGE',
  'WP_SERVER_ACME_RATE_LIMITED',
  'WP_SERVER_ACME_CA_UNREACHABLE',
  'WP_SERVER_ACME_ORDER',
] as const;
