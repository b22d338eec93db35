// What makes a response header field sendable (RFC 9110 §5): a name of token characters, a value
// without control bytes but tab. A backend's header that breaks either would split or smuggle a
// response if written as is; Node refuses to write it (ERR_INVALID_CHAR), too late for a clean 502.

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

/** Why `headers` cannot be sent as they are, or null when they can. */
export function headerMapProblem(headers: Readonly<Record<string, readonly string[]>>): string | null {
  for (const name in headers) {
    if (!isFieldName(name)) return `invalid header name ${JSON.stringify(name.slice(0, 200))}`;
    for (const value of headers[name]!) {
      const c = controlByteIn(value);
      if (c >= 0) return `header ${name} has a control byte 0x${c.toString(16).padStart(2, '0')} in its value`;
    }
  }
  return null;
}
