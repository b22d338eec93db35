/**
 * The static file policy: which request paths may name a file we send. Pure string rules, no
 * filesystem; static.ts runs them on the decoded request path and again on each path it is about to
 * send (index file, realpath target), so a symlink cannot smuggle a forbidden name past them.
 *
 * Three answers, kept apart because callers treat them differently:
 * - invalid: the path cannot name a file under a root (traversal, bad encoding, NUL, backslash,
 *   Windows aliases); never served statically, the request goes to PHP as it would without static.
 *   Some only name nothing we send ("soft": a backslash, a colon, a trailing dot or space): classic
 *   mode lets those reach the front controller, so every hard check runs on the whole path first;
 * - forbidden: it names a file we never send (dotfile segment, forbidden extension, not allowed);
 *   the top-level "/.well-known/" folder is the one dot-folder allowed (RFC 8615: ACME http-01
 *   files, security.txt, app links), as nginx's usual `location ~ /\.(?!well-known)` allows it;
 * - file / directory: a clean root-relative path worth a stat.
 */

export type InvalidReason =
  | 'encoding' // bad percent-encoding or overlong / invalid UTF-8
  | 'not-absolute' // absolute-form target ("http://host/x"), "*", or empty
  | 'too-long'
  | 'control-char' // NUL and every other C0 control or DEL
  | 'backslash' // a separator on Windows, never in a URL path we serve
  | 'colon' // Windows drive letters and NTFS streams ("secret.php::$DATA")
  | 'dot-segment' // "." or ".." (traversal); clients normalise these before sending
  | 'empty-segment' // "//": non-canonical
  | 'trailing-dot-or-space'; // "secret.php." / "secret.php " open secret.php on Windows

/** Invalid only as a file name we send; the path holds no traversal, control byte or bad encoding. */
export const SOFT_INVALID: ReadonlySet<InvalidReason> = new Set(['backslash', 'colon', 'trailing-dot-or-space']);

export type ForbiddenReason = 'dotfile' | 'forbidden-extension' | 'not-allowed-extension';

export type PathVerdict =
  | { readonly kind: 'invalid'; readonly reason: InvalidReason }
  | { readonly kind: 'forbidden'; readonly reason: ForbiddenReason }
  /** a file name: "/css/site.css" (a directory of that name is handled by static.ts) */
  | { readonly kind: 'file'; readonly path: string }
  /** ends with "/": index files apply ("/" or "/docs/") */
  | { readonly kind: 'directory'; readonly path: string };

export interface FilePolicyOptions {
  /** extensions with their dot, any case: [".php", ".env"] */
  forbid: readonly string[];
  /** null: every extension not forbidden; else only these */
  allow: readonly string[] | null;
  /** the top-level "/.well-known/" folder may be served (default true) */
  well_known?: boolean;
}

/** Compiled once at boot: lower-cased extension sets. */
export interface FilePolicy {
  readonly forbid: ReadonlySet<string>;
  readonly allow: ReadonlySet<string> | null;
  readonly wellKnown: boolean;
}

/** Longer decoded paths are not names we serve (PATH_MAX is 4096 on Linux). */
export const MAX_PATH_CHARS = 4096;

export function createFilePolicy(options: FilePolicyOptions): FilePolicy {
  return {
    forbid: new Set(options.forbid.map((ext) => ext.toLowerCase())),
    allow: options.allow === null ? null : new Set(options.allow.map((ext) => ext.toLowerCase())),
    wellKnown: options.well_known ?? true,
  };
}

/**
 * The request target's path, percent-decoded exactly once, then normalised (normalizePath); null
 * when it does not decode (bad escapes, overlong or invalid UTF-8 such as %c0%ae). The query and any
 * fragment are cut first, so an encoded "?" or "#" (%3f, %23) stays part of the name. Double
 * encoding stays literal: "%252e" decodes to the three characters "%2e", a name that is then looked
 * up as is, never decoded again.
 */
export function decodeRequestPath(url: string): string | null {
  const path = pathOf(url);
  if (!path.includes('%')) return normalizePath(path);
  try {
    return normalizePath(decodeURIComponent(path));
  } catch {
    return null;
  }
}

