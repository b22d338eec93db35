import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { rawRequest } from '../helpers/raw-http.js';
import { FIXTURES, startServer, stopAllServers } from '../helpers/warmpool-server.js';

// One Host per request, decided once (client-info.ts): `warmpool serve` with two sites and the
// micro-cache, over raw sockets. Two Host headers used to be answered 200 with the site and the
// cache key taken from the first and PHP's host from the last, so a page built for evil.example
// was stored under the real host's key and served to every visitor.
let dir: string;
let port: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-host-'));
  port = await freePort();
  const php = join(FIXTURES, 'php', 'client-info.php');
  await writeFile(
    join(dir, 'warmpool.yaml'),
    [
      'version: "3"',
      'server:',
      `  command: php ${php}`,
      'http:',
      `  address: 127.0.0.1:${port}`,
      '  pool:',
      '    num_workers: 1',
      'cache:',
      '  enabled: true',
      'sites:',
      '  - hosts: [real.example]',
      '    server:',
      `      command: php ${php}`,
      '      env: { SITE: real }',
      '  - hosts: [evil.example]',
      '    server:',
      `      command: php ${php}`,
      '      env: { SITE: evil }',
      'admin:',
      `  socket: ${join(dir, 'admin.sock')}`,
      '',
    ].join('\n'),
  );
  const server = startServer(['serve', '-c', join(dir, 'warmpool.yaml')]);
  await server.ready();
});

afterAll(async () => {
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

interface Seen {
  site: string;
  host: string;
  scheme: string;
  path: string;
}

async function page(head: string): Promise<Seen> {
  const res = await rawRequest(port, head);
  expect(res.status, res.body).toBe(200);
  return JSON.parse(res.body) as Seen;
}

describe('one Host per request', () => {
  it('two Host headers, in either order: 400 with Connection: close, and the cache is not poisoned', async () => {
    for (const hosts of [
      ['real.example', 'evil.example'],
      ['evil.example', 'real.example'],
      ['real.example', 'real.example'],
    ]) {
      const res = await rawRequest(port, `GET /poison?cache=60 HTTP/1.1\nHost: ${hosts[0]}\nHost: ${hosts[1]}`);
      expect(res.status, hosts.join(' + ')).toBe(400);
      expect(res.body).toContain('more than one Host header');
      expect(res.headers.connection).toBe('close');
    }
    // what every visitor of the real host gets: built for the real host, by the real site
    expect(await page('GET /poison?cache=60 HTTP/1.1\nHost: real.example')).toMatchObject({
      site: 'real',
      host: 'real.example',
      path: '/poison',
    });
  });

  it("an absolute-form target's host wins over Host (RFC 9112 §3.2.2, as nginx): site, cache key and PHP agree", async () => {
    const seen = await page('GET http://evil.example/abs?cache=60 HTTP/1.1\nHost: real.example');
    expect(seen).toEqual({ site: 'evil', remoteAddr: '127.0.0.1', scheme: 'http', host: 'evil.example', path: '/abs' });
    // cached under evil.example: the real host's visitors get their own page
    expect(await page('GET /abs?cache=60 HTTP/1.1\nHost: real.example')).toMatchObject({
      site: 'real',
      host: 'real.example',
    });
    // and the evil.example entry is what it was built for
    expect(await page('GET /abs?cache=60 HTTP/1.1\nHost: evil.example')).toMatchObject({
      site: 'evil',
      host: 'evil.example',
    });
  });

  it('within one site (the default one answers any host) the cache key is the host PHP built the page for', async () => {
    expect(await page('GET http://one.example/shared?cache=60 HTTP/1.1\nHost: two.example')).toMatchObject({
      site: 'default',
      host: 'one.example',
    });
    // two.example's visitors get a page built for two.example, not the one stored by the request above
    expect(await page('GET /shared?cache=60 HTTP/1.1\nHost: two.example')).toMatchObject({
      site: 'default',
      host: 'two.example',
    });
  });

  it('a Host with a port or in another case picks the same site; PHP gets it as sent', async () => {
    expect(await page('GET /case HTTP/1.1\nHost: REAL.Example:8080')).toMatchObject({
      site: 'real',
      host: 'REAL.Example:8080',
    });
  });

  it.each([
    ['no Host on HTTP/1.1', 'GET /x HTTP/1.1'],
    ['an empty Host', 'GET /x HTTP/1.1\nHost: '],
    ['a Host with a slash', 'GET /x HTTP/1.1\nHost: real.example/evil'],
    ['a Host with ".."', 'GET /x HTTP/1.1\nHost: real..example'],
    ['a Host with userinfo', 'GET /x HTTP/1.1\nHost: user@real.example'],
    ['userinfo in an absolute-form target', 'GET http://user:pw@real.example/x HTTP/1.1\nHost: real.example'],
    ['an absolute-form target that is not http(s)', 'GET ftp://real.example/x HTTP/1.1\nHost: real.example'],
    ['an absolute-form target with a valid Host beside a broken one', 'GET http://real.example/x HTTP/1.1\nHost: a b'],
    ['an asterisk-form GET', 'GET * HTTP/1.1\nHost: real.example'],
  ])('%s: 400', async (_what, head) => {
    const res = await rawRequest(port, head);
    expect(res.status).toBe(400);
    expect(res.headers.connection).toBe('close');
  });

  it('HTTP/1.0 without Host is served by the default site', async () => {
    const res = await rawRequest(port, 'GET /old HTTP/1.0');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ site: 'default', host: '' });
  });
});
