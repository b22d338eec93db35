// The error-code sync test (DESIGN.md "Error-code conventions"): codes are unique and well formed,
// each class sets one of them, and the README's Errors table lists exactly these codes.
import { describe, expect, it } from 'vitest';
import { readmeErrorCodes } from '../../../test/helpers/readme-errors.js';
import * as errors from '../src/errors.js';
import { SWAP_ERROR_CODES, SwapError } from '../src/errors.js';

type ErrorClass = new (...args: never[]) => SwapError;

/** Every exported class derived from SwapError, by export name. */
const errorClasses: [string, ErrorClass][] = Object.entries(errors as Record<string, unknown>).filter(
  (entry): entry is [string, ErrorClass] =>
    typeof entry[1] === 'function' && (entry[1] as { prototype?: unknown }).prototype instanceof SwapError,
);

/** How to build each class; a new class without an entry here fails the test. */
const FACTORIES: Record<string, () => SwapError> = {
  UsageError: () => new errors.UsageError('m'),
  ListenFailedError: () => new errors.ListenFailedError('http', '127.0.0.1:80', 'EACCES'),
  CheckFailedError: () => new errors.CheckFailedError('m', 'output'),
  BootFailedError: () => new errors.BootFailedError('m', 'output'),
  NotReadyError: () => new errors.NotReadyError('m'),
  BusyError: () => new errors.BusyError(),
  NoPreviousError: () => new errors.NoPreviousError(),
  UnreachableError: () => new errors.UnreachableError('/run/x/control.sock', new Error('ENOENT')),
  ControlError: () => new errors.ControlError('m'),
  StateFileError: () => new errors.StateFileError('/run/x/state.json', 'is not valid JSON'),
  StoppedError: () => new errors.StoppedError('SIGTERM'),
};

describe('SWAP_ERROR_CODES', () => {
  it('has no duplicates', () => {
    expect(new Set(SWAP_ERROR_CODES).size).toBe(SWAP_ERROR_CODES.length);
  });

  it.each([...SWAP_ERROR_CODES])('%s matches WP_SWAP_<WHAT>', (code) => {
    expect(code).toMatch(/^WP_[A-Z]+_[A-Z0-9_]+$/);
    expect(code.split('_')[1]).toBe('SWAP');
  });
});

describe('error classes', () => {
  it('has a factory here for every exported class (add one when adding a class)', () => {
    expect(errorClasses.map(([name]) => name).sort()).toEqual(Object.keys(FACTORIES).sort());
  });

  it.each(errorClasses.map(([name, cls]) => [name, cls] as const))('%s sets a listed code', (name, cls) => {
    const error = FACTORIES[name]!();
    expect(error).toBeInstanceOf(cls);
    expect(error).toBeInstanceOf(SwapError);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe(name);
    expect(SWAP_ERROR_CODES).toContain(error.code);
    expect(error.message.length).toBeGreaterThan(0);
    expect(error.details).toBeTypeOf('object');
  });

  it('has exactly one class per code', () => {
    const codes = errorClasses.map(([name]) => FACTORIES[name]!().code);
    expect(new Set(codes).size).toBe(codes.length);
    expect([...codes].sort()).toEqual([...SWAP_ERROR_CODES].sort());
  });

  it('UnreachableError tells a socket that refuses this user from a supervisor that is not there', () => {
    const denied = Object.assign(new Error('connect EACCES /run/x/control.sock'), { code: 'EACCES' });
    expect(new errors.UnreachableError('/run/x/control.sock', denied).message).toBe(
      "permission denied on /run/x/control.sock: the supervisor's control socket is its user's alone; run this as that user (sudo -u warmpool) or root",
    );
    const gone = Object.assign(new Error('connect ENOENT /run/x/control.sock'), { code: 'ENOENT' });
    expect(new errors.UnreachableError('/run/x/control.sock', gone).message).toMatch(
      /^no warmpool-swap supervisor answers on/,
    );
  });

  it('keeps the cause and the output a failed child printed', () => {
    const cause = new Error('ECONNREFUSED');
    expect(new errors.UnreachableError('/s', cause).cause).toBe(cause);
    const boot = new errors.BootFailedError('green exited', 'line 1\nline 2\n');
    expect(boot.message).toBe('green exited:\nline 1\nline 2');
    expect(boot.details).toEqual({ output: 'line 1\nline 2\n' });
    expect(new errors.CheckFailedError('`x version` failed', '  ').message).toBe('`x version` failed');
  });
});

describe('README Errors table', () => {
  const codes = readmeErrorCodes(new URL('../README.md', import.meta.url));

  it('lists each code once', () => {
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('lists every code of SWAP_ERROR_CODES', () => {
    expect(SWAP_ERROR_CODES.filter((code) => !codes.includes(code))).toEqual([]);
  });

  it('lists no code that SWAP_ERROR_CODES lacks', () => {
    expect(codes.filter((code) => !(SWAP_ERROR_CODES as readonly string[]).includes(code))).toEqual([]);
  });
});
