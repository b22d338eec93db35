// The content headers of a worker reply, as RoadRunner's HTTP server (Go's net/http) sends them:
// - a reply without Content-Type gets one sniffed from its first bytes (Go's DetectContentType, the
//   WHATWG MIME sniffing table), so an HTML page PHP sends without header('Content-Type') is
//   text/html, not a download; an empty body, or one with Content-Encoding, gets none;
// - 1xx, 204, 205 and 304 carry no content (RFC 9110 §6.4.1, §15.3.6), so neither Content-Type
//   nor Content-Length (§8.6: never on 204; on 304 only the size a 200 would have had, which we
//   cannot know here).
// Pure functions: from-payload.ts applies them.

/** Go sniffs at most this many bytes. */
export const SNIFF_BYTES = 512;

/**
 * Whether a reply with this status carries no content, and so no Content-Type (nor Content-Length,
 * but Fastify's "0" on a 205). 205 too (RFC 9110 §15.3.6, which Go leaves to the handler): Node's
 * HTTP/2 ends a 205's stream at its head, and a body PHP sent after it (a stray newline after `?>`)
 * reset the stream, so the client got no answer at all.
 */
export function forbidsContent(status: number): boolean {
  return status < 200 || status === 204 || status === 205 || status === 304;
}

/**
 * The Content-Type Go adds to a reply that sets none: sniffed from the body's first bytes when the
 * status allows content, the body is not empty and no Content-Encoding is set; null otherwise (also
 * when the reply has a Content-Type already).
 */
export function impliedContentType(
  status: number,
  hasHeader: (name: string) => boolean,
  body: Buffer | readonly Buffer[],
): string | null {
  if (forbidsContent(status) || hasHeader('content-type') || hasHeader('content-encoding')) return null;
  const head = firstBytes(body);
  return head.length === 0 ? null : detectContentType(head);
}

/** A whole body of no bytes (sent without Content-Type or body, not as Fastify's default octet-stream). */
export function isEmptyBody(body: Buffer | readonly Buffer[]): boolean {
  return Buffer.isBuffer(body) ? body.length === 0 : body.every((part) => part.length === 0);
}

function firstBytes(body: Buffer | readonly Buffer[]): Buffer {
  if (Buffer.isBuffer(body)) return body.length > SNIFF_BYTES ? body.subarray(0, SNIFF_BYTES) : body;
  const parts: Buffer[] = [];
  let length = 0;
  for (const part of body) {
    if (length >= SNIFF_BYTES) break;
    parts.push(part);
    length += part.length;
  }
  return Buffer.concat(parts, Math.min(length, SNIFF_BYTES));
}

type Signature = (data: Buffer, firstNonWs: number) => string | null;

const HTML = 'text/html; charset=utf-8';

/** `<TAG` at the first non-whitespace byte, case-insensitive, then a space or `>`. */
function html(tag: string): Signature {
  const pattern = Buffer.from(tag, 'latin1');
  return (data, firstNonWs) => {
    const rest = data.subarray(firstNonWs);
    if (rest.length < pattern.length + 1) return null;
    for (let i = 0; i < pattern.length; i++) {
      const want = pattern[i]!;
      // upper-case letters of the pattern match either case
      const got = want >= 0x41 && want <= 0x5a ? rest[i]! & 0xdf : rest[i]!;
      if (got !== want) return null;
    }
    const next = rest[pattern.length];
    return next === 0x20 || next === 0x3e ? HTML : null;
  };
}

function exact(prefix: string, type: string): Signature {
  const pattern = Buffer.from(prefix, 'latin1');
  return (data) => (data.length >= pattern.length && data.subarray(0, pattern.length).equals(pattern) ? type : null);
}

function masked(mask: string, prefix: string, type: string, skipWs = false): Signature {
  const m = Buffer.from(mask, 'latin1');
  const p = Buffer.from(prefix, 'latin1');
  return (data, firstNonWs) => {
    const rest = skipWs ? data.subarray(firstNonWs) : data;
    if (rest.length < p.length) return null;
    for (let i = 0; i < p.length; i++) if ((rest[i]! & m[i]!) !== p[i]) return null;
    return type;
  };
}

/** ISO base media file with an "mp4" brand (WHATWG "signature for MP4"). */
const mp4: Signature = (data) => {
  if (data.length < 12) return null;
  const boxSize = data.readUInt32BE(0);
  if (data.length < boxSize || boxSize % 4 !== 0) return null;
  if (data.toString('latin1', 4, 8) !== 'ftyp') return null;
  for (let at = 8; at < boxSize; at += 4) {
    if (at === 12) continue; // the major brand's version
    if (data.toString('latin1', at, at + 3) === 'mp4') return 'video/mp4';
  }
  return null;
};

