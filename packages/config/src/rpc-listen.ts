// rpc.listen: RoadRunner's RPC address, `tcp://host:port` or `unix:///path` (roadrunner-server/rpc
// and the rr CLI's Dialer split it at "://"). The key table checks its form; this reads it.
import { isAbsolute, resolve } from 'node:path';

export type RpcAddress =
  | { kind: 'tcp'; host: string; port: number /** as written, for messages */; url: string; explicitHost: boolean }
  | { kind: 'unix'; path: string; url: string };

/** Hosts that only this machine can reach. */
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[?::1\]?)$/i;

/**
 * Reads an rpc.listen value. A tcp address without a host binds 127.0.0.1 (RoadRunner's advice:
 * never expose RPC); a relative unix path is taken from `baseDir` (the config file's folder).
 */
export function parseRpcListen(listen: string, baseDir = '.'): RpcAddress {
  if (listen.startsWith('unix://')) {
    const path = listen.slice('unix://'.length);
    const absolute = isAbsolute(path) ? path : resolve(baseDir, path);
    return { kind: 'unix', path: absolute, url: `unix://${absolute}` };
  }
  const rest = listen.replace(/^tcp:\/\//, '');
  const colon = rest.lastIndexOf(':');
  const written = rest.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const host = written === '' ? '127.0.0.1' : written;
  const port = Number(rest.slice(colon + 1));
  return {
    kind: 'tcp',
    host,
    port,
    url: `tcp://${host.includes(':') ? `[${host}]` : host}:${port}`,
    explicitHost: written !== '',
  };
}

/** Whether a tcp RPC address can be reached from other machines (0.0.0.0, ::, a public or LAN address). */
export function isExposedRpc(address: RpcAddress): boolean {
  return address.kind === 'tcp' && !LOOPBACK.test(address.host);
}
