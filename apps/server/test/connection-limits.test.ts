// http.max_connections and http.max_connections_per_ip on a real listener: real sockets from
// different loopback addresses (the whole of 127.0.0.0/8 is this machine).
import { once } from 'node:events';
import { type AddressInfo, createServer, connect, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { clientKey } from '@warmpool/fastify';
import { type ConnectionLimits, createConnectionLimits } from '../src/connection-limits.js';

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) await new Promise((resolve) => server.close(resolve));
});

function recordingLogger() {
  const lines: Array<{ msg: string; limit: string; refused: number }> = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

/** A listener whose accepted sockets stay open, counted by `limits`. */
async function listen(limits: ConnectionLimits): Promise<number> {
  const server = createServer(() => {});
  limits.watch(server);
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as AddressInfo).port;
}

/** `count` connections from `from`, once each is established (the server may close it next). */
async function open(port: number, from: string, count: number): Promise<Socket[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const socket = connect({ port, host: '127.0.0.1', localAddress: from });
      sockets.push(socket);
      socket.on('error', () => {});
      await once(socket, 'connect');
      return socket;
    }),
  );
}

/** Waits for the listener to have handled what was sent: the accepts and closes are events of this process. */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('ConnectionLimits', () => {
  it('keeps one address to max_connections_per_ip; others, and trusted peers, are not held back by it', async () => {
    const { logger, lines } = recordingLogger();
    const limits = createConnectionLimits({ max_connections: 0, max_connections_per_ip: 3 }, ['127.0.0.9/32'], logger)!;
    const port = await listen(limits);
    const flood = await open(port, '127.0.0.2', 5);
    await until(() => limits.refused.max_connections_per_ip === 2 && limits.open === 3, '3 held, 2 refused');
    // the client sees its 2 refused connections closed
    await until(() => flood.filter((socket) => socket.closed).length === 2, 'the 2 refused to be closed');
    const other = await open(port, '127.0.0.3', 3);
    const trusted = await open(port, '127.0.0.9', 6);
    await until(() => limits.open === 3 + 3 + 6, 'the other address and the trusted one held');
    expect(limits.refused).toEqual({ max_connections: 0, max_connections_per_ip: 2 });
    // one warning for the burst, naming the address and the key to raise
    expect(lines.map((l) => [l.limit, l.refused])).toEqual([['max_connections_per_ip', 1]]);
    expect(lines[0]!.msg).toMatch(
      /^127\.0\.0\.2 holds 3 connections \(http\.max_connections_per_ip\): closing new connections .*raise http\.max_connections_per_ip/,
    );
    // a closed connection makes room again
    for (const socket of [...flood, ...other, ...trusted]) socket.destroy();
    await until(() => limits.open === 0, 'every close counted');
    await open(port, '127.0.0.2', 3);
    await until(() => limits.open === 3, 'the address held again');
    expect(limits.refused.max_connections_per_ip).toBe(2);
  });

  it('keeps the server to max_connections, whoever connects; /metrics says how many are open and refused', async () => {
    const { logger, lines } = recordingLogger();
    const limits = createConnectionLimits({ max_connections: 4, max_connections_per_ip: 0 }, undefined, logger)!;
    const port = await listen(limits);
    await open(port, '127.0.0.2', 2);
    await until(() => limits.open === 2, 'the first 2');
    await open(port, '127.0.0.3', 4);
    await until(() => limits.refused.max_connections === 2 && limits.open === 4, '4 held, 2 refused');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.msg).toMatch(/^the server holds 4 connections \(http\.max_connections\)/);
    expect(limits.metrics()).toContain('warmpool_connections_open 4\n');
    expect(limits.metrics()).toContain('warmpool_connections_refused_total{limit="max_connections"} 2\n');
    expect(limits.metrics()).toContain('warmpool_connections_refused_total{limit="max_connections_per_ip"} 0\n');
  });

  it('counts an IPv4 client by its address (IPv4-mapped too), an IPv6 one by its /64', () => {
    expect(clientKey('203.0.113.7')).toBe('203.0.113.7');
    expect(clientKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    for (const address of [
      '2001:db8:1:2::1',
      '2001:0db8:0001:0002:ffff:ffff:ffff:ffff',
      '2001:DB8:1:2:aa::9',
      '2001:db8:1:2::1%eth0',
    ])
      expect(clientKey(address), address).toBe('2001:db8:1:2::/64');
    expect(clientKey('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(clientKey('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(clientKey('::1')).toBe('0:0:0:0::/64');
    expect(clientKey('2001:db8::')).toBe('2001:db8:0:0::/64');
    expect(clientKey('fe80::1:2:3:4')).toBe('fe80:0:0:0::/64');
  });

  it('counts nothing when neither limit is set', () => {
    expect(createConnectionLimits({ max_connections: 0, max_connections_per_ip: 0 }, [], pino())).toBeNull();
  });
});
