// The password hashes of an htpasswd file as nginx's auth_basic_user_file reads them, checked in
// Node: MD5-crypt ("$apr1$", htpasswd's default, and "$1$"), SHA-crypt ("$5$", "$6$": openssl
// passwd -5/-6, mkpasswd), bcrypt ("$2y$", "$2b$", "$2a$": htpasswd -B, Caddy's hash-password,
// PHP's password_hash), "{SHA}" and "{SSHA}" (LDAP's), and "{PLAIN}". DES crypt is refused when the
// file is read, with the command that makes a supported one.
import { createHash, type Hash, timingSafeEqual } from 'node:crypto';
import { bcrypt, parseBcrypt } from './bcrypt.js';

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** A hash as read from the file, ready to check a password against. */
export interface PasswordHash {
  /**
   * Returns true when `password` hashes to this. A slow hash (bcrypt) yields between slices of its
   * work, for the caller to resume on a later turn of the event loop; the others never yield.
   */
  check(password: Buffer): Generator<void, boolean, void>;
  /** true: check yields (bcrypt), and runs in the queue of slow checks (basic-auth.ts) */
  readonly slow: boolean;
  /** how costly a check is, to compare hashes: bcrypt's 2^cost, else the rounds it runs */
  readonly cost: number;
  /** the hash as the file has it: a line that did not change keeps its users in */
  readonly text: string;
}

/** bcrypt's cost 14 (Caddy's default) takes about a second of JavaScript a check; more is refused. */
const MAX_BCRYPT_COST = 14;

/** The hash of one htpasswd line, or a reason it cannot be used (said with the line's number). */
export function parsePasswordHash(text: string): PasswordHash | { problem: string } {
  if (text.startsWith('$apr1$') || text.startsWith('$1$')) {
    const magic = text.startsWith('$1$') ? '$1$' : '$apr1$';
    const end = text.indexOf('$', magic.length);
    if (end === -1) return { problem: 'an MD5-crypt hash with no "$" after its salt' };
    const salt = text.slice(magic.length, end).slice(0, 8);
    return same(text, 1000, (password) => md5Crypt(password, magic, salt));
  }
  if (text.startsWith('$5$') || text.startsWith('$6$')) {
    const parts = text.split('$'); // ['', '5', ('rounds=N',) salt, hash]
    const custom = parts[2]?.startsWith('rounds=') === true;
    const rounds = custom ? Number(parts[2]!.slice('rounds='.length)) : DEFAULT_ROUNDS;
    if (!Number.isSafeInteger(rounds) || rounds < 1) return { problem: `a SHA-crypt hash with rounds ${parts[2]}` };
    const salt = parts[custom ? 3 : 2];
    if (salt === undefined || parts.length !== (custom ? 5 : 4))
      return { problem: 'a SHA-crypt hash of the wrong shape' };
    const bits = text[1] === '5' ? 256 : 512;
    return same(text, rounds, (password) => shaCrypt(password, bits, salt.slice(0, 16), rounds, custom));
  }
  if (text.startsWith('$2')) {
    const read = parseBcrypt(text);
    if (read === null)
      return {
        problem: /^\$2x\$/.test(text)
          ? 'a "$2x$" bcrypt hash (made by a crypt_blowfish with its 2011 bug): make the line again with `htpasswd -B`'
          : 'a bcrypt hash of the wrong shape ("$2y$" or "$2b$", a cost of two digits, 53 characters)',
      };
    if (read.cost > MAX_BCRYPT_COST)
      return {
        problem: `a bcrypt hash of cost ${read.cost}, which takes seconds of CPU to check on each login: make it again with a cost of ${MAX_BCRYPT_COST} or less (htpasswd -B -C 10)`,
      };
    const expected = Buffer.from(read.hash);
    return {
      slow: true,
      cost: 2 ** read.cost * 1000,
      text,
      *check(password) {
        return equal(Buffer.from(yield* bcrypt(password, read.cost, read.salt)), expected);
      },
    };
  }
  if (text.startsWith('{SHA}')) {
    const expected = Buffer.from(text.slice(5), 'base64');
    return immediate(text, 1, (password) => equal(createHash('sha1').update(password).digest(), expected));
  }
  if (text.startsWith('{SSHA}')) {
    const raw = Buffer.from(text.slice(6), 'base64');
    if (raw.length <= 20) return { problem: 'an {SSHA} hash with no salt' };
    const digest = raw.subarray(0, 20);
    const salt = raw.subarray(20);
    return immediate(text, 1, (password) => equal(createHash('sha1').update(password).update(salt).digest(), digest));
  }
  if (text.startsWith('{PLAIN}')) {
    const expected = Buffer.from(text.slice(7));
    return immediate(text, 0, (password) => equal(password, expected));
  }
  // Caddy's basicauth took bcrypt base64-encoded ("JDJhJDE0…", what hash-password printed before 2.8)
  if (text.startsWith('JDJ')) {
    const decoded = Buffer.from(text, 'base64').toString('latin1');
    if (decoded.startsWith('$2')) return parsePasswordHash(decoded);
  }
  return {
    problem:
      'not a hash warmpool reads ($apr1$, $1$, $5$, $6$, $2y$, {SHA}, {SSHA}, {PLAIN}; DES crypt is not): make the line with `openssl passwd -6`',
  };
}

