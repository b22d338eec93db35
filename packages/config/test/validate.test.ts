// The walk against the key table: unknown keys with suggestions, wrong types, every error at once
// with its exact line, required keys, sites and their hosts, middleware that switches sections on.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DuplicateHostError,
  InvalidValueError,
  MissingKeyError,
  UndefinedVariableError,
  UnknownKeyError,
  loadConfigFile,
  parseConfig,
  type LocatedConfigError,
} from '../src/index.js';
import { closest, editDistance } from '../src/validate.js';

const BASE = ['server:', '  command: php worker.php', 'http:', '  address: 127.0.0.1:8080'];
const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

/** BASE followed by `lines`: line numbers in assertions count BASE's 4 lines. */
function load(lines: string[], env: Record<string, string> = {}) {
  return parseConfig([...BASE, ...lines].join('\n'), { file: 'warmpool.yaml', env });
}

function errorsOf(text: string | string[], env: Record<string, string> = {}): LocatedConfigError[] {
  try {
    if (Array.isArray(text)) load(text, env);
    else parseConfig(text, { file: 'warmpool.yaml', env });
  } catch (error) {
    if (error instanceof ConfigError) return [...error.errors];
    throw error;
  }
  throw new Error('expected a ConfigError');
}

const where = (e: LocatedConfigError): [string, string, number, number] => [e.code, e.key, e.line, e.col];

describe('all errors at once', () => {
  it('reports every mistake of a file with its key and exact line:col, sorted', async () => {
    const error = (await loadConfigFile(fixture('mistakes.yaml'), { env: {} }).catch((e: unknown) => e)) as ConfigError;
    expect(error).toBeInstanceOf(ConfigError);
    expect(error.code).toBe('WP_CONFIG_INVALID');
    expect(error.errors.map(where)).toEqual([
      ['WP_CONFIG_UNDEFINED_VARIABLE', 'server.env.APP_KEY', 5, 5],
      ['WP_CONFIG_INVALID_VALUE', 'http.max_request_size', 8, 3],
      ['WP_CONFIG_UNKNOWN_KEY', 'http.pool.num_worker', 10, 5],
      ['WP_CONFIG_INVALID_VALUE', 'http.pool.allocate_timeout', 11, 5],
      ['WP_CONFIG_INVALID_VALUE', 'http.pool.supervisor.max_worker_memory', 13, 7],
      ['WP_CONFIG_UNKNOWN_KEY', 'bogus', 14, 1],
    ]);
    const file = fixture('mistakes.yaml');
    expect(error.message.split('\n')).toEqual([
      `${file} has 6 errors:`,
      `  ${file}:5:5 server.env.APP_KEY: environment variable APP_KEY is not set; set it, or give a default: \${APP_KEY:-value}`,
      `  ${file}:8:3 http.max_request_size: must be a number of megabytes >= 0, got "lots"`,
      `  ${file}:10:5 http.pool.num_worker: unknown key; did you mean "http.pool.num_workers"?`,
      `  ${file}:11:5 http.pool.allocate_timeout: must be a duration such as "500ms", "60s", "5m" or "1h30m", got "soon"`,
      `  ${file}:13:7 http.pool.supervisor.max_worker_memory: must be a number of megabytes >= 0, got -5`,
      `  ${file}:14:1 bogus: unknown key (not a RoadRunner v3 section warmpool knows, nor a warmpool one)`,
    ]);
  });

  it('a sites key that is not a list is the one error, not a missing server.command before it', () => {
    const errors = errorsOf(
      ['version: "3"', 'http: { address: ":8080" }', 'sites: { hosts: [a.test], fastcgi: { root: /tmp } }'].join('\n'),
    );
    expect(errors.map(where)).toEqual([['WP_CONFIG_INVALID_VALUE', 'sites', 3, 1]]);
    expect(errors[0]!.message).toMatch(/must be a list/);
  });

  it('each error carries key, file, line and col as fields and in details', () => {
    const [error] = errorsOf(['  pool:', '    num_workers: lots']);
    expect(error).toBeInstanceOf(InvalidValueError);
    expect(error!.details).toEqual({ key: 'http.pool.num_workers', file: 'warmpool.yaml', line: 6, col: 5 });
    expect(error!.message).toBe(
      'warmpool.yaml:6:5 http.pool.num_workers: must be an integer from 0 to 500 or "auto", got "lots"',
    );
  });
});

