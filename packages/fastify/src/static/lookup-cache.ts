// The script resolver's lookups (realpath + stat of the root and of each candidate), remembered for
// a second: nginx's open_file_cache for classic mode. Without it every request of a classic site
// pays two or three realpath and stat round trips through libuv's thread pool before PHP runs.
//
// Only what exists is remembered: a file PHP has just written (an upload, a generated asset) is
// found at once, as nginx does with open_file_cache_errors off (its default). A file removed, or a
// link changed, is seen within ttlMs.
//
// Whole verdicts are remembered on top, by target, for as long as every lookup they were made of:
// a request for a script that exists ("/doku.php?id=start", "/wp-login.php", "/") then skips the
// resolver's chain of async steps (about a tenth of a classic request's JavaScript garbage). A
// verdict that met missing files (a pretty URL "/blog/hello/" reaching try_files' /index.php) is
// remembered with those paths, and each use checks them again: still missing, the verdict holds.
// That check is a blocking access(2), as nginx's own stat of try_files, which costs about a
// microsecond; a failed realpath through libuv's thread pool cost a pretty URL ~40 % of hello's
// rps. So a file created now is still found at once.
import { existsSync } from 'node:fs';
import {
  resolveScriptTarget,
  type ResolverFileSystem,
  type ScriptResolver,
  type ScriptVerdict,
} from './script-resolver.js';

type Lookup = NonNullable<Awaited<ReturnType<ResolverFileSystem['lookup']>>>;

/** A remembered lookup and the time (on the cache's clock) it is remembered until. */
export interface LookupEntry {
  readonly result: Lookup;
  readonly until: number;
}

export interface LookupCache extends ResolverFileSystem {
  /** The lookup with its expiry; null when the path does not exist (never remembered). */
  entry(path: string): Promise<LookupEntry | null>;
}

/** A second, as the static hot cache's revalidate_ms. */
export const DEFAULT_LOOKUP_TTL_MS = 1000;
/** Beyond it a cache is cleared (a crawler asking for every page must not grow it without bound). */
const MAX_ENTRIES = 10_000;
/**
 * Longer targets are resolved every time: a verdict is remembered by its whole target, query
 * included, and a client choosing long unique queries must not fill memory with them.
 */
const MAX_REMEMBERED_TARGET = 256;

const performanceNow = performance.now.bind(performance);

export function createLookupCache(
  base: ResolverFileSystem,
  ttlMs = DEFAULT_LOOKUP_TTL_MS,
  now: () => number = performanceNow,
): LookupCache {
  const entries = new Map<string, LookupEntry>();
  const entry = async (path: string): Promise<LookupEntry | null> => {
    const at = now();
    const hit = entries.get(path);
    if (hit !== undefined && hit.until > at) return hit;
    const result = await base.lookup(path);
    if (result === null) {
      entries.delete(path);
      return null;
    }
    if (entries.size >= MAX_ENTRIES) entries.clear();
    const fresh: LookupEntry = { result, until: at + ttlMs };
    entries.set(path, fresh);
    return fresh;
  };
  return {
    entry,
    async lookup(path) {
      return (await entry(path))?.result ?? null;
    },
  };
}

/**
 * The resolver, remembering each verdict until the first of the lookups that found something
 * expires (at most ttlMs), and only while the paths it found missing still are: within that time
 * resolving the target again would read the same remembered lookups, miss the same paths, and reach
 * the same verdict. `lookups` and `now` must be the pair the lookups were cached with; `exists` is
 * the blocking check of a missing path.
 */
export function cacheVerdicts(
  resolver: ScriptResolver,
  lookups: LookupCache,
  ttlMs = DEFAULT_LOOKUP_TTL_MS,
  now: () => number = performanceNow,
  exists: (path: string) => boolean = existsSync,
): ScriptResolver {
  const verdicts = new Map<string, RememberedVerdict>();

  async function resolveAndRemember(target: string): Promise<ScriptVerdict> {
    let until = now() + ttlMs; // a verdict made without any lookup (a dotfile, a bad encoding)
    const missing: string[] = [];
    const tracking: ResolverFileSystem = {
      async lookup(path) {
        const entry = await lookups.entry(path);
        if (entry === null) {
          missing.push(path);
          return null;
        }
        if (entry.until < until) until = entry.until;
        return entry.result;
      },
    };
    const verdict = await resolveScriptTarget(resolver.options, tracking, target);
    if (missing.length <= MAX_MISSING) {
      if (verdicts.size >= MAX_ENTRIES) verdicts.clear();
      verdicts.set(target, { verdict, until, missing: missing.length === 0 ? NONE_MISSING : missing });
    } else {
      verdicts.delete(target);
    }
    return verdict;
  }

  /** Every path the verdict found missing is missing still (a blocking check: see the top). */
  function stillMissing(paths: readonly string[]): boolean {
    for (const path of paths) if (exists(path)) return false;
    return true;
  }

  return {
    options: resolver.options,
    resolve(target) {
      if (target.length > MAX_REMEMBERED_TARGET) return resolver.resolve(target);
      const hit = verdicts.get(target);
      if (hit !== undefined && hit.until > now() && (hit.missing.length === 0 || stillMissing(hit.missing))) {
        return Promise.resolve(hit.verdict);
      }
      return resolveAndRemember(target);
    },
  };
}

interface RememberedVerdict {
  readonly verdict: ScriptVerdict;
  readonly until: number;
  /** the paths it found missing: the verdict holds while they are */
  readonly missing: readonly string[];
}

const NONE_MISSING: readonly string[] = Object.freeze([]);
/** "$uri", "$uri/" and a few split_path candidates; a verdict that met more is resolved each time */
const MAX_MISSING = 8;
