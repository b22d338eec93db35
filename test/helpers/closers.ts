// What a test opened, closed after it in reverse order (servers, sockets, sessions, timers), and
// the listening servers and paced bodies the socket tests share.
import type { Server, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach } from 'vitest';

/** Push a closer for each thing a test opens; after each test they run, last first. */
export function useClosers(): Array<() => unknown> {
  const closers: Array<() => unknown> = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  return closers;
}

/**
 * `server` listening on a free loopback port until the test ends (its connections destroyed, then
 * it closes); `sockets` are the TCP connections it accepts, in order.
 */
export async function listenUntilClosed(
  server: Server,
  closers: Array<() => unknown>,
): Promise<{ port: number; sockets: Socket[] }> {
  const sockets: Socket[] = [];
  server.on('connection', (socket: Socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return { port: (server.address() as { port: number }).port, sockets };
}

/** `bytes` of 7s, 64 KiB at a time, at the pace the reader takes them. */
export function pacedBody(bytes: number): Readable {
  let left = bytes;
  const chunk = Buffer.alloc(64 * 1024, 7);
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      left -= chunk.length;
      this.push(chunk);
    },
  });
}
