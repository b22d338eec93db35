import { describe, expect, it } from 'vitest';
import { wildcardNotices } from '../../src/acme/automatic-https.js';

describe('wildcard hosts under http.ssl.acme (said at start)', () => {
  const sites = [
    { name: 'a.test', hosts: ['a.test', '*.a.test'] },
    { name: 'b.test', hosts: ['*.b.test'] },
    { name: 'default', hosts: null },
  ];

  it('names the listed names under each wildcard; none listed is a warning with what to do', () => {
    const notices = wildcardNotices(['a.test', 'www.a.test', 'deep.www.a.test', 'b.test'], sites);
    expect(notices).toEqual([
      {
        listed: true,
        line: 'http.ssl.acme: *.a.test (site a.test) gets no certificate of its own (HTTP-01 and TLS-ALPN-01 cannot prove a wildcard); listed under it: www.a.test; any other name under it gets the default certificate',
      },
      {
        listed: false,
        line: 'http.ssl.acme: *.b.test (site b.test) gets no certificate of its own (HTTP-01 and TLS-ALPN-01 cannot prove a wildcard); names under it get the default certificate: list the ones you serve in http.ssl.acme.domains',
      },
    ]);
  });

  it('says nothing without wildcard hosts', () => {
    expect(
      wildcardNotices(
        ['a.test'],
        [
          { name: 'a.test', hosts: ['a.test'] },
          { name: 'default', hosts: null },
        ],
      ),
    ).toEqual([]);
  });
});
