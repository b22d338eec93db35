import { InvalidOptionError } from '../errors.js';
import { cidrProblem, createCidrSet, parseAddress, type CidrSet } from './cidr.js';

/**
 * `access`: allow/deny CIDR lists per path prefix → 403.
 *
 * - The longest matching prefix wins, against the decoded, normalized path without query
 *   (`requestPath`): a rule that guards covers every spelling a backend may read as its prefix
 *   (`/METRICS`, `/metrics;x`, `/metrics.json`; not `/metricsfoo`), a rule that opens a path to
 *   everyone its prefix and what is under it, as written (longestPrefixRule).
 * - In the winning rule, `deny` is checked first; then, when `allow` is given, the client must be
 *   in it (`allow: []` denies everyone). A rule with neither list allows everyone: use it to open a
 *   sub-path of a restricted prefix (`{ prefix: '/admin/public' }` under `{ prefix: '/admin', allow }`).
 * - "all" in a list is nginx's `all`: every client (`deny: ["all"]` closes a prefix to everyone).
 * - No matching rule: allowed. A client address that is not an IP ('' for a unix-socket peer) is
 *   in no CIDR: deny rules do not match it but "all", allow rules reject it but "all".
 */
export interface AccessRule {
  prefix: string;
  allow?: string[];
  deny?: string[];
}

/** true = allowed. `path` is `requestPath(request.url)`; `clientAddr` is ClientInfo.remoteAddr. */
export type AccessCheck = (path: string, clientAddr: string) => boolean;

/** A list of CIDRs, or "all": every client (nginx's `allow all` / `deny all`). */
type ClientList = CidrSet | typeof ALL;
const ALL = 'all';

interface CompiledRule extends PrefixRule {
  allow: ClientList | null;
  deny: ClientList | null;
}

const ADDRESS = new Uint32Array(4);

/** Compiles the rules once; null when there are none (the feature then costs one null check). */
export function compileAccess(rules: readonly AccessRule[] | undefined, key = 'access'): AccessCheck | null {
  if (rules === undefined) return null;
  if (!Array.isArray(rules))
    throw new InvalidOptionError(key, `must be a list of { prefix, allow?, deny? }, got ${JSON.stringify(rules)}`);
  if (rules.length === 0) return null;
  const seen = new Set<string>();
  const compiled: CompiledRule[] = rules.map((rule, index) => {
    const at = `${key}[${index}]`;
    if (rule === null || typeof rule !== 'object')
      throw new InvalidOptionError(at, `must be an object like { prefix: "/metrics", allow: ["127.0.0.1/32"] }`);
    for (const name of Object.keys(rule)) {
      if (name !== 'prefix' && name !== 'allow' && name !== 'deny')
        throw new InvalidOptionError(`${at}.${name}`, 'is not a rule key; known keys: prefix, allow, deny');
    }
    const prefix = normalizePrefix(rule.prefix, `${at}.prefix`);
    if (seen.has(prefix)) throw new InvalidOptionError(`${at}.prefix`, `"${prefix}" appears in two rules; merge them`);
    seen.add(prefix);
    const allow = cidrList(rule.allow, `${at}.allow`);
    const deny = cidrList(rule.deny, `${at}.deny`);
    return { ...prefixRule(prefix, deny === null && (allow === null || allow === ALL)), allow, deny };
  });
  // longest prefix first: the first match is the most specific rule
  compiled.sort((a, b) => b.prefix.length - a.prefix.length);
  return (path, clientAddr) => {
    const rule = longestPrefixRule(compiled, path);
    if (rule === null) return true;
    const { allow, deny } = rule;
    if (allow === null && deny === null) return true;
    if (deny === ALL) return false;
    if (allow === ALL && deny === null) return true;
    const family = parseAddress(clientAddr, ADDRESS);
    if (deny?.containsParsed(family, ADDRESS) === true) return false;
    return allow === null || allow === ALL || allow.containsParsed(family, ADDRESS);
  };
}

/**
 * A rule's prefix as matched. A rule that guards (a password, a deny, a rate) matches its prefix
 * in any case, as Caddy's path matcher: an upstream that routes case-insensitively (Express,
 * ASP.NET) answered /ADMIN/users with no password behind `/admin`. A rule that opens a path
 * (auth_basic's off, an access rule allowing all) matches it only as written, so that it opens no
 * more than it names.
 */
export interface PrefixRule {
  /** lower-cased unless the rule opens */
  prefix: string;
  opens: boolean;
}

/** The matched form of a normalized prefix (normalizePrefix). */
export function prefixRule(prefix: string, opens: boolean): PrefixRule {
  return { prefix: opens ? prefix : guardedForm(prefix), opens };
}

/**
 * The first rule (rules sorted longest prefix first) whose prefix covers `path`. A rule that opens
 * covers its prefix and what is under it, as written. A guarding rule covers the path in the form
 * any backend might read it (guardedForm), and the prefix followed by anything but a letter, digit,
 * "-" or "_": `/admin.`, `/admin;x`, `/admin%20` and `/admin.json` (Spring's suffix match) too,
 * not `/administrator`.
 */
