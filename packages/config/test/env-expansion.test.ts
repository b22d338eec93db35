// ${VAR} / ${VAR:-default} / $$ expansion: the function itself, then through parseConfig (values
// only, after parsing, typed by the key that holds them, and inside sites[]).
import { describe, expect, it } from 'vitest';
import { expandVariables } from '../src/env-expansion.js';
import {
  ConfigError,
  InvalidValueError,
  type UndefinedVariableError,
  parseConfig,
  type LocatedConfigError,
} from '../src/index.js';

const BASE = ['server:', '  command: php worker.php', 'http:', '  address: 127.0.0.1:8080'];

function load(lines: string[], env: Record<string, string | undefined>) {
  return parseConfig([...BASE, ...lines].join('\n'), { file: 'warmpool.yaml', env });
}

function errorsOf(lines: string[], env: Record<string, string | undefined>): LocatedConfigError[] {
  try {
    load(lines, env);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.errors];
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('expandVariables', () => {
  const env = { HOST: 'example.com', EMPTY: '', PORT: '8080' };

  it.each([
    ['plain text', 'plain text'],
    ['${HOST}', 'example.com'],
    ['https://${HOST}:${PORT}/', 'https://example.com:8080/'],
    ['${MISSING:-fallback}', 'fallback'],
    ['${EMPTY:-fallback}', 'fallback'],
    ['${HOST:-fallback}', 'example.com'],
    ['${MISSING:-}', ''],
    ['${MISSING:-a b: c}', 'a b: c'],
    ['price: $$5', 'price: $5'],
    ['$${HOST}', '${HOST}'],
    ['$$$$', '$$'],
    ['cost $5', 'cost $5'],
    ['trailing $', 'trailing $'],
  ])('%j → %j', (input, output) => {
    const result = expandVariables(input, env);
    expect(result).toMatchObject({ ok: true, value: output });
  });

  it('says whether a ${...} reference was expanded', () => {
    expect(expandVariables('${PORT}', env)).toMatchObject({ expanded: true });
    expect(expandVariables('$$PORT', env)).toMatchObject({ expanded: false });
  });

  it('leaves a bare $NAME alone and reports it', () => {
    expect(expandVariables('$HOME/app and $PATH', env)).toEqual({
      ok: true,
      value: '$HOME/app and $PATH',
      expanded: false,
      bare: ['HOME', 'PATH'],
    });
  });

  it('fails on an unset variable without a default', () => {
    expect(expandVariables('a ${NOPE} b', env)).toEqual({ ok: false, kind: 'undefined', variable: 'NOPE' });
    expect(expandVariables('${EMPTY}', env)).toMatchObject({ ok: true, value: '' });
  });

  it.each(['${', 'x ${HOST', '${}', '${1ABC}', '${A-B}', '${HOST:=x}'])(
    'fails on the malformed reference %j',
    (input) => {
      const result = expandVariables(input, env);
      expect(result).toMatchObject({ ok: false, kind: 'syntax' });
      expect((result as { message: string }).message).toContain('$$ for a literal $');
    },
  );
});

describe('expansion in a config file', () => {
  it('expands string values from the env option', () => {
    const { config } = load(
      ['  uploads:', '    dir: ${TMP_DIR:-/tmp}/uploads', 'admin:', '  socket: ${RUN}/warmpool.sock'],
      { RUN: '/run/app' },
    );
    expect(config.http.uploads?.dir).toBe('/tmp/uploads');
    expect(config.admin?.socket).toBe('/run/app/warmpool.sock');
  });

  it('converts an expanded value to the key\'s type: numbers, booleans, "auto"', () => {
    const { config } = load(
      [
        '  raw_body: ${RAW:-false}',
        '  max_request_size: ${MAX_MB}',
        '  pool:',
        '    num_workers: ${WORKERS}',
        '    max_jobs: ${JOBS:-100}',
        '    allocate_timeout: ${WAIT:-30}',
      ],
      { MAX_MB: '64', WORKERS: 'auto' },
    );
    expect(config.http.raw_body).toBe(false);
    expect(config.http.max_request_size).toBe(64);
    expect(config.http.pool).toEqual({ num_workers: 'auto', max_jobs: 100, allocate_timeout: '30s' });
    expect(load(['  pool:', '    num_workers: ${WORKERS}'], { WORKERS: '8' }).config.http.pool?.num_workers).toBe(8);
  });

  it('keeps integer-looking expansions as strings where the key is a string', () => {
    const { config } = parseConfig(
      'server:\n  command: php w.php\n  env:\n    PORT: ${PORT}\n  user: ${UID}\nhttp:\n  address: ":${PORT}"\n',
      { env: { PORT: '8080', UID: '1000' } },
    );
    expect(config.server.env).toEqual({ PORT: '8080' });
    expect(config.server.user).toBe('1000');
    expect(config.http.address).toBe(':8080');
  });

  it("an expanded value that is not of the key's type is an error quoting the reference", () => {
    const [error] = errorsOf(['  pool:', '    max_jobs: ${JOBS}'], { JOBS: 'many' });
    expect(error).toBeInstanceOf(InvalidValueError);
    expect(error!.message).toBe(
      'warmpool.yaml:6:5 http.pool.max_jobs: must be an integer >= 0, got "many" (from "${JOBS}")',
    );
  });

  it('a quoted number or boolean is read as one, as RoadRunner reads it (its files have them); other text is refused', () => {
    const { config } = load(['  raw_body: "false"', '  max_request_size: "10"', '  pool:', '    max_jobs: "100"'], {});
    expect([config.http.raw_body, config.http.max_request_size, config.http.pool?.max_jobs]).toEqual([false, 10, 100]);
    const [error] = errorsOf(['  pool:', '    max_jobs: "a hundred"'], {});
    expect(error!.reason).toBe('must be an integer >= 0, got "a hundred"');
  });

  it('cannot change the structure of the file: a value stays one string', () => {
    const { config } = load(['  uploads:', '    dir: ${EVIL}'], { EVIL: '/tmp\nhttp:\n  address: 0.0.0.0:1' });
    expect(config.http.uploads?.dir).toBe('/tmp\nhttp:\n  address: 0.0.0.0:1');
    expect(config.http.address).toBe('127.0.0.1:8080');
  });

  it('expands inside sites[], with errors naming the site key', () => {
    const { config } = load(
      [
        'sites:',
        '  - hosts: ["${DOMAIN}", "*.${DOMAIN}"]',
        '    root: /srv/${DOMAIN}',
        '    http:',
        '      pool:',
        '        num_workers: ${SITE_WORKERS:-3}',
      ],
      { DOMAIN: 'shop.test' },
    );
    expect(config.sites?.[0]).toEqual({
      hosts: ['shop.test', '*.shop.test'],
      root: '/srv/shop.test',
      server: {},
      http: { pool: { num_workers: 3 } },
    });
    const errors = errorsOf(['sites:', '  - hosts: ["${DOMAIN}"]', '    root: /srv/${ROOT}'], {});
    expect(errors.map((e) => [e.code, e.key, e.line, e.col])).toEqual([
      ['WP_CONFIG_UNDEFINED_VARIABLE', 'sites[0].hosts[0]', 6, 13],
      ['WP_CONFIG_UNDEFINED_VARIABLE', 'sites[0].root', 7, 5],
    ]);
    expect(errors.map((e) => (e as UndefinedVariableError).variable)).toEqual(['DOMAIN', 'ROOT']);
  });

  it('$$ writes a literal $', () => {
    const { config } = load(
      ['  headers:', '    response:', '      X-Price: "$$5 ${CUR:-EUR}"', '  middleware: [headers]'],
      {},
    );
    expect(config.http.headers?.response).toEqual({ 'X-Price': '$5 EUR' });
  });

  it('warns about a bare $NAME (RoadRunner expands it, warmpool does not), except in server.env', () => {
    const { config, warnings } = parseConfig(
      'server:\n  command: php $HOME/worker.php\n  env:\n    PATH: $PATH:/opt/bin\nhttp:\n  address: ":80"\n',
      { env: { HOME: '/root', PATH: '/usr/bin' } },
    );
    expect(config.server.command).toBe('php $HOME/worker.php');
    expect(config.server.env).toEqual({ PATH: '$PATH:/opt/bin' });
    expect(warnings).toEqual([
      {
        key: 'server.command',
        file: 'warmpool.yaml',
        line: 2,
        col: 3,
        message:
          'contains $HOME, which warmpool does not expand (RoadRunner does): write ${HOME}, or $$ for a literal $',
      },
    ]);
  });

  it('a malformed reference is an invalid value naming the key and line', () => {
    const [error] = errorsOf(['  uploads:', '    dir: /tmp/${oops'], {});
    expect([error!.code, error!.key, error!.line]).toEqual(['WP_CONFIG_INVALID_VALUE', 'http.uploads.dir', 6]);
    expect(error!.reason).toContain('unterminated');
  });

  it('does not expand keys, nor values in ignored sections', () => {
    const { config, warnings } = load(
      [
        '  headers:',
        '    request:',
        '      ${NAME}: v',
        '  middleware: [headers]',
        'reload:',
        '  interval: ${UNSET_RELOAD}',
      ],
      {},
    );
    expect(config.http.headers?.request).toEqual({ '${NAME}': 'v' });
    expect(warnings.map((w) => w.key)).toEqual(['reload']);
  });

  it('an unset variable with other errors: all are reported', () => {
    const errors = errorsOf(['  pool:', '    num_workers: ${N}', '    max_jobs: -1', '    destroy_timeout: ${T}'], {});
    expect(errors.map((e) => [e.code, e.line])).toEqual([
      ['WP_CONFIG_UNDEFINED_VARIABLE', 6],
      ['WP_CONFIG_INVALID_VALUE', 7],
      ['WP_CONFIG_UNDEFINED_VARIABLE', 8],
    ]);
  });
});
