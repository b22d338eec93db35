import { readFileSync, statSync } from 'node:fs';
import { InvalidOptionError } from '../errors.js';
import { longestPrefixRule, normalizePrefix, type PrefixRule, prefixRule } from './access.js';
import { parsePasswordHash, type PasswordHash } from './password-hashes.js';

/**
 * `auth_basic`: HTTP Basic authentication per path prefix, as nginx's auth_basic with
 * auth_basic_user_file: a request under a rule's prefix needs a user and password of its htpasswd
 * file, else 401 with `WWW-Authenticate: Basic realm="…"`.
 *
 * - The longest matching prefix wins, on segment boundaries, against requestPath() as access rules;
 *   `off: true` opens a path under a protected prefix (nginx's `auth_basic off` in a location). A
 *   protected prefix covers every spelling a backend reads as it, an open one matches as written
 *   (access.ts, longestPrefixRule).
 * - The file is read at start (a line warmpool cannot use is an error naming the line) and again
 *   when it changes (checked at most once a second): users added or removed need no restart. A
 *   file that became unreadable or holds a bad line lets nobody in until it is fixed.
 * - Hashes: see password-hashes.ts. Each check of a password costs MD5- or SHA-crypt's rounds
 *   (a few milliseconds) or bcrypt's (tens to hundreds, run a slice per turn of the event loop):
 *   the credentials let in are remembered while their user's line is unchanged, and those refused
 *   per file version, so a browser's repeated header costs one lookup; guessing is slowed by
 *   limit_req on the same prefix and by the process's budget (PasswordChecks).
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
 * for password checks is spent (429, Retry-After: 1), so guesses cannot take the event loop. A
 * promise while a bcrypt check runs.
 */
export type BasicAuthCheck = (
  path: string,
  authorization: string | undefined,
) => BasicAuthAnswer | Promise<BasicAuthAnswer>;

export type BasicAuthAnswer = { realm: string; busy: boolean } | { user: string } | null;

interface CompiledRule extends PrefixRule {
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
  /** the budget and queue of password checks: the process's one (a test's own) */
  checks: PasswordChecks = PROCESS_CHECKS,
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
      return { ...prefixRule(prefix, true), realm: '', users: null };
    }
    if (typeof rule.user_file !== 'string' || rule.user_file === '')
      throw new InvalidOptionError(
        `${at}.user_file`,
        'is required: the htpasswd file of the users who may enter (make one with: printf "alice:%s\\n" "$(openssl passwd -6)" > /etc/warmpool/htpasswd)',
      );
    let users = files.get(rule.user_file);
    if (users === undefined) {
      users = new UserFile(rule.user_file, `${at}.user_file`, log, checks);
      files.set(rule.user_file, users);
    }
    return { ...prefixRule(prefix, false), realm: rule.realm ?? DEFAULT_REALM, users };
  });
  compiled.sort((a, b) => b.prefix.length - a.prefix.length);
  return (path, authorization) => {
    const rule = longestPrefixRule(compiled, path);
    if (rule === null || rule.users === null) return null;
    const answer = rule.users.admits(authorization);
    return typeof answer === 'string'
      ? ruleAnswer(rule, answer, authorization)
      : answer.then((a) => ruleAnswer(rule, a, authorization));
  };
}

function ruleAnswer(rule: CompiledRule, answer: Admits, authorization: string | undefined): BasicAuthAnswer {
  // the user it let in: REMOTE_USER for classic PHP, as nginx's $remote_user
  if (answer === 'admitted') return { user: userOf(authorization!) };
  return { realm: rule.realm, busy: answer === 'busy' };
}

/** The user name of a Basic Authorization header already checked. */
function userOf(authorization: string): string {
  return credentialsOf(authorization)?.user ?? '';
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
  #left: number;
  #at = performance.now();

  constructor(private readonly bucketMs: number) {
    this.#left = bucketMs;
  }

  available(): boolean {
    const now = performance.now();
    this.#left = Math.min(this.bucketMs, this.#left + (now - this.#at) * 0.25);
    this.#at = now;
    return this.#left > 0;
  }

  spend(ms: number): void {
    this.#left -= ms;
  }
}

/** Checks waiting for their turn (bcrypt's, run one at a time); more are answered busy. */
const MAX_QUEUED = 8;

/**
 * The password checks of a process: their budget of event-loop time, and the queue of the ones
 * that yield (bcrypt; a cheap one too while others wait), run one at a time, a slice per turn of
 * the event loop, each slice's time taken from the budget; while it is spent the queue waits for
 * it to refill.
 */
export class PasswordChecks {
  readonly budget: CheckBudget;
  #queue: Array<{ check: Generator<void, boolean, void>; done: (admitted: boolean) => void }> = [];

  constructor(bucketMs = 1000) {
    this.budget = new CheckBudget(bucketMs);
  }

  get full(): boolean {
    return this.#queue.length >= MAX_QUEUED;
  }

  /** checks wait in the queue: a cheap one goes behind them, or the guesses of it took every refill */
  get waiting(): boolean {
    return this.#queue.length > 0;
  }

