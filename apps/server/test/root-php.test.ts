// Started as root with no server.user, the PHP warmpool starts runs as root: said at each such
// site, for worker loops and managed php-cgi, never for a site whose PHP is php-fpm's.
import { parseConfig, toServerOptions } from '@warmpool/config';
import { describe, expect, it } from 'vitest';
import { phpUserProblems, rootPhpWarnings } from '../src/root-php.js';

function warnings(yaml: string, uid: number) {
  const loaded = parseConfig(yaml, { file: '/etc/warmpool.yaml', env: {} });
  return rootPhpWarnings(toServerOptions(loaded, { lookupUser: () => ({ uid: 33, gid: 33 }) }), loaded, uid);
}

const config = `version: "3"
server:
  command: php worker.php
http:
  address: 127.0.0.1:8080
sites:
  - hosts: [worker.test]
  - hosts: [classic.test]
    fastcgi: { root: /var/www/html }
  - hosts: [fpm.test]
    fastcgi: { root: /var/www/html, pass: "unix:/run/php/php8.2-fpm.sock" }
  - hosts: [dropped.test]
    server: { user: www-data }
    fastcgi: { root: /var/www/html }
`;

describe('rootPhpWarnings', () => {
  it('names each site whose PHP would run as root, at its line, and what to set', () => {
    const found = warnings(config, 0);
    // the default site (other hosts) runs server.command too
    expect(found.map((w) => [w.key, w.line])).toEqual([
      ['sites[0].server.user', 7],
      ['sites[1].server.user', 8],
      ['server.user', 2],
    ]);
    expect(found[0]!.message).toBe(
      'not set, and warmpool runs as root: the PHP processes of worker.test run as root, so a flaw in the app (an upload, a plugin) is root on this machine; set server.user (e.g. www-data), as php-fpm refuses root pools',
    );
    expect(found[1]!.message).toContain('the PHP processes of classic.test run as root');
  });

  it('says nothing when warmpool is not root, or when server.user is set for every site', () => {
    expect(warnings(config, 1000)).toEqual([]);
    const withUser = config.replace('  command: php worker.php', '  command: php worker.php\n  user: www-data');
    expect(warnings(withUser, 0)).toEqual([]);
  });

  it('points at the top-level server section for the default site', () => {
    const [only, ...rest] = warnings(
      'version: "3"\nserver:\n  command: php worker.php\nhttp: { address: ":8080" }\n',
      0,
    );
    expect(rest).toEqual([]);
    expect([only!.key, only!.file, only!.line]).toEqual(['server.user', '/etc/warmpool.yaml', 2]);
    expect(only!.message).toContain('the PHP processes run as root');
  });
});

describe('phpUserProblems', () => {
  function problems(yaml: string, own: { uid: number; gid: number }) {
    const loaded = parseConfig(yaml, { file: '/etc/warmpool.yaml', env: {} });
    const server = toServerOptions(loaded, {
      lookupUser: (name) =>
        name === 'www-data' ? { uid: 33, gid: 33 } : name === 'alice' ? { uid: 1000, gid: 1000 } : null,
      lookupGroup: (name) => (name === 'staff' ? 50 : null),
    });
    return phpUserProblems(server, loaded, own).map((p) => [p.key, p.line, p.reason]);
  }
  const base = 'version: "3"\nserver:\n  command: php worker.php\nhttp: { address: ":8080" }\n';

  it('refuses a server.user other than warmpool user when not root, at the key that set it', () => {
    const found = problems(
      `${base}sites:\n  - hosts: [shop.test]\n    server: { user: www-data }\n  - hosts: [fpm.test]\n    server: { user: www-data }\n    fastcgi: { root: /srv, pass: "127.0.0.1:9000" }\n`,
      { uid: 1000, gid: 1000 },
    );
    // the php-fpm site runs no PHP of warmpool: its server.user is not used
    expect(found).toEqual([
      [
        'sites[0].server.user',
        7,
        expect.stringMatching(
          /^switching PHP to user "www-data" needs root; warmpool runs as uid 1000: run it as root \(it drops to that user for PHP\), or remove server\.user$/,
        ),
      ],
    ]);
  });

  it('a group warmpool is not in as its own: server.group, or the user primary group', () => {
    const group = problems(base.replace('  command', '  user: alice\n  group: staff\n  command'), {
      uid: 1000,
      gid: 1000,
    });
    expect(group).toEqual([['server.group', 4, expect.stringContaining('switching PHP to group "staff" needs root')]]);
    const primary = problems(base.replace('  command', '  user: alice\n  command'), { uid: 1000, gid: 100 });
    expect(primary).toEqual([
      [
        'server.user',
        3,
        expect.stringMatching(
          /^switching PHP to gid 1000 \(the primary group of user "alice"\) needs root; .*gid 100: .*set server\.group to 100, or remove server\.user$/,
        ),
      ],
    ]);
  });

  it('nothing as root, or when server.user is warmpool user and group already', () => {
    const yaml = base.replace('  command', '  user: www-data\n  command');
    expect(problems(yaml, { uid: 0, gid: 0 })).toEqual([]);
    expect(problems(yaml, { uid: 33, gid: 33 })).toEqual([]);
    expect(problems(base, { uid: 1000, gid: 1000 })).toEqual([]);
  });
});
