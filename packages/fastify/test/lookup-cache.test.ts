// The script resolver's lookup cache (nginx's open_file_cache) on a real directory: what exists is
// remembered for its ttl, what is missing never is (a file PHP just wrote is found at once).
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLookupCache } from '../src/static/lookup-cache.js';
import { NODE_FILE_SYSTEM, type ResolverFileSystem } from '../src/static/script-resolver.js';

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
