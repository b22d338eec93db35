// Real classic PHP apps from Debian through `warmpool serve`, over real sockets, both ways classic
// PHP runs (php-cgi managed by warmpool, and fastcgi.pass to a php-fpm): DokuWiki (render, log in,
// edit and save a page, nice URLs, its CSS/JS built by PHP and its static images) and Adminer (its
// login page and assets, a login attempt), beside a worker site chosen by Host.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser, formOf } from '../helpers/browser.js';
import { startClassicServer, type ClassicMode, type ClassicServer } from '../helpers/classic-server.js';
import { DOKUWIKI_ADMIN } from '../helpers/dokuwiki.js';
import { runCli, stopAllServers } from '../helpers/warmpool-server.js';

afterAll(async () => {
  await stopAllServers();
});

describe.each<ClassicMode>(['managed', 'pass'])('classic apps (%s)', (mode) => {
  let classic: ClassicServer;
  beforeAll(async () => {
    classic = await startClassicServer(mode);
  }, 60_000);
  afterAll(async () => {
    await classic?.close();
  });

  describe('DokuWiki', () => {
    it('renders a page under its nice URL (PATH_INFO), and under the try_files fallback', async () => {
      const wiki = new Browser(classic.origin, 'wiki.test');
      const page = await wiki.get('/doku.php/wiki:syntax');
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(page.text).toContain('Formatting Syntax');
      // links are nice URLs too: DokuWiki saw SCRIPT_NAME /doku.php and PATH_INFO /wiki:syntax
      expect(page.text).toMatch(/href="\/doku\.php\/wiki:dokuwiki"/);
      // "/wiki:syntax" is no file: try_files hands it to /doku.php?id=/wiki:syntax
      const pretty = await wiki.get('/wiki:syntax');
      expect(pretty.status).toBe(200);
      expect(pretty.text).toContain('Formatting Syntax');
      // the directory index: / runs doku.php
      expect((await wiki.get('/')).text).toContain('warmpool test wiki');
    });

    it('serves its static images and the CSS and JS its PHP builds', async () => {
      const wiki = new Browser(classic.origin, 'wiki.test');
      const logo = await wiki.get('/lib/tpl/dokuwiki/images/logo.png');
      expect([logo.status, logo.headers['content-type']]).toEqual([200, 'image/png']);
      expect(logo.body.subarray(1, 4).toString()).toBe('PNG');
      expect(logo.headers.etag).toBeDefined();
      const css = await wiki.get('/lib/exe/css.php?t=dokuwiki');
      expect([css.status, css.headers['content-type']]).toEqual([200, 'text/css; charset=utf-8']);
      expect(css.text.length).toBeGreaterThan(10_000);
      const js = await wiki.get('/lib/exe/js.php?t=dokuwiki');
      expect(js.status).toBe(200);
      expect(js.headers['content-type']).toMatch(/javascript/);
    });

    it('logs in, edits and saves a page (session and CSRF token kept by cookies), and shows it', async () => {
      const wiki = new Browser(classic.origin, 'wiki.test');
      const loginPage = await wiki.get('/doku.php/start?do=login');
      const login = formOf(loginPage.text, 'dw__login');
      const loggedIn = await wiki.post(login.action, {
        ...login.fields,
        u: DOKUWIKI_ADMIN.user,
        p: DOKUWIKI_ADMIN.password,
      });
      expect(loggedIn.status).toBeLessThan(400);
      expect([...wiki.cookies.keys()].some((name) => name.startsWith('DW'))).toBe(true);

      const editor = await wiki.get('/doku.php/playground:warmpool?do=edit');
      expect(editor.status).toBe(200);
      const edit = formOf(editor.text, 'dw__editform');
      expect(edit.fields.sectok).toMatch(/^[0-9a-f]{32}$/);
      const text = `Hello from warmpool (${mode}) with **bold** text.`;
      const saved = await wiki.post(edit.action, {
        ...edit.fields,
        wikitext: text,
        summary: 'e2e',
        'do[save]': 'Save',
      });
      expect([200, 302, 303]).toContain(saved.status);

      const shown = await wiki.get('/doku.php/playground:warmpool');
      expect(shown.text).toContain(`Hello from warmpool (${mode}) with <strong>bold</strong> text.`);
      // DokuWiki wrote the page into the test's own data folder
      expect(readFileSync(join(classic.wiki.data, 'pages', 'playground', 'warmpool.txt'), 'utf8')).toBe(text);
      // an anonymous visitor may read its source but not edit it (ACL: @ALL read)
      const anonymous = await new Browser(classic.origin, 'wiki.test').get('/doku.php/playground:warmpool?do=edit');
      expect(anonymous.text).toMatch(/<textarea[^>]*readonly/);
    });

    it('never runs its library files nor sends its dotfiles', async () => {
      const wiki = new Browser(classic.origin, 'wiki.test');
      expect((await wiki.get('/inc/init.php')).status).toBe(403);
      expect((await wiki.get('/bin/indexer.php')).status).toBe(403);
      expect((await wiki.get('/.htaccess')).status).toBe(403);
    });
  });

  describe('Adminer', () => {
    it('shows its login page, and the assets it serves itself and from its folder', async () => {
      const adminer = new Browser(classic.origin, 'adminer.test');
      const login = await adminer.get('/');
      expect(login.status).toBe(200);
      expect(login.text).toContain('<title>Login - Adminer</title>');
      expect(login.text).toMatch(/name=['"]auth\[driver\]['"]/);
      const css = await adminer.get('/adminer.php?file=default.css&version=4.8.1');
      expect([css.status, css.headers['content-type']]).toEqual([200, 'text/css; charset=utf-8']);
      const js = await adminer.get('/adminer.php?file=functions.js&version=4.8.1');
      expect([js.status, js.headers['content-type']]).toEqual([200, 'text/javascript; charset=utf-8']);
      const design = await adminer.get('/designs/nette/adminer.css');
      expect([design.status, design.headers['content-type']]).toEqual([200, 'text/css; charset=utf-8']);
    });

    it('takes a login form (PHP sessions through cookies) and answers with its own message', async () => {
      const adminer = new Browser(classic.origin, 'adminer.test');
      await adminer.get('/adminer.php');
      const attempt = await adminer.post('/adminer.php', {
        'auth[driver]': 'sqlite',
        'auth[server]': '',
        'auth[username]': '',
        'auth[password]': '',
        'auth[db]': join(classic.dir, 'adminer.db'),
      });
      // Adminer keeps the outcome in its session and redirects: the cookie carries it to the next page
      expect(attempt.status).toBe(302);
      expect(adminer.cookie('adminer_sid')).toMatch(/\S/);
      const location = String(attempt.headers.location);
      const after = await adminer.get(
        location.startsWith('/') ? location : `/adminer.php${location.replace(/^[^?]*/, '')}`,
      );
      expect(after.text).toContain('Adminer does not support accessing a database without a password');
    });
  });

  it('the worker site beside them answers every other host (worker mode, unchanged)', async () => {
    const res = await request(`${classic.origin}/who?x=1`, { headers: { host: 'elsewhere.test' } });
    const echo = (await res.body.json()) as { context: { uri: string } };
    expect(echo.context.uri).toBe('http://elsewhere.test/who?x=1');
  });

  it(`runs the classic sites in ${mode === 'managed' ? 'php-cgi' : 'php-fpm'}`, async () => {
    const info = await new Browser(classic.origin, 'app.test').get('/info.php');
    expect(JSON.parse(info.text).SAPI).toBe(classic.sapi);
  });

  it('warmpool workers lists every site: its php-cgi processes, or its connections to php-fpm', async () => {
    const socket = join(classic.dir, 'admin.sock');
    const listed = await runCli(['workers', '--socket', socket]);
    expect(listed.code).toBe(0);
    const sites = ['wiki.test', 'adminer.test', 'app.test'];
    if (mode === 'pass') {
      // php-fpm's processes are not ours: one line per site on warmpool's connections to it
      for (const line of listed.stdout.split('\n').filter((l) => l.includes('php-fpm at'))) {
        expect(line).toMatch(
          /site \S+: PHP runs in php-fpm at unix:\S+ \(its processes, not warmpool's\); connections to it: \d+ busy, \d+ idle, at most \d+/,
        );
      }
      expect(listed.stdout.split('\n').filter((l) => l.includes('php-fpm at'))).toHaveLength(sites.length);
      const reset = await runCli(['reset', '--socket', socket, '--site', 'app.test']);
      expect(reset.code).not.toBe(0);
      expect(reset.stderr + reset.stdout).toMatch(
        /passes PHP to php-fpm at unix:.*nothing to reset; restart or reload php-fpm/,
      );
    } else {
      expect(listed.stdout).not.toContain('php-fpm');
      expect(listed.stdout).toMatch(/cgi|working|ready|idle/);
    }
  });
});
