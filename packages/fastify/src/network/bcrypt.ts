// bcrypt (Provos and Mazières' "$2b$"; "$2a$" and "$2y$" name the same computation for the
// passwords an htpasswd line can hold), for htpasswd files made by `htpasswd -B`, Caddy's
// `hash-password` or PHP's password_hash(). Written as a generator: its 2^cost key schedules run a
// slice at a time (see password-hashes.ts), so one check at cost 12 (a quarter of a second of
// JavaScript) never holds the event loop.

/** bcrypt's base64: the standard bit order with another alphabet, no padding. */
const B64 = './ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** "OrpheanBeholderScryDoubt", the text bcrypt encrypts 64 times, as six big-endian words. */
const MAGIC = [0x4f727068, 0x65616e42, 0x65686f6c, 0x64657253, 0x63727944, 0x6f756274];
/** Key schedules run between two yields: about a millisecond of JavaScript. */
const ROUNDS_PER_SLICE = 8;

/**
 * Blowfish's initial state, 18 P-words then four S-boxes of 256: the fraction of π in hex, 8,336
 * digits of it. Computed once (Machin's formula in BigInt, ~0.1 s), not pasted as a table.
 */
let initialState: Uint32Array | null = null;

function blowfishInitialState(): Uint32Array {
  if (initialState !== null) return initialState;
  const words = 18 + 4 * 256;
  const bits = BigInt(words * 32 + 64); // 64 guard bits for the series' truncations
  const one = 1n << bits;
  // arctan(1/x) scaled by 2^bits
  const arctanInverse = (x: bigint): bigint => {
    const x2 = x * x;
    let term = one / x;
    let sum = term;
    for (let n = 1n, sign = -1n; term !== 0n; n++, sign = -sign) {
      term /= x2;
      sum += (sign * term) / (2n * n + 1n);
    }
    return sum;
  };
  const pi = 16n * arctanInverse(5n) - 4n * arctanInverse(239n);
  const fraction = (pi - (3n << bits)) >> 64n;
  const state = new Uint32Array(words);
  for (let i = 0; i < words; i++) state[i] = Number((fraction >> BigInt((words - 1 - i) * 32)) & 0xffffffffn);
  initialState = state;
  return state;
}

/** A "$2?$NN$" + 53 characters hash, read; null when it is not one. */
export function parseBcrypt(text: string): { cost: number; salt: Buffer; hash: string } | null {
  const match = /^\$2[aby]\$(\d\d)\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/.exec(text);
  if (match === null) return null;
  const cost = Number(match[1]);
  if (cost < 4 || cost > 31) return null;
  return { cost, salt: decode(match[2]!, 16), hash: match[3]! };
}

/**
 * bcrypt's 31 hash characters for `password` (its first 72 bytes, NUL-terminated as C hands it
 * over) under `cost` and the 16-byte `salt`. Yields every few key schedules; the caller resumes it.
 */
export function* bcrypt(password: Buffer, cost: number, salt: Buffer): Generator<void, string, void> {
  const key = Buffer.alloc(Math.min(password.length + 1, 72));
  password.copy(key, 0, 0, key.length);
  const state = blowfishInitialState().slice();
  const keyWords = cyclicWords(key);
  const saltWords = cyclicWords(salt);
  expandKey(state, keyWords, saltWords);
  for (let round = 1; round <= 2 ** cost; round++) {
    expandKey(state, keyWords, null);
    expandKey(state, saltWords, null);
    if (round % ROUNDS_PER_SLICE === 0) yield;
  }
  const text = Uint32Array.from(MAGIC);
  const block = new Uint32Array(2);
  for (let i = 0; i < 64; i++)
    for (let j = 0; j < 6; j += 2) {
      block[0] = text[j]!;
      block[1] = text[j + 1]!;
      encipher(state, block);
      text[j] = block[0]!;
      text[j + 1] = block[1]!;
    }
  const out = Buffer.alloc(24);
  for (let i = 0; i < 6; i++) out.writeUInt32BE(text[i]!, i * 4);
  return encode(out.subarray(0, 23));
}

/** The 18 words a key (or salt) gives, read from its bytes over and over as Blowfish does. */
function cyclicWords(bytes: Buffer): Uint32Array {
  const words = new Uint32Array(18);
  let at = 0;
  for (let i = 0; i < 18; i++) {
    let word = 0;
    for (let b = 0; b < 4; b++) {
      word = (word << 8) | bytes[at]!;
      at = (at + 1) % bytes.length;
    }
    words[i] = word >>> 0;
  }
  return words;
}

/**
 * Blowfish's key schedule with bcrypt's salt: the key XORed into P, then P and the S-boxes
 * replaced by the chained encryption of zeros (of the salt's words, alternating halves, when given).
 */
function expandKey(state: Uint32Array, key: Uint32Array, salt: Uint32Array | null): void {
  for (let i = 0; i < 18; i++) state[i]! ^= key[i]!;
  const block = new Uint32Array(2);
  let s = 0;
  for (let i = 0; i < state.length; i += 2) {
    if (salt !== null) {
      // the salt's 16 bytes as 4 words, over and over: words 0-1, then 2-3
      block[0]! ^= salt[s]!;
      block[1]! ^= salt[s + 1]!;
      s ^= 2;
    }
    encipher(state, block);
    state[i] = block[0]!;
    state[i + 1] = block[1]!;
  }
}

/** One Blowfish block encryption in place, with the state's P-array and S-boxes. */
function encipher(state: Uint32Array, block: Uint32Array): void {
  let left = block[0]!;
  let right = block[1]!;
  left ^= state[0]!;
  for (let i = 1; i <= 16; i += 2) {
    right ^= feistel(state, left) ^ state[i]!;
    left ^= feistel(state, right) ^ state[i + 1]!;
  }
  block[0] = right ^ state[17]!;
  block[1] = left;
}

function feistel(state: Uint32Array, x: number): number {
  const a = state[18 + (x >>> 24)]!;
  const b = state[274 + ((x >>> 16) & 0xff)]!;
  const c = state[530 + ((x >>> 8) & 0xff)]!;
  const d = state[786 + (x & 0xff)]!;
  return (((a + b) ^ c) + d) | 0;
}

function encode(bytes: Buffer): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!;
    const b = bytes[i + 1] ?? 0;
    const c = bytes[i + 2] ?? 0;
    out += B64[a >>> 2]! + B64[((a & 3) << 4) | (b >>> 4)]!;
    if (i + 1 < bytes.length) out += B64[((b & 0x0f) << 2) | (c >>> 6)]!;
    if (i + 2 < bytes.length) out += B64[c & 0x3f]!;
  }
  return out;
}

function decode(text: string, length: number): Buffer {
  const out = Buffer.alloc(length);
  let bits = 0;
  let value = 0;
  let at = 0;
  for (const char of text) {
    value = (value << 6) | B64.indexOf(char);
    bits += 6;
    if (bits >= 8 && at < length) {
      bits -= 8;
      out[at++] = (value >>> bits) & 0xff;
    }
  }
  return out;
}
