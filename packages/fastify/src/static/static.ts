import { ReadStream, constants, realpathSync, statSync, type Stats } from 'node:fs';
import { open, realpath, type FileHandle } from 'node:fs/promises';
import { isAbsolute, join, resolve, sep } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidOptionError } from '../errors.js';
import {
  acceptedSiblings,
  cacheableRequest,
  DEFAULT_HOT_CACHE,
  HotCache,
  loadSendMime,
  type HotCacheOptions,
  type HotEntry,
  SIBLING_SUFFIX_LIST,
  siblingSuffix,
} from './hot-cache.js';
import { LinkOutWarnings } from './link-warnings.js';
import { rootLinkProblem } from './root-links.js';
import { holdsFile, openedPath, whenOpened } from './opened-file.js';
import {
  checkFileName,
  checkPath,
  createFilePolicy,
  decodeRequestPath,
  locationOf,
  extensionOf,
  type FilePolicy,
  type ForbiddenReason,
} from './file-policy.js';

/** `static` option of the plugin: RoadRunner http.static-like keys, spelled as in .rr.yaml. */
export interface StaticOptions {
  /** http.static.dir: the directory (or directories, first match wins) to serve; absolute or relative to process.cwd() */
  dir?: string | string[];
  /** @deprecated the old name of `dir`, kept for one release */
  root?: string | string[];
  /**
   * extensions (with their dot) never sent, added to DEFAULT_STATIC_FORBID: PHP source, backups,
   * logs and dumps stay forbidden whatever this list says (RoadRunner's list replaces its default;
   * warmpool's never drops one). Dotfiles are always forbidden.
   */
  forbid?: string[];
  /** when set (non-empty), only files with these extensions are served */
  allow?: string[];
  /**
   * what a request for an existing file that forbid/allow refuse (or a dotfile) gets: passed to PHP
   * (default, like RoadRunner), 403 or 404. A name that is no file goes to PHP whatever this says.
   */
  forbidden?: 'php' | 403 | 404;
  /** index files for paths ending in "/"; default ["index.html"]; false: none */
  index?: string[] | false;
  /** http.static.calculate_etag: ETag from size and mtime (as nginx); default true; false: none */
  calculate_etag?: boolean;
  /** http.static.weak: the ETag is weak (W/"..."); default false */
  weak?: boolean;
  /** @deprecated the old form of calculate_etag and weak (true | false | "weak" | "strong"), kept for one release */
  etag?: boolean | 'weak' | 'strong';
  /** send Last-Modified and answer If-Modified-Since; default true */
  last_modified?: boolean;
  /** serve "x.css.br" / "x.css.gz" for "x.css" when Accept-Encoding allows; default true */
  precompressed?: boolean;
  /**
   * Cache-Control per extension ({ ".css": "public, max-age=31536000, immutable" }); "*" for the
   * rest. A file matching none gets no Cache-Control (nginx's and RoadRunner's default).
   */
  cache_control?: Record<string, string>;
  /**
   * In-memory cache of small hot files (contents and validators), revalidated against the file
   * (stat + realpath) every revalidate_ms, like nginx's open_file_cache; default on; false: off.
   */
  hot_cache?: HotCacheOption | false;
  /**
   * nginx's try_files for a site of no PHP (a single-page app, clean URLs): "$uri" first, then
   * "$uri/" and "$uri.html" (any "$uri" + extension) in order, then the fallback: a file
   * ("/index.html"), or "=404" (the default). Refused where PHP runs: PHP is the fallback there.
   */
  try_files?: string[];
  /**
   * Folders outside the root that a symlink under it may lead to (absolute, or relative to
   * process.cwd()). By default a link out of the root is not followed. Debian's packaged apps link
   * files out of their folder: phpMyAdmin its jQuery and WordPress its Underscore.js into
   * /usr/share/javascript, DokuWiki its templates and plugins into /var/lib/dokuwiki/lib.
   */
  link_targets?: string[];
}

export interface HotCacheOption {
  /** total bytes of cached contents; default 16 MiB */
  max_bytes?: number;
  /** larger files are never cached; default 1 MiB */
  max_file_bytes?: number;
  /** a cached file is served with no fs call for this long, then re-checked; default 1000 */
  revalidate_ms?: number;
}

export const DEFAULT_STATIC_FORBID: readonly string[] = Object.freeze([
  '.php',
  '.phtml',
  '.phar',
  // PHP source under the other names Apache's mod_php ran (and old apps still carry): config.inc,
  // db.inc and lib.php5 hold code and credentials, sent as plain text otherwise
  '.php3',
  '.php4',
  '.php5',
  '.php7',
  '.php8',
  '.phps',
  '.pht',
  '.inc',
  '.env',
  '.htaccess',
  '.git',
  // what a deploy leaves in a web root and nobody meant to publish: logs (WordPress's
  // wp-content/debug.log, with paths and queries), database dumps and files, backup and swap copies
  '.log',
  '.sql',
  '.sqlite',
  '.sqlite3',
  '.bak',
  '.old',
  '.orig',
  '.swp',
]);
export const DEFAULT_INDEX: readonly string[] = Object.freeze(['index.html']);

