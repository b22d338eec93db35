// Which responses PHP (the backend) answered, as opposed to the plugin itself (a static file, an
// error page, a 404 of the script resolver): error_pages leave PHP's own statuses alone, and the
// server's micro-cache stores only PHP's pages, never a static file (which has its own ETag and
// Last-Modified, and would be served stale after a deploy).
const answered = new WeakSet<object>();

/** Called as the backend's response is sent. */
export function markBackendReply(request: { raw: object }): void {
  answered.add(request.raw);
}

/** True when the response to `request` is the backend's (PHP's), not the plugin's own. */
export function isBackendReply(request: { raw: object }): boolean {
  return answered.has(request.raw);
}
