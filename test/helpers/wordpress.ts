// Debian's WordPress, copied to a temp folder with a plain wp-config.php of its own (Debian's reads
// /etc/wordpress/config-<host>.php, which a test must not write), its database in a MariaDB the
// test starts, and the twentytwentyone theme Debian ships beside it.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
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
