import type { IncomingHttpHeaders } from 'node:http';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { formatIPv6, parseAddress, parseCidr, plainAddress } from '../src/network/cidr.js';
import {
  compileTrustedSubnets,
  parseForwarded,
  resolveClient,
  resolveRealIpHeader,
  type ForwardedClient,
  type RealIpHeader,
  type TrustedSubnets,
} from '../src/network/trusted-subnets.js';

const TRUSTED = compileTrustedSubnets(['10.0.0.0/8', 'fd00::/8']);

function client(
  peer: string | undefined,
  headers: IncomingHttpHeaders,
  scheme: 'http' | 'https' = 'http',
  trusted: TrustedSubnets | null = TRUSTED,
  header: RealIpHeader = 'x-forwarded-for',
): ForwardedClient {
  return resolveClient(trusted, header, peer, scheme, headers, 40000);
}

const forwarded = (peer: string, headers: IncomingHttpHeaders) => client(peer, headers, 'http', TRUSTED, 'forwarded');

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

// Every way a client may try to be someone else, behind each kind of proxy. The peer 10.0.0.1 is a
// trusted proxy (port 40000); 203.0.113.9 is a client talking to us directly. What the proxy adds
// or replaces is spelled out in each case: nginx's $proxy_add_x_forwarded_for APPENDS the client to
// what the client sent; `proxy_set_header X-Forwarded-For $remote_addr` OVERWRITES it.
const PROXY = '10.0.0.1';
const CLIENT = '198.51.100.7';
const SPOOF = {
  'x-forwarded-for': '6.6.6.6',
  forwarded: 'for=6.6.6.6;proto=https;host=evil.example',
  'x-real-ip': '6.6.6.7',
  'x-forwarded-host': 'evil.example',
};
const direct = (proto: 'http' | 'https' = 'http'): ForwardedClient => ({
  remoteAddr: PROXY,
  remotePort: 40000,
  proto,
  host: null,
  peerTrusted: true,
});
const from = (remoteAddr: string, extra: Partial<ForwardedClient> = {}): ForwardedClient => ({
  remoteAddr,
  remotePort: null,
  proto: 'http',
  host: null,
  peerTrusted: true,
  ...extra,
});

interface Case {
  name: string;
  header: RealIpHeader;
  headers: IncomingHttpHeaders;
  scheme?: 'http' | 'https';
  expected: ForwardedClient;
}