/**
 * For a path decodeRequestPath refuses: when every escape is well formed and only the bytes are not
 * UTF-8 ("%FF", Latin-1 "%E9", the overlong "%c0%ae"), the path with each such byte as U+FFFD,
 * normalised, for the checks (".." and control bytes are still seen; an overlong "." is no dot).
 * It names no file: nginx passes such a path to the front controller, and so may the resolver.
 * Null when an escape is broken ("%zz"): 400, as nginx answers it.
 */
export function decodeNonUtf8Path(url: string): string | null {
  const path = pathOf(url);
  if (/%(?![0-9A-Fa-f]{2})/.test(path)) return null;
  // Buffer's UTF-8 decoder puts U+FFFD for every byte that is not part of a valid sequence
  return normalizePath(
    path.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => Buffer.from(run.replaceAll('%', ''), 'hex').toString('utf8')),
  );
}

/** The path of a request target: up to its query or fragment. */
function pathOf(url: string): string {
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) return url.slice(0, i);
  }
  return url;
}

/**
 * nginx's normalisation before it looks a path up: slashes merged (merge_slashes, on by default)
 * and "." segments dropped, so "//wp-content/x.css" and "/a/./b" name "/wp-content/x.css" and "/a/b".
 * ".." is kept for checkPath to refuse: resolving it would hide a traversal attempt.
 */
export function normalizePath(path: string): string {
  if (path.charCodeAt(0) !== 47 /* / */ || (!path.includes('//') && !path.includes('/./') && !path.endsWith('/.')))
    return path;
  const segments = path.split('/');
  const kept: string[] = [];
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment !== '' && segment !== '.') kept.push(segment);
  }
  const last = segments[segments.length - 1];
  if (kept.length === 0) return '/';
  return last === '' || last === '.' ? `/${kept.join('/')}/` : `/${kept.join('/')}`;
}

/**
 * A Location header's path for a normalised path: each segment percent-encoded, so it stays a path
 * on this host whatever a name holds (a backslash, which browsers read as "/"; a CR).
 */
export function locationOf(path: string): string {
  return path.split('/').map(encodeURIComponent).join('/');
}

const INVALID_ENCODING: PathVerdict = { kind: 'invalid', reason: 'encoding' };

/** decodeRequestPath + checkPath: the verdict for a request target as it arrived. */
export function checkRequestTarget(policy: FilePolicy, url: string): PathVerdict {
  const decoded = decodeRequestPath(url);
  return decoded === null ? INVALID_ENCODING : checkPath(policy, decoded);
}

/**
 * The verdict for a decoded, absolute ("/"-led) path. Invalid beats forbidden: "/.git/../x" is a
 * traversal attempt, not a dotfile request.
 */
export function checkPath(policy: FilePolicy, path: string): PathVerdict {
  if (path.length === 0 || path.charCodeAt(0) !== 47 /* / */) return invalid('not-absolute');
  if (path.length > MAX_PATH_CHARS) return invalid('too-long');
  let forbidden: ForbiddenReason | null = null;
  // the first soft reason, answered once the whole path has passed the hard checks
  let soft: InvalidReason | null = null;
  let start = 1;
  for (;;) {
    let end = start;
    // One pass over the segment: characters that are never part of a name we serve.
    for (; end < path.length; end++) {
      const c = path.charCodeAt(end);
      if (c === 47 /* / */) break;
      if (c < 32 || c === 127) return invalid('control-char');
      if (c === 92 /* \ */) soft ??= 'backslash';
      else if (c === 58 /* : */) soft ??= 'colon';
    }
    const last = end === path.length;
    if (end === start) {
      // An empty segment is only the trailing slash of a directory path ("/" itself included).
      if (!last) return invalid('empty-segment');
      if (soft !== null) return invalid(soft);
      return forbidden !== null ? forbiddenBy(forbidden) : { kind: 'directory', path };
    }
    const first = path.charCodeAt(start);
    const final = path.charCodeAt(end - 1);
    if (first === 46 /* . */) {
      const length = end - start;
      if (length === 1 || (length === 2 && path.charCodeAt(start + 1) === 46)) return invalid('dot-segment');
    }
    if (final === 46 /* . */ || final === 32 /* space */) soft ??= 'trailing-dot-or-space';
    // Every dotfile and dot-folder is forbidden (.env, .git/, .htaccess), but the top-level
    // .well-known folder itself (its own dotfiles are not: "/.well-known/.hidden").
    const wellKnown = start === 1 && policy.wellKnown && isWellKnownSegment(path, end);
    if (first === 46 && forbidden === null && !wellKnown) forbidden = 'dotfile';
    if (last) {
      if (soft !== null) return invalid(soft);
      if (wellKnown) return { kind: 'file', path }; // "/.well-known": the folder, redirected to its "/" form
      if (forbidden !== null) return forbiddenBy(forbidden);
      const reason = checkFileName(policy, path.slice(start, end));
      return reason === null ? { kind: 'file', path } : forbiddenBy(reason);
    }
    start = end + 1;
  }
}

