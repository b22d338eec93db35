/**
 * Classic mode's one place that decides what a request runs: a PHP script (with SCRIPT_NAME,
 * SCRIPT_FILENAME and PATH_INFO), a static file, a redirect to a directory's slash form, or nothing.
 * nginx's try_files + fastcgi_split_path_info and Caddy's php_fastcgi, without their traps:
 *
 * - only an existing regular file under the root runs, its real path (symlinks resolved) inside the
 *   root's real path, with an allowed extension, outside the no_exec folders, dot-folders and
 *   "/.well-known/" (whose files are served, and whose other paths reach the try_files fallback);
 * - PATH_INFO is split only after a path segment that is such a script ("/index.php/foo/bar"),
 *   never inside a segment, so "/uploads/avatar.jpg/x.php" cannot run a JPEG (cgi.fix_pathinfo);
 * - a path naming a script that is not there ("/x.php", "/x.php/more") is 404, as with nginx's
 *   `location ~ \.php$`, never the try_files fallback;
 * - script source and dotfiles are never a static answer.
 *
 * The rules are pure; the filesystem comes in through a small port (Node's by default), so each
 * request costs a realpath and a stat per candidate and nothing is cached here (lookup-cache.ts
 * remembers lookups and whole verdicts for a second).
 */
import { existsSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, resolve as resolvePath, sep } from 'node:path';
import { InvalidOptionError } from '../errors.js';
import {
  checkPath,
  decodeNonUtf8Path,
  decodeRequestPath,
  type FilePolicy,
  type InvalidReason,
  isWellKnownPath,
  locationOf,
  SOFT_INVALID,
} from './file-policy.js';

export interface ScriptResolverOptions {
  /** The document root (absolute, or relative to the working directory). */
  root: string;
  /** Index files of a directory, in order; default ["index.php", "index.html"]. */
  index?: readonly string[];
  /**
   * As nginx's try_files: "$uri" (the file), "$uri/" (the directory's index), other paths with
   * "$uri" in them; the last entry is the fallback, a path with an optional query ("$args" is the
   * request's query) or "=404". Default ["$uri", "$uri/", "/index.php?$args"].
   */
  try_files?: readonly string[];
  /**
   * Prefix → script, before try_files: every path under "/wiki/" runs "/index.php" (nginx's
   * `location /wiki/ { rewrite ^ /index.php; }`, MediaWiki's short URLs), a page named
   * "Manual:Index.php" included, which try_files would answer 404 as a missing script. The target
   * is written as try_files' fallback: a path with an optional query, or "=404". The longest
   * prefix wins.
   */
  rewrite?: Readonly<Record<string, string>>;
  /**
   * Prefix → try_files' fallback for the paths under it, when nothing else resolves (nginx: a
   * location's own try_files): { "/icingaweb2/": "/icingaweb2/index.php?$args" } for an app
   * linked in under a path. Written as try_files' fallback; the longest prefix wins.
   */
  fallbacks?: Readonly<Record<string, string>>;
  /**
   * "subdirectory": a WordPress subdirectory network. A path that names nothing under the root and
   * whose part after its first segment is WordPress's ("/site2/wp-admin/", "/site2/wp-login.php",
   * "/site2/wp-includes/x.css", "/site2/wp-content/uploads/...") is resolved without that segment,
   * as WordPress's nginx rules do (`if (!-e $request_filename) { rewrite ^(/[^/]+)?(/wp-.*) $2 last;
   * rewrite ^(/[^/]+)?(/.*\.php) $2 last; }`); every rule below applies to the path it becomes.
   */
  multisite?: 'subdirectory';
  /**
   * Extensions that run as PHP; default [".php"]. Only as written: a case variant ("X.PHP") is
   * refused (403), neither run (php-fpm's security.limit_extensions would refuse it too, and an
   * app's case-sensitive upload check lets it through) nor sent as source.
   */
  extensions?: readonly string[];
  /** Root-relative folders where nothing runs: ["/wp-content/uploads"]. Case-insensitive. */
  no_exec?: readonly string[];
  /** Split "/index.php/foo" into the script and PATH_INFO "/foo"; default true. */
  split_path?: boolean;
  /** What may be sent as a static file: the static layer's policy (dotfiles and its forbid list). */
  static_policy: FilePolicy;
  /**
   * Real paths of folders outside the root that a static file's symlink may lead to (the static
   * layer's link_targets); a script's never may.
   */
  static_link_targets?: readonly string[];
  /**
   * Real paths of folders outside the root that a script's symlink may lead to, and it runs there
   * (fastcgi.link_targets: a packaged app linked in under a path, nginx's `alias`); they are static
   * link targets too.
   */
  script_link_targets?: readonly string[];
  /** Told of a static file whose real path is outside the root and those folders (it is not sent). */
  on_link_out?: (file: string, target: string) => void;
  /** Told of a script whose real path is outside the root (it is not run). */
  on_script_link_out?: (file: string, target: string) => void;
}

