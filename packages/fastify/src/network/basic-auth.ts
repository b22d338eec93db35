import { readFileSync, statSync } from 'node:fs';
import { InvalidOptionError } from '../errors.js';
import { longestPrefixRule, normalizePrefix } from './access.js';
import { parsePasswordHash, type PasswordHash } from './password-hashes.js';

/**
 * `auth_basic`: HTTP Basic authentication per path prefix, as nginx's auth_basic with
 * auth_basic_user_file: a request under a rule's prefix needs a user and password of its htpasswd
 * file, else 401 with `WWW-Authenticate: Basic realm="…"`.
 *
 * - The longest matching prefix wins, on segment boundaries, against requestPath() as access rules;
 *   `off: true` opens a path under a protected prefix (nginx's `auth_basic off` in a location).
 * - The file is read at start (a line warmpool cannot use is an error naming the line) and again
 *   when it changes (checked at most once a second): users added or removed need no restart. A
 *   file that became unreadable or holds a bad line lets nobody in until it is fixed.
 * - Hashes: see password-hashes.ts. Each check of a password costs MD5- or SHA-crypt's rounds
 *   (about a millisecond): answers are remembered per credentials and file version, so a browser's
 *   repeated header costs one lookup; guessing is slowed by limit_req on the same prefix.
 */
export interface BasicAuthRule {
  prefix: string;
  /** shown by the browser's prompt; default "Restricted" */
  realm?: string;
  /** the htpasswd file (absolute, or relative to the working folder) */
  user_file?: string;
  /** true: no authentication under this prefix (a public path under a protected one) */
  off?: boolean;
}

/**
 * null: the request may go on; else the realm of the 401 it gets, or busy: the process's budget
 * for password checks is spent (429, Retry-After: 1), so guesses cannot take the event loop.
 */
export type BasicAuthCheck = (
  path: string,
  authorization: string | undefined,
) => { realm: string; busy: boolean } | { user: string } | null;

interface CompiledRule {
  prefix: string;
  realm: string;
  users: UserFile | null;
}

const KNOWN = ['prefix', 'realm', 'user_file', 'off'];
const DEFAULT_REALM = 'Restricted';

