// The fastcgi section (classic mode): which sites are classic, what their plugin options are, what
// does not apply with pass, and errors at their lines.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '@warmpool/fastify';
import { ConfigError, locateOptionError, parseConfig, toServerOptions } from '../src/index.js';

const parse = (text: string) => parseConfig(text, { file: '/srv/app/warmpool.yaml', env: {} });

function errorsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error.errors.map((e) => `${e.line}:${e.col} ${e.key}: ${e.reason}`);
    throw error;
  }
  throw new Error('no error');
}

describe('fastcgi: classic sites', () => {
  it('a top-level fastcgi section is the default site, classic, with no worker command needed', () => {
    const server = toServerOptions(
      parse(
        [
          'version: "3"',
          'http: { address: ":8080" }',
          'fastcgi:',
          '  root: public',
          '  pass: unix:/run/php/php8.2-fpm.sock',
          '  no_exec: [wp-content/uploads]',
          '  params: { APP_ENV: production, DEBUG: 0 }',
        ].join('\n'),
      ),
    );
    expect(server.sites).toHaveLength(1);
    const site = server.defaultSite!;
    expect(site.plugin).not.toHaveProperty('command');
    expect(site.plugin.fastcgi).toEqual({
      root: '/srv/app/public',
      pass: 'unix:/run/php/php8.2-fpm.sock',
      no_exec: ['wp-content/uploads'],
      params: { APP_ENV: 'production', DEBUG: '0' },
    });
  });

  it('a site with its own fastcgi is classic beside worker sites; the top level fastcgi is not inherited', () => {
    const server = toServerOptions(
      parse(
        [
          'version: "3"',
          'server: { command: "php worker.php", env: { APP: x }, relay: pipes }',
          'http:',
          '  address: ":8080"',
          '  middleware: [static]',
          '  static: { dir: assets, forbid: [".log"] }',
          '  pool: { num_workers: 3, supervisor: { exec_ttl: 30s } }',
          'fastcgi: { root: /var/www/default }',
          'sites:',
          '  - hosts: [blog.example.com]',
          '    root: blog',
          '    fastcgi: { root: html, command: "php-cgi -d opcache.enable=1" }',
          '    http: { static: { dir: own-assets } }',
          '  - hosts: [app.example.com]',
        ].join('\n'),
      ),
    );
    const [blog, app, fallback] = server.sites;
    expect(blog!.plugin).toMatchObject({
      cwd: '/srv/app/blog',
      env: { APP: 'x' },
      fastcgi: { root: '/srv/app/blog/html', command: 'php-cgi -d opcache.enable=1' },
      // the pool sizes and supervises php-cgi as it does workers
      pool: { num_workers: 3, supervisor: { exec_ttl: '30s' } },
      // static files come from fastcgi.root; the static options apply; an ETag as nginx sends
      static: { dir: '/srv/app/blog/html', forbid: ['.log'], calculate_etag: true },
    });
    expect(blog!.plugin).not.toHaveProperty('command');
    expect(blog!.plugin).not.toHaveProperty('relay');
    expect(blog!.ignored).toEqual([
      { key: 'sites[0].http.static.dir', reason: 'a classic site serves its static files from fastcgi.root' },
    ]);
    // a worker site keeps RoadRunner's default: no ETag unless calculate_etag says so
    expect(app!.plugin).toMatchObject({
      command: 'php worker.php',
      static: { dir: '/srv/app/assets', calculate_etag: false },
    });
    expect(app!.plugin).not.toHaveProperty('fastcgi');
    expect(fallback!.plugin.fastcgi).toEqual({ root: '/var/www/default' });
    // the top level's static.dir is the default site's own (classic here): said there
    expect(fallback!.ignored.map((i) => i.key)).toEqual(['http.static.dir']);
  });

  it("a site's own server.command beside its fastcgi section is an error at the command's line", () => {
    const errors = errorsOf(() =>
      toServerOptions(
        parse(
          [
            'version: "3"',
            'http: { address: ":8080" }',
            'sites:',
            '  - hosts: [x.test]',
            '    server: { command: php worker.php }',
            '    fastcgi: { root: /var/www }',
          ].join('\n'),
        ),
      ),
    );
    expect(errors).toEqual([
      expect.stringMatching(/^5:15 sites\[0\]\.server\.command: this site has a fastcgi section too: .*remove one/),
    ]);
  });

  it('a top-level command beside a top-level fastcgi section is an error unless a site of sites[] takes the command', () => {
    const config = (...sites: string[]) =>
      [
        'version: "3"',
        'server: { command: php worker.php }',
        'http: { address: ":8080" }',
        'fastcgi: { root: /var/www }',
        ...(sites.length === 0 ? [] : ['sites:', ...sites]),
      ].join('\n');
    // before: accepted without a word, and php-cgi ran instead of the worker
    expect(errorsOf(() => toServerOptions(parse(config())))).toEqual([
      expect.stringMatching(/^2:11 server\.command: the top level has a fastcgi section too: .*remove one/),
    ]);
    expect(
      errorsOf(() => toServerOptions(parse(config('  - hosts: [c.test]', '    fastcgi: { root: /var/www/c }')))),
    ).toHaveLength(1);
    // a worker site of sites[] inherits it: the default site is classic, the command is the site's
    const server = toServerOptions(parse(config('  - hosts: [w.test]', '    root: /srv/w')));
    expect(server.sites.map((site) => site.plugin.fastcgi === undefined)).toEqual([true, false]);
  });

  it('a classic site sends no ETag when calculate_etag says false', () => {
    const server = toServerOptions(
      parse(
        [
          'version: "3"',
          'http: { address: ":8080", middleware: [static], static: { calculate_etag: false } }',
          'fastcgi: { root: /var/www }',
        ].join('\n'),
      ),
    );
    expect(server.defaultSite!.plugin.static).toMatchObject({ dir: '/var/www', calculate_etag: false });
  });

  it('with pass, the keys that size and recycle processes are said to be ignored (php-fpm runs them)', () => {
    const server = toServerOptions(
      parse(
        [
          'version: "3"',
          'http:',
          '  address: ":8080"',
          '  pool: { num_workers: 4, max_jobs: 100, nice: 7, allocate_timeout: 5s, supervisor: { max_worker_memory: 128, exec_ttl: 30s } }',
          'fastcgi: { root: /var/www, pass: "127.0.0.1:9000" }',
        ].join('\n'),
      ),
    );
    expect(server.defaultSite!.ignored.map((i) => i.key)).toEqual([
      'http.pool.num_workers',
      'http.pool.max_jobs',
      'http.pool.nice',
      'http.pool.supervisor.max_worker_memory',
    ]);
    expect(server.defaultSite!.ignored[0]!.reason).toMatch(/php-fpm runs the PHP processes/);
  });

  it('managed php-cgi: server.env PHP_FCGI_* and fastcgi.params PHP_VALUE are said to do nothing, with what does', () => {
    const server = toServerOptions(
      parse(
        [
          'version: "3"',
          'http: { address: ":8080" }',
          'server:',
          '  env: { PHP_FCGI_MAX_REQUESTS: "3", php_fcgi_children: "2", APP_ENV: prod }',
          'fastcgi:',
          '  root: /var/www',
          '  params: { PHP_VALUE: "memory_limit=99M", PHP_ADMIN_VALUE: "upload_max_filesize = 8M", APP: x }',
        ].join('\n'),
      ),
    );
    expect(server.defaultSite!.ignored).toEqual([
      {
        key: 'server.env.PHP_FCGI_MAX_REQUESTS',
        reason:
          'warmpool starts php-cgi with PHP_FCGI_MAX_REQUESTS=0 and recycles the processes itself: set http.pool.max_jobs instead (pm.max_requests)',
      },
      {
        key: 'server.env.php_fcgi_children',
        reason:
          'warmpool starts php-cgi with PHP_FCGI_CHILDREN=0 (one process per worker, each counted and supervised): set http.pool.num_workers instead',
      },
      {
        key: 'fastcgi.params.PHP_VALUE',
        reason:
          'only php-fpm applies PHP_VALUE; php-cgi passes it to $_SERVER and keeps its php.ini settings: add them to fastcgi.command instead (php-cgi -d memory_limit=99M)',
      },
      {
        key: 'fastcgi.params.PHP_ADMIN_VALUE',
        reason:
          'only php-fpm applies PHP_ADMIN_VALUE; php-cgi passes it to $_SERVER and keeps its php.ini settings: add them to fastcgi.command instead (php-cgi -d upload_max_filesize=8M)',
      },
    ]);
  });

  it("a classic site's own upload-parsing keys are said to do nothing (PHP parses its forms); a worker site's and uploads.dir are not", () => {
    const server = toServerOptions(
      parse(
        [
          'version: "3"',
          'http: { address: ":8080", uploads: { forbid: [".exe"] } }',
          'server: { command: php worker.php }',
          'sites:',
          '  - hosts: [classic.test]',
          '    fastcgi: { root: /var/www }',
          '    http: { uploads: { dir: /var/tmp, forbid: [".php"], max_file_size: 1, max_fields: 10 }, raw_body: true }',
          '  - hosts: [worker.test]',
          '    http: { uploads: { max_files: 3 } }',
        ].join('\n'),
      ),
    );
    const [classic, worker] = server.sites;
    expect(classic!.ignored.map((i) => i.key)).toEqual([
      'sites[0].http.uploads.forbid',
      'sites[0].http.uploads.max_file_size',
      'sites[0].http.uploads.max_fields',
      'sites[0].http.raw_body',
    ]);
    expect(classic!.ignored[1]!.reason).toContain("php.ini's upload_max_filesize");
    expect(worker!.ignored).toEqual([]);
    expect(server.defaultSite!.ignored).toEqual([]);
  });

  it('with pass (php-fpm reads PHP_VALUE) or for a worker site, none of that is said', () => {
    const server = toServerOptions(
      parse(
        [
          'version: "3"',
          'http: { address: ":8080" }',
          'server: { command: php worker.php, env: { PHP_FCGI_MAX_REQUESTS: "3" } }',
          'sites:',
          '  - hosts: [fpm.test]',
          '    fastcgi: { root: /var/www, pass: "127.0.0.1:9000", params: { PHP_VALUE: "memory_limit=99M" } }',
          '  - hosts: [worker.test]',
        ].join('\n'),
      ),
    );
    expect(server.sites.flatMap((site) => site.ignored)).toEqual([]);
  });

  it('names the key and line of a bad or missing value', () => {
    expect(
      errorsOf(() =>
        parse(
          [
            'version: "3"',
            'http: { address: ":8080" }',
            'fastcgi:',
            '  pass: php-fpm.sock',
            '  split_path: sometimes',
            'sites:',
            '  - hosts: [a.example]',
            '    fastcgi: { index: [index.php] }',
          ].join('\n'),
        ),
      ),
    ).toEqual([
      expect.stringMatching(/^3:1 fastcgi\.root: is required: document root/),
      '4:3 fastcgi.pass: must be "unix:/run/php/php8.2-fpm.sock" or "127.0.0.1:9000", got "php-fpm.sock"',
      '5:3 fastcgi.split_path: must be true or false, got "sometimes"',
      expect.stringMatching(/^8:5 sites\[0\]\.fastcgi\.root: is required/),
    ]);
  });

  it('a site with neither a worker command nor fastcgi still needs server.command', () => {
    const [error] = errorsOf(() =>
      parse(
        [
          'version: "3"',
          'http: { address: ":8080" }',
          'fastcgi: { root: /var/www }',
          'sites:',
          '  - hosts: [a.example]',
        ].join('\n'),
      ),
    );
    expect(error).toMatch(
      /server\.command: is required: .*\(or a fastcgi section for classic PHP; a site of static files or proxy routes only needs none\), or in every site \(sites\[0\] has none\)/,
    );
  });

  it("points the plugin's errors about fastcgi at the site's key", () => {
    const loaded = parse(
      [
        'version: "3"',
        'http: { address: ":8080" }',
        'sites:',
        '  - hosts: [a.example]',
        '    fastcgi:',
        '      root: /var/www',
        '      try_files: ["$uri", "index.php"]',
      ].join('\n'),
    );
    const site = toServerOptions(loaded).sites[0]!;
    const located = locateOptionError(
      new InvalidOptionError('fastcgi.try_files', 'the last entry is the fallback'),
      loaded,
      site,
    );
    expect(located?.errors[0]).toMatchObject({ key: 'sites[0].fastcgi.try_files', line: 7 });
  });
});

