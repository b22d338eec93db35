import type { IncomingHttpHeaders } from 'node:http';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { parseCidr } from '../src/network/cidr.js';
import {
  compileTrustedSubnets,
  parseForwarded,
  resolveClient,
  type ClientInfo,
  type TrustedSubnets,
} from '../src/network/trusted-subnets.js';

const TRUSTED = compileTrustedSubnets(['10.0.0.0/8', 'fd00::/8']);

function client(
  peer: string | undefined,
  headers: IncomingHttpHeaders,
  scheme: 'http' | 'https' = 'http',
  trusted: TrustedSubnets | null = TRUSTED,
): ClientInfo {
  return resolveClient(trusted, peer, scheme, headers);
}

describe('compileTrustedSubnets: CIDR parsing', () => {
  it.each([
    ['10.0.0.0/33', 'trusted_subnets[1]'],
    ['10.0.0/8', 'trusted_subnets[1]'],
    ['010.0.0.1/32', 'trusted_subnets[1]'],
    ['1.2.3.4/', 'trusted_subnets[1]'],
    ['1.2.3.4/08', 'trusted_subnets[1]'],
    ['256.0.0.0/8', 'trusted_subnets[1]'],
    ['fe80::1::2/64', 'trusted_subnets[1]'],
    ['2001:db8::/129', 'trusted_subnets[1]'],
    ['1:2:3:4:5:6:7:8:9', 'trusted_subnets[1]'],
    ['localhost', 'trusted_subnets[1]'],
    ['', 'trusted_subnets[1]'],
  ])('rejects %j naming the entry', (bad, key) => {
    try {
      compileTrustedSubnets(['127.0.0.1/32', bad]);
      expect.unreachable();
    } catch (error) {
      const err = error as Error & { code: string; details: { key: string } };
      expect(err.code).toBe('WP_FASTIFY_INVALID_OPTION');
      expect(err.details.key).toBe(key);
      expect(err.message).toContain(JSON.stringify(bad).slice(1, -1));
    }
  });

  it('names the option key it is given, and rejects non-strings and non-lists', () => {
    expect(() => compileTrustedSubnets(['nope'], 'sites.a.trusted_subnets')).toThrow(
      /"sites\.a\.trusted_subnets\[0\]"/,
    );
    expect(() => compileTrustedSubnets([42 as unknown as string])).toThrow(/trusted_subnets\[0\]/);
    expect(() => compileTrustedSubnets('10.0.0.0/8' as unknown as string[])).toThrow(/must be a list/);
  });

  it('matches IPv4, IPv6 and IPv4-mapped IPv6 (dotted and hex) against IPv4 CIDRs', () => {
    const set = compileTrustedSubnets(['10.0.0.0/8', '192.168.1.7', '2001:db8::/32', '::1/128']);
    expect(set.contains('10.255.0.1')).toBe(true);
    expect(set.contains('11.0.0.1')).toBe(false);
    expect(set.contains('192.168.1.7')).toBe(true);
    expect(set.contains('192.168.1.8')).toBe(false);
    expect(set.contains('::ffff:10.1.2.3')).toBe(true);
    expect(set.contains('::FFFF:a01:203')).toBe(true); // 10.1.2.3 in hex groups
    expect(set.contains('::ffff:11.1.2.3')).toBe(false);
    expect(set.contains('2001:DB8:1::5')).toBe(true);
    expect(set.contains('2001:db9::5')).toBe(false);
    expect(set.contains('::1')).toBe(true);
    expect(set.contains('0:0:0:0:0:0:0:1')).toBe(true);
    expect(set.contains('::2')).toBe(false);
    expect(set.contains('not an ip')).toBe(false);
    expect(set.contains('')).toBe(false);
  });

  it('keeps families apart like Go (::/0 does not cover IPv4) but reads a v4-mapped CIDR as IPv4', () => {
    const all6 = compileTrustedSubnets(['::/0']);
    expect(all6.contains('2001:db8::1')).toBe(true);
    expect(all6.contains('1.2.3.4')).toBe(false);
    expect(all6.contains('::ffff:1.2.3.4')).toBe(false);
    const mapped = compileTrustedSubnets(['::ffff:10.0.0.0/104']);
    expect(mapped.contains('10.9.9.9')).toBe(true);
    expect(mapped.contains('::ffff:10.9.9.9')).toBe(true);
    expect(mapped.contains('11.0.0.1')).toBe(false);
    expect(compileTrustedSubnets(['0.0.0.0/0']).contains('::ffff:8.8.8.8')).toBe(true);
  });

  it('masks host bits as Go does, and ignores an address zone', () => {
    expect(parseCidr('10.1.2.3/8')).toMatchObject({ family: 4, prefix: 8 });
    expect(parseCidr('10.1.2.3/8')!.words[0]).toBe(0x0a000000);
    const set = compileTrustedSubnets(['10.1.2.3/8', 'fe80::/10']);
    expect(set.contains('10.200.0.1')).toBe(true);
    expect(set.contains('fe80::1%eth0')).toBe(true);
    expect(set.contains('fe80::1%')).toBe(false);
  });

  it.each([
    ['::', true],
    ['1::', true],
    ['::1.2.3.4', true],
    ['1:2:3:4:5:6:1.2.3.4', true],
    ['1:2:3:4:5:6:7:1.2.3.4', false],
    ['1::2::3', false],
    [':1::2', false],
    ['1::2:', false],
    ['12345::', false],
    ['1.2.3', false],
    ['1.2.3.4.5', false],
    ['1.2.3.', false],
    ['::ffff:1.2.3', false],
  ])('parses %j as an address: %s', (text, valid) => {
    expect(parseCidr(text) !== null).toBe(valid);
  });
});

