// Property-based checks of the request mapper (Fastify → exchange request → RR context): whatever headers, cookies and query a client sends,
// PHP gets RoadRunner's shapes (canonical names without Host, every value in order, cookies decoded).
import { once } from 'node:events';
import { connect, type AddressInfo } from 'node:net';
import fc from 'fast-check';
import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import type { FastifyRequest } from 'fastify';
import { parseCookies, toRequestContext as toContext } from '@warmpool/pool';
import { canonicalHeaderName, toExchangeRequest } from '../src/http/exchange-request.js';
import { clientInfoOf } from '../src/network/client-info.js';

/**
 * The two halves together: Fastify request → exchange request (here) → RR context (the pool); the
 * client is the request's ClientInfo with another address (what trusted_subnets would decide).
 */
const toRequestContext = (request: FastifyRequest, client: { remoteAddr: string }) =>
  toContext(toExchangeRequest(request, { ...clientInfoOf(request.raw), ...client }, null, null));

const token = fc.stringMatching(/^[a-z][a-z0-9]{0,6}(-[a-z0-9]{1,6}){0,2}$/);
const value = fc.stringMatching(/^[!-~]([ -~]{0,30}[!-~])?$/); // visible ASCII, no edge spaces

describe('toRequestContext', () => {
  it('maps any headers, cookies and query the way RoadRunner does', async () => {
    const app = Fastify();
    app.all('/*', async (request) => toRequestContext(request, { remoteAddr: '192.0.2.7' }));
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(
          token.filter(
            (n) =>
              ![
                'host',
                'cookie',
                'content-length',
                'transfer-encoding',
                'connection',
                'expect',
                'upgrade',
                'te',
                'proxy',
              ].includes(n),
          ),
          value,
          { maxKeys: 8 },
        ),
        fc.dictionary(fc.stringMatching(/^[a-z_]{1,8}$/), fc.string({ unit: 'grapheme', maxLength: 12 }), {
          maxKeys: 4,
        }),
        fc.stringMatching(/^[A-Za-z0-9_.~%-]{0,30}$/),
        async (headers, cookies, query) => {
          const cookieHeader = Object.entries(cookies)
            .map(([k, v]) => `${k}=${encodeURIComponent(v)}`)
            .join('; ');
          const res = await app.inject({
            url: `/p?q=${query}`,
            headers: { ...headers, host: 'site.test:8080', ...(cookieHeader === '' ? {} : { cookie: cookieHeader }) },
          });
          const ctx = res.json();
          expect(ctx.uri).toBe(`http://site.test:8080/p?q=${query}`);
          expect(ctx.rawQuery).toBe(`q=${query}`);
          expect(ctx.remoteAddr).toBe('192.0.2.7');
          expect(ctx.headers.Host).toBeUndefined();
          for (const [name, v] of Object.entries(headers)) expect(ctx.headers[canonicalHeaderName(name)]).toEqual([v]);
          expect(ctx.cookies).toEqual(cookies);
        },
      ),
      { numRuns: 150 },
    );
    await app.close();
  });

  it('a header named __proto__ never reaches PHP (its "_" drops it, as nginx does), constructor is a header, and neither is the context\'s prototype', async () => {
    const app = Fastify();
    let ctx: ReturnType<typeof toRequestContext> | undefined;
    app.get('/', async (request) => {
      ctx = toRequestContext(request, { remoteAddr: '' });
    });
    await app.listen({ port: 0, host: '127.0.0.1' });
    // over a real socket: inject builds its headers as an object, where __proto__ would not survive
    const socket = connect((app.server.address() as AddressInfo).port, '127.0.0.1');
    socket.end('GET / HTTP/1.1\r\nHost: x\r\n__proto__: p\r\nconstructor: c\r\nConnection: close\r\n\r\n');
    await once(socket.resume(), 'close');
    expect(Object.getPrototypeOf(ctx!.headers)).toBeNull();
    expect(Object.keys(ctx!.headers)).not.toContain('__proto__');
    expect(ctx!.headers[canonicalHeaderName('constructor')]).toEqual(['c']);
    await app.close();
  });

  it('keeps every value of a repeated header, in order', async () => {
    const app = Fastify();
    app.get('/', async (request) => toRequestContext(request, { remoteAddr: '' }));
    const res = await app.inject({ url: '/', headers: { 'x-multi': ['a', 'b', 'c'] } });
    expect(res.json().headers['X-Multi']).toEqual(['a', 'b', 'c']);
    await app.close();
  });

  it('passes UTF-8 header bytes as text and turns invalid UTF-8 into U+FFFD (documented)', async () => {
    const app = Fastify();
    app.get('/', async (request) => toRequestContext(request, { remoteAddr: '' }));
    // inject sends header strings as latin1 bytes: "grÃ¼Ãe" are the UTF-8 bytes of "grüße"; \xff alone is invalid
    const res = await app.inject({
      url: '/',
      headers: { 'x-utf8': Buffer.from('grüße').toString('latin1'), 'x-bad': 'a\xffb' },
    });
    expect(res.json().headers['X-Utf8']).toEqual(['grüße']);
    expect(res.json().headers['X-Bad']).toEqual(['a\ufffdb']);
    await app.close();
  });
});

describe('parseCookies', () => {
  it('decodes values, drops undecodable ones, keeps the first of a repeated name (as PHP), and treats __proto__ as a name', () => {
    const expected: Record<string, string> = Object.create(null);
    expected.a = '1';
    expected.b = 'x y';
    // biome-ignore lint/complexity/useLiteralKeys: a cookie named __proto__ is what is tested
    // biome-ignore lint/suspicious/noProto: a cookie named __proto__ is what is tested
    expected['__proto__'] = 'p';
    expect(parseCookies('a=1; b=x%20y; bad=%E0%A4%A; a=2; __proto__=p')).toEqual(expected);
  });
});
