// docs/CLASSIC.md's WordPress server block and the YAML it translates into: the YAML loads with no
// warning, and its http.static.cache_control covers the very extensions the nginx block's
// `location ~* \.(...)$ { expires 30d; }` matches (a YAML listing only .css, .js and .png left
// every JPEG and font with no Cache-Control).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/index.js';

const DOC = readFileSync(new URL('../../../docs/CLASSIC.md', import.meta.url), 'utf8');
const SECTION = DOC.slice(DOC.indexOf('## A WordPress server block'));
const NGINX = /```nginx\n([\s\S]*?)```/.exec(SECTION)?.[1] ?? '';
const YAML = /```yaml\n([\s\S]*?)```/.exec(SECTION)?.[1] ?? '';
// the file types a site serves, in any case, whether or not the nginx block names them
const CANDIDATES = [
  'css',
  'js',
  'png',
  'jpg',
  'jpeg',
  'gif',
  'svg',
  'woff',
  'woff2',
  'webp',
  'ico',
  'html',
  'txt',
  'pdf',
];

describe('docs/CLASSIC.md: the WordPress server block in YAML', () => {
  it('loads with no warning', () => {
    expect(YAML).toContain('fastcgi:');
    const loaded = parseConfig(YAML, { file: 'CLASSIC.md', env: {} });
    expect(loaded.warnings).toEqual([]);
  });

  it('sets Cache-Control for exactly the extensions of the expires location, with its 30 days', () => {
    const location = /location ~\* (\S+) \{\s*expires 30d;/.exec(NGINX);
    expect(location).not.toBeNull();
    const matches = new RegExp(location![1]!, 'i');
    const cacheControl = parseConfig(YAML, { file: 'CLASSIC.md', env: {} }).config.http?.static?.cache_control ?? {};
    const expected = CANDIDATES.filter((ext) => matches.test(`/a/b.${ext}`)).map((ext) => `.${ext}`);
    expect(expected).toContain('.woff2');
    expect(Object.keys(cacheControl).sort()).toEqual(expected.sort());
    for (const value of Object.values(cacheControl)) expect(value).toBe(`public, max-age=${30 * 24 * 3600}`);
  });
});
