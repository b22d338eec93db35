// Loading whole files: RoadRunner's sample loads unchanged, syntax errors carry file:line:col,
// positionOf maps keys back to lines, and anchors/merge keys work.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  ConfigFileError,
  ConfigSyntaxError,
  loadConfigFile,
  parseConfig,
  type LocatedConfigError,
} from '../src/index.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

function errorsOf(text: string): LocatedConfigError[] {
  try {
    parseConfig(text, { file: 'warmpool.yaml', env: {} });
  } catch (error) {
    if (error instanceof ConfigError) return [...error.errors];
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('RoadRunner sample .rr.yaml', () => {
  it('loads unchanged: supported keys typed, RR durations kept as the pool reads them', async () => {
    const { config } = await loadConfigFile(fixture('rr-sample.rr.yaml'), { env: {} });
    expect(config.version).toBe('3');
    expect(config.server).toEqual({ command: 'php psr-worker.php', env: { XDEBUG_SESSION: '1' }, relay: 'pipes' });
    expect(config.http.address).toBe('127.0.0.1:8080');
    expect(config.http.max_request_size).toBe(256);
    expect(config.http.middleware).toEqual(['static', 'gzip', 'headers']);
    expect(config.http.trusted_subnets).toContain('fc00::/7');
    expect(config.http.uploads).toEqual({
      dir: '/tmp',
      forbid: ['.php', '.exe', '.bat', '.sh'],
      allow: ['.html', '.aaa'],
    });
    expect(config.http.headers?.cors?.max_age).toBe(600);
    expect(config.http.headers?.response).toEqual({ 'X-Powered-By': 'RoadRunner' });
    expect(config.http.static).toMatchObject({
      dir: '.',
      forbid: [''],
      calculate_etag: false,
      weak: false,
      allow: ['.txt', '.php'],
    });
    expect(config.http.pool).toEqual({
      debug: false,
      max_jobs: 64,
      allocate_timeout: '60s',
      reset_timeout: '60s',
      destroy_timeout: '60s',
      supervisor: { watch_tick: '1s', ttl: '0s', idle_ttl: '10s', max_worker_memory: 128, exec_ttl: '60s' },
    });
    expect(config.http.ssl).toEqual({
      address: '127.0.0.1:443',
      redirect: false,
      cert: '/ssl/server.crt',
      key: '/ssl/server.key',
      acme: {
        certs_dir: 'rr_le_certs',
        email: 'you-email-here@email',
        alt_http_port: 80,
        alt_tlsalpn_port: 443,
        challenge_type: 'http-01',
        use_production_endpoint: true,
        domains: ['your-cool-domain.here'],
      },
    });
    expect(config.http.http2).toEqual({ h2c: false, max_concurrent_streams: 128 });
    expect(config.status).toEqual({ address: '127.0.0.1:2114', unavailable_status_code: 503 });
    expect(config.metrics).toEqual({ address: '127.0.0.1:2112' });
    expect(config.logs?.channels?.http).toEqual({
      mode: 'production',
      level: 'panic',
      encoding: 'console',
      output: 'stdout',
    });
    expect(config.sites).toBeNull();
    expect(config.proxy).toBeNull();
    expect(config.cache).toBeNull();
    expect(config.admin).toBeNull();
  });

  it('drops RR\'s "not set" spellings: num_workers: 0 and user/group ""', async () => {
    const { config } = await loadConfigFile(fixture('rr-sample.rr.yaml'), { env: {} });
    expect(config.http.pool).not.toHaveProperty('num_workers');
    expect(config.server).not.toHaveProperty('user');
    expect(config.server).not.toHaveProperty('group');
  });

  it('warns about each unsupported key by name and line, without failing', async () => {
    const { warnings } = await loadConfigFile(fixture('rr-sample.rr.yaml'), { env: {} });
    expect(warnings.map((w) => [w.key, w.line])).toEqual([
      ['server.relay_timeout', 15],
      ['logs.err_output', 22],
      ['logs.channels.http.mode', 25],
      ['logs.channels.http.encoding', 27],
      ['logs.channels.http.output', 28],
      ['logs.channels.server.mode', 30],
      ['logs.channels.server.encoding', 32],
      ['logs.channels.server.output', 33],
      ['http.internal_error_code', 37],
      ['http.ssl.root_ca', 103],
      ['http.fcgi', 104],
      ['reload', 110],
      ['jobs', 125],
      ['kv', 131],
    ]);
    for (const warning of warnings) {
      expect(warning.file).toBe(fixture('rr-sample.rr.yaml'));
      expect(warning.message).toMatch(
        warning.key.startsWith('logs.')
          ? /^ignored: every log channel writes to logs\.output in the top-level format$/
          : /^is not supported by warmpool and is ignored: \S/,
      );
    }
  });
});

describe('YAML syntax errors', () => {
  it('become ConfigSyntaxError with file:line:col', () => {
    const errors = errorsOf('server:\n  command: php worker.php\n env: {}\nhttp:\n  address: :8080\n');
    expect(errors).toHaveLength(1);
    const error = errors[0]!;
    expect(error).toBeInstanceOf(ConfigSyntaxError);
    expect(error.code).toBe('WP_CONFIG_SYNTAX');
    expect([error.file, error.line, error.col]).toEqual(['warmpool.yaml', 3, 1]);
    expect(error.message).toMatch(/^warmpool\.yaml:3:1 YAML syntax: /);
  });

  it('say once, with what to do, that a key indented too deep reads as part of the value above it', () => {
    const errors = errorsOf('http:\n  address: 127.0.0.1:8080\n   pool:\n    num_workers: 2\n');
    expect(errors.map((e) => [e.code, e.line, e.col])).toEqual([['WP_CONFIG_SYNTAX', 2, 12]]);
    expect(errors[0]!.reason).toBe(
      'YAML syntax: Nested mappings are not allowed in compact mappings: a line below this value is indented deeper than the keys beside it, so it reads as part of this value; indent it as its neighbours (sections use 2 spaces a level)',
    );
  });

  it('point a quote never closed at the line it opens on, not the end of the file', () => {
    const errors = errorsOf(
      'version: "3"\nserver:\n  command: "php worker.php\nhttp:\n  address: 127.0.0.1:8080\n  pool:\n    num_workers: 2\n',
    );
    // before: 8:1, the end of the file
    expect(errors.map((e) => [e.line, e.col, e.reason])).toEqual([
      [
        3,
        12,
        'YAML syntax: the quote " opened here is never closed (the rest of the file reads as this value); close it',
      ],
    ]);
    const single = errorsOf("server:\n  command: 'php it''s.php\nhttp:\n  address: :8080\n");
    expect(single.map((e) => [e.line, e.col])).toEqual([[2, 12]]);
  });

  it('name a duplicate key', () => {
    const errors = errorsOf('http:\n  address: :8080\n  address: :9090\n');
    expect(errors.map((e) => [e.code, e.line, e.col])).toEqual([['WP_CONFIG_SYNTAX', 3, 3]]);
    expect(errors[0]!.reason).toContain('duplicate key "address"');
  });

  it('refuse several documents in one file', () => {
    const errors = errorsOf('http:\n  address: :8080\n---\nhttp: {}\n');
    expect(errors[0]!.reason).toContain('several YAML documents');
    expect(errors[0]!.line).toBe(3);
  });

  it('report an unclosed quote', () => {
    const errors = errorsOf('server:\n  command: "php worker.php\nhttp:\n  address: :8080\n');
    expect(errors[0]).toBeInstanceOf(ConfigSyntaxError);
    expect(errors[0]!.reason).toMatch(/quote/i);
  });

  it('report an alias to an anchor that does not exist, at the alias', () => {
    const errors = errorsOf('server:\n  command: php w.php\nhttp:\n  address: :8080\n  pool: *nope\n');
    expect(errors.map((e) => [e.code, e.key, e.line, e.col])).toEqual([['WP_CONFIG_SYNTAX', 'http.pool', 5, 3]]);
    expect(errors[0]!.reason).toContain('*nope');
  });
});

describe('whole-file cases', () => {
  it('an empty file lacks server.command and http.address, reported at 1:1', () => {
    const errors = errorsOf('');
    expect(errors.map((e) => [e.code, e.key, e.line, e.col])).toEqual([
      ['WP_CONFIG_MISSING_KEY', 'http.address', 1, 1],
      ['WP_CONFIG_MISSING_KEY', 'server.command', 1, 1],
    ]);
  });

  it('a file that is not a mapping is an invalid value at 1:1', () => {
    const errors = errorsOf('- a\n- b\n');
    expect(errors[0]!.code).toBe('WP_CONFIG_INVALID_VALUE');
    expect([errors[0]!.line, errors[0]!.col]).toEqual([1, 1]);
  });

  it('anchors, aliases and merge keys work; x-* top-level keys hold them', () => {
    const { config, warnings } = parseConfig(
      [
        'x-pool: &pool',
        '  num_workers: 2',
        '  max_jobs: 10',
        'server:',
        '  command: php worker.php',
        'http:',
        '  address: ":8080"',
        '  pool:',
        '    <<: *pool',
        '    max_jobs: 20',
        'sites:',
        '  - hosts: [a.test]',
        '    http:',
        '      pool: *pool',
      ].join('\n'),
      { env: {} },
    );
    expect(warnings).toEqual([]);
    expect(config.http.pool).toEqual({ max_jobs: 20, num_workers: 2 });
    expect(config.sites?.[0]?.http.pool).toEqual({ num_workers: 2, max_jobs: 10 });
  });
});

describe('aliases that loop', () => {
  it('an alias to its own ancestor is an error, not a hang', () => {
    const errors = errorsOf('server:\n  command: php w.php\nhttp: &h\n  address: ":80"\n  uploads: *h\n');
    expect(errors.map((e) => [e.key, e.line, e.reason])).toEqual([
      ['http.uploads', 5, 'refers to itself through an alias'],
    ]);
  });

  it('a merge key into its own mapping is an error, not a stack overflow', () => {
    const errors = errorsOf(
      'server:\n  command: php w.php\nhttp:\n  address: ":80"\n  pool: &p\n    max_jobs: 1\n    <<: *p\n',
    );
    expect(errors.map((e) => [e.key, e.line, e.col, e.reason])).toEqual([
      ['http.pool', 7, 5, 'the merge key << refers to the mapping it is in'],
    ]);
  });
});

describe('positionOf', () => {
  it('maps key paths (and list items) back to file:line:col', async () => {
    const file = fixture('sites.yaml');
    const loaded = await loadConfigFile(file, { env: { SHOP_ROOT: '/srv/shop' } });
    expect(loaded.file).toBe(file);
    expect(loaded.positionOf('http.pool.num_workers')).toEqual({ file, line: 9, col: 5 });
    expect(loaded.positionOf('sites[0].http.pool.max_jobs')).toEqual({ file, line: 21, col: 9 });
    expect(loaded.positionOf('sites.1.http.pool.supervisor.exec_ttl')).toEqual({ file, line: 31, col: 11 });
    expect(loaded.positionOf('sites[1].hosts[0]')).toEqual({ file, line: 25, col: 9 });
    expect(loaded.positionOf('sites[1]')).toEqual({ file, line: 24, col: 5 });
  });

  it('is null for a key the file does not set, unless the nearest ancestor is asked for', () => {
    const loaded = parseConfig('server:\n  command: php w.php\nhttp:\n  address: :8080\n  pool:\n    max_jobs: 1\n', {
      env: {},
    });
    expect(loaded.positionOf('http.pool.supervisor.ttl')).toBeNull();
    expect(loaded.positionOf('http.pool.supervisor.ttl', { nearest: true })).toEqual({
      file: 'warmpool.yaml',
      line: 5,
      col: 3,
    });
    expect(loaded.positionOf('cache.max_bytes', { nearest: true })).toBeNull();
  });
});

describe('loadConfigFile', () => {
  it('names the file in every message', async () => {
    const error = await loadConfigFile(fixture('mistakes.yaml'), { env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    for (const line of (error as ConfigError).message.split('\n').slice(1))
      expect(line.trim().startsWith(`${fixture('mistakes.yaml')}:`)).toBe(true);
  });

  it('throws ConfigFileError for a missing file, saying what to do', async () => {
    const error = await loadConfigFile('/nonexistent/warmpool.yaml').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigFileError);
    expect((error as ConfigFileError).code).toBe('WP_CONFIG_FILE_UNREADABLE');
    expect((error as ConfigFileError).message).toContain('/nonexistent/warmpool.yaml');
    expect((error as ConfigFileError).message).toContain('-c');
  });

  it('throws ConfigFileError for a directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warmpool-config-'));
    const error = await loadConfigFile(dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigFileError);
    expect((error as Error).message).toContain('directory');
  });

  it('reads process.env when no env is given', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warmpool-config-'));
    const path = join(dir, 'warmpool.yaml');
    writeFileSync(path, 'server:\n  command: ${WARMPOOL_CONFIG_TEST_CMD}\nhttp:\n  address: :8080\n');
    process.env.WARMPOOL_CONFIG_TEST_CMD = 'php from-env.php';
    try {
      const { config } = await loadConfigFile(path);
      expect(config.server.command).toBe('php from-env.php');
    } finally {
      delete process.env.WARMPOOL_CONFIG_TEST_CMD;
    }
  });
});
