// Which responses PHP (the backend) answered, as opposed to the plugin itself (a static file, an
// error page, a 404 of the script resolver): error_pages leave PHP's own statuses alone, and the
// server's micro-cache stores only PHP's pages, never a static file (which has its own ETag and
// Last-Modified, and would be served stale after a deploy).
// The script a classic answer came from goes with it: a kept copy must meet that script's rules again.
const answered = new WeakMap<object, string | null>();

/** Called as the backend's response is sent; `script`: the classic script that ran (its URL path). */
export function markBackendReply(request: { raw: object }, script: string | null = null): void {
  answered.set(request.raw, script);
}

/** True when the response to `request` is the backend's (PHP's), not the plugin's own. */
export function isBackendReply(request: { raw: object }): boolean {
  return answered.has(request.raw);
}

/** The classic script whose answer this is ("/index.php" for "/"); null for a worker's or none. */
export function backendScriptOf(request: { raw: object }): string | null {
  return answered.get(request.raw) ?? null;
}
