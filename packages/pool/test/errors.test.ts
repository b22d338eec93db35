// The error-code sync test (DESIGN.md "Error-code conventions"): codes are unique and well formed,
// each class sets one of them, and the README's Errors table lists exactly these codes.
import { describe, expect, it } from 'vitest';
import { readmeErrorCodes } from '../../../test/helpers/readme-errors.js';
import * as errors from '../src/errors.js';
import * as index from '../src/index.js';
import { FastCgiError, POOL_ERROR_CODES, ProtocolError, WarmpoolError, isWarmpoolError } from '../src/errors.js';

type ErrorClass = new (...args: never[]) => WarmpoolError;

/** Every exported class derived from WarmpoolError, by export name. */
const errorClasses: [string, ErrorClass][] = Object.entries(errors as Record<string, unknown>).filter(
  (entry): entry is [string, ErrorClass] =>
    typeof entry[1] === 'function' && (entry[1] as { prototype?: unknown }).prototype instanceof WarmpoolError,
);

/** Bases without a code of their own. */
const ABSTRACT = new Set(['ProtocolError', 'FastCgiError']);

/** How to build each concrete class; a new class without an entry here fails the test. */
const FACTORIES: Record<string, () => WarmpoolError> = {
  BadChecksumError: () => new errors.BadChecksumError('m'),
  FrameTooLargeError: () => new errors.FrameTooLargeError('m'),
  MalformedFrameError: () => new errors.MalformedFrameError('m'),
  UnexpectedFrameError: () => new errors.UnexpectedFrameError('m'),
  BadHandshakeError: () => new errors.BadHandshakeError('m'),
  BadContextError: () => new errors.BadContextError('m'),
  WorkerExitedError: () => new errors.WorkerExitedError('m'),
  ExecTimeoutError: () => new errors.ExecTimeoutError('m'),
  WorkerReportedError: () => new errors.WorkerReportedError('m'),
  BootFailedError: () => new errors.BootFailedError('m'),
  CommandNotFoundError: () => new errors.CommandNotFoundError('m'),
  ExecAbortedError: () => new errors.ExecAbortedError('m'),
  StreamStalledError: () => new errors.StreamStalledError('m'),
  BadReplyError: () => new errors.BadReplyError('m'),
  WorkerStopRequestedError: () => new errors.WorkerStopRequestedError('m'),
  NoFreeWorkerError: () => new errors.NoFreeWorkerError('m'),
  QueueFullError: () => new errors.QueueFullError('m'),
  WorkersDownError: () => new errors.WorkersDownError('m'),
  PoolClosedError: () => new errors.PoolClosedError(),
  PoolNotStartedError: () => new errors.PoolNotStartedError(),
  InvalidPoolOptionError: () => new errors.InvalidPoolOptionError('key', 'm'),
  FastCgiRecordTooLargeError: () => new errors.FastCgiRecordTooLargeError('m'),
  FastCgiMalformedRecordError: () => new errors.FastCgiMalformedRecordError('m'),
  FastCgiUnexpectedRecordError: () => new errors.FastCgiUnexpectedRecordError('m'),
  FastCgiBadHeaderError: () => new errors.FastCgiBadHeaderError('m'),
  FastCgiHeaderTooLargeError: () => new errors.FastCgiHeaderTooLargeError('m'),
  FastCgiParamTooLargeError: () => new errors.FastCgiParamTooLargeError('m'),
  FastCgiRequestRejectedError: () => new errors.FastCgiRequestRejectedError('m'),
  FastCgiOverloadedError: () => new errors.FastCgiOverloadedError('m'),
  FastCgiConnectFailedError: () => new errors.FastCgiConnectFailedError('m'),
  FastCgiConnectionClosedError: () => new errors.FastCgiConnectionClosedError('m'),
  FastCgiConnectTimeoutError: () => new errors.FastCgiConnectTimeoutError('m'),
  FastCgiReadTimeoutError: () => new errors.FastCgiReadTimeoutError('m'),
  FastCgiQueueFullError: () => new errors.FastCgiQueueFullError('m'),
  FastCgiNoFreeConnectionError: () => new errors.FastCgiNoFreeConnectionError('m'),
  FastCgiClosedError: () => new errors.FastCgiClosedError(),
  QueuedRequestNotRunError: () => new errors.QueuedRequestNotRunError('m'),
  FastCgiAbortedError: () => new errors.FastCgiAbortedError('m'),
  InvalidFastCgiOptionError: () => new errors.InvalidFastCgiOptionError('key', 'm'),
};