  add(check: Generator<void, boolean, void>): Promise<boolean> {
    return new Promise((done) => {
      if (this.#queue.push({ check, done }) === 1) setImmediate(() => this.#next());
    });
  }

  #next(): void {
    const head = this.#queue[0];
    if (head === undefined) return;
    // a budget spent by guesses: wait for a tenth of a second's refill, not for the next turn
    if (!this.budget.available()) {
      setTimeout(() => this.#next(), 100).unref();
      return;
    }
    const started = performance.now();
    let step: IteratorResult<void, boolean>;
    try {
      step = head.check.next();
    } catch {
      step = { done: true, value: false };
    }
    this.budget.spend(performance.now() - started);
    if (step.done === true) {
      this.#queue.shift();
      head.done(step.value);
    }
    if (this.#queue.length > 0) setImmediate(() => this.#next());
  }
}

const PROCESS_CHECKS = new PasswordChecks();

type Admits = 'admitted' | 'refused' | 'busy';

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

/** The hash of the file that costs the most to check (bcrypt's highest cost, else any). */
function costliest(users: ReadonlyMap<string, PasswordHash>): PasswordHash | undefined {
  let found: PasswordHash | undefined;
  for (const hash of users.values()) if (found === undefined || hash.cost > found.cost) found = hash;
  return found;
}

/** The user and password of a Basic Authorization header; null when it is not one. */
function credentialsOf(authorization: string): { user: string; password: Buffer } | null {
  const match = /^Basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(authorization);
  if (match === null) return null;
  const decoded = Buffer.from(match[1]!, 'base64');
  const colon = decoded.indexOf(0x3a);
  if (colon === -1 || decoded.length - colon - 1 > MAX_PASSWORD_BYTES) return null;
  return { user: decoded.subarray(0, colon).toString('utf8'), password: decoded.subarray(colon + 1) };
}

/** One htpasswd file: its users, read again when it changes. */
class UserFile {
  #users: Map<string, PasswordHash>;
  #version = 0;
  #checkedAt = 0;
  #stamp: string;
  /**
   * The credentials let in (the Authorization header) → the user and the hash line they were
   * checked against: still admitted while that line is the same, the file edited or not (an edit
   * made every user already in be checked again, in a guessers' queue: 429). Apart from them, those
   * refused, per file version: a flood of distinct guesses (1,500 headers) cleared one shared map.
   */
  #admitted = new Map<string, { user: string; hash: string }>();
  #refused = new Map<string, true>();
  /** `${version} ${authorization}` of the checks still running: a page's parallel requests share one */
  #running = new Map<string, Promise<Admits>>();
  /** what an unknown user's password is checked against: the costliest hash of the file */
  #dummy: PasswordHash | undefined;

  constructor(
    readonly path: string,
    key: string,
    private readonly log: (message: string) => void,
    private readonly checks: PasswordChecks,
  ) {
    const read = readUsers(path);
    if (typeof read === 'string') throw new InvalidOptionError(key, read);
    // at start every line must be usable (config check names it); read again, a bad one is skipped
    if (read.problems.length > 0) throw new InvalidOptionError(key, read.problems[0]!);
    this.#users = read.users;
    this.#dummy = costliest(read.users);
    this.#stamp = read.stamp;
    this.#checkedAt = performance.now();
  }

  admits(authorization: string | undefined): Admits | Promise<Admits> {
    this.#recheck();
    if (authorization === undefined) return 'refused';
    const admitted = this.#admitted.get(authorization);
    if (admitted !== undefined && this.#users.get(admitted.user)?.text === admitted.hash) return 'admitted';
    const id = `${this.#version} ${authorization}`;
    if (this.#refused.has(id)) return 'refused';
    const running = this.#running.get(id);
    if (running !== undefined) return running;
    // a header that is no user and password of the right shape costs nothing and is not remembered
    const credentials = credentialsOf(authorization);
    if (credentials === null) return 'refused';
    // an unknown user costs what the costliest known one does: the time does not tell who exists
    const known = this.#users.get(credentials.user);
    const hash = known ?? this.#dummy;
    if (hash === undefined) return 'refused';
    if (!this.checks.budget.available()) return 'busy';
    const settle = (ok: boolean): Admits =>
      this.#remember(
        id,
        authorization,
        known !== undefined && ok ? { user: credentials.user, hash: known.text } : null,
      );
    // a cheap hash is checked here, unless checks wait in the queue: then it waits behind them
    // (its guesses took every refill of the budget, and the queue did not move while they came)
    if (!hash.slow && !this.checks.waiting) {
      const started = performance.now();
      const step = hash.check(credentials.password).next();
      this.checks.budget.spend(performance.now() - started);
      return settle(step.done === true && step.value);
    }
    // bcrypt: none of its work is done before it has a place in the queue, where it runs a slice
    // at a time within the budget; a guess that finds the queue full costs nothing (before, each
    // one's first slice was charged to the budget and thrown away, and the queue never moved)
    if (this.checks.full) return 'busy';
    const answer = this.checks.add(hash.check(credentials.password)).then((ok) => {
      this.#running.delete(id);
      return settle(ok);
    });
    this.#running.set(id, answer);
    return answer;
  }

  #remember(id: string, authorization: string, admitted: { user: string; hash: string } | null): Admits {
    if (authorization.length <= REMEMBERED_HEADER_CHARS) {
      if (admitted !== null) {
        if (this.#admitted.size >= REMEMBERED) this.#admitted.clear();
        this.#admitted.set(authorization, admitted);
      } else {
        if (this.#refused.size >= REMEMBERED) this.#refused.clear();
        this.#refused.set(id, true);
      }
    }
    return admitted !== null ? 'admitted' : 'refused';
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
    this.#dummy = costliest(this.#users);
    this.#stamp = typeof read === 'string' ? stamp : read.stamp;
    // the refused may be let in now; those let in stay in while their line is the same
    this.#version++;
    this.#refused.clear();
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
