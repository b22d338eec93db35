// A listen address this machine does not have, or a host name that does not resolve: `config check`
// passed both and serve then failed to bind (exit 5). Each address is tried as serve binds it, but
// on port 0 (any free port): the check neither needs the real port free nor takes it from a running
// server, so it runs beside the server it checks.
import { createServer } from 'node:net';
import {
  ConfigError,
  InvalidValueError,
  hostAndPort,
  isWildcard,
  listenerAddresses,
  type LoadedConfig,
} from '@warmpool/config';

/** Null, or every listener whose host cannot be bound here, at its key and line. */
export async function listenAddressProblems(loaded: LoadedConfig): Promise<ConfigError | null> {
  const errors: InvalidValueError[] = [];
  for (const listener of listenerAddresses(loaded.config)) {
    const parsed = hostAndPort(listener);
    if (parsed === null || isWildcard(parsed.host)) continue;
    const why = await bindProblem(parsed.host);
    if (why === null) continue;
    const at = loaded.positionOf(listener.key, { nearest: true }) ?? { file: loaded.file, line: 1, col: 1 };
    errors.push(new InvalidValueError(listener.key, at, `cannot listen on ${listener.address}: ${why}`));
  }
  return errors.length === 0 ? null : new ConfigError(loaded.file, errors);
}

/** Why `host` cannot be bound, in words with what to do, or null when it can (or fails for another reason serve will say). */
export function bindProblem(host: string): Promise<string | null> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', (error: NodeJS.ErrnoException) => resolve(addressProblem(error.code)));
    probe.listen({ host, port: 0, exclusive: true }, () => probe.close(() => resolve(null)));
  });
}

/** The words for a bind's error code that is about the address itself; null for any other. */
export function addressProblem(code: string | undefined): string | null {
  if (code === 'EADDRNOTAVAIL')
    return 'this machine has no such address; use 0.0.0.0, 127.0.0.1 or one of its own addresses';
  if (code === 'EINVAL')
    return 'this address cannot be bound as written (an IPv6 link-local address, fe80::…, needs its interface: [fe80::1%eth0]:PORT)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'EAI_FAIL')
    return 'the host name does not resolve here; use an IP address of this machine (0.0.0.0: every interface) or a name in /etc/hosts';
  return null;
}
