// How long each script usually runs (pipelining reads it): a moving average per script, bounded.
import { describe, expect, it } from 'vitest';
import { ScriptDurations } from '../../src/fastcgi/script-durations.js';

describe('ScriptDurations', () => {
  it('knows nothing of a script before its first run ended, then its moving average', () => {
    const durations = new ScriptDurations();
    expect(durations.typicalMs('/srv/export.php')).toBeUndefined();
    durations.record('/srv/export.php', 1000);
    expect(durations.typicalMs('/srv/export.php')).toBe(1000);
    // the newest run weighs a fifth: one fast run does not make an export look fast
    durations.record('/srv/export.php', 0);
    expect(durations.typicalMs('/srv/export.php')).toBe(800);
    expect(durations.typicalMs('/srv/index.php')).toBeUndefined();
  });

  it('is cleared rather than grown past 1000 scripts', () => {
    const durations = new ScriptDurations();
    for (let i = 0; i < 1000; i++) durations.record(`/srv/${i}.php`, i);
    expect(durations.typicalMs('/srv/0.php')).toBe(0);
    durations.record('/srv/999.php', 999); // known: kept
    expect(durations.typicalMs('/srv/0.php')).toBe(0);
    durations.record('/srv/new.php', 5);
    expect([durations.typicalMs('/srv/0.php'), durations.typicalMs('/srv/new.php')]).toEqual([undefined, 5]);
  });
});
