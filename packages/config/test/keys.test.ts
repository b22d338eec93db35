// The key table is consistent, and every key in it is accepted and lands at its own path in the
// typed result (the config is generated from the table, so a new key is covered without editing here).
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { CONFIG_KEYS, SITE_HTTP_KEYS, findKey, parseConfig, type KeySpec } from '../src/index.js';
import { childKeys, parentPattern } from '../src/keys.js';

describe('the key table', () => {
  it('has each pattern once', () => {
    const paths = CONFIG_KEYS.map((spec) => spec.path);
    expect(new Set(paths).size).toBe(paths.length);
  });

  it.each(CONFIG_KEYS.map((spec) => [spec.path, spec] as const))(
    '%s sits under a container of the right kind',
    (path, spec) => {
      const parent = parentPattern(path);
      if (parent === '') return;
      const container = findKey(parent);
      expect(container, `parent ${parent}`).toBeDefined();
      expect(container!.warned).toBeUndefined();
      if (path.endsWith('[]')) expect(container!.type).toBe('list');
      else if (path.endsWith('.*')) expect(container!.type).toBe('map');
      else expect(container!.type).toBe('section');
      expect(spec.description.length).toBeGreaterThan(0);
      expect(spec.description).not.toContain('\n');
    },
  );

  it('gives every list an item entry and every map a value entry', () => {
    for (const spec of CONFIG_KEYS) {
      if (spec.type === 'list') expect(findKey(`${spec.path}[]`), spec.path).toBeDefined();
      if (spec.type === 'map') expect(findKey(`${spec.path}.*`), spec.path).toBeDefined();
      if (spec.type === 'section' && spec.warned === undefined)
        expect(childKeys(spec.path).length, spec.path).toBeGreaterThan(0);
      if (spec.type === 'enum') expect(spec.values?.length, spec.path).toBeGreaterThan(0);
      if (spec.pattern !== undefined) expect(spec.hint, spec.path).toBeDefined();
    }
  });

  it('copies server.*, the per-site http keys, cache and proxy under sites[], and nothing listener-wide', () => {
    const site = CONFIG_KEYS.filter((spec) => spec.site === true).map((spec) => spec.path);
    for (const spec of CONFIG_KEYS.filter((s) => s.path.startsWith('server')))
      expect(site).toContain(`sites[].${spec.path}`);
    for (const key of SITE_HTTP_KEYS) expect(site).toContain(`sites[].http.${key}`);
    expect(site).toContain('sites[].http.pool.supervisor.exec_ttl');
    for (const key of ['address', 'ssl', 'http2', 'trusted_subnets', 'access_logs', 'fcgi'])
      expect(site).not.toContain(`sites[].http.${key}`);
    for (const key of ['cache.enabled', 'cache.bypass_cookies', 'proxy[].prefix', 'proxy[].websocket', 'fastcgi.root'])
      expect(site).toContain(`sites[].${key}`);
    // only a site's own proxy route and fastcgi section need their keys; nothing else is required in a site
    expect(CONFIG_KEYS.filter((spec) => spec.site === true && spec.required === true).map((spec) => spec.path)).toEqual(
      ['sites[].proxy[].prefix', 'sites[].proxy[].upstream', 'sites[].fastcgi.root'],
    );
  });

  it('warns about the RoadRunner sections the issue names', () => {
    for (const path of ['reload', 'jobs', 'kv', 'temporal', 'http.fcgi', 'http.http3']) {
      expect(findKey(path)?.warned, path).toMatch(/\S/);
    }
  });
});

// ---- every supported key, generated from the table ----

