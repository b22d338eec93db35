// The error-code sync tests of every package (DESIGN.md "Error-code conventions") read their
// README's "## Errors" table with this: one row per code, each with a meaning and what to do.
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';

/** The codes in the README's "## Errors" table (| code | meaning | what to do |), in order. */
export function readmeErrorCodes(readmeUrl: URL): string[] {
  const readme = readFileSync(readmeUrl, 'utf8');
  const start = readme.search(/^## Errors\s*$/m);
  expect(start, 'README.md has an "## Errors" section').toBeGreaterThanOrEqual(0);
  const rest = readme.slice(start + '## Errors'.length);
  const end = rest.search(/^## /m);
  const section = end < 0 ? rest : rest.slice(0, end);
  const rows = section.split('\n').filter((line) => line.trim().startsWith('|'));
  expect(rows[0]?.replace(/\s+/g, '')).toBe('|code|meaning|whattodo|');
  const codes: string[] = [];
  for (const row of rows.slice(2)) {
    // a cell may hold an escaped pipe (`a \| b`)
    const cells = row
      .split(/(?<!\\)\|/)
      .slice(1, -1)
      .map((cell) => cell.trim());
    expect(cells, `row ${row}`).toHaveLength(3);
    const match = /^`([^`]+)`$/.exec(cells[0]!);
    expect(match, `the code cell of ${row} is one code in backticks`).not.toBeNull();
    expect(cells[1]!.length, `meaning of ${cells[0]}`).toBeGreaterThan(0);
    expect(cells[2]!.length, `what to do for ${cells[0]}`).toBeGreaterThan(0);
    codes.push(match![1]!);
  }
  return codes;
}