/** The options of a worker-mode config: its first lines, then `lines` (http's keys indented by two). */
function workerServer(lines: string[]) {
  return toServerOptions(
    parse(
      ['version: "3"', 'server: { command: "php worker.php" }', 'http:', '  address: ":8080"', ...lines].join('\n'),
    ),
  );
}

describe('http.internal_files (X-Accel-Redirect / X-Sendfile)', () => {
  it("resolves the folder against the site's folder; a site may set its own", () => {
    const server = workerServer([
      '  internal_files: { root: private, prefix: /protected/ }',
      'sites:',
      '  - hosts: [a.example]',
      '    root: a',
      '    http: { internal_files: { root: downloads } }',
      '  - hosts: [b.example]',
    ]);
    const [a, b, fallback] = server.sites;
    expect(a!.plugin.internal_files).toEqual({ root: '/srv/app/a/downloads', prefix: '/protected/' });
    expect(b!.plugin.internal_files).toEqual({ root: '/srv/app/private', prefix: '/protected/' });
    expect(fallback!.plugin.internal_files).toEqual({ root: '/srv/app/private', prefix: '/protected/' });
  });
});

describe('http.access (allow / deny per path prefix)', () => {
  it("passes the rules to the plugin; a site's list replaces the top level's, [] lifts them", () => {
    const server = workerServer([
      '  access:',
      '    - { prefix: /data, deny: [all] }',
      '    - { prefix: /wp-admin, allow: [10.0.0.0/8] }',
      'sites:',
      '  - hosts: [a.example]',
      '    http: { access: [{ prefix: /private, allow: [127.0.0.1] }] }',
      '  - hosts: [b.example]',
      '    http: { access: [] }',
      '  - hosts: [c.example]',
    ]);
    const [a, b, c, fallback] = server.sites;
    expect(a!.plugin.access).toEqual([{ prefix: '/private', allow: ['127.0.0.1'] }]);
    expect(b!.plugin.access).toBeUndefined();
    const top = [
      { prefix: '/data', deny: ['all'] },
      { prefix: '/wp-admin', allow: ['10.0.0.0/8'] },
    ];
    expect(c!.plugin.access).toEqual(top);
    expect(fallback!.plugin.access).toEqual(top);
  });
});