/** A value of the right type for a key, and what the typed result holds for it. */
function sampleFor(spec: KeySpec): { yaml: unknown; result: unknown } {
  const byPath: Record<string, string> = {
    'server.relay': 'tcp://127.0.0.1:7000',
    'sites[].hosts': 'example.com',
    'proxy[].prefix': '/api',
    'proxy[].upstream': 'http://127.0.0.1:9000',
    'http.ssl.acme.domains': 'example.com',
    'http.ssl.acme.directory': 'https://ca.example/directory',
    'http.real_ip_header': 'Forwarded',
    'rpc.listen': 'tcp://127.0.0.1:6001',
    'fastcgi.pass': 'unix:/run/php/php8.2-fpm.sock',
    'http.internal_files.prefix': '/protected/',
    'http.access[].prefix': '/wp-admin',
    'http.limit_req[].prefix': '/wp-login.php',
    'http.limit_req[].rate': '5r/m',
    'http.auth_basic[].prefix': '/admin',
    'sites[].redirect.to': 'https://example.com',
    'http.ssl.acme.email': 'ops@example.com',
    'http.ssl.acme.eab.mac_key': 'zWNDZM6eQGHWpSRTPal5eIU_-w',
  };
  const special = byPath[spec.path.replace(/^sites\[\]\./, '')] ?? byPath[spec.path];
  if (spec.path.endsWith('http.middleware'))
    return { yaml: ['static', 'headers', 'gzip'], result: ['static', 'headers', 'gzip'] };
  if (special === undefined && spec.pattern?.source.includes('6553'))
    return { yaml: '127.0.0.1:8081', result: '127.0.0.1:8081' };
  if (spec.path.endsWith('http.error_pages.*')) return { yaml: '50x.html', result: '50x.html' };
  if (spec.path.endsWith('http.access[].allow') || spec.path.endsWith('http.access[].deny'))
    return { yaml: ['10.0.0.0/8', 'all'], result: ['10.0.0.0/8', 'all'] };
  if (spec.path.endsWith('http.trusted_subnets'))
    return { yaml: ['10.0.0.0/8', '::1/128'], result: ['10.0.0.0/8', '::1/128'] };
  switch (spec.type) {
    case 'string':
    case 'scalar-string':
      return { yaml: special ?? `v-${spec.path}`, result: special ?? `v-${spec.path}` };
    case 'string[]':
      return {
        yaml: [special ?? 'a', special === undefined ? 'b' : `x.${special}`],
        result: [special ?? 'a', special === undefined ? 'b' : `x.${special}`],
      };
    case 'string|string[]':
      if (special !== undefined) return { yaml: [special, `${special}1`], result: [special, `${special}1`] };
      return { yaml: ['php', 'w.php'], result: ['php', 'w.php'] };
    case 'integer':
    case 'number':
    case 'size-mb':
      return { yaml: spec.max ?? (spec.min ?? 0) + 7, result: spec.max ?? (spec.min ?? 0) + 7 };
    case 'integer|auto':
      return { yaml: 'auto', result: 'auto' };
    case 'boolean':
      return { yaml: true, result: true };
    case 'duration':
      return { yaml: '1m30s', result: '1m30s' };
    case 'bytes':
      // a bound that must be at least a megabyte (http.max_response_memory) gets megabytes
      return (spec.min ?? 0) > 2048 ? { yaml: '2m', result: 2 * 1024 * 1024 } : { yaml: '2k', result: 2048 };
    case 'enum':
      return { yaml: spec.values!.at(-1), result: spec.values!.at(-1) };
    default:
      throw new Error(`no sample for ${spec.type}`);
  }
}

/** "sites[].http.pool.max_jobs" → ['sites', 0, 'http', 'pool', 'max_jobs']; "*" → 'sample'. */
function segments(pattern: string): (string | number)[] {
  return pattern
    .split('.')
    .flatMap((part) => (part.endsWith('[]') ? [part.slice(0, -2), 0] : [part === '*' ? 'sample' : part]));
}

function setIn(target: Record<string, unknown>, path: (string | number)[], value: unknown): void {
  let node: Record<string | number, unknown> = target;
  path.forEach((key, i) => {
    if (i === path.length - 1) {
      node[key] = value;
      return;
    }
    node[key] ??= typeof path[i + 1] === 'number' ? [] : {};
    node = node[key] as Record<string | number, unknown>;
  });
}

function getIn(target: unknown, path: (string | number)[]): unknown {
  return path.reduce<unknown>((node, key) => (node as Record<string | number, unknown> | undefined)?.[key], target);
}

// a site that redirects serves nothing else, so its keys cannot sit beside every other one: they
// are loaded on their own below
const REDIRECT = /^sites\[\]\.redirect\./;
const LEAVES = CONFIG_KEYS.filter(
  (spec) => spec.warned === undefined && !['section', 'list', 'map'].includes(spec.type) && !REDIRECT.test(spec.path),
);

describe('every supported key', () => {
  const doc: Record<string, unknown> = {};
  for (const spec of LEAVES) setIn(doc, segments(spec.path), sampleFor(spec).yaml);
  const loaded = parseConfig(stringify(doc), { file: 'every-key.yaml', env: {} });

  it('loads without errors, and warns only of what the sample values ask for (debug: true)', () => {
    // the sample sets err_output and a channel named "sample": warmpool's log has neither
    expect(loaded.warnings.map((w) => w.key)).toEqual([
      'http.pool.debug',
      'logs.err_output',
      'logs.channels.sample',
      'sites[0].http.pool.debug',
    ]);
    expect(loaded.warnings[0]!.message).toMatch(
      /^true shows worker error text .* in 500 responses, never for production; it does not start a new worker for every request as RoadRunner's debug does/,
    );
  });

  it.each(LEAVES.map((spec) => [spec.path, spec] as const))(
    '%s lands at its path in the typed result',
    (path, spec) => {
      const at = segments(path);
      expect(getIn(loaded.config, at)).toEqual(sampleFor(spec).result);
      const concrete = at.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
      expect(loaded.positionOf(concrete), concrete).not.toBeNull();
    },
  );
});

describe('a site that redirects: its keys, on their own', () => {
  it('land at their paths', () => {
    const loaded = parseConfig(
      'version: "3"\nhttp: { address: ":8080" }\nsites:\n  - hosts: [www.example.com]\n    redirect: { to: "https://example.com", status: 308 }\n',
      { file: 'redirect.yaml', env: {} },
    );
    expect(loaded.config.sites![0]!.redirect).toEqual({ to: 'https://example.com', status: 308 });
    expect(loaded.positionOf('sites[0].redirect.status')).not.toBeNull();
  });
});
