import { describe, expect, it } from 'vitest';
import { readmeErrorCodes } from '../../../test/helpers/readme-errors.js';
import { SERVER_ERROR_CODES } from '../src/errors.js';

// DESIGN.md's sync test: every WP_SERVER_* code is unique, well-formed and in the README table.
describe('WP_SERVER_* error codes', () => {
  const codes = [...SERVER_ERROR_CODES];
  // each row of the table: one code, what it means, what to do
  const documented = readmeErrorCodes(new URL('../README.md', import.meta.url));

  it('are unique and well-formed', () => {
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^WP_SERVER_[A-Z0-9_]+$/);
  });

  it('are all in the README errors table, and the table has no other', () => {
    expect(new Set(documented).size).toBe(documented.length);
    expect([...documented].sort()).toEqual([...codes].sort());
  });
});