export function longestPrefixRule<R extends PrefixRule>(rules: readonly R[], path: string): R | null {
  let guarded: string | null = null;
  let opened: string | null = null;
  for (const rule of rules) {
    const prefix = rule.prefix;
    if (prefix === '/') return rule;
    if (rule.opens) {
      // as written, Java's path parameters aside (`/public;jsessionid=x` is /public to Tomcat, and
      // to the guarding rules: left out here, an open page with a session id was closed)
      opened ??= withoutPathParameters(path);
      if (
        opened.startsWith(prefix) &&
        (opened.length === prefix.length || opened.charCodeAt(prefix.length) === 47) /* / */
      )
        return rule;
      continue;
    }
    guarded ??= guardedForm(path);
    if (
      guarded.startsWith(prefix) &&
      (guarded.length === prefix.length || !isNameChar(guarded.charCodeAt(prefix.length)))
    )
      return rule;
  }
  return null;
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 127) return false;
  return true;
}

/** [A-Za-z0-9_-]: what may continue a name, so that /admin does not cover /administrator. */
function isNameChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 95;
}

/**
 * A path as the most lenient backend reads it, for the rules that guard: Java's path parameters
 * dropped (`/admin;jsessionid=x`, `/..;/admin`: Tomcat reads /admin), and the case folded the
 * Unicode way, where "ı", "İ" and "ſ" are "i", "i" and "s" (Java's equalsIgnoreCase, Go's
 * EqualFold): toLowerCase() alone left /adm%C4%B1n past an /admin rule.
 */
function guardedForm(path: string): string {
  const out = withoutPathParameters(path);
  // the common case, ASCII only: toLowerCase is the whole fold
  return isAscii(out)
    ? out.toLowerCase()
    : out
        .toUpperCase()
        .toLowerCase()
        .replace(/\u0307/g, '');
}

/** `path` without Java's path parameters (`;jsessionid=x`), its dot segments resolved again. */
function withoutPathParameters(path: string): string {
  return path.indexOf(';') >= 0 ? normalizeSegments(path.replace(/;[^/]*/g, '')) : path;
}

/** A rule's prefix as requestPath() gives paths, without a trailing slash; throws naming `key`. */
export function normalizePrefix(value: unknown, key: string): string {
  if (typeof value !== 'string' || !value.startsWith('/'))
    throw new InvalidOptionError(key, `must be a path starting with "/", got ${JSON.stringify(value)}`);
  if (/[?#\s]/.test(value))
    throw new InvalidOptionError(
      key,
      `must be a plain path without query, fragment or spaces, got ${JSON.stringify(value)}`,
    );
  // "/admin/*" (Caddy's spelling) matched only a path named "*": it protected nothing
  if (value.includes('*'))
    throw new InvalidOptionError(
      key,
      `must be a plain path: a prefix covers every path under it, so write "${value.replace(/\/?\*.*$/, '') || '/'}", not ${JSON.stringify(value)}`,
    );
  // compare like requestPath() normalizes: "/metrics/" and "/metrics" are the same prefix
  const normalized = requestPath(value);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}

function cidrList(value: unknown, key: string): ClientList | null {
  if (value === undefined) return null;
  if (!Array.isArray(value))
    throw new InvalidOptionError(
      key,
      `must be a list of CIDRs like ["127.0.0.1/32", "::1/128"] or ["all"], got ${JSON.stringify(value)}`,
    );
  if (value.some(isAll)) return ALL;
  return createCidrSet(value as string[], (index, message) => new InvalidOptionError(`${key}[${index}]`, message));
}

function isAll(entry: unknown): boolean {
  return typeof entry === 'string' && entry.trim().toLowerCase() === ALL;
}

/** Why an access list entry is wrong (a CIDR, a bare address, or "all"), or null: the config's check. */
export function accessEntryProblem(entry: unknown): string | null {
  if (isAll(entry)) return null;
  const problem = cidrProblem(entry);
  return problem === null ? null : `${problem}, or "all" for every client`;
}

/**
 * The path an access rule sees: query and fragment dropped, percent-decoded once (as PHP's router
 * and Fastify's see it; malformed escapes stay as they are), a backslash read as a slash (as the
 * proxy's URL parser reads it: `/private\x` reached an upstream as /private/x past the /private
 * rules), duplicate slashes collapsed and dot segments resolved, so `/%6detrics`, `//metrics`,
 * `/x/../metrics` and `\metrics` all meet the `/metrics` rule.
 */
export function requestPath(url: string): string {
  let end = url.length;
  const q = url.indexOf('?');
  if (q >= 0) end = q;
  const h = url.indexOf('#');
  if (h >= 0 && h < end) end = h;
  let path = end === url.length ? url : url.slice(0, end);
  if (path.indexOf('%') >= 0) path = decodePath(path);
  if (path.indexOf('\\') >= 0) path = path.replaceAll('\\', '/');
  return normalizeSegments(path);
}

/** Duplicate slashes collapsed and dot segments resolved; always starts with "/". */
function normalizeSegments(path: string): string {
  // fast path: nothing to normalize
  if (path.indexOf('//') < 0 && path.indexOf('/.') < 0 && path.charCodeAt(0) === 47) return path;
  const out: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  const trailing = path.endsWith('/') || path.endsWith('/.') || path.endsWith('/..');
  return `/${out.join('/')}${trailing && out.length > 0 ? '/' : ''}`;
}

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    // decode the well-formed escapes, keep the broken ones
    return path.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
      try {
        return decodeURIComponent(run);
      } catch {
        return run;
      }
    });
  }
}
