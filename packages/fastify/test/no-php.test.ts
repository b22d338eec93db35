// php: false: a site of static files only (and the app's own routes), with the plugin's limits,
// access rules, health and metrics, and no PHP process anywhere.
import { cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import warmpool, { checkOptions, InvalidOptionError, type WarmpoolOptions } from '../src/index.js';

const SITES = fileURLToPath(new URL('../../../test/fixtures/sites/', import.meta.url));

let site: string;
let pub: string;

beforeAll(() => {
  site = mkdtempSync(join(tmpdir(), 'warmpool-no-php-'));
  cpSync(join(SITES, 'static-basic'), site, { recursive: true });
  pub = join(site, 'public');
  writeFileSync(join(pub, '.env'), 'SECRET=NO-PHP-ENV-MARKER\n');
  mkdirSync(join(pub, 'docs'));
  writeFileSync(join(pub, 'docs', 'index.html'), '<h1>docs</h1>\n');
  symlinkSync('../outside/top-secret.txt', join(pub, 'escape.txt'));
});

afterAll(() => rmSync(site, { recursive: true, force: true }));

async function listen(
  options: WarmpoolOptions,
  routes?: (app: FastifyInstance) => void,
): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify();
  await app.register(warmpool, options);
  routes?.(app);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url };
}

