// A root and its files changed under the static layer by someone who may write there (a tenant on
// a shared machine, where warmpool runs as root): what is checked is what is sent, or nothing is.
import { spawn, type ChildProcess } from 'node:child_process';
import { chownSync, lchownSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type LightMyRequestResponse,
} from 'fastify';
import { warmpool } from '../src/index.js';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidOptionError } from '../src/errors.js';
import { registerStatic, resolveStaticOptions, type StaticOptions } from '../src/static/static.js';

const isRoot = process.getuid?.() === 0;
const NOBODY = 65534;
const SECRET = 'SECRET-OUTSIDE-THE-ROOT';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function tempSite(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-static-swaps-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The static layer in front of a stand-in for PHP, as the plugin wires it. */
async function appWith(options: StaticOptions): Promise<FastifyInstance> {
  const resolved = resolveStaticOptions(options)!;
  const app = Fastify();
  cleanups.push(() => app.close());
  await app.register(async (child) => {
    const serveStatic = await registerStatic(child, resolved);
    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      if (await serveStatic(request, reply)) return reply;
      return 'PHP';
    };
    child.route({ method: ['GET', 'HEAD'], url: '/*', handler, exposeHeadRoute: false });
  });
  await app.ready();
  return app;
}

describe('static: a root switched to a link', () => {
  it.skipIf(!isRoot)(
    "a link its owner put in the root's place, to a folder of another's (/), is not followed; to the owner's own folder it is",
    async () => {
      const site = tempSite();
      const pub = join(site, 'public');
      mkdirSync(pub);
      writeFileSync(join(pub, 'index.txt'), 'SITE-INDEX\n');
      const app = await appWith({ root: pub, forbidden: 404 });
      expect((await app.inject('/index.txt')).body).toBe('SITE-INDEX\n');
      // the tenant who owns the folder above its root: mv public public.real && ln -s / public
      renameSync(pub, join(site, 'public.real'));
      symlinkSync('/', pub);
      lchownSync(pub, NOBODY, NOBODY);
      for (const path of ['/etc/passwd', '/etc/hostname']) {
        const res = await app.inject(path);
        expect(res.body, path).not.toMatch(/root:x:0:0/);
        expect(['PHP', 'Not Found\n'], path).toContain(res.body);
      }
      // and at start: such a root is refused, with what to do
      expect(() => resolveStaticOptions({ root: pub })).toThrow(InvalidOptionError);
      expect(() => resolveStaticOptions({ root: pub })).toThrow(
        /is a symlink of uid 65534's to \/, a folder of uid 0's outside the folder the link is in/,
      );
      // a deploy's current → releases/B, link and release of one user: followed
      const release = join(site, 'releases', 'b');
      mkdirSync(release, { recursive: true });
      writeFileSync(join(release, 'index.txt'), 'RELEASE-B\n');
      chownSync(release, NOBODY, NOBODY);
      const current = join(site, 'current');
      symlinkSync(release, current);
      lchownSync(current, NOBODY, NOBODY);
      const deployed = await appWith({ root: current, forbidden: 404 });
      expect((await deployed.inject('/index.txt')).body).toBe('RELEASE-B\n');
      // and a release chowned to www-data (another user), inside the folder of the link: followed too
      const other = join(site, 'releases', 'c');
      mkdirSync(other);
      writeFileSync(join(other, 'index.txt'), 'RELEASE-C\n');
      chownSync(other, 33, 33);
      const next = join(site, 'next');
      symlinkSync(other, next);
      lchownSync(next, NOBODY, NOBODY);
      const switched = await appWith({ root: next, forbidden: 404 });
      expect((await switched.inject('/index.txt')).body).toBe('RELEASE-C\n');
    },
  );
});

/**
 * A process that swaps `name` between a regular file (a hard link of `file`) and a symlink to
 * `target`, as fast as it can, each swap one rename (atomic), until killed.
 */
