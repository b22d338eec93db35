// Config → per-site @warmpool/fastify options: inheritance, relative paths, RR spellings, user names,
// the default site, and plugin errors pointed back at a line of the file.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { InvalidOptionError } from '@warmpool/fastify';
import {
  ConfigError,
  loadConfigFile,
  locateOptionError,
  parseConfig,
  toServerOptions,
  type ToOptionsOptions,
  yamlKeysOf,
  DEFAULT_ADMIN_SOCKET,
  LETS_ENCRYPT_PRODUCTION,
  LETS_ENCRYPT_STAGING,
} from '../src/index.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const parse = (text: string) => parseConfig(text, { file: '/srv/app/warmpool.yaml', env: {} });

/** The errors loading and building `text` reports, as "key: reason". */
function builtErrors(text: string): string[] {
  try {
    toServerOptions(parse(text));
  } catch (error) {
    return (error as ConfigError).errors.map((e) => `${e.key}: ${e.reason}`);
  }
  return [];
}

describe('toServerOptions', () => {
  it("logs.output file paths start at the config file's folder, as http.access_log.output does; stdout and stderr stay", () => {
    const loaded = parse(
      [
        'server: { command: php w.php }',
        'http:',
        '  address: 127.0.0.1:8080',
        '  access_log: { output: logs/access.log }',
        'logs: { output: [logs/app.log, stdout, /var/log/warmpool.log] }',
      ].join('\n'),
    );
    const server = toServerOptions(loaded);
    expect(server.logs.output).toEqual(['/srv/app/logs/app.log', 'stdout', '/var/log/warmpool.log']);
    expect(server.http.access_log?.output).toBe('/srv/app/logs/access.log');
    const one = toServerOptions(
      parse('server: { command: php w.php }\nhttp: { address: ":8080" }\nlogs: { output: app.log }'),
    );
    expect(one.logs.output).toBe('/srv/app/app.log');
  });

  it('turns the RoadRunner sample into one default site with the plugin spellings', async () => {
    const loaded = await loadConfigFile(fixture('rr-sample.rr.yaml'), { env: {} });
    const server = toServerOptions(loaded, { baseDir: '/srv/app' });
    expect(server.sites).toHaveLength(1);
    const site = server.defaultSite!;
    expect(site).toBe(server.sites[0]);
    expect(site.name).toBe('default');
    expect(site.hosts).toBeNull();
    expect(site.plugin).toMatchObject({
      command: 'php psr-worker.php',
      cwd: '/srv/app',
      env: { XDEBUG_SESSION: '1' },
      relay: 'pipes',
      max_request_size: 256,
      trusted_subnets: expect.arrayContaining(['10.0.0.0/8', '::1/128']),
      uploads: { dir: '/tmp', forbid: ['.php', '.exe', '.bat', '.sh'], allow: ['.html', '.aaa'] },
      pool: {
        max_jobs: 64,
        allocate_timeout: '60s',
        supervisor: { idle_ttl: '10s', max_worker_memory: 128, exec_ttl: '60s' },
      },
    });
    // num_workers: 0 (RR: CPU count) is left to the pool's default
    expect(site.plugin.pool).not.toHaveProperty('num_workers');
    // static: dir (absolute), calculate_etag false → no ETag, RR's forbid [""] dropped
    expect(site.plugin.static).toEqual({ dir: '/srv/app', calculate_etag: false, allow: ['.txt', '.php'] });
    expect(site.gzip).toBe(true);
    expect(site.headers?.response).toEqual({ 'X-Powered-By': 'RoadRunner' });
    expect(site.ignored.map((i) => i.key)).toEqual(['http.static.request', 'http.static.response']);
    // the sample sets acme, so its cert and key are ignored (see http.ssl.acme below)
    expect(server.http.ssl).toMatchObject({ address: '127.0.0.1:443', cert: null, key: null });
    expect(server.status?.address).toBe('127.0.0.1:2114');
    expect(server.admin).toEqual({ socket: DEFAULT_ADMIN_SOCKET, explicit: false });
  });

  it('RoadRunner values read another way are said: max_request_size 0 (no limit there), static.response; an empty pool.command is unset', () => {
    const loaded = parse(`
version: "3"
server: { command: php worker.php }
http:
  address: 127.0.0.1:8080
  max_request_size: 0
  middleware: [static]
  pool: { command: "" }
  static: { dir: public, response: { Cache-Control: "max-age=60" } }
`);
    const { sites } = toServerOptions(loaded);
    const site = sites[0]!;
    // before: pool.command "" stopped the start ("is empty; give the command that starts a worker")
    expect(site.plugin.command).toBe('php worker.php');
    expect(site.plugin).not.toHaveProperty('max_request_size');
    const said = Object.fromEntries(site.ignored.map((i) => [i.key, i.reason]));
    expect(said['http.max_request_size']).toMatch(
      /^RoadRunner reads 0 as "no limit"; warmpool keeps its default of 100 MB/,
    );
    // before: it sent users to http.headers.response, which reaches PHP's pages too
    expect(said['http.static.response']).toMatch(/^use http\.static\.cache_control/);
  });

  it('gives each site its own options, inheriting what it does not set', () => {
    const loaded = parse(`
server:
  command: php public/index.php
  env: { APP_ENV: prod, SHARED: top }
http:
  address: 127.0.0.1:8080
  trusted_subnets: [10.0.0.0/8]
  headers_timeout: 10s
  middleware: [static, gzip]
  static: { dir: public, calculate_etag: true, weak: true, link_targets: [vendor, /usr/share/javascript] }
  pool: { num_workers: 2, max_jobs: 100, supervisor: { exec_ttl: 30s } }
sites:
  - hosts: [a.test, "*.a.test"]
    root: sites/a
    server: { command: php a.php, env: { APP_ENV: dev } }
    http:
      max_request_size: 10
      pool: { num_workers: 4 }
  - hosts: [b.test]
    root: /srv/b
    http:
      middleware: [gzip]
admin:
  socket: run/wp.sock
`);
    const server = toServerOptions(loaded);
    expect(server.sites.map((s) => s.name)).toEqual(['a.test', 'b.test', 'default']);
    const [a, b, top] = server.sites;
    expect(a!.hosts).toEqual(['a.test', '*.a.test']);
    expect(a!.dir).toBe('/srv/app/sites/a');
    expect(a!.plugin).toMatchObject({
      command: 'php a.php',
      cwd: '/srv/app/sites/a',
      env: { APP_ENV: 'dev', SHARED: 'top' },
      max_request_size: 10,
      trusted_subnets: ['10.0.0.0/8'],
      headers_timeout: '10s',
      pool: { num_workers: 4, max_jobs: 100, supervisor: { exec_ttl: '30s' } },
      static: {
        dir: '/srv/app/sites/a/public',
        calculate_etag: true,
        weak: true,
        link_targets: ['/srv/app/sites/a/vendor', '/usr/share/javascript'],
      },
    });
    // its own middleware list without "static": the top-level static section is not inherited
    expect(b!.plugin.command).toBe('php public/index.php');
    expect(b!.plugin.static).toBeUndefined();
    expect(b!.gzip).toBe(true);
    expect(top!.hosts).toBeNull();
    expect(top!.plugin.static).toEqual({
      dir: '/srv/app/public',
      calculate_etag: true,
      weak: true,
      link_targets: ['/srv/app/vendor', '/usr/share/javascript'],
    });
    expect(server.defaultSite).toBe(top);
    expect(server.admin).toEqual({ socket: '/srv/app/run/wp.sock', explicit: true });
  });

  it('gives each site the top-level cache and proxy, or its own: cache keys merge, a proxy list replaces', () => {
    const server = toServerOptions(
      parse(`version: "3"
server:
  command: php worker.php
http:
  address: :8080
cache:
  enabled: true
  max_bytes: 1m
  stale_while_revalidate: 10s
proxy:
  - prefix: /api
    upstream: http://127.0.0.1:9000
sites:
  - hosts: [a.test]
    cache:
      bypass_cookies: [shop_session]
    proxy:
      - prefix: /ws
        upstream: http://127.0.0.1:9001
        websocket: true
  - hosts: [b.test]
    cache:
      enabled: false
    proxy: []
  - hosts: [c.test]
`),
    );
    const [a, b, c, top] = server.sites;
    expect(a!.cache).toEqual({
      enabled: true,
      max_bytes: 1024 * 1024,
      stale_while_revalidate: '10s',
      bypass_cookies: ['shop_session'],
    });
    expect(a!.proxy).toEqual([{ prefix: '/ws', upstream: 'http://127.0.0.1:9001', websocket: true }]);
    expect([b!.cache, b!.proxy]).toEqual([null, null]);
    expect(c!.cache).toEqual(top!.cache);
    expect(c!.proxy).toEqual([{ prefix: '/api', upstream: 'http://127.0.0.1:9000' }]);
    expect(top!.proxy).toEqual(c!.proxy);
  });

  it("checks a site's own proxy routes: prefix and upstream required, one upstream per prefix", () => {
    const errors = (() => {
      try {
        parse(`version: "3"
server:
  command: php worker.php
http:
  address: :8080
sites:
  - hosts: [a.test]
    proxy:
      - prefix: /api
        upstream: http://127.0.0.1:9000
      - prefix: /api
        upstream: http://127.0.0.1:9001
      - upstream: http://127.0.0.1:9002
`);
      } catch (error) {
        return (error as ConfigError).errors.map((e) => `${e.key}: ${e.reason}`);
      }
      return [];
    })();
    expect(errors).toEqual([
      expect.stringMatching(
        /^sites\[0\]\.proxy\[1\]\.prefix: prefix "\/api" is already proxied by sites\[0\]\.proxy\[0\]\.prefix/,
      ),
      expect.stringMatching(/^sites\[0\]\.proxy\[2\]\.prefix: is required/),
    ]);
  });

  it('refuses a proxy prefix of "/" at its line on a site of PHP: the site would never reach PHP', () => {
    for (const [prefix, key] of [
      ['/', 'sites[0].proxy[0].prefix'],
      ['/', 'proxy[0].prefix'],
    ] as const) {
      const inSite = key.startsWith('sites');
      const errors = builtErrors(
        `version: "3"\nserver:\n  command: php worker.php\nhttp:\n  address: :8080\n` +
          (inSite ? 'sites:\n  - hosts: [a.test]\n    proxy:\n' : 'proxy:\n') +
          `${inSite ? '      ' : '  '}- prefix: "${prefix}"\n${inSite ? '        ' : '    '}upstream: http://127.0.0.1:9000\n`,
      );
      expect(errors).toEqual([
        `${key}: prefix "${prefix}" would send every request of ${inSite ? 'sites[0]' : 'the site'} to the upstream, and its PHP would never run: proxy the paths the upstream serves (e.g. "/api"), or make it a site of no PHP (sites[].php: false)`,
      ]);
    }
  });

  it("a site's own access log, its relative path from the site's folder; never inherited", () => {
    const built = toServerOptions(
      parse(
        [
          'version: "3"',
          'server: { command: php worker.php }',
          'http: { address: ":8080", access_log: { format: json, output: /var/log/warmpool/access.log } }',
          'sites:',
          '  - hosts: [a.test]',
          '    root: /srv/a',
          '    http: { access_log: { output: logs/access.log } }',
          '  - hosts: [b.test]',
          '    http: { access_log: { format: json, output: stderr } }',
          '  - hosts: [c.test]',
        ].join('\n'),
      ),
    );
    expect(built.sites.map((site) => [site.name, site.access_log])).toEqual([
      ['a.test', { format: 'combined', output: '/srv/a/logs/access.log' }],
      ['b.test', { format: 'json', output: 'stderr' }],
      ['c.test', null],
      ['default', null],
    ]);
    expect(built.http.access_log).toEqual({ format: 'json', output: '/var/log/warmpool/access.log' });
  });

  it("http.static.hot_cache: the plugin's hot_cache, its revalidate in milliseconds; enabled: false turns it off", () => {
    const site = (hot: string) =>
      toServerOptions(
        parse(
          `version: "3"\nserver: { command: php w.php }\nhttp:\n  address: ":8080"\n  middleware: [static]\n  static: { dir: public, hot_cache: ${hot} }\n`,
        ),
      ).defaultSite!.plugin.static;
    expect(site('{ max_bytes: 32m, max_file_bytes: 256k, revalidate: 0s }')).toMatchObject({
      hot_cache: { max_bytes: 32 * 1024 * 1024, max_file_bytes: 256 * 1024, revalidate_ms: 0 },
    });
    expect(site('{ enabled: false }')).toMatchObject({ hot_cache: false });
    expect(site('{ revalidate: 250ms }')).toMatchObject({ hot_cache: { revalidate_ms: 250 } });
  });

  describe('sites of no PHP', () => {
    const YAML = [
      'version: "3"',
      'http: { address: ":8080" }',
      'server: { command: php worker.php }',
      'sites:',
      '  - hosts: [files.test]',
      '    root: /srv/files',
      '    http: { middleware: [static], static: { dir: public }, pool: { num_workers: 4 } }',
      '  - hosts: [node.test]',
      '    php: false',
      '    proxy: [{ prefix: /, upstream: "http://127.0.0.1:3000" }]',
      '  - hosts: [app.test]',
    ].join('\n');

    it('a site with php: false, or no command and no fastcgi, runs no PHP; the others inherit the command', () => {
      const withoutTopCommand = YAML.replace('server: { command: php worker.php }\n', '');
      // with the top-level command: files.test inherits it (a PHP site with static files), node.test opts out
      const [files, node, app] = toServerOptions(parse(YAML)).sites;
      expect(files!.php).toBe(true);
      expect(files!.plugin.command).toBe('php worker.php');
      expect(node!.php).toBe(false);
      expect(node!.plugin).toMatchObject({ php: false });
      expect(node!.plugin.command).toBeUndefined();
      expect(node!.proxy).toEqual([expect.objectContaining({ prefix: '/', upstream: 'http://127.0.0.1:3000' })]);
      expect(app!.php).toBe(true);
      // without it: files.test serves its static files with no PHP, its pool keys said to do nothing
      const loaded = parseConfig(
        withoutTopCommand.replace(
          '  - hosts: [app.test]',
          '  - hosts: [app.test]\n    server: { command: php app.php }',
        ),
        {
          file: '/srv/app/warmpool.yaml',
          env: {},
        },
      );
      const built = toServerOptions(loaded);
      const static_ = built.sites[0]!;
      expect(static_.php).toBe(false);
      expect(static_.plugin).toMatchObject({ php: false, static: { dir: '/srv/files/public' } });
      expect(static_.plugin.pool).toBeUndefined();
      expect(static_.ignored).toEqual([
        { key: 'sites[0].http.pool', reason: 'this site runs no PHP (no command, no fastcgi)' },
      ]);
      // what only PHP reads, written on a site of no PHP, is said to do nothing
      const written = toServerOptions(
        parse(
          'version: "3"\nhttp: { address: ":8080" }\nsites:\n  - hosts: [a.test]\n    php: false\n    server: { env: { A: "1" }, user: www-data }\n    http: { codec: proto, uploads: { max_files: 2 } }\n    proxy: [{ prefix: /, upstream: "http://127.0.0.1:1" }]\n',
        ),
        { lookupUser: () => ({ uid: 33, gid: 33 }) },
      );
      expect(written.sites[0]!.ignored.map((entry) => entry.key)).toEqual([
        'sites[0].http.codec',
        'sites[0].http.uploads',
        'sites[0].server.env',
        'sites[0].server.user',
      ]);
      expect(built.defaultSite).toBeNull();
    });

    it('with no sites[], a top level of static files or proxy routes is the one site', () => {
      const files = toServerOptions(
        parse('version: "3"\nhttp:\n  address: ":8080"\n  middleware: [static]\n  static: { dir: /var/www }\n'),
      );
      expect(files.defaultSite).toMatchObject({ php: false, plugin: { php: false, static: { dir: '/var/www' } } });
      const proxied = toServerOptions(
        parse('version: "3"\nhttp: { address: ":8080" }\nproxy: [{ prefix: /, upstream: "http://127.0.0.1:3000" }]\n'),
      );
      expect(proxied.defaultSite).toMatchObject({ php: false, plugin: { php: false } });
      expect(proxied.sites).toHaveLength(1);
    });

    it('says what stops a site meant for static files only, at its line; warns of cache.enabled there', () => {
      const gated = builtErrors(
        'version: "3"\nhttp: { address: ":8080" }\nsites:\n  - hosts: [a.test]\n    http: { static: { dir: /var/www } }\n  - hosts: [b.test]\n    proxy: [{ prefix: /, upstream: "http://127.0.0.1:1" }]\n',
      );
      expect(gated).toEqual([
        expect.stringMatching(
          /^server\.command: is required: .*, or in every site \(sites\[0\] has none\); for a site of static files only: sites\[0\]\.http\.static is not used: sites\[0\]\.http\.middleware does not list static$/,
        ),
      ]);
      const listed = builtErrors('version: "3"\nhttp:\n  address: ":8080"\n  middleware: [static]\n');
      expect(listed).toEqual([
        expect.stringMatching(
          /; for a site of static files only: http\.middleware lists static, but there is no static section with a dir$/,
        ),
      ]);
      const cached = toServerOptions(
        parse(
          'version: "3"\nhttp: { address: ":8080" }\nsites:\n  - hosts: [a.test]\n    proxy: [{ prefix: /, upstream: "http://127.0.0.1:1" }]\n    cache: { enabled: true }\n',
        ),
      );
      expect(cached.sites[0]!.ignored).toEqual([
        {
          key: 'sites[0].cache.enabled',
          reason:
            "this site runs no PHP, and the micro-cache keeps PHP's answers only (a proxied app's are not cached)",
        },
      ]);
    });

    it('cache keys written with the cache off (no enabled: true) are said to do nothing; enabled: false, or a site that turns it on, says nothing', () => {
      const off = toServerOptions(
        parse(
          'version: "3"\nhttp: { address: ":8080" }\nserver: { command: php w.php }\nsites:\n  - hosts: [a.test]\n    cache: { max_age: 30s }\n  - hosts: [b.test]\n    cache: { enabled: false, max_age: 30s }\n',
        ),
      );
      expect(off.sites[0]!.ignored).toEqual([
        {
          key: 'sites[0].cache.max_age',
          reason: 'the micro-cache is off: set sites[0].cache.enabled: true to turn it on',
        },
      ]);
      expect(off.sites[1]!.ignored).toEqual([]);
      const top = toServerOptions(
        parse('version: "3"\nhttp: { address: ":8080" }\nserver: { command: php w.php }\ncache: { max_age: 30s }\n'),
      );
      expect(top.defaultSite!.ignored.map((i) => i.key)).toEqual(['cache.max_age']);
      const taken = toServerOptions(
        parse(
          'version: "3"\nhttp: { address: ":8080" }\nserver: { command: php w.php }\ncache: { max_age: 30s }\nsites:\n  - hosts: [a.test]\n    cache: { enabled: true }\n',
        ),
      );
      expect([taken.sites[0]!.cache, taken.defaultSite!.ignored]).toEqual([
        expect.objectContaining({ enabled: true }),
        [],
      ]);
    });

    it('refuses, at their lines, a site that would serve nothing and php: false beside PHP', () => {
      expect(
        builtErrors('version: "3"\nhttp: { address: ":8080" }\nsites:\n  - hosts: [a.test]\n    php: false\n'),
      ).toEqual([
        'sites[0].php: false, and the site has no static files (http.middleware: [static] with http.static.dir) and no proxy routes: it would answer 404 to every request',
      ]);
      expect(
        builtErrors(
          'version: "3"\nhttp: { address: ":8080" }\nsites:\n  - hosts: [a.test]\n    php: false\n    server: { command: php w.php }\n    proxy: [{ prefix: /api, upstream: "http://127.0.0.1:3000" }]\n',
        ),
      ).toEqual([
        'sites[0].server.command: runs PHP, and sites[0].php: false says this site has none: remove one of the two',
      ]);
      // no command anywhere, and a site with nothing else to serve: the command is still asked for
      expect(builtErrors('version: "3"\nhttp: { address: ":8080" }\nsites:\n  - hosts: [a.test]\n')).toEqual([
        expect.stringMatching(/^server\.command: is required: .* or in every site \(sites\[0\] has none\)$/),
      ]);
    });

    it('a site proxied at "/" does not take the top level\'s static files: they are the other sites\'', () => {
      const built = toServerOptions(
        parse(
          [
            'version: "3"',
            'server: { command: php worker.php }',
            'http: { address: ":8080", middleware: [static, gzip], static: { dir: /var/www } }',
            'sites:',
            '  - hosts: [node.test]',
            '    php: false',
            '    proxy: [{ prefix: /, upstream: "http://127.0.0.1:3000" }]',
          ].join('\n'),
        ),
      );
      const node = built.sites[0]!;
      expect(node.plugin.static).toBeUndefined();
      expect(node.middleware).toEqual(['gzip']);
      expect(built.defaultSite!.plugin.static).toMatchObject({ dir: '/var/www' });
    });

    it('a site that redirects: no PHP, no inherited proxy or static files; status 301 unless set', () => {
      const built = toServerOptions(
        parse(
          [
            'version: "3"',
            'server: { command: php worker.php }',
            'http: { address: ":8080", middleware: [static], static: { dir: /var/www } }',
            'proxy: [{ prefix: /api, upstream: "http://127.0.0.1:3000" }]',
            'sites:',
            '  - hosts: [www.example.com]',
            '    redirect: { to: "https://example.com/" }',
            '  - hosts: [old.example]',
            '    redirect: { to: "https://example.com/blog", status: 308 }',
          ].join('\n'),
        ),
      );
      const [www, old] = built.sites;
      expect(www).toMatchObject({ php: false, proxy: null, redirect: { to: 'https://example.com', status: 301 } });
      expect(www!.plugin).toMatchObject({ php: false });
      expect(www!.plugin.static).toBeUndefined();
      expect(old!.redirect).toEqual({ to: 'https://example.com/blog', status: 308 });
      // the Location as a header carries it, and what never applies to such a site is said
      const idn = toServerOptions(
        parse(
          'version: "3"\nhttp: { address: ":8080" }\nsites:\n  - hosts: [a.test]\n    redirect: { to: "https://例え.jp/ü" }\n    http: { access: [{ prefix: /, deny: [all] }] }\n',
        ),
      ).sites[0]!;
      expect(idn.redirect).toEqual({ to: 'https://xn--r8jz45g.jp/%C3%BC', status: 301 });
      expect(idn.ignored.map((entry) => entry.key)).toEqual(['sites[0].http.access']);
      expect(built.defaultSite!.redirect).toBeNull();
    });

    it('refuses, at their lines, a redirect beside what it would never reach, and a bad address or status', () => {
      const site = (lines: string) =>
        builtErrors(`version: "3"\nhttp: { address: ":8080" }\nsites:\n  - hosts: [a.test]\n${lines}`);
      expect(
        site(
          '    redirect: { to: "https://b.test" }\n    server: { command: php w.php }\n    proxy: [{ prefix: /api, upstream: "http://127.0.0.1:1" }]\n',
        ),
      ).toEqual([
        'sites[0].server.command: sites[0].redirect sends every request of this site elsewhere: it serves nothing else; remove one of the two',
        'sites[0].proxy: sites[0].redirect sends every request of this site elsewhere: it serves nothing else; remove one of the two',
      ]);
      expect(site('    redirect: { to: "b.test/x?y=1" }\n')).toEqual([
        'sites[0].redirect.to: must be an absolute http(s) address such as "https://example.com" (a path prefix allowed; no query, fragment or user; the path and query asked for are added by themselves: no {uri} or $request_uri), got "b.test/x?y=1"',
      ]);
      // Caddy's {uri} and nginx's $request_uri: refused (they went into every Location as text),
      // not taken for a ${VAR} the config should have used
      for (const to of ['https://b.test{uri}', 'https://b.test$request_uri', 'https://b.test/new{path}'])
        expect(site(`    redirect: { to: "${to}" }\n`)).toEqual([
          expect.stringMatching(/^sites\[0\]\.redirect\.to: must be .*no \{uri\} or \$request_uri\), got /),
        ]);
      expect(site('    redirect: { to: "https://b.test", status: 304 }\n')).toEqual([
        "sites[0].redirect.status: must be 301, 302, 303, 307 or 308 (a redirect's statuses), got 304",
      ]);
      expect(site('    redirect: { status: 302 }\n')).toEqual([expect.stringMatching(/^sites\[0\]\.redirect\.to: /)]);
    });

    it('refuses a static section with no dir on a site of no PHP, and any served folder that holds the config file', () => {
      // parse's file is /srv/app/warmpool.yaml
      expect(
        builtErrors(
          'version: "3"\nhttp:\n  address: ":8080"\n  middleware: [static]\n  static: { calculate_etag: true }\n',
        ),
      ).toEqual([
        "http.static: has no dir, and this site runs no PHP: it would serve its own folder (the config file's, and the keys and certificates kept there); give dir, e.g. dir: public",
        'http.static: serves /srv/app, which holds the config file /srv/app/warmpool.yaml: anyone could download it (its secrets, and the keys kept beside it); serve a folder of its own (e.g. public/) or keep it elsewhere (e.g. /etc/warmpool/)',
      ]);
      expect(
        builtErrors(
          'version: "3"\nserver: { command: php w.php }\nhttp:\n  address: ":8080"\n  middleware: [static]\n  static: { dir: /srv }\n',
        ),
      ).toEqual([expect.stringMatching(/^http\.static\.dir: serves \/srv, which holds the config file /)]);
      expect(builtErrors('version: "3"\nhttp: { address: ":8080" }\nfastcgi: { root: /srv/app }\n')).toEqual([
        expect.stringMatching(/^fastcgi\.root: serves \/srv\/app, which holds the config file /),
      ]);
      // an htpasswd file in the folder served is refused too
      expect(
        builtErrors(
          'version: "3"\nserver: { command: php w.php }\nhttp:\n  address: ":8080"\n  middleware: [static]\n  static: { dir: /srv/www }\n  auth_basic: [{ prefix: /admin, user_file: /srv/www/htpasswd }]\n',
        ),
      ).toEqual([
        expect.stringMatching(
          /^http\.static\.dir: serves \/srv\/www, which holds the htpasswd file \/srv\/www\/htpasswd: .*its password hashes/,
        ),
      ]);
      // a dotfile is never sent: RoadRunner's sample, dir "." beside .rr.yaml, still loads
      const rr = parseConfig(
        'version: "3"\nserver: { command: php w.php }\nhttp:\n  address: ":8080"\n  middleware: [static]\n  static: { dir: "." }\n',
        { file: '/srv/app/.rr.yaml', env: {} },
      );
      expect(() => toServerOptions(rr)).not.toThrow();
      // a folder beside it is fine
      expect(
        builtErrors('version: "3"\nhttp:\n  address: ":8080"\n  middleware: [static]\n  static: { dir: public }\n'),
      ).toEqual([]);
    });

    it('refuses a proxy at "/" beside static files on a site of no PHP: the files would never be served', () => {
      expect(
        builtErrors(
          'version: "3"\nhttp: { address: ":8080" }\nsites:\n  - hosts: [a.test]\n    http: { middleware: [static], static: { dir: /var/www } }\n    proxy: [{ prefix: /, upstream: "http://127.0.0.1:3000" }]\n',
        ),
      ).toEqual([
        'sites[0].proxy[0].prefix: prefix "/" would send every request of sites[0] to the upstream, and its static files (http.static) would never be served: drop one of the two, or proxy a narrower prefix (e.g. "/api")',
      ]);
    });
  });

  it('refuses at its line a proxy prefix serve would refuse after booting the workers', () => {
    for (const prefix of ['//', '/?', '/*x', '/a b', '/api:v1']) {
      let reason = '';
      try {
        parse(
          `version: "3"\nserver:\n  command: php worker.php\nhttp:\n  address: :8080\nproxy:\n  - prefix: "${prefix}"\n    upstream: http://127.0.0.1:9000\n`,
        );
      } catch (error) {
        reason = (error as ConfigError).errors.map((e) => `${e.key}: ${e.reason}`).join('\n');
      }
      expect(reason, prefix).toMatch(/^proxy\[0\]\.prefix: must be a path starting with "\/"/);
    }
  });

  it('passes http.codec to the plugin; a site may set its own', () => {
    const server = toServerOptions(
      parse(
        'version: "3"\nserver:\n  command: php w.php\nhttp:\n  address: :8080\n  codec: proto\nsites:\n  - hosts: [a.test]\n    http:\n      codec: json\n  - hosts: [b.test]\n',
      ),
    );
    expect(server.sites.map((site) => [site.name, site.plugin.codec])).toEqual([
      ['a.test', 'json'],
      ['b.test', 'proto'],
      ['default', 'proto'],
    ]);
  });

  it('tells worker sites where rpc.listen is (RR_RPC, as RoadRunner), unless server.env sets it; not classic ones', () => {
    const server = toServerOptions(
      parse(
        'version: "3"\nserver:\n  command: php w.php\n  env: { APP: x }\nhttp:\n  address: :8080\nrpc:\n  listen: tcp://127.0.0.1:6101\nsites:\n  - hosts: [own.test]\n    server: { env: { RR_RPC: "tcp://10.0.0.1:1" } }\n  - hosts: [classic.test]\n    fastcgi: { root: /tmp }\n',
      ),
    );
    expect(server.sites.map((site) => [site.name, site.plugin.env?.RR_RPC])).toEqual([
      ['own.test', 'tcp://10.0.0.1:1'],
      ['classic.test', undefined],
      ['default', 'tcp://127.0.0.1:6101'],
    ]);
    expect(server.sites.at(-1)!.plugin.env?.APP).toBe('x');
  });

  it('listener-wide defaults: headers_timeout given explicitly (the plugin then checks every second), no connection limits', () => {
    const server = toServerOptions(parse('server: { command: php w.php }\nhttp: { address: ":8080" }\n'));
    expect(server.sites[0]!.plugin.headers_timeout).toBe('60s');
    // none, as nginx, given explicitly over Node's 300 s; body_timeout is the plugin's 60 s
    expect(server.sites[0]!.plugin.request_timeout).toBe('0');
    expect(server.sites[0]!.plugin.body_timeout).toBeUndefined();
    expect(server.http).toMatchObject({ max_connections: 0, max_connections_per_ip: 0 });
    const set = toServerOptions(
      parse(
        'server: { command: php w.php }\nhttp: { address: ":8080", headers_timeout: 5s, request_timeout: 5m, body_timeout: 30s, max_connections: 100, max_connections_per_ip: 8 }\n',
      ),
    );
    expect(set.sites[0]!.plugin).toMatchObject({ headers_timeout: '5s', request_timeout: '5m', body_timeout: '30s' });
    expect(set.http).toMatchObject({ max_connections: 100, max_connections_per_ip: 8 });
  });

  it('has no default site when the top level has no worker command', () => {
    const loaded = parse(`
http: { address: ":8080" }
sites:
  - hosts: [a.test]
    server: { command: php a.php }
`);
    const server = toServerOptions(loaded);
    expect(server.defaultSite).toBeNull();
    expect(server.sites.map((s) => s.name)).toEqual(['a.test']);
  });

  it('resolves user and group names, and points at the line of an unknown one', () => {
    const loaded = parse(`
server:
  command: php w.php
  user: www-data
  group: "33"
http: { address: ":8080" }
sites:
  - hosts: [a.test]
    server: { user: nobody-here }
`);
    const lookupUser = (name: string) => (name === 'www-data' ? { uid: 33, gid: 33 } : null);
    let error: unknown;
    try {
      toServerOptions(loaded, { lookupUser, lookupGroup: () => null });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const errors = (error as ConfigError).errors;
    expect(errors).toHaveLength(1);
    expect(errors[0]!.key).toBe('sites[0].server.user');
    expect(errors[0]!.line).toBe(9);
    expect(errors[0]!.message).toContain('no user "nobody-here"');
    const ok = toServerOptions(
      parse('server: { command: php w.php, user: www-data, group: "33" }\nhttp: { address: ":8080" }\n'),
      { lookupUser },
    );
    expect(ok.sites[0]!.plugin.pool).toEqual({ uid: 33, gid: 33 });
    const noGroup = () =>
      toServerOptions(parse('server: { command: php w.php, group: staff-x }\nhttp: { address: ":8080" }\n'), {
        lookupGroup: () => null,
      });
    expect(noGroup).toThrow(ConfigError);
    try {
      noGroup();
    } catch (e) {
      const [only] = (e as ConfigError).errors;
      expect([only!.key, only!.line, only!.message]).toEqual([
        'server.group',
        1,
        expect.stringContaining('no group "staff-x" on this machine; give an existing group name or a numeric gid'),
      ]);
    }
  });

  it("server.user alone runs the workers in the user's primary group, as RoadRunner and php-fpm do, not in warmpool's (root's)", () => {
    const options = (yaml: string, lookups: ToOptionsOptions = {}) =>
      toServerOptions(parse(`${yaml}\nhttp: { address: ":8080" }\n`), lookups).sites[0]!;
    // the real /etc/passwd: the ids `id` reports
    const [uid, gid] = ['-u', '-g'].map((flag) => Number(execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' })));
    const nobody = options('server: { command: php w.php, user: nobody }');
    expect(nobody.plugin.pool).toEqual({ uid, gid });
    expect(nobody.origins).toMatchObject({ 'pool.uid': 'server.user', 'pool.gid': 'server.user' });
    // a uid is looked up too; server.group still wins
    expect(options(`server: { command: php w.php, user: "${uid}" }`).plugin.pool).toEqual({ uid, gid });
    const staff = options('server: { command: php w.php, user: nobody, group: "50" }');
    expect([staff.plugin.pool, staff.origins['pool.gid']]).toEqual([{ uid, gid: 50 }, 'server.group']);
    // a uid nobody knows has no known group: said, with the line, rather than keeping root's
    const unknownUid = () => options('server: { command: php w.php, user: "54321" }', { lookupUser: () => null });
    expect(unknownUid).toThrow(ConfigError);
    try {
      unknownUid();
    } catch (e) {
      const [only] = (e as ConfigError).errors;
      expect([only!.key, only!.line, only!.message]).toEqual([
        'server.user',
        1,
        expect.stringContaining(
          'server.user: uid 54321 has no entry in /etc/passwd, so its primary group is unknown; set server.group too (a group name or a numeric gid)',
        ),
      ]);
    }
    expect(
      options('server: { command: php w.php, user: "54321", group: "54321" }', { lookupUser: () => null }).plugin.pool,
    ).toEqual({ uid: 54321, gid: 54321 });
  });
});

describe('http.ssl.acme', () => {
  const sites = `
sites:
  - hosts: [example.com, www.example.com, "*.example.com"]
    server: { command: php a.php }
  - hosts: [shop.test, localhost, "[::1]"]
    server: { command: php b.php }
`;

  it("the RoadRunner sample's acme block: Let's Encrypt production, its domains, certs_dir from the config's folder", async () => {
    const loaded = await loadConfigFile(fixture('rr-sample.rr.yaml'), { env: {} });
    expect(toServerOptions(loaded, { baseDir: '/srv/app' }).http.ssl?.acme).toEqual({
      certs_dir: '/srv/app/rr_le_certs',
      email: 'you-email-here@email',
      alt_http_port: 80,
      alt_tlsalpn_port: 443,
      challenge_type: 'http-01',
      use_production_endpoint: true,
      directory: LETS_ENCRYPT_PRODUCTION,
      staging: false,
      domains: ['your-cool-domain.here'],
      domainsFromFile: true,
    });
  });

  it('without domains: the sites hosts a CA can validate (no wildcard, IP or single label); staging as RoadRunner', () => {
    const server = toServerOptions(
      parse(`http:\n  address: :80\n  ssl:\n    acme: { email: ops@example.com }\n${sites}`),
    );
    expect(server.http.ssl).toMatchObject({ cert: null, key: null });
    expect(server.http.ssl?.acme).toMatchObject({
      certs_dir: '/srv/app/rr_le_certs',
      challenge_type: 'http-01',
      directory: LETS_ENCRYPT_STAGING,
      staging: true,
      domains: ['example.com', 'www.example.com', 'shop.test'],
      domainsFromFile: false,
    });
  });

  it('directory names any RFC 8555 CA and wins over use_production_endpoint', () => {
    const server = toServerOptions(
      parse(
        `http:\n  address: :80\n  ssl:\n    acme:\n      directory: https://ca.test/dir\n      certs_dir: /var/lib/wp\n      domains: [A.example.com]\n${sites}`,
      ),
    );
    expect(server.http.ssl?.acme).toMatchObject({
      directory: 'https://ca.test/dir',
      staging: false,
      certs_dir: '/var/lib/wp',
      domains: ['a.example.com'],
    });
  });

  it('an ssl section needs cert and key, or acme: the error names the acme alternative', () => {
    const errors = (() => {
      try {
        parse('server: { command: php w.php }\nhttp:\n  address: :80\n  ssl:\n    address: :443\n');
      } catch (error) {
        return (error as ConfigError).errors;
      }
      return [];
    })();
    expect(errors.map((e) => [e.code, e.key, e.line])).toEqual([
      ['WP_CONFIG_MISSING_KEY', 'http.ssl.cert', 4],
      ['WP_CONFIG_MISSING_KEY', 'http.ssl.key', 4],
    ]);
    expect(errors[0]!.reason).toMatch(/^is required \(or set http\.ssl\.acme\): certificate chain file/);
  });

  it('with acme, cert and key are ignored (as RoadRunner does), and said so', async () => {
    const loaded = await loadConfigFile(fixture('rr-sample.rr.yaml'), { env: {} });
    const ssl = toServerOptions(loaded, { baseDir: '/srv/app' }).http.ssl!;
    expect(ssl).toMatchObject({ cert: null, key: null });
    expect(ssl.ignored.map((i) => i.key)).toEqual(['http.ssl.cert', 'http.ssl.key']);
    expect(ssl.ignored[0]!.reason).toContain('RoadRunner ignores cert and key with acme too');
  });

  it('refuses acme without names, wildcard domains: each at its line', () => {
    const failures = (text: string): string[] => {
      try {
        toServerOptions(parse(text));
      } catch (error) {
        return (error as ConfigError).errors.map((e) => `${e.line} ${e.key}: ${e.reason}`);
      }
      return [];
    };
    expect(
      failures('server: { command: php w.php }\nhttp:\n  address: :80\n  ssl:\n    cert: a.pem\n    acme: {}\n'),
    ).toEqual([
      expect.stringMatching(
        /^6 http\.ssl\.acme: has no names to get certificates for: list them in http\.ssl\.acme\.domains/,
      ),
    ]);
    expect(() =>
      parse(
        'server: { command: php w.php }\nhttp:\n  address: :80\n  ssl:\n    acme: { domains: ["*.example.com"] }\n',
      ),
    ).toThrow(
      /warmpool\.yaml:5:\d+ http\.ssl\.acme\.domains\[0\]: must be a DNS name like "example\.com" \(no wildcard/,
    );
  });
});

describe('plugin errors → lines of the file', () => {
  const loaded = parse(`server:
  command: php w.php
http:
  address: 127.0.0.1:8080
  pool:
    num_workers: 2
    supervisor:
      exec_ttl: 5s
sites:
  - hosts: [a.test]
    http:
      pool:
        max_jobs: 5
`);
  const [site, top] = toServerOptions(loaded).sites;

  it('maps option keys to YAML keys, the site first, then what it inherits', () => {
    expect(yamlKeysOf('pool.max_jobs', site!)).toEqual(['sites[0].http.pool.max_jobs', 'http.pool.max_jobs']);
    expect(yamlKeysOf('pool.supervisor.exec_ttl', top!)).toEqual(['http.pool.supervisor.exec_ttl']);
    expect(yamlKeysOf('static.dir', top!)).toEqual(['http.static.dir']);
    expect(yamlKeysOf('static.calculate_etag', site!)).toEqual([
      'sites[0].http.static.calculate_etag',
      'http.static.calculate_etag',
    ]);
    expect(yamlKeysOf('cwd', site!)).toEqual(['sites[0].root']);
    expect(yamlKeysOf('command', site!)).toEqual(['sites[0].server.command', 'server.command']);
    expect(yamlKeysOf('headers_timeout', site!)).toEqual(['http.headers_timeout']);
    expect(yamlKeysOf('uploads.forbid[1]', top!)).toEqual(['http.uploads.forbid[1]']);
  });

  it('names the line the value came from: the site own key, else the inherited top-level one', () => {
    const own = locateOptionError(new InvalidOptionError('pool.max_jobs', 'must be an integer'), loaded, site!)!;
    expect(own.errors[0]).toMatchObject({ key: 'sites[0].http.pool.max_jobs', line: 13 });
    expect(own.message).toContain('/srv/app/warmpool.yaml:13:9 sites[0].http.pool.max_jobs: must be an integer');
    const inherited = locateOptionError(
      new InvalidOptionError('pool.supervisor.exec_ttl', 'too short'),
      loaded,
      site!,
    )!;
    expect(inherited.errors[0]).toMatchObject({ key: 'http.pool.supervisor.exec_ttl', line: 8 });
    expect(locateOptionError(new Error('other'), loaded, site!)).toBeNull();
  });
});
