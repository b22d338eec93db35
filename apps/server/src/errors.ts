// Every WP_SERVER_* error of `warmpool serve`, the CLI and the admin socket, one class per code;
// the README's Errors table lists the same codes (test/errors.test.ts). main.ts turns each into an
// exit code (EXIT_CODES).
import type { SiteOptions } from '@warmpool/config';
import { WarmpoolError } from '@warmpool/pool';
import { addressProblem } from './listen-addresses.js';

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
          : (addressProblem(code) ?? (cause as Error | null)?.message ?? String(cause));
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
  /** `key`: the config key the problem is about (http.ssl.cert, http.ssl.key, http.ssl.ciphers) */
  constructor(message: string, cause?: unknown, key = 'http.ssl.cert') {
    super('WP_SERVER_TLS', message, { cause, details: { key } });
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

// ---- the admin socket ----

/**
 * `warmpool serve` found a live admin socket: another server owns this configuration. `holder`:
 * what that server's ping said (its pid and config file), when it answered one.
 */
export class AlreadyRunningError extends WarmpoolError<'WP_SERVER_ALREADY_RUNNING'> {
  constructor(path: string, holder?: { pid?: number; config?: string }) {
    const who =
      holder?.pid === undefined
        ? ''
        : ` (pid ${holder.pid}${holder.config === undefined ? '' : `, started from ${holder.config}`})`;
    super(
      'WP_SERVER_ALREADY_RUNNING',
      holder === undefined
        ? `another warmpool is running (admin socket ${path} answers); stop it first, or give this server its own admin.socket in warmpool.yaml`
        : `another warmpool${who} answers on the admin socket ${path}: stop it first, or give this server its own admin.socket`,
      { details: { path, ...holder } },
    );
  }
}

/** The admin socket path cannot be used (not a socket, no such folder, ...). */
export class AdminSocketError extends WarmpoolError<'WP_SERVER_ADMIN_SOCKET'> {
  constructor(message: string, path: string, cause?: unknown) {
    super('WP_SERVER_ADMIN_SOCKET', message, { cause, details: { path } });
  }
}

/** The CLI could not reach the server's admin socket: not running, stale socket, or wrong path. */
export class AdminUnreachableError extends WarmpoolError<'WP_SERVER_ADMIN_UNREACHABLE'> {
  constructor(message: string, path: string, cause?: unknown) {
    super('WP_SERVER_ADMIN_UNREACHABLE', message, { cause, details: { path } });
  }
}

/** The admin socket exists but this user may not connect (it is 0600, owned by the server's user). */
export class AdminDeniedError extends WarmpoolError<'WP_SERVER_ADMIN_DENIED'> {
  constructor(message: string, path: string, cause?: unknown) {
    super('WP_SERVER_ADMIN_DENIED', message, { cause, details: { path } });
  }
}

/** A request line the server cannot act on (not JSON, unknown command, bad argument). */
export class AdminBadRequestError extends WarmpoolError<'WP_SERVER_ADMIN_BAD_REQUEST'> {
  constructor(message: string) {
    super('WP_SERVER_ADMIN_BAD_REQUEST', message);
  }
}

/** A command named a site the server does not run, or named none when several run. */
export class UnknownSiteError extends WarmpoolError<'WP_SERVER_UNKNOWN_SITE'> {
  constructor(message: string, site: string | undefined) {
    super('WP_SERVER_UNKNOWN_SITE', message, { details: site === undefined ? {} : { site } });
  }
}

/**
 * The site passes PHP to an external php-fpm (fastcgi.pass): its processes are php-fpm's, so there is
 * nothing of warmpool's to reset or tune there.
 */
export class PassSiteError extends WarmpoolError<'WP_SERVER_PASS_SITE'> {
  constructor(site: string, address: string, command: string) {
    super(
      'WP_SERVER_PASS_SITE',
      `site ${site} passes PHP to php-fpm at ${address}: its processes are php-fpm's, not warmpool's, so there is nothing to ${command}; restart or reload php-fpm instead (e.g. systemctl reload php8.2-fpm), or tune its pm.max_children`,
      { details: { site, address, command } },
    );
  }
}

/** `reset`, `tune` or `workers` for a site of static files and proxy routes only: it has no PHP process. */
export class NoPhpSiteError extends WarmpoolError<'WP_SERVER_NO_PHP_SITE'> {
  constructor(site: string, command: string) {
    super(
      'WP_SERVER_NO_PHP_SITE',
      `site ${site} runs no PHP (static files and proxy routes only): there is nothing to ${command}`,
      { details: { site, command } },
    );
  }
}

/** The server does not implement this command (for example `reload` before the core wires it). */
export class AdminUnsupportedError extends WarmpoolError<'WP_SERVER_ADMIN_UNSUPPORTED'> {
  constructor(cmd: string) {
    super(
      'WP_SERVER_ADMIN_UNSUPPORTED',
      `this warmpool server does not support "${cmd}"; upgrade it, or restart it to pick up the new binary`,
    );
  }
}

/** `cache purge` found no micro-cache to purge (none configured, or not for the named site). */
export class NoCacheError extends WarmpoolError<'WP_SERVER_NO_CACHE'> {
  constructor(message: string, site: string | undefined) {
    super('WP_SERVER_NO_CACHE', message, { details: site === undefined ? {} : { site } });
  }
}

/** `reset`, `tune` or `reload` sent to a server that is draining: its workers are about to stop. */
export class DrainingError extends WarmpoolError<'WP_SERVER_DRAINING'> {
  constructor(cmd: string) {
    super(
      'WP_SERVER_DRAINING',
      `this server is draining (it was told to stop): "${cmd}" would act on workers about to stop; run it against the server that takes over once it is up`,
      { details: { cmd } },
    );
  }
}

/** The pool has no live worker to measure (a dynamic pool scaled to zero, or every boot failing). */
export class TuneNoWorkersError extends WarmpoolError<'WP_SERVER_TUNE_NO_WORKERS'> {
  constructor(site: string | undefined) {
    super(
      'WP_SERVER_TUNE_NO_WORKERS',
      `no live worker to measure${site === undefined ? '' : ` in site "${site}"`}: send some traffic (or raise min_workers) and run warmpool tune again`,
      site === undefined ? {} : { details: { site } },
    );
  }
}

/** A site failed while registering; `cause` is the plugin's (or pool's) error, `site` the site's options. */
export class SiteSetupError extends WarmpoolError<'WP_SERVER_SITE_SETUP'> {
  readonly site: SiteOptions;
  constructor(site: SiteOptions, cause: unknown) {
    super('WP_SERVER_SITE_SETUP', `site ${site.name}: ${(cause as Error)?.message ?? String(cause)}`, {
      cause,
      details: { site: site.name },
    });
    this.site = site;
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
  'WP_SERVER_SITE_SETUP',
  'WP_SERVER_ALREADY_RUNNING',
  'WP_SERVER_ADMIN_SOCKET',
  'WP_SERVER_ADMIN_UNREACHABLE',
  'WP_SERVER_ADMIN_DENIED',
  'WP_SERVER_ADMIN_BAD_REQUEST',
  'WP_SERVER_ADMIN_UNSUPPORTED',
  /** an error inside the server without a code of its own, as the admin socket reports it */
  'WP_SERVER_ADMIN_FAILED',
  'WP_SERVER_UNKNOWN_SITE',
  'WP_SERVER_TUNE_NO_WORKERS',
  'WP_SERVER_PASS_SITE',
  'WP_SERVER_NO_PHP_SITE',
  'WP_SERVER_NO_CACHE',
  'WP_SERVER_DRAINING',
] as const;