describe('unknown keys', () => {
  it('suggests the nearest sibling by edit distance', () => {
    const [error] = errorsOf(['  pool:', '    num_worker: 4']);
    expect(error).toBeInstanceOf(UnknownKeyError);
    expect(where(error!)).toEqual(['WP_CONFIG_UNKNOWN_KEY', 'http.pool.num_worker', 6, 5]);
    expect((error as UnknownKeyError).suggestion).toBe('http.pool.num_workers');
    expect(error!.details.suggestion).toBe('http.pool.num_workers');
  });

  it('suggests a transposition and a wrong case', () => {
    expect((errorsOf(['  adderss: 1'])[0] as UnknownKeyError).suggestion).toBe('http.address');
    expect((errorsOf(['  raw_bdoy: true'])[0] as UnknownKeyError).suggestion).toBe('http.raw_body');
    expect((errorsOf(['  Max_Request_Size: 10'])[0] as UnknownKeyError).suggestion).toBe('http.max_request_size');
  });

  it('points a key written in the wrong section to where it belongs', () => {
    const [error] = errorsOf(['  pool:', '    max_worker_memory: 128']);
    expect((error as UnknownKeyError).suggestion).toBe('http.pool.supervisor.max_worker_memory');
    expect(error!.reason).toContain('it belongs under http.pool.supervisor');
    const [top] = errorsOf(['headers:', '  response: {}']);
    expect((top as UnknownKeyError).suggestion).toBe('http.headers');
    // before: "static" → "status", "cache.ttl" → a supervisor's ttl, "root" → http.internal_files.root
    const [statik] = errorsOf(['static:', '  dir: public']);
    expect([(statik as UnknownKeyError).suggestion, statik!.reason]).toEqual([
      'http.static',
      'unknown key (it belongs under http); did you mean "http.static"?',
    ]);
    const [ttl] = errorsOf(['cache:', '  ttl: 10s']);
    expect((ttl as UnknownKeyError).suggestion).toBe('cache.max_age');
    const [root] = errorsOf(['root: /var/www']);
    expect([(root as UnknownKeyError).suggestion, root!.reason]).toEqual([
      null,
      "unknown key (a site's folder is sites[].root, classic PHP's document root fastcgi.root, static files' http.static.dir)",
    ]);
  });

  it('lists the known keys of a section when nothing is close', () => {
    const [error] = errorsOf(['cache:', '  zzzzzz: 1']);
    expect((error as UnknownKeyError).suggestion).toBeNull();
    expect(error!.reason).toContain('known keys here: enabled, max_bytes, max_entry_bytes, bypass_cookies');
  });

  it('suggests within sites[] with the concrete path', () => {
    const [error] = errorsOf(['sites:', '  - hosts: [a.test]', '    http:', '      pool:', '        max_job: 3']);
    expect(where(error!)).toEqual(['WP_CONFIG_UNKNOWN_KEY', 'sites[0].http.pool.max_job', 9, 9]);
    expect((error as UnknownKeyError).suggestion).toBe('sites[0].http.pool.max_jobs');
  });

  it('says a listener key cannot be set per site', () => {
    const [error] = errorsOf(['sites:', '  - hosts: [a.test]', '    http:', '      address: ":9090"']);
    expect(where(error!)).toEqual(['WP_CONFIG_UNKNOWN_KEY', 'sites[0].http.address', 8, 7]);
    expect((error as UnknownKeyError).suggestion).toBe('http.address');
    expect(error!.reason).toContain('shared by all sites');
  });
});

