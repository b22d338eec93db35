// Debian's DokuWiki (apt install dokuwiki), copied for one test run: its code from /usr/share/dokuwiki
// (symlinks followed: Debian links lib/plugins and lib/tpl into /var/lib/dokuwiki), its config from
// /etc/dokuwiki and its data from /var/lib/dokuwiki/data, into a temp dir the test owns. The system's
// DokuWiki is only read; the copy gets an admin with a known password, ACLs, and nice URLs.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const DOKUWIKI_DIR = '/usr/share/dokuwiki';
export const DOKUWIKI_ADMIN = { user: 'admin', password: 'warmpool-secret' };

export interface DokuWiki {
  /** the document root (fastcgi.root) */
  root: string;
  /** savedir: pages, attic, meta, cache, locks */
  data: string;
}

export function hasDokuWiki(): boolean {
  return existsSync(join(DOKUWIKI_DIR, 'doku.php')) && existsSync('/etc/dokuwiki/dokuwiki.php');
}

/** Copies DokuWiki into `dir` (root, conf and data side by side; only root is served). */
export function prepareDokuWiki(dir: string): DokuWiki {
  if (!hasDokuWiki()) throw new Error('DokuWiki is not installed: apt-get install -y --no-install-recommends dokuwiki');
  const root = join(dir, 'wiki');
  const conf = join(dir, 'conf');
  const data = join(dir, 'data');
  execFileSync('cp', ['-rL', DOKUWIKI_DIR, root]);
  execFileSync('cp', ['-rL', '/etc/dokuwiki', conf]);
  execFileSync('cp', ['-r', '/var/lib/dokuwiki/data', data]);
  for (const sub of [
    'pages',
    'attic',
    'meta',
    'media',
    'media_attic',
    'media_meta',
    'cache',
    'index',
    'locks',
    'tmp',
    'log',
  ])
    mkdirSync(join(data, sub), { recursive: true });
  // Debian's preload points DokuWiki at /etc/dokuwiki: the copy's points at its own conf
  writeFileSync(
    join(root, 'inc', 'preload.php'),
    `<?php\nif (!defined('DOKU_CONF')) define('DOKU_CONF', '${conf}/');\n`,
  );
  writeFileSync(
    join(conf, 'local.php'),
    [
      '<?php',
      "$conf['title'] = 'warmpool test wiki';",
      `$conf['savedir'] = '${data}';`,
      "$conf['useacl'] = 1;",
      "$conf['superuser'] = '@admin';",
      // nice URLs without rewrite rules: /doku.php/wiki:syntax (PATH_INFO)
      "$conf['userewrite'] = 2;",
      "$conf['updatecheck'] = 0;",
      "$conf['breadcrumbs'] = 0;",
      '',
    ].join('\n'),
  );
  const md5 = createHash('md5').update(DOKUWIKI_ADMIN.password).digest('hex');
  writeFileSync(
    join(conf, 'users.auth.php'),
    `# users\n${DOKUWIKI_ADMIN.user}:${md5}:Wiki Admin:admin@example.test:admin,user\n`,
  );
  writeFileSync(join(conf, 'acl.auth.php'), '# acl\n*\t@ALL\t1\n*\t@user\t8\n');
  return { root, data };
}
