import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { linkAsRr, runRr } from '../helpers/rr-link.js';
import { selfSignedPair } from '../helpers/tls-pair.js';
import {
  FIXTURES,
  runCli,
  runCliAsNobody,
  startServer,
  startServerAsNobody,
  stopAllServers,
  writeEchoConfig,
} from '../helpers/warmpool-server.js';

// The `warmpool` CLI as a user runs it (the built apps/server/dist/main.js): config errors with
// their lines and exit 2, the effective config, version, cert, and usage errors.
const config = (name: string) => join(FIXTURES, 'server', name);
const ENV = {
  HTTP_PORT: '18999',
  METRICS_PORT: '18998',
  STATUS_PORT: '18997',
  ADMIN_SOCKET: '/tmp/warmpool-cli-test.sock',
  FIXTURES,
};

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-cli-'));
  // the script the configs below name (`command: php worker.php`): config check looks for it
  await writeFile(join(dir, 'worker.php'), '<?php\n');
});
afterAll(async () => {
  await stopAllServers();
  await rm(dir, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;

/** A folder of nobody's (the suite runs as root; mkdtemp's own folders are 0700, root's). */
async function nobodyFolder(name: string): Promise<string> {
  const folder = join(dir, name);
  await mkdir(folder);
  await chmod(dir, 0o755);
  await chown(folder, NOBODY, NOBODY);
  return folder;
}

describe('config errors', () => {
  it('config check: every mistake with its key and line, exit 2', async () => {
    const { code, stdout, stderr } = await runCli(['config', 'check', '-c', config('mistakes.yaml')]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('mistakes.yaml has 3 errors');
    expect(stderr).toMatch(/mistakes\.yaml:7:\d+ http\.max_request_size: /);
    expect(stderr).toMatch(
      /mistakes\.yaml:9:\d+ http\.pool\.num_worker: unknown key; did you mean "http\.pool\.num_workers"\?/,
    );
    expect(stderr).toMatch(/mistakes\.yaml:10:\d+ http\.pool\.allocate_timeout: /);
    expect(stderr).toContain('fix the lines above');
  });

  it('config check names each ignored key at its line, as serve does', async () => {
    const file = join(dir, 'ignored.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        'http:',
        '  address: 127.0.0.1:8080',
        '  pool:',
        '    num_workers: 4',
        'fastcgi:',
        `  root: ${join(FIXTURES, 'sites', 'classic-app')}`,
        '  pass: unix:/run/php/php-fpm.sock',
      ].join('\n'),
    );
    const { code, stderr } = await runCli(['config', 'check', '-c', file]);
    expect(code).toBe(0);
    expect(stderr).toMatch(/ignored\.yaml:5:\d+ http\.pool\.num_workers: ignored: fastcgi\.pass: /);
  });

  it('config check says http.access_logs is ignored beside http.access_log, which writes the lines', async () => {
    const file = join(dir, 'two-access-logs.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        'server: { command: php worker.php }',
        'http:',
        '  address: 127.0.0.1:8080',
        '  access_logs: true',
        '  access_log: { format: combined, output: stdout }',
      ].join('\n'),
    );
    const { code, stderr } = await runCli(['config', 'check', '-c', file]);
    expect(code).toBe(0);
    expect(stderr).toMatch(
      /two-access-logs\.yaml:5:\d+ http\.access_logs: ignored: http\.access_log writes the line of each request/,
    );
  });

  it('config check says nothing of http.access_logs when the file sets only http.access_log', async () => {
    const file = join(dir, 'access-log-only.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        'server: { command: php worker.php }',
        'http:',
        '  address: 127.0.0.1:8080',
        '  access_log: { format: combined, output: stdout }',
      ].join('\n'),
    );
    const { code, stderr } = await runCli(['config', 'check', '-c', file]);
    expect(code).toBe(0);
    expect(stderr).not.toMatch(/access_logs/);
  });

  it('config check warns at their lines about what managed php-cgi ignores: PHP_FCGI_MAX_REQUESTS, PHP_VALUE', async () => {
    const file = join(dir, 'php-cgi-ignores.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        'http:',
        '  address: 127.0.0.1:8080',
        'server:',
        '  env:',
        '    PHP_FCGI_MAX_REQUESTS: "3"',
        'fastcgi:',
        `  root: ${join(FIXTURES, 'sites', 'classic-app')}`,
        '  params:',
        '    PHP_VALUE: memory_limit=99M',
      ].join('\n'),
    );
    const { code, stderr } = await runCli(['config', 'check', '-c', file]);
    expect(code).toBe(0);
    expect(stderr).toMatch(
      /php-cgi-ignores\.yaml:6:\d+ server\.env\.PHP_FCGI_MAX_REQUESTS: ignored: .*set http\.pool\.max_jobs instead/,
    );
    expect(stderr).toMatch(
      /php-cgi-ignores\.yaml:10:\d+ fastcgi\.params\.PHP_VALUE: ignored: only php-fpm applies PHP_VALUE; .*\(php-cgi -d memory_limit=99M\)/,
    );
  });

  it('config check finds the folders and files serve needs: a site root, uploads and internal folders, the TLS pair', async () => {
    // each passed config check before, and failed serve later (a missing site root as "command
    // not found: php"; uploads as a silent UPLOAD_ERR_NO_TMP_DIR for PHP)
    const file = join(dir, 'missing-things.yaml');
    const pem = (name: string) => join(dir, name);
    await selfSignedPair(dir, 'one');
    await selfSignedPair(dir, 'two');
    const yaml = (cert: string, key: string) =>
      [
        'version: "3"',
        'server:',
        '  command: php worker.php',
        'http:',
        '  address: 127.0.0.1:8080',
        `  uploads: { dir: ${join(dir, 'no-uploads')} }`,
        `  internal_files: { root: ${join(dir, 'no-downloads')} }`,
        '  ssl:',
        '    address: 127.0.0.1:8443',
        `    cert: ${cert}`,
        `    key: ${key}`,
        'sites:',
        '  - hosts: [shop.test]',
        `    root: ${join(dir, 'no-shop')}`,
        '',
      ].join('\n');
    await writeFile(file, yaml(pem('one.pem'), pem('two.key')));
    const first = await runCli(['config', 'check', '-c', file]);
    expect(first.code).toBe(2);
    expect(first.stderr).toMatch(
      /missing-things\.yaml:14:\d+ sites\[0\]\.root: ".*no-shop" does not exist or is not a folder; create it or fix the path/,
    );
    expect(first.stderr).toMatch(
      /missing-things\.yaml:6:\d+ http\.uploads\.dir: ".*no-uploads" does not exist or is not a folder; create it/,
    );
    expect(first.stderr).toMatch(
      /missing-things\.yaml:7:\d+ http\.internal_files\.root: ".*no-downloads" does not exist/,
    );
    // and the pair in the same run (it came only once the folders were fixed)
    expect(first.stderr).toMatch(
      /missing-things\.yaml:11:\d+ http\.ssl\.key: .*the key does not belong to the certificate/,
    );
    await mkdir(join(dir, 'no-shop'));
    await writeFile(join(dir, 'no-shop', 'worker.php'), '<?php\n');
    await mkdir(join(dir, 'no-uploads'));
    await mkdir(join(dir, 'no-downloads'));
    const mismatched = await runCli(['config', 'check', '-c', file]);
    expect(mismatched.code).toBe(2);
    expect(mismatched.stderr).toMatch(
      /missing-things\.yaml:11:\d+ http\.ssl\.key: .*the key does not belong to the certificate/,
    );
    await writeFile(file, yaml(pem('gone.pem'), pem('one.key')));
    const missing = await runCli(['config', 'check', '-c', file]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing-things\.yaml:10:\d+ http\.ssl\.cert: cannot read the certificate/);
    await writeFile(file, yaml(pem('one.pem'), pem('one.key')));
    expect((await runCli(['config', 'check', '-c', file])).code).toBe(0);
  });

  it('a worker script or PHP binary that is not there: config check and serve name the key, line and folder', async () => {
    // before: config check passed; serve failed at its first worker with PHP's "Could not open
    // input file: worker.php" (exit 6), naming no key, line, or the folder it looked in
    const site = join(dir, 'script-site');
    await mkdir(join(site, 'public'), { recursive: true });
    const file = join(dir, 'missing-script.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        'http: { address: 127.0.0.1:8080 }',
        'sites:',
        '  - hosts: [app.test]',
        `    root: ${site}`,
        '    server: { command: php -d opcache.enable_cli=1 -d memory_limit=256M public/worker.php }',
        '  - hosts: [blog.test]',
        `    fastcgi: { root: ${site}/public, command: php-cgi7.4 }`,
        '',
      ].join('\n'),
    );
    for (const command of [['config', 'check'], ['serve']]) {
      const { code, stdout, stderr } = await runCli([...command, '-c', file]);
      expect([command[0], code]).toEqual([command[0], 2]);
      expect(stderr).toContain(
        `missing-script.yaml:6:15 sites[0].server.command: PHP's script "public/worker.php" is not there: no file ${site}/public/worker.php (relative paths start at ${site}, the workers' folder: the site's root, else the config file's folder)`,
      );
      expect(stderr).toContain(
        'missing-script.yaml:8:61 sites[1].fastcgi.command: command not found: "php-cgi7.4" (not on PATH). Install it (Debian/Ubuntu: apt-get install php-cgi) or give its full path in fastcgi.command.',
      );
      expect(stdout + stderr).not.toContain('booting');
    }
    await writeFile(join(site, 'public', 'worker.php'), '<?php\n');
    await writeFile(file, (await readFile(file, 'utf8')).replace('php-cgi7.4', 'php-cgi'));
    const fixed = await runCli(['config', 'check', '-c', file]);
    expect(fixed.stderr).not.toMatch(/command/);
    expect(fixed.code).toBe(0);
  });

  it('a listen address this machine does not have, a name that does not resolve: config check says so with the rest', async () => {
    // before: config check passed both, and serve failed to bind (exit 5; Node's bare ENOTFOUND)
    const file = join(dir, 'addresses.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        'server: { command: php worker.php }',
        'http:',
        '  address: 192.0.2.1:8080',
        `  uploads: { dir: ${join(dir, 'no-uploads-here')} }`,
        'metrics:',
        '  address: no-such-host.invalid:9180',
        'status:',
        '  address: 127.0.0.1:0',
        '',
      ].join('\n'),
    );
    const { code, stderr } = await runCli(['config', 'check', '-c', file]);
    expect(code).toBe(2);
    // in one run: the folder (a site's option) and both addresses
    expect(stderr).toContain('has 3 errors');
    expect(stderr).toContain(
      'addresses.yaml:4:3 http.address: cannot listen on 192.0.2.1:8080: this machine has no such address; use 0.0.0.0, 127.0.0.1 or one of its own addresses',
    );
    expect(stderr).toContain(
      'addresses.yaml:7:3 metrics.address: cannot listen on no-such-host.invalid:9180: the host name does not resolve here; use an IP address of this machine (0.0.0.0: every interface) or a name in /etc/hosts',
    );
    expect(stderr).toMatch(/addresses\.yaml:5:\d+ http\.uploads\.dir: .*no-uploads-here" does not exist/);
    // a link-local IPv6 address without its interface: serve failed with a bare EINVAL (exit 5)
    await writeFile(
      file,
      ['version: "3"', 'server: { command: php worker.php }', 'http:', '  address: "[fe80::1]:8080"', ''].join('\n'),
    );
    const linkLocal = await runCli(['config', 'check', '-c', file]);
    expect(linkLocal.code).toBe(2);
    expect(linkLocal.stderr).toContain('needs its interface: [fe80::1%eth0]:PORT');
    // serve binds and says the same of the name, where it said getaddrinfo ENOTFOUND
    await writeFile(
      file,
      ['version: "3"', 'server: { command: php worker.php }', 'http:', '  address: no-such-host.invalid:8080', ''].join(
        '\n',
      ),
    );
    const served = await runCli(['serve', '-c', file]);
    expect(served.code).toBe(5);
    expect(served.stderr).toContain('the host name does not resolve here');
    expect(served.stderr).not.toContain('ENOTFOUND');
  });

  it('serve: the same lines, exit 2, and no worker is started', async () => {
    const { code, stderr } = await runCli(['serve', '-c', config('mistakes.yaml')]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/mistakes\.yaml:9:\d+ http\.pool\.num_worker/);
    expect(stderr).toContain('fix the lines above');
  });

  it('an option only the plugin checks is pointed at its line too (static dir missing)', async () => {
    const file = join(dir, 'no-static.yaml');
    await writeFile(
      file,
      'server:\n  command: php worker.php\nhttp:\n  address: 127.0.0.1:8080\n  middleware: [static]\n  static:\n    dir: does-not-exist\n',
    );
    const { code, stderr } = await runCli(['serve', '-c', file]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/no-static\.yaml:7:\d+ http\.static\.dir: ".*does-not-exist" does not exist/);
  });

  it('a missing relative folder names the folder relative paths start at (the config file or the site root), not the working folder', async () => {
    const app = join(dir, 'relative-paths');
    await mkdir(app);
    const file = join(app, 'conf.yaml');
    await writeFile(
      file,
      [
        'server: { command: php worker.php }',
        'http:',
        '  address: 127.0.0.1:8080',
        '  middleware: [static]',
        '  static: { dir: public }',
        'sites:',
        '  - hosts: [classic.test]',
        '    fastcgi: { root: www, command: php-cgi }',
        '  - hosts: [shop.test]',
        '    root: shop',
        '    http: { middleware: [static], static: { dir: assets } }',
        '',
      ].join('\n'),
    );
    await mkdir(join(app, 'shop'));
    // run from another folder, as an operator does with -c /abs/dir/conf.yaml
    const { code, stderr } = await runCli(['config', 'check', '-c', file], { cwd: tmpdir() });
    expect(code).toBe(2);
    expect(stderr).toContain(
      `conf.yaml:5:13 http.static.dir: "${join(app, 'public')}" does not exist; create it or fix the path (relative paths start at ${app}, the folder of conf.yaml)`,
    );
    expect(stderr).toContain(
      `conf.yaml:8:16 sites[0].fastcgi.root: "${join(app, 'www')}" does not exist; create it or fix the path (relative paths start at ${app}, the folder of conf.yaml)`,
    );
    expect(stderr).toContain(
      `conf.yaml:11:45 sites[1].http.static.dir: "${join(app, 'shop', 'assets')}" does not exist; create it or fix the path (relative paths start at ${join(app, 'shop')}, the site's root: sites[1].root)`,
    );
    expect(stderr).not.toContain(`start at ${tmpdir()})`);
  });

  it('a malformed trusted_subnets entry: config check and serve name the item and its line, no worker boots', async () => {
    const file = join(dir, 'bad-subnets.yaml');
    await writeFile(
      file,
      'server:\n  command: php worker.php\nhttp:\n  address: 127.0.0.1:8080\n  trusted_subnets:\n    - 127.0.0.1/32\n    - foo\n    - 10.0.0.0/99\n',
    );
    for (const args of [
      ['config', 'check', '-c', file],
      ['serve', '-c', file],
    ]) {
      const { code, stdout, stderr } = await runCli(args);
      expect(code, args[0]).toBe(2);
      expect(stderr).toContain('bad-subnets.yaml has 2 errors');
      expect(stderr).toMatch(/bad-subnets\.yaml:7:7 http\.trusted_subnets\[1\]: "foo" is not a CIDR/);
      expect(stderr).toMatch(
        /bad-subnets\.yaml:8:7 http\.trusted_subnets\[2\]: "10\.0\.0\.0\/99" has a bad prefix length/,
      );
      // refused while loading: no site was set up, no worker started
      expect(stdout + stderr).not.toContain('booting');
    }
  });

  it('workers, reset, tune with a file warmpool cannot read: its error and line, exit 2, no other server asked', async () => {
    const file = join(dir, 'broken-admin.yaml');
    await writeFile(file, 'admin:\n  socket: /tmp/never-asked.sock\nbogus: [unclosed\n');
    for (const command of [['workers'], ['reset'], ['tune', '--window', '1s']]) {
      const result = await runCli([...command, '-c', file]);
      expect([command[0], result.code]).toEqual([command[0], 2]);
      expect(result.stderr).toMatch(new RegExp(`${file}:\\d+:\\d+`));
      expect(result.stderr).toContain('fix it, or name the socket with --socket PATH');
      expect(result.stderr).not.toContain('is warmpool running?'); // no socket was tried, the default least
    }
  });

  it('a missing file is named, exit 2', async () => {
    const { code, stderr } = await runCli(['serve', '-c', join(dir, 'nope.yaml')]);
    expect(code).toBe(2);
    expect(stderr).toContain('cannot read config file');
  });
});

