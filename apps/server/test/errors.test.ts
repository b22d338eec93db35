import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SERVER_ERROR_CODES } from '../src/errors.js';

// DESIGN.md's sync test: every WP_SERVER_* code is unique, well-formed and in the README table.
describe('WP_SERVER_* error codes', () => {
  const codes = [...SERVER_ERROR_CODES];
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const documented = new Set([...readme.matchAll(/^\| `(WP_SERVER_[A-Z0-9_]+)` \|/gm)].map((m) => m[1]));

  it('are unique and well-formed', () => {
    expect(new Set(codes).size).toBe(codes.length);
    for (const code of codes) expect(code).toMatch(/^WP_SERVER_[A-Z0-9_]+$/);
  });

  it('are all in the README errors table, and the table has no other', () => {
    expect([...documented].sort()).toEqual([...codes].sort());
  });
});
