import { describe, expect, it } from 'vitest';
import { InvalidPoolOptionError } from '../../src/errors.js';
import {
  CGI_KEPT_ENV,
  RR_COMPAT_VERSION,
  buildCgiEnv,
  buildWorkerEnv,
  parseCommand,
} from '../../src/worker/command.js';

describe('parseCommand', () => {
  it.each<[string, string[]]>([
    ['php worker.php', ['php', 'worker.php']],
    ['php', ['php']],
    ['  php   -d  memory_limit=1G   worker.php  ', ['php', '-d', 'memory_limit=1G', 'worker.php']],
    ['php\tworker.php\n', ['php', 'worker.php']],
    ['php "my worker.php"', ['php', 'my worker.php']],
    ["php 'my worker.php'", ['php', 'my worker.php']],
    ['php a\\ b.php', ['php', 'a b.php']],
    ['php "say \\"hi\\"".php', ['php', 'say "hi".php']],
    ["php 'a\\b'", ['php', 'a\\b']],
    ['php "it\'s"', ['php', "it's"]],
    ['php \'say "hi"\'', ['php', 'say "hi"']],
    ['php ""', ['php', '']],
    ["php '' x", ['php', '', 'x']],
    ['php x"y z"w', ['php', 'xy zw']],
    ['php -d "error_log=/var/log/php errors.log" w.php', ['php', '-d', 'error_log=/var/log/php errors.log', 'w.php']],
    [
      '/usr/bin/php8.3 -dopcache.enable_cli=1 /srv/app/worker.php',
      ['/usr/bin/php8.3', '-dopcache.enable_cli=1', '/srv/app/worker.php'],
    ],
    ['php $HOME/w.php', ['php', '$HOME/w.php']],
  ])('splits %j', (command, argv) => {
    expect(parseCommand(command)).toEqual(argv);
  });

  it('passes an argv array through as a copy', () => {
    const argv = ['php', 'my worker.php', '"quoted"', ''] as const;
    const parsed = parseCommand(argv);
    expect(parsed).toEqual(['php', 'my worker.php', '"quoted"', '']);
    expect(parsed).not.toBe(argv);
  });

  it.each<[string, string | readonly string[]]>([
    ['an empty string', ''],
    ['only spaces', '   \t '],
    ['an empty array', []],
    ['an array with a non-string', ['php', 1 as unknown as string]],
  ])('rejects %s', (_name, command) => {
    let error: unknown;
    try {
      parseCommand(command);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidPoolOptionError);
    expect((error as InvalidPoolOptionError).details.key).toBe('command');
  });

  it('rejects an unterminated quote, naming the quote', () => {
    expect(() => parseCommand('php "worker.php')).toThrow(InvalidPoolOptionError);
    expect(() => parseCommand('php "worker.php')).toThrow(/unterminated " quote/);
    expect(() => parseCommand("php 'worker.php")).toThrow(/unterminated ' quote/);
  });
});

describe('buildWorkerEnv', () => {
  const base = { PATH: '/usr/bin', HOME: '/home/app', APP: 'shop', WARMPOOL_RELAY_FDS: 'stale' };
  const pipes = { relay: 'pipes', mode: 'http', extraFds: false };

  it('starts from the base environment', () => {
    const env = buildWorkerEnv({}, pipes, base);
    expect(env.PATH).toBe('/usr/bin');
    expect(env.HOME).toBe('/home/app');
  });

  it('upper-cases user keys', () => {
    const env = buildWorkerEnv({ app_env: 'prod', Mixed_Case: 'x' }, pipes, base);
    expect(env.APP_ENV).toBe('prod');
    expect(env.MIXED_CASE).toBe('x');
    expect(env.app_env).toBeUndefined();
  });

  it('expands $VAR and ${VAR} from the base environment', () => {
    const env = buildWorkerEnv(
      { cache: '$HOME/cache', log: '${HOME}/log/${APP}.log', both: '$APP-${APP}' },
      pipes,
      base,
    );
    expect(env.CACHE).toBe('/home/app/cache');
    expect(env.LOG).toBe('/home/app/log/shop.log');
    expect(env.BOTH).toBe('shop-shop');
  });

  it('expands unknown variables to an empty string', () => {
    expect(buildWorkerEnv({ x: 'a$NOPE/b${NOPE2}c' }, pipes, base).X).toBe('a/bc');
  });

  it('expands from the base, not from other user entries', () => {
    const env = buildWorkerEnv({ first: 'one', second: '$FIRST' }, pipes, base);
    expect(env.FIRST).toBe('one');
    expect(env.SECOND).toBe('');
  });

  it('lets a user entry override a base variable', () => {
    expect(buildWorkerEnv({ path: '/opt/php/bin:$PATH' }, pipes, base).PATH).toBe('/opt/php/bin:/usr/bin');
  });

  it('sets RR_RELAY, RR_MODE and RR_VERSION', () => {
    const env = buildWorkerEnv({}, { relay: 'tcp://127.0.0.1:7000', mode: 'jobs', extraFds: false }, base);
    expect(env.RR_RELAY).toBe('tcp://127.0.0.1:7000');
    expect(env.RR_MODE).toBe('jobs');
    expect(env.RR_VERSION).toBe(RR_COMPAT_VERSION);
    expect(RR_COMPAT_VERSION).toMatch(/^20\d\d\.\d+\.\d+$/);
    expect(env.WARMPOOL).toBe('1');
  });

  it('does not let user env override the RR_* variables workers depend on', () => {
    const env = buildWorkerEnv({ rr_relay: 'unix:///x', rr_mode: 'grpc' }, pipes, base);
    expect(env.RR_RELAY).toBe('pipes');
    expect(env.RR_MODE).toBe('http');
  });

  it('sets WARMPOOL_RELAY_FDS only when the protocol runs on extra fds', () => {
    expect(buildWorkerEnv({}, { relay: 'pipes', mode: 'http', extraFds: true }, base).WARMPOOL_RELAY_FDS).toBe('3,4');
    const env = buildWorkerEnv({}, pipes, base);
    expect(env.WARMPOOL_RELAY_FDS).toBeUndefined();
    expect('WARMPOOL_RELAY_FDS' in env).toBe(false);
  });

  it('does not modify the base environment', () => {
    const copy = { ...base };
    buildWorkerEnv({ extra: '1' }, { relay: 'pipes', mode: 'http', extraFds: true }, base);
    expect(base).toEqual(copy);
  });

  it('defaults the base to process.env', () => {
    const env = buildWorkerEnv({}, pipes);
    expect(env.PATH).toBe(process.env.PATH);
  });
});

describe('buildCgiEnv (php-cgi workers)', () => {
  const base = {
    PATH: '/usr/bin',
    TMPDIR: '/var/tmp',
    PHPRC: '/etc/php/app.ini',
    PHP_INI_SCAN_DIR: '',
    HOME: '/home/app',
    DATABASE_PASSWORD: 'hunter2',
    PHP_FCGI_CHILDREN: '8',
  };

  it("clears the server's environment by default, as php-fpm's clear_env: only where programs, temp space and php.ini are", () => {
    expect(buildCgiEnv({}, base)).toEqual({
      PATH: '/usr/bin',
      TMPDIR: '/var/tmp',
      PHPRC: '/etc/php/app.ini',
      PHP_INI_SCAN_DIR: '',
      PHP_FCGI_CHILDREN: '0',
      PHP_FCGI_MAX_REQUESTS: '0',
      WARMPOOL: '1',
    });
    expect([...CGI_KEPT_ENV].sort()).toEqual(['PATH', 'PHPRC', 'PHP_INI_SCAN_DIR', 'TMPDIR']);
  });

  it("keeps what env names, expanded from the whole server environment (php-fpm's env[NAME] = $NAME)", () => {
    const env = buildCgiEnv({ db_password: '$DATABASE_PASSWORD', app_home: '${HOME}/app' }, base);
    expect([env.DB_PASSWORD, env.APP_HOME, env.DATABASE_PASSWORD, env.HOME]).toEqual([
      'hunter2',
      '/home/app/app',
      undefined,
      undefined,
    ]);
  });

  it("passes the whole environment with clearEnv false, the pool's variables still winning", () => {
    const env = buildCgiEnv({ extra: '1' }, base, false);
    expect(env).toMatchObject({ HOME: '/home/app', DATABASE_PASSWORD: 'hunter2', EXTRA: '1', PHP_FCGI_CHILDREN: '0' });
  });

  it('leaves out kept names the server does not have, and never changes the base', () => {
    const copy = { ...base };
    expect(Object.keys(buildCgiEnv({}, { HOME: '/root' })).sort()).toEqual([
      'PHP_FCGI_CHILDREN',
      'PHP_FCGI_MAX_REQUESTS',
      'WARMPOOL',
    ]);
    buildCgiEnv({ x: '1' }, base);
    expect(base).toEqual(copy);
  });
});
