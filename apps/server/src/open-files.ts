// The open-file limit bounds the connections the server can hold at once: past it, accept fails
// with EMFILE and libuv closes each new connection at once, with no log line; the status and
// metrics listeners are refused too (a probe: 990 idle connections took a server limited to 1,024
// files off the air, its log clean, for as long as the attacker held them). nginx warns at start
// when worker_connections passes the limit. Node raises its soft limit to the hard one when it
// starts, so the soft limit read here is what this process has.
import { readFileSync } from 'node:fs';

/** Below this many open files the server says so at start. */
const LOW_LIMIT = 8192;
/** What the server holds besides connections: workers' pipes, log files, listeners, temp files. */
const RESERVED = 256;

/** This process's open-file limit from /proc/self/limits; null when it cannot be read or is unlimited. */
export function openFilesLimit(limits?: string): number | null {
  let text = limits;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/limits', 'utf8');
    } catch {
      return null;
    }
  }
  const match = /^Max open files\s+(\d+)/m.exec(text);
  return match === null ? null : Number(match[1]);
}

/**
 * The start-up warning when the limit is low, or below `http.max_connections` (0: none); null when
 * it is fine.
 */
export function openFilesWarning(maxConnections: number, limit = openFilesLimit()): string | null {
  if (limit === null) return null;
  const belowConfigured = maxConnections > 0 && maxConnections + RESERVED > limit;
  if (limit >= LOW_LIMIT && !belowConfigured) return null;
  const room = Math.max(0, limit - RESERVED);
  // enough for max_connections when it is set higher than the usual 65536
  const suggested = Math.max(65_536, Math.ceil((maxConnections + RESERVED) / 1024) * 1024);
  return (
    `open files limit ${limit}: ` +
    (belowConfigured ? `below http.max_connections (${maxConnections}) ` : '') +
    `this server can hold about ${room} connections, and past that new ones (status and metrics too) ` +
    `are refused with no log line; raise it (systemd: LimitNOFILE=${suggested}; a shell: ulimit -n ${suggested})` +
    (maxConnections > 0 ? '' : ', and set http.max_connections_per_ip so no one client takes them all')
  );
}