export type ScriptForbiddenReason = 'no-exec' | 'dotfile' | 'forbidden-extension' | 'not-allowed-extension';

export type ScriptVerdict =
  /** Run this script. The names are the FastCGI params of the same name. */
  | {
      readonly kind: 'script';
      /** URL path of the script: "/index.php" */
      readonly scriptName: string;
      /** its real path (symlinks resolved): what runs */
      readonly scriptFilename: string;
      /** "" or "/foo/bar" */
      readonly pathInfo: string;
      /** the root's real path */
      readonly documentRoot: string;
      /** the path after try_files (nginx $document_uri): "/index.php" for the fallback */
      readonly documentUri: string;
      /** the request's query, or the fallback's ("/index.php?$args") */
      readonly queryString: string;
    }
  /** Send this file (through the static layer, which applies its own headers and checks). */
  | { readonly kind: 'static'; readonly path: string; readonly filename: string }
  /** A directory asked without its slash: send the client there (as nginx, Apache and Caddy do). */
  | { readonly kind: 'redirect'; readonly status: 301; readonly location: string }
  /** It exists but is never run nor sent. */
  | { readonly kind: 'forbidden'; readonly reason: ScriptForbiddenReason }
  /** Nothing there (or the fallback "=404", or "=NNN"). */
  | { readonly kind: 'not-found'; readonly status: number }
  /** The path cannot name a file under the root (traversal, bad encoding...): answer 400 or 404. */
  | { readonly kind: 'invalid'; readonly reason: InvalidReason };

/** What the resolver needs from a filesystem. */
export interface ResolverFileSystem {
  /** The real path and type of `path`, or null when it does not exist or cannot be read. */
  lookup(path: string): Promise<{ real: string; kind: 'file' | 'directory' | 'other' } | null>;
}

export const NODE_FILE_SYSTEM: ResolverFileSystem = {
  async lookup(path) {
    // a missing path (a pretty URL's "$uri") with one blocking access(2), not a failed realpath
    // through libuv's thread pool (see static.ts checkFile)
    if (!existsSync(path)) return null;
    try {
      const real = await realpath(path);
      const stats = await stat(real);
      return { real, kind: stats.isFile() ? 'file' : stats.isDirectory() ? 'directory' : 'other' };
    } catch {
      return null;
    }
  },
};

export const DEFAULT_SCRIPT_INDEX: readonly string[] = Object.freeze(['index.php', 'index.html']);
export const DEFAULT_TRY_FILES: readonly string[] = Object.freeze(['$uri', '$uri/', '/index.php?$args']);
export const DEFAULT_SCRIPT_EXTENSIONS: readonly string[] = Object.freeze(['.php']);

type Fallback = { kind: 'status'; status: number } | { kind: 'path'; path: string; query: string | null };

