import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';

// Ports are taken below the kernel's ephemeral range (ip_local_port_range, 32768-60999 by default).
// A port the kernel hands out for port 0 comes from that range, so between the check and the bind
// of the server under test it can become the source port of any outgoing connection on the machine
// ("address already in use" on a busy machine). Below the range only listeners take ports: each
// vitest worker takes them from its own slice, in turn, each checked by binding it.
const SLICES = 16;
const RANGE = ((): { first: number; size: number } | null => {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    const first = Math.max(10_000, low - 12_800);
    return low - first >= SLICES * 100 ? { first, size: Math.floor((low - first) / SLICES) } : null;
  } catch {
    return null;
  }
})();
const SLICE = (Number(process.env.VITEST_POOL_ID ?? 1) - 1) % SLICES;
// from a random place in the slice: two suites run at once (two checkouts on one machine) walked the
// same sequence, and one's check could pass just before the other's server bound the port
let taken = Math.floor(Math.random() * (RANGE?.size ?? 1));

/** A TCP port on 127.0.0.1 that was free a moment ago, and that no outgoing connection will take. */
export async function freePort(): Promise<number> {
  if (RANGE !== null) {
    for (let tries = 0; tries < RANGE.size; tries++) {
      const port = RANGE.first + SLICE * RANGE.size + (taken++ % RANGE.size);
      if (await canBind(port)) return port;
    }
  }
  return ephemeralPort();
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function ephemeralPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** A listening socket in this process, and its fd (to hand to a child as LISTEN_FDS or stdio). */
export async function listening(): Promise<{ server: Server; port: number; fd: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  return { server, port: (server.address() as { port: number }).port, fd };
}