describe('values', () => {
  it('refuses wrong types, saying what to write', () => {
    const errors = errorsOf([
      '  raw_body: "yes"',
      '  address2: 1',
      '  access_logs: 1',
      '  pool:',
      '    max_jobs: 1.5',
      '    debug: yes',
      'status:',
      '  address: 8080',
    ]);
    expect(errors.map((e) => [e.key, e.line, e.reason])).toEqual([
      ['http.raw_body', 5, 'must be true or false, got "yes"'],
      ['http.address2', 6, 'unknown key; did you mean "http.address"?'],
      ['http.access_logs', 7, 'must be true or false, got 1'],
      ['http.pool.max_jobs', 9, 'must be an integer >= 0, got 1.5'],
      ['http.pool.debug', 10, 'must be true or false, got "yes"'],
      [
        'status.address',
        12,
        // no "quote it": "8080" is refused as well; the examples say ":8080"
        'must be an address "host:port", e.g. "127.0.0.1:8080", "0.0.0.0:80" or ":8080", got 8080',
      ],
    ]);
  });

  it('checks ranges, enums and patterns', () => {
    const errors = errorsOf([
      '  pool:',
      '    num_workers: 501',
      'logs:',
      '  level: verbose',
      'proxy:',
      '  - prefix: api',
      '    upstream: 127.0.0.1:9000',
    ]);
    expect(errors.map((e) => [e.key, e.line, e.col])).toEqual([
      ['http.pool.num_workers', 6, 5],
      ['logs.level', 8, 3],
      ['proxy[0].prefix', 10, 5],
      ['proxy[0].upstream', 11, 5],
    ]);
    expect(errors[1]!.reason).toBe('must be one of "debug", "info", "warn", "error", "panic", "fatal", got "verbose"');
    expect(errors[2]!.reason).toBe(
      'must be a path starting with "/", e.g. "/api" (no *, :, ? or #, no "//"), got "api"',
    );
    expect(errors[3]!.reason).toContain('an http:// or https:// URL');
  });

  it('refuses a bad duration and reads RR durations', () => {
    const [error] = errorsOf(['  pool:', '    supervisor:', '      ttl: 1 hour']);
    expect(where(error!)).toEqual(['WP_CONFIG_INVALID_VALUE', 'http.pool.supervisor.ttl', 7, 7]);
    expect(error!.reason).toBe('must be a duration such as "500ms", "60s", "5m" or "1h30m", got "1 hour"');
    const { config } = load([
      '  pool:',
      '    allocate_timeout: 1m30s',
      '    destroy_timeout: 30',
      '    reset_timeout: 1.5s',
      '    stream_timeout: "45"',
    ]);
    expect(config.http.pool).toEqual({
      allocate_timeout: '1m30s',
      destroy_timeout: '30s',
      reset_timeout: '1.5s',
      stream_timeout: '45s',
    });
  });

  it('takes num_workers as an integer or "auto", and leaves RR\'s 0 (CPU count) out', () => {
    expect(load(['  pool:', '    num_workers: auto']).config.http.pool?.num_workers).toBe('auto');
    expect(load(['  pool:', '    num_workers: 8']).config.http.pool?.num_workers).toBe(8);
    expect(load(['  pool:', '    num_workers: 0']).config.http.pool).toEqual({});
    expect(errorsOf(['  pool:', '    num_workers: lots'])[0]!.reason).toBe(
      'must be an integer from 0 to 500 or "auto", got "lots"',
    );
  });

  it('reads sizes: MB numbers and byte sizes with units', () => {
    const { config } = load([
      '  max_request_size: 0.5',
      'cache:',
      '  enabled: true',
      '  max_bytes: 64m',
      '  max_age: 2s',
    ]);
    expect(config.http.max_request_size).toBe(0.5);
    expect(config.cache).toEqual({ enabled: true, max_bytes: 64 * 1024 * 1024, max_age: '2s' });
    expect(load(['cache:', '  max_bytes: 1GiB']).config.cache?.max_bytes).toBe(1024 ** 3);
    expect(load(['cache:', '  max_bytes: 4096']).config.cache?.max_bytes).toBe(4096);
    expect(errorsOf(['cache:', '  max_bytes: lots'])[0]!.reason).toContain('a size in bytes');
  });

  it('refuses a trusted_subnets entry that is not a CIDR, naming the item and its line', () => {
    const errors = errorsOf([
      '  trusted_subnets:',
      '    - 127.0.0.1/32',
      '    - foo',
      '    - 10.0.0.0/99',
      '    - "2001:db8::/129"',
      '    - 192.168.1.10',
    ]);
    expect(errors.map(where)).toEqual([
      ['WP_CONFIG_INVALID_VALUE', 'http.trusted_subnets[1]', 7, 7],
      ['WP_CONFIG_INVALID_VALUE', 'http.trusted_subnets[2]', 8, 7],
      ['WP_CONFIG_INVALID_VALUE', 'http.trusted_subnets[3]', 9, 7],
    ]);
    expect(errors[0]!.reason).toContain('"foo" is not a CIDR');
    expect(errors[1]!.reason).toContain('"/99": IPv4 takes /0 to /32');
    expect(errors[2]!.reason).toContain('IPv6 takes /0 to /128');
    expect(errorsOf(['  trusted_subnets: 10.0.0.0/33'])[0]!.key).toBe('http.trusted_subnets');
  });

  it('refuses an http.access rule without a prefix or with a client that is no CIDR, naming the item and its line', () => {
    const errors = errorsOf([
      '  access:',
      '    - { prefix: /data, deny: [all] }',
      '    - { prefix: /wp-admin, allow: [10.0.0.0/8, office] }',
      '    - { allow: [127.0.0.1] }',
      '    - { prefix: data, deny: [ALL] }',
    ]);
    expect(errors.map(where)).toEqual([
      ['WP_CONFIG_INVALID_VALUE', 'http.access[1].allow[1]', 7, 48],
      ['WP_CONFIG_MISSING_KEY', 'http.access[2].prefix', 8, 7],
      ['WP_CONFIG_INVALID_VALUE', 'http.access[3].prefix', 9, 9],
    ]);
    expect(errors[0]!.reason).toContain('"office" is not a CIDR');
    expect(errors[0]!.reason).toContain('or "all" for every client');
  });

  it('reads a string list from one string, and a command as a string or argv', () => {
    expect(load(['  trusted_subnets: 10.0.0.0/8']).config.http.trusted_subnets).toEqual(['10.0.0.0/8']);
    const argv = parseConfig(
      'server:\n  command: [php, -d, "memory_limit=1G", worker.php]\nhttp:\n  address: ":80"\n',
      { env: {} },
    );
    expect(argv.config.server.command).toEqual(['php', '-d', 'memory_limit=1G', 'worker.php']);
    const [empty] = errorsOf('server:\n  command: []\nhttp:\n  address: ":80"\n');
    expect(where(empty!)).toEqual(['WP_CONFIG_INVALID_VALUE', 'server.command', 2, 3]);
    const [item] = errorsOf(['  middleware: [static, {a: 1}]']);
    expect(item!.key).toBe('http.middleware[1]');
  });

  it('reads env and header values as text, whatever their YAML type', () => {
    const { config } = parseConfig(
      'server:\n  command: php w.php\n  env:\n    DEBUG: true\n    PORT: 8080\n    EMPTY:\nhttp:\n  address: ":80"\n',
      { env: {} },
    );
    expect(config.server.env).toEqual({ DEBUG: 'true', PORT: '8080', EMPTY: '' });
  });

  it('refuses a key with no value, and a scalar where a section goes', () => {
    const errors = errorsOf(['  pool:', '    max_jobs:', '  uploads: /tmp']);
    expect(errors.map((e) => [e.key, e.line, e.reason])).toEqual([
      ['http.pool.max_jobs', 6, 'has no value; write an integer >= 0, or remove the key'],
      ['http.uploads', 7, 'must be a section (a mapping of keys), got "/tmp"'],
    ]);
  });

  it("accepts an empty section, and RR's env list of one-key mappings", () => {
    const { config } = parseConfig(
      'server:\n  command: php w.php\n  env:\n    - A: "1"\n    - B: two\nhttp:\n  address: ":80"\n  uploads:\n',
      { env: {} },
    );
    expect(config.server.env).toEqual({ A: '1', B: 'two' });
    expect(config.http.uploads).toEqual({});
  });

  it('refuses a version other than RoadRunner v3; reads "2.7" as "3" with a warning, as RoadRunner runs it', () => {
    const [error] = errorsOf(['version: "2.2"']);
    expect(where(error!)).toEqual(['WP_CONFIG_INVALID_VALUE', 'version', 5, 1]);
    expect(error!.reason).toContain('RoadRunner v3');
    expect(load(['version: 3']).config.version).toBe('3');
    // before: exit 2 for the 2022-era files the current rr runs unchanged
    const old = load(['version: "2.7"']);
    expect(old.config.version).toBe('3');
    expect(old.warnings.map((w) => [w.key, w.line, w.message])).toEqual([
      ['version', 5, 'version "2.7" is read as "3" (the sections warmpool reads are the same): write version: "3"'],
    ]);
  });
});