const CASES: Case[] = [
  // ---- real_ip_header: X-Forwarded-For (the default) ----
  {
    name: 'XFF: nginx appends, the client sent nothing',
    header: 'x-forwarded-for',
    headers: { 'x-forwarded-for': CLIENT, 'x-forwarded-proto': 'https' },
    expected: from(CLIENT, { proto: 'https' }),
  },
  {
    name: 'XFF: nginx appends to a forged X-Forwarded-For: the hop nginx added wins',
    header: 'x-forwarded-for',
    headers: { 'x-forwarded-for': `6.6.6.6, 6.6.6.8, ${CLIENT}` },
    expected: from(CLIENT),
  },
  {
    name: 'XFF: nginx overwrites with $remote_addr: the forged value never arrives',
    header: 'x-forwarded-for',
    headers: { 'x-forwarded-for': CLIENT },
    expected: from(CLIENT),
  },
  {
    name: 'XFF: two trusted proxies append (CDN → nginx): the right-most untrusted hop',
    header: 'x-forwarded-for',
    headers: { 'x-forwarded-for': `6.6.6.6, ${CLIENT}, 10.0.0.5` },
    expected: from(CLIENT),
  },
  {
    name: 'XFF: Forwarded for=/proto=/host=, X-Real-IP and X-Forwarded-Host sent by the client are not read',
    header: 'x-forwarded-for',
    headers: { ...SPOOF, 'x-forwarded-for': `6.6.6.6, ${CLIENT}` },
    expected: from(CLIENT),
  },
  {
    name: 'XFF: nginx appends to a client that sent only Forwarded and X-Forwarded-Host',
    header: 'x-forwarded-for',
    headers: { forwarded: SPOOF.forwarded, 'x-forwarded-host': 'evil.example', 'x-forwarded-for': CLIENT },
    expected: from(CLIENT),
  },
  {
    name: 'XFF: for=unknown-style junk on the right: the peer stays the client',
    header: 'x-forwarded-for',
    headers: { 'x-forwarded-for': '6.6.6.6, unknown' },
    expected: direct(),
  },
  {
    name: 'XFF: an obfuscated identifier: the peer stays the client',
    header: 'x-forwarded-for',
    headers: { 'x-forwarded-for': '_hidden' },
    expected: direct(),
  },
  {
    name: 'XFF: a hop with a port gives the client port',
    header: 'x-forwarded-for',
    headers: { 'x-forwarded-for': `6.6.6.6, ${CLIENT}:5555` },
    expected: from(CLIENT, { remotePort: 5555 }),
  },
  {
    name: 'XFF: no header (the proxy itself asks): the peer, its port and the socket scheme',
    header: 'x-forwarded-for',
    headers: {},
    scheme: 'https',
    expected: direct('https'),
  },
  {
    name: 'XFF: X-Forwarded-Proto is the right-most http/https value',
    header: 'x-forwarded-for',
    headers: { 'x-forwarded-for': CLIENT, 'x-forwarded-proto': 'https, http' },
    expected: from(CLIENT, { proto: 'http' }),
  },
  // ---- real_ip_header: Forwarded ----
  {
    name: 'Forwarded: nginx overwrites with its own element',
    header: 'forwarded',
    headers: { forwarded: `for=${CLIENT};proto=https;host=shop.example` },
    expected: from(CLIENT, { proto: 'https', host: 'shop.example' }),
  },
  {
    name: "Forwarded: a proxy appends to the client's forged element: the client's for=, proto=, host= are not read",
    header: 'forwarded',
    headers: { forwarded: `${SPOOF.forwarded}, for=${CLIENT};proto=http;host=shop.example` },
    expected: from(CLIENT, { host: 'shop.example' }),
  },
  {
    name: 'Forwarded: two trusted proxies append; proto/host of the first trusted element that states them',
    header: 'forwarded',
    headers: { forwarded: `for=6.6.6.6, for="[2001:db8::7]:4711";host=shop.example, for=10.0.0.5;proto=https` },
    expected: from('2001:db8::7', { remotePort: 4711, proto: 'https', host: 'shop.example' }),
  },
  {
    name: 'Forwarded: for=unknown: the peer stays the client; its own element still gives proto and host',
    header: 'forwarded',
    headers: { forwarded: 'for=unknown;proto=https;host=shop.example' },
    expected: { ...direct('https'), host: 'shop.example' },
  },
  {
    name: 'Forwarded: an obfuscated for=_hidden: the peer stays the client',
    header: 'forwarded',
    headers: { forwarded: 'for=6.6.6.6, for=_hidden' },
    expected: direct(),
  },
  {
    name: 'Forwarded: X-Forwarded-For, X-Forwarded-Proto and X-Real-IP are not read',
    header: 'forwarded',
    headers: { 'x-forwarded-for': CLIENT, 'x-forwarded-proto': 'https', 'x-real-ip': CLIENT },
    expected: direct(),
  },
  {
    name: 'Forwarded: a broken header believes nothing',
    header: 'forwarded',
    headers: { forwarded: `for="${CLIENT}`, 'x-forwarded-for': '6.6.6.6' },
    expected: direct(),
  },
  // ---- real_ip_header: X-Real-IP ----
  {
    name: 'X-Real-IP: nginx sets $remote_addr; other headers, X-Forwarded-Proto included, are not read',
    header: 'x-real-ip',
    headers: { ...SPOOF, 'x-real-ip': CLIENT, 'x-forwarded-proto': 'https' },
    expected: from(CLIENT),
  },
  {
    name: 'X-Real-IP: a value that is not an address: the peer stays the client',
    header: 'x-real-ip',
    headers: { 'x-real-ip': 'unknown' },
    expected: direct(),
  },
  {
    name: 'X-Real-IP: a trusted address (the proxy reporting itself) is the client',
    header: 'x-real-ip',
    headers: { 'x-real-ip': '10.0.0.9' },
    expected: from('10.0.0.9'),
  },
];

describe('resolveClient: spoofing attempts behind each proxy (table)', () => {
  for (const c of CASES) {
    it(c.name, () => {
      expect(resolveClient(TRUSTED, c.header, PROXY, c.scheme ?? 'http', c.headers, 40000)).toEqual(c.expected);
    });
    it(`${c.name}: sent straight to us (untrusted peer), nothing is read`, () => {
      expect(resolveClient(TRUSTED, c.header, '203.0.113.9', 'http', c.headers, 50000)).toEqual({
        remoteAddr: '203.0.113.9',
        remotePort: 50000,
        proto: 'http',
        host: null,
        peerTrusted: false,
      });
    });
  }

  it('IPv6 and IPv4-mapped peers are trusted the same way', () => {
    for (const peer of ['fd00::1', '::ffff:10.0.0.1']) {
      expect(client(peer, { 'x-forwarded-for': `6.6.6.6, ${CLIENT}` }).remoteAddr).toBe(CLIENT);
    }
    expect(client('::ffff:203.0.113.9', { 'x-forwarded-for': CLIENT }).remoteAddr).toBe('203.0.113.9');
  });
});