describe('server.user when warmpool is not root', () => {
  it.skipIf(!isRoot)(
    'a user warmpool cannot switch to: config check and serve refuse it at its line, exit 2, no worker started',
    async () => {
      // before: config check passed it, and serve failed at the first worker with a bare "spawn
      // EPERM" (php-cgi: a chown EPERM, and an empty warmpool-php-cgi-* folder per worker), exit 1
      const folder = await nobodyFolder('other-user');
      const workerFile = join(folder, 'worker.yaml');
      await writeFile(
        workerFile,
        [
          'version: "3"',
          'server:',
          '  command: php worker.php',
          '  user: www-data',
          'http:',
          '  address: 127.0.0.1:8080',
          '',
        ].join('\n'),
      );
      const classicFile = join(folder, 'classic.yaml');
      await writeFile(
        classicFile,
        [
          'version: "3"',
          'server: { user: www-data }',
          'http:',
          '  address: 127.0.0.1:8080',
          // its own folder beside the config file: a root that holds the config file is refused
          `fastcgi: { root: ${join(FIXTURES, 'sites', 'classic-app')} }`,
          '',
        ].join('\n'),
      );
      const cases: Array<[string, string]> = [
        [workerFile, 'worker\\.yaml:4:3 server\\.user'],
        [classicFile, 'classic\\.yaml:2:11 server\\.user'],
      ];
      for (const [file, where] of cases) {
        for (const command of [['config', 'check'], ['serve']]) {
          const { code, stdout, stderr } = await runCliAsNobody([...command, '-c', file], { env: { TMPDIR: folder } });
          expect([file, command[0], code]).toEqual([file, command[0], 2]);
          expect(stderr).toMatch(
            new RegExp(
              `${where}: switching PHP to user "www-data" needs root; warmpool runs as uid ${NOBODY} \\(nobody\\): run it as root \\(it drops to that user for PHP\\), or remove server\\.user`,
            ),
          );
          expect(stdout + stderr).not.toContain('booting');
        }
      }
      expect((await readdir(folder)).filter((name) => name.startsWith('warmpool-php-cgi-'))).toEqual([]);
    },
  );

  it.skipIf(!isRoot)('server.user naming the user warmpool runs as needs no switch: it serves', async () => {
    const folder = await nobodyFolder('same-user');
    const port = await freePort();
    const file = join(folder, 'warmpool.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        'server:',
        `  command: php ${join(FIXTURES, 'php', 'echo.php')}`,
        '  user: nobody',
        'http:',
        `  address: 127.0.0.1:${port}`,
        '  pool: { num_workers: 1 }',
        `admin: { socket: ${join(folder, 'admin.sock')} }`,
        '',
      ].join('\n'),
    );
    expect((await runCliAsNobody(['config', 'check', '-c', file])).code).toBe(0);
    const server = startServerAsNobody(['serve', '-c', file]);
    await server.ready(30_000);
    const res = await request(`http://127.0.0.1:${port}/`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(await server.stop()).toEqual({ code: 0, signal: null });
  });
});

