// systemd unit files read for their values (the deploy tests run warmpool with exactly those).

export type Unit = Map<string, Map<string, string[]>>;

/** A systemd unit file: section → key → values (a key may repeat); comments and blank lines dropped. */
export function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      section = new Map();
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf('=');
    if (section === undefined || eq === -1) throw new Error(`not a unit file line: ${raw}`);
    const key = line.slice(0, eq).trim();
    section.set(key, [...(section.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return unit;
}

export function value(unit: Unit, section: string, key: string): string {
  const values = unit.get(section)?.get(key);
  if (values === undefined || values.length === 0) throw new Error(`[${section}] ${key}= is missing`);
  return values.at(-1)!;
}

/** "30s", "1min 40s", "100" (seconds) → seconds; systemd's time spans, the units we use. */
export function seconds(span: string): number {
  let total = 0;
  for (const [, n, unit] of span.matchAll(/(\d+)\s*(ms|s|sec|min|m|h)?/g)) {
    const factor = { ms: 0.001, s: 1, sec: 1, min: 60, m: 60, h: 3600 }[unit ?? 's']!;
    total += Number(n) * factor;
  }
  return total;
}
