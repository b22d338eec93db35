import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { request, WebSocket } from 'undici';
import { type ErrorPages, resolveErrorPages, warmpool } from '@warmpool/fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { startUpstream as startSharedUpstream, type Upstream } from '../../../test/helpers/upstream.js';
import { createWebSocketMatcher, registerProxies, resolveProxyRoutes, type ProxyRoute } from '../src/proxy.js';

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** The shared real upstream (test/helpers/upstream.ts), closed after each test. */
async function startUpstream(): Promise<Upstream> {
  const upstream = await startSharedUpstream();
  closers.push(() => upstream.close());
  return upstream;
}

/** A site with proxies next to the warmpool plugin (PHP takes what the proxies do not), listening on a real port. */
async function startSite(
  routes: ProxyRoute[],
  pages: ErrorPages = null,
): Promise<{ app: FastifyInstance; base: string }> {
  const app = Fastify();
  await registerProxies(app, routes, pages);
  await app.register(warmpool, { command: ['php', fixture('echo.php')], pool: { num_workers: 1 } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  closers.push(() => app.close());
  const { port } = app.server.address() as AddressInfo;
  return { app, base: `http://127.0.0.1:${port}` };
}

async function getJson(url: string, options: Parameters<typeof request>[1] = {}) {
  const res = await request(url, options);
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

describe('proxy routes', () => {
  it('passes the path unchanged to an upstream given without a path (nginx proxy_pass http://host)', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const res = await getJson(`${base}/api/users?page=2`);
    expect(res.status).toBe(200);
    expect(res.headers['x-upstream']).toBe('yes');
    expect(res.json().url).toBe('/api/users?page=2');
    expect((await getJson(`${base}/api`)).json().url).toBe('/api');
  });

  it("strips the prefix with rewrite_prefix: '' and replaces it with the upstream's path", async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([
      { prefix: '/strip', upstream: upstream.origin, rewrite_prefix: '' },
      { prefix: '/versioned', upstream: `${upstream.origin}/v1` },
      { prefix: '/slash/', upstream: `${upstream.origin}/` },
    ]);
    expect((await getJson(`${base}/strip/users?x=1`)).json().url).toBe('/users?x=1');
    expect((await getJson(`${base}/versioned/users`)).json().url).toBe('/v1/users');
    expect((await getJson(`${base}/slash/users`)).json().url).toBe('/users');
  });

  it('adds X-Forwarded-For (appended), -Proto and -Host; sends the upstream its own Host', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const { headers } = (
      await getJson(`${base}/api/h`, { headers: { host: 'shop.test', 'x-forwarded-for': '203.0.113.7' } })
    ).json();
    expect(headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(headers['x-forwarded-proto']).toBe('http');
    expect(headers['x-forwarded-host']).toBe('shop.test');
    expect(headers.host).toBe(`127.0.0.1:${upstream.port}`);
  });

  it('forwards method, body and status both ways', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    const res = await getJson(`${base}/api/items`, {
      method: 'POST',
      body: '{"name":"x"}',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(201);
    expect(res.json()).toMatchObject({ method: 'POST', body: '{"name":"x"}' });
  });

  it('matches on segment boundaries: /apiary and the rest go to PHP', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/api', upstream: upstream.origin }]);
    for (const path of ['/apiary', '/', '/index.php?x=1']) {
      const res = await getJson(`${base}${path}`);
      expect(res.json()).toHaveProperty('pid'); // echo.php answered
    }
    expect(upstream.seen).toEqual([]);
  });

  it('answers 502 with a clear body when the upstream is down', async () => {
    const upstream = await startUpstream();
    const deadPort = upstream.port;
    await closers.pop()!(); // stop it: nothing listens on its port now
    const { base } = await startSite([{ prefix: '/api', upstream: `http://127.0.0.1:${deadPort}` }]);
    const res = await getJson(`${base}/api/users`);
    expect(res.status).toBe(502);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(res.text).toBe('Bad Gateway: the upstream for /api is not running (connection refused)\n');
  });

  it("error_pages: an upstream that is down or too slow gets the site's 502 / 504 page", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warmpool-proxy-pages-'));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, '50x.html'), '<h1>Back in a minute</h1>\n');
    const pages = resolveErrorPages({ '502': join(dir, '50x.html'), '504': join(dir, '50x.html') });
    const upstream = await startUpstream();
    const deadPort = (await startUpstream()).port;
    await closers.pop()!(); // the second one: nothing listens on its port now
    const { base } = await startSite(
      [
        { prefix: '/api', upstream: `http://127.0.0.1:${deadPort}` },
        { prefix: '/slow', upstream: upstream.origin, timeout: '200ms' },
      ],
      pages,
    );
    for (const path of ['/api/users', '/slow/report']) {
      const res = await getJson(`${base}${path}`);
      expect([res.status, res.headers['content-type'], res.text]).toEqual([
        path === '/api/users' ? 502 : 504,
        'text/html; charset=utf-8',
        '<h1>Back in a minute</h1>\n',
      ]);
    }
  });

  it('answers 504 when the upstream takes longer than timeout', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([{ prefix: '/slow', upstream: upstream.origin, timeout: '200ms' }]);
    const res = await getJson(`${base}/slow/report`);
    expect(res.status).toBe(504);
    expect(res.text).toBe('Gateway Timeout: the upstream for /slow did not answer within 0.2s\n');
  });

  it('forwards WebSocket upgrades under the prefix with websocket: true', async () => {
    const upstream = await startUpstream();
    const { base } = await startSite([
      { prefix: '/ws', upstream: upstream.origin, websocket: true },
      { prefix: '/api', upstream: upstream.origin },
    ]);
    const ws = new WebSocket(`${base.replace('http', 'ws')}/ws/chat?room=1`);
    closers.push(async () => ws.close());
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error('websocket failed to open')));
    });
    const reply = new Promise<string>((resolve) =>
      ws.addEventListener('message', (event) => resolve(String(event.data))),
    );
    ws.send('hello');
    expect(await reply).toBe('echo hello from /ws/chat?room=1 for 127.0.0.1');
    const closed = new Promise((resolve) => ws.addEventListener('close', resolve));
    ws.close(1000);
    await closed;
    // plain HTTP under the other prefix still works next to it
    expect((await getJson(`${base}/api/x`)).json().url).toBe('/api/x');
  });
});