describe('http.error_pages (nginx error_page)', () => {
  it("resolves each page against the config file's folder; a site's map is merged over the top level's", () => {
    const dir = mkdtempSync(join(tmpdir(), 'warmpool-pages-'));
    try {
      mkdirSync(join(dir, 'errors'));
      for (const name of ['errors/50x.html', 'errors/404.html', 'maintenance.html'])
        writeFileSync(join(dir, name), 'x');
      const server = toServerOptions(
        parseConfig(
          [
            'version: "3"',
            'server: { command: "php worker.php" }',
            'http:',
            '  address: ":8080"',
            `  error_pages: { "502": errors/50x.html, "404": ${join(dir, 'errors/404.html')} }`,
            'sites:',
            '  - hosts: [a.example]',
            '    root: a',
            '    http: { error_pages: { "502": maintenance.html } }',
          ].join('\n'),
          { file: join(dir, 'warmpool.yaml'), env: {} },
        ),
      );
      const [a, fallback] = server.sites;
      const top404 = join(dir, 'errors/404.html');
      expect(a!.plugin.error_pages).toEqual({ '502': join(dir, 'maintenance.html'), '404': top404 });
      expect(fallback!.plugin.error_pages).toEqual({ '502': join(dir, 'errors/50x.html'), '404': top404 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('what only the plugin checks, named at its line by config check and serve', () => {
  it('a status that is no error and two access rules for one prefix, named once for every site', () => {
    const errors = errorsOf(() =>
      workerServer([
        '  error_pages:',
        '    "200": /etc/hostname',
        '  access:',
        '    - { prefix: /data, deny: [all] }',
        '    - { prefix: /data/, allow: [10.0.0.0/8] }',
        'sites:',
        '  - hosts: [a.example]',
      ]),
    );
    expect(errors).toEqual([
      expect.stringMatching(/^6:5 http\.error_pages\.200: is not an error status/),
      expect.stringMatching(/^9:9 http\.access\[1\]\.prefix: "\/data" appears in two rules/),
    ]);
  });

  it("a site's page that cannot be read", () => {
    const errors = errorsOf(() =>
      workerServer([
        'sites:',
        '  - hosts: [a.example]',
        '    http:',
        '      error_pages: { "502": /nonexistent/50x.html }',
      ]),
    );
    expect(errors).toEqual([
      expect.stringMatching(/^8:22 sites\[0\]\.http\.error_pages\.502: cannot read "\/nonexistent\/50x\.html"/),
    ]);
  });
});

describe('http.limit_req (nginx limit_req)', () => {
  it('passes the rules to the plugin; a rate that is not NNr/s or NNr/m is named at its line', () => {
    const server = workerServer(['  limit_req: [{ prefix: /wp-login.php, rate: 5r/m, burst: 3 }]']);
    expect(server.sites[0]!.plugin.limit_req).toEqual([{ prefix: '/wp-login.php', rate: '5r/m', burst: 3 }]);
    expect(errorsOf(() => workerServer(['  limit_req:', '    - { prefix: /xmlrpc.php, rate: 5/min }']))).toEqual([
      expect.stringMatching(/^6:\d+ http\.limit_req\[0\]\.rate: must be requests per second or minute/),
    ]);
  });
});