export interface ResolvedScriptOptions {
  root: string;
  index: readonly string[];
  tries: readonly string[];
  fallback: Fallback;
  /** fastcgi.rewrite, longest prefix first */
  rewrites: readonly { prefix: string; target: Fallback }[];
  /** try_files' fallback by path prefix, longest first */
  fallbacks: readonly { prefix: string; target: Fallback }[];
  /** fastcgi.multisite: "subdirectory" */
  multisite: boolean;
  /** lower-case: which names are scripts, to run or to refuse (never static files) */
  extensions: ReadonlySet<string>;
  /** as configured: which scripts run */
  exactExtensions: ReadonlySet<string>;
  /** lower-case, each ending with "/" */
  noExec: readonly string[];
  splitPath: boolean;
  staticPolicy: FilePolicy;
  staticLinkTargets: readonly string[];
  scriptLinkTargets: readonly string[];
  onLinkOut: ((file: string, target: string) => void) | null;
  onScriptLinkOut: ((file: string, target: string) => void) | null;
}

export interface ScriptResolver {
  readonly options: ResolvedScriptOptions;
  /** The verdict for a request target as it arrived ("/blog/?p=1"). */
  resolve(target: string): Promise<ScriptVerdict>;
}

/** Validates once (errors name the option) and returns the resolver. */
export function createScriptResolver(
  options: ScriptResolverOptions,
  fs: ResolverFileSystem = NODE_FILE_SYSTEM,
): ScriptResolver {
  const resolved = resolveScriptOptions(options);
  return { options: resolved, resolve: (target) => resolveScriptTarget(resolved, fs, target) };
}

function resolveScriptOptions(options: ScriptResolverOptions): ResolvedScriptOptions {
  if (typeof options.root !== 'string' || options.root === '') {
    throw new InvalidOptionError('root', 'must be the document root, e.g. "/srv/www/public"');
  }
  const extensions = options.extensions ?? DEFAULT_SCRIPT_EXTENSIONS;
  if (!Array.isArray(extensions) || extensions.length === 0) {
    throw new InvalidOptionError('extensions', 'must list at least one extension, such as [".php"]');
  }
  for (const ext of extensions) {
    if (typeof ext !== 'string' || !/^\.[A-Za-z0-9]+$/.test(ext)) {
      throw new InvalidOptionError(
        'extensions',
        `must hold extensions with their dot, such as ".php"; got ${JSON.stringify(ext)}`,
      );
    }
  }
  const index = options.index ?? DEFAULT_SCRIPT_INDEX;
  for (const name of index) {
    if (typeof name !== 'string' || name === '' || /[/\\:\0]/.test(name) || name.startsWith('.')) {
      throw new InvalidOptionError(
        'index',
        `must hold plain file names such as "index.php"; got ${JSON.stringify(name)}`,
      );
    }
  }
  const tryFiles = options.try_files ?? DEFAULT_TRY_FILES;
  if (!Array.isArray(tryFiles) || tryFiles.length === 0) {
    throw new InvalidOptionError(
      'try_files',
      'must list at least the fallback, such as ["$uri", "$uri/", "/index.php?$args"]',
    );
  }
  const tries = tryFiles.slice(0, -1);
  for (const entry of tries) {
    if (typeof entry !== 'string' || !(entry.startsWith('$uri') || entry.startsWith('/')) || entry.includes('?')) {
      throw new InvalidOptionError(
        'try_files',
        `entries before the last are paths ("$uri", "$uri/", "/maintenance.html"); got ${JSON.stringify(entry)}`,
      );
    }
  }
  const noExec = (options.no_exec ?? []).map((folder) => {
    if (typeof folder !== 'string' || !folder.startsWith('/') || folder.includes('..')) {
      throw new InvalidOptionError(
        'no_exec',
        `must hold root-relative folders such as "/uploads"; got ${JSON.stringify(folder)}`,
      );
    }
    return folder.toLowerCase().endsWith('/') ? folder.toLowerCase() : `${folder.toLowerCase()}/`;
  });
  const rewrites = prefixTargets(options.rewrite, 'rewrite');
  const fallbacks = prefixTargets(options.fallbacks, 'fallbacks');
  if (options.multisite !== undefined && options.multisite !== 'subdirectory') {
    throw new InvalidOptionError(
      'multisite',
      `is "subdirectory", for a WordPress network whose sites are folders ("/site2/"); a network of subdomains needs nothing here (list its hosts); got ${JSON.stringify(options.multisite)}`,
    );
  }
  return {
    root: resolvePath(options.root),
    index,
    tries,
    fallback: parseFallback(tryFiles[tryFiles.length - 1]),
    rewrites,
    fallbacks,
    multisite: options.multisite === 'subdirectory',
    extensions: new Set(extensions.map((e) => e.toLowerCase())),
    exactExtensions: new Set(extensions),
    noExec,
    splitPath: options.split_path ?? true,
    staticPolicy: options.static_policy,
    staticLinkTargets: options.static_link_targets ?? [],
    scriptLinkTargets: options.script_link_targets ?? [],
    onLinkOut: options.on_link_out ?? null,
    onScriptLinkOut: options.on_script_link_out ?? null,
  };
}

