// Debian's phpMyAdmin served where the package puts it (/usr/share/phpmyadmin), as an operator moving
// it from nginx + php-fpm does, through `warmpool serve` with php-cgi, over real sockets, logged in
// to a real MariaDB. The package links its jQuery, jQuery UI and CodeMirror out of its folder into
// /usr/share/javascript: without http.static.link_targets those answered with the login page (HTML
// for jquery.min.js), and the UI never came up.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../helpers/browser.js';
import { freePort } from '../helpers/free-port.js';
import { type MariaDb, startMariaDb } from '../helpers/mariadb.js';
import { type RunningServer, startServer, stopAllServers } from '../helpers/warmpool-server.js';

const PHPMYADMIN = '/usr/share/phpmyadmin';
const USER = { name: 'e2e', password: 'e2e-Secr3t-passw0rd' };

let db: MariaDb;
let server: RunningServer;
let origin: string;
let browser: Browser;
const dir = mkdtempSync(join(tmpdir(), 'wp-phpmyadmin-'));

beforeAll(async () => {
  if (!existsSync(join(PHPMYADMIN, 'index.php')))
    throw new Error(
      'phpMyAdmin is not installed: apt-get install -y --no-install-recommends phpmyadmin (scripts/setup.sh does)',
    );
  db = await startMariaDb();
  // phpMyAdmin refuses an empty password: a user of its own, through PHP's mysqli
  execFileSync('php', [
    '-r',
    '$db = new mysqli("localhost", "root", "", "", 0, $argv[1]); $db->query("CREATE USER `" . $argv[2] . "`@localhost IDENTIFIED BY \'" . $argv[3] . "\'") && $db->query("GRANT ALL ON *.* TO `" . $argv[2] . "`@localhost") or exit(1);',
    db.socket,
    USER.name,
    USER.password,
  ]);
  const sessions = join(dir, 'sessions');
  mkdirSync(sessions);
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  const file = join(dir, 'warmpool.yaml');
  // CLASSIC.md's configuration for Debian's phpMyAdmin; the server is "localhost", so mysqli takes
  // the socket php-cgi is given
  writeFileSync(
    file,
    [
      'version: "3"',
      'http:',
      `  address: 127.0.0.1:${port}`,
      '  middleware: [static, gzip]',
      '  static:',
      '    link_targets: [/usr/share/javascript]',
      '  access:',
      '    - { prefix: /libraries, deny: [all] }',
      '    - { prefix: /templates, deny: [all] }',
      '  pool: { num_workers: 2 }',
      'logs: { mode: production, level: warn }',
      `admin: { socket: ${join(dir, 'admin.sock')} }`,
      'fastcgi:',
      `  root: ${PHPMYADMIN}`,
      `  command: php-cgi -d mysqli.default_socket=${db.socket} -d session.save_path=${sessions}`,
      '',
    ].join('\n'),
  );
  server = startServer(['serve', '-c', file]);
  await server.ready(30_000);
  browser = new Browser(origin, `127.0.0.1:${port}`);
}, 90_000);

afterAll(async () => {
  await stopAllServers();
  await db?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The value of a hidden input of a form (phpMyAdmin's CSRF token and the like). */
function hidden(html: string, name: string): string {
  const value = new RegExp(`name="${name}" value="([^"]*)"`).exec(html)?.[1];
  if (value === undefined) throw new Error(`no hidden input "${name}" in the page`);
  return value;
}

describe("Debian's phpMyAdmin (php-cgi)", () => {
  it('shows its login page, and every script and stylesheet it names is sent as one, those it links from /usr/share/javascript too', async () => {
    const login = await browser.get('/');
    expect(login.status).toBe(200);
    expect(login.text).toContain('id="login_form"');
    const assets = [...login.text.matchAll(/(?:src|href)="([^"]+\.(js|css)(?:\?[^"]*)?)"/g)].map(([, url, kind]) => ({
      url: `/${url!.replace(/^\.\//, '').replace(/&amp;/g, '&')}`,
      kind: kind!,
    }));
    expect(assets.length).toBeGreaterThan(20);
    // jQuery is among them, a link into /usr/share/javascript
    expect(assets.some((a) => a.url.startsWith('/js/vendor/jquery/jquery.min.js'))).toBe(true);
    expect(realpathSync(join(PHPMYADMIN, 'js/vendor/jquery/jquery.min.js'))).toMatch(/^\/usr\/share\/javascript\//);
    for (const { url, kind } of assets) {
      const res = await browser.get(url);
      expect(res.status, url).toBe(200);
      expect(res.headers['content-type'], url).toMatch(kind === 'js' ? /javascript/ : /^text\/css/);
      expect(res.text, url).not.toContain('<html');
    }
  });

  it('logs in to MariaDB and lists its databases', async () => {
    const login = await browser.get('/');
    const signedIn = await browser.post('/index.php?route=/', {
      pma_username: USER.name,
      pma_password: USER.password,
      server: '1',
      route: '/',
      token: hidden(login.text, 'token'),
      set_session: hidden(login.text, 'set_session'),
    });
    expect(signedIn.status).toBe(302);
    expect(browser.cookie('pmaAuth-1')).toBeDefined();
    const home = await browser.get(String(signedIn.headers.location));
    expect(home.status).toBe(200);
    expect(home.text).toMatch(/Server version:\s*[\d.]+-MariaDB/);
    const databases = await browser.get('/index.php?route=/server/databases');
    expect(databases.status).toBe(200);
    expect(databases.text).toContain('performance_schema');
  });

  it('runs SQL: creates a database, and then lists it', async () => {
    const page = await browser.get('/index.php?route=/server/sql');
    const created = await browser.post('/index.php?route=/import', {
      token: hidden(page.text, 'token'),
      server: '1',
      db: '',
      sql_query: 'CREATE DATABASE warmpool_e2e',
      ajax_request: 'true',
    });
    expect(created.status).toBe(200);
    expect(JSON.parse(created.text)).toMatchObject({ success: true });
    expect((await browser.get('/index.php?route=/server/databases')).text).toContain('warmpool_e2e');
  });

  it('never sends what its Apache configuration closes, nor its source', async () => {
    for (const path of [
      '/libraries/config.default.php',
      '/libraries/vendor_config.php',
      '/templates/login/form.twig',
    ]) {
      const res = await browser.get(path);
      expect(res.status, path).toBe(403);
      expect(res.text, path).not.toMatch(/<\?php|\{%/);
    }
    // a PHP file outside those folders runs, never leaves as source
    const sample = await browser.get('/config.sample.inc.php');
    expect(sample.text).not.toContain('<?php');
  });
});