describe('log files that cannot be created', () => {
  it('a file in the way of the folder: config check and serve name the key and line, exit 2, no stack trace', async () => {
    // before: config check passed, serve printed "✗ unexpected error: Error: EEXIST ... mkdir" with
    // a Node stack trace, exit 1
    const file = join(dir, 'log-in-the-way.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        'server: { command: php worker.php }',
        'http:',
        '  address: 127.0.0.1:8080',
        `  access_log: { output: ${file}/access.log }`,
        'logs:',
        `  output: [stderr, ${file}/logs/warmpool.log]`,
        '',
      ].join('\n'),
    );
    for (const command of [['config', 'check'], ['serve']]) {
      const { code, stdout, stderr } = await runCli([...command, '-c', file]);
      expect([command[0], code]).toEqual([command[0], 2]);
      expect(stderr).toContain(
        `log-in-the-way.yaml:5:17 http.access_log.output: cannot create ${file}/access.log: a file is in the way (${file} is not a folder); name a path in a folder`,
      );
      expect(stderr).toContain(
        `log-in-the-way.yaml:7:20 logs.output[1]: cannot create ${file}/logs/warmpool.log: a file is in the way`,
      );
      expect(stderr).not.toContain('unexpected error');
      expect(stdout + stderr).not.toContain('booting');
    }
  });

  it.skipIf(!isRoot)(
    'a folder the user warmpool runs as may not write: config check and serve say whose it must be, exit 2',
    async () => {
      // as /var/log/x/access.log for a warmpool run as www-data: the folder above is root's, 0755
      const logs = join(dir, 'root-logs');
      await mkdir(logs, { mode: 0o755 });
      const folder = await nobodyFolder('log-denied');
      const file = join(folder, 'warmpool.yaml');
      await writeFile(join(folder, 'worker.php'), '<?php\n');
      await writeFile(
        file,
        [
          'version: "3"',
          'server: { command: php worker.php }',
          'http:',
          '  address: 127.0.0.1:8080',
          `  access_log: { output: ${logs}/x/access.log }`,
          `logs: { output: ${logs}/warmpool.log }`,
          '',
        ].join('\n'),
      );
      for (const command of [['config', 'check'], ['serve']]) {
        const { code, stdout, stderr } = await runCliAsNobody([...command, '-c', file]);
        expect([command[0], code]).toEqual([command[0], 2]);
        expect(stderr).toContain(
          `warmpool.yaml:5:17 http.access_log.output: cannot create ${logs}/x/access.log: permission denied; make ${logs} writable by the user warmpool runs as, uid ${NOBODY} (nobody), or create ${logs}/x for that user`,
        );
        expect(stderr).toContain(
          `warmpool.yaml:6:9 logs.output: cannot create ${logs}/warmpool.log: permission denied; make ${logs} writable by the user warmpool runs as, uid ${NOBODY} (nobody)`,
        );
        expect(stderr).not.toContain('unexpected error');
        expect(stdout + stderr).not.toContain('booting');
      }
      expect(await readdir(logs)).toEqual([]);
    },
  );
});