export interface ResolvedStaticOptions {
  /** absolute, normalised; in lookup order */
  roots: readonly string[];
  /** fs.realpath of each root at boot (re-read if a root symlink is switched) */
  realRoots: readonly string[];
  policy: FilePolicy;
  forbidden: 'php' | 403 | 404;
  /** index file names that the policy allows; empty: directory paths go to PHP */
  index: readonly string[];
  etag: 'weak' | 'strong' | null;
  lastModified: boolean;
  precompressed: boolean;
  /** lower-cased extension with dot → header value */
  cacheControl: ReadonlyMap<string, string>;
  /**
   * for extensions not in cacheControl ("*"); null (the default): no Cache-Control, as nginx and
   * RoadRunner send none unless configured, so browsers cache by Last-Modified (heuristically)
   */
  cacheControlDefault: string | null;
  /** null: off */
  hotCache: HotCacheOptions | null;
  /** static.try_files: the extensions tried after the path itself, then the fallback file; null: none set */
  tryFiles: StaticTryFiles | null;
  /** real paths of the folders outside the roots that a symlink may lead to */
  linkTargets: readonly string[];
  /** says which links out of the root were not followed (classic mode's resolver shares it) */
  linkWarnings: LinkOutWarnings;
}

/**
 * One step of static.try_files: "file" $uri; "directory" $uri/ (a folder's index, or its "/" form);
 * "file-or-directory" the two in a row, looked up at once as without try_files; a suffix "$uri.html".
 */
export type TryFilesStep = 'file' | 'directory' | 'file-or-directory' | { suffix: string };

/** static.try_files read: its steps in order, then the fallback (a path under the roots) or null (=404). */
export interface StaticTryFiles {
  steps: readonly TryFilesStep[];
  fallback: string | null;
}

/**
 * Answers the request when the static layer owns it: true when it replied (a file, 304, 206, 416,
 * 301 to a directory's slash form, 403/404 for a forbidden file); false when the request goes to PHP.
 */
export interface StaticHandler {
  (request: FastifyRequest, reply: FastifyReply): Promise<boolean>;
  /**
   * Sends the file at a root-relative path something else chose (classic mode's script resolver),
   * with the same checks, headers and hot cache; false when it is not a file we send (then nothing
   * was written).
   */
  sendPath(request: FastifyRequest, reply: FastifyReply, path: string): Promise<boolean>;
}

const KNOWN = [
  'dir',
  'root',
  'calculate_etag',
  'weak',
  'forbid',
  'allow',
  'forbidden',
  'index',
  'etag',
  'last_modified',
  'precompressed',
  'cache_control',
  'hot_cache',
  'try_files',
  'link_targets',
];
const HOT_CACHE_KNOWN = ['max_bytes', 'max_file_bytes', 'revalidate_ms'];

/** Validates at register time; every error names the option ("static.dir"). Null when static is off. */
export function resolveStaticOptions(raw: StaticOptions | undefined): ResolvedStaticOptions | null {
  if (raw === undefined) return null;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidOptionError('static', 'must be an object such as { dir: "public" }');
  }
  for (const key of Object.keys(raw)) {
    if (!KNOWN.includes(key))
      throw new InvalidOptionError(`static.${key}`, `is not a static option; known options: ${KNOWN.join(', ')}`);
  }
  if (raw.dir !== undefined && raw.root !== undefined)
    throw new InvalidOptionError('static.root', 'is the old name of static.dir: give only dir');
  const roots = resolveRoots(raw.dir ?? raw.root, raw.dir === undefined && raw.root !== undefined ? 'root' : 'dir');
  // A user's list adds to the default one, never replaces it: what keeps PHP source, backups and
  // dumps from leaving as bytes cannot be turned off by naming one more extension (a list of
  // [".csv"] used to serve info.php and config.php.bak as text). An empty list is the default.
  const forbid: readonly string[] =
    raw.forbid === undefined
      ? DEFAULT_STATIC_FORBID
      : [...new Set([...DEFAULT_STATIC_FORBID, ...extensionList('static.forbid', raw.forbid)])];
  let allow: readonly string[] | null = raw.allow === undefined ? null : extensionList('static.allow', raw.allow);
  // An empty allow list means no allow list, as in RoadRunner.
  if (allow !== null && allow.length === 0) allow = null;
  const policy = createFilePolicy({ forbid, allow });

  const forbidden = raw.forbidden ?? 'php';
  if (forbidden !== 'php' && forbidden !== 403 && forbidden !== 404) {
    throw new InvalidOptionError('static.forbidden', `must be "php", 403 or 404, got ${JSON.stringify(forbidden)}`);
  }

  let index: readonly string[];
  if (raw.index === undefined) {
    // The default index quietly drops out when an allow list leaves no room for it.
    index = DEFAULT_INDEX.filter((name) => checkFileName(policy, name) === null);
  } else if (raw.index === false) {
    index = [];
  } else {
    if (!Array.isArray(raw.index))
      throw new InvalidOptionError('static.index', 'must be a list of file names or false');
    for (const name of raw.index as unknown[]) {
      if (typeof name !== 'string' || name === '' || /[/\\:\0]/.test(name) || name === '.' || name === '..') {
        throw new InvalidOptionError(
          'static.index',
          `must hold plain file names such as "index.html", got ${JSON.stringify(name)}`,
        );
      }
      const reason = checkFileName(policy, name);
      if (reason === 'dotfile')
        throw new InvalidOptionError('static.index', `"${name}" is a dotfile, which is never served`);
      if (reason === 'forbidden-extension') {
        throw new InvalidOptionError(
          'static.index',
          `"${name}" has an extension in static.forbid; PHP index files run through the front controller, list static ones such as "index.html"`,
        );
      }
      if (reason === 'not-allowed-extension') {
        throw new InvalidOptionError(
          'static.index',
          `"${name}" is not in static.allow, so it would never be served; add its extension to static.allow or drop it`,
        );
      }
    }
    index = [...(raw.index as string[])];
  }

  const etag = resolveEtag(raw);

  const cacheControl = new Map<string, string>();
  let cacheControlDefault: string | null = null;
  if (raw.cache_control !== undefined) {
    if (raw.cache_control === null || typeof raw.cache_control !== 'object' || Array.isArray(raw.cache_control)) {
      throw new InvalidOptionError(
        'static.cache_control',
        'must map extensions to header values, e.g. { ".css": "public, max-age=31536000, immutable" }',
      );
    }
    for (const [key, value] of Object.entries(raw.cache_control)) {
      if (typeof value !== 'string' || value.trim() === '' || /[\r\n\0]/.test(value)) {
        throw new InvalidOptionError(
          `static.cache_control["${key}"]`,
          `must be a non-empty header value on one line, got ${JSON.stringify(value)}`,
        );
      }
      if (key === '*') cacheControlDefault = value;
      else cacheControl.set(checkExtension(`static.cache_control["${key}"]`, key), value);
    }
  }

  return {
    roots: roots.map((root) => root.path),
    realRoots: roots.map((root) => root.real),
    policy,
    forbidden,
    index,
    etag,
    lastModified: booleanOption('static.last_modified', raw.last_modified, true),
    precompressed: booleanOption('static.precompressed', raw.precompressed, true),
    cacheControl,
    cacheControlDefault,
    hotCache: resolveHotCache(raw.hot_cache),
    tryFiles: resolveTryFiles(raw.try_files, policy),
    linkTargets: resolveLinkTargets(raw.link_targets),
    linkWarnings: new LinkOutWarnings(),
  };
}

