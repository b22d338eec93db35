import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { compileTrustedSubnets } from '@warmpool/fastify';
import type { Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { parseProxyHeader, requireProxyProtocol } from '../src/proxy-protocol.js';

/** A v2 header: signature, version 2 and `command`, `family`, then `body`. */
function v2(command: number, family: number, body: Buffer): Buffer {
  const head = Buffer.from([
    0x0d,
    0x0a,
    0x0d,
    0x0a,
    0x00,
    0x0d,
    0x0a,
    0x51,
    0x55,
    0x49,
    0x54,
    0x0a,
    0x20 | command,
    family,
    0,
    0,
  ]);
  head.writeUInt16BE(body.length, 14);
  return Buffer.concat([head, body]);
}

describe('parseProxyHeader', () => {
  it('v1: TCP4 and TCP6 name the client; UNKNOWN names none; what follows is not the header', () => {
    const line = 'PROXY TCP4 203.0.113.5 10.0.0.1 5555 443\r\n';
    expect(parseProxyHeader(Buffer.from(`${line}GET / HTTP/1.1\r\n`))).toEqual({
      length: line.length,
      client: { address: '203.0.113.5', port: 5555 },
    });
    expect(parseProxyHeader(Buffer.from('PROXY TCP6 2001:DB8:0:0:0:0:0:1 2001:db8::2 6000 443\r\n'))).toMatchObject({
      client: { address: '2001:db8::1', port: 6000 },
    });
    expect(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))).toEqual({ length: 15, client: null });
  });

  it('v1: more to come until the line ends; broken lines, families and ports say why', () => {
    expect(parseProxyHeader(Buffer.from('PROXY TCP4 203.0.'))).toBe('more');
    expect(parseProxyHeader(Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`))).toEqual({
      broken: 'a PROXY v1 line longer than 107 bytes',
    });
    for (const line of [
      'PROXY TCP4 203.0.113.5 10.0.0.1 5555\r\n',
      'PROXY TCP4 2001:db8::1 10.0.0.1 5555 443\r\n',
      'PROXY TCP4 203.0.113.5 10.0.0.1 70000 443\r\n',
      'PROXY TCP4 203.0.113.5 10.0.0.1 05555 443\r\n',
      'PROXY UDP4 203.0.113.5 10.0.0.1 5555 443\r\n',
      'PROXY TCP4 203.0.113.5 - - [x] "GET / 443\r\n',
    ])
      expect(parseProxyHeader(Buffer.from(line)), line).toMatchObject({
        broken: expect.stringContaining('broken PROXY v1'),
      });
    expect(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n'))).toEqual({
      broken: 'no PROXY header: the connection did not start with one',
    });
    expect(parseProxyHeader(Buffer.from([0x16, 0x03, 0x01]))).toMatchObject({
      broken: expect.stringContaining('no PROXY'),
    });
  });

  it('v2: TCP over IPv4 and IPv6, LOCAL and UNSPEC name no client; TLVs are skipped; a partial header is more', () => {
    const ipv4 = Buffer.from([203, 0, 113, 5, 10, 0, 0, 1, 0x15, 0xb3, 0x01, 0xbb]);
    const withTlv = Buffer.concat([ipv4, Buffer.from([0x04, 0x00, 0x02, 0xaa, 0xbb])]);
    const header = v2(1, 0x11, withTlv);
    expect(parseProxyHeader(Buffer.concat([header, Buffer.from('\x16\x03\x01')]))).toEqual({
      length: header.length,
      client: { address: '203.0.113.5', port: 5555 },
    });
    const ipv6 = Buffer.alloc(36);
    ipv6.writeUInt16BE(0x2001, 0);
    ipv6.writeUInt16BE(0x0db8, 2);
    ipv6.writeUInt16BE(1, 14);
    ipv6.writeUInt16BE(6000, 32);
    expect(parseProxyHeader(v2(1, 0x21, ipv6))).toMatchObject({ client: { address: '2001:db8::1', port: 6000 } });
    // an IPv4 client of the balancer's dual-stack socket, as IPv4
    const mapped = Buffer.alloc(36);
    mapped.writeUInt16BE(0xffff, 10);
    mapped.set([203, 0, 113, 7], 12);
    expect(parseProxyHeader(v2(1, 0x21, mapped))).toMatchObject({ client: { address: '203.0.113.7' } });
    expect(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0)))).toEqual({ length: 16, client: null });
    expect(parseProxyHeader(v2(1, 0x00, Buffer.alloc(0)))).toEqual({ length: 16, client: null });
    expect(parseProxyHeader(header.subarray(0, 20))).toBe('more');
    expect(parseProxyHeader(header.subarray(0, 5))).toBe('more');
  });

  it('v2: another version, command or an oversized header is broken', () => {
    const bad = v2(1, 0x11, Buffer.alloc(12));
    bad[12] = 0x31;
    expect(parseProxyHeader(bad)).toEqual({ broken: 'a PROXY v2 header of version 3' });
    expect(parseProxyHeader(v2(2, 0x11, Buffer.alloc(12)))).toEqual({ broken: 'a PROXY v2 header with command 2' });
    expect(parseProxyHeader(v2(1, 0x11, Buffer.alloc(4000)))).toEqual({ broken: 'a PROXY v2 header of 4016 bytes' });
  });
});

describe('requireProxyProtocol: connections waiting for their header', () => {
  /** A server that answers "hello <client>" once a connection's header came; its warning lines. */
  async function server(limits: { total: number; perPeer: number }, trusted: string[] = []) {
    const warnings: string[] = [];
    const logger = { warn: (_fields: unknown, message: string) => warnings.push(message) } as unknown as Logger;
    const net = createServer((socket) => socket.end(`hello ${socket.remoteAddress}\n`));
    requireProxyProtocol(net, compileTrustedSubnets(trusted), logger, limits);
    await new Promise<void>((resolve) => net.listen(0, '127.0.0.1', resolve));
    const port = (net.address() as { port: number }).port;
    const open = async () => {
      const socket = connect(port, '127.0.0.1');
      await once(socket, 'connect');
      return socket;
    };
    return { net, port, warnings, open };
  }

  it('are bounded per peer outside trusted_subnets (max_connections_per_ip) and in all (max_connections)', async () => {
    const { net, warnings, open } = await server({ total: 0, perPeer: 2 });
    const held = [await open(), await open()];
    // the third from the same peer is closed as it comes, the first two wait on
    const third = await open();
    await once(third, 'close');
    expect(held.every((socket) => !socket.destroyed)).toBe(true);
    expect(warnings).toEqual([expect.stringContaining('too many connections waiting for their PROXY header')]);
    // one gone: a place again
    held[0]!.destroy();
    await once(held[0]!, 'close');
    const next = await open();
    next.write('PROXY TCP4 203.0.113.9 127.0.0.1 5000 80\r\n');
    const [answer] = (await once(next, 'data')) as [Buffer];
    expect(String(answer)).toBe('hello 127.0.0.1\n'); // 127.0.0.1 is not trusted here: not believed
    for (const socket of [...held, next]) socket.destroy();
    net.close();
    // in all: the trusted balancer is bounded by the total only
    const all = await server({ total: 2, perPeer: 1 }, ['127.0.0.1/32']);
    const two = [await all.open(), await all.open()];
    const over = await all.open();
    await once(over, 'close');
    expect(two.every((socket) => !socket.destroyed)).toBe(true);
    for (const socket of two) socket.destroy();
    all.net.close();
  });

  it('a connection that closes before any header (a health check) is no refusal: no line', async () => {
    const { net, warnings, open } = await server({ total: 0, perPeer: 0 });
    const check: Socket = await open();
    check.end();
    await once(check, 'close');
    const broken = await open();
    broken.write('GET / HTTP/1.1\r\n\r\n');
    await once(broken, 'close');
    expect(warnings).toEqual([expect.stringContaining('no PROXY header: the connection did not start with one')]);
    net.close();
  });
});
