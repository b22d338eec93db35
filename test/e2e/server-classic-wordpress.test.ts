// Debian's WordPress through `warmpool serve`, over real sockets, with a real MariaDB, both ways
// classic PHP runs (php-cgi managed by warmpool, and fastcgi.pass to a php-fpm): what an operator
// moving a WordPress site from nginx + php-fpm does first. Install, log in, pretty permalinks, a
// post through the REST API, a media upload (and a script planted among the uploads), a comment,
// WordPress's own Site Health loopback checks, WP-Cron while every PHP process is busy, its static
// files compressed, and nginx's microcaching recipe (cache.max_age) keeping anonymous pages, never a
// logged-in one.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FormData } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from '../helpers/browser.js';
import { freePort } from '../helpers/free-port.js';
import { type MariaDb, startMariaDb } from '../helpers/mariadb.js';
import { type PhpFpm, startPhpFpm } from '../helpers/php-fpm.js';
import { prepareWordPress } from '../helpers/wordpress.js';
import { type RunningServer, startServer, stopAllServers } from '../helpers/warmpool-server.js';

type Mode = 'managed' | 'pass';

let db: MariaDb;
const dir = mkdtempSync(join(tmpdir(), 'wp-wordpress-'));

beforeAll(async () => {
  db = await startMariaDb();
}, 60_000);

