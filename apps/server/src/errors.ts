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

export const SERVER_ERROR_CODES = [
  'WP_SERVER_USAGE',
  'WP_SERVER_LISTEN_FAILED',
  'WP_SERVER_BOOT_FAILED',
  'WP_SERVER_TLS',
  'WP_SERVER_CERT_TOOL',
  'WP_SERVER_LISTEN_FDS',
] as const;