describe('config check says what serve says at start', () => {
  it.skipIf(!isRoot)('warns that a loopback RPC is open to every tenant when PHP runs as several users', async () => {
    // before: only a non-loopback address was warned about; a tenant reset the others' workers
    const file = join(dir, 'rpc-tenants.yaml');
    const yaml = (second: string) =>
      [
        'version: "3"',
        'rpc: { listen: "tcp://127.0.0.1:6001" }',
        'http: { address: 127.0.0.1:8080 }',
        'sites:',
        '  - hosts: [one.test]',
        '    server: { command: php worker.php, user: nobody }',
        '  - hosts: [two.test]',
        `    server: { command: php worker.php${second} }`,
        '',
      ].join('\n');
    await writeFile(file, yaml(''));
    const shared = await runCli(['config', 'check', '-c', file]);
    expect(shared.code).toBe(0);
    expect(shared.stderr).toContain(
      'rpc-tenants.yaml:2:8 rpc.listen: tcp://127.0.0.1:6001 is one RPC for every site, and PHP here runs as 2 users',
    );
    // one user for all: nothing to say
    await writeFile(file, yaml(', user: nobody'));
    const single = await runCli(['config', 'check', '-c', file]);
    expect(single.stderr).not.toContain('rpc.listen');
  });

  it("warns of Let's Encrypt staging, as serve does (browsers will not trust its certificates)", async () => {
    const file = join(dir, 'staging.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        'server:',
        '  command: php worker.php',
        'http:',
        '  address: 127.0.0.1:8080',
        '  ssl:',
        '    address: 127.0.0.1:8443',
        '    acme:',
        `      certs_dir: ${join(dir, 'staging-certs')}`,
        '      email: ops@example.com',
        '      domains: [example.com]',
        '',
      ].join('\n'),
    );
    const check = await runCli(['config', 'check', '-c', file]);
    expect(check.code).toBe(0);
    // before: nothing, and serve said it only once started
    expect(check.stderr).toContain("http.ssl.acme: Let's Encrypt staging (use_production_endpoint is false");
  });
});

