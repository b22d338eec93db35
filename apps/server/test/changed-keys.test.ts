// What SIGHUP names as needing a restart: each changed key by its path, sections added or removed
// key by key (so a logs.level added alone is one SIGHUP applies), list items by index.
import { describe, expect, it } from 'vitest';
import { changedKeys } from '../src/commands/serve.js';

describe('changedKeys', () => {
  it('names the changed leaves by their dotted paths', () => {
    expect(
      changedKeys(
        { http: { pool: { num_workers: 2, max_jobs: 0 } }, logs: { mode: 'production', level: 'info' } },
        { http: { pool: { num_workers: 3, max_jobs: 0 } }, logs: { mode: 'development', level: 'debug' } },
      ),
    ).toEqual(['http.pool.num_workers', 'logs.mode', 'logs.level']);
  });

  it('walks into an added or removed section, and lists by index', () => {
    expect(changedKeys({}, { logs: { level: 'debug' } })).toEqual(['logs.level']);
    expect(changedKeys({ logs: { encoding: 'json' } }, {})).toEqual(['logs.encoding']);
    // the loader's null for a section the file leaves out: a logs: added later is its keys, not "logs"
    expect(changedKeys({ logs: null }, { logs: { level: 'debug' } })).toEqual(['logs.level']);
    expect(changedKeys({ logs: { level: 'debug' } }, { logs: null })).toEqual(['logs.level']);
    expect(changedKeys({ sites: [{ hosts: ['a'] }] }, { sites: [{ hosts: ['a', 'b'] }, { hosts: ['c'] }] })).toEqual([
      'sites[0].hosts[1]',
      'sites[1] (c) added',
    ]);
  });

  it('says nothing of an unchanged file', () => {
    const config = { http: { address: ':8080' }, sites: [{ hosts: ['a'] }] };
    expect(changedKeys(config, structuredClone(config))).toEqual([]);
  });

  it('matches sites by their hosts: a site inserted above others is named as added, and they as unchanged', () => {
    const classic = { hosts: ['classic.test'], fastcgi: { root: 'classic' } };
    const static_ = { hosts: ['static.test'], root: 'static' };
    const before = { sites: [classic, static_] };
    const after = { sites: [{ hosts: ['new.test'], root: 'new' }, structuredClone(classic), structuredClone(static_)] };
    expect(changedKeys(before, after)).toEqual(['sites[0] (new.test) added']);
    expect(changedKeys(after, before)).toEqual(['sites[0] (new.test) removed']);
  });

  it('names a moved site by its new place when it changed, and a site whose hosts changed as that site', () => {
    const a = { hosts: ['a.test'], http: { pool: { num_workers: 2 } } };
    const b = { hosts: ['b.test', 'www.b.test'] };
    expect(
      changedKeys(
        { sites: [a, b] },
        { sites: [{ hosts: ['b.test'] }, { hosts: ['a.test'], http: { pool: { num_workers: 3 } } }] },
      ),
    ).toEqual(['sites[0].hosts[1]', 'sites[1].http.pool.num_workers']);
  });
});
