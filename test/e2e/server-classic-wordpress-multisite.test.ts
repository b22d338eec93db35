// A WordPress subdirectory network (multisite) through `warmpool serve` with php-cgi, Debian's
// WordPress on a real MariaDB: a second site at /site2/ reaches the network's shared files under
// its own folder (fastcgi.multisite: subdirectory, WordPress's nginx rules `rewrite
// ^(/[^/]+)?(/wp-.*) $2 last; rewrite ^(/[^/]+)?(/.*\.php) $2 last;`): its login and dashboard, a
// wp-includes asset, a media upload and its file, a pretty permalink; a script planted among its
// uploads never runs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FormData } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../helpers/browser.js';
import { freePort } from '../helpers/free-port.js';
import { type MariaDb, startMariaDb } from '../helpers/mariadb.js';
import { installWordPressNetwork, prepareWordPress } from '../helpers/wordpress.js';
import { type RunningServer, startServer, stopAllServers } from '../helpers/warmpool-server.js';

const ADMIN = { user: 'admin', password: 'e2e-Secr3t-passw0rd', email: 'admin@example.com' };
// the network's name: WordPress refuses a network on an address with a port
const HOST = 'network.test';
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

let db: MariaDb;
let server: RunningServer;
let origin: string;
let root: string;
const dir = mkdtempSync(join(tmpdir(), 'wp-multisite-'));

beforeAll(async () => {
  db = await startMariaDb();
  root = prepareWordPress(dir, db, 'wp_network');
  expect(installWordPressNetwork(root, HOST, ADMIN, ['/site2/'])).toEqual([2]);
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  const file = join(dir, 'warmpool.yaml');
  writeFileSync(
    file,
    [
      'version: "3"',
      'http:',
      `  address: 127.0.0.1:${port}`,
      '  middleware: [static, gzip]',
      '  pool: { num_workers: 2 }',
      'logs: { mode: production, level: warn }',
      `admin: { socket: ${join(dir, 'admin.sock')} }`,
      'fastcgi:',
      `  root: ${root}`,
      `  command: php-cgi -d session.save_path=${dir}`,
      '  no_exec: [wp-content/uploads]',
      '  multisite: subdirectory',
      '',
    ].join('\n'),
  );
  server = startServer(['serve', '-c', file]);
  await server.ready(30_000);
}, 120_000);

afterAll(async () => {
  await stopAllServers();
  await db?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('WordPress subdirectory network (fastcgi.multisite)', () => {
  const admin = () => new Browser(origin, HOST);
  let browser: Browser;

  it("logs in on the second site's wp-login.php and shows its dashboard; its wp-admin without the slash is sent to it", async () => {
    browser = admin();
    expect((await browser.get('/site2/wp-login.php')).status).toBe(200);
    const login = await browser.post('/site2/wp-login.php', {
      log: ADMIN.user,
      pwd: ADMIN.password,
      'wp-submit': 'Log In',
      redirect_to: `http://${HOST}/site2/wp-admin/`,
      testcookie: '1',
    });
    expect([login.status, login.headers.location]).toEqual([302, `http://${HOST}/site2/wp-admin/`]);
    const dashboard = await browser.get('/site2/wp-admin/');
    expect(dashboard.status).toBe(200);
    expect(dashboard.text).toContain('<title>Dashboard &lsaquo; Site 2');
    // nginx: rewrite /wp-admin$ $scheme://$host$uri/ permanent
    const bare = await browser.get('/site2/wp-admin');
    expect([bare.status, bare.headers.location]).toEqual([301, '/site2/wp-admin/']);
    // the network's own first site is still itself
    expect((await browser.get('/wp-admin/')).text).toContain('<title>Dashboard &lsaquo; Network e2e');
  });

  it("sends the network's shared static files under the site's folder, and its pretty permalinks", async () => {
    const visitor = new Browser(origin, HOST);
    const css = await visitor.get('/site2/wp-includes/css/dashicons.min.css');
    expect([css.status, css.headers['content-type']]).toEqual([200, 'text/css; charset=utf-8']);
    expect(css.text).toContain('dashicons');
    const theme = await visitor.get('/site2/wp-content/themes/twentytwentyone/style.css');
    expect(theme.status).toBe(200);
    const post = await visitor.get('/site2/hello-world/');
    expect(post.status).toBe(200);
    expect(post.text).toMatch(/<title>Hello world! &#8211; Site 2/);
    expect(post.text).toContain(`http://${HOST}/site2/wp-includes/`);
  });

  it("takes a media upload on the second site, serves it from the site's folder, and never runs a script planted beside it", async () => {
    const restNonce = (await browser.get('/site2/wp-admin/admin-ajax.php?action=rest-nonce')).text;
    expect(restNonce).toMatch(/^[0-9a-f]{10}$/);
    const form = new FormData();
    form.append('file', new Blob([PNG], { type: 'image/png' }), 'pixel.png');
    const uploaded = await browser.send('POST', '/site2/wp-json/wp/v2/media', { 'x-wp-nonce': restNonce }, form);
    expect(uploaded.status).toBe(201);
    const media = JSON.parse(uploaded.text) as { source_url: string };
    const prefix = `http://${HOST}/site2/wp-content/uploads/sites/2/`;
    expect(media.source_url).toMatch(new RegExp(`^${prefix}\\d{4}/\\d{2}/pixel\\.png$`));
    const path = media.source_url.slice(`http://${HOST}`.length);
    const image = await new Browser(origin, HOST).get(path);
    expect([image.status, image.headers['content-type'], image.body.equals(PNG)]).toEqual([200, 'image/png', true]);
    const folder = join(root, 'wp-content', 'uploads', 'sites', '2', path.split('/').slice(-3, -1).join('/'));
    writeFileSync(join(folder, 'shell.php'), "<?php echo 'PWNED';");
    for (const spelling of [path.replace('pixel.png', 'shell.php'), path.replace('/site2/', '/site2//./')]) {
      const shell = await new Browser(origin, HOST).get(spelling.replace('pixel.png', 'shell.php'));
      expect([spelling, shell.status]).toEqual([spelling, 403]);
      expect(shell.text).not.toContain('PWNED');
    }
  });
});
