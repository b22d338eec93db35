import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { compileAccess, requestPath, type AccessCheck, type AccessRule } from '../src/network/access.js';
import { resolveClient } from '../src/network/trusted-subnets.js';

function check(rules: AccessRule[]): AccessCheck {
  const compiled = compileAccess(rules);
  if (compiled === null) throw new Error('expected rules');
  return compiled;
}

describe('compileAccess', () => {
  it('is null when there are no rules (the feature is off)', () => {
    expect(compileAccess(undefined)).toBeNull();
    expect(compileAccess([])).toBeNull();
  });

  it.each([
    [[{ prefix: 'metrics', allow: [] }], 'access[0].prefix'],
    [[{ prefix: '/m?x', allow: [] }], 'access[0].prefix'],
    [[{ prefix: '/a', allow: ['10.0.0.0/8', 'nope'] }], 'access[0].allow[1]'],
    [[{ prefix: '/a' }, { prefix: '/b', deny: ['1.2.3.4/40'] }], 'access[1].deny[0]'],
    [[{ prefix: '/a', allow: '10.0.0.0/8' }], 'access[0].allow'],
    [[{ prefix: '/a', alow: [] }], 'access[0].alow'],
    [[{ prefix: '/a/' }, { prefix: '/a' }], 'access[1].prefix'],
    [['/a'], 'access[0]'],
  ])('rejects %j naming %s', (rules, key) => {
    try {
      compileAccess(rules as unknown as AccessRule[]);
      expect.unreachable();
    } catch (error) {
      expect((error as { code: string }).code).toBe('WP_FASTIFY_INVALID_OPTION');
      expect((error as { details: { key: string } }).details.key).toBe(key);
    }
  });

  it('matches prefixes on segment boundaries; a guarding rule in any case, an opening one as written', () => {
    const allowed = check([
      { prefix: '/Metrics', allow: ['127.0.0.1/32'] },
      { prefix: '/metrics/public' },
      { prefix: '/shop', allow: ['all'] },
      { prefix: '/', deny: ['all'] },
    ]);
    expect(allowed('/metrics', '10.0.0.1')).toBe(false);
    expect(allowed('/metrics/', '10.0.0.1')).toBe(false);
    expect(allowed('/metrics/x', '10.0.0.1')).toBe(false);
    expect(allowed('/metricsfoo', '10.0.0.1')).toBe(false);
    // an upstream routing case-insensitively (Express) must not be reached around the rule
    expect(allowed('/METRICS', '10.0.0.1')).toBe(false);
    expect(allowed('/mEtRiCs/x', '10.0.0.1')).toBe(false);
    expect(allowed('/metrics', '127.0.0.1')).toBe(true);
    // the open sub-path and the allow-all prefix open what they name, no other spelling
    expect(allowed('/metrics/public', '10.0.0.1')).toBe(true);
    expect(allowed('/metrics/PUBLIC', '10.0.0.1')).toBe(false);
    // Java's path parameters aside, as the guarding rules read them too: a session id keeps it open
    expect(allowed('/metrics/public;jsessionid=x', '10.0.0.1')).toBe(true);
    expect(allowed('/metrics/public/..;/x', '10.0.0.1')).toBe(false);
    expect(allowed('/shop/cart', '10.0.0.1')).toBe(true);
    expect(allowed('/SHOP/cart', '10.0.0.1')).toBe(false);
  });

  it('a guarding rule covers every spelling some backend reads as its path: Unicode case, path parameters, a trailing byte', () => {
    const allowed = check([
      { prefix: '/admin', deny: ['all'] },
      { prefix: '/stats', deny: ['all'] },
    ]);
    for (const url of [
      '/adm%C4%B1n', // ı: "i" to Java's equalsIgnoreCase
      '/ADM%C4%B0N', // İ
      '/%C5%BFtats', // ſ: "s" to Go's EqualFold
      '/admin;jsessionid=x', // Tomcat drops path parameters
      '/admin;/users',
      '/;x/admin',
      '/x/..;/admin',
      '/admin.', // a trailing dot, space or NUL (Windows, old Java)
      '/admin%20',
      '/admin%00',
      '/admin.json', // Spring's suffix match
      '/admin~',
    ])
      expect({ url, allowed: allowed(requestPath(url), '10.0.0.1') }).toEqual({ url, allowed: false });
    for (const url of ['/administrator', '/admin-tools', '/admin_x', '/adminx', '/statsd'])
      expect({ url, allowed: allowed(requestPath(url), '10.0.0.1') }).toEqual({ url, allowed: true });
  });

  it('longest prefix wins; deny before allow; allow given and client outside → denied', () => {
    const allowed = check([
      { prefix: '/', deny: ['203.0.113.0/24'] },
      { prefix: '/admin', allow: ['10.0.0.0/8', 'fd00::/8'], deny: ['10.6.6.6'] },
      { prefix: '/admin/public' },
    ]);
    expect(allowed('/', '203.0.113.5')).toBe(false);
    expect(allowed('/shop', '198.51.100.1')).toBe(true);
    expect(allowed('/admin', '10.1.1.1')).toBe(true);
    expect(allowed('/admin/users', 'fd00::7')).toBe(true);
    expect(allowed('/admin', '10.6.6.6')).toBe(false);
    expect(allowed('/admin', '198.51.100.1')).toBe(false);
    // the more specific /admin rule replaces "/" entirely: its allow list decides
    expect(allowed('/admin', '203.0.113.5')).toBe(false);
    // an open rule carves out a sub-path, even for the addresses "/" denies
    expect(allowed('/admin/public/logo.png', '203.0.113.5')).toBe(true);
  });

  it('treats v4-mapped clients as IPv4; a non-address is in no list', () => {
    const allowed = check([
      { prefix: '/metrics', allow: ['127.0.0.1/32', '::1/128'] },
      { prefix: '/blog', deny: ['0.0.0.0/0', '::/0'] },
    ]);
    expect(allowed('/metrics', '::ffff:127.0.0.1')).toBe(true);
    expect(allowed('/metrics', '::1')).toBe(true);
    expect(allowed('/metrics', '')).toBe(false);
    expect(allowed('/blog', '')).toBe(true);
    expect(allowed('/blog', '::ffff:1.2.3.4')).toBe(false);
  });

  it('"all" is every client, as in nginx: deny all closes a prefix, allow all opens one', () => {
    const allowed = check([
      { prefix: '/data', deny: ['all'] },
      { prefix: '/admin', allow: ['10.0.0.0/8'], deny: ['ALL'] },
      { prefix: '/shop', allow: ['all'], deny: ['203.0.113.0/24'] },
      { prefix: '/open', allow: ['all'] },
    ]);
    for (const client of ['127.0.0.1', '::1', '10.1.1.1', '']) {
      expect(allowed('/data/pages/start.txt', client)).toBe(false);
      expect(allowed('/admin', client)).toBe(false);
      expect(allowed('/open', client)).toBe(true);
    }
    expect(allowed('/datafile', '127.0.0.1')).toBe(true);
    expect(allowed('/shop', '203.0.113.9')).toBe(false);
    expect(allowed('/shop', '198.51.100.1')).toBe(true);
    expect(allowed('/shop', '')).toBe(true);
  });

  it('an empty allow list denies everyone', () => {
    expect(check([{ prefix: '/closed', allow: [] }])('/closed', '127.0.0.1')).toBe(false);
  });
});

