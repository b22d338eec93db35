// Two listeners of one file on one port: `config check` passed such a file, and `serve` then failed
// with "the address is already in use (another warmpool, nginx...?)", sending the user after a
// process that did not exist. The addresses are compared as they bind: the same port on the same
// host, or on any host when either listens on every interface.
import { parseRpcListen } from './rpc-listen.js';
import type { WarmpoolConfig } from './warmpool-config.js';

export interface ListenerAddress {
  /** the config key, for the message and its line */
  key: string;
  /** as written */
  address: string;
}

export interface PortClash {
  /** the later key */
  key: string;
  /** the earlier key it clashes with */
  with: string;
  address: string;
}

/** Every TCP listener the file asks for, with its key (rpc.listen only when it is tcp://). */
export function listenerAddresses(config: WarmpoolConfig): ListenerAddress[] {
  const listeners: ListenerAddress[] = [];
  const add = (key: string, address: string | undefined) => {
    if (address !== undefined) listeners.push({ key, address });
  };
  add('http.address', config.http.address);
  if (config.http.ssl !== undefined) add('http.ssl.address', config.http.ssl.address ?? ':443');
  add('status.address', config.status?.address);
  add('metrics.address', config.metrics?.address);
  if (config.rpc?.listen?.startsWith('tcp://') === true) add('rpc.listen', config.rpc.listen);
  return listeners;
}

/** Pairs of listeners that would take the same port; status and metrics may share theirs (one listener serves both). */
export function portClashes(listeners: readonly ListenerAddress[]): PortClash[] {
  const clashes: PortClash[] = [];
  const seen: Array<ListenerAddress & { host: string; port: number }> = [];
  for (const listener of listeners) {
    const parsed = hostAndPort(listener);
    if (parsed === null) continue;
    const earlier = seen.find(
      (other) =>
        other.port === parsed.port &&
        (other.host === parsed.host || isWildcard(other.host) || isWildcard(parsed.host)) &&
        !sharedOpsListener(other.key, listener.key, other.address, listener.address),
    );
    if (earlier !== undefined) clashes.push({ key: listener.key, with: earlier.key, address: listener.address });
    seen.push({ ...listener, ...parsed });
  }
  return clashes;
}

/** A listener's "host:port" (`:port` and `[::1]:port` too): its host, undefined for every interface, and port. */
export function parseAddress(address: string): { host: string | undefined; port: number } {
  const colon = address.lastIndexOf(':');
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host: host === '' ? undefined : host, port: Number(address.slice(colon + 1)) };
}

/** The host and port a listener binds ("" for every interface), or null for one that is not TCP or not valid. */
export function hostAndPort(listener: ListenerAddress): { host: string; port: number } | null {
  if (listener.key === 'rpc.listen') {
    const rpc = parseRpcListen(listener.address);
    return rpc.kind === 'tcp' ? { host: rpc.host, port: rpc.port } : null;
  }
  if (!listener.address.includes(':')) return null;
  const { host, port } = parseAddress(listener.address);
  if (!Number.isInteger(port) || port <= 0) return null;
  return { host: host?.toLowerCase() ?? '', port };
}

export function isWildcard(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::';
}

/** status and metrics at one address are one listener serving both, as documented. */
function sharedOpsListener(a: string, b: string, addressA: string, addressB: string): boolean {
  const pair = new Set([a, b]);
  return pair.has('status.address') && pair.has('metrics.address') && addressA === addressB;
}
