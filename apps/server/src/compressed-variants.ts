// A body sent again and again (a micro-cache hit, a static file of the hot cache: reused-bodies.ts)
// is compressed once per encoding and the result kept with it, not compressed anew for every
// client: a cached 239 KB page took the server to 111-184 requests a second with gzip or br (each
// hit a whole compression), against 4,738 without and nginx's 394-451 (a probe). The copies live as
// long as the body does (a weak map: the cache that evicts the body drops them), and are made the
// way @fastify/compress makes them for any other body (its levels; brotli's window of the rest).
import { brotliCompress, deflate, gzip } from 'node:zlib';
import { BROTLI_PARAMS, type Encoding } from './streamed-compression.js';

type Made = (error: Error | null, compressed: Buffer) => void;

const COMPRESS: Readonly<Record<Encoding, (body: Buffer, done: Made) => void>> = {
  br: (body, done) => brotliCompress(body, { params: { ...BROTLI_PARAMS } }, done),
  gzip: (body, done) => gzip(body, done),
  deflate: (body, done) => deflate(body, done),
};

/** Each reused body's compressed copies, done or on their way (callbacks waiting for it). */
const variants = new WeakMap<Buffer, Map<Encoding, Buffer | Made[]>>();

/**
 * `body` compressed with `encoding`: the copy kept from an earlier response, else made now (in
 * libuv's thread pool) and kept. Concurrent asks for one copy share its making.
 */
export function compressedVariant(body: Buffer, encoding: Encoding, done: Made): void {
  let copies = variants.get(body);
  if (copies === undefined) {
    copies = new Map();
    variants.set(body, copies);
  }
  const kept = copies.get(encoding);
  if (Buffer.isBuffer(kept)) {
    done(null, kept);
    return;
  }
  if (kept !== undefined) {
    kept.push(done);
    return;
  }
  const waiting: Made[] = [done];
  copies.set(encoding, waiting);
  COMPRESS[encoding](body, (error, compressed) => {
    // a failure keeps nothing: the next response tries again
    if (error === null) copies.set(encoding, compressed);
    else copies.delete(encoding);
    for (const callback of waiting) callback(error, compressed);
  });
}
