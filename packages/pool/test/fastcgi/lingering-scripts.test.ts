// Which scripts go on after their response (fastcgi_finish_request): a wait makes a suspect, a
// timed linger makes it known (kept while its lingers are long, forgotten LINGER_MEMORY_MS after
// the last long one), a short one clears the suspicion; bounded.
import { describe, expect, it } from 'vitest';
import { LINGER_MEMORY_MS, LINGER_MS, LingeringScripts } from '../../src/fastcgi/lingering-scripts.js';

function scripts() {
  let now = 1_000;
  const found: string[] = [];
  const lingering = new LingeringScripts(
    (script) => found.push(script),
    () => now,
  );
  return { lingering, found, advance: (ms: number) => (now += ms) };
}

describe('LingeringScripts', () => {
  it('suspects the script before a request that waited far beyond its own usual run, and only then', () => {
    const { lingering, found } = scripts();
    // its own script never timed: no evidence
    lingering.noteWait('/srv/wp-cron.php', 5_000, undefined);
    // within twice its usual run and LINGER_MS: a slow run of its own
    lingering.noteWait('/srv/wp-cron.php', 2 * 30 + LINGER_MS, 30);
    expect(lingering.lingers('/srv/wp-cron.php')).toBe(false);
    lingering.noteWait('/srv/wp-cron.php', 2 * 30 + LINGER_MS + 1, 30);
    // a suspect: its next end is timed (half-closed), but nothing is said yet
    expect(lingering.lingers('/srv/wp-cron.php')).toBe(true);
    expect(lingering.lingers('/srv/index.php')).toBe(false);
    expect(found).toEqual([]);
    // timed: it lingered
    lingering.noteLinger('/srv/wp-cron.php', 3_000);
    expect(lingering.lingers('/srv/wp-cron.php')).toBe(true);
    expect(found).toEqual(['/srv/wp-cron.php']);
  });

  it('a suspect timed with a short linger is cleared (a request that waited for another reason)', () => {
    const { lingering, found } = scripts();
    lingering.noteWait('/srv/index.php', 1_000, 5);
    expect(lingering.lingers('/srv/index.php')).toBe(true);
    lingering.noteLinger('/srv/index.php', LINGER_MS - 1);
    expect(lingering.lingers('/srv/index.php')).toBe(false);
    expect(found).toEqual([]);
  });

  it('a timed linger of LINGER_MS or more keeps it known; it is forgotten LINGER_MEMORY_MS after the last one', () => {
    const { lingering, found, advance } = scripts();
    lingering.noteLinger('/srv/index.php', LINGER_MS - 1); // too short to be worth a connection
    expect(lingering.lingers('/srv/index.php')).toBe(false);
    lingering.noteLinger('/srv/index.php', LINGER_MS);
    advance(LINGER_MEMORY_MS - 1);
    expect(lingering.lingers('/srv/index.php')).toBe(true);
    lingering.noteLinger('/srv/index.php', 2 * LINGER_MS); // renewed
    advance(LINGER_MEMORY_MS - 1);
    lingering.noteLinger('/srv/index.php', 1); // short lingers do not renew, nor clear it
    expect(lingering.lingers('/srv/index.php')).toBe(true);
    advance(1);
    expect(lingering.lingers('/srv/index.php')).toBe(false);
    // each time it is found anew, the pool hears of it (it logs it)
    lingering.noteLinger('/srv/index.php', 2 * LINGER_MS);
    expect(found).toEqual(['/srv/index.php', '/srv/index.php']);
  });

  it('is cleared rather than grown past 1000 scripts', () => {
    const { lingering } = scripts();
    for (let i = 0; i < 1000; i++) lingering.noteLinger(`/srv/${i}.php`, LINGER_MS);
    expect(lingering.lingers('/srv/0.php')).toBe(true);
    lingering.noteLinger('/srv/999.php', LINGER_MS); // known: kept
    expect(lingering.lingers('/srv/0.php')).toBe(true);
    lingering.noteLinger('/srv/new.php', LINGER_MS);
    expect([lingering.lingers('/srv/0.php'), lingering.lingers('/srv/new.php')]).toEqual([false, true]);
  });
});
