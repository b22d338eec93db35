// `-o key=value` overrides (RoadRunner's flag): applied over the file before it is checked, so an
// overridden value is typed, expanded and refused like one in the file, and its errors name the
// argument itself instead of a line.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BadOverrideError,
  ConfigError,
  formatPosition,
  loadConfigSections,
  parseConfig,
  parseOverride,
  type LocatedConfigError,
} from '../src/index.js';

const BASE = 'http:\n  address: ":8080"\nserver:\n  command: php worker.php\n';

function load(text: string, overrides: string[], env: Record<string, string> = {}) {
  return parseConfig(text, { file: '.rr.yaml', env, overrides });
}

function errorsOf(text: string, overrides: string[]): LocatedConfigError[] {
  try {
    load(text, overrides);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.errors];
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('-o overrides', () => {
  it("Octane's whole argument list over an empty .rr.yaml (laravel/octane StartRoadRunnerCommand)", () => {
    const { config, warnings } = load('', [
      'version=3',
      'http.address=127.0.0.1:8000',
      'server.command=/usr/bin/php,/app/vendor/bin/roadrunner-worker',
      'http.pool.num_workers=0',
      'http.pool.max_jobs=500',
      'http.pool.supervisor.exec_ttl=30s',
      'http.static.dir=/app/public',
      'http.middleware=static',
      'logs.mode=production',
      'logs.level=warn',
      'logs.output=stdout',
      'logs.encoding=json',
    ]);
    expect(warnings).toEqual([]);
    expect(config.version).toBe('3');
    expect(config.http.address).toBe('127.0.0.1:8000');
    expect(config.server.command).toEqual(['/usr/bin/php', '/app/vendor/bin/roadrunner-worker']);
    // num_workers: 0 is RoadRunner's "CPU count", which is the pool's default
    expect(config.http.pool).toEqual({ max_jobs: 500, supervisor: { exec_ttl: '30s' } });
    expect(config.http.static).toEqual({ dir: '/app/public' });
    expect(config.http.middleware).toEqual(['static']);
    expect(config.logs).toEqual({ mode: 'production', level: 'warn', output: 'stdout', encoding: 'json' });
  });

  it('types scalars as the key wants them: integers, numbers, booleans, durations, sizes', () => {
    const { config } = load(BASE, [
      'http.pool.num_workers=4',
      'http.pool.headroom=0.5',
      'http.raw_body=true',
      'http.pool.allocate_timeout=1m30s',
      'http.max_request_size=12',
      'cache.max_bytes=64m',
    ]);
    expect(config.http.pool?.num_workers).toBe(4);
    expect(config.http.pool?.headroom).toBe(0.5);
    expect(config.http.raw_body).toBe(true);
    expect(config.http.pool?.allocate_timeout).toBe('1m30s');
    expect(config.http.max_request_size).toBe(12);
    expect(config.cache?.max_bytes).toBe(64 * 1024 * 1024);
  });

  it('reads a comma-separated value as a list where the key takes one, and keeps one string otherwise', () => {
    const { config } = load(BASE, ['http.middleware=static, gzip', 'http.static.forbid=.php']);
    expect(config.http.middleware).toEqual(['static', 'gzip']);
    expect(config.http.static?.forbid).toEqual(['.php']);
    expect(load(BASE, ['server.command=php -d x=1 worker.php']).config.server.command).toBe('php -d x=1 worker.php');
  });

  it('merges into sections the file has, wins over the file, and the last -o of a key wins', () => {
    const file = `${BASE}  env:\n    A: "1"\nhttp_keep: 1\n`.replace('http_keep: 1\n', '');
    const { config } = load(`${file}logs:\n  level: debug\n  mode: production\n`, [
      'logs.level=info',
      'server.env.B=2',
      'http.pool.max_jobs=10',
      'http.pool.max_jobs=20',
    ]);
    expect(config.logs).toEqual({ level: 'info', mode: 'production' });
    expect(config.server.env).toEqual({ A: '1', B: '2' });
    expect(config.server.command).toBe('php worker.php');
    expect(config.http.address).toBe(':8080');
    expect(config.http.pool?.max_jobs).toBe(20);
  });

  it('strips quotes around the value and expands ${VAR} in it, as RoadRunner does', () => {
    const { config } = load(BASE, ['http.address="127.0.0.1:${PORT:-9000}"', "logs.level='error'"], { PORT: '8001' });
    expect(config.http.address).toBe('127.0.0.1:8001');
    expect(config.logs?.level).toBe('error');
    expect(parseOverride('`a.b`=`x`')).toEqual({ arg: '`a.b`=`x`', key: 'a.b`', value: 'x' });
    expect(parseOverride('a.b="say \\"hi\\" twice"').value).toBe('say "hi" twice');
  });

  it('a bad value names its -o argument instead of a line', () => {
    const [error, ...rest] = errorsOf(BASE, ['http.pool.num_workers=abc']);
    expect(rest).toEqual([]);
    expect(error!.code).toBe('WP_CONFIG_INVALID_VALUE');
    expect(error!.key).toBe('http.pool.num_workers');
    expect(error!.message).toBe('-o http.pool.num_workers=abc: must be an integer from 0 to 500 or "auto", got "abc"');
    expect(errorsOf(BASE, ['http.address=nope'])[0]!.message).toMatch(/^-o http\.address=nope: must be an address/);
    expect(errorsOf(BASE, ['logs.level=loud'])[0]!.message).toMatch(/^-o logs\.level=loud: must be one of "debug"/);
  });

  it('an unknown key is refused with the nearest known one, at its -o argument', () => {
    const [error] = errorsOf(BASE, ['http.pool.num_worker=4']);
    expect(error).toMatchObject({ code: 'WP_CONFIG_UNKNOWN_KEY', key: 'http.pool.num_worker', line: 0 });
    expect(error!.message).toBe('-o http.pool.num_worker=4: unknown key; did you mean "http.pool.num_workers"?');
  });

  it('errors from the file and from -o are reported together, the -o ones first', () => {
    const errors = errorsOf(`${BASE}  relay: bogus\n`, ['http.pool.max_jobs=-1']);
    expect(errors.map((e) => e.message)).toEqual([
      '-o http.pool.max_jobs=-1: must be an integer >= 0, got "-1"',
      expect.stringMatching(/^\.rr\.yaml:5:3 server\.relay: must be "pipes"/),
    ]);
  });

  it('malformed arguments are WP_CONFIG_BAD_OVERRIDE, all of them at once', () => {
    const errors = errorsOf(BASE, ['http.address', 'http.address=', '=3', 'sites[0].root=/x']);
    expect(errors.every((e) => e instanceof BadOverrideError && e.code === 'WP_CONFIG_BAD_OVERRIDE')).toBe(true);
    expect(errors.map((e) => e.message)).toEqual([
      '-o http.address: not key=value; write -o key=value, e.g. -o http.pool.num_workers=4',
      '-o http.address=: the value is empty; write -o key=value, e.g. -o http.pool.num_workers=4',
      '-o =3: the key is empty; write -o key=value, e.g. -o http.pool.num_workers=4',
      '-o sites[0].root=/x: "sites[0].root" is not a dotted key path like http.pool.num_workers (list items cannot be set with -o)',
    ]);
    // a list's item, with the list in the file or not; a number that is a map's key is a key
    for (const file of [`${BASE}sites:\n  - hosts: [a.example]\n`, BASE]) {
      const [list] = errorsOf(file, ['sites.0.root=/x']);
      expect(list!.message).toBe(
        '-o sites.0.root=/x: sites is a list: its items cannot be set with -o (edit the file)',
      );
    }
    expect(errorsOf(BASE, ['http.ssl.certificates.1.cert=/x'])[0]!.message).toBe(
      '-o http.ssl.certificates.1.cert=/x: http.ssl.certificates is a list: its items cannot be set with -o (edit the file)',
    );
  });

  it('an unsupported RoadRunner key set with -o is a warning at its argument, never a failure', () => {
    const { warnings } = load(BASE, ['reload.interval=1s']);
    expect(warnings).toEqual([expect.objectContaining({ key: 'reload', file: '-o reload.interval=1s', line: 0 })]);
  });

  it('leaves anchors and merged mappings alone: only the overridden place changes', () => {
    const text = `x-pool: &pool\n  num_workers: 2\n  max_jobs: 5\nhttp:\n  address: ":8080"\n  pool:\n    <<: *pool\nsites:\n  - hosts: [a.example]\n    http:\n      pool: *pool\nserver:\n  command: php w.php\n`;
    const { config } = load(text, ['http.pool.max_jobs=9']);
    expect(config.http.pool).toEqual({ num_workers: 2, max_jobs: 9 });
    expect(config.sites?.[0]?.http.pool).toEqual({ num_workers: 2, max_jobs: 5 });
  });

  it('positionOf answers with the argument for an overridden key, and formatPosition prints it', () => {
    const loaded = load(BASE, ['http.pool.max_jobs=3']);
    const at = loaded.positionOf('http.pool.max_jobs')!;
    expect(at).toEqual({
      file: '-o http.pool.max_jobs=3',
      line: 0,
      col: 0,
      override: 'http.pool.max_jobs',
    });
    expect(formatPosition(at)).toBe('-o http.pool.max_jobs=3');
    expect(formatPosition(loaded.positionOf('http.address')!)).toBe('.rr.yaml:2:3');
    expect(loaded.overrides).toEqual(['http.pool.max_jobs=3']);
  });
});

describe('loadConfigSections: what the admin commands read', () => {
  it('reads only the named sections, from a file that does not describe a whole server, with -o over it', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'wp-sections-')), '.rr.yaml');
    writeFileSync(file, 'http:\n  address: nonsense\nadmin:\n  socket: /run/a.sock\n');
    const fromFile = await loadConfigSections(file, ['admin'], { env: {} });
    expect(fromFile).toEqual({
      sections: { admin: { socket: '/run/a.sock' } },
      file,
      errors: [],
      positions: expect.any(Map),
    });
    // where the key sits, for a message naming the line to change
    expect(fromFile.positions.get('admin.socket')).toMatchObject({ file, line: 4, col: 3 });
    const overridden = await loadConfigSections(file, ['admin'], {
      env: {},
      overrides: ['admin.socket=/run/b.sock', 'http.pool.num_workers=abc'],
    });
    expect(overridden.sections.admin).toEqual({ socket: '/run/b.sock' });
    expect(overridden.errors).toEqual([]);
    expect(overridden.positions.get('admin.socket')).toMatchObject({ file: '-o admin.socket=/run/b.sock', line: 0 });
  });

  it('reports a bad -o of those sections with its argument; no file at all is no error', async () => {
    const bad = await loadConfigSections(null, ['admin'], { env: {}, overrides: ['admin.socket=', 'admin.sockt=/x'] });
    expect(bad.errors.map((error) => error.message)).toEqual([
      '-o admin.socket=: the value is empty; write -o key=value, e.g. -o http.pool.num_workers=4',
    ]);
    const typo = await loadConfigSections(null, ['admin'], { env: {}, overrides: ['admin.sockt=/x'] });
    expect(typo.errors.map((error) => error.message)).toEqual([
      '-o admin.sockt=/x: unknown key; did you mean "admin.socket"?',
    ]);
    expect(await loadConfigSections(null, ['admin'], { env: {} })).toEqual({
      sections: {},
      file: null,
      errors: [],
      positions: new Map(),
    });
  });
});
