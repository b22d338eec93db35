// README ↔ key table sync: the Keys and Warned keys tables are generated from src/keys.ts and must
// match it exactly (run with UPDATE_README=1 to rewrite them); every supported key appears in the
// Keys tables and every warned key in the Warned table, and the reverse; the RoadRunner example
// block loads unchanged.
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_KEYS, findKey, parseConfig, type KeySpec } from '../src/index.js';

const README_URL = new URL('../README.md', import.meta.url);
const DOCUMENTED = CONFIG_KEYS.filter((spec) => spec.site !== true);
const SUPPORTED = DOCUMENTED.filter((spec) => spec.warned === undefined);
const WARNED = DOCUMENTED.filter((spec) => spec.warned !== undefined);

const cell = (text: string): string => text.replace(/\|/g, '\\|');

function typeText(spec: KeySpec): string {
  const range = (what: string): string => {
    if (spec.min !== undefined && spec.max !== undefined) return `${what} ${spec.min}–${spec.max}`;
    if (spec.min !== undefined) return `${what} ≥ ${spec.min}`;
    return what;
  };
  const unit = spec.unit === undefined || spec.type === 'size-mb' ? '' : ` (${spec.unit})`;
  switch (spec.type) {
    case 'section':
      return 'section';
    case 'list':
      return 'list of sections';
    case 'map':
      return 'map';
    case 'string':
    case 'scalar-string':
      return 'string';
    case 'integer':
      return range('integer') + unit;
    case 'number':
      return range('number') + unit;
    case 'size-mb':
      return range('MB');
    case 'bytes':
      return 'bytes';
    case 'boolean':
      return 'boolean';
    case 'duration':
      return 'duration';
    case 'enum':
      return spec.values!.map((v) => `\`${v}\``).join(', ');
    case 'string[]':
      return 'list of strings';
    case 'string|string[]':
      return 'string or list of strings';
    case 'integer|auto':
      return `${range('integer')} or \`auto\``;
  }
}

function defaultText(spec: KeySpec): string {
  if (spec.required === true)
    return spec.requiredUnless === undefined ? '**required**' : `**required** without \`${spec.requiredUnless}\``;
  if (spec.default === undefined) return '';
  // Prose defaults ("CPU count", "the OS temp dir") are not values to copy.
  return typeof spec.default === 'string' && / /.test(spec.default) && !spec.default.startsWith('[')
    ? spec.default
    : `\`${spec.default}\``;
}

/** The table a key is listed in: its top-level section, or http.<section> for http's sub-sections. */
function groupOf(spec: KeySpec): string {
  const [head, second] = spec.path.split('.');
  const top = head!.replace(/\[\]$/, '');
  if (top === 'http' && second !== undefined && ['section', 'map'].includes(findKey(`http.${second}`)?.type ?? ''))
    return `http.${second}`;
  return top;
}

function renderKeys(): string {
  const groups = new Map<string, KeySpec[]>();
  for (const spec of SUPPORTED) groups.set(groupOf(spec), [...(groups.get(groupOf(spec)) ?? []), spec]);
  const parts: string[] = [];
  for (const [group, specs] of groups) {
    parts.push(`### ${group}`, '', '| key | type | default | from | what it does |', '|---|---|---|---|---|');
    for (const spec of specs) {
      parts.push(
        `| \`${spec.path}\` | ${cell(typeText(spec))} | ${cell(defaultText(spec))} | ${spec.origin === 'rr' ? 'RR' : 'warmpool'} | ${cell(spec.description)} |`,
      );
    }
    parts.push('');
  }
  return parts.join('\n');
}

function renderWarned(): string {
  return [
    '| key | what to do instead |',
    '|---|---|',
    ...WARNED.map((spec) => `| \`${spec.path}\` | ${cell(spec.warned!)} |`),
    '',
  ].join('\n');
}

/** Replaces (or reads) the text between `<!-- name:start ... -->` and `<!-- name:end -->`. */
function between(readme: string, name: string): { before: string; inner: string; after: string } {
  const start = new RegExp(`<!-- ${name}:start[^>]*-->\\n`).exec(readme);
  const end = readme.indexOf(`<!-- ${name}:end -->`);
  expect(start, `README has a <!-- ${name}:start --> marker`).not.toBeNull();
  expect(end, `README has a <!-- ${name}:end --> marker`).toBeGreaterThan(start!.index);
  const innerStart = start!.index + start![0].length;
  return { before: readme.slice(0, innerStart), inner: readme.slice(innerStart, end), after: readme.slice(end) };
}

/** The backticked first cells of the tables in a README fragment. */
function listedKeys(fragment: string): string[] {
  return [...fragment.matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]!);
}

describe('README key tables', () => {
  let readme = readFileSync(README_URL, 'utf8');
  if (process.env.UPDATE_README === '1') {
    for (const [name, render] of [
      ['keys', renderKeys],
      ['warned', renderWarned],
    ] as const) {
      const part = between(readme, name);
      readme = `${part.before}${render()}${part.after}`;
    }
    writeFileSync(README_URL, readme);
  }

  it('are what src/keys.ts generates (UPDATE_README=1 rewrites them)', () => {
    expect(between(readme, 'keys').inner).toBe(renderKeys());
    expect(between(readme, 'warned').inner).toBe(renderWarned());
  });

  it('list every supported key of the table, and only those', () => {
    const listed = listedKeys(between(readme, 'keys').inner);
    expect(new Set(listed).size).toBe(listed.length);
    expect(SUPPORTED.map((spec) => spec.path).filter((path) => !listed.includes(path))).toEqual([]);
    expect(listed.filter((path) => findKey(path) === undefined || findKey(path)!.warned !== undefined)).toEqual([]);
  });

  it('list every warned key in the Warned keys table, and only those', () => {
    const listed = listedKeys(between(readme, 'warned').inner);
    expect([...listed].sort()).toEqual(WARNED.map((spec) => spec.path).sort());
  });
});

describe('README "Coming from RoadRunner" example', () => {
  it('loads unchanged, warning about the unsupported sections by name', () => {
    const readme = readFileSync(README_URL, 'utf8');
    const section = readme.slice(readme.indexOf('## Coming from RoadRunner'));
    const block = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toBeDefined();
    const { config, warnings } = parseConfig(block!, { file: '.rr.yaml', env: {} });
    expect(warnings.map((w) => w.key)).toEqual(['server.relay_timeout', 'http.fcgi', 'reload', 'jobs']);
    expect(config.server).toEqual({ command: 'php psr-worker.php', env: { APP_ENV: 'production' }, relay: 'pipes' });
    expect(config.http.pool?.num_workers).toBeUndefined();
    expect(config.http.static?.dir).toBe('public');
    expect(config.logs?.channels?.http?.level).toBe('warn');
  });

  it('the Sites example loads too', () => {
    const readme = readFileSync(README_URL, 'utf8');
    const section = readme.slice(readme.indexOf('### Sites'));
    const block = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
    const { config } = parseConfig(`server:\n  command: php index.php\nhttp:\n  address: ":8080"\n${block}`, {
      env: {},
    });
    expect(config.sites?.map((site) => site.hosts)).toEqual([
      ['example.com', '*.example.com'],
      ['shop.example.org'],
      ['blog.example.org'],
    ]);
    expect(config.sites?.[2]?.fastcgi).toMatchObject({ root: '/var/www/wordpress', no_exec: ['wp-content/uploads'] });
  });
});
