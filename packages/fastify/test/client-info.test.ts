// The plugin's one ClientInfo per request (network/client-info.ts) over real sockets: raw HTTP/1.1
// bytes (two Host headers, absolute-form targets) and HTTP/2 (:authority against host).
import { connect as connectHttp2 } from 'node:http2';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { warmpool, type WarmpoolCommonOptions, type WorkerModeOptions } from '../src/index.js';

const CLIENT_INFO = fileURLToPath(new URL('../../../test/fixtures/php/client-info.php', import.meta.url));
const apps: FastifyInstance[] = [];

afterAll(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function listen(
  options: WarmpoolCommonOptions & Partial<WorkerModeOptions> = {},
  http2 = false,
): Promise<number> {
  const app = (http2 ? Fastify({ http2: true }) : Fastify()) as FastifyInstance;
  apps.push(app);
  await app.register(warmpool, { command: ['php', CLIENT_INFO], pool: { num_workers: 1 }, ...options });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return (app.server.address() as { port: number }).port;
}

function raw(port: number, head: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`${head.replace(/\n/g, '\r\n')}\r\nConnection: close\r\n\r\n`),
    );
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
    });
    socket.on('error', reject);
    socket.on('close', () =>
      resolve({ status: Number(text.slice(9, 12)), body: text.slice(text.indexOf('\r\n\r\n') + 4) }),
    );
  });
}

function h2(port: number, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = connectHttp2(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const stream = session.request({ ':method': 'GET', ':path': '/h2', ...headers });
    let status = 0;
    let body = '';
    stream.on('response', (head) => {
      status = Number(head[':status']);
    });
    stream.on('data', (chunk: Buffer) => {
      body += chunk;
    });
    stream.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    stream.on('error', reject);
  });
}

describe('one host per request, in the plugin', () => {
  it('two Host headers: 400 before PHP; one: PHP sees it', async () => {
    const port = await listen();
    const twice = await raw(port, 'GET /x HTTP/1.1\nHost: real.example\nHost: evil.example');
    expect(twice.status).toBe(400);
    expect(twice.body).toContain('more than one Host header');
    const once = await raw(port, 'GET /x HTTP/1.1\nHost: real.example');
    expect(JSON.parse(once.body)).toMatchObject({ host: 'real.example', path: '/x' });
  });

  it("an absolute-form target: PHP sees the target's host and its path, never the URL as a path", async () => {
    const port = await listen();
    const res = await raw(port, 'GET http://other.example:8080/p?q=1 HTTP/1.1\nHost: real.example');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ host: 'other.example:8080', path: '/p', scheme: 'http' });
  });

  it('access rules see the path of an absolute-form target (no bypass with GET http://host/admin)', async () => {
    const port = await listen({ access: [{ prefix: '/admin', allow: ['10.0.0.0/8'] }] });
    expect((await raw(port, 'GET /admin HTTP/1.1\nHost: real.example')).status).toBe(403);
    expect((await raw(port, 'GET http://real.example/admin HTTP/1.1\nHost: real.example')).status).toBe(403);
    expect((await raw(port, 'GET HTTP://REAL.EXAMPLE/admin/x HTTP/1.1\nHost: real.example')).status).toBe(403);
    expect((await raw(port, 'GET http://real.example/public HTTP/1.1\nHost: real.example')).status).toBe(200);
  });

  it('HTTP/2: :authority and host naming different hosts is 400; the same host, or host alone, is served', async () => {
    const port = await listen({}, true);
    const both = await h2(port, { ':authority': 'real.example', host: 'evil.example' });
    expect(both.status).toBe(400);
    expect(both.body).toContain('name different hosts');
    const same = await h2(port, { ':authority': 'real.example', host: 'REAL.example' });
    expect(same.status).toBe(200);
    expect(JSON.parse(same.body)).toMatchObject({ host: 'real.example', path: '/h2' });
    const authority = await h2(port, { ':authority': 'a.example:8443' });
    expect(JSON.parse(authority.body)).toMatchObject({ host: 'a.example:8443' });
  });
});