function startSwapping(dir: string, name: string, file: string, target: string): ChildProcess {
  const script = `
    const fs = require('node:fs'), path = require('node:path');
    const [dir, name, file, target] = process.argv.slice(1);
    const at = path.join(dir, name), a = path.join(dir, '.swap-a'), b = path.join(dir, '.swap-b');
    process.stdout.write('swapping\\n');
    for (;;) {
      fs.rmSync(a, { force: true }); fs.linkSync(file, a); fs.renameSync(a, at);
      fs.rmSync(b, { force: true }); fs.symlinkSync(target, b); fs.renameSync(b, at);
    }`;
  const child = spawn(process.execPath, ['-e', script, dir, name, file, target], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  return child;
}

/** A folder `name` in a temp site, a secret outside it, and a decoy of `bytes` to swap with a link to it. */
function swapSite(name: string, bytes: number): { site: string; folder: string; decoy: string; secret: string } {
  const site = tempSite();
  const folder = join(site, name);
  mkdirSync(folder);
  const secret = join(site, 'secret.txt');
  writeFileSync(secret, `${SECRET}\n`);
  const decoy = join(site, 'decoy.txt');
  writeFileSync(decoy, Buffer.alloc(bytes, 'a'));
  return { site, folder, decoy, secret };
}

/**
 * While `name` in `folder` flips between the decoy and a link to the secret, 1,500 requests, five
 * at once as clients come (each one's checks and opens interleave with the others'): how many
 * answers `leaked` something of the secret, and how many `served` the decoy whole.
 */
async function raceSwaps(
  place: { folder: string; decoy: string; secret: string },
  name: string,
  ask: () => Promise<LightMyRequestResponse>,
  leaked: (res: LightMyRequestResponse) => boolean,
  served: (res: LightMyRequestResponse) => boolean,
): Promise<{ leaked: number; served: number }> {
  const swapper = startSwapping(place.folder, name, place.decoy, place.secret);
  await new Promise((resolve) => swapper.stdout!.once('data', resolve));
  const counts = { leaked: 0, served: 0 };
  for (let round = 0; round < 300; round++) {
    for (const res of await Promise.all(Array.from({ length: 5 }, ask))) {
      if (leaked(res)) counts.leaked++;
      if (served(res)) counts.served++;
    }
  }
  return counts;
}

describe('static: a file swapped for a link while it is checked and sent', () => {
  for (const [label, bytes] of [
    ['the hot cache', 8 * 1024],
    ['a file sent from disk', 3 * 1024 * 1024],
  ] as const) {
    it(`${label}: never a byte of the link's target outside the root`, async () => {
      const place = swapSite('public', bytes);
      // every request checks its file again (revalidate_ms 0), so every one races the swaps
      const app = await appWith({ root: place.folder, forbidden: 404, hot_cache: { revalidate_ms: 0 } });
      const counts = await raceSwaps(
        place,
        'flip.txt',
        () => app.inject('/flip.txt'),
        (res) => res.body.includes(SECRET),
        (res) => res.statusCode === 200 && res.rawPayload.length === bytes,
      );
      // none of the secret; the regular file is still served when it is one at the open
      expect(counts.leaked).toBe(0);
      expect(counts.served).toBeGreaterThan(0);
    });
  }

  it("a HEAD: never the size or date of the link's target, its headers come from a stat that is checked too", async () => {
    // before: a HEAD has no file stream to check, and its Content-Length was the target's
    const bytes = 3 * 1024 * 1024;
    const place = swapSite('public', bytes);
    const app = await appWith({ root: place.folder, forbidden: 404, hot_cache: { revalidate_ms: 0 } });
    const counts = await raceSwaps(
      place,
      'flip.txt',
      () => app.inject({ method: 'HEAD', url: '/flip.txt' }),
      (res) => res.headers['content-length'] === String(SECRET.length + 1),
      (res) => res.statusCode === 200 && res.headers['content-length'] === String(bytes),
    );
    expect(counts.leaked).toBe(0);
    expect(counts.served).toBeGreaterThan(0);
  });
});

describe('internal_files: a handed-over file swapped for a link while it is checked and sent', () => {
  it("never a byte of the link's target: X-Accel-Redirect to a name flipped to /etc/shadow's stand-in", async () => {
    // before: the name was checked (realpath), then send opened it again by name: the target went out
    const place = swapSite('private', 64 * 1024);
    const app = Fastify();
    cleanups.push(() => app.close());
    await app.register(warmpool, {
      command: ['php', fileURLToPath(new URL('../../../test/fixtures/php/hands-over-file.php', import.meta.url))],
      pool: { num_workers: 2 },
      internal_files: { root: place.folder, prefix: '/protected/' },
    });
    await app.ready();
    const counts = await raceSwaps(
      place,
      'r.txt',
      () => app.inject('/download?accel=/protected/r.txt'),
      (res) => res.body.includes(SECRET),
      (res) => res.statusCode === 200 && res.rawPayload.length === 64 * 1024,
    );
    expect(counts.leaked).toBe(0);
    expect(counts.served).toBeGreaterThan(0);
  });
});
