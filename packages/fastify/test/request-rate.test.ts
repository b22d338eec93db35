// limit_req (nginx's limit_req with nodelay): the leaky bucket on a clock the test moves, then the
// plugin with real PHP answering 429 before PHP runs.
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { warmpool } from '../src/index.js';
import { compileRequestRate, type RequestRateCheck, type RequestRateRule } from '../src/network/request-rate.js';

function limiter(rules: RequestRateRule[]): { check: RequestRateCheck; clock: { now: number } } {
  const clock = { now: 1_000_000 };
  const check = compileRequestRate(rules, () => clock.now);
  if (check === null) throw new Error('expected rules');
  return { check, clock };
}

describe('compileRequestRate', () => {
  it('is null without rules', () => {
    expect(compileRequestRate(undefined)).toBeNull();
    expect(compileRequestRate([])).toBeNull();
  });

  it('5r/m without burst: one request every 12 s per client; the refused ones count for nothing', () => {
    const { check, clock } = limiter([{ prefix: '/wp-login.php', rate: '5r/m' }]);
    expect(check('/wp-login.php', '203.0.113.7', 'GET')).toBe(0);
    expect(check('/wp-login.php', '203.0.113.7', 'GET')).toBe(12);
    clock.now += 6_000;
    expect(check('/wp-login.php', '203.0.113.7', 'GET')).toBe(6);
    clock.now += 6_000;
    expect(check('/wp-login.php', '203.0.113.7', 'GET')).toBe(0);
    // another client, another path, a path that only starts alike: not limited by this one
    expect(check('/wp-login.php', '203.0.113.8', 'GET')).toBe(0);
    expect(check('/', '203.0.113.7', 'GET')).toBe(0);
    expect(check('/wp-login.phpx', '203.0.113.7', 'GET')).toBe(0);
    expect(check('/wp-login.php/x', '203.0.113.7', 'GET')).toBe(12);
  });

  it('burst: that many more at once, then the rate', () => {
    const { check, clock } = limiter([{ prefix: '/xmlrpc.php', rate: '2r/s', burst: 3 }]);
    const answers = Array.from({ length: 6 }, () => check('/xmlrpc.php', '198.51.100.1', 'GET'));
    expect(answers).toEqual([0, 0, 0, 0, 1, 1]);
    clock.now += 500;
    expect(check('/xmlrpc.php', '198.51.100.1', 'GET')).toBe(0);
    expect(check('/xmlrpc.php', '198.51.100.1', 'GET')).toBe(1);
  });

  it('counts an IPv6 client by its /64, an IPv4-mapped one as IPv4; the longest prefix decides', () => {
    const { check } = limiter([
      { prefix: '/', rate: '100r/s', burst: 100 },
      { prefix: '/login', rate: '1r/m' },
    ]);
    expect(check('/login', '2001:db8:1:2::10', 'GET')).toBe(0);
    expect(check('/login', '2001:db8:1:2:aaaa::1', 'GET')).toBe(60);
    expect(check('/login', '2001:db8:1:3::10', 'GET')).toBe(0);
    expect(check('/login', '::ffff:192.0.2.1', 'GET')).toBe(0);
    expect(check('/login', '192.0.2.1', 'GET')).toBe(60);
    expect(check('/shop', '192.0.2.1', 'GET')).toBe(0);
    // in any case: a case-insensitive router behind it is no way around the rate
    expect(check('/LOGIN', '192.0.2.1', 'GET')).toBe(60);
    expect(check('/Login/x', '192.0.2.1', 'GET')).toBe(60);
  });

  it("methods: a rule counts only its methods (Adminer's login is a POST to the page every GET reads); for one prefix it comes before the rule for all", () => {
    const { check } = limiter([
      { prefix: '/', rate: '1r/m', methods: ['post'] },
      { prefix: '/', rate: '100r/s', burst: 100 },
    ]);
    expect(check('/', '192.0.2.1', 'POST')).toBe(0);
    expect(check('/', '192.0.2.1', 'POST')).toBe(60);
    // the GETs of the same client are the other rule's
    for (let i = 0; i < 20; i++) expect(check('/?file=default.css', '192.0.2.1', 'GET')).toBe(0);
    // a method no rule lists, with no rule for all: not limited
    const { check: posts } = limiter([{ prefix: '/login', rate: '1r/m', methods: ['POST', 'PUT'] }]);
    expect(posts('/login', '192.0.2.9', 'PUT')).toBe(0);
    expect(posts('/login', '192.0.2.9', 'POST')).toBe(60);
    expect(posts('/login', '192.0.2.9', 'GET')).toBe(0);
    expect(posts('/login', '192.0.2.9', 'GET')).toBe(0);
    // a GET rule counts HEAD, which runs the same script
    const { check: gets } = limiter([{ prefix: '/feed', rate: '1r/m', methods: ['GET'] }]);
    expect(gets('/feed', '192.0.2.9', 'GET')).toBe(0);
    expect(gets('/feed', '192.0.2.9', 'HEAD')).toBeGreaterThan(0);
  });

  it.each([
    [[{ prefix: '/a', rate: '5r/s', methods: [] }], 'limit_req[0].methods'],
    [[{ prefix: '/a', rate: '5r/s', methods: 'POST' }], 'limit_req[0].methods'],
    [[{ prefix: '/a', rate: '5r/s', methods: ['PO ST'] }], 'limit_req[0].methods'],
    // a typo would make a rule that never counts
    [[{ prefix: '/a', rate: '5r/s', methods: ['GET', 'POTS'] }], 'limit_req[0].methods'],
    [
      [
        { prefix: '/a', rate: '5r/s', methods: ['POST'] },
        { prefix: '/a', rate: '1r/s', methods: ['post'] },
      ],
      'limit_req[1].prefix',
    ],
    [[{ prefix: '/a', rate: '5' }], 'limit_req[0].rate'],
    [[{ prefix: '/a', rate: '0r/s' }], 'limit_req[0].rate'],
    [[{ prefix: '/a', rate: '5r/h' }], 'limit_req[0].rate'],
    [[{ prefix: 'a', rate: '5r/s' }], 'limit_req[0].prefix'],
    [[{ prefix: '/a', rate: '5r/s', burst: -1 }], 'limit_req[0].burst'],
    [[{ prefix: '/a', rate: '5r/s', nodelay: true }], 'limit_req[0].nodelay'],
    [
      [
        { prefix: '/a', rate: '5r/s' },
        { prefix: '/a/', rate: '1r/s' },
      ],
      'limit_req[1].prefix',
    ],
  ])('refuses %j naming %s', (rules, key) => {
    try {
      compileRequestRate(rules as unknown as RequestRateRule[]);
      expect.unreachable();
    } catch (error) {
      expect((error as { details: { key: string } }).details.key).toBe(key);
    }
  });
});

const php = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

describe('limit_req in the plugin', () => {
  it('answers 429 with Retry-After before PHP; other clients and paths go on', async () => {
    const app = Fastify();
    apps.push(app);
    await app.register(warmpool, {
      command: ['php', php('echo.php')],
      pool: { num_workers: 1 },
      limit_req: [{ prefix: '/wp-login.php', rate: '1r/m', burst: 1 }],
    });
    const login = (remoteAddress: string) => app.inject({ url: '/wp-login.php', remoteAddress });
    const counts: number[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await login('203.0.113.7');
      expect(res.statusCode).toBe(200);
      counts.push(res.json().count);
    }
    const refused = await login('203.0.113.7');
    expect([refused.statusCode, refused.headers['retry-after'], refused.body]).toEqual([
      429,
      '60',
      'Too Many Requests\n',
    ]);
    // PHP never saw it: the worker's counter goes on from the last request it ran
    const other = await login('203.0.113.8');
    expect([other.statusCode, other.json().count]).toEqual([200, counts[1]! + 1]);
    expect((await app.inject({ url: '/shop', remoteAddress: '203.0.113.7' })).statusCode).toBe(200);
  });
});
