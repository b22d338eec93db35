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
      'sites[1].hosts',
    ]);
  });

  it('says nothing of an unchanged file', () => {
    const config = { http: { address: ':8080' }, sites: [{ hosts: ['a'] }] };
    expect(changedKeys(config, structuredClone(config))).toEqual([]);
  });
});