describe('resolveClient: the trust matrix', () => {
  const peers = [
    {
      name: 'v4',
      trusted: '10.0.0.1',
      untrusted: '203.0.113.9',
      plainTrusted: '10.0.0.1',
      plainUntrusted: '203.0.113.9',
    },
    {
      name: 'v6',
      trusted: 'fd00::1',
      untrusted: '2001:db8:ffff::9',
      plainTrusted: 'fd00::1',
      plainUntrusted: '2001:db8:ffff::9',
    },
    {
      name: 'v4-mapped',
      trusted: '::ffff:10.0.0.1',
      untrusted: '::ffff:203.0.113.9',
      plainTrusted: '10.0.0.1',
      plainUntrusted: '203.0.113.9',
    },
  ];
  const scenarios: { name: string; headers: IncomingHttpHeaders; behindTrusted: Partial<ClientInfo> }[] = [
    {
      name: 'spoofed X-Forwarded-For, one hop',
      headers: { 'x-forwarded-for': '6.6.6.6' },
      behindTrusted: { remoteAddr: '6.6.6.6' },
    },
    {
      name: 'X-Forwarded-For with a forged left-most hop and a trusted inner proxy',
      headers: {
        'x-forwarded-for': '6.6.6.6, 198.51.100.7, 10.0.0.5',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'shop.example',
      },
      behindTrusted: { remoteAddr: '198.51.100.7', proto: 'https', host: 'shop.example' },
    },
    {
      name: 'spoofed X-Real-IP',
      headers: { 'x-real-ip': '198.51.100.8' },
      behindTrusted: { remoteAddr: '198.51.100.8' },
    },
    {
      name: 'Forwarded with quoted IPv6 and port, several hops',
      headers: {
        forwarded: 'for=6.6.6.6, for="[2001:db8::7]:4711";proto=https;host=example.com, for=10.0.0.5;proto=http',
      },
      behindTrusted: { remoteAddr: '2001:db8::7', proto: 'https', host: 'example.com' },
    },
    {
      name: 'all three headers (Forwarded wins)',
      headers: { forwarded: 'for=198.51.100.1', 'x-forwarded-for': '198.51.100.2', 'x-real-ip': '198.51.100.3' },
      behindTrusted: { remoteAddr: '198.51.100.1' },
    },
    {
      name: 'X-Forwarded-For and X-Real-IP (X-Forwarded-For wins)',
      headers: { 'x-forwarded-for': '198.51.100.2', 'x-real-ip': '198.51.100.3' },
      behindTrusted: { remoteAddr: '198.51.100.2' },
    },
  ];

  for (const peer of peers) {
    for (const scenario of scenarios) {
      it(`${peer.name} untrusted peer ignores ${scenario.name}`, () => {
        expect(client(peer.untrusted, scenario.headers)).toEqual({
          remoteAddr: peer.plainUntrusted,
          proto: 'http',
          host: null,
        });
      });
      it(`${peer.name} trusted peer honours ${scenario.name}`, () => {
        expect(client(peer.trusted, scenario.headers)).toEqual({
          remoteAddr: peer.plainTrusted,
          proto: 'http',
          host: null,
          ...scenario.behindTrusted,
        });
      });
    }
    it(`${peer.name} trusted peer without headers is the client`, () => {
      expect(client(peer.trusted, {}, 'https')).toEqual({ remoteAddr: peer.plainTrusted, proto: 'https', host: null });
    });
  }
});