describe('config check prints the effective config', () => {
  it('YAML: defaults filled in, one entry per site, the default site last', async () => {
    const { code, stdout, stderr } = await runCli(['config', 'check', '-c', config('sites.yaml')], { env: ENV });
    expect(code).toBe(0);
    expect(stderr).toBe('');
    expect(stdout).toContain('✓ ');
    expect(stdout).toContain('is valid: 3 sites');
    expect(stdout).toMatch(/- name: a\.test\n/);
    expect(stdout).toContain('allocate_timeout: 60s');
    expect(stdout).toContain('max_request_size: 100');
    // each site in full: no YAML anchors or aliases for values two sites share
    expect(stdout).not.toMatch(/[&*]a\d+\b/);
  });

  it('--json: parseable, with inheritance and absolute paths', async () => {
    const { code, stdout } = await runCli(['config', 'check', '-c', config('sites.yaml'), '--json'], { env: ENV });
    expect(code).toBe(0);
    const effective = JSON.parse(stdout) as {
      listeners: { http: { address: string; max_header_size: number }; metrics: { address: string } };
      sites: Array<{
        name: string;
        dir: string;
        server: { command: string; env: Record<string, string> };
        http: {
          max_request_size: number;
          pool: { num_workers: number; max_jobs: number; supervisor: { watch_tick: string } };
          static: { dir: string } | null;
        };
      }>;
      admin: { socket: string };
    };
    expect(effective.listeners.http).toMatchObject({ address: '127.0.0.1:18999', max_header_size: 16384 });
    expect(effective.listeners.metrics.address).toBe('127.0.0.1:18998');
    expect(effective.sites.map((s) => s.name)).toEqual(['a.test', 'b.test', 'default']);
    const [a, b, top] = effective.sites;
    expect(a!.dir).toBe(join(FIXTURES, 'server', 'site-a'));
    expect(a!.server.command).toBe('php -d memory_limit=256M ../../php/echo.php');
    expect(a!.http.static!.dir).toBe(join(FIXTURES, 'server', 'site-a', 'public'));
    // num_workers inherited from the top level; the rest are the pool's defaults
    expect(a!.http.pool).toMatchObject({ num_workers: 1, max_jobs: 0, supervisor: { watch_tick: '1s' } });
    expect(b!.http.max_request_size).toBe(1);
    expect(top!.server.env).toEqual({ SITE: 'default' });
    expect(top!.http.static).toBeNull();
    expect(effective.admin.socket).toBe('/tmp/warmpool-cli-test.sock');
  });

  it('finds ./.rr.yaml when there is no ./warmpool.yaml, and reads its rpc section', async () => {
    const cwd = await mkdtemp(join(dir, 'rr-'));
    await writeFile(join(cwd, 'worker.php'), '<?php\n');
    await writeFile(
      join(cwd, '.rr.yaml'),
      'version: "3"\nrpc:\n  listen: tcp://127.0.0.1:6001\nserver:\n  command: php worker.php\nhttp:\n  address: ":8080"\n',
    );
    const { code, stdout, stderr } = await runCli(['config', 'check', '--json'], { cwd });
    expect(code).toBe(0);
    expect(JSON.parse(stdout).file).toBe(join(cwd, '.rr.yaml'));
    // rpc.listen is served (RoadRunner's RPC listener): no warning of it, and shown as it will bind;
    // Debian's php-cli has no memory_limit, which is said (RoadRunner runs it so too)
    expect(stderr.replace(/^▲ \.rr\.yaml:5:3 server\.command: runs php with memory_limit = -1.*\n/m, '')).toBe('');
    expect(JSON.parse(stdout).rpc).toEqual({ listen: 'tcp://127.0.0.1:6001' });
  });
});