function resolveTryFiles(raw: unknown, policy: FilePolicy): StaticTryFiles | null {
  if (raw === undefined) return null;
  const key = 'static.try_files';
  const example = 'e.g. ["$uri", "$uri/", "/index.html"] (a single-page app) or ["$uri", "$uri.html", "$uri/", "=404"]';
  if (!Array.isArray(raw) || raw.length === 0 || raw.some((item) => typeof item !== 'string'))
    throw new InvalidOptionError(key, `must be a list of steps, ${example}`);
  const items = raw as string[];
  if (items[0] !== '$uri') throw new InvalidOptionError(key, `must start with "$uri" (the file asked for), ${example}`);
  const steps: TryFilesStep[] = [];
  let fallback: string | null = null;
  for (const [i, item] of items.entries()) {
    const last = i === items.length - 1;
    if (item === '$uri') steps.push('file');
    // "$uri $uri/": one lookup of the path, not a file's and then again a folder's
    else if (item === '$uri/' && steps.at(-1) === 'file') steps[steps.length - 1] = 'file-or-directory';
    else if (item === '$uri/') steps.push('directory');
    else if (/^\$uri\.[A-Za-z0-9]+$/.test(item)) {
      const suffix = item.slice('$uri'.length);
      if (checkPath(policy, `/x${suffix}`).kind !== 'file')
        throw new InvalidOptionError(key, `"${item}": ${suffix} files are never served (static.forbid or allow)`);
      steps.push({ suffix });
    } else if (last && item === '=404') fallback = null;
    else if (last && item.startsWith('/')) {
      if (checkPath(policy, item).kind !== 'file')
        throw new InvalidOptionError(
          key,
          `"${item}" is not a file the static layer may send (a folder, a dotfile, static.forbid or allow)`,
        );
      fallback = item;
    } else
      throw new InvalidOptionError(
        key,
        `"${item}" is not a step: "$uri", "$uri/", "$uri.html" (any extension), and last a file ("/index.html") or "=404"; ${example}`,
      );
  }
  return { steps, fallback };
}

/** Real paths of the folders a link may lead into (static.link_targets, fastcgi.link_targets). */
export function resolveLinkTargets(raw: unknown, key = 'static.link_targets'): string[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw))
    throw new InvalidOptionError(key, 'must be a list of folders, such as ["/usr/share/javascript"]');
  return raw.map((entry: unknown) => {
    if (typeof entry !== 'string' || entry === '')
      throw new InvalidOptionError(key, `must hold folder paths, got ${JSON.stringify(entry)}`);
    const path = resolve(process.cwd(), entry);
    let real: string;
    try {
      real = realpathSync(path);
    } catch {
      throw new InvalidOptionError(
        key,
        `"${path}" does not exist; create it or fix the path${isAbsolute(entry) ? '' : ` (relative paths start at ${process.cwd()})`}`,
      );
    }
    if (!statSync(real).isDirectory()) throw new InvalidOptionError(key, `"${path}" is not a folder`);
    if (real === sep)
      throw new InvalidOptionError(
        key,
        'holds "/", which would let a link lead to any file on the machine; name the folders links lead to, such as "/usr/share/javascript"',
      );
    return real;
  });
}

