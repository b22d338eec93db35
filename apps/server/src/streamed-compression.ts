// Compression of a reply PHP streams on purpose (X-Accel-Buffering: no): each piece PHP flushes is
// compressed and flushed to the client at once, as nginx's gzip does when its upstream flushes.
// @fastify/compress cannot: it waits for 10 bytes before choosing its compressor, and zlib then
// keeps output until 16 KiB or the end. Every other reply is left to it.
import type { Readable, Transform } from 'node:stream';
import { constants, createBrotliCompress, createDeflate, createGzip } from 'node:zlib';
import negotiate from '@fastify/accept-negotiator';
import type { FastifyReply, FastifyRequest, RawServerBase, RouteGenericInterface } from 'fastify';

export type Encoding = 'br' | 'gzip' | 'deflate';

/**
 * Brotli as the server compresses on the fly: quality 4 (@fastify/compress's default; 11 costs too
 * much per byte for a live response) and a 512 KiB window (nginx's brotli_window). Brotli's default
 * 4 MiB window made each response compressed on the fly hold about 8 MB while its client read: 40
 * slow clients of one large text file, 330 MB.
 */
export const BROTLI_PARAMS: Readonly<Record<number, number>> = {
  [constants.BROTLI_PARAM_QUALITY]: 4,
  [constants.BROTLI_PARAM_LGWIN]: 19,
};

/** The compressor for one streamed reply: every write comes out whole (a sync flush), at the levels of the rest. */
const COMPRESSORS: Readonly<Record<Encoding, () => Transform>> = {
  br: () => createBrotliCompress({ flush: constants.BROTLI_OPERATION_FLUSH, params: { ...BROTLI_PARAMS } }),
  gzip: () => createGzip({ flush: constants.Z_SYNC_FLUSH }),
  deflate: () => createDeflate({ flush: constants.Z_SYNC_FLUSH }),
};

/**
 * The encoding the client prefers among `encodings`, as @fastify/compress negotiates (`*` and
 * x-gzip mean gzip); null when it takes none of them.
 */
export function acceptedEncoding(
  request: FastifyRequest<RouteGenericInterface, RawServerBase>,
  encodings: readonly Encoding[],
): Encoding | null {
  const accepted = request.headers['accept-encoding'];
  if (typeof accepted !== 'string') return null;
  return negotiate(accepted.toLowerCase().replace(/\*|x-gzip/g, 'gzip'), [...encodings]) as Encoding | null;
}

/**
 * The stream to send instead of `body`, compressed in the encoding the client prefers among
 * `encodings` (as @fastify/compress negotiates: `*` and x-gzip mean gzip), with Content-Encoding
 * set; or null when the client takes none of them. Either end closing closes the other: a client
 * that leaves cancels the backend, and a backend that fails resets the response.
 */
export function compressStreamed(
  request: FastifyRequest<RouteGenericInterface, RawServerBase>,
  reply: FastifyReply<RouteGenericInterface, RawServerBase>,
  body: Readable,
  encodings: readonly Encoding[],
): Readable | null {
  const encoding = acceptedEncoding(request, encodings);
  if (encoding === null) return null;
  const compressed = COMPRESSORS[encoding]();
  reply.header('content-encoding', encoding).removeHeader('content-length');
  body.pipe(compressed);
  // a failing backend fails the response (Fastify logs it and closes it); a client that leaves
  // closes the body, as Fastify does to a body it sends itself: destroyed, with no error
  body.once('error', (error) => compressed.destroy(error));
  compressed.once('close', () => body.destroy());
  return compressed;
}
