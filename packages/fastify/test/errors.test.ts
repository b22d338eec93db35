import { describe, expect, it } from 'vitest';
import { readmeErrorCodes } from '../../../test/helpers/readme-errors.js';
import * as errors from '../src/errors.js';

// DESIGN.md's sync test: codes are unique, well-formed, set by their classes, and documented.
describe('WP_FASTIFY_* error codes', () => {
  const codes = [...errors.FASTIFY_ERROR_CODES];
  // each row of the table: one code, what it means, what to do
  const documented = readmeErrorCodes(new URL('../README.md', import.meta.url));

  it('are unique and well-formed', () => {
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^WP_[A-Z]+_[A-Z0-9_]+$/);
  });

  it('are each set by their class', () => {
    const made = [
      new errors.InvalidOptionError('x', 'y'),
      new errors.BadFormError('x'),
      new errors.BodyTooLargeError('x', 1),
      new errors.TooManyFilesError(1),
      new errors.TooManyHeadersError(1),
      new errors.RequestTimeoutError(1000),
      new errors.HeadersTooLargeError(1000),
      new errors.TooManyFieldsError(1000),
      new errors.HttpVersionError('2.0'),
      new errors.TransferEncodingError('gzip, chunked'),
      new errors.ShortBodyError(10, 20),
      new errors.RouteTakenError('GET /'),
      new errors.AlreadyRegisteredError(),
      new errors.PoolUnreachableError('"php a.php"', '', null),
      new errors.SpoolFailedError('/tmp', Object.assign(new Error('no space'), { code: 'ENOSPC' })),
    ].map((e) => e.code);
    expect(made.sort()).toEqual([...codes].sort());
  });

  it('are all in the README errors table, and the table has no other', () => {
    expect(new Set(documented).size).toBe(documented.length);
    expect([...documented].sort()).toEqual([...codes].sort());
  });
});