/** Compiles the rules and reads their files once; null when there are none. Throws naming the key. */
export function compileBasicAuth(
  rules: readonly BasicAuthRule[] | undefined,
  key = 'auth_basic',
  /** what a user file read again while serving says of itself (a line skipped, the file gone) */
  log: (message: string) => void = () => {},
): BasicAuthCheck | null {
  if (rules === undefined) return null;
  if (!Array.isArray(rules))
    throw new InvalidOptionError(key, `must be a list of { prefix, user_file, realm? }, got ${JSON.stringify(rules)}`);
  if (rules.length === 0) return null;
  const seen = new Set<string>();
  const files = new Map<string, UserFile>();
  const compiled: CompiledRule[] = rules.map((rule, index) => {
    const at = `${key}[${index}]`;
    if (rule === null || typeof rule !== 'object')
      throw new InvalidOptionError(
        at,
        'must be an object like { prefix: "/admin", user_file: "/etc/warmpool/htpasswd" }',
      );
    for (const name of Object.keys(rule))
      if (!KNOWN.includes(name))
        throw new InvalidOptionError(`${at}.${name}`, `is not a rule key; known keys: ${KNOWN.join(', ')}`);
    const prefix = normalizePrefix(rule.prefix, `${at}.prefix`);
    if (seen.has(prefix)) throw new InvalidOptionError(`${at}.prefix`, `"${prefix}" appears in two rules; merge them`);
    seen.add(prefix);
    if (rule.off !== undefined && typeof rule.off !== 'boolean')
      throw new InvalidOptionError(`${at}.off`, `must be true or false, got ${JSON.stringify(rule.off)}`);
    // a header value: ASCII (a WWW-Authenticate with "Админка" made every 401 a 500-like JSON body)
    if (
      rule.realm !== undefined &&
      (typeof rule.realm !== 'string' || !/^[\x20-\x7e]*$/.test(rule.realm) || /["\\]/.test(rule.realm))
    )
      throw new InvalidOptionError(
        `${at}.realm`,
        `must be ASCII text without quotes or backslashes (browsers show it in their prompt), got ${JSON.stringify(rule.realm)}`,
      );
    if (rule.off === true) {
      if (rule.user_file !== undefined)
        throw new InvalidOptionError(`${at}.user_file`, 'is not read under off: true; remove one of the two');
      return { prefix, realm: '', users: null };
    }
    if (typeof rule.user_file !== 'string' || rule.user_file === '')
      throw new InvalidOptionError(
        `${at}.user_file`,
        'is required: the htpasswd file of the users who may enter (make one with: printf "alice:%s\\n" "$(openssl passwd -6)" > /etc/warmpool/htpasswd)',
      );
    let users = files.get(rule.user_file);
    if (users === undefined) {
      users = new UserFile(rule.user_file, `${at}.user_file`, log);
      files.set(rule.user_file, users);
    }
    return { prefix, realm: rule.realm ?? DEFAULT_REALM, users };
  });
  compiled.sort((a, b) => b.prefix.length - a.prefix.length);
  return (path, authorization) => {
    const rule = longestPrefixRule(compiled, path);
    if (rule === null || rule.users === null) return null;
    const answer = rule.users.admits(authorization);
    // the user it let in: REMOTE_USER for classic PHP, as nginx's $remote_user
    if (answer === 'admitted') return { user: userOf(authorization!) };
    return { realm: rule.realm, busy: answer === 'busy' };
  };
}

/** The user name of a Basic Authorization header already checked. */
function userOf(authorization: string): string {
  const decoded = Buffer.from(authorization.slice(authorization.indexOf(' ') + 1).trim(), 'base64');
  return decoded.subarray(0, decoded.indexOf(0x3a)).toString('utf8');
}

/** The WWW-Authenticate value of a 401 for `realm`. */
export function basicChallenge(realm: string): string {
  return `Basic realm="${realm}", charset="UTF-8"`;
}

/**
 * The event loop's time password checks may take, over the process: a bucket of a second, refilled
 * at a quarter of a second each second. A hash is checked in JavaScript (8-9 ms for a $6$ line);
 * without a bound 100-300 wrong guesses a second held every other site's requests for a second.
 */
class CheckBudget {
  #left = 1000;
  #at = performance.now();

  available(): boolean {
    const now = performance.now();
    this.#left = Math.min(1000, this.#left + (now - this.#at) * 0.25);
    this.#at = now;
    return this.#left > 0;
  }

  spend(ms: number): void {
    this.#left -= ms;
  }
}

const BUDGET = new CheckBudget();

/** How often a file is looked at again for changes. */
const RECHECK_MS = 1000;
/** Credentials remembered per file (admitted or not); the map starts over when full. */
const REMEMBERED = 1024;
/** Headers longer than this are checked each time, never remembered: the map stays small */
const REMEMBERED_HEADER_CHARS = 1024;
/**
 * A longer password is refused unhashed: SHA-crypt hashes the password once per byte of it (its
 * P sequence), so 8 KB of it cost 64 MB of SHA-512, a tenth of a second per request
 */
const MAX_PASSWORD_BYTES = 256;

/** One htpasswd file: its users, read again when it changes. */
class UserFile {
  #users: Map<string, PasswordHash>;
  #version = 0;
  #checkedAt = 0;
  #stamp: string;
  /** `${version} ${authorization}` → admitted */
  #answers = new Map<string, boolean>();

  constructor(
    readonly path: string,
    key: string,
    private readonly log: (message: string) => void,
  ) {
    const read = readUsers(path);
    if (typeof read === 'string') throw new InvalidOptionError(key, read);
    // at start every line must be usable (config check names it); read again, a bad one is skipped
    if (read.problems.length > 0) throw new InvalidOptionError(key, read.problems[0]!);
    this.#users = read.users;
    this.#stamp = read.stamp;
    this.#checkedAt = performance.now();
  }

  admits(authorization: string | undefined): 'admitted' | 'refused' | 'busy' {
    this.#recheck();
    if (authorization === undefined) return 'refused';
    const id = `${this.#version} ${authorization}`;
    const known = this.#answers.get(id);
    if (known !== undefined) return known ? 'admitted' : 'refused';
    if (!BUDGET.available()) return 'busy';
    const started = performance.now();
    const admitted = this.#verify(authorization);
    BUDGET.spend(performance.now() - started);
    if (authorization.length <= REMEMBERED_HEADER_CHARS) {
      if (this.#answers.size >= REMEMBERED) this.#answers.clear();
      this.#answers.set(id, admitted);
    }
    return admitted ? 'admitted' : 'refused';
  }

  #verify(authorization: string): boolean {
    const match = /^Basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(authorization);
    if (match === null) return false;
    const decoded = Buffer.from(match[1]!, 'base64');
    const colon = decoded.indexOf(0x3a);
    if (colon === -1 || decoded.length - colon - 1 > MAX_PASSWORD_BYTES) return false;
    const hash = this.#users.get(decoded.subarray(0, colon).toString('utf8'));
    const password = decoded.subarray(colon + 1);
    if (hash !== undefined) return hash.verify(password);
    // an unknown user costs what a known one does: the answer's time does not tell who exists
    this.#users.values().next().value?.verify(password);
    return false;
  }

  #recheck(): void {
    const now = performance.now();
    if (now - this.#checkedAt < RECHECK_MS) return;
    this.#checkedAt = now;
    const stamp = stampOf(this.path);
    if (stamp === this.#stamp) return;
    const read = readUsers(this.path);
    // a file gone or empty lets nobody in until it is fixed; a line warmpool cannot use is skipped,
    // as nginx skips it, and the others keep their access; each said in the log
    if (typeof read === 'string') this.log(`auth_basic: ${read}; nobody gets in until it is fixed`);
    else for (const problem of read.problems) this.log(`auth_basic: ${problem}; that user cannot get in`);
    this.#users = typeof read === 'string' ? new Map() : read.users;
    this.#stamp = typeof read === 'string' ? stamp : read.stamp;
    this.#version++;
    this.#answers.clear();
  }
}

/** What tells a changed file: its inode, size and modification time. */
function stampOf(path: string): string {
  const stats = statSync(path, { throwIfNoEntry: false, bigint: true });
  return stats === undefined ? 'missing' : `${stats.ino} ${stats.size} ${stats.mtimeNs}`;
}

/** The users of an htpasswd file, or why it cannot be used. */
function readUsers(path: string): { users: Map<string, PasswordHash>; stamp: string; problems: string[] } | string {
  const stamp = stampOf(path);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    return `${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}); make it (printf "alice:%s\\n" "$(openssl passwd -6)" > ${path}) or fix the path`;
  }
  const users = new Map<string, PasswordHash>();
  const problems: string[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) {
      problems.push(`${path}:${i + 1} is not "user:hash"`);
      continue;
    }
    // htpasswd may add fields after the hash (user:hash:comment), as nginx ignores them
    const rest = line.slice(colon + 1);
    const end = rest.indexOf(':');
    const hash = parsePasswordHash(end === -1 ? rest : rest.slice(0, end));
    if ('problem' in hash) problems.push(`${path}:${i + 1} (user ${line.slice(0, colon)}): ${hash.problem}`);
    else users.set(line.slice(0, colon), hash);
  }
  if (users.size === 0 && problems.length === 0)
    return `${path} has no user: add one (printf "alice:%s\\n" "$(openssl passwd -6)" >> ${path})`;
  return { users, stamp, problems };
}
