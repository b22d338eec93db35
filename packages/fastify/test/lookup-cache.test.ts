// The script resolver's lookup cache (nginx's open_file_cache) on a real directory: what exists is
// remembered for its ttl, what is missing never is (a file PHP just wrote is found at once). Whole
// verdicts on top: remembered while every lookup they were made of is, and while every path they
// found missing still is.
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFilePolicy } from '../src/static/file-policy.js';
import { cacheVerdicts, createLookupCache, type LookupCache } from '../src/static/lookup-cache.js';
import { createScriptResolver, NODE_FILE_SYSTEM, type ResolverFileSystem } from '../src/static/script-resolver.js';
import { DEFAULT_STATIC_FORBID } from '../src/static/static.js';

const dir = realpathSync(mkdtempSync(join(tmpdir(), 'warmpool-lookup-')));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The real filesystem, counting its lookups. */
function counted(): ResolverFileSystem & { calls: number } {
  const fs = {
    calls: 0,
    lookup(path: string) {
      fs.calls++;
      return NODE_FILE_SYSTEM.lookup(path);
    },
  };
  return fs;
}

describe('lookup cache', () => {
  it('answers a file from memory within the ttl, and looks again after it', async () => {
    const file = join(dir, 'index.php');
    writeFileSync(file, '<?php');
    let now = 0;
    const base = counted();
    const cache = createLookupCache(base, 1000, () => now);
    expect(await cache.lookup(file)).toEqual({ real: file, kind: 'file' });
    now = 999;
    expect(await cache.lookup(file)).toEqual({ real: file, kind: 'file' });
    expect(base.calls).toBe(1);
    rmSync(file);
    now = 1000;
    expect(await cache.lookup(file)).toBeNull();
    expect(base.calls).toBe(2);
  });

  it('never remembers a missing file: it is found as soon as it exists', async () => {
    const file = join(dir, 'upload.jpg');
    const base = counted();
    const cache = createLookupCache(base, 1000, () => 0);
    expect(await cache.lookup(file)).toBeNull();
    writeFileSync(file, 'x');
    expect(await cache.lookup(file)).toEqual({ real: file, kind: 'file' });
    expect(base.calls).toBe(2);
  });
});

describe('verdict cache', () => {
  /** A site root with index.php, a resolver over a counted filesystem, and a clock the test moves. */
  function site(name: string) {
    const root = join(dir, name);
    mkdirSync(root);
    writeFileSync(join(root, 'index.php'), '<?php');
    writeFileSync(join(root, 'doku.php'), '<?php');
    const clock = { now: 0 };
    const base = counted();
    const lookups = createLookupCache(base, 1000, () => clock.now);
    // counts what reaches the lookup cache: a remembered verdict makes no lookup at all
    const seen = { entries: 0 };
    const counting: LookupCache = {
      entry: (path) => {
        seen.entries++;
        return lookups.entry(path);
      },
      lookup: (path) => {
        seen.entries++;
        return lookups.lookup(path);
      },
    };
    const policy = createFilePolicy({ forbid: DEFAULT_STATIC_FORBID, allow: null });
    // the paths a remembered verdict checks again (those it found missing)
    const checked: string[] = [];
    const resolver = cacheVerdicts(
      createScriptResolver({ root, static_policy: policy }, counting),
      counting,
      1000,
      () => clock.now,
      (path) => {
        checked.push(path);
        return existsSync(path);
      },
    );
    return { root, clock, base, seen, resolver, checked };
  }

  it('answers a script that exists from memory, until the first of its lookups expires', async () => {
    const { root, clock, seen, resolver } = site('remembered');
    const first = await resolver.resolve('/doku.php?id=start');
    expect(first).toMatchObject({ kind: 'script', scriptName: '/doku.php', queryString: 'id=start' });
    const lookups = seen.entries;
    expect(lookups).toBeGreaterThan(0);
    // the root's lookup (made at 0) bounds a verdict made later of it and a fresh one
    clock.now = 600;
    expect(await resolver.resolve('/index.php')).toMatchObject({ kind: 'script', scriptName: '/index.php' });
    const afterSecond = seen.entries;
    clock.now = 999;
    expect(await resolver.resolve('/doku.php?id=start')).toBe(first);
    expect(await resolver.resolve('/index.php')).toMatchObject({ scriptName: '/index.php' });
    expect(seen.entries).toBe(afterSecond);
    // another query is another target: resolved, then remembered too
    expect(await resolver.resolve('/doku.php?id=other')).toMatchObject({ queryString: 'id=other' });
    expect(seen.entries).toBeGreaterThan(afterSecond);
    // removed: seen once the lookups expire (a script that is not there is a 404)
    rmSync(join(root, 'doku.php'));
    clock.now = 1000;
    expect(await resolver.resolve('/doku.php?id=start')).toEqual({ kind: 'not-found', status: 404 });
    // /index.php's verdict, made at 600, ended with the root's lookup made at 0
    const atExpiry = seen.entries;
    await resolver.resolve('/index.php');
    expect(seen.entries).toBeGreaterThan(atExpiry);
  });

  it('remembers a pretty URL until what it found missing exists: a file created now is served at once', async () => {
    const { root, seen, resolver, checked } = site('pretty');
    // a pretty URL: "$uri" and "$uri/" find nothing, the fallback runs index.php
    const first = await resolver.resolve('/hello.css');
    expect(first).toMatchObject({ kind: 'script', scriptName: '/index.php' });
    const before = seen.entries;
    expect(await resolver.resolve('/hello.css')).toBe(first);
    expect(seen.entries).toBe(before); // no lookup: only the missing paths were checked again
    expect(checked).toEqual([join(root, 'hello.css'), join(root, 'hello.css/')]);
    writeFileSync(join(root, 'hello.css'), 'body{}');
    expect(await resolver.resolve('/hello.css')).toMatchObject({ kind: 'static' });
    expect(seen.entries).toBeGreaterThan(before);
  });

  it('looks each path up once while resolving a pretty URL', async () => {
    const root = join(dir, 'once');
    mkdirSync(root);
    writeFileSync(join(root, 'index.php'), '<?php');
    const paths: string[] = [];
    const fs: ResolverFileSystem = {
      lookup(path) {
        paths.push(path);
        return NODE_FILE_SYSTEM.lookup(path);
      },
    };
    const policy = createFilePolicy({ forbid: DEFAULT_STATIC_FORBID, allow: null });
    const resolver = createScriptResolver({ root, static_policy: policy }, fs);
    expect(await resolver.resolve('/blog/hello-world/')).toMatchObject({ kind: 'script', scriptName: '/index.php' });
    // the root, "/blog/hello-world/" (as "$uri" and "$uri/", as a file and a directory), /index.php
    expect(paths).toEqual([root, join(root, 'blog/hello-world/'), join(root, 'index.php')]);
  });

  it('resolves a long target every time rather than remember it', async () => {
    const { seen, resolver } = site('long');
    const target = `/index.php?${'x'.repeat(300)}`;
    await resolver.resolve(target);
    const once = seen.entries;
    expect(await resolver.resolve(target)).toMatchObject({ kind: 'script', scriptName: '/index.php' });
    expect(seen.entries).toBeGreaterThan(once);
  });
});