/** A hash checked by computing it again from the password and the salt it carries. */
function same(text: string, cost: number, compute: (password: Buffer) => string): PasswordHash {
  const expected = Buffer.from(text);
  return immediate(text, cost, (password) => equal(Buffer.from(compute(password)), expected));
}

/** A hash checked in one go (a few milliseconds at most). */
function immediate(text: string, cost: number, verify: (password: Buffer) => boolean): PasswordHash {
  return {
    slow: false,
    cost,
    text,
    // biome-ignore lint/correctness/useYield: a check that never needs to yield
    *check(password) {
      return verify(password);
    },
  };
}

function equal(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** `bytes` as crypt's base64: 6 bits at a time, least significant first. */
function to64(value: number, count: number): string {
  let out = '';
  for (let n = count; n > 0; n--) {
    out += ITOA64[value & 0x3f];
    value >>>= 6;
  }
  return out;
}

/** MD5-crypt (Poul-Henning Kamp's; "$apr1$" is Apache's name for the same with another magic). */
export function md5Crypt(password: Buffer, magic: '$1$' | '$apr1$', salt: string): string {
  const md5 = () => createHash('md5');
  const ctx = md5().update(password).update(magic).update(salt);
  const alternate = md5().update(password).update(salt).update(password).digest();
  for (let left = password.length; left > 0; left -= 16) ctx.update(alternate.subarray(0, Math.min(16, left)));
  for (let i = password.length; i > 0; i >>>= 1) ctx.update(i & 1 ? Buffer.alloc(1) : password.subarray(0, 1));
  const final = stretch(md5, 1000, ctx.digest(), password, salt);
  let out = `${magic}${salt}$`;
  for (const [a, b, c] of [
    [0, 6, 12],
    [1, 7, 13],
    [2, 8, 14],
    [3, 9, 15],
    [4, 10, 5],
  ] as const)
    out += to64((final[a]! << 16) | (final[b]! << 8) | final[c]!, 4);
  return out + to64(final[11]!, 2);
}

const DEFAULT_ROUNDS = 5000;

/** SHA-crypt (Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512"). */
export function shaCrypt(password: Buffer, bits: 256 | 512, salt: string, rounds: number, custom: boolean): string {
  const algorithm = bits === 256 ? 'sha256' : 'sha512';
  const size = bits / 8;
  const hash = () => createHash(algorithm);
  const saltBytes = Buffer.from(salt);
  const b = hash().update(password).update(saltBytes).update(password).digest();
  const a = hash().update(password).update(saltBytes);
  let left = password.length;
  for (; left > size; left -= size) a.update(b);
  a.update(b.subarray(0, left));
  for (let i = password.length; i > 0; i >>>= 1) a.update(i & 1 ? b : password);
  const first = a.digest();
  const dp = hash();
  for (let i = 0; i < password.length; i++) dp.update(password);
  const p = repeatTo(dp.digest(), password.length);
  const ds = hash();
  for (let i = 0; i < 16 + first[0]!; i++) ds.update(saltBytes);
  const s = repeatTo(ds.digest(), saltBytes.length);
  const digest = stretch(hash, rounds, first, p, s);
  let out = `$${bits === 256 ? 5 : 6}$${custom ? `rounds=${rounds}$` : ''}${salt}$`;
  const groups = bits === 256 ? SHA256_ORDER : SHA512_ORDER;
  for (const [x, y, z] of groups) out += to64((digest[x]! << 16) | (digest[y]! << 8) | digest[z]!, 4);
  return out + (bits === 256 ? to64((digest[31]! << 8) | digest[30]!, 3) : to64(digest[63]!, 2));
}

/**
 * The rounds MD5-crypt and SHA-crypt share (SHA-crypt took them from MD5-crypt): each hashes the
 * last digest with the key, the key first in odd rounds, the salt left out of every third round
 * and the key added again but in every seventh.
 */
function stretch(hash: () => Hash, rounds: number, digest: Buffer, key: Buffer, salt: Buffer | string): Buffer {
  for (let r = 0; r < rounds; r++) {
    const round = hash();
    round.update(r & 1 ? key : digest);
    if (r % 3) round.update(salt);
    if (r % 7) round.update(key);
    round.update(r & 1 ? digest : key);
    digest = round.digest();
  }
  return digest;
}

/** `digest` repeated (and cut) to `length` bytes. */
function repeatTo(digest: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += digest.length) digest.copy(out, i, 0, Math.min(digest.length, length - i));
  return out;
}

// the byte triples each 4-character group encodes, as the specification lists them
const SHA256_ORDER: ReadonlyArray<readonly [number, number, number]> = [
  [0, 10, 20],
  [21, 1, 11],
  [12, 22, 2],
  [3, 13, 23],
  [24, 4, 14],
  [15, 25, 5],
  [6, 16, 26],
  [27, 7, 17],
  [18, 28, 8],
  [9, 19, 29],
];
const SHA512_ORDER: ReadonlyArray<readonly [number, number, number]> = [
  [0, 21, 42],
  [22, 43, 1],
  [44, 2, 23],
  [3, 24, 45],
  [25, 46, 4],
  [47, 5, 26],
  [6, 27, 48],
  [28, 49, 7],
  [50, 8, 29],
  [9, 30, 51],
  [31, 52, 10],
  [53, 11, 32],
  [12, 33, 54],
  [34, 55, 13],
  [56, 14, 35],
  [15, 36, 57],
  [37, 58, 16],
  [59, 17, 38],
  [18, 39, 60],
  [40, 61, 19],
  [62, 20, 41],
];