describe('resolveClient: walking the hops', () => {
  it('skips trusted hops from the right; when every hop is trusted the left-most is the client', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': '10.1.1.1, 10.2.2.2' }).remoteAddr).toBe('10.1.1.1');
    expect(client('10.0.0.1', { forwarded: 'for=10.1.1.1, for="[fd00::2]"' }).remoteAddr).toBe('10.1.1.1');
    expect(
      client('10.0.0.1', { 'x-forwarded-for': '198.51.100.1, 10.1.1.1, fd00::5, ::ffff:10.9.9.9' }).remoteAddr,
    ).toBe('198.51.100.1');
  });

  it('an invalid hop stops the walk and the peer stays the client', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': 'garbage, 10.0.0.2' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '198.51.100.1, , 10.0.0.2' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '198.51.100.1, 010.0.0.2' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { forwarded: 'for=unknown, for=10.0.0.2' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { forwarded: 'for=_hidden' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { forwarded: 'proto=https, for=10.0.0.2' }).remoteAddr).toBe('10.0.0.1');
  });

  it('does not look past the first untrusted hop, so junk left of it does not matter', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': 'garbage, 198.51.100.1, 10.0.0.2' }).remoteAddr).toBe(
      '198.51.100.1',
    );
    expect(client('10.0.0.1', { forwarded: 'for=unknown, for=198.51.100.1' }).remoteAddr).toBe('198.51.100.1');
  });

  it('drops ports and brackets, strips the v4-mapped prefix and lower-cases IPv6', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': '198.51.100.1:5555' }).remoteAddr).toBe('198.51.100.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '[2001:DB8::1]:443' }).remoteAddr).toBe('2001:db8::1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '2001:db8::1' }).remoteAddr).toBe('2001:db8::1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '::ffff:198.51.100.1' }).remoteAddr).toBe('198.51.100.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '[198.51.100.1]' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '198.51.100.1:http' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '[2001:db8::1]:x' }).remoteAddr).toBe('10.0.0.1');
  });

  it('reads repeated headers (joined) from the right', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': ['6.6.6.6', '198.51.100.4'] as unknown as string }).remoteAddr).toBe(
      '198.51.100.4',
    );
  });

  it('a present but broken Forwarded believes no hop and does not fall through to other headers', () => {
    const info = client('10.0.0.1', {
      forwarded: 'for="198.51.100.1',
      'x-forwarded-for': '6.6.6.6',
      'x-real-ip': '6.6.6.7',
    });
    expect(info.remoteAddr).toBe('10.0.0.1');
    const x = client('10.0.0.1', { 'x-forwarded-for': 'nonsense', 'x-real-ip': '6.6.6.7' });
    expect(x.remoteAddr).toBe('10.0.0.1');
  });

  it('a Forwarded header without for= leaves the address to X-Forwarded-For but still gives proto and host', () => {
    expect(
      client('10.0.0.1', {
        forwarded: 'proto=https;host=a.example',
        'x-forwarded-for': '198.51.100.9',
        'x-forwarded-proto': 'http',
      }),
    ).toEqual({
      remoteAddr: '198.51.100.9',
      proto: 'https',
      host: 'a.example',
    });
  });

  it('blank headers count as absent', () => {
    expect(client('10.0.0.1', { forwarded: '  ', 'x-forwarded-for': '198.51.100.9' }).remoteAddr).toBe('198.51.100.9');
    expect(client('10.0.0.1', { 'x-forwarded-for': '' }).remoteAddr).toBe('10.0.0.1');
  });
});