const concreteClasses = errorClasses.filter(([name]) => !ABSTRACT.has(name));

describe('POOL_ERROR_CODES', () => {
  it('has no duplicates', () => {
    expect(new Set(POOL_ERROR_CODES).size).toBe(POOL_ERROR_CODES.length);
  });

  it.each([...POOL_ERROR_CODES])('%s matches WP_<AREA>_<WHAT>', (code) => {
    expect(code).toMatch(/^WP_[A-Z]+_[A-Z0-9_]+$/);
    expect(code.split('_')[1]).toMatch(/^(PROTOCOL|WORKER|POOL|FASTCGI)$/);
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
    expect(error).toBeInstanceOf(Error);
    expect(isWarmpoolError(error)).toBe(true);
    expect(error.name).toBe(name);
    expect(POOL_ERROR_CODES).toContain(error.code);
    expect(typeof error.message).toBe('string');
    expect(error.details).toBeTypeOf('object');
    // The protocol area is exactly the ProtocolError family (the fate table kills on it).
    expect(error instanceof ProtocolError).toBe(error.code.startsWith('WP_PROTOCOL_'));
    // The FastCGI area is exactly the FastCgiError family, and each carries the status it maps to.
    expect(error instanceof FastCgiError).toBe(error.code.startsWith('WP_FASTCGI_'));
    if (error instanceof FastCgiError) expect([431, 499, 500, 502, 503, 504]).toContain(error.statusCode);
  });

  it('gives the FastCGI errors the status nginx would answer: 502 down, 503 overloaded, 504 timed out', () => {
    expect(new errors.FastCgiConnectFailedError('m').statusCode).toBe(502);
    expect(new errors.FastCgiConnectionClosedError('m').statusCode).toBe(502);
    expect(new errors.FastCgiMalformedRecordError('m').statusCode).toBe(502);
    expect(new errors.FastCgiOverloadedError('m').statusCode).toBe(503);
    expect(new errors.FastCgiQueueFullError('m').statusCode).toBe(503);
    expect(new errors.FastCgiNoFreeConnectionError('m').statusCode).toBe(503);
    expect(new errors.FastCgiConnectTimeoutError('m').statusCode).toBe(504);
    expect(new errors.FastCgiReadTimeoutError('m').statusCode).toBe(504);
  });

  it('has exactly one class per code', () => {
    const codes = concreteClasses.map(([name]) => FACTORIES[name]!().code);
    expect(new Set(codes).size).toBe(codes.length);
    expect([...codes].sort()).toEqual([...POOL_ERROR_CODES].sort());
  });

  it('keeps cause and details', () => {
    const cause = new Error('root');
    const error = new errors.BootFailedError('m', { cause, details: { pid: 42 } });
    expect(error.cause).toBe(cause);
    expect(error.details).toEqual({ pid: 42 });
    expect(new errors.InvalidPoolOptionError('num_workers', 'bad').details).toEqual({
      key: 'num_workers',
      reason: 'bad',
    });
  });

  it('is exported from the package index', () => {
    // biome-ignore lint/performance/noDynamicNamespaceImportAccess: every export is checked by name
    for (const [name, cls] of errorClasses) expect(index[name as keyof typeof index], name).toBe(cls);
    expect(index.POOL_ERROR_CODES).toBe(POOL_ERROR_CODES);
  });

  it('isWarmpoolError is false for other values', () => {
    expect(isWarmpoolError(new Error('x'))).toBe(false);
    expect(isWarmpoolError({ code: 'WP_POOL_CLOSED' })).toBe(false);
    expect(isWarmpoolError(null)).toBe(false);
  });
});

describe('README Errors table', () => {
  const codes = readmeErrorCodes(new URL('../README.md', import.meta.url));

  it('lists each code once', () => {
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('lists every code of POOL_ERROR_CODES', () => {
    const missing = POOL_ERROR_CODES.filter((code) => !codes.includes(code));
    expect(missing).toEqual([]);
  });

  it('lists no code that POOL_ERROR_CODES lacks', () => {
    const extra = codes.filter((code) => !(POOL_ERROR_CODES as readonly string[]).includes(code));
    expect(extra).toEqual([]);
  });
});