describe('resolveRealIpHeader', () => {
  it('takes the three header names in any case, X-Forwarded-For by default', () => {
    expect(resolveRealIpHeader(undefined)).toBe('x-forwarded-for');
    expect(resolveRealIpHeader('Forwarded')).toBe('forwarded');
    expect(resolveRealIpHeader('X-REAL-IP')).toBe('x-real-ip');
  });

  it.each(['X-Forwarded-Host', 'CF-Connecting-IP', '', 42])('refuses %j naming the option', (value) => {
    expect(() => resolveRealIpHeader(value)).toThrow(/"real_ip_header"/);
  });
});

describe('resolveClient: walking the hops', () => {
  it('skips trusted hops from the right; when every hop is trusted the left-most is the client', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': '10.1.1.1, 10.2.2.2' }).remoteAddr).toBe('10.1.1.1');
    expect(forwarded('10.0.0.1', { forwarded: 'for=10.1.1.1, for="[fd00::2]"' }).remoteAddr).toBe('10.1.1.1');
    expect(
      client('10.0.0.1', { 'x-forwarded-for': '198.51.100.1, 10.1.1.1, fd00::5, ::ffff:10.9.9.9' }).remoteAddr,
    ).toBe('198.51.100.1');
  });

  it('an invalid hop stops the walk and the peer stays the client', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': 'garbage, 10.0.0.2' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '198.51.100.1, , 10.0.0.2' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '198.51.100.1, 010.0.0.2' }).remoteAddr).toBe('10.0.0.1');
    expect(forwarded('10.0.0.1', { forwarded: 'for=unknown, for=10.0.0.2' }).remoteAddr).toBe('10.0.0.1');
    expect(forwarded('10.0.0.1', { forwarded: 'for=_hidden' }).remoteAddr).toBe('10.0.0.1');
    expect(forwarded('10.0.0.1', { forwarded: 'proto=https, for=10.0.0.2' }).remoteAddr).toBe('10.0.0.1');
  });

  it('does not look past the first untrusted hop, so junk left of it does not matter', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': 'garbage, 198.51.100.1, 10.0.0.2' }).remoteAddr).toBe(
      '198.51.100.1',
    );
    expect(forwarded('10.0.0.1', { forwarded: 'for=unknown, for=198.51.100.1' }).remoteAddr).toBe('198.51.100.1');
  });

  it('drops brackets, strips the v4-mapped prefix and lower-cases IPv6; keeps a valid port', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': '198.51.100.1:5555' })).toMatchObject({
      remoteAddr: '198.51.100.1',
      remotePort: 5555,
    });
    expect(client('10.0.0.1', { 'x-forwarded-for': '[2001:DB8::1]:443' })).toMatchObject({
      remoteAddr: '2001:db8::1',
      remotePort: 443,
    });
    expect(client('10.0.0.1', { 'x-forwarded-for': '2001:db8::1' }).remoteAddr).toBe('2001:db8::1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '::ffff:198.51.100.1' }).remoteAddr).toBe('198.51.100.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '[198.51.100.1]' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '198.51.100.1:http' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '[2001:db8::1]:x' }).remoteAddr).toBe('10.0.0.1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '198.51.100.1:99999' }).remotePort).toBeNull();
  });

  it('gives a forwarded IPv6 client in RFC 5952 form, without a zone: its spelling never reaches PHP or a log line', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': '2001:DB8:0:0:0:0:0:1' }).remoteAddr).toBe('2001:db8::1');
    expect(client('10.0.0.1', { 'x-forwarded-for': '2001:0db8:0000:0001:0000:0000:0000:0001' }).remoteAddr).toBe(
      '2001:db8:0:1::1',
    );
    const forged = client('10.0.0.1', {
      'x-forwarded-for': 'fe80::1%x - - [01/Jan/2000:00:00:00 +0000] "GET /wp-login.php',
    });
    expect(forged.remoteAddr).toBe('fe80::1');
    // and a direct peer the same, trusted subnets or none
    expect(client('fe80::fc:ff:fe00:1%eth0', {}).remoteAddr).toBe('fe80::fc:ff:fe00:1');
    expect(client('fe80::fc:ff:fe00:1%eth0', {}, 'http', null).remoteAddr).toBe('fe80::fc:ff:fe00:1');
    expect(client('::ffff:192.0.2.2', {}, 'http', null).remoteAddr).toBe('192.0.2.2');
  });

  it('reads repeated headers (joined) from the right', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': ['6.6.6.6', '198.51.100.4'] as unknown as string }).remoteAddr).toBe(
      '198.51.100.4',
    );
  });

  it('blank headers count as absent', () => {
    expect(client('10.0.0.1', { 'x-forwarded-for': '' }).remoteAddr).toBe('10.0.0.1');
    expect(forwarded('10.0.0.1', { forwarded: '  ' }).remoteAddr).toBe('10.0.0.1');
  });
});