describe('include', () => {
  it("RoadRunner's include is an error that says what to do instead (not that RoadRunner has no such key)", () => {
    const [error] = errorsOf(['include: [.rr.dev.yaml]']);
    expect(where(error!)).toEqual(['WP_CONFIG_UNKNOWN_KEY', 'include', 5, 1]);
    expect(error!.message).toContain('merge the included ones into it');
    expect(error!.message).not.toContain('not a RoadRunner v3 section');
  });
});

describe('acme email', () => {
  it('an address the CA would refuse is an error at its line, not a failure at run time', () => {
    const acme = (email: string) => [
      '  ssl:',
      '    address: 127.0.0.1:8443',
      '    acme:',
      `      email: ${email}`,
      '      domains: [a.test]',
    ];
    const [error] = errorsOf(acme('ops-at-example.com'));
    expect(where(error!)).toEqual(['WP_CONFIG_INVALID_VALUE', 'http.ssl.acme.email', 8, 7]);
    expect(error!.message).toContain('is not an email address: "ops-at-example.com" (like ops@example.com)');
    expect(() => load(acme('ops@example.com'))).not.toThrow();
  });
});

describe('acme eab', () => {
  const eab = (...lines: string[]) => [
    '  ssl:',
    '    address: 127.0.0.1:8443',
    '    acme:',
    '      domains: [a.test]',
    '      eab:',
    ...lines.map((line) => `        ${line}`),
  ];

  it('needs both the key ID and the MAC key, and a MAC key in base64url', () => {
    const [missing] = errorsOf(eab('key_id: kid-1'));
    expect(missing).toBeInstanceOf(MissingKeyError);
    expect(missing!.message).toContain('http.ssl.acme.eab.mac_key');
    const [bad] = errorsOf(eab('key_id: kid-1', 'mac_key: "not base64 at all"'));
    expect(where(bad!)).toEqual(['WP_CONFIG_INVALID_VALUE', 'http.ssl.acme.eab.mac_key', 11, 9]);
    expect(bad!.message).toContain('mac_key: ${ACME_EAB_MAC_KEY}');
    // a secret: the error says its length, never the value (it lands in a terminal or the journal)
    expect(bad!.message).not.toContain('not base64 at all');
    expect(bad!.message).toContain('got a value of 17 characters (not shown: a secret)');
    const ok = load(eab('key_id: kid-1', 'mac_key: zWNDZM6eQGHWpSRTPal5eIU_-w'));
    expect(ok.config.http.ssl?.acme?.eab).toEqual({ key_id: 'kid-1', mac_key: 'zWNDZM6eQGHWpSRTPal5eIU_-w' });
    // the standard base64 a dashboard may show is the same key (acme-client decodes either alphabet)
    const standard = load(eab('key_id: kid-1', 'mac_key: zWNDZM6eQGHWpSRTPal5eIU/+w=='));
    expect(standard.config.http.ssl?.acme?.eab?.mac_key).toBe('zWNDZM6eQGHWpSRTPal5eIU/+w==');
  });
});

