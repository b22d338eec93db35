// The error-code sync test (DESIGN.md "Error-code conventions"): codes are unique and well formed,
// each class sets one of them, and the README's Errors table lists exactly these codes.
import { WarmpoolError, isWarmpoolError } from '@warmpool/pool';
import { describe, expect, it } from 'vitest';
import { readmeErrorCodes } from '../../../test/helpers/readme-errors.js';
import * as errors from '../src/errors.js';
import * as index from '../src/index.js';
import { CONFIG_ERROR_CODES, LocatedConfigError } from '../src/errors.js';

type ErrorClass = new (...args: never[]) => WarmpoolError;

const AT = { file: 'warmpool.yaml', line: 3, col: 5 };

/** Every exported class derived from WarmpoolError, by export name. */
const errorClasses: [string, ErrorClass][] = Object.entries(errors as Record<string, unknown>).filter(
  (entry): entry is [string, ErrorClass] =>
    typeof entry[1] === 'function' && (entry[1] as { prototype?: unknown }).prototype instanceof WarmpoolError,
);

/** Bases without a code of their own. */
const ABSTRACT = new Set(['LocatedConfigError']);

/** How to build each concrete class; a new class without an entry here fails the test. */
const FACTORIES: Record<string, () => WarmpoolError> = {
  ConfigSyntaxError: () => new errors.ConfigSyntaxError(AT, 'YAML syntax: m'),
  UnknownKeyError: () => new errors.UnknownKeyError('http.pool.num_worker', AT, 'http.pool.num_workers'),
  InvalidValueError: () => new errors.InvalidValueError('http.pool.num_workers', AT, 'must be an integer'),
  MissingKeyError: () => new errors.MissingKeyError('server.command', AT, 'is required'),
  UndefinedVariableError: () => new errors.UndefinedVariableError('server.env.A', AT, 'A'),
  DuplicateHostError: () =>
    new errors.DuplicateHostError('sites[1].hosts[0]', AT, 'a.test', {
      key: 'sites[0].hosts[0]',
      file: 'warmpool.yaml',
      line: 1,
      col: 1,
    }),
  ConfigError: () =>
    new errors.ConfigError('warmpool.yaml', [new errors.MissingKeyError('server.command', AT, 'is required')]),
  ConfigFileError: () => new errors.ConfigFileError('/x.yaml', Object.assign(new Error('no'), { code: 'ENOENT' })),
  BadOverrideError: () => new errors.BadOverrideError('http.address', 'not key=value'),
};

const concreteClasses = errorClasses.filter(([name]) => !ABSTRACT.has(name));

describe('CONFIG_ERROR_CODES', () => {
  it('has no duplicates', () => {
    expect(new Set(CONFIG_ERROR_CODES).size).toBe(CONFIG_ERROR_CODES.length);
  });

  it.each([...CONFIG_ERROR_CODES])('%s matches WP_CONFIG_<WHAT>', (code) => {
    expect(code).toMatch(/^WP_[A-Z]+_[A-Z0-9_]+$/);
    expect(code.startsWith('WP_CONFIG_')).toBe(true);
  });
});

describe('error classes', () => {
  it('has a factory here for every exported class (add one when adding a class)', () => {
    expect(concreteClasses.map(([name]) => name).sort()).toEqual(Object.keys(FACTORIES).sort());
  });

  it.each(concreteClasses.map(([name, cls]) => [name, cls] as const))('%s sets a listed code', (name, cls) => {
    const error = FACTORIES[name]!();
    expect(error).toBeInstanceOf(cls);
    expect(error).toBeInstanceOf(WarmpoolError);
    expect(isWarmpoolError(error)).toBe(true);
    expect(error.name).toBe(name);
    expect(CONFIG_ERROR_CODES).toContain(error.code);
    expect(error.details).toBeTypeOf('object');
  });

  it('has exactly one class per code', () => {
    const codes = concreteClasses.map(([name]) => FACTORIES[name]!().code);
    expect(new Set(codes).size).toBe(codes.length);
    expect([...codes].sort()).toEqual([...CONFIG_ERROR_CODES].sort());
  });

  it('located errors start with file:line:col key: and carry them as fields and details', () => {
    for (const [name] of concreteClasses) {
      const error = FACTORIES[name]!();
      // a -o argument is located at itself, not at a line (below)
      if (!(error instanceof LocatedConfigError) || error instanceof errors.BadOverrideError) continue;
      expect(error.message.startsWith('warmpool.yaml:3:5 '), name).toBe(true);
      expect(error.details).toMatchObject({ file: 'warmpool.yaml', line: 3, col: 5, key: error.key });
      expect(error.message.endsWith(error.reason), name).toBe(true);
    }
    expect(new errors.ConfigSyntaxError(AT, 'bad').message).toBe('warmpool.yaml:3:5 bad');
    expect(new errors.UnknownKeyError('a.b', AT, null).message).toBe('warmpool.yaml:3:5 a.b: unknown key');
    expect(new errors.BadOverrideError('x', 'not key=value').message).toBe('-o x: not key=value');
    const fromOverride = { file: '-o a.b=1', line: 0, col: 0, override: 'a.b' };
    expect(new errors.InvalidValueError('a.b', fromOverride, 'bad').message).toBe('-o a.b=1: bad');
    expect(new errors.InvalidValueError('a', fromOverride, 'bad').message).toBe('-o a.b=1 a: bad');
  });

  it('ConfigError sorts its errors by line and lists each in the message', () => {
    const late = new errors.InvalidValueError('b', { ...AT, line: 9 }, 'late');
    const early = new errors.InvalidValueError('a', { ...AT, line: 2 }, 'early');
    const error = new errors.ConfigError('warmpool.yaml', [late, early]);
    expect(error.errors).toEqual([early, late]);
    expect(error.message).toBe(
      'warmpool.yaml has 2 errors:\n  warmpool.yaml:2:5 a: early\n  warmpool.yaml:9:5 b: late',
    );
    expect(error.details).toEqual({ file: 'warmpool.yaml', count: 2 });
  });

  it('ConfigFileError keeps the cause and says what to do', () => {
    const cause = Object.assign(new Error('denied'), { code: 'EACCES' });
    const error = new errors.ConfigFileError('/etc/warmpool.yaml', cause);
    expect(error.cause).toBe(cause);
    expect(error.message).toBe(
      'cannot read config file /etc/warmpool.yaml: permission denied; make it readable by the user warmpool runs as',
    );
  });

  it('is exported from the package index', () => {
    // biome-ignore lint/performance/noDynamicNamespaceImportAccess: every export is checked by name
    for (const [name, cls] of errorClasses) expect(index[name as keyof typeof index], name).toBe(cls);
    expect(index.CONFIG_ERROR_CODES).toBe(CONFIG_ERROR_CODES);
  });
});

describe('README Errors table', () => {
  const codes = readmeErrorCodes(new URL('../README.md', import.meta.url));

  it('lists each code once', () => {
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('lists every code of CONFIG_ERROR_CODES', () => {
    expect(CONFIG_ERROR_CODES.filter((code) => !codes.includes(code))).toEqual([]);
  });

  it('lists no code that CONFIG_ERROR_CODES lacks', () => {
    expect(codes.filter((code) => !(CONFIG_ERROR_CODES as readonly string[]).includes(code))).toEqual([]);
  });
});