const WELL_KNOWN = '.well-known';

/** The segment of `path` from 1 to `end` is exactly ".well-known" (case-sensitive, as nginx's regex). */
function isWellKnownSegment(path: string, end: number): boolean {
  return end === WELL_KNOWN.length + 1 && path.startsWith(WELL_KNOWN, 1);
}

/** True for "/.well-known" and every path under it: the top-level folder of RFC 8615. */
export function isWellKnownPath(path: string): boolean {
  // 12: the length of "/.well-known"; 47: "/"
  return path.startsWith('/.well-known') && (path.length === 12 || path.charCodeAt(12) === 47);
}

/**
 * forbid/allow for one file name (no slashes), case-insensitively. Every dot-separated suffix is
 * checked against forbid, not only the last, so copies of PHP source ("index.php.bak",
 * "secret.php.gz", editor backups "index.php~") are forbidden too. allow looks at the last one.
 */
export function checkFileName(policy: FilePolicy, name: string): ForbiddenReason | null {
  const lower = name.toLowerCase();
  if (lower.charCodeAt(0) === 46) return 'dotfile';
  let dot = lower.indexOf('.');
  let lastExtension = '';
  while (dot !== -1) {
    const next = lower.indexOf('.', dot + 1);
    lastExtension = lower.slice(dot, next === -1 ? lower.length : next);
    if (policy.forbid.has(stripBackupMarks(lastExtension))) return 'forbidden-extension';
    dot = next;
  }
  if (policy.allow !== null && !policy.allow.has(lastExtension)) return 'not-allowed-extension';
  return null;
}

/** The extension that names the file's type: ".css" for "app.min.CSS", "" for "LICENSE". */
export function extensionOf(name: string): string {
  const slash = name.lastIndexOf('/');
  const dot = name.lastIndexOf('.');
  return dot <= slash + 1 ? '' : name.slice(dot).toLowerCase();
}

// "index.php~" (vim, nano) and "#index.php#" (emacs) are copies of index.php, and so are the
// names people give copies by hand: "wp-config.php_bak", "wp-config.php-", "index.php-old" (sent
// as text, database password included, before): the extension is read up to a - or _ after it.
function stripBackupMarks(extension: string): string {
  let end = extension.length;
  while (end > 1 && (extension.charCodeAt(end - 1) === 126 /* ~ */ || extension.charCodeAt(end - 1) === 35) /* # */)
    end--;
  for (let i = 2; i < end; i++) {
    const code = extension.charCodeAt(i);
    if (code === 45 /* - */ || code === 95 /* _ */) {
      end = i;
      break;
    }
  }
  return end === extension.length ? extension : extension.slice(0, end);
}

const INVALID: { [R in InvalidReason]: PathVerdict } = {
  encoding: INVALID_ENCODING,
  'not-absolute': { kind: 'invalid', reason: 'not-absolute' },
  'too-long': { kind: 'invalid', reason: 'too-long' },
  'control-char': { kind: 'invalid', reason: 'control-char' },
  backslash: { kind: 'invalid', reason: 'backslash' },
  colon: { kind: 'invalid', reason: 'colon' },
  'dot-segment': { kind: 'invalid', reason: 'dot-segment' },
  'empty-segment': { kind: 'invalid', reason: 'empty-segment' },
  'trailing-dot-or-space': { kind: 'invalid', reason: 'trailing-dot-or-space' },
};

const FORBIDDEN: { [R in ForbiddenReason]: PathVerdict } = {
  dotfile: { kind: 'forbidden', reason: 'dotfile' },
  'forbidden-extension': { kind: 'forbidden', reason: 'forbidden-extension' },
  'not-allowed-extension': { kind: 'forbidden', reason: 'not-allowed-extension' },
};

function invalid(reason: InvalidReason): PathVerdict {
  return INVALID[reason];
}

function forbiddenBy(reason: ForbiddenReason): PathVerdict {
  return FORBIDDEN[reason];
}
