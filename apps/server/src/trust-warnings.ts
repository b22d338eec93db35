// http.trusted_subnets that hold every address (0.0.0.0/0, ::/0): each client is then a trusted
// proxy, so its own X-Forwarded-For names whoever it likes to access rules, limit_req, the logs and
// PHP, and max_connections_per_ip, which spares trusted peers, spares everyone. config check said
// nothing of it.
import type { LoadedConfig, ServerOptions } from '@warmpool/config';

/** A CIDR whose prefix length is 0: it holds every address of its family. */
const EVERY_ADDRESS = /\/0+$/;

/** The warning for http.trusted_subnets holding every address, at its key and line; none otherwise. */
export function everyoneTrustedWarnings(server: Pick<ServerOptions, 'sites'>, loaded: LoadedConfig) {
  const subnets = server.sites[0]?.plugin.trusted_subnets ?? [];
  const every = subnets.filter((cidr) => EVERY_ADDRESS.test(cidr.trim()));
  if (every.length === 0) return [];
  const key = 'http.trusted_subnets';
  const at = loaded.positionOf(key) ?? { file: loaded.file, line: 1, col: 1 };
  return [
    {
      key,
      file: at.file,
      line: at.line,
      col: at.col,
      message: `${every.join(', ')} trusts every client as a proxy: any client names its own address in X-Forwarded-For (access rules, limit_req, the logs and PHP believe it) and max_connections_per_ip spares it; list your proxies' and load balancers' addresses instead (e.g. 10.0.0.0/8)`,
    },
  ];
}