describe('resolveClient: proto and host', () => {
  it('ignores a proto other than http/https and a host that is not an authority', () => {
    expect(client('10.0.0.1', { 'x-forwarded-proto': 'ftp' }, 'https').proto).toBe('https');
    expect(client('10.0.0.1', { 'x-forwarded-proto': 'HTTPS' }).proto).toBe('https');
    expect(forwarded('10.0.0.1', { forwarded: 'for=198.51.100.1;host="evil.example/path"' }).host).toBeNull();
    expect(forwarded('10.0.0.1', { forwarded: 'for=198.51.100.1;host="a b"' }).host).toBeNull();
    expect(forwarded('10.0.0.1', { forwarded: 'for=198.51.100.1;host="[2001:db8::1]:8080"' }).host).toBe(
      '[2001:db8::1]:8080',
    );
    expect(forwarded('10.0.0.1', { forwarded: 'for=198.51.100.1;proto=gopher;host="a\\"b"' })).toEqual(
      from('198.51.100.1'),
    );
  });

  it('X-Forwarded-Host is never read, whatever the mode', () => {
    for (const header of ['x-forwarded-for', 'forwarded', 'x-real-ip'] as const)
      expect(client('10.0.0.1', { 'x-forwarded-host': 'evil.example' }, 'http', TRUSTED, header).host).toBeNull();
  });
});

describe('resolveClient: without trusted subnets or peer', () => {
  it('null trusted: headers ignored, the v4-mapped prefix stripped, the peer port kept', () => {
    expect(client('::ffff:127.0.0.1', { 'x-forwarded-for': '6.6.6.6' }, 'http', null)).toEqual({
      remoteAddr: '127.0.0.1',
      remotePort: 40000,
      proto: 'http',
      host: null,
      peerTrusted: false,
    });
    expect(client('::1', { forwarded: 'for=6.6.6.6' }, 'https', null, 'forwarded')).toMatchObject({
      remoteAddr: '::1',
      proto: 'https',
    });
  });

  it('an unknown peer (socket gone, unix socket) is "" and never trusted', () => {
    expect(client(undefined, { 'x-forwarded-for': '6.6.6.6' })).toEqual({
      remoteAddr: '',
      remotePort: null,
      proto: 'http',
      host: null,
      peerTrusted: false,
    });
    expect(client('', { 'x-forwarded-for': '6.6.6.6' }).remoteAddr).toBe('');
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
    app.get('/', async (request) =>
      resolveClient(trusted, 'x-forwarded-for', request.raw.socket.remoteAddress, 'http', request.headers),
    );
    await app.ready();
    const headers = { 'x-forwarded-for': '6.6.6.6, 198.51.100.20', 'x-forwarded-proto': 'https' };
    const viaProxy = await app.inject({ url: '/', headers, remoteAddress: '127.0.0.1' });
    expect(viaProxy.json()).toEqual({
      remoteAddr: '198.51.100.20',
      remotePort: null,
      proto: 'https',
      host: null,
      peerTrusted: true,
    });
    const direct = await app.inject({ url: '/', headers, remoteAddress: '203.0.113.50' });
    expect(direct.json()).toEqual({
      remoteAddr: '203.0.113.50',
      remotePort: null,
      proto: 'http',
      host: null,
      peerTrusted: false,
    });
    await app.close();
  });
});

describe('formatIPv6 and plainAddress', () => {
  it('writes RFC 5952 text: lower case, no leading zeros, the longest zero run (the first of equals) as ::', () => {
    const words = new Uint32Array(4);
    const format = (text: string) => {
      expect(parseAddress(text, words)).toBe(6);
      return formatIPv6(words);
    };
    expect(format('2001:DB8:0:0:0:0:0:1')).toBe('2001:db8::1');
    expect(format('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(format('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1');
    expect(format('::')).toBe('::');
    expect(format('::1')).toBe('::1');
    expect(format('fe80::')).toBe('fe80::');
    expect(format('1:0:0:2:0:0:0:3')).toBe('1:0:0:2::3');
  });

  it('plainAddress: an IPv4-mapped peer as IPv4, an IPv6 one without zone; anything else as it is', () => {
    expect(plainAddress('::ffff:192.0.2.2')).toBe('192.0.2.2');
    expect(plainAddress('::FFFF:c000:202')).toBe('192.0.2.2');
    expect(plainAddress('fe80::1%eth0')).toBe('fe80::1');
    expect(plainAddress('192.0.2.2')).toBe('192.0.2.2');
    expect(plainAddress('-')).toBe('-');
  });
});