describe('required keys', () => {
  it('server.command is required at the top level when there are no sites', () => {
    const [error] = errorsOf('server:\n  relay: pipes\nhttp:\n  address: ":80"\n');
    expect(error).toBeInstanceOf(MissingKeyError);
    expect(where(error!)).toEqual(['WP_CONFIG_MISSING_KEY', 'server.command', 1, 1]);
    expect(error!.reason).toContain('"php worker.php"');
  });

  it('http.pool.command stands in for server.command', () => {
    const { config } = parseConfig('http:\n  address: ":80"\n  pool:\n    command: php w.php\n', { env: {} });
    expect(config.http.pool?.command).toBe('php w.php');
  });

  it('sites may each bring their own command instead; the ones without are named', () => {
    const ok = parseConfig(
      'http:\n  address: ":80"\nsites:\n  - hosts: [a.test]\n    server: { command: php a.php }\n',
      { env: {} },
    );
    expect(ok.config.server).toEqual({});
    const [error] = errorsOf(
      'http:\n  address: ":80"\nsites:\n  - hosts: [a.test]\n    server: { command: php a.php }\n  - hosts: [b.test]\n',
    );
    expect(error!.reason).toContain('sites[1] has none');
  });

  it('a present section must have its required keys: named at the section', () => {
    const errors = errorsOf(['  ssl:', '    cert: /etc/ssl/site.crt', 'metrics: {}', 'sites:', '  - root: /srv/a']);
    expect(errors.map(where)).toEqual([
      ['WP_CONFIG_MISSING_KEY', 'http.ssl.key', 5, 3],
      ['WP_CONFIG_MISSING_KEY', 'metrics.address', 7, 1],
      ['WP_CONFIG_MISSING_KEY', 'sites[0].hosts', 9, 5],
    ]);
  });

  it('an empty section still lacks its required keys', () => {
    const [error] = errorsOf(['status:']);
    expect(where(error!)).toEqual(['WP_CONFIG_MISSING_KEY', 'status.address', 5, 1]);
  });
});

