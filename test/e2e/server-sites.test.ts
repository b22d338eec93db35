import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { FIXTURES, runCli, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';

// Several sites on one server, chosen by Host like nginx server blocks: each has its own PHP
// fixture, pool, static root and limits; other hosts go to the default site, or get 404 without one.
let dir: string;
let server: RunningServer;
let env: Record<string, string>;
let base: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-sites-'));
  env = {
    HTTP_PORT: String(await freePort()),
    METRICS_PORT: String(await freePort()),
    ADMIN_SOCKET: join(dir, 'admin.sock'),
  };
  base = `http://127.0.0.1:${env.HTTP_PORT}`;
  server = startServer(['serve', '-c', join(FIXTURES, 'server', 'sites.yaml')], { env });
  await server.ready();
});

afterAll(async () => {
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function get(host: string, path: string): Promise<{ status: number; body: string }> {
  const res = await request(`${base}${path}`, { headers: { host } });
  return { status: res.statusCode, body: await res.body.text() };
}

describe('sites by Host', () => {
  it('boots one pool per site, the default site last', () => {
    expect(server.stdout).toMatch(/site a\.test: 1 worker ready in \d+ ms \(a\.test, \*\.a\.test\)/);
    expect(server.stdout).toMatch(/site b\.test: 1 worker ready in \d+ ms \(b\.test\)/);
    expect(server.stdout).toMatch(/site default: 1 worker ready in \d+ ms \(any other host\)/);
    expect(server.stdout).toContain('3 sites, 3 workers');
  });

  it('Host a.test (any case, with a port or a trailing dot) and its subdomains → site a: its PHP and its static root', async () => {
    for (const host of ['a.test', 'A.Test:8080', 'a.test.', 'www.a.test']) {
      const page = await get(host, '/page');
      expect(page.status).toBe(200);
      expect((JSON.parse(page.body) as { env: { APP_NAME: string } }).env.APP_NAME).toBe('site-a');
    }
    expect(await get('a.test', '/a.txt')).toEqual({ status: 200, body: 'static of site a\n' });
    // site b's file is not in site a's root: PHP of site a answers
    expect(JSON.parse((await get('a.test', '/b.txt')).body).env.APP_NAME).toBe('site-a');
  });

  it('Host b.test → site b: another PHP fixture, its own root and cwd, its own limits', async () => {
    const page = await get('b.test', '/page');
    expect(page.body).toBe(`hello from b in ${join(FIXTURES, 'server', 'site-b')} for http://b.test/page`);
    expect(await get('b.test', '/b.txt')).toEqual({ status: 200, body: 'static of site b\n' });
    expect((await get('b.test', '/a.txt')).body).toMatch(/^hello from b /);
    // max_request_size: 1 (MB) in site b only
    const big = Buffer.alloc(1024 * 1024 + 1, 'x');
    const tooBig = await request(`${base}/upload`, {
      method: 'POST',
      body: big,
      headers: { host: 'b.test', 'content-type': 'application/octet-stream' },
    });
    // plain text, as warmpool's other answers (it was Fastify's JSON with the error code)
    expect([tooBig.statusCode, tooBig.headers['content-type'], await tooBig.body.text()]).toEqual([
      413,
      'text/plain; charset=utf-8',
      'Payload Too Large\n',
    ]);
    const fine = await request(`${base}/upload`, {
      method: 'POST',
      body: big,
      headers: { host: 'a.test', 'content-type': 'application/octet-stream' },
    });
    expect(fine.statusCode).toBe(200);
    await fine.body.dump();
  });

  it('an unknown Host → the default site', async () => {
    expect((await get('c.test', '/x')).body).toBe(
      `hello from default in ${join(FIXTURES, 'server')} for http://c.test/x`,
    );
    expect((await get('a.test.example', '/x')).body).toMatch(/^hello from default /);
  });

  it('metrics carry each site as a label; warmpool workers lists every site', async () => {
    const text = await (await request(`http://127.0.0.1:${env.METRICS_PORT}/metrics`)).body.text();
    for (const site of ['a.test', 'b.test', 'default'])
      expect(text).toContain(`warmpool_workers{site="${site}",state=`);
    const workers = await runCli(['workers', '--socket', env.ADMIN_SOCKET!]);
    expect(workers.code).toBe(0);
    expect(workers.stdout).toMatch(/site\s+pid\s+state/);
    for (const site of ['a.test', 'b.test', 'default']) expect(workers.stdout).toContain(site);
  });
});

describe('sites without a default site', () => {
  it('answers 404 for a Host no site lists', async () => {
    const port = await freePort();
    const file = join(dir, 'no-default.yaml');
    await writeFile(
      file,
      `http:\n  address: 127.0.0.1:${port}\nsites:\n  - hosts: [only.test]\n    server:\n      command: php ${FIXTURES}/php/hello-site.php\n      env: { SITE: only }\n    http:\n      pool: { num_workers: 1 }\nadmin:\n  socket: ${join(dir, 'nd.sock')}\n`,
    );
    const alone = startServer(['serve', '-c', file]);
    await alone.ready();
    const known = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'only.test' } });
    expect(await known.body.text()).toMatch(/^hello from only /);
    const unknown = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'other.test' } });
    expect(unknown.statusCode).toBe(404);
    expect(await unknown.body.text()).toBe('No site here answers for host "other.test".\n');
    expect((await alone.stop()).code).toBe(0);
  });
});
