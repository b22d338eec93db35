// Debian's WordPress, copied to a temp folder with a plain wp-config.php of its own (Debian's reads
// /etc/wordpress/config-<host>.php, which a test must not write), its database in a MariaDB the
// test starts, and the twentytwentyone theme Debian ships beside it; or a subdirectory network of
// sites (WordPress multisite) installed through PHP's CLI, as network.php and site-new.php do.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MariaDb } from './mariadb.js';

export const WORDPRESS_DIR = '/usr/share/wordpress';
const THEME = 'wp-content/themes/twentytwentyone';

export function hasWordPress(): boolean {
  return existsSync(join(WORDPRESS_DIR, 'wp-settings.php')) && existsSync(join(WORDPRESS_DIR, THEME));
}

/** Copies WordPress into `dir`/`name` with its own database `name`; returns the document root. */
export function prepareWordPress(dir: string, db: MariaDb, name: string): string {
  const root = join(dir, name);
  execFileSync('cp', ['-rL', WORDPRESS_DIR, root]);
  rmSync(join(root, '.htaccess'), { force: true });
  mkdirSync(join(root, 'wp-content', 'uploads'), { recursive: true });
  db.createDatabase(name);
  const salt = () => randomBytes(24).toString('hex');
  writeFileSync(
    join(root, 'wp-config.php'),
    `<?php
define('DB_NAME', '${name}');
define('DB_USER', 'root');
define('DB_PASSWORD', '');
define('DB_HOST', 'localhost:${db.socket}');
define('DB_CHARSET', 'utf8mb4');
$table_prefix = 'wp_';
${[
  'AUTH_KEY',
  'SECURE_AUTH_KEY',
  'LOGGED_IN_KEY',
  'NONCE_KEY',
  'AUTH_SALT',
  'SECURE_AUTH_SALT',
  'LOGGED_IN_SALT',
  'NONCE_SALT',
]
  .map((key) => `define('${key}', '${salt()}');`)
  .join('\n')}
// no internet here: calls to wordpress.org fail at once; the site's own loopback requests still go
define('WP_HTTP_BLOCK_EXTERNAL', true);
define('AUTOMATIC_UPDATER_DISABLED', true);
define('WP_CONTENT_DIR', __DIR__ . '/wp-content');
if (!defined('ABSPATH')) define('ABSPATH', __DIR__ . '/');
require_once ABSPATH . 'wp-settings.php';
`,
  );
  return root;
}

/**
 * Turns the WordPress at `root` (from prepareWordPress) into a subdirectory network for `host`,
 * with pretty permalinks (/%postname%/) on every site and a site at each of `sites` ("/site2/");
 * returns their blog ids. Through PHP's CLI, as the installer, network.php (its two steps) and
 * site-new.php do: server-classic-wordpress.test.ts drives those pages already.
 */
export function installWordPressNetwork(
  root: string,
  host: string,
  admin: { user: string; password: string; email: string },
  sites: readonly string[],
): number[] {
  const php = (code: string) =>
    execFileSync('php', ['-d', 'display_errors=stderr', '-r', code], {
      cwd: root,
      env: { ...process.env, WP_E2E_HOST: host },
      encoding: 'utf8',
    });
  const boot = `$_SERVER['HTTP_HOST'] = getenv('WP_E2E_HOST'); $_SERVER['REQUEST_URI'] = '/'; $_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1'; $_SERVER['REMOTE_ADDR'] = '127.0.0.1';`;
  const config = join(root, 'wp-config.php');
  // no scheduled jobs asking the site for wp-cron.php: the test's host name resolves nowhere
  writeFileSync(config, readFileSync(config, 'utf8').replace('<?php\n', "<?php\ndefine('DISABLE_WP_CRON', true);\n"));
  php(`${boot}
define('WP_INSTALLING', true);
require 'wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/network.php';
wp_install('Network e2e', ${JSON.stringify(admin.user)}, ${JSON.stringify(admin.email)}, false, '', ${JSON.stringify(admin.password)});
update_option('siteurl', 'http://' . getenv('WP_E2E_HOST'));
update_option('home', 'http://' . getenv('WP_E2E_HOST'));
update_option('permalink_structure', '/%postname%/');
delete_option('rewrite_rules');
// as network.php does before its tables exist
foreach ($wpdb->tables('ms_global') as $table => $prefixed) $wpdb->$table = $prefixed;
install_network();
$result = populate_network(1, getenv('WP_E2E_HOST'), ${JSON.stringify(admin.email)}, 'Network e2e', '/', false);
if (is_wp_error($result)) { fwrite(STDERR, $result->get_error_message()); exit(1); }`);
  // network.php's second step: the lines it asks to add to wp-config.php
  writeFileSync(
    config,
    readFileSync(config, 'utf8').replace(
      "if (!defined('ABSPATH'))",
      `define('MULTISITE', true);
define('SUBDOMAIN_INSTALL', false);
define('DOMAIN_CURRENT_SITE', ${JSON.stringify(host)});
define('PATH_CURRENT_SITE', '/');
define('SITE_ID_CURRENT_SITE', 1);
define('BLOG_ID_CURRENT_SITE', 1);
if (!defined('ABSPATH'))`,
    ),
  );
  const ids = php(`${boot}
require 'wp-load.php';
foreach (${JSON.stringify(sites)} as $i => $path) {
    $id = wpmu_create_blog(getenv('WP_E2E_HOST'), $path, 'Site ' . ($i + 2), 1);
    if (is_wp_error($id)) { fwrite(STDERR, $id->get_error_message()); exit(1); }
    switch_to_blog($id);
    update_option('permalink_structure', '/%postname%/');
    delete_option('rewrite_rules'); // made again, for this structure, by the site's next page
    restore_current_blog();
    echo "site-id=$id\n";
}`);
  // the sites' ids, whatever else WordPress printed
  return [...ids.matchAll(/^site-id=(\d+)$/gm)].map((match) => Number(match[1]));
}