describe('sites', () => {
  it('loads several sites, each with its hosts, root and pool', async () => {
    const { config, warnings } = await loadConfigFile(fixture('sites.yaml'), { env: { SHOP_ROOT: '/srv/shop' } });
    expect(warnings).toEqual([]);
    expect(config.http.pool).toEqual({ num_workers: 2 });
    expect(config.sites).toEqual([
      {
        hosts: ['example.com', '*.example.com'],
        root: '/srv/example',
        server: { command: 'php worker.php', env: { APP_ENV: 'production' } },
        http: {
          max_request_size: 10,
          pool: { num_workers: 'auto', max_jobs: 500 },
          static: { dir: '/srv/example/public' },
        },
      },
      {
        hosts: ['shop.example.org'],
        root: '/srv/shop',
        server: {},
        http: { pool: { num_workers: 4, supervisor: { exec_ttl: '30s' } } },
      },
    ]);
  });

  it('refuses a host claimed by two sites, naming both places', () => {
    const errors = errorsOf([
      'sites:',
      '  - hosts: [a.test, example.com]',
      '  - hosts:',
      '      - b.test',
      '      - Example.COM',
    ]);
    expect(errors).toHaveLength(1);
    const error = errors[0] as DuplicateHostError;
    expect(error).toBeInstanceOf(DuplicateHostError);
    expect(where(error)).toEqual(['WP_CONFIG_DUPLICATE_HOST', 'sites[1].hosts[1]', 9, 9]);
    expect(error.host).toBe('example.com');
    expect(error.other).toEqual({ key: 'sites[0].hosts[1]', file: 'warmpool.yaml', line: 6, col: 21 });
    expect(error.message).toBe(
      'warmpool.yaml:9:9 sites[1].hosts[1]: host "example.com" is already served by sites[0].hosts[1] (warmpool.yaml:6:21); a host belongs to one site only',
    );
  });

  it('refuses a malformed host name', () => {
    const [error] = errorsOf(['sites:', '  - hosts: ["https://example.com/"]']);
    expect(where(error!)).toEqual(['WP_CONFIG_INVALID_VALUE', 'sites[0].hosts[0]', 6, 13]);
    expect(error!.reason).toContain('no scheme, port or path');
  });

  it('gives an empty server and http to a site that sets neither', () => {
    const { config } = load(['sites:', '  - hosts: a.test']);
    expect(config.sites).toEqual([{ hosts: ['a.test'], server: {}, http: {} }]);
  });

  it('empty lists read as null, like absent sections', () => {
    const { config } = load(['sites: []', 'proxy:']);
    expect(config.sites).toBeNull();
    expect(config.proxy).toBeNull();
  });
});