function resolveHotCache(raw: unknown): HotCacheOptions | null {
  if (raw === false) return null;
  if (raw === undefined || raw === true) return { ...DEFAULT_HOT_CACHE };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidOptionError(
      'static.hot_cache',
      'must be false or an object such as { max_bytes: 16777216, max_file_bytes: 1048576, revalidate_ms: 1000 }',
    );
  }
  for (const key of Object.keys(raw)) {
    if (!HOT_CACHE_KNOWN.includes(key)) {
      throw new InvalidOptionError(
        `static.hot_cache.${key}`,
        `is not a hot_cache option; known options: ${HOT_CACHE_KNOWN.join(', ')}`,
      );
    }
  }
  const o = raw as HotCacheOption;
  const maxBytes = integerOption('static.hot_cache.max_bytes', o.max_bytes, DEFAULT_HOT_CACHE.maxBytes, 1);
  const maxFileBytes = integerOption(
    'static.hot_cache.max_file_bytes',
    o.max_file_bytes,
    DEFAULT_HOT_CACHE.maxFileBytes,
    0,
  );
  const revalidateMs = integerOption(
    'static.hot_cache.revalidate_ms',
    o.revalidate_ms,
    DEFAULT_HOT_CACHE.revalidateMs,
    0,
  );
  if (maxFileBytes > maxBytes) {
    throw new InvalidOptionError(
      'static.hot_cache.max_file_bytes',
      `must not exceed static.hot_cache.max_bytes (${maxBytes}), got ${maxFileBytes}`,
    );
  }
  return { maxBytes, maxFileBytes, revalidateMs };
}