/** No byte that text never holds (WHATWG "binary data byte"). */
const text: Signature = (data, firstNonWs) => {
  for (let i = firstNonWs; i < data.length; i++) {
    const b = data[i]!;
    if (b <= 0x08 || b === 0x0b || (b >= 0x0e && b <= 0x1a) || (b >= 0x1c && b <= 0x1f)) return null;
  }
  return 'text/plain; charset=utf-8';
};

const NUL34 = '\x00'.repeat(34);

/** Go's sniffSignatures, in its order (first match wins). */
const SIGNATURES: readonly Signature[] = [
  ...[
    '<!DOCTYPE HTML',
    '<HTML',
    '<HEAD',
    '<SCRIPT',
    '<IFRAME',
    '<H1',
    '<DIV',
    '<FONT',
    '<TABLE',
    '<A',
    '<STYLE',
    '<TITLE',
    '<B',
    '<BODY',
    '<BR',
    '<P',
    '<!--',
  ].map(html),
  masked('\xff\xff\xff\xff\xff', '<?xml', 'text/xml; charset=utf-8', true),
  exact('%PDF-', 'application/pdf'),
  exact('%!PS-Adobe-', 'application/postscript'),
  // byte order marks
  masked('\xff\xff\x00\x00', '\xfe\xff\x00\x00', 'text/plain; charset=utf-16be'),
  masked('\xff\xff\x00\x00', '\xff\xfe\x00\x00', 'text/plain; charset=utf-16le'),
  masked('\xff\xff\xff\x00', '\xef\xbb\xbf\x00', 'text/plain; charset=utf-8'),
  // images
  exact('\x00\x00\x01\x00', 'image/x-icon'),
  exact('\x00\x00\x02\x00', 'image/x-icon'),
  exact('BM', 'image/bmp'),
  exact('GIF87a', 'image/gif'),
  exact('GIF89a', 'image/gif'),
  masked('\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff', 'RIFF\x00\x00\x00\x00WEBPVP', 'image/webp'),
  exact('\x89PNG\x0d\x0a\x1a\x0a', 'image/png'),
  exact('\xff\xd8\xff', 'image/jpeg'),
  // audio and video
  masked('\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff', 'FORM\x00\x00\x00\x00AIFF', 'audio/aiff'),
  masked('\xff\xff\xff', 'ID3', 'audio/mpeg'),
  masked('\xff\xff\xff\xff\xff', 'OggS\x00', 'application/ogg'),
  masked('\xff\xff\xff\xff\xff\xff\xff\xff', 'MThd\x00\x00\x00\x06', 'audio/midi'),
  masked('\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff', 'RIFF\x00\x00\x00\x00AVI ', 'video/avi'),
  masked('\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff', 'RIFF\x00\x00\x00\x00WAVE', 'audio/wave'),
  mp4,
  exact('\x1a\x45\xdf\xa3', 'video/webm'),
  // fonts
  masked(`${NUL34}\xff\xff`, `${NUL34}LP`, 'application/vnd.ms-fontobject'),
  exact('\x00\x01\x00\x00', 'font/ttf'),
  exact('OTTO', 'font/otf'),
  exact('ttcf', 'font/collection'),
  exact('wOFF', 'font/woff'),
  exact('wOF2', 'font/woff2'),
  // archives
  exact('\x1f\x8b\x08', 'application/x-gzip'),
  exact('PK\x03\x04', 'application/zip'),
  exact('Rar!\x1a\x07\x00', 'application/x-rar-compressed'),
  exact('Rar!\x1a\x07\x01\x00', 'application/x-rar-compressed'),
  exact('\x00\x61\x73\x6d', 'application/wasm'),
  text,
];

/**
 * Go's http.DetectContentType: the MIME type of `data` from at most its first 512 bytes;
 * `application/octet-stream` when nothing more specific matches.
 */
export function detectContentType(data: Buffer): string {
  const head = data.length > SNIFF_BYTES ? data.subarray(0, SNIFF_BYTES) : data;
  let firstNonWs = 0;
  while (firstNonWs < head.length && isWhitespace(head[firstNonWs]!)) firstNonWs++;
  for (const signature of SIGNATURES) {
    const type = signature(head, firstNonWs);
    if (type !== null) return type;
  }
  return 'application/octet-stream';
}

function isWhitespace(byte: number): boolean {
  return byte === 0x09 || byte === 0x0a || byte === 0x0c || byte === 0x0d || byte === 0x20;
}