describe('proxy, cache, admin', () => {
  it('loads the warmpool extensions', () => {
    const { config } = load([
      'proxy:',
      '  - prefix: /api',
      '    upstream: http://127.0.0.1:9000',
      '    websocket: true',
      '  - { prefix: /ws, upstream: "https://ws.internal:8443/base" }',
      'cache: { enabled: true, max_age: 1s }',
      'admin:',
      '  socket: /run/warmpool.sock',
    ]);
    expect(config.proxy).toEqual([
      { prefix: '/api', upstream: 'http://127.0.0.1:9000', websocket: true },
      { prefix: '/ws', upstream: 'https://ws.internal:8443/base' },
    ]);
    expect(config.cache).toEqual({ enabled: true, max_age: '1s' });
    expect(config.admin).toEqual({ socket: '/run/warmpool.sock' });
  });

  it('refuses the same proxy prefix twice, naming the first', () => {
    const [error] = errorsOf([
      'proxy:',
      '  - { prefix: /api, upstream: "http://a:1" }',
      '  - { prefix: /api, upstream: "http://b:2" }',
    ]);
    expect(where(error!)).toEqual(['WP_CONFIG_INVALID_VALUE', 'proxy[1].prefix', 7, 7]);
    expect(error!.reason).toContain('proxy[0].prefix (warmpool.yaml:6:7)');
  });
});

