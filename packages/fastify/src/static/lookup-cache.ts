// The script resolver's lookups (realpath + stat of the root and of each candidate), remembered for
// a second: nginx's open_file_cache for classic mode. Without it every request of a classic site
// pays two or three realpath and stat round trips through libuv's thread pool before PHP runs.
//
// Only what exists is remembered: a file PHP has just written (an upload, a generated asset) is
// found at once, as nginx does with open_file_cache_errors off (its default). A file removed, or a
// link changed, is seen within ttlMs.
import type { ResolverFileSystem } from './script-resolver.js';

type Lookup = Awaited<ReturnType<ResolverFileSystem['lookup']>>;

/** A second, as the static hot cache's revalidate_ms. */
export const DEFAULT_LOOKUP_TTL_MS = 1000;
/** Beyond it the cache is cleared (a crawler asking for every page must not grow it without bound). */
const MAX_ENTRIES = 10_000;

export function createLookupCache(
  base: ResolverFileSystem,
  ttlMs = DEFAULT_LOOKUP_TTL_MS,
  now: () => number = performance.now.bind(performance),
): ResolverFileSystem {
  const entries = new Map<string, { result: NonNullable<Lookup>; until: number }>();
  return {
    async lookup(path) {
      const at = now();
      const hit = entries.get(path);
      if (hit !== undefined && hit.until > at) return hit.result;
      const result = await base.lookup(path);
      if (result === null) {
        entries.delete(path);
        return null;
      }
      if (entries.size >= MAX_ENTRIES) entries.clear();
      entries.set(path, { result, until: at + ttlMs });
      return result;
    },
  };
}
