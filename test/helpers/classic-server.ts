// `warmpool serve` with classic PHP sites beside a worker site, chosen by Host, in one of the two
// ways classic PHP runs: php-cgi processes warmpool manages, or `fastcgi.pass` to a php-fpm started
// for the test. The sites: wiki.test (a copy of Debian's DokuWiki), adminer.test (Debian's Adminer),
// app.test (a copy of test/fixtures/sites/classic-app, a front controller, with links out of its
// root planted), and the default site, a worker (echo.php). PHP sessions go to the run's own
// folder, never the system's.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareDokuWiki, type DokuWiki } from './dokuwiki.js';
import { freePort } from './free-port.js';
import { startPhpFpm, type PhpFpm } from './php-fpm.js';
import { FIXTURES, startServer, type RunningServer } from './warmpool-server.js';

export type ClassicMode = 'managed' | 'pass';

export const ADMINER_DIR = '/usr/share/adminer';

export interface ClassicServer {
  mode: ClassicMode;
  origin: string;
  port: number;
  dir: string;
  server: RunningServer;
  wiki: DokuWiki;
  /** app.test's root: a copy of test/fixtures/sites/classic-app with links out of it planted */
  app: string;
  fpm: PhpFpm | null;
  /** the PHP SAPI the sites run under: cgi-fcgi (managed) or fpm-fcgi (pass) */
  sapi: string;
  close(): Promise<void>;
}

export async function startClassicServer(mode: ClassicMode): Promise<ClassicServer> {
  const dir = mkdtempSync(join(tmpdir(), `wp-classic-${mode}-`));
  const sessions = join(dir, 'sessions');
  mkdirSync(sessions);
  const wiki = prepareDokuWiki(dir);
  const app = prepareApp(dir);
  const fpm =
    mode === 'pass'
      ? await startPhpFpm({ maxChildren: 4, ini: { 'session.save_path': sessions, memory_limit: '256M' } })
      : null;
  const port = await freePort();
  // managed: each site's php-cgi gets the run's session folder; pass: php-fpm has it
  const backend = (extra: string[] = []) =>
    fpm === null
      ? [`      command: php-cgi -d session.save_path=${sessions} -d memory_limit=256M`, ...extra]
      : [`      pass: ${fpm.pass}`, ...extra];
  const config = [
    'version: "3"',
    'server:',
    `  command: php ${FIXTURES}/php/echo.php`,
    'http:',
    `  address: 127.0.0.1:${port}`,
    '  pool: { num_workers: 1, allocate_timeout: 10s, destroy_timeout: 5s }',
    'logs: { mode: production, level: warn }',
    `admin: { socket: ${join(dir, 'admin.sock')} }`,
    'sites:',
    '  - hosts: [wiki.test]',
    '    fastcgi:',
    `      root: ${wiki.root}`,
    ...backend(),
    '      index: [doku.php]',
    '      try_files: ["$uri", "$uri/", "/doku.php?id=$uri&$args"]',
    '      no_exec: [bin, inc, vendor]',
    '    http: { pool: { num_workers: 2 } }',
    '  - hosts: [adminer.test]',
    '    fastcgi:',
    `      root: ${ADMINER_DIR}`,
    ...backend(),
    '      index: [adminer.php]',
    '  - hosts: [app.test]',
    '    fastcgi:',
    `      root: ${app}`,
    ...backend(fpm === null ? [] : ['      max_connections: 3']),
    '      no_exec: [wp-content/uploads]',
    '      params: { APP_ENV: e2e }',
    '    http:',
    `      internal_files: { root: ${join(dir, 'private')}, prefix: /protected/ }`,
    '      max_request_size: 8',
    '      pool: { num_workers: 2, supervisor: { exec_ttl: 1s } }',
    '',
  ].join('\n');
  const file = join(dir, 'warmpool.yaml');
  writeFileSync(file, config);
  const server = startServer(['serve', '-c', file]);
  try {
    await server.ready(30_000);
  } catch (error) {
    await server.stop('SIGKILL');
    await fpm?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    mode,
    origin: `http://127.0.0.1:${port}`,
    port,
    dir,
    server,
    wiki,
    app,
    fpm,
    sapi: mode === 'managed' ? 'cgi-fcgi' : 'fpm-fcgi',
    close: async () => {
      await server.stop('SIGTERM');
      await fpm?.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The front-controller app, copied so that what a careless deploy leaves can be planted in it:
 * links to /etc and /etc/passwd, and a script linked from outside the root.
 */
function prepareApp(dir: string): string {
  const app = join(dir, 'app');
  execFileSync('cp', ['-r', join(FIXTURES, 'sites', 'classic-app'), app]);
  mkdirSync(join(dir, 'outside'));
  writeFileSync(join(dir, 'outside', 'evil.php'), "<?php echo 'PWNED: a script outside the root ran';");
  symlinkSync('/etc', join(app, 'etc'));
  symlinkSync('/etc/passwd', join(app, 'passwd.txt'));
  symlinkSync(join(dir, 'outside', 'evil.php'), join(app, 'linked.php'));
  // the internal folder of X-Accel-Redirect / X-Sendfile downloads: a large file, and a secret
  mkdirSync(join(dir, 'private'));
  writeFileSync(join(dir, 'private', 'big.bin'), randomBytes(3 * 1024 * 1024));
  writeFileSync(join(dir, 'private', '.secret'), 'hunter2-private');
  return app;
}