describe('version, usage, cert', () => {
  it('version: package, node, RoadRunner protocol', async () => {
    const { code, stdout } = await runCli(['version']);
    expect(code).toBe(0);
    expect(stdout).toContain('warmpool 0.1.0');
    expect(stdout).toContain(`node ${process.version}`);
    expect(stdout).toContain('RR_VERSION=2025.1.15');
    const json = await runCli(['version', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      warmpool: '0.1.0',
      node: process.version,
      rr: { rr_version: '2025.1.15' },
    });
  });

  it('usage errors exit 2 and say what to do', async () => {
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    const flag = await runCli(['serve', '--nope']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('unknown flag --nope');
    const noConfig = await runCli(['serve'], { cwd: dir });
    expect(noConfig.code).toBe(2);
    expect(noConfig.stderr).toContain('./warmpool.yaml and ./.rr.yaml do not exist');
    const help = await runCli(['help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/exit codes:\n {2}0 /);
  });

  it('a stray word is a usage error (exit 2), pointed at -c when it looks like a config file', async () => {
    // ./warmpool.yaml is valid, new.yaml is not: `config check new.yaml` checked the first and said it was valid
    const here = join(dir, 'stray-words');
    await mkdir(here);
    await writeFile(
      join(here, 'warmpool.yaml'),
      'server:\n  command: php worker.php\nhttp:\n  address: 127.0.0.1:8080\n',
    );
    await writeFile(join(here, 'new.yaml'), 'http:\n  pool: { num_workers: many }\n');
    await writeFile(join(here, 'conf'), '');
    for (const args of [
      ['config', 'check', 'new.yaml'],
      ['serve', 'new.yaml'],
      ['workers', 'new.yaml'],
      ['reset', 'conf'],
      ['tune', 'new.yml'],
      ['cert', 'status', 'new.yaml'],
    ]) {
      const result = await runCli(args, { cwd: here });
      expect({ args, code: result.code, stdout: result.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(result.stderr).toContain(`unexpected argument "${args.at(-1)}"; did you mean -c ${args.at(-1)}?`);
    }
    for (const args of [
      ['workers', 'extra'],
      ['config', 'check', 'extra'],
      ['version', 'extra'],
    ]) {
      const result = await runCli(args, { cwd: here });
      expect({ args, code: result.code }).toEqual({ args, code: 2 });
      expect(result.stderr).toContain(`unexpected argument "extra"; ${args.slice(0, -1).join(' ')} takes flags only`);
    }
    expect((await runCli(['config', 'check', '-c', 'new.yaml'], { cwd: here })).stderr).toContain('num_workers');
    // run as rr, reset and workers take RoadRunner plugin names (not read): they reach the server
    const rr = await linkAsRr(here);
    const socket = join(here, 'none.sock');
    const plugin = await runRr(rr, ['reset', 'http', '--socket', socket], { cwd: here });
    expect({ code: plugin.code, stderr: plugin.stderr }).toEqual({ code: 3, stderr: expect.stringContaining(socket) });
    const file = await runRr(rr, ['workers', 'new.yaml', '--socket', socket], { cwd: here });
    expect(file.code).toBe(2);
    expect(file.stderr).toContain('did you mean -c new.yaml?');
  });

  it('cert: a self-signed pair for the given hosts (openssl), key 0600, never overwritten without --force', async () => {
    const out = join(dir, 'certs');
    const made = await runCli(['cert', '--out', out, '--host', 'dev.test', '--host', '127.0.0.1', '--days', '30']);
    expect(made.code).toBe(0);
    expect(made.stdout).toContain(`wrote ${join(out, 'cert.pem')}`);
    const text = execFileSync('openssl', ['x509', '-in', join(out, 'cert.pem'), '-noout', '-text'], {
      encoding: 'utf8',
    });
    expect(text).toContain('DNS:dev.test');
    expect(text).toContain('IP Address:127.0.0.1');
    // the curl hint names a host the certificate holds (not localhost, which it does not)
    expect(made.stdout).toContain(
      `curl --cacert ${join(out, 'cert.pem')} --resolve dev.test:8443:127.0.0.1 https://dev.test:8443/`,
    );
    expect((await stat(join(out, 'key.pem'))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(out, 'key.pem'), 'utf8')).toContain('PRIVATE KEY');
    const again = await runCli(['cert', '--out', out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('pass --force');
  });
});

describe('the open files limit', () => {
  it('serve warns when it is low: past it, connections are refused with no log line', async () => {
    const server = startServer(
      ['serve', '-c', await writeEchoConfig(join(dir, 'low-files.yaml'), join(dir, 'low-files.sock'))],
      {
        openFiles: 2048,
      },
    );
    await server.ready();
    expect(server.stderr).toMatch(/open files limit 2048: this server can hold about 1792 connections/);
    expect(server.stderr).toMatch(/LimitNOFILE=65536/);
    await server.stop();
  });
});