function integerOption(key: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new InvalidOptionError(key, `must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/** calculate_etag + weak (the YAML keys), or the deprecated etag option. */
function resolveEtag(raw: StaticOptions): 'weak' | 'strong' | null {
  const boolean = (key: 'calculate_etag' | 'weak', fallback: boolean): boolean => {
    const value = raw[key] ?? fallback;
    if (typeof value !== 'boolean') throw new InvalidOptionError(`static.${key}`, 'must be true or false', value);
    return value;
  };
  if (raw.etag !== undefined) {
    if (raw.calculate_etag !== undefined || raw.weak !== undefined)
      throw new InvalidOptionError('static.etag', 'is the old form of calculate_etag and weak: give only those');
    const old = raw.etag;
    if (old !== true && old !== false && old !== 'weak' && old !== 'strong')
      throw new InvalidOptionError(
        'static.etag',
        `must be true, false, "weak" or "strong", got ${JSON.stringify(old)}`,
      );
    return old === false ? null : old === 'weak' ? 'weak' : 'strong';
  }
  if (!boolean('calculate_etag', true)) return null;
  return boolean('weak', false) ? 'weak' : 'strong';
}

function resolveRoots(root: unknown, name: 'dir' | 'root'): { path: string; real: string }[] {
  const key = `static.${name}`;
  const list = typeof root === 'string' ? [root] : root;
  if (!Array.isArray(list) || list.length === 0) {
    throw new InvalidOptionError(key, 'is required: a directory such as "public", or a list of them');
  }
  const seen = new Set<string>();
  return list.map((entry: unknown) => {
    if (typeof entry !== 'string' || entry === '')
      throw new InvalidOptionError(key, `must be a directory path, got ${JSON.stringify(entry)}`);
    const path = resolve(process.cwd(), entry);
    let stats: Stats;
    try {
      stats = statSync(path);
    } catch {
      // only a relative entry was resolved here (the config hands over absolute paths, resolved from its own folder)
      throw new InvalidOptionError(
        key,
        `"${path}" does not exist; create it or fix the path${isAbsolute(entry) ? '' : ` (relative roots start at ${process.cwd()})`}`,
      );
    }
    if (!stats.isDirectory()) throw new InvalidOptionError(key, `"${path}" is not a directory`);
    if (seen.has(path)) throw new InvalidOptionError(key, `"${path}" is listed twice`);
    seen.add(path);
    const linked = rootLinkProblem(path);
    if (linked !== null) throw new InvalidOptionError(key, linked);
    return { path, real: realpathSync(path) };
  });
}

function extensionList(key: string, value: unknown): string[] {
  if (!Array.isArray(value))
    throw new InvalidOptionError(
      key,
      `must be a list of extensions such as [".css", ".js"], got ${JSON.stringify(value)}`,
    );
  return value.map((ext: unknown) => checkExtension(key, ext));
}

function checkExtension(key: string, ext: unknown): string {
  if (typeof ext !== 'string' || !/^\.[^./\\\s\0:]+$/.test(ext)) {
    throw new InvalidOptionError(
      key,
      `extensions start with a dot and hold one dot only, such as ".css"; got ${JSON.stringify(ext)}`,
    );
  }
  return ext.toLowerCase();
}

function booleanOption(key: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean')
    throw new InvalidOptionError(key, `must be true or false, got ${JSON.stringify(value)}`);
  return value;
}

/** A precompressed sibling that resolves outside its root or to a forbidden file. */
class SiblingRefused extends Error {
  readonly statusCode: number;
  constructor(statusCode: number) {
    super(statusCode === 403 ? 'Forbidden' : 'Not Found');
    this.statusCode = statusCode;
  }
}

/**
 * Registers @fastify/static (serve: false, decorateReply) in the given encapsulated instance and
 * returns the try_files step: an existing, allowed file under a root is sent with reply.sendFile;
 * anything else returns false for PHP. Call it at boot, once per instance.
 *
 * A reply.sendFile decorated by the host app (its own @fastify/static) does not conflict: ours is an
 * own property of this instance's Reply and shadows it here only.
 */
export async function registerStatic(app: FastifyInstance, options: ResolvedStaticOptions): Promise<StaticHandler> {
  const { roots, policy, index, etag, precompressed, cacheControl, cacheControlDefault } = options;
  const realRoots = [...options.realRoots];
  const linkTargets = options.linkTargets;
  options.linkWarnings.attach(app.log);
  const refusedStatus = options.forbidden === 'php' ? null : options.forbidden;
  const siblingStatus = refusedStatus ?? 404;
  // Cache-Control of the file being sent, applied by setHeaders, which @fastify/static calls only
  // for a file it sends (200, 206, 304): a 404 from a race (file deleted meanwhile) or a 416 never
  // carries a year-long max-age.
  const cacheControlOf = new WeakMap<FastifyReply, string>();
  const cacheControlFor = (relPath: string): string | null =>
    cacheControl.get(extensionOf(relPath)) ?? cacheControlDefault;
  const strong = etag === 'strong';
  // loaded only when static files are configured: @fastify/static and its dependencies (send, mime,
  // glob: about 30 modules) are a few MB of heap an app without static files should not carry
  const [{ default: fastifyStatic }, mime] = await Promise.all([import('@fastify/static'), loadSendMime()]);
  const hotCache =
    options.hotCache === null
      ? null
      : new HotCache(options.hotCache, { etag, lastModified: options.lastModified, vary: precompressed }, mime);

  // What send opened, checked on its descriptor once open (opened-file.ts): under the root or a link
  // target, allowed by its real name, and the file send took its headers from. Checked names can be
  // swapped before send opens them: a file flipped to a link to /etc/shadow was sent.
  const sending = new WeakMap<FastifyReply, { rootIndex: number; stat: Stats | null; selected: string | null }>();
  // synchronous for every other answer (PHP's): an async hook on all of them moved when a PHP body
  // short of its length met its end, and on Node 26 such an answer hung instead of its plain 502
  app.addHook('onSend', (request, reply, payload, done) => {
    const sent = sending.get(reply);
    if (sent === undefined) {
      done(null, payload);
      return;
    }
    checkedPayload(request, reply, payload, sent).then(
      (checked) => done(null, checked),
      (error: Error) => done(error),
    );
  });

  /** A static answer's payload once what it sends is checked; a plain refusal in its place if not. */
  async function checkedPayload(
    request: FastifyRequest,
    reply: FastifyReply,
    payload: unknown,
    sent: { rootIndex: number; stat: Stats | null; selected: string | null },
  ): Promise<unknown> {
    if (payload instanceof ReadStream) {
      const fd = await whenOpened(payload);
      if (fd === null || openedAllowed(sent.rootIndex, fd, sent.stat)) return payload;
      payload.destroy();
      options.linkWarnings.noteSwapped(request.url, openedPath(fd) ?? '(unknown)');
      return refusedInstead(reply, siblingStatus);
    }
    // a HEAD has no file stream, but its headers (size, dates) are the stat's: that stat must be of
    // a file it may send (opened now: a link's target has another real path, a swapped-back name
    // another inode), or a tenant learnt the size and date of any root-only file
    if (request.method !== 'HEAD' || sent.stat === null || sent.selected === null) return payload;
    if (await statSendable(sent.rootIndex, sent.selected, sent.stat)) return payload;
    options.linkWarnings.noteSwapped(request.url, sent.selected);
    return refusedInstead(reply, siblingStatus);
  }

  /** Whether `path`, opened now, is an allowed file under the root and the very one `stat` is of. */
  async function statSendable(rootIndex: number, path: string, stat: Stats): Promise<boolean> {
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch {
      return false;
    }
    try {
      return openedAllowed(rootIndex, handle.fd, stat);
    } finally {
      await handle.close().catch(() => {});
    }
  }

  await app.register(fastifyStatic, {
    serve: false,
    decorateReply: true,
    preCompressed: precompressed,
    etag: etag !== null,
    lastModified: options.lastModified,
    // Cache-Control is ours (per extension); index files are resolved before sendFile.
    cacheControl: false,
    index: false,
    // Defense in depth: nothing with a dot segment reaches send, and if it did, it would be refused.
    dotfiles: 'deny',
    acceptRanges: true,
    setHeaders(reply: FastifyReply) {
      const value = cacheControlOf.get(reply);
      if (value !== undefined) reply.header('cache-control', value);
      // @fastify/send only makes weak validators (W/"size-mtime"); the strong one is the same tag
      // without W/ (nginx's). send's If-None-Match / If-Match comparisons accept that form already.
      if (strong) strengthenEtag(reply);
    },
  });

  /**
   * The real path of `file` relative to the root or to the link target it leads into (the root is
   * read again only when neither holds it); null when it leads anywhere else, or nowhere.
   */
  async function realRelative(rootIndex: number, file: string): Promise<string | null> {
    let real: string;
    try {
      real = await realpath(file);
    } catch {
      return null;
    }
    const rel = relativeTo(realRoots[rootIndex]!, real) ?? underLinkTarget(real);
    if (rel !== null) return rel;
    // not there: the root's own symlink may have been switched (a deploy), so read it once more
    let now: string;
    try {
      now = await realpath(roots[rootIndex]!);
    } catch {
      return null;
    }
    // a link of its owner's to a folder of another's (a tenant who owns the folder above its root
    // put a link to / in its place) is not followed: warmpool would serve the machine as root
    if (rootLinkProblem(roots[rootIndex]!) !== null) {
      options.linkWarnings.noteRoot(roots[rootIndex]!, now);
      return null;
    }
    realRoots[rootIndex] = now;
    const moved = relativeTo(realRoots[rootIndex]!, real);
    if (moved === null) options.linkWarnings.note(file, real);
    return moved;
  }

  function underLinkTarget(real: string): string | null {
    for (const target of linkTargets) {
      const rel = relativeTo(target, real);
      if (rel !== null) return rel;
    }
    return null;
  }

  /**
   * Whether the file `fd` holds may be sent: under the root (as read last) or a link target, its
   * real name allowed ("x.br" as "x", a precompressed sibling), and the very file `expected` (the
   * stat the headers were made from) when given. True where the system cannot say (no /proc).
   */
  function openedAllowed(rootIndex: number, fd: number, expected: Stats | null): boolean {
    const real = openedPath(fd);
    if (real === undefined) return true;
    if (real === null) return false;
    const rel = relativeTo(realRoots[rootIndex]!, real) ?? underLinkTarget(real);
    if (rel === null) return false;
    const suffix = SIBLING_SUFFIX_LIST.find((s) => rel.endsWith(s));
    if (
      checkPath(policy, rel).kind !== 'file' &&
      (suffix === undefined || checkPath(policy, rel.slice(0, -suffix.length)).kind !== 'file')
    )
      return false;
    return expected === null || holdsFile(fd, expected);
  }

  /**
   * The file send would open, after the checks we do on the path the client named: the realpath
   * must stay inside the root and be allowed under its own name (a symlink "a.txt" → ".env" is
   * refused). Returns the answer: send it (its Stats), refuse it, or it is not ours.
   */
  async function checkFile(rootIndex: number, relPath: string): Promise<Stats | 'refuse' | 'missing' | 'directory'> {
    const file = join(roots[rootIndex]!, relPath);
    // Most requests that reach here are for PHP ("/api/users/7"): the file is not there. One
    // blocking stat(2) says so in about a microsecond, with no exception for a missing file, as
    // nginx's own stat of try_files; a failed stat through libuv's thread pool cost a worker app
    // with static on a third of its rps.
    let stats: Stats | undefined;
    try {
      stats = statSync(file, { throwIfNoEntry: false });
    } catch {
      stats = undefined; // ENOTDIR, ENAMETOOLONG, EACCES, a dangling link: not a file we have
    }
    if (stats === undefined) return 'missing';
    if (stats.isDirectory()) return 'directory';
    if (!stats.isFile()) return 'missing'; // fifo, socket, device
    const rel = await realRelative(rootIndex, file);
    if (rel === null) return 'refuse';
    if (rel !== relPath && checkPath(policy, rel).kind !== 'file') return 'refuse';
    return stats;
  }

  /**
   * A forbidden name (a dotfile, a forbidden or not allowed extension): refused when it exists
   * under a root, a file or a folder, so its bytes never leave; false (PHP) when it exists nowhere.
   * A folder has no extension for `allow` to judge: under an allow list "/docs" is looked up as
   * any folder is (a redirect to "/docs/" when its index is served, else PHP).
   */
  async function refuseExisting(
    request: FastifyRequest,
    reply: FastifyReply,
    reason: ForbiddenReason,
    path: string,
  ): Promise<boolean> {
    const name = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
    for (let i = 0; i < roots.length; i++) {
      let stats: Stats | undefined;
      try {
        stats = statSync(join(roots[i]!, name), { throwIfNoEntry: false });
      } catch {
        stats = undefined; // ENOTDIR, ENAMETOOLONG, EACCES: nothing we could send
      }
      if (stats === undefined) continue;
      if (reason === 'not-allowed-extension' && stats.isDirectory()) {
        if ((await findIndex(i, `${path}/`)) !== null) return redirectToDirectory(request, reply, path);
        continue;
      }
      return refuse(reply);
    }
    return false;
  }

  function refuse(reply: FastifyReply): boolean {
    if (refusedStatus === null) return false;
    reply
      .code(refusedStatus)
      .type('text/plain; charset=utf-8')
      .send(refusedStatus === 403 ? 'Forbidden\n' : 'Not Found\n');
    return true;
  }

  /**
   * The hot cache's key of a request for `path`: with precompressed siblings on, the encodings the
   * client takes too, as each list of them may get another sibling ("x.css.br", "x.css.gz", "x.css").
   */
  function cacheKey(path: string, request: FastifyRequest): string {
    return precompressed ? `${path}\0${acceptedSiblings(request).join(',')}` : path;
  }

  /** The first precompressed sibling of `file` the client takes that exists, as send picks it; null: the file. */
  function siblingFor(request: FastifyRequest, file: string): { path: string; encoding: string; stats: Stats } | null {
    for (const encoding of acceptedSiblings(request)) {
      const path = file + siblingSuffix(encoding);
      let stats: Stats | undefined;
      try {
        stats = statSync(path, { throwIfNoEntry: false });
      } catch {
        stats = undefined;
      }
      if (stats?.isFile() === true) return { path, encoding, stats };
    }
    return null;
  }

  /**
   * After checkFile said 'send' for (rootIndex, relPath) with these stats: answer from the cache
   * (the old entry when it is still the same file, else a new one), or return false for send.
   */
  async function sendCached(
    request: FastifyRequest,
    reply: FastifyReply,
    cache: HotCache,
    key: string,
    old: HotEntry | undefined,
    rootIndex: number,
    relPath: string,
    stats: Stats,
  ): Promise<boolean> {
    const file = join(roots[rootIndex]!, relPath);
    // the sibling send would pick for this client ("x.css.br"), kept under its own key (cacheKey);
    // the policy and the real path of what is read are checked on its descriptor (openedAllowed)
    const sibling = precompressed ? siblingFor(request, file) : null;
    const [source, sourcePath, sourceStats] =
      sibling === null
        ? [file, relPath, stats]
        : [sibling.path, relPath + siblingSuffix(sibling.encoding), sibling.stats];
    if (sourceStats.size > cache.options.maxFileBytes) return false;
    const now = performance.now();
    if (old !== undefined && cache.matches(old, rootIndex, sourcePath, sourceStats)) {
      cache.refresh(key, old, now);
      return cache.serve(request, reply, old);
    }
    const entry = await cache.fill(
      key,
      source,
      rootIndex,
      sourcePath,
      sourceStats,
      cacheControlFor(relPath),
      now,
      (fd) => openedAllowed(rootIndex, fd, null),
      sibling === null ? null : { typeOf: file, encoding: sibling.encoding },
    );
    return entry === undefined ? false : cache.serve(request, reply, entry);
  }

  function sendFile(
    request: FastifyRequest,
    reply: FastifyReply,
    rootIndex: number,
    relPath: string,
    size: number,
  ): true {
    const root = roots[rootIndex]!;
    const value = cacheControlFor(relPath);
    if (value !== null) cacheControlOf.set(reply, value);
    // an empty file has no byte to give a range of: the whole (empty) file, 200, as nginx (send: 416)
    if (size === 0) delete request.raw.headers.range;
    strongIfMatch(request);
    ignoreFutureModifiedSince(request);
    ignoreRangeIfWeak(request);
    if (strong) weakenIfRange(request);
    const sent = { rootIndex, stat: null as Stats | null, selected: null as string | null };
    sending.set(reply, sent);
    if (!precompressed) {
      reply.sendFile(relPath, root, {
        onFile: (selected: string, stat: Stats) => {
          sent.stat = stat;
          sent.selected = selected;
        },
      });
      return true;
    }
    // @fastify/static picks "x.br" / "x.gz" next to the file: check what it really opens.
    const expected = join(root, relPath);
    reply.sendFile(relPath, root, {
      onFile: async (selected: string, stat: Stats) => {
        sent.stat = stat;
        sent.selected = selected;
        if (selected === expected) return;
        const rel = await realRelative(rootIndex, selected);
        if (rel === null) throw new SiblingRefused(siblingStatus);
        const suffix = SIBLING_SUFFIX_LIST.find((s) => selected.endsWith(s) && rel.endsWith(s));
        const verdict = checkPath(policy, suffix === undefined ? rel : rel.slice(0, -suffix.length));
        if (verdict.kind !== 'file') throw new SiblingRefused(siblingStatus);
      },
    });
    return true;
  }

  async function sendPath(request: FastifyRequest, reply: FastifyReply, path: string): Promise<boolean> {
    const verdict = checkPath(policy, path);
    if (verdict.kind !== 'file') return false;
    const cache = hotCache !== null && cacheableRequest(request) ? hotCache : null;
    const key = cache === null ? verdict.path : cacheKey(verdict.path, request);
    const old = cache?.get(key);
    if (old !== undefined) {
      if (cache!.isFresh(old, performance.now())) return cache!.serve(request, reply, old);
      cache!.delete(verdict.path);
    }
    // the roots in order, as for a request's own path
    for (let i = 0; i < roots.length; i++) {
      const found = await checkFile(i, verdict.path);
      if (found === 'refuse') return false;
      if (typeof found !== 'object') continue;
      if (cache !== null && (await sendCached(request, reply, cache, key, old, i, verdict.path, found))) return true;
      return sendFile(request, reply, i, verdict.path, found.size);
    }
    return false;
  }

  const serveStatic = async function serveStatic(request: FastifyRequest, reply: FastifyReply): Promise<boolean> {
    const method = request.method;
    if (method !== 'GET' && method !== 'HEAD') return false;
    const decoded = decodeRequestPath(request.url);
    if (decoded === null) return false;
    const verdict = checkPath(policy, decoded);
    // The hot cache: keyed by the decoded, policy-checked path (a forbidden or invalid one never
    // gets here), filled only after checkFile's checks; fresh entries are served with no fs call.
    let cache: HotCache | null = null;
    let key = '';
    let old: HotEntry | undefined;
    if (hotCache !== null && (verdict.kind === 'file' || verdict.kind === 'directory') && cacheableRequest(request)) {
      cache = hotCache;
      key = cacheKey(verdict.path, request);
      old = hotCache.get(key);
      if (old !== undefined) {
        if (hotCache.isFresh(old, performance.now())) return hotCache.serve(request, reply, old);
        // Stale: re-checked below like a miss; reused only if it resolves to the same file.
        hotCache.delete(verdict.path);
      }
    }
    switch (verdict.kind) {
      case 'invalid':
        // Not a name under any root; PHP gets it exactly as it would without static.
        return false;
      case 'forbidden':
        // allow and forbid decide which existing files may be sent, as in nginx and RoadRunner: a
        // name that is no file under any root ("/index.php?route=…" of a front controller, a route
        // "/products" under an allow list) is a route of the app and goes to PHP. With "php" it
        // does either way, so only a 403/404 answer pays the one stat(2) of a missing name.
        if (refusedStatus === null) return false;
        return refuseExisting(request, reply, verdict.reason, decoded);
      case 'file':
        // try_files $uri $uri/: a file, else a directory with an index (redirected to its "/" form).
        for (let i = 0; i < roots.length; i++) {
          const found = await checkFile(i, verdict.path);
          if (typeof found === 'object') {
            if (cache !== null && (await sendCached(request, reply, cache, key, old, i, verdict.path, found)))
              return true;
            return sendFile(request, reply, i, verdict.path, found.size);
          }
          if (found === 'refuse') return refuse(reply);
          if (found === 'directory' && (await findIndex(i, `${verdict.path}/`)) !== null) {
            return redirectToDirectory(request, reply, verdict.path);
          }
        }
        return false;
      case 'directory':
        for (let i = 0; i < roots.length; i++) {
          const found = await findIndex(i, verdict.path);
          if (found === null) continue;
          if (found.answer === 'refuse') return refuse(reply);
          if (cache !== null && (await sendCached(request, reply, cache, key, old, i, found.path, found.stats!)))
            return true;
          return sendFile(request, reply, i, found.path, found.stats?.size ?? -1);
        }
        return false;
    }
  };
  return Object.assign(serveStatic, { sendPath });

  async function findIndex(
    rootIndex: number,
    dirPath: string,
  ): Promise<{ answer: 'send' | 'refuse'; path: string; stats: Stats | null } | null> {
    for (const name of index) {
      const path = dirPath + name;
      const answer = await checkFile(rootIndex, path);
      if (typeof answer === 'object') return { answer: 'send', path, stats: answer };
      if (answer === 'refuse') return { answer, path, stats: null };
    }
    return null;
  }
}

/**
 * "/docs" → 301 "/docs/" (query kept), as nginx does, so relative links in its index resolve. The
 * Location is built from the normalised path: "//evil.example" (a folder "evil.example" asked with
 * two slashes) must not send the client to another host.
 */
function redirectToDirectory(request: FastifyRequest, reply: FastifyReply, path: string): true {
  const url = request.url;
  let end = url.length;
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) {
      end = i;
      break;
    }
  }
  const query = end < url.length && url.charCodeAt(end) === 63 ? url.slice(end).split('#')[0]! : '';
  sendRedirect(request, reply, `${locationOf(path)}/${query}`, 301);
  return true;
}

/** A redirect of the server's own; a HEAD gets the GET's headers, its Content-Length: 0 too (Fastify leaves it out of an empty HEAD reply). */
export function sendRedirect(request: FastifyRequest, reply: FastifyReply, location: string, status: number): void {
  if (request.method === 'HEAD') reply.header('content-length', '0');
  reply.redirect(location, status);
}

/** "/x/y" under root, with "/" separators; null when real is not inside root. */
function relativeTo(realRoot: string, real: string): string | null {
  const prefix = realRoot.endsWith(sep) ? realRoot : realRoot + sep;
  if (!real.startsWith(prefix)) return null;
  const rel = real.slice(prefix.length - 1);
  return sep === '/' ? rel : rel.split(sep).join('/');
}

function strengthenEtag(reply: FastifyReply): void {
  const value = reply.getHeader('etag');
  if (typeof value === 'string' && value.startsWith('W/')) reply.header('etag', value.slice(2));
}

/**
 * If-Match compares strongly (RFC 9110 13.1.1): a weak tag never matches, so only the strong ones
 * are left for @fastify/send, which takes W/"x" for "x"; none left (and no `*`): 412, as nginx.
 */
function strongIfMatch(request: FastifyRequest): void {
  const headers = request.raw.headers;
  const ifMatch = headers['if-match'];
  if (ifMatch === undefined || !ifMatch.includes('W/')) return;
  const strong = ifMatch
    .split(',')
    .map((tag) => tag.trim())
    .filter((tag) => tag !== '' && !tag.startsWith('W/'));
  // a tag that can match nothing: send answers 412 for it
  headers['if-match'] = strong.length === 0 ? '"warmpool-no-strong-tag"' : strong.join(', ');
}

/**
 * An If-Modified-Since later than the server's clock is invalid (RFC 9110 13.1.3) and ignored:
 * @fastify/send would answer 304 for it (a client with a wrong clock never got a changed file).
 */
function ignoreFutureModifiedSince(request: FastifyRequest): void {
  const headers = request.raw.headers;
  const since = headers['if-modified-since'];
  if (since !== undefined && Date.parse(since) > Date.now()) delete headers['if-modified-since'];
}

/**
 * If-Range needs a strong match (RFC 9110 13.1.5): with a weak tag the Range is ignored and the
 * whole file sent. A weak tag is what a body compressed on the fly carries (W/ on our tag): a client
 * resuming such a download must not get plain bytes to append to compressed ones. @fastify/send
 * would find the tag in its own weak one and answer 206.
 */
function ignoreRangeIfWeak(request: FastifyRequest): void {
  const headers = request.raw.headers;
  const ifRange = headers['if-range'];
  if (headers.range !== undefined && typeof ifRange === 'string' && ifRange.trimStart().startsWith('W/'))
    delete headers.range;
}

/**
 * @fastify/send compares If-Range against its own (weak) tag by substring; a client echoing our
 * strong tag must still get its 206, so present the tag in the form send made.
 */
function weakenIfRange(request: FastifyRequest): void {
  const ifRange = request.raw.headers['if-range'];
  if (typeof ifRange === 'string' && ifRange.startsWith('"')) request.raw.headers['if-range'] = `W/${ifRange}`;
}

/** Headers a refused file's answer must not keep (its size, dates, tag, range, encoding). */
const FILE_HEADERS = [
  'content-length',
  'content-range',
  'content-encoding',
  'content-type',
  'etag',
  'last-modified',
  'accept-ranges',
  'cache-control',
];

/** The plain refusal that replaces a file's answer in onSend, once send's headers for it are set. */
function refusedInstead(reply: FastifyReply, status: number): string {
  for (const name of FILE_HEADERS) reply.removeHeader(name);
  reply.code(status).type('text/plain; charset=utf-8');
  return status === 403 ? 'Forbidden\n' : 'Not Found\n';
}