/** rewrite / fallbacks: prefix → a target written as try_files' fallback, longest prefix first. */
function prefixTargets(
  map: Readonly<Record<string, string>> | undefined,
  key: 'rewrite' | 'fallbacks',
): { prefix: string; target: Fallback }[] {
  const targets = Object.entries(map ?? {}).map(([prefix, target]) => {
    // matched against the decoded, normalised path: a prefix that path cannot start with never matches
    if (!prefix.startsWith('/') || /[?%#\\\0]|\/\/|(^|\/)\.\.?(\/|$)/.test(prefix)) {
      throw new InvalidOptionError(
        `${key}.${prefix}`,
        `prefixes are decoded paths such as "/wiki/" (no "//", "..", ".", "%", "?" or "#"); got ${JSON.stringify(prefix)}`,
      );
    }
    const parsed = parseFallback(target, `${key}.${prefix}`);
    // a target under a dot-folder or climbing with ".." is refused at every request: say it now
    if (parsed.kind === 'path' && /(^|\/)\./.test(parsed.path)) {
      throw new InvalidOptionError(
        `${key}.${prefix}`,
        `the script must be a plain path under the root, such as "/index.php" (no ".." and no dot-folder); got ${JSON.stringify(target)}`,
      );
    }
    return { prefix, target: parsed };
  });
  return targets.sort((a, b) => b.prefix.length - a.prefix.length);
}

function parseFallback(entry: unknown, key = 'try_files'): Fallback {
  if (typeof entry === 'string') {
    const status = /^=([1-5][0-9][0-9])$/.exec(entry);
    if (status !== null) return { kind: 'status', status: Number(status[1]) };
    if (entry.startsWith('/')) {
      const question = entry.indexOf('?');
      return question === -1
        ? { kind: 'path', path: entry, query: null }
        : { kind: 'path', path: entry.slice(0, question), query: entry.slice(question + 1) };
    }
  }
  throw new InvalidOptionError(
    key,
    key.startsWith('rewrite') || key.startsWith('fallbacks')
      ? `each prefix leads to a script path such as "/index.php" (with "?$args" if you like), or "=404"; got ${JSON.stringify(entry)}`
      : `the last entry is the fallback: a path such as "/index.php?$args", or "=404"; got ${JSON.stringify(entry)}`,
  );
}

// ---- resolving ----

const NOT_FOUND: ScriptVerdict = { kind: 'not-found', status: 404 };

interface Request {
  /** decoded, normalised, checked path (for multisite, without the site's folder) */
  path: string;
  /** the path as asked: a redirect to a directory's slash form keeps the site's folder */
  asked: string;
  /** the raw query, without "?" */
  query: string;
  realRoot: string;
}

/** The verdict for a target with these (validated) options and this filesystem port. */
export async function resolveScriptTarget(
  options: ResolvedScriptOptions,
  fs: ResolverFileSystem,
  target: string,
): Promise<ScriptVerdict> {
  const question = target.indexOf('?');
  const rawPath = question === -1 ? target : target.slice(0, question);
  // a fragment is the browser's, never sent; a client that sends one does not have it in the query (nginx)
  const hash = question === -1 ? -1 : target.indexOf('#', question);
  const query = question === -1 ? '' : target.slice(question + 1, hash === -1 ? undefined : hash);
  // "//x" and "/./x" are "/x" (nginx's merge_slashes): every decision below is made on that path;
  // PHP's REQUEST_URI stays the target as the client sent it
  let path = decodeRequestPath(rawPath);
  // bytes that are not UTF-8 ("/p/%FF"): checked as the text they decode to, never looked up on
  // disk by that name, but the fallback (the front controller) gets them, as behind nginx
  const bytesOnly = path === null;
  if (path === null) path = decodeNonUtf8Path(rawPath);
  if (path === null) return { kind: 'invalid', reason: 'encoding' };
  const verdict = checkPath(options.staticPolicy, path);
  // A colon, a backslash, a trailing dot or space are Windows hazards (drive letters, NTFS streams,
  // separators, aliases of "name"), not Linux ones: they never name a static file here, but a route
  // may hold them (DokuWiki's "/doku.php/wiki:syntax", "/search/Mr."), as PATH_INFO or for the
  // fallback. checkPath has refused traversal and control bytes in the whole path before these.
  if (verdict.kind === 'invalid' && !SOFT_INVALID.has(verdict.reason)) return verdict;
  // a dot segment anywhere (".git/", ".env", but the top-level ".well-known/"): never run, never sent
  if (hasDotSegment(options, path)) return { kind: 'forbidden', reason: 'dotfile' };
  fs = onceEach(fs);
  const root = await fs.lookup(options.root);
  if (root === null || root.kind !== 'directory') return NOT_FOUND;
  const asked = path;
  // a rewrite prefix is the operator's explicit word: it wins over multisite's rule, on the asked path
  for (const rewrite of options.rewrites)
    if (path.startsWith(rewrite.prefix))
      return runFallback(options, fs, { path, asked, query, realRoot: root.real }, rewrite.target, bytesOnly);
  // WordPress's subdirectory network: "/site2/wp-admin/" is "/wp-admin/" unless it exists as asked
  if (options.multisite && !bytesOnly) {
    const shared = multisiteSharedPath(path, options.extensions);
    if (shared !== null && (await fs.lookup(root.real + path)) === null) path = shared;
  }
  const request: Request = { path, asked, query, realRoot: root.real };
  if (bytesOnly) {
    // a script before the bytes runs with them in its PATH_INFO ("/index.php/Caf%E9": MediaWiki's
    // old Latin-1 links), each such byte as U+FFFD there, as a UTF-8 app reads it; REQUEST_URI keeps them
    const script = await scriptBeforeBytes(options, fs, request);
    if (script !== null) return script;
  } else
    for (const entry of options.tries) {
      const candidate = entry.replaceAll('$uri', path).replace(/\/{2,}$/, '/');
      // "/info.php/" is a script with PATH_INFO "/" before it is a directory
      let found = await tryFile(options, fs, request, candidate, true);
      if (found === null && candidate.endsWith('/')) found = await tryDirectory(options, fs, request, candidate);
      if (found !== null) return found;
    }
  // nginx's `location ~ \.php(/|$)` with `try_files $fastcgi_script_name =404`: a path that names a
  // script that is not there is a 404 and never wakes the front controller. Bots probe for
  // /wp-login.php, /shell.php and /phpinfo.php all day; each would boot the whole app to say 404.
  if (namesScript(options, path)) return NOT_FOUND;
  return runFallback(options, fs, request, fallbackFor(options, path), bytesOnly);
}

/** try_files' fallback for `path`: its longest fallbacks prefix's, else the last try_files entry. */
function fallbackFor(options: ResolvedScriptOptions, path: string): Fallback {
  for (const { prefix, target } of options.fallbacks) if (path.startsWith(prefix)) return target;
  return options.fallback;
}

/** With split_path, the script that ends at a segment boundary before the path's first undecodable byte. */
async function scriptBeforeBytes(
  options: ResolvedScriptOptions,
  fs: ResolverFileSystem,
  request: Request,
): Promise<ScriptVerdict | null> {
  if (!options.splitPath) return null;
  const { path } = request;
  const bytes = path.indexOf(REPLACEMENT_CHARACTER);
  for (let end = path.indexOf('/', 1); end !== -1 && end < bytes; end = path.indexOf('/', end + 1)) {
    const scriptName = path.slice(0, end);
    if (!options.extensions.has(extensionOf(scriptName)) || hasDotSegment(options, scriptName)) continue;
    const verdict = await tryScript(options, fs, request, scriptName, path.slice(end), path);
    if (verdict !== null) return verdict;
  }
  return null;
}

/** What the path decoder puts for each byte that is not part of a UTF-8 sequence. */
const REPLACEMENT_CHARACTER = '\uFFFD';

/** try_files' last entry, or a rewrite's target: the script it names, with the request's path and query. */
async function runFallback(
  options: ResolvedScriptOptions,
  fs: ResolverFileSystem,
  request: Request,
  fallback: Fallback,
  bytesOnly: boolean,
): Promise<ScriptVerdict> {
  const { path, query } = request;
  if (fallback.kind === 'status') return { kind: 'not-found', status: fallback.status };
  // a fallback file named after the path would be picked by a name the client never sent
  if (bytesOnly && fallback.path.includes('$uri')) return NOT_FOUND;
  const fallbackPath = fallback.path.replaceAll('$uri', path);
  const fallbackQuery =
    fallback.query === null
      ? query
      : fallback.query.replaceAll('$args', query).replaceAll('$query_string', query).replaceAll('$uri', path);
  // a literal, not a spread: spreading an object costs more than the rest of this function
  const fallbackRequest: Request = {
    path: request.path,
    asked: request.asked,
    query: fallbackQuery,
    realRoot: request.realRoot,
  };
  const found = await tryFile(options, fs, fallbackRequest, fallbackPath, false);
  return found ?? NOT_FOUND;
}

/**
 * Each path looked up once per resolution. A pretty URL ("/blog/hello-world/") asks for the same
 * missing path four times (as "$uri" and "$uri/", each as a file and as a directory), and the
 * lookup cache remembers no miss (lookup-cache.ts).
 */
function onceEach(fs: ResolverFileSystem): ResolverFileSystem {
  const asked = new Map<string, ReturnType<ResolverFileSystem['lookup']>>();
  return {
    lookup(path) {
      let found = asked.get(path);
      if (found === undefined) {
        found = fs.lookup(path);
        asked.set(path, found);
      }
      return found;
    },
  };
}

/**
 * A file candidate: a script (the whole path, or with split_path the first segment that is a
 * script followed by PATH_INFO), else a static file. Null when there is nothing (next entry).
 */
async function tryFile(
  options: ResolvedScriptOptions,
  fs: ResolverFileSystem,
  request: Request,
  path: string,
  split: boolean,
): Promise<ScriptVerdict | null> {
  if (hasDotSegment(options, path)) return { kind: 'forbidden', reason: 'dotfile' };
  if (split && options.splitPath) {
    // Scripts only end at a segment boundary, only in segments with a script extension; the first
    // that is a real script wins ("/app.php/x.php" with a directory app.php runs x.php).
    for (let end = path.indexOf('/', 1); ; end = path.indexOf('/', end + 1)) {
      const scriptName = end === -1 ? path : path.slice(0, end);
      if (options.extensions.has(extensionOf(scriptName))) {
        const verdict = await tryScript(options, fs, request, scriptName, end === -1 ? '' : path.slice(end), path);
        if (verdict !== null) return verdict;
      }
      if (end === -1) break;
    }
  } else if (options.extensions.has(extensionOf(path))) {
    const verdict = await tryScript(options, fs, request, path, '', path);
    if (verdict !== null) return verdict;
  }
  if (options.extensions.has(extensionOf(path))) return null; // a script that is not there: never a static file
  return tryStatic(options, fs, request, path);
}

async function tryScript(
  options: ResolvedScriptOptions,
  fs: ResolverFileSystem,
  request: Request,
  scriptName: string,
  pathInfo: string,
  documentUri: string,
): Promise<ScriptVerdict | null> {
  const found = await fs.lookup(request.realRoot + scriptName);
  if (found === null || found.kind !== 'file') return null;
  const relative = insideRoot(request.realRoot, found.real) ?? insideFolders(options.scriptLinkTargets, found.real);
  // A script outside the root (a symlink out of it) is not there for us unless fastcgi.link_targets
  // names the folder it is in; the log says why once.
  if (relative === null) {
    options.onScriptLinkOut?.(request.realRoot + scriptName, found.real);
    return null;
  }
  if (isNoExec(options, scriptName) || isNoExec(options, relative)) return { kind: 'forbidden', reason: 'no-exec' };
  // .well-known holds files others write (certbot's webroot, app-link files): nothing runs there,
  // and a shell dropped in the one dot-folder a server lets through stays inert
  if (isWellKnownPath(scriptName) || isWellKnownPath(relative)) return { kind: 'forbidden', reason: 'no-exec' };
  if (hasDotSegment(options, relative)) return { kind: 'forbidden', reason: 'dotfile' };
  // "run.php" linked to "uploads/avatar.jpg": the file that runs must be a script too; and "X.PHP"
  // (asked, or linked to) is no script of ours, though a script's name all the same
  if (
    !options.exactExtensions.has(extensionOf(scriptName, false)) ||
    !options.exactExtensions.has(extensionOf(relative, false))
  )
    return { kind: 'forbidden', reason: 'not-allowed-extension' };
  return {
    kind: 'script',
    scriptName,
    scriptFilename: found.real,
    pathInfo,
    documentRoot: request.realRoot,
    documentUri,
    queryString: request.query,
  };
}

async function tryStatic(
  options: ResolvedScriptOptions,
  fs: ResolverFileSystem,
  request: Request,
  path: string,
): Promise<ScriptVerdict | null> {
  const found = await fs.lookup(request.realRoot + path);
  if (found === null || found.kind !== 'file') return null;
  const relative = insideRoot(request.realRoot, found.real) ?? insideFolders(options.staticLinkTargets, found.real);
  if (relative === null) {
    options.onLinkOut?.(request.realRoot + path, found.real);
    return null;
  }
  // the name asked for and the file it really is: both must be sendable ("style.css" -> "wp-config.php")
  for (const name of [path, relative]) {
    if (options.extensions.has(extensionOf(name))) return { kind: 'forbidden', reason: 'forbidden-extension' };
    const verdict = checkPath(options.staticPolicy, name);
    if (verdict.kind === 'forbidden') return { kind: 'forbidden', reason: verdict.reason };
    if (verdict.kind !== 'file') return null;
  }
  return { kind: 'static', path, filename: found.real };
}

/** "$uri/": the directory's first index file; a directory asked without its slash is redirected first. */
async function tryDirectory(
  options: ResolvedScriptOptions,
  fs: ResolverFileSystem,
  request: Request,
  directory: string,
): Promise<ScriptVerdict | null> {
  const found = await fs.lookup(request.realRoot + directory);
  if (found === null || found.kind !== 'directory') return null;
  // a folder linked into a link target may give its index; a script there runs only in a script link target
  if (
    insideRoot(request.realRoot, found.real) === null &&
    insideFolders(options.staticLinkTargets, found.real) === null &&
    !options.scriptLinkTargets.some((folder) => insideRoot(folder, found.real) !== null) // the folder itself too
  )
    return null;
  for (const name of options.index) {
    const verdict = await tryFile(options, fs, request, directory + name, false);
    if (verdict === null) continue;
    if (verdict.kind === 'forbidden') return verdict;
    if (!request.path.endsWith('/') && directory === `${request.path}/`) {
      const query = request.query === '' ? '' : `?${request.query}`;
      // from the normalised path: "//evil.example" must not become a Location to another host
      return { kind: 'redirect', status: 301, location: `${locationOf(request.asked)}/${query}` };
    }
    return verdict;
  }
  return null;
}

// ---- path rules ----

/**
 * A WordPress subdirectory network's path without its site's folder, as WordPress's nginx rules
 * rewrite it (`^(/[^/]+)?(/wp-.*)` and `^(/[^/]+)?(/.*\.php)` to `$2`): "/site2/wp-admin/x" →
 * "/wp-admin/x", "/site2/wp-login.php" → "/wp-login.php". Null when the path is no such path
 * ("/site2/hello-world/", "/wp-admin/"). `extensions` in lower case. Pure: the resolver applies it
 * only when the path as asked is not there; access rules and limit_req check it too (multisiteAlias).
 */
export function multisiteSharedPath(path: string, extensions: ReadonlySet<string>): string | null {
  const second = path.indexOf('/', 1);
  // "/index.php/wp-x" is index.php's PATH_INFO, never a site's folder
  if (second <= 1 || extensions.has(extensionOf(path.slice(0, second)))) return null;
  const rest = path.slice(second);
  if (rest.startsWith('/wp-')) return rest;
  for (let end = rest.indexOf('/', 1); ; end = rest.indexOf('/', end + 1)) {
    if (extensions.has(extensionOf(end === -1 ? rest : rest.slice(0, end)))) return rest;
    if (end === -1) return null;
  }
}

/** The relative path ("/a/b.php") of `real` under `realRoot`, or null when it is outside. */
function insideRoot(realRoot: string, real: string): string | null {
  if (real === realRoot) return '/';
  const prefix = realRoot.endsWith(sep) ? realRoot : realRoot + sep;
  if (!real.startsWith(prefix) || !isAbsolute(real)) return null;
  return `/${real.slice(prefix.length).split(sep).join('/')}`;
}

/**
 * The path of `real` under the first of `folders` it is in ("/jquery/jquery.min.js" under a link
 * target), or null (the folder itself is not "in" it).
 */
function insideFolders(folders: readonly string[], real: string): string | null {
  for (const folder of folders) {
    const relative = insideRoot(folder, real);
    if (relative !== null && relative !== '/') return relative;
  }
  return null;
}

function isNoExec(options: ResolvedScriptOptions, path: string): boolean {
  if (options.noExec.length === 0) return false;
  const lower = path.toLowerCase();
  return options.noExec.some((folder) => lower.startsWith(folder));
}

/**
 * The shared path access rules and limit_req also check (routes.ts): null without multisite, and
 * under a fastcgi.rewrite prefix, which the resolver matches first.
 */
export function multisiteAlias(options: ResolvedScriptOptions, path: string): string | null {
  if (!options.multisite || options.rewrites.some((rewrite) => path.startsWith(rewrite.prefix))) return null;
  return multisiteSharedPath(path, options.extensions);
}

/** A dotfile or dot-folder segment; the top-level ".well-known" folder is none when the policy allows it. */
function hasDotSegment(options: ResolvedScriptOptions, path: string): boolean {
  const from = options.staticPolicy.wellKnown && isWellKnownPath(path) ? 12 : 0;
  return path.indexOf('/.', from) !== -1;
}

/**
 * A segment of the path ends in a script extension (only the last one without split_path), trailing
 * dots and spaces aside: "/index.php." is another file than index.php on Linux, and never the front
 * controller's route either (Windows would run index.php for it).
 */
function namesScript(options: ResolvedScriptOptions, path: string): boolean {
  if (!options.splitPath) return options.extensions.has(extensionOf(withoutTrailingDots(path)));
  for (let end = path.indexOf('/', 1); ; end = path.indexOf('/', end + 1)) {
    const segment = withoutTrailingDots(end === -1 ? path : path.slice(0, end));
    if (options.extensions.has(extensionOf(segment))) return true;
    if (end === -1) return false;
  }
}

function withoutTrailingDots(path: string): string {
  let end = path.length;
  while (end > 1 && (path.charCodeAt(end - 1) === 46 /* . */ || path.charCodeAt(end - 1) === 32)) end--;
  return end === path.length ? path : path.slice(0, end);
}

/** ".php" for "index.PHP" (".PHP" as written, with lower false), "" for "LICENSE" or ".env". */
function extensionOf(name: string, lower = true): string {
  const slash = name.lastIndexOf('/');
  const dot = name.lastIndexOf('.');
  if (dot <= slash + 1) return '';
  return lower ? name.slice(dot).toLowerCase() : name.slice(dot);
}