describe('proxy route options', () => {
  it('matches a WebSocket target to the longest websocket: true prefix, giving its idle timeout', () => {
    const match = createWebSocketMatcher([
      { prefix: '/ws', upstream: 'http://a', websocket: true, websocket_idle_timeout: '5s' },
      { prefix: '/ws/live', upstream: 'http://a', websocket: true, websocket_idle_timeout: 0 },
      { prefix: '/wsx', upstream: 'http://a', websocket: true },
      { prefix: '/api', upstream: 'http://a' },
    ])!;
    expect(match('/ws')).toBe(5000);
    expect(match('/ws/chat?room=1')).toBe(5000);
    expect(match('/ws/live/1')).toBe(0);
    expect(match('/wsx/a')).toBe(60_000);
    expect(match('/wsy')).toBeUndefined();
    expect(match('/api/x')).toBeUndefined();
    expect(createWebSocketMatcher([{ prefix: '/api', upstream: 'http://a' }])).toBeNull();
  });

  it('checks every entry and names proxy[i].key', () => {
    const check = (routes: unknown) => () => resolveProxyRoutes(routes as ProxyRoute[]);
    expect(check([{ prefix: 'api', upstream: 'http://a' }])).toThrow(
      'warmpool option "proxy[0].prefix": must be a path like /api (no *, :, ? or #), got "api"',
    );
    expect(check([{ prefix: '/a/*', upstream: 'http://a' }])).toThrow(/proxy\[0\]\.prefix/);
    expect(check([{ prefix: '/a', upstream: 'localhost:9000' }])).toThrow(
      /proxy\[0\]\.upstream.*must be http:\/\/ or https:\/\//,
    );
    expect(check([{ prefix: '/a', upstream: 'not a url' }])).toThrow(/proxy\[0\]\.upstream.*must be a URL/);
    expect(check([{ prefix: '/a', upstream: 'http://a?x=1' }])).toThrow(/query or fragment/);
    expect(
      check([
        { prefix: '/a', upstream: 'http://a' },
        { prefix: '/a/', upstream: 'http://b' },
      ]),
    ).toThrow('warmpool option "proxy[1].prefix": /a is already proxied by proxy[0]');
    expect(check([{ prefix: '/a', upstream: 'http://a', rewrite_prefix: 'v1' }])).toThrow(/proxy\[0\]\.rewrite_prefix/);
    expect(check([{ prefix: '/a', upstream: 'http://a', timeout: 'soon' }])).toThrow(/proxy\[0\]\.timeout/);
    expect(check([{ prefix: '/a', upstream: 'http://a', timeout: 0 }])).toThrow(
      /proxy\[0\]\.timeout": must be more than 0/,
    );
    expect(check([{ prefix: '/a', upstream: 'http://a', websocket: 'yes' }])).toThrow(/proxy\[0\]\.websocket/);
    expect(check([{ prefix: '/a', upstream: 'http://a', websocket_idle_timeout: 'idle' }])).toThrow(
      /proxy\[0\]\.websocket_idle_timeout/,
    );
    expect(check({})).toThrow(/"proxy": must be a list/);
  });

  it('resolves the nginx-like defaults once', () => {
    expect(
      resolveProxyRoutes([
        { prefix: '/api/', upstream: 'http://127.0.0.1:9000' },
        { prefix: '/v', upstream: 'https://up.test/v1/', timeout: '30s', websocket: true, websocket_idle_timeout: 0 },
      ]),
    ).toEqual([
      {
        prefix: '/api',
        upstream: 'http://127.0.0.1:9000',
        rewritePrefix: '/api',
        websocket: false,
        timeoutMs: 60_000,
        webSocketIdleMs: 60_000,
      },
      {
        prefix: '/v',
        upstream: 'https://up.test/v1',
        rewritePrefix: '/v1',
        websocket: true,
        timeoutMs: 30_000,
        webSocketIdleMs: 0,
      },
    ]);
  });
});