describe('logs.channels', () => {
  it('warns of a channel warmpool does not have (a typo gets the nearest) and of per-channel outputs; the levels of its own channels are kept', () => {
    const { config, warnings } = load([
      'logs:',
      '  err_output: stderr',
      '  channels:',
      '    htttp: { level: debug }',
      '    jobs: { level: debug }',
      '    server: { level: warn, output: /var/log/php.log }',
    ]);
    expect(config.logs?.channels?.server?.level).toBe('warn');
    expect(warnings.map((w) => [w.key, w.line])).toEqual([
      ['logs.err_output', 6],
      ['logs.channels.htttp', 8],
      ['logs.channels.jobs', 9],
      ['logs.channels.server.output', 10],
    ]);
    expect(warnings[1]!.message).toContain('no such channel: ignored; did you mean "http"?');
    expect(warnings[2]!.message).toMatch(/^no such channel: ignored \(warmpool's channels: http, /);
    expect(warnings[3]!.message).toBe('ignored: every log channel writes to logs.output in the top-level format');
  });
});

describe('middleware', () => {
  it('keeps static, headers and gzip; warns about and skips the others', () => {
    const { config, warnings } = load([
      '  middleware: [static, sendfile, gzip, http_metrics]',
      '  static: { dir: public }',
    ]);
    expect(config.http.middleware).toEqual(['static', 'gzip']);
    expect(config.http.static).toEqual({ dir: 'public' });
    expect(warnings.map((w) => [w.key, w.line, w.col])).toEqual([
      ['http.middleware[1]', 5, 24],
      ['http.middleware[3]', 5, 40],
    ]);
    expect(warnings[0]!.message).toContain('"sendfile" is not supported');
  });

  it('drops http.static and http.headers when http.middleware does not list them, as RR does', () => {
    const { config, warnings } = load(['  static: { dir: public }', '  headers:', '    response: { X-A: b }']);
    expect(config.http.static).toBeUndefined();
    expect(config.http.headers).toBeUndefined();
    expect(warnings.map((w) => [w.key, w.line])).toEqual([
      ['http.static', 5],
      ['http.headers', 6],
    ]);
    expect(warnings[0]!.message).toContain('add "static" to http.middleware');
  });

  it('a site uses its own middleware list, or else the top-level one', () => {
    const { config, warnings } = load([
      '  middleware: [static]',
      'sites:',
      '  - hosts: [a.test]',
      '    http:',
      '      static: { dir: a }',
      '  - hosts: [b.test]',
      '    http:',
      '      middleware: [gzip]',
      '      static: { dir: b }',
    ]);
    expect(config.sites?.[0]?.http.static).toEqual({ dir: 'a' });
    expect(config.sites?.[1]?.http.static).toBeUndefined();
    expect(warnings.map((w) => w.key)).toEqual(['sites[1].http.static']);
  });
});

describe('unsupported RoadRunner keys', () => {
  it('are warnings naming the key, and their content is not checked', () => {
    const { warnings } = load([
      '  pool:',
      '    dynamic_allocator:',
      '      max_workers: lots',
      'reload:',
      '  interval: ${RELOAD_EVERY}',
      'temporal: {}',
    ]);
    expect(warnings.map((w) => [w.key, w.line, w.col])).toEqual([
      ['http.pool.dynamic_allocator', 6, 5],
      ['reload', 8, 1],
      ['temporal', 10, 1],
    ]);
  });

  it('are warned about inside sites too', () => {
    const { warnings } = load([
      'sites:',
      '  - hosts: [a.test]',
      '    server:',
      '      on_init: { command: "php migrate.php" }',
    ]);
    expect(warnings.map((w) => [w.key, w.line])).toEqual([['sites[0].server.on_init', 8]]);
  });
});

describe('env variables in the walk', () => {
  it('an unset variable names the key, line and variable', () => {
    const [error] = errorsOf(['sites:', '  - hosts: [a.test]', '    root: /srv/${SITE}/app']);
    expect(error).toBeInstanceOf(UndefinedVariableError);
    expect(where(error!)).toEqual(['WP_CONFIG_UNDEFINED_VARIABLE', 'sites[0].root', 7, 5]);
    expect((error as UndefinedVariableError).variable).toBe('SITE');
    expect(error!.details.variable).toBe('SITE');
  });
});

describe('edit distance', () => {
  it('counts insertions, deletions, substitutions and transpositions', () => {
    expect(editDistance('num_worker', 'num_workers')).toBe(1);
    expect(editDistance('adress', 'address')).toBe(1);
    expect(editDistance('raw_bdoy', 'raw_body')).toBe(1);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('same', 'same')).toBe(0);
  });

  it("suggests only what is close for the name's length", () => {
    expect(closest('num_worker', ['max_jobs', 'num_workers'])).toBe('num_workers');
    expect(closest('ttl', ['idle_ttl', 'exec_ttl'])).toBeNull();
    expect(closest('zzz', [])).toBeNull();
  });
});
