// What makes a response header field sendable (RFC 9110 §5): a name of token characters, a value
// without control bytes but tab. A backend's header that breaks either would split or smuggle a
// response if written as is; Node refuses to write it (ERR_INVALID_CHAR), too late for a clean 502.
import type { HeaderMap } from './http-context.js';

/** RFC 9110 token characters for a field name, indexed by char code (ASCII only). */
const TCHAR = (() => {
  const table = new Uint8Array(128);
  for (const c of "!#$%&'*+-.^_`|~") table[c.charCodeAt(0)] = 1;
  for (let c = 0x30; c <= 0x39; c++) table[c] = 1;
  for (let c = 0x41; c <= 0x5a; c++) table[c] = 1;
  for (let c = 0x61; c <= 0x7a; c++) table[c] = 1;
  return table;
})();

export function isFieldName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || TCHAR[c] !== 1) return false;
  }
  return true;
}

/** The first control byte (but tab) in `value`, or -1. */
export function controlByteIn(value: string): number {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return c;
  }
  return -1;
}

/** Why `headers` cannot be sent as they are (over `maxCount` fields too), or null when they can. */
export function headerMapProblem(
  headers: Readonly<Record<string, readonly string[]>>,
  maxCount = Number.POSITIVE_INFINITY,
): string | null {
  let count = 0;
  for (const name in headers) {
    if (!isFieldName(name)) return `invalid header name ${JSON.stringify(name.slice(0, 200))}`;
    count += headers[name]!.length;
    if (count > maxCount)
      return `more than ${maxCount} header fields, over the bound on a reply head (fixed, as classic mode's)`;
    for (const value of headers[name]!) {
      const c = controlByteIn(value);
      if (c >= 0) return `header ${name} has a control byte 0x${c.toString(16).padStart(2, '0')} in its value`;
    }
  }
  return null;
}

// Header values travel as Unicode text (a worker's JSON, CGI bytes read as UTF-8). A CGI value whose
// bytes are not UTF-8 (a latin1 filename in Content-Disposition) keeps them: each non-ASCII byte
// becomes a lone surrogate U+DC80-U+DCFF (Python's "surrogateescape"), which headerWireValue turns
// back into that byte, so the client gets what PHP sent, as behind nginx.

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** A CGI header value (a latin1 string, one char per byte) as the text the exchange carries. */
export function headerTextFromBytes(latin1: string): string {
  const bytes = Buffer.from(latin1, 'latin1');
  try {
    return UTF8.decode(bytes);
  } catch {
    let text = '';
    for (const byte of bytes) text += byte < 0x80 ? String.fromCharCode(byte) : String.fromCharCode(0xdc00 + byte);
    return text;
  }
}

/** Marks a request's header map whose values keep bytes that are not UTF-8 (headerTextFromBytes). */
const KEEPS_BYTES = Symbol('warmpool.headerBytes');

export function markKeptBytes(headers: HeaderMap): void {
  (headers as HeaderMap & { [KEEPS_BYTES]?: true })[KEEPS_BYTES] = true;
}

/**
 * The headers as well-formed text: each kept byte as U+FFFD, as RoadRunner's JSON gives a Go string
 * that is not UTF-8 (a lone surrogate would make PHP's json_decode fail). The same map when none is.
 */
export function wellFormedHeaders(headers: HeaderMap): HeaderMap {
  if ((headers as HeaderMap & { [KEEPS_BYTES]?: true })[KEEPS_BYTES] !== true) return headers;
  const out: HeaderMap = Object.create(null);
  for (const name in headers) out[name] = headers[name]!.map((value) => value.replace(/[\udc80-\udcff]/g, '\ufffd'));
  return out;
}

/** A header value's bytes as Node writes a header string (latin1: one char per byte). */
export function headerWireValue(value: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is the point
  if (!/[^\x00-\x7f]/.test(value)) return value;
  if (!/[\udc80-\udcff]/.test(value)) return Buffer.from(value, 'utf8').toString('latin1');
  let wire = '';
  for (const char of value) {
    const code = char.charCodeAt(0);
    wire +=
      char.length === 1 && code >= 0xdc80 && code <= 0xdcff
        ? String.fromCharCode(code - 0xdc00)
        : Buffer.from(char, 'utf8').toString('latin1');
  }
  return wire;
}