describe('resolveClient: proto and host', () => {
  it('Forwarded: proto/host of the chosen element, or the nearest element to its right that states them', () => {
    const headers = { forwarded: 'for=198.51.100.1;host=client.example, for=10.0.0.9;proto=https;host=cdn.example' };
    expect(client('10.0.0.1', headers)).toEqual({ remoteAddr: '198.51.100.1', proto: 'https', host: 'client.example' });
  });

  it('Forwarded: when the walk fails, the peer’s own element (the right-most) describes the request', () => {
    expect(
      client('10.0.0.1', { forwarded: 'for=unknown;proto=http, for=10.0.0.2;proto=https;host=lb.example' }),
    ).toEqual({
      remoteAddr: '10.0.0.1',
      proto: 'https',
      host: 'lb.example',
    });
  });

  it('X-Forwarded-Proto / X-Forwarded-Host: the right-most value (what the trusted peer wrote)', () => {
    expect(
      client('10.0.0.1', { 'x-forwarded-proto': 'http, https', 'x-forwarded-host': 'evil.example, good.example:8443' }),
    ).toEqual({
      remoteAddr: '10.0.0.1',
      proto: 'https',
      host: 'good.example:8443',
    });
  });

  it('ignores a proto other than http/https and a host that is not an authority', () => {
    expect(client('10.0.0.1', { 'x-forwarded-proto': 'ftp' }, 'https').proto).toBe('https');
    expect(client('10.0.0.1', { 'x-forwarded-proto': 'HTTPS' }).proto).toBe('https');
    expect(client('10.0.0.1', { 'x-forwarded-host': 'evil.example/path' }).host).toBeNull();
    expect(client('10.0.0.1', { 'x-forwarded-host': 'a b' }).host).toBeNull();
    expect(client('10.0.0.1', { 'x-forwarded-host': 'user@evil.example' }).host).toBeNull();
    expect(client('10.0.0.1', { 'x-forwarded-host': '[2001:db8::1]:8080' }).host).toBe('[2001:db8::1]:8080');
    expect(client('10.0.0.1', { forwarded: 'for=198.51.100.1;proto=gopher;host="a\\"b"' })).toEqual({
      remoteAddr: '198.51.100.1',
      proto: 'http',
      host: null,
    });
  });

  it('an untrusted peer keeps the socket scheme and no host whatever the headers say', () => {
    expect(
      client('203.0.113.1', {
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'x.example',
        forwarded: 'proto=https;host=y.example',
      }),
    ).toEqual({
      remoteAddr: '203.0.113.1',
      proto: 'http',
      host: null,
    });
  });
});

describe('resolveClient: without trusted subnets or peer', () => {
  it('null trusted: headers ignored, the v4-mapped prefix stripped', () => {
    expect(client('::ffff:127.0.0.1', { 'x-forwarded-for': '6.6.6.6' }, 'http', null)).toEqual({
      remoteAddr: '127.0.0.1',
      proto: 'http',
      host: null,
    });
    expect(client('::1', { forwarded: 'for=6.6.6.6' }, 'https', null)).toEqual({
      remoteAddr: '::1',
      proto: 'https',
      host: null,
    });
  });

  it('an unknown peer (socket gone, unix socket) is "" and never trusted', () => {
    expect(client(undefined, { 'x-forwarded-for': '6.6.6.6' })).toEqual({ remoteAddr: '', proto: 'http', host: null });
    expect(client('', { 'x-forwarded-for': '6.6.6.6' })).toEqual({ remoteAddr: '', proto: 'http', host: null });
  });

  it('an empty list trusts nobody', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': '6.6.6.6' }, 'http', compileTrustedSubnets([])).remoteAddr).toBe(
      '10.0.0.1',
    );
  });
});

describe('parseForwarded (RFC 7239)', () => {
  it('reads elements, case-insensitive names, quoted strings with escapes, and skips empty elements', () => {
    expect(
      parseForwarded('For="[2001:db8:cafe::17]:4711";PROTO=https;by=203.0.113.43, ,for=192.0.2.60;host="a\\"b",'),
    ).toEqual([
      { for: '[2001:db8:cafe::17]:4711', proto: 'https', host: null },
      { for: '192.0.2.60', proto: null, host: 'a"b' },
    ]);
  });

  it.each(['for="unterminated', 'for', 'for=', 'f o r=1.2.3.4', 'for="1.2.3.4"x', 'for=1.2.3.4 x=1'])(
    'returns null for %j',
    (header) => {
      expect(parseForwarded(header)).toBeNull();
    },
  );
});

describe('resolveClient behind fastify.inject (remoteAddress)', () => {
  it('sees the proxy-provided client only when the socket peer is trusted', async () => {
    const app = Fastify();
    const trusted = compileTrustedSubnets(['127.0.0.0/8']);
    app.get('/', async (request) => resolveClient(trusted, request.raw.socket.remoteAddress, 'http', request.headers));
    await app.ready();
    const headers = { 'x-forwarded-for': '6.6.6.6, 198.51.100.20', 'x-forwarded-proto': 'https' };
    const viaProxy = await app.inject({ url: '/', headers, remoteAddress: '127.0.0.1' });
    expect(viaProxy.json()).toEqual({ remoteAddr: '198.51.100.20', proto: 'https', host: null });
    const direct = await app.inject({ url: '/', headers, remoteAddress: '203.0.113.50' });
    expect(direct.json()).toEqual({ remoteAddr: '203.0.113.50', proto: 'http', host: null });
    await app.close();
  });
});
