/**
 * In-memory cache of small hot static files (contents + validators), like nginx's open_file_cache.
 *
 * Keyed by the decoded, policy-checked request path (per static root set: one cache per
 * registerStatic call). static.ts fills it only after its checkFile/realpath checks said "send",
 * and serves an entry without touching the disk only within revalidate_ms of its last check; past
 * that, static.ts runs the full resolution again (stat + realpath, so a deleted file or a symlink
 * swapped to point outside the root is noticed) and reuses the entry only when the file it resolves
 * to is the same (root, path, ino, size, mtime).
 *
 * The headers and the 304 decision reproduce what @fastify/send + static.ts's setHeaders produce
 * for the same file, so a hit is indistinguishable from a miss.
 */
import type { Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { loadSend } from '../http/load-send.js';
import { markReusedBody } from '../http/reused-bodies.js';
import { LRUCache } from 'lru-cache';

export interface HotCacheOptions {
  /** total bytes of cached contents */
  maxBytes: number;
  /** larger files are never cached */
  maxFileBytes: number;
  /** entries older than this are re-checked (stat + realpath) before reuse */
  revalidateMs: number;
}

export const DEFAULT_HOT_CACHE: Readonly<HotCacheOptions> = Object.freeze({
  maxBytes: 16 * 1024 * 1024,
  maxFileBytes: 1024 * 1024,
  revalidateMs: 1000,
});

export interface HotEntry {
  readonly rootIndex: number;
  /** root-relative path of the file sent (the index file for a directory request) */
  readonly relPath: string;
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
  /** a file rewritten in place with its old size and mtime put back (cp -p, unzip -o) changes only this */
  readonly ctimeMs: number;
  readonly body: Buffer;
  /** Content-Type as send sets it (a precompressed sibling's: its file's, "x.css" for "x.css.br") */
  readonly contentType: string;
  /** a precompressed sibling's Content-Encoding ("br", "gzip"); null: the file itself */
  readonly contentEncoding: string | null;
  readonly lastModified: string | null;
  /** the tag as sent (strong or weak) */
  readonly etag: string | null;
  /** the tag as send computes it (always W/), for send's comparisons */
  readonly sendEtag: string | null;
  /** null: none sent */
  readonly cacheControl: string | null;
  /** performance.now() of the last check against the disk */
  checkedAt: number;
}

export interface HeaderSettings {
  etag: 'weak' | 'strong' | null;
  lastModified: boolean;
  /** precompressed on: @fastify/static adds Vary: accept-encoding to every file it sends */
  vary: boolean;
}

/**
 * The very mime instance @fastify/send uses (the same version @fastify/static depends on, deduped
 * by pnpm), so Content-Type cannot drift from it. Loaded with @fastify/static, only when static
 * files are configured.
 */
export interface SendMime {
  getType(path: string): string | null;
  default_type?: string;
}

export async function loadSendMime(): Promise<SendMime> {
  const send = await loadSend();
  return (send as unknown as { mime: SendMime }).mime;
}

/** send's isUtf8MimeType */
function isUtf8MimeType(value: string): boolean {
  const len = value.length;
  return (
    (len > 21 && value.startsWith('application/javascript')) ||
    (len > 14 && value.startsWith('application/json')) ||
    (len > 5 && value.startsWith('text/'))
  );
}

/** Content-Type as @fastify/send sets it; null when send sets none (then we do not cache). */
export function contentTypeOf(mime: SendMime, path: string): string | null {
  let type = mime.getType(path) || mime.default_type;
  if (!type) return null;
  if (isUtf8MimeType(type)) type += '; charset=utf-8';
  return type;
}

export class HotCache {
  readonly options: HotCacheOptions;
  private readonly lru: LRUCache<string, HotEntry>;

  constructor(
    options: HotCacheOptions,
    private readonly settings: HeaderSettings,
    private readonly mime: SendMime,
  ) {
    this.options = options;
    this.lru = new LRUCache<string, HotEntry>({
      maxSize: options.maxBytes,
      // contents plus a little for the entry itself, so empty files still count
      sizeCalculation: (entry) => entry.body.length + 256,
      maxEntrySize: options.maxFileBytes + 256,
    });
  }

  get size(): number {
    return this.lru.size;
  }

  get calculatedSize(): number {
    return this.lru.calculatedSize;
  }

  get(key: string): HotEntry | undefined {
    return this.lru.get(key);
  }

  /** true while the entry may be served with no fs call */
  isFresh(entry: HotEntry, now: number): boolean {
    return now - entry.checkedAt < this.options.revalidateMs;
  }

  delete(key: string): void {
    this.lru.delete(key);
  }

  /** Same file as the one cached (after a re-check said "send" for it). */
  matches(entry: HotEntry, rootIndex: number, relPath: string, stats: Stats): boolean {
    return (
      entry.rootIndex === rootIndex &&
      entry.relPath === relPath &&
      entry.ino === stats.ino &&
      entry.size === stats.size &&
      entry.mtimeMs === stats.mtimeMs &&
      entry.ctimeMs === stats.ctimeMs
    );
  }

  /** Re-inserts a re-checked entry as fresh. */
  refresh(key: string, entry: HotEntry, now: number): void {
    entry.checkedAt = now;
    this.lru.set(key, entry);
  }

  /**
   * Reads the file (checked by the caller: stats are from its stat of `file`) and caches it.
   * Undefined when it cannot be cached (too big, changed meanwhile, unknown type, read error).
   */
  async fill(
    key: string,
    file: string,
    rootIndex: number,
    relPath: string,
    stats: Stats,
    cacheControl: string | null,
    now: number,
    /** whether the file the descriptor holds may be sent (checked after the open: names can be swapped) */
    allowed: (fd: number) => boolean,
    /** a precompressed sibling of `typeOf` ("x.css.br" of "x.css"), sent with this Content-Encoding */
    sibling: { typeOf: string; encoding: string } | null = null,
  ): Promise<HotEntry | undefined> {
    if (stats.size > this.options.maxFileBytes) return undefined;
    const contentType = contentTypeOf(this.mime, sibling?.typeOf ?? file);
    if (contentType === null) return undefined;
    let handle: FileHandle;
    try {
      handle = await open(file, 'r');
    } catch {
      return undefined;
    }
    let body: Buffer;
    let current: Stats;
    try {
      if (!allowed(handle.fd)) return undefined;
      current = await handle.stat();
      // Not the file the caller checked (swapped meanwhile), or growing: let send handle it.
      if (
        current.ino !== stats.ino ||
        current.size !== stats.size ||
        current.mtimeMs !== stats.mtimeMs ||
        !current.isFile()
      )
        return undefined;
      body = Buffer.allocUnsafe(current.size);
      let offset = 0;
      while (offset < body.length) {
        const { bytesRead } = await handle.read(body, offset, body.length - offset, offset);
        if (bytesRead === 0) return undefined;
        offset += bytesRead;
      }
    } catch {
      return undefined;
    } finally {
      await handle.close().catch(() => {});
    }
    // sent as is on every hit: a compressed copy of it may be kept with it (reused-bodies.ts)
    markReusedBody(body);
    const { etag, lastModified } = this.settings;
    const sendEtag = etag === null ? null : `W/"${current.size.toString(16)}-${current.mtime.getTime().toString(16)}"`;
    const entry: HotEntry = {
      rootIndex,
      relPath,
      ino: current.ino,
      size: current.size,
      mtimeMs: current.mtimeMs,
      ctimeMs: current.ctimeMs,
      body,
      contentType,
      contentEncoding: sibling?.encoding ?? null,
      lastModified: lastModified ? current.mtime.toUTCString() : null,
      etag: sendEtag === null ? null : etag === 'strong' ? sendEtag.slice(2) : sendEtag,
      sendEtag,
      cacheControl,
      checkedAt: now,
    };
    this.lru.set(key, entry);
    return entry;
  }

  /** Sends the entry as send would: 200 (GET/HEAD) or 304. */
  serve(request: FastifyRequest, reply: FastifyReply, entry: HotEntry): true {
    reply.code(200);
    reply.header('accept-ranges', 'bytes');
    if (entry.lastModified !== null) reply.header('last-modified', entry.lastModified);
    if (entry.etag !== null) reply.header('etag', entry.etag);
    if (entry.cacheControl !== null) reply.header('cache-control', entry.cacheControl);
    if (this.settings.vary) addVaryAcceptEncoding(reply);
    const headers = request.raw.headers;
    if (
      (headers['if-none-match'] !== undefined || headers['if-modified-since'] !== undefined) &&
      isNotModified(headers, entry)
    ) {
      reply.code(304);
      reply.send();
      return true;
    }
    reply.header('content-type', entry.contentType);
    if (entry.contentEncoding !== null) reply.header('content-encoding', entry.contentEncoding);
    reply.header('content-length', entry.body.length);
    // HEAD gets its GET's headers (RFC 9110 9.3.2): the body goes through the same hooks (a
    // compressed GET's Content-Encoding and weak ETag), and Node writes none of it
    reply.send(entry.body);
    return true;
  }
}

/** The precompressed siblings send may pick, by name, in its order of preference. */
const SIBLING_SUFFIXES: Readonly<Record<string, string>> = { br: '.br', gzip: '.gz', deflate: '.deflate' };
const SIBLING_ENCODINGS = Object.keys(SIBLING_SUFFIXES);
/** Every sibling's suffix (".br", ".gz", ".deflate"): the names the static checks strip. */
export const SIBLING_SUFFIX_LIST: readonly string[] = Object.values(SIBLING_SUFFIXES);

/**
 * The encodings of precompressed siblings `request` accepts, best first, as send tries them (its
 * q-values; `*` is gzip; equal ones in br, gzip, deflate order); [] when it takes none.
 */
export function acceptedSiblings(request: FastifyRequest): string[] {
  const header = request.raw.headers['accept-encoding'];
  if (typeof header !== 'string' || header === '') return [];
  const weights = new Map<string, number>();
  for (const part of header.toLowerCase().split(',')) {
    const [name = '', ...params] = part.split(';').map((token) => token.trim());
    const coding = name === '*' ? 'gzip' : name;
    if (!(coding in SIBLING_SUFFIXES)) continue;
    const q = params.find((param) => param.startsWith('q='));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    if (Number.isFinite(weight) && weight > (weights.get(coding) ?? 0)) weights.set(coding, weight);
  }
  return SIBLING_ENCODINGS.filter((coding) => (weights.get(coding) ?? 0) > 0).sort(
    (a, b) => weights.get(b)! - weights.get(a)!,
  );
}

/** A sibling's suffix (".br") for its encoding. */
export function siblingSuffix(encoding: string): string {
  return SIBLING_SUFFIXES[encoding]!;
}

/** Requests a hit can answer: send's 412 (If-Match, If-Unmodified-Since) and 206/416 stay with send. */
export function cacheableRequest(request: FastifyRequest): boolean {
  const headers = request.raw.headers;
  return (
    headers.range === undefined && headers['if-match'] === undefined && headers['if-unmodified-since'] === undefined
  );
}

/** @fastify/send's isNotModifiedFailure, against the tag in send's (weak) form. */
function isNotModified(headers: FastifyRequest['raw']['headers'], entry: HotEntry): boolean {
  const cacheControl = headers['cache-control'];
  if (cacheControl?.includes('no-cache') === true) return false;
  const ifNoneMatch = headers['if-none-match'];
  if (ifNoneMatch !== undefined) {
    if (ifNoneMatch === '*') return true;
    const etag = entry.sendEtag;
    if (etag === null) return false;
    for (const token of parseTokenList(ifNoneMatch)) {
      if ((etag.length === token.length && token === etag) || (etag.length > token.length && `W/${token}` === etag))
        return true;
    }
    return false;
  }
  const ifModifiedSince = headers['if-modified-since'];
  if (ifModifiedSince !== undefined && entry.lastModified !== null) {
    // a date later than the server's clock is invalid (RFC 9110 13.1.3): the file is sent, as nginx
    const since = Date.parse(ifModifiedSince);
    return since <= Date.now() && Date.parse(entry.lastModified) <= since;
  }
  return false;
}

/** send's parseTokenList: comma-separated, spaces trimmed. */
function parseTokenList(value: string): string[] {
  const out: string[] = [];
  let start = 0;
  let end = 0;
  for (let i = 0, len = value.length; i < len; i++) {
    switch (value.charCodeAt(i)) {
      case 0x20:
        if (start === end) start = end = i + 1;
        break;
      case 0x2c:
        if (start !== end) out.push(value.slice(start, end));
        start = end = i + 1;
        break;
      default:
        end = i + 1;
        break;
    }
  }
  if (start !== end) out.push(value.slice(start, end));
  return out;
}

/** @fastify/static's addVaryAcceptEncoding. */
function addVaryAcceptEncoding(reply: FastifyReply): void {
  const current = reply.getHeader('vary');
  if (current === undefined) {
    reply.header('vary', 'accept-encoding');
    return;
  }
  const value = Array.isArray(current) ? current.join(', ') : String(current);
  const tokens = value.split(',').map((t) => t.trim().toLowerCase());
  if (tokens.includes('*') || tokens.includes('accept-encoding')) return;
  reply.header('vary', `${value}, accept-encoding`);
}
