// The hostile-path corpus (fixtures/sites/hostile-paths.txt) against the static layer on a real
// socket (helpers/hostile-paths.ts writes each target byte for byte).
// Whatever a path decodes to, nothing outside the root, no PHP source and no dotfile comes back.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, gzipSync } from 'node:zlib';
import Fastify, { type FastifyInstance } from 'fastify';
import { warmpool } from '@warmpool/fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOSTILE_PATHS, sendCorpus, type RawResponse } from '../helpers/hostile-paths.js';

const SITES = fileURLToPath(new URL('../fixtures/sites/', import.meta.url));

// Nothing of these may ever be in a response body.
const OUTSIDE_MARKER = 'TOP-SECRET: this file sits outside the static root';
const NEVER = [OUTSIDE_MARKER, 'root:x:0:0', '<?php', 'ENV-FILE-MARKER', 'GIT-CONFIG-MARKER', 'HIDDEN-FOLDER-MARKER'];
const STATUSES = [200, 301, 302, 304, 400, 403, 404];

let site: string;
let legit: Set<string>;
const apps: FastifyInstance[] = [];

beforeAll(() => {
  // static-basic plus what git does not hold (see its README): .git/config, compressed siblings,
  // and symlinks out of the root.
  site = mkdtempSync(join(tmpdir(), 'warmpool-hostile-'));
  cpSync(join(SITES, 'static-basic'), site, { recursive: true });
  const pub = join(site, 'public');
  const css = readFileSync(join(pub, 'style.css'));
  writeFileSync(join(pub, 'style.css.br'), brotliCompressSync(css));
  writeFileSync(join(pub, 'style.css.gz'), gzipSync(css));
  mkdirSync(join(pub, '.git'));
  writeFileSync(join(pub, '.git', 'config'), '[core]\n\t# GIT-CONFIG-MARKER\n');
  symlinkSync('../outside/top-secret.txt', join(pub, 'escape.txt'));
  symlinkSync('../outside', join(pub, 'escape-dir'));
  symlinkSync('/etc/passwd', join(pub, 'passwd.txt'));
  symlinkSync('/', join(pub, 'root-link'));
  symlinkSync('.env', join(pub, 'alias.txt'));
  symlinkSync('style.css', join(pub, 'style-link.css'));
  symlinkSync('../outside/top-secret.txt', join(pub, 'evil.css.br'));
  // The only bodies a 200 may carry besides PHP's echo.
  legit = new Set(
    [
      'index.html',
      'style.css',
      'style.css.br',
      'style.css.gz',
      'img.svg',
      'readme.txt',
      'nested/dir/index.html',
      'assets/app.js',
      'evil.css',
    ].map((file) => readFileSync(join(pub, file)).toString('latin1')),
  );
});

afterAll(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  rmSync(site, { recursive: true, force: true });
});

/** A listening app: the real plugin with static files in front of a PHP worker echoing the target. */
async function listen(options: Record<string, unknown>): Promise<number> {
  const app = Fastify();
  apps.push(app);
  await app.register(warmpool, {
    command: ['php', fileURLToPath(new URL('../fixtures/php/target-echo.php', import.meta.url))],
    pool: { num_workers: 2 },
    static: { dir: join(site, 'public'), ...options },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return (app.server.address() as { port: number }).port;
}

function assertSafe(results: Map<string, RawResponse>): void {
  for (const [target, res] of results) {
    for (const secret of NEVER) expect(res.body.includes(secret), `${target} leaked ${secret}`).toBe(false);
    expect(STATUSES, `${target} answered ${res.status}`).toContain(res.status);
    if (res.status === 200) {
      expect(
        res.body.startsWith('PHP:') || legit.has(res.body),
        `${target}: a 200 is PHP's answer or a public file`,
      ).toBe(true);
    }
    if (res.status === 301 || res.status === 302) {
      const location = /\r\nlocation: ([^\r]*)/i.exec(res.head)?.[1] ?? '';
      // Stays on this host: one leading slash, no backslash.
      expect(location, target).toMatch(/^\/(?![/\\])[^\\]*$/);
    }
  }
}

describe('hostile paths over a raw socket', () => {
  it('the corpus is big enough to mean something', () => {
    expect(HOSTILE_PATHS.length).toBeGreaterThanOrEqual(200);
  });

  it('forbidden: "php" (default): nothing secret comes back; forbidden and invalid paths reach PHP', async () => {
    const port = await listen({});
    const results = await sendCorpus(port, '');
    assertSafe(results);
    // The static layer did its job on the plain cases, rather than the server failing everything.
    expect(results.get('/style.css')!.body).toBe(readFileSync(join(site, 'public', 'style.css'), 'latin1'));
    expect(results.get('/nested/dir')!.status).toBe(301);
    for (const target of [
      '/secret.php',
      '/.env',
      '/.git/config',
      '/escape.txt',
      '/passwd.txt',
      '/../../../../../../etc/passwd',
      '/secret.php%00.css',
    ]) {
      expect(results.get(target)!.body, target).toBe(`PHP:${target}`);
    }
  });

  it('forbidden: 403 with precompressed siblings in play: nothing secret comes back either', async () => {
    const port = await listen({ forbidden: 403 });
    const results = await sendCorpus(port, 'Accept-Encoding: br, gzip\r\n');
    assertSafe(results);
    // existing files only: a forbidden-looking name that is no file (/SECRET.PHP on a
    // case-sensitive disk) is a route of the app and goes to PHP
    for (const target of [
      '/secret.php',
      '/upper.PHP',
      '/.env',
      '/.git/config',
      '/escape.txt',
      '/root-link/etc/passwd',
      '/alias.txt',
    ]) {
      expect(results.get(target)!.status, target).toBe(403);
    }
    // evil.css is public, its .br sibling links out of the root: refused rather than sent.
    expect(results.get('/evil.css')!.status).toBe(403);
  });
});
