import { describe, expect, it } from 'vitest';
import { ThrottledCount } from '../src/logger.js';
import { eventually } from './php-fixtures.js';

// A flood's summary line: the first event at once, the rest when the period ends, not at the next event.
describe('ThrottledCount', () => {
  it('reports the first event at once and what the period held back when it ends, with no later event', async () => {
    const reports: number[] = [];
    const lines = new ThrottledCount((count) => reports.push(count), 50);
    lines.add();
    expect(reports).toEqual([1]);
    for (let i = 0; i < 9; i++) lines.add();
    lines.add(5);
    expect(reports).toEqual([1]);
    await eventually(() => reports.length === 2, 'the held-back count written at the end of the period');
    expect(reports).toEqual([1, 14]);
  });

  it('flush() writes what is held back at once, and nothing when nothing is', () => {
    const reports: number[] = [];
    const lines = new ThrottledCount((count) => reports.push(count), 60_000);
    lines.flush();
    lines.add();
    lines.add(2);
    lines.flush();
    lines.flush();
    expect(reports).toEqual([1, 2]);
  });
});
