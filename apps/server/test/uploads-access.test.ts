// server.user must be able to reach the worker site's uploads folder, or PHP cannot open what was
// uploaded: warned at the key, with the folder that blocks it and how to fix it.
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, toServerOptions } from '@warmpool/config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uploadsAccessWarnings } from '../src/uploads-access.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'wp-uploads-access-'));
  chmodSync(dir, 0o755); // mkdtemp's 0700 would block both
  // a folder only its owner may search, with the uploads folder under it; another one anyone may
  mkdirSync(join(dir, 'private', 'uploads'), { recursive: true });
  chmodSync(join(dir, 'private'), 0o700);
  mkdirSync(join(dir, 'open', 'uploads'), { recursive: true });
  chmodSync(join(dir, 'open'), 0o755);
  chmodSync(join(dir, 'open', 'uploads'), 0o733);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function warnings(sites: string, temp = join(dir, 'open', 'uploads')) {
  const yaml = `version: "3"
server:
  command: php worker.php
  user: nobody
http:
  address: 127.0.0.1:8080
sites:
${sites}`;
  const loaded = parseConfig(yaml, { file: join(dir, 'warmpool.yaml'), env: {} });
  const server = toServerOptions(loaded, { lookupUser: () => ({ uid: 65534, gid: 65534 }) });
  return uploadsAccessWarnings(server, loaded, temp);
}

describe('uploadsAccessWarnings', () => {
  it('warns at http.uploads.dir when server.user cannot search a folder on the way, naming it', () => {
    // the folder is mode 0700 and not the user's (the suite runs as root or as its own user)
    const found = warnings(`  - hosts: [a.test]
    http:
      uploads: { dir: ${join(dir, 'private', 'uploads')} }
  - hosts: [b.test]
    http:
      uploads: { dir: ${join(dir, 'open', 'uploads')} }
`);
    const blocked = found.filter((w) => w.key.startsWith('sites['));
    expect(blocked.map((w) => [w.key, w.line])).toEqual([['sites[0].http.uploads.dir', 10]]);
    expect(blocked[0]!.message).toMatch(
      new RegExp(
        `^server\\.user nobody \\(uid 65534\\) cannot reach the uploads folder ${join(dir, 'private', 'uploads')}: ${join(dir, 'private')} is mode 0700, owned by uid \\d+, gid \\d+, so PHP cannot open the files uploaded to it \\(\\$_FILES tmp_name\\); let that user search it \\(chmod o\\+x ${join(dir, 'private')}\\) or set http\\.uploads\\.dir to a folder it can reach$`,
      ),
    );
  });

  it('checks the temp folder when uploads.dir is unset; says nothing of classic sites and sites of no PHP', () => {
    const sites = `  - hosts: [worker.test]
  - hosts: [classic.test]
    fastcgi: { root: /var/www/html }
  - hosts: [files.test]
    php: false
    http:
      middleware: [static]
      static: { dir: /var/www/html }
`;
    const unreachable = warnings(sites, join(dir, 'private', 'uploads'));
    // worker.test, and the default site (other hosts), which runs the command too
    expect(unreachable.map((w) => w.key)).toEqual(['server.user', 'server.user']);
    expect(warnings(sites)).toEqual([]);
  });
});