describe('plugin: php: false (a site of static files)', () => {
  let app: FastifyInstance;
  let url: string;
  beforeAll(async () => {
    ({ app, url } = await listen({
      php: false,
      static: { dir: pub },
      max_request_size: 1,
      health_path: '/health',
      ready_path: '/ready',
      access: [{ prefix: '/nested', deny: ['all'] }],
    }));
  });
  afterAll(() => app.close());

  it('serves files, directory indexes and redirects to a folder\'s "/" form, and starts no PHP', async () => {
    const page = await request(`${url}/`);
    expect(page.statusCode).toBe(200);
    expect(await page.body.text()).toContain('<');
    const css = await request(`${url}/style.css`);
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toMatch(/text\/css/);
    await css.body.dump();
    const docs = await request(`${url}/docs?x=1`);
    expect(docs.statusCode).toBe(301);
    expect(docs.headers.location).toBe('/docs/?x=1');
    await docs.body.dump();
    const index = await request(`${url}/docs/`);
    expect(await index.body.text()).toBe('<h1>docs</h1>\n');
    expect(app.warmpool.pool).toBeNull();
    expect(app.warmpool.fastcgi).toBeNull();
  });

  it('answers a range past the file with a plain-text 416, as every other refusal', async () => {
    const res = await request(`${url}/style.css`, { headers: { range: 'bytes=900000-' } });
    expect(res.statusCode).toBe(416);
    expect(res.headers['content-range']).toMatch(/^bytes \*\/\d+$/);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(await res.body.text()).toBe('Range Not Satisfiable\n');
  });

  it('answers 404 for a missing path, PHP source, a dotfile and a link out of the root', async () => {
    for (const path of ['/missing', '/no/such/page', '/secret.php', '/.env', '/escape.txt', '/index.php']) {
      const res = await request(`${url}${path}`);
      const text = await res.body.text();
      expect({ path, status: res.statusCode }).toEqual({ path, status: 404 });
      expect(text).not.toMatch(/NO-PHP-ENV-MARKER|<\?php|TOP-SECRET/i);
    }
  });

  it('answers 405 with Allow to another method, before reading its body', async () => {
    // a body under max_request_size (1 MB) is announced and never sent: the answer comes first
    // (one over it gets 413 from its Content-Length, as nginx's client_max_body_size)
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.write(
      `POST /style.css HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${512 * 1024}\r\n\r\n`,
    );
    let head = '';
    for await (const chunk of socket) {
      head += String(chunk);
      if (head.includes('Method Not Allowed\n')) break;
    }
    socket.destroy();
    expect(head).toMatch(/^HTTP\/1\.1 405 /);
    expect(head).toMatch(/\r\nallow: GET, HEAD\r\n/i);
  });

  it('keeps the access rules, and /health and /ready say ready with no workers', async () => {
    const denied = await request(`${url}/nested/`);
    expect(denied.statusCode).toBe(403);
    await denied.body.dump();
    const ready = await request(`${url}/ready`);
    expect(ready.statusCode).toBe(200);
    expect(await ready.body.json()).toMatchObject({ status: 'ready' });
    const health = await request(`${url}/health`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
  });
});

describe('plugin: php: false with no static files', () => {
  it("takes no catch-all: the app's own routes have every path", async () => {
    const { app, url } = await listen({ php: false, ready_path: '/ready' }, (instance) => {
      instance.all('/*', async (req) => `app: ${req.method} ${req.url}\n`);
    });
    try {
      const res = await request(`${url}/anything?q=1`, {
        method: 'POST',
        headers: { 'content-type': 'text/plain' },
        body: 'x',
      });
      expect(res.statusCode).toBe(200);
      expect(await res.body.text()).toBe('app: POST /anything?q=1\n');
      const ready = await request(`${url}/ready`);
      expect(ready.statusCode).toBe(200);
      await ready.body.dump();
    } finally {
      await app.close();
    }
  });
});

describe('plugin: php: false with static.try_files', () => {
  it('a single-page app: a file, a folder\'s index, else /index.html; "$uri.html" first for clean URLs', async () => {
    const spa = join(site, 'spa');
    mkdirSync(join(spa, 'assets'), { recursive: true });
    writeFileSync(join(spa, 'index.html'), '<h1>APP</h1>\n');
    writeFileSync(join(spa, 'about.html'), '<h1>ABOUT</h1>\n');
    writeFileSync(join(spa, 'assets', 'app.js'), 'js\n');
    writeFileSync(join(spa, 'secret.php'), '<?php // SPA-SOURCE');
    writeFileSync(join(spa, '.env'), 'SPA-ENV');
    const { app, url } = await listen({
      php: false,
      static: { dir: spa, try_files: ['$uri', '$uri.html', '$uri/', '/index.html'] },
    });
    try {
      for (const [path, body] of [
        ['/', '<h1>APP</h1>\n'],
        ['/assets/app.js', 'js\n'],
        ['/about', '<h1>ABOUT</h1>\n'],
        ['/users/42?tab=1', '<h1>APP</h1>\n'],
        ['/assets/gone.js', '<h1>APP</h1>\n'],
        // never a source or a dotfile: the app's page instead, as for any other missing name
        ['/secret.php', '<h1>APP</h1>\n'],
        ['/.env', '<h1>APP</h1>\n'],
      ]) {
        const res = await request(`${url}${path}`);
        expect({ path, status: res.statusCode, body: await res.body.text() }).toEqual({ path, status: 200, body });
      }
      const post = await request(`${url}/users/42`, { method: 'POST', body: 'x' });
      expect(post.statusCode).toBe(405);
      await post.body.dump();
    } finally {
      await app.close();
    }
  });

  it('takes the steps in their order, over every static root, as nginx: "$uri.html" before "$uri/" serves about.html', async () => {
    const first = join(site, 'order-a');
    const second = join(site, 'order-b');
    mkdirSync(join(first, 'about'), { recursive: true });
    mkdirSync(second, { recursive: true });
    writeFileSync(join(first, 'about', 'index.html'), 'ABOUT-FOLDER\n');
    writeFileSync(join(second, 'about.html'), 'ABOUT-PAGE\n');
    writeFileSync(join(second, 'app.html'), 'APP\n');
    const answers = async (tryFiles: string[], path: string) => {
      const { app, url } = await listen({ php: false, static: { dir: [first, second], try_files: tryFiles } });
      try {
        const res = await request(`${url}${path}`);
        return [res.statusCode, res.statusCode === 301 ? res.headers.location : await res.body.text()];
      } finally {
        await app.close();
      }
    };
    // the page before the folder, from the second root
    expect(await answers(['$uri', '$uri.html', '$uri/', '/app.html'], '/about')).toEqual([200, 'ABOUT-PAGE\n']);
    // the folder before the page: its "/" form, as nginx
    expect(await answers(['$uri', '$uri/', '$uri.html', '/app.html'], '/about')).toEqual([301, '/about/']);
    // no "$uri/": a folder is no answer, the fallback (in the second root) is
    expect(await answers(['$uri', '/app.html'], '/about')).toEqual([200, 'APP\n']);
  });

  it('refuses try_files where PHP runs, or a step it cannot take, naming the key', () => {
    const cases: [WarmpoolOptions, RegExp][] = [
      [
        { command: 'php w.php', static: { dir: pub, try_files: ['$uri', '/index.html'] } },
        /goes to PHP, which is the fallback/,
      ],
      [{ fastcgi: { root: pub }, static: { try_files: ['$uri', '=404'] } }, /fastcgi\.try_files/],
      [{ php: false, static: { dir: pub, try_files: ['/index.html'] } }, /must start with "\$uri"/],
      [{ php: false, static: { dir: pub, try_files: ['$uri', '/index.php'] } }, /not a file the static layer may send/],
      [{ php: false, static: { dir: pub, try_files: ['$uri', '$uri.php', '=404'] } }, /\.php files are never served/],
      [{ php: false, static: { dir: pub, try_files: ['$uri', '=404', '$uri/'] } }, /"=404" is not a step/],
    ];
    for (const [options, reason] of cases) {
      const problems = checkOptions(options);
      expect(problems.map((p) => [p.details.key, p.details.reason])).toContainEqual([
        'static.try_files',
        expect.stringMatching(reason),
      ]);
    }
  });
});

describe('plugin: php option checks', () => {
  it('refuses php: false beside a command, a fastcgi section or pool options, naming the key', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ php: false, command: 'php worker.php' }, 'command'],
      [{ php: false, fastcgi: { root: pub } }, 'fastcgi'],
      [{ php: false, pool: { num_workers: 2 } }, 'pool'],
      [{ php: 'no' }, 'php'],
    ];
    for (const [options, key] of cases) {
      const problems = checkOptions(options as unknown as WarmpoolOptions);
      expect(problems.map((p) => p.details.key)).toContain(key);
      const app = Fastify();
      const error = await app
        .register(warmpool, options as unknown as WarmpoolOptions)
        .ready()
        .then(
          () => null,
          (e: Error) => e,
        );
      expect(error).toBeInstanceOf(InvalidOptionError);
      expect((error as InvalidOptionError).details.key).toBe(key);
      await app.close();
    }
  });

  it('still requires a command when php is not false, and says how to serve files only', async () => {
    const app = Fastify();
    const error = await app
      .register(warmpool, {} as WarmpoolOptions)
      .ready()
      .then(
        () => null,
        (e: Error) => e,
      );
    expect((error as Error).message).toMatch(/php: false/);
    await app.close();
  });
});