describe('requestPath', () => {
  it.each([
    ['/metrics?x=1', '/metrics'],
    ['/metrics#frag', '/metrics'],
    ['/%6Detrics', '/metrics'],
    ['//metrics', '/metrics'],
    ['/x/../metrics', '/metrics'],
    ['/./metrics/./a/', '/metrics/a/'],
    ['/../../metrics', '/metrics'],
    ['/metrics%2Fsecret', '/metrics/secret'],
    ['/caf%C3%A9', '/café'],
    ['/bad%zz/%6d', '/bad%zz/m'],
    // a backslash is a slash, as the proxy's URL parser reads it
    ['/metrics\\x', '/metrics/x'],
    ['/metrics%5Cx', '/metrics/x'],
    ['/a\\..\\metrics', '/metrics'],
    ['/', '/'],
    ['/a/b', '/a/b'],
  ])('%j → %j', (url, path) => {
    expect(requestPath(url)).toBe(path);
  });
});

describe('access in an onRequest hook (the integrator’s wiring)', () => {
  it('answers 403 for guarded paths, lets others through, and cannot be bypassed with encodings', async () => {
    const app = Fastify();
    const access = check([{ prefix: '/metrics', allow: ['127.0.0.1/32'] }]);
    app.addHook('onRequest', async (request, reply) => {
      const { remoteAddr } = resolveClient(
        null,
        'x-forwarded-for',
        request.raw.socket.remoteAddress,
        'http',
        request.headers,
      );
      if (!access(requestPath(request.url), remoteAddr)) return reply.code(403).send('Forbidden\n');
    });
    app.get('/metrics', async () => 'secret');
    app.get('/*', async () => 'page');
    await app.ready();
    expect((await app.inject({ url: '/metrics', remoteAddress: '127.0.0.1' })).body).toBe('secret');
    for (const url of ['/metrics', '/%6detrics', '/metrics?x', '//metrics', '/a/../metrics']) {
      const res = await app.inject({ url, remoteAddress: '198.51.100.1' });
      expect(res.statusCode, url).toBe(403);
    }
    expect((await app.inject({ url: '/metricsfoo', remoteAddress: '198.51.100.1' })).body).toBe('page');
    await app.close();
  });
});
