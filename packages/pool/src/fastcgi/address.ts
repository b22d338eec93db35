// Where a FastCGI server listens, written as nginx's fastcgi_pass takes it: `unix:/path` or
// `host:port` (`[::1]:9000` for IPv6).
import { isAbsolute } from 'node:path';
import { InvalidFastCgiOptionError } from '../errors.js';

export type FastCgiAddress =
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

/** Parses `unix:/run/php/php8.2-fpm.sock`, `127.0.0.1:9000`, `php:9000` or `[::1]:9000`. */
export function parseFastCgiAddress(spec: string, key = 'pass'): FastCgiAddress {
  if (typeof spec !== 'string' || spec.trim() === '') {
    throw new InvalidFastCgiOptionError(key, 'must be "unix:/path/to/php-fpm.sock" or "host:port"');
  }
  if (spec.startsWith('unix:')) {
    const path = spec.slice('unix:'.length);
    if (!isAbsolute(path) || path.includes('\0')) {
      throw new InvalidFastCgiOptionError(
        key,
        `"${spec}" must name an absolute socket path, as in "unix:/run/php/php8.2-fpm.sock"`,
      );
    }
    return { kind: 'unix', path };
  }
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(spec);
  const port = match === null ? Number.NaN : Number(match[3]);
  if (match === null || port < 1 || port > 65535) {
    throw new InvalidFastCgiOptionError(
      key,
      `"${spec}" is neither "unix:/path" nor "host:port" (a port from 1 to 65535; "[::1]:9000" for IPv6)`,
    );
  }
  return { kind: 'tcp', host: match[1] ?? match[2]!, port };
}

/** The address as parseFastCgiAddress reads it, for messages and metrics labels. */
export function formatFastCgiAddress(address: FastCgiAddress): string {
  if (address.kind === 'unix') return `unix:${address.path}`;
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
