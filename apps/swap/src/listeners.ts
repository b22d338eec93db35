// The public sockets, bound ONCE by the supervisor and handed to every child as fds 3, 4, … with
// LISTEN_FDS / LISTEN_FDNAMES (systemd socket activation, which `warmpool serve` adopts).
//
// The supervisor binds but never calls listen(): a Node net.Server that listens also accepts, and
// the supervisor would steal connections. So the socket is created with the raw TCP handle
// (process.binding('tcp_wrap'), Node's own building block for net.Server), bound, and left for the
// children: the first child's listen({ fd }) turns it into a listening socket, and from then on the
// kernel keeps the socket (and its backlog) alive as long as any process holds the fd — the
// supervisor always does. Every child that holds it accepts on it; the kernel hands each new
// connection to whichever accepts first. That is the whole hand-over.
import { readFileSync } from 'node:fs';
import { ListenFailedError, UsageError } from './errors.js';

export type ListenerName = 'http' | 'https' | 'status' | 'metrics';
export const LISTENER_NAMES: readonly ListenerName[] = ['http', 'https', 'status', 'metrics'];

export interface BoundSocket {
  name: ListenerName;
  /** as configured ("127.0.0.1:8080") */
  address: string;
  fd: number;
  host: string;
  port: number;
  close(): void;
}

interface TcpHandle {
  fd: number;
  bind(host: string, port: number): number;
  bind6(host: string, port: number, flags: number): number;
  getsockname(out: { address?: string; port?: number }): number;
  close(): void;
}

let tcpWrap: { TCP: new (type: number) => TcpHandle; constants: { SERVER: number } } | undefined;
function tcp(): NonNullable<typeof tcpWrap> {
  if (tcpWrap === undefined) {
    // process.binding is deprecated (DEP0111) but tcp_wrap is on its allow-list; keep the warning quiet.
    const emit = process.emitWarning;
    process.emitWarning = () => {};
    try {
      tcpWrap = (process as unknown as { binding(name: string): typeof tcpWrap }).binding('tcp_wrap');
    } finally {
      process.emitWarning = emit;
    }
  }
  return tcpWrap!;
}

/** "127.0.0.1:8080" → host and port; ":8080" → 0.0.0.0; "[::1]:8080" → ::1. */
export function parseAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(':');
  if (colon === -1) throw new UsageError(`listen address "${address}" needs host:port, e.g. 127.0.0.1:8080`);
  let host = address.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const port = Number(address.slice(colon + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError(`listen address "${address}": bad port`);
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** Binds (without listening) one TCP socket; throws ListenFailedError with the errno name. */
export function bindSocket(name: ListenerName, address: string): BoundSocket {
  const { host, port } = parseAddress(address);
  const { TCP, constants } = tcp();
  const handle = new TCP(constants.SERVER);
  const err = host.includes(':') ? handle.bind6(host, port, 0) : handle.bind(host, port);
  if (err !== 0) {
    handle.close();
    throw new ListenFailedError(name, address, errnoName(err));
  }
  // libuv defers a bind's EADDRINUSE (bind() answers 0) and reports it from getsockname or listen:
  // without this check the child's listen() would auto-bind the socket to a random port
  const out: { address?: string; port?: number } = {};
  const deferred = handle.getsockname(out);
  if (deferred !== 0) {
    handle.close();
    throw new ListenFailedError(name, address, errnoName(deferred));
  }
  let closed = false;
  return {
    name,
    address,
    fd: handle.fd,
    host,
    port: out.port ?? port,
    close() {
      if (!closed) handle.close();
      closed = true;
    },
  };
}

function errnoName(err: number): string {
  const util = process as unknown as { binding(name: string): { errname?(n: number): string } };
  try {
    const emit = process.emitWarning;
    process.emitWarning = () => {};
    try {
      return util.binding('uv').errname?.(err) ?? `error ${err}`;
    } finally {
      process.emitWarning = emit;
    }
  } catch {
    return `error ${err}`;
  }
}

/**
 * The listener addresses of a warmpool.yaml, WITHOUT a YAML parser (apps/swap has no dependencies):
 * `address:` lines under the top-level `http:` (its own, and the one under `ssl:`), `status:` and
 * `metrics:` sections, in block style or as a one-line flow map (`status: { address: … }`, as the
 * READMEs write it); no anchors; `${VAR}` and `${VAR:-default}` are expanded from the environment.
 * Use `--listen NAME=ADDR` for anything else.
 */
export function addressesFromYaml(file: string, env: NodeJS.ProcessEnv = process.env): Map<ListenerName, string> {
  const text = readFileSync(file, 'utf8');
  const found = new Map<ListenerName, string>();
  let section: string | undefined;
  let sub: string | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\s+#.*$/, '').replace(/^#.*$/, '');
    if (line.trim() === '') continue;
    const top = /^([A-Za-z_][\w-]*):\s*(.*)$/.exec(line);
    if (top !== null) {
      section = top[1];
      sub = undefined;
      // `status: { address: "127.0.0.1:2114" }`
      const flow = flowAddress(top[2]!);
      if (flow !== null && (section === 'http' || section === 'status' || section === 'metrics'))
        found.set(section, expand(flow, env));
      continue;
    }
    const nested = /^(\s+)([\w-]+):\s*(.*)$/.exec(line);
    if (nested === null) continue;
    const [, indent, key, value] = nested as unknown as [string, string, string, string];
    if (key !== 'address') {
      if (value === '') sub = indent.length <= 2 ? key : sub;
      // `  ssl: { address: ":443", cert: … }` under http
      const flow = flowAddress(value);
      if (flow !== null && section === 'http' && key === 'ssl' && indent.length <= 2)
        found.set('https', expand(flow, env));
      continue;
    }
    const address = expand(value.trim().replace(/^["']|["']$/g, ''), env);
    if (section === 'http' && indent.length <= 2) found.set('http', address);
    else if (section === 'http' && sub === 'ssl') found.set('https', address);
    else if (section === 'status' && indent.length <= 2) found.set('status', address);
    else if (section === 'metrics' && indent.length <= 2) found.set('metrics', address);
  }
  return found;
}

/** The `address` of a one-line flow map (`{ address: "h:p", … }`), unquoted; null when it is not one. */
function flowAddress(value: string): string | null {
  const text = value.trim();
  if (!text.startsWith('{') || !text.endsWith('}')) return null;
  const match = /(?:^\{|,)\s*address:\s*("[^"]*"|'[^']*'|[^,}]+)/.exec(text);
  return match === null ? null : match[1]!.trim().replace(/^["']|["']$/g, '');
}

function expand(value: string, env: NodeJS.ProcessEnv): string {
  return value.replace(
    /\$\{(\w+)(?::-([^}]*))?\}/g,
    (_, name: string, fallback: string | undefined) => env[name] ?? fallback ?? '',
  );
}
