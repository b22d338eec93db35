import type { Readable, Writable } from 'node:stream';

/** Where frames travel between the server and one worker (`server.relay` in .rr.yaml). */
export type RelaySpec =
  | { kind: 'pipes' }
  /** warmpool SDK extension: the protocol on fds 3 (to worker) and 4 (from worker); stdout stays a log */
  | { kind: 'fds' }
  | { kind: 'unix'; path: string }
  | { kind: 'tcp'; host: string; port: number };

/** The two directions of one worker's frame stream. */
export interface Relay {
  /** bytes from the worker */
  readonly input: Readable;
  /** bytes to the worker */
  readonly output: Writable;
  /** set when the relay's listener already did the pid handshake (socket relays) */
  readonly handshakePid: number | null;
  close(): void;
}

/**
 * Writes one frame's parts. Several parts are corked into one writev, so a frame is one syscall and
 * the 12-byte header is never split from what follows (PHP reads the header with a single fread).
 */
export function writeFrame(output: Writable, parts: readonly Buffer[]): boolean {
  if (parts.length === 1) return output.write(parts[0]!);
  output.cork();
  let ok = true;
  for (const part of parts) ok = output.write(part) && ok;
  output.uncork();
  return ok;
}

export function parseRelay(value: string): RelaySpec {
  if (value === 'pipes' || value === '') return { kind: 'pipes' };
  if (value === 'fds' || value === 'pipes://3:4') return { kind: 'fds' };
  if (value.startsWith('unix://')) {
    const path = value.slice('unix://'.length);
    if (path === '') throw new Error(`relay "${value}" has no socket path (write unix:///path/to/socket)`);
    return { kind: 'unix', path };
  }
  if (value.startsWith('tcp://')) {
    const rest = value.slice('tcp://'.length);
    const colon = rest.lastIndexOf(':');
    const host = rest.slice(0, colon).replace(/^\[|\]$/g, '');
    const port = Number(rest.slice(colon + 1));
    if (colon <= 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
      throw new Error(`relay "${value}" is not tcp://host:port`);
    }
    return { kind: 'tcp', host, port };
  }
  throw new Error(`relay "${value}" is not one of: pipes, fds, unix:///path, tcp://host:port`);
}

/** The RR_RELAY value a worker reads to connect back (PROTOCOL.md §1). */
export function relayDsn(spec: RelaySpec, boundPort?: number): string {
  switch (spec.kind) {
    case 'pipes':
    case 'fds':
      return 'pipes';
    case 'unix':
      return `unix://${spec.path}`;
    case 'tcp':
      return `tcp://${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${boundPort ?? spec.port}`;
    default: {
      const never: never = spec;
      return never;
    }
  }
}