afterAll(async () => {
  await stopAllServers();
  await db?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const ADMIN = { user: 'admin', password: 'e2e-Secr3t-passw0rd', email: 'admin@example.com' };
// a PNG of one pixel
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==',
  'base64',
);

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

/**
 * The test's own WordPress plugin (a must-use plugin) and a script beside WordPress, leaving marks
 * in `marks`: `/?warmpool-schedule=NAME` schedules a one-off event that leaves NAME once WP-Cron
 * ran it; `?warmpool-after-cron=FLAG` makes a page hold its PHP process, after WordPress asked for
 * wp-cron.php (it leaves "spawned"), until FLAG exists; `/hold.php?flag=FLAG` holds a PHP process
 * (it leaves "holding") until FLAG exists.
 */
function writeTestPlugin(root: string, marks: string): void {
  const hold = `for ($i = 0; $i < 2000 && !file_exists($flag); $i++) usleep(10000);`;
  mkdirSync(join(root, 'wp-content', 'mu-plugins'), { recursive: true });
  writeFileSync(
    join(root, 'wp-content', 'mu-plugins', 'warmpool-e2e.php'),
    `<?php
const WARMPOOL_MARKS = ${JSON.stringify(marks)};
add_action('warmpool_e2e_event', function ($name) {
    file_put_contents(WARMPOOL_MARKS . '/' . basename($name), 'ran');
});
if (isset($_GET['warmpool-schedule'])) {
    delete_transient('doing_cron'); // a cron run of the tests before may still hold its lock
    wp_schedule_single_event(time() - 1, 'warmpool_e2e_event', [$_GET['warmpool-schedule']]);
    exit('scheduled');
}
if (isset($_GET['warmpool-after-cron'])) {
    // wp_loaded (WP-Cron's spawn_cron) has run by template_redirect
    add_action('template_redirect', function () {
        file_put_contents(WARMPOOL_MARKS . '/spawned', '');
        $flag = $_GET['warmpool-after-cron'];
        ${hold}
    });
}
`,
  );
  writeFileSync(
    join(root, 'hold.php'),
    `<?php
file_put_contents(${JSON.stringify(join(marks, 'holding'))}, '');
$flag = $_GET['flag'];
${hold}
echo 'released';
`,
  );
}

describe.each<Mode>(['managed', 'pass'])('WordPress (%s)', (mode) => {
  let server: RunningServer;
  let fpm: PhpFpm | null = null;
  let origin: string;
  let host: string;
  let root: string;
  /** where the test's WordPress plugin leaves its marks (see writeTestPlugin) */
  let marks: string;
  /** the administrator's browser, logged in by the second test */
  let admin: Browser;
  let postUrl: string;

  beforeAll(async () => {
    root = prepareWordPress(dir, db, `wp_${mode}`);
    marks = join(dir, `marks-${mode}`);
    mkdirSync(marks);
    writeTestPlugin(root, marks);
    const sessions = join(dir, `sessions-${mode}`);
    mkdirSync(sessions);
    if (mode === 'pass') fpm = await startPhpFpm({ maxChildren: 2, ini: { 'session.save_path': sessions } });
    const port = await freePort();
    origin = `http://127.0.0.1:${port}`;
    // WordPress keeps the address it was installed under (siteurl) and calls itself there
    host = `127.0.0.1:${port}`;
    const file = join(dir, `warmpool-${mode}.yaml`);
    writeFileSync(
      file,
      [
        'version: "3"',
        'http:',
        `  address: 127.0.0.1:${port}`,
        '  max_request_size: 64',
        '  middleware: [static, gzip]',
        '  pool: { num_workers: 2 }',
        'logs: { mode: production, level: warn }',
        `admin: { socket: ${join(dir, `admin-${mode}.sock`)} }`,
        // nginx's WordPress microcaching: fastcgi_cache_valid 200 301 10s + the login-cookie bypass
        'cache: { enabled: true, max_age: 10s }',
        'fastcgi:',
        `  root: ${root}`,
        // pass: warmpool keeps to php-fpm's two children, and its own queue holds the rest
        fpm === null
          ? `  command: php-cgi -d session.save_path=${sessions}`
          : `  pass: ${fpm.pass}\n  max_connections: 2`,
        '  index: [index.php, index.html]',
        '  no_exec: [wp-content/uploads]',
        '',
      ].join('\n'),
    );
    server = startServer(['serve', '-c', file]);
    await server.ready(30_000);
    admin = new Browser(origin, host);
  }, 90_000);

  afterAll(async () => {
    await server?.stop('SIGTERM');
    await fpm?.stop();
  });

  it('sends a new site to its installer, and installs', async () => {
    const visitor = new Browser(origin, host);
    const home = await visitor.get('/');
    expect([home.status, home.headers.location]).toEqual([302, `${origin}/wp-admin/install.php`]);
    const installer = await visitor.get('/wp-admin/install.php');
    expect(installer.status).toBe(200);
    expect(installer.text).toContain('<title>WordPress &rsaquo; Installation');
    const installed = await visitor.post('/wp-admin/install.php?step=2', {
      weblog_title: `warmpool e2e (${mode})`,
      user_name: ADMIN.user,
      admin_password: ADMIN.password,
      admin_password2: ADMIN.password,
      pw_weak: '1',
      admin_email: ADMIN.email,
      blog_public: '0',
      language: '',
    });
    expect(installed.status).toBe(200);
    expect(installed.text).toContain('<h1>Success!</h1>');
  });

  it('logs in (its test cookie, then the auth cookies) and shows the dashboard', async () => {
    expect((await admin.get('/wp-login.php')).status).toBe(200);
    expect(admin.cookie('wordpress_test_cookie')).toBeDefined();
    const login = await admin.post('/wp-login.php', {
      log: ADMIN.user,
      pwd: ADMIN.password,
      'wp-submit': 'Log In',
      redirect_to: `${origin}/wp-admin/`,
      testcookie: '1',
    });
    expect([login.status, login.headers.location]).toEqual([302, `${origin}/wp-admin/`]);
    expect([...admin.cookies.keys()].some((name) => name.startsWith('wordpress_logged_in_'))).toBe(true);
    const dashboard = await admin.get('/wp-admin/');
    expect(dashboard.status).toBe(200);
    expect(dashboard.text).toContain('<title>Dashboard &lsaquo; warmpool e2e');
  });

  it('saves pretty permalinks, and publishes a post through the REST API under its pretty URL', async () => {
    const settings = await admin.get('/wp-admin/options-permalink.php');
    // WordPress takes the server for one that rewrites URLs (it looks for "nginx" in SERVER_SOFTWARE):
    // its choices are pretty ones, not /index.php/... (before: only those, and Site Health said no)
    expect(settings.text).toContain('value="/%postname%/"');
    expect(settings.text).not.toContain('/index.php/%postname%/');
    const nonce = /name="_wpnonce" value="([0-9a-f]+)"/.exec(settings.text)![1]!;
    const saved = await admin.post('/wp-admin/options-permalink.php', {
      _wpnonce: nonce,
      _wp_http_referer: '/wp-admin/options-permalink.php',
      selection: '/%postname%/',
      permalink_structure: '/%postname%/',
      category_base: '',
      tag_base: '',
      submit: 'Save Changes',
    });
    expect([saved.status, saved.headers.location]).toEqual([
      302,
      `${origin}/wp-admin/options-permalink.php?settings-updated=true`,
    ]);
    // as a browser follows it: that page writes the new rewrite rules
    expect((await admin.get('/wp-admin/options-permalink.php?settings-updated=true')).status).toBe(200);

    const restNonce = (await admin.get('/wp-admin/admin-ajax.php?action=rest-nonce')).text;
    expect(restNonce).toMatch(/^[0-9a-f]{10}$/);
    const created = await admin.send(
      'POST',
      '/wp-json/wp/v2/posts',
      { 'x-wp-nonce': restNonce, 'content-type': 'application/json' },
      JSON.stringify({ title: 'Hello from warmpool', content: '<p>Grüße, café — 東京</p>', status: 'publish' }),
    );
    expect(created.status).toBe(201);
    const post = JSON.parse(created.text) as { id: number; link: string };
    expect(post.link).toBe(`${origin}/hello-from-warmpool/`);
    postUrl = '/hello-from-warmpool/';

    const visitor = new Browser(origin, host);
    const page = await visitor.get(postUrl);
    expect(page.status).toBe(200);
    expect(page.text).toContain('Grüße, café — 東京');
    expect(page.text).toContain('<title>Hello from warmpool');
    // the plain link WordPress knows it by is sent to the pretty one
    const plain = await visitor.get(`/?p=${post.id}`);
    expect([plain.status, plain.headers.location]).toEqual([301, `${origin}${postUrl}`]);
    expect((await visitor.get('/no-such-post/')).status).toBe(404);
  });

  it('keeps anonymous pages in the micro-cache (cache.max_age), never the logged-in ones', async () => {
    const visitor = new Browser(origin, host);
    const first = await visitor.get(postUrl);
    const second = await visitor.get(postUrl);
    // WordPress sends no Cache-Control on an anonymous page: max_age keeps it, as fastcgi_cache_valid
    expect(first.headers['cache-control']).toBeUndefined();
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual([expect.stringMatching(/MISS|HIT/), 'HIT']);
    expect(second.text).toBe(first.text);
    const loggedIn = await admin.get(postUrl);
    expect(loggedIn.headers['x-cache']).toBe('BYPASS');
    expect(loggedIn.text).toContain('id="wpadminbar"'); // the admin's own page, not the cached one
    // wp-login.php sets a cookie, and a 404 is sent with no-cache: PHP answers every time
    const logins = [await visitor.get('/wp-login.php'), await new Browser(origin, host).get('/wp-login.php')];
    expect(logins.map((res) => res.headers['x-cache'])).toEqual(['MISS', 'MISS']);
    const missing = [await visitor.get('/no-such-post/'), await visitor.get('/no-such-post/')];
    expect(missing.map((res) => [res.status, res.headers['x-cache']])).toEqual([
      [404, 'MISS'],
      [404, 'MISS'],
    ]);
  });

  it('takes a comment: the redirect back, and its author cookies bypass the cache from then on', async () => {
    const visitor = new Browser(origin, host);
    const page = await visitor.get(postUrl);
    const postId = /name=['"]comment_post_ID['"] value=['"](\d+)['"]/.exec(page.text)![1]!;
    const comment = await visitor.post('/wp-comments-post.php', {
      comment: 'A comment through warmpool.',
      author: 'Visitor',
      email: 'visitor@example.com',
      url: '',
      'wp-comment-cookies-consent': 'yes',
      comment_post_ID: postId,
      comment_parent: '0',
    });
    expect(comment.status).toBe(302);
    expect(String(comment.headers.location)).toMatch(new RegExp(`^${origin}/hello-from-warmpool/.*#comment-\\d+$`));
    expect([...visitor.cookies.keys()].some((name) => name.startsWith('comment_author_'))).toBe(true);
    const after = await visitor.get(postUrl);
    expect(after.headers['x-cache']).toBe('BYPASS');
    // held for moderation: shown to its author only
    expect(after.text).toContain('A comment through warmpool.');
  });

  it('uploads media (multipart), serves it as a static file, and never runs a script planted among the uploads', async () => {
    const restNonce = (await admin.get('/wp-admin/admin-ajax.php?action=rest-nonce')).text;
    const form = new FormData();
    form.append('file', new Blob([PNG], { type: 'image/png' }), 'pixel.png');
    const uploaded = await admin.send('POST', '/wp-json/wp/v2/media', { 'x-wp-nonce': restNonce }, form);
    expect(uploaded.status).toBe(201);
    const media = JSON.parse(uploaded.text) as { source_url: string };
    expect(media.source_url).toMatch(new RegExp(`^${origin}/wp-content/uploads/\\d{4}/\\d{2}/pixel\\.png$`));
    const path = media.source_url.slice(origin.length);
    const image = await new Browser(origin, host).get(path);
    expect([image.status, image.headers['content-type'], image.body.equals(PNG)]).toEqual([200, 'image/png', true]);
    // a script an attacker managed to put among the uploads: neither run nor shown
    const folder = join(root, path.slice(1, path.lastIndexOf('/')));
    writeFileSync(join(folder, 'shell.php'), "<?php echo 'PWNED';");
    const shell = await new Browser(origin, host).get(path.replace('pixel.png', 'shell.php'));
    expect(shell.status).toBe(403);
    expect(shell.text).not.toContain('PWNED');
    // the cgi.fix_pathinfo trap: the image is not run as PHP either
    const trap = await new Browser(origin, host).get(`${path}/x.php`);
    expect(trap.text).not.toContain('PNG');
  });

  it("passes WordPress's own Site Health checks of the server: loopback requests and the Authorization header", async () => {
    const restNonce = (await admin.get('/wp-admin/admin-ajax.php?action=rest-nonce')).text;
    const loopback = await admin.get('/wp-json/wp-site-health/v1/tests/loopback-requests', {
      'x-wp-nonce': restNonce,
    });
    expect(JSON.parse(loopback.text)).toMatchObject({ status: 'good' });
    // as Site Health's page asks it: Basic credentials it made up, beside the cookie and nonce
    const authorization = await admin.get('/wp-json/wp-site-health/v1/tests/authorization-header', {
      'x-wp-nonce': restNonce,
      authorization: `Basic ${Buffer.from('user:pwd').toString('base64')}`,
    });
    expect(JSON.parse(authorization.text)).toMatchObject({ status: 'good' });
  });

  it('runs WP-Cron while every PHP process is busy: wp-cron.php runs on though WordPress hung up on it (fastcgi.ignore_client_abort)', async () => {
    const visitor = new Browser(origin, host);
    const event = `event-${mode}`;
    expect((await visitor.get(`/?warmpool-schedule=${event}`)).text).toBe('scheduled');
    // one PHP process held; a page holds the other once WordPress has asked for wp-cron.php, which
    // waited in warmpool's queue until WordPress hung up on it (after 10 ms)
    const release = join(marks, 'release');
    const held = visitor.get(`/hold.php?flag=${release}`);
    await until(() => existsSync(join(marks, 'holding')), 'hold.php to hold a PHP process');
    const page = visitor.get(`/sample-page/?warmpool-after-cron=${encodeURIComponent(release)}`);
    await until(() => existsSync(join(marks, 'spawned')), 'the page to have asked for wp-cron.php');
    writeFileSync(release, '');
    expect((await held).text).toBe('released');
    expect((await page).status).toBe(200);
    await until(() => existsSync(join(marks, event)), 'the scheduled event to run');
  });

  it('serves its static files compressed, and never the source of wp-config.php', async () => {
    const visitor = new Browser(origin, host);
    const css = await visitor.get('/wp-includes/css/dashicons.min.css', { 'accept-encoding': 'gzip' });
    expect([css.status, css.headers['content-encoding']]).toEqual([200, 'gzip']);
    expect(gunzipSync(css.body).toString()).toContain('dashicons');
    const config = await visitor.get('/wp-config.php');
    expect(config.text).not.toMatch(/DB_PASSWORD|AUTH_KEY/);
    expect((await visitor.get('/wp-config.php.bak')).status).toBe(404);
    // WP_DEBUG_LOG's file, which nginx would send: paths, queries, sometimes secrets
    writeFileSync(join(root, 'wp-content', 'debug.log'), 'PHP Warning: DB_PASSWORD leaked\n');
    const log = await visitor.get('/wp-content/debug.log');
    expect([log.status, log.text.includes('leaked')]).toEqual([403, false]);
    // XML-RPC: a raw XML body read by PHP from php://input
    const rpc = await visitor.send(
      'POST',
      '/xmlrpc.php',
      { 'content-type': 'text/xml' },
      '<?xml version="1.0"?><methodCall><methodName>demo.sayHello</methodName></methodCall>',
    );
    expect(rpc.status).toBe(200);
    expect(rpc.text).toContain('<string>Hello!</string>');
  });
});
