// Bodies sent again and again as the very same Buffer: a static file of the hot cache, a page of the
// server's micro-cache. Whoever transforms a body for each response (compression) may keep its
// result for such a body, which it finds here, and drop it with the body (a weak set: a body the
// cache evicted is gone with all that was kept for it).
const reused = new WeakSet<Buffer>();

/** Says `body` will be sent again unchanged (its owner never writes into it). */
export function markReusedBody(body: Buffer): void {
  reused.add(body);
}

/** Whether `payload` is a body marked with markReusedBody. */
export function isReusedBody(payload: unknown): payload is Buffer {
  return Buffer.isBuffer(payload) && reused.has(payload);
}
