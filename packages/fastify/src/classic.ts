// Classic mode on the HTTP side: the `fastcgi` option (one .php file per entry point, as nginx's
// fastcgi_pass + try_files serve WordPress or phpMyAdmin), and the step each request takes before
// the exchange: the script resolver's verdict becomes a static file, a redirect, a 403 / 404, or
// the script PHP runs. PHP never decides which file runs.
import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type Duration, type ExchangeScript, parseDuration } from '@warmpool/pool';
import { type FastCgiAddress, parseFastCgiAddress } from '@warmpool/pool/fastcgi';
import { InvalidOptionError } from './errors.js';
import { wildcardPattern } from './wildcards.js';
import { cacheVerdicts, createLookupCache } from './static/lookup-cache.js';
import { MAX_PATH_CHARS } from './static/file-policy.js';
import { createScriptResolver, NODE_FILE_SYSTEM, type ScriptResolver } from './static/script-resolver.js';
import {
  resolveLinkTargets,
  resolveStaticOptions,
  sendRedirect,
  type ResolvedStaticOptions,
  type StaticHandler,
  type StaticOptions,
} from './static/static.js';

/** The `fastcgi` option, spelled as the YAML keys. */
export interface FastCgiOptions {
  /** document root: scripts run from here, static files are served from here */
  root: string;
  /** an existing php-fpm: "unix:/run/php/php8.2-fpm.sock" or "127.0.0.1:9000"; absent: warmpool runs php-cgi */
  pass?: string;
  /** the managed php-cgi command, php.ini flags allowed ("php-cgi -d opcache.enable=1"); default "php-cgi" */
  command?: string | readonly string[];
  /**
   * start the managed php-cgi with only PATH, TMPDIR, PHPRC and PHP_INI_SCAN_DIR of the server's
   * environment, plus the pool's `env` (php-fpm's clear_env): PHP shows its environment in every
   * request's $_SERVER; false: all of it; default true
   */
  clear_env?: boolean;
  /** index files of a directory, in order; default ["index.php", "index.html"] */
  index?: string[];
  /** nginx's try_files; default ["$uri", "$uri/", "/index.php?$args"] */
  try_files?: string[];
  /**
   * prefix → script, before try_files: { "/wiki/": "/index.php" } runs index.php for every path
   * under /wiki/ (nginx's `location /wiki/ { rewrite ^ /index.php; }`, MediaWiki's short URLs)
   */
  rewrite?: Record<string, string>;
  /**
   * prefix → try_files' fallback for the paths under it: { "/icingaweb2/": "/icingaweb2/index.php?$args" }
   * (nginx: a location's own try_files, for an app linked in under a path)
   */
  fallbacks?: Record<string, string>;
  /**
   * "subdirectory": a WordPress subdirectory network ("/site2/wp-admin/" runs /wp-admin/index.php
   * when no such path is under the root), as WordPress's multisite nginx rules
   */
  multisite?: 'subdirectory';
  /** root-relative folders where no script ever runs ("wp-content/uploads") */
  no_exec?: string[];
  /**
   * Folders outside the root whose scripts run when a link in the root leads into them (a packaged
   * app linked in under a path, nginx's `alias`): ["/usr/share/icingaweb2/public"]. Their static
   * files are served too (static.link_targets).
   */
  link_targets?: string[];
  /** extensions that run as PHP; default [".php"] */
  extensions?: string[];
  /** split "/index.php/foo" into the script and PATH_INFO "/foo"; default true */
  split_path?: boolean;
  /** extra params for every request (nginx's fastcgi_param): { APP_ENV: "production" } */
  params?: Record<string, string>;
  /** with pass: connections to php-fpm at most; set it to php-fpm's pm.max_children (default 8) */
  max_connections?: number;
  /**
   * with pass: a kept connection closes once idle after this long ("2s", the default; 0: kept), so
   * that other clients of the same php-fpm pool get its children in turn (nginx's keepalive_time)
   */
  keepalive_time?: Duration;
  /** with pass: an idle kept connection to php-fpm closes after this long ("60s", the default; nginx's keepalive_timeout) */
  keepalive_timeout?: Duration;
  /**
   * with every PHP process busy, write a GET or HEAD without a body behind a running request, so
   * PHP goes on to it without a round trip (docs/CLASSIC.md); default true
   */
  pipelining?: boolean;
  /**
   * read a request body whole before PHP runs (in memory up to 64 KiB, else in an unlinked temp
   * file), so a client sending it slowly never holds a PHP process (nginx's
   * fastcgi_request_buffering); false: streamed to PHP as it arrives; default true
   */
  request_buffering?: boolean;
  /**
   * scripts that run to their end even when their client leaves first, queued or running ("*"
   * matches any characters): nginx's fastcgi_ignore_client_abort, for these scripts only. Default
   * DEFAULT_IGNORE_CLIENT_ABORT, WordPress's wp-cron.php in any folder: WordPress asks it of itself
   * and hangs up after 10 ms
   */
  ignore_client_abort?: string[];
}

/** WordPress's WP-Cron: the site asks itself for wp-cron.php and hangs up at once (spawn_cron). */
export const DEFAULT_IGNORE_CLIENT_ABORT: readonly string[] = ['*/wp-cron.php'];

export interface ResolvedClassic {
  /** absolute */
  root: string;
  /** null: managed php-cgi processes */
  pass: FastCgiAddress | null;
  /** the php-cgi command of the managed pool */
  command: string | readonly string[];
  /** fastcgi.clear_env, for the managed pool */
  clearEnv: boolean;
  maxConnections: number | undefined;
  /** fastcgi.keepalive_time in whole ms; undefined: the client pool's default */
  keepaliveTimeMs: number | undefined;
  /** fastcgi.keepalive_timeout in whole ms; undefined: the client pool's default (60 s) */
  keepaliveTimeoutMs: number | undefined;
  pipelining: boolean;
  /** fastcgi.request_buffering */
  requestBuffering: boolean;
  /** fastcgi.ignore_client_abort: the SCRIPT_NAMEs that run even when their client leaves; null: none */
  ignoreClientAbort: RegExp | null;
  params: Readonly<Record<string, string>> | undefined;
  /** the static layer, rooted at `root` (the site's static options apply) */
  static: ResolvedStaticOptions;
  resolver: ScriptResolver;
}

const KNOWN = [
  'root',
  'pass',
  'command',
  'clear_env',
  'index',
  'try_files',
  'rewrite',
  'fallbacks',
  'multisite',
  'no_exec',
  'link_targets',
  'extensions',
  'split_path',
  'params',
  'max_connections',
  'keepalive_time',
  'keepalive_timeout',
  'pipelining',
  'request_buffering',
  'ignore_client_abort',
];

/** A duration of the connections to an external php-fpm, in whole ms; refused without fastcgi.pass. */
function connectionDuration(
  raw: FastCgiOptions,
  key: 'keepalive_time' | 'keepalive_timeout',
  pass: FastCgiAddress | null,
): number | undefined {
  const value = raw[key];
  if (value === undefined) return undefined;
  if (pass === null) {
    throw new InvalidOptionError(
      `fastcgi.${key}`,
      "is for connections to an external php-fpm (fastcgi.pass); managed php-cgi processes are warmpool's alone",
    );
  }
  try {
    return Math.round(parseDuration(value, `fastcgi.${key}`));
  } catch (error) {
    throw InvalidOptionError.from(`fastcgi.${key}`, error);
  }
}

/** Validates the `fastcgi` option once; every error names its key ("fastcgi.root"). */
export function resolveClassicOptions(raw: FastCgiOptions, rawStatic: StaticOptions | undefined): ResolvedClassic {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidOptionError('fastcgi', 'must be an object such as { root: "/var/www/html" }');
  }
  for (const key of Object.keys(raw)) {
    if (!KNOWN.includes(key)) {
      throw new InvalidOptionError(`fastcgi.${key}`, `is not a fastcgi option; known options: ${KNOWN.join(', ')}`);
    }
  }
  const root = resolveRoot(raw.root);
  let pass: FastCgiAddress | null = null;
  if (raw.pass !== undefined) {
    try {
      pass = parseFastCgiAddress(raw.pass, 'pass');
    } catch (error) {
      throw InvalidOptionError.from('fastcgi.pass', error);
    }
    if (raw.command !== undefined) {
      throw new InvalidOptionError(
        'fastcgi.command',
        'starts php-cgi processes warmpool runs; with fastcgi.pass php-fpm runs them: drop one of the two',
      );
    }
    if (raw.clear_env !== undefined) {
      throw new InvalidOptionError(
        'fastcgi.clear_env',
        "is for the php-cgi processes warmpool runs; with fastcgi.pass, php-fpm's own clear_env (its pool config) decides",
      );
    }
  }
  const command = raw.command ?? 'php-cgi';
  if (
    (typeof command !== 'string' || command.trim() === '') &&
    !(Array.isArray(command) && command.length > 0 && command.every((part) => typeof part === 'string'))
  ) {
    throw new InvalidOptionError(
      'fastcgi.command',
      `must be a command line such as "php-cgi", got ${JSON.stringify(command)}`,
    );
  }
  let maxConnections: number | undefined;
  if (raw.max_connections !== undefined) {
    if (pass === null) {
      throw new InvalidOptionError(
        'fastcgi.max_connections',
        'bounds the connections to an external php-fpm (fastcgi.pass); managed php-cgi is sized by the pool (num_workers)',
      );
    }
    if (!Number.isSafeInteger(raw.max_connections) || raw.max_connections < 1) {
      throw new InvalidOptionError(
        'fastcgi.max_connections',
        `must be an integer >= 1 (php-fpm's pm.max_children), got ${JSON.stringify(raw.max_connections)}`,
      );
    }
    maxConnections = raw.max_connections;
  }
  const keepaliveTimeMs = connectionDuration(raw, 'keepalive_time', pass);
  const keepaliveTimeoutMs = connectionDuration(raw, 'keepalive_timeout', pass);
  const params = resolveParams(raw.params);
  for (const key of ['clear_env', 'split_path', 'pipelining', 'request_buffering'] as const) {
    if (raw[key] !== undefined && typeof raw[key] !== 'boolean') {
      throw new InvalidOptionError(`fastcgi.${key}`, `must be true or false, got ${JSON.stringify(raw[key])}`);
    }
  }
  const given = rawStatic?.dir ?? rawStatic?.root;
  if (given !== undefined && [given].flat().some((dir) => resolve(dir) !== root)) {
    throw new InvalidOptionError(
      rawStatic?.dir !== undefined ? 'static.dir' : 'static.root',
      'a classic site serves its static files from fastcgi.root; leave static.dir out (its other options apply)',
    );
  }
  const { root: _oldName, ...staticRest } = rawStatic ?? {};
  const scriptLinkTargets = resolveLinkTargets(raw.link_targets, 'fastcgi.link_targets');
  const staticOptions = resolveStaticOptions({
    ...staticRest,
    dir: root,
    // a script's folder linked in serves its CSS and images too
    ...(scriptLinkTargets.length === 0
      ? {}
      : { link_targets: [...(staticRest.link_targets ?? []), ...scriptLinkTargets] }),
  });
  if (staticOptions === null) throw new InvalidOptionError('static', 'could not be set up');
  let resolver: ScriptResolver;
  const lookups = createLookupCache(NODE_FILE_SYSTEM);
  try {
    resolver = createScriptResolver(
      {
        root,
        ...(raw.index === undefined ? {} : { index: raw.index }),
        ...(raw.try_files === undefined ? {} : { try_files: raw.try_files }),
        ...(raw.rewrite === undefined ? {} : { rewrite: raw.rewrite }),
        ...(raw.fallbacks === undefined ? {} : { fallbacks: raw.fallbacks }),
        ...(raw.multisite === undefined ? {} : { multisite: raw.multisite }),
        ...(raw.extensions === undefined ? {} : { extensions: listOf(raw.extensions, 'extensions').map(withDot) }),
        ...(raw.no_exec === undefined ? {} : { no_exec: listOf(raw.no_exec, 'no_exec').map(withSlash) }),
        ...(raw.split_path === undefined ? {} : { split_path: raw.split_path }),
        static_policy: staticOptions.policy,
        static_link_targets: staticOptions.linkTargets,
        script_link_targets: scriptLinkTargets,
        on_link_out: staticOptions.linkWarnings.note,
        on_script_link_out: staticOptions.linkWarnings.noteScript,
      },
      lookups,
    );
    resolver = cacheVerdicts(resolver, lookups);
  } catch (error) {
    const key = (error as InvalidOptionError).details?.key;
    if (error instanceof InvalidOptionError && typeof key === 'string' && !key.startsWith('fastcgi.')) {
      throw InvalidOptionError.from(`fastcgi.${key}`, error);
    }
    throw error;
  }
  const pipelining = raw.pipelining ?? true;
  const requestBuffering = raw.request_buffering ?? true;
  const ignoreClientAbort = scriptPattern(raw.ignore_client_abort ?? DEFAULT_IGNORE_CLIENT_ABORT);
  return {
    root,
    pass,
    command,
    clearEnv: raw.clear_env ?? true,
    maxConnections,
    keepaliveTimeMs,
    keepaliveTimeoutMs,
    pipelining,
    requestBuffering,
    ignoreClientAbort,
    params,
    static: staticOptions,
    resolver,
  };
}

function resolveRoot(root: unknown): string {
  if (typeof root !== 'string' || root === '') {
    throw new InvalidOptionError('fastcgi.root', 'is required: the document root, e.g. "/var/www/html"');
  }
  const path = resolve(root);
  let isDirectory = false;
  try {
    isDirectory = statSync(path).isDirectory();
  } catch {
    throw new InvalidOptionError(
      'fastcgi.root',
      `"${path}" does not exist; create it or fix the path${isAbsolute(root) ? '' : ` (relative paths start at ${process.cwd()})`}`,
    );
  }
  if (!isDirectory) throw new InvalidOptionError('fastcgi.root', `"${path}" is not a directory`);
  return path;
}

function resolveParams(raw: unknown): Readonly<Record<string, string>> | undefined {
  if (raw === undefined) return undefined;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidOptionError('fastcgi.params', 'must map param names to values, e.g. { APP_ENV: "production" }');
  }
  const params: Record<string, string> = Object.create(null);
  for (const [name, value] of Object.entries(raw)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new InvalidOptionError(
        `fastcgi.params.${name}`,
        'param names are letters, digits and "_", such as APP_ENV',
      );
    }
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new InvalidOptionError(`fastcgi.params.${name}`, `must be a string, got ${JSON.stringify(value)}`);
    }
    // the one param that picks the file PHP runs: warmpool decides it, never a fixed value
    if (name.toUpperCase() === 'SCRIPT_FILENAME') {
      throw new InvalidOptionError(
        `fastcgi.params.${name}`,
        'is the script warmpool resolved for the request, never set here (it would run that file for every script); for an app whose scripts live outside root, link its folder into root and list it in fastcgi.link_targets (docs/CLASSIC.md)',
      );
    }
    params[name] = String(value);
  }
  return params;
}

function listOf(value: unknown, key: string): string[] {
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) {
    throw new InvalidOptionError(`fastcgi.${key}`, `must be a list of strings, got ${JSON.stringify(value)}`);
  }
  return value as string[];
}

/** The script paths of fastcgi.ignore_client_abort as one pattern ("*" matches any characters); null for []. */
function scriptPattern(value: unknown): RegExp | null {
  if (typeof value === 'boolean') {
    throw new InvalidOptionError(
      'fastcgi.ignore_client_abort',
      'is a list of the scripts that run on when their client leaves, such as ["*/wp-cron.php"]; nginx\'s "on" for every script is not offered: a client that leaves would hold PHP',
    );
  }
  const scripts = listOf(value, 'ignore_client_abort');
  for (const script of scripts) {
    if (!/^[/*][^\s?#]*$/.test(script)) {
      throw new InvalidOptionError(
        'fastcgi.ignore_client_abort',
        `entries are script paths from the root, such as "/wp-cron.php" or "*/wp-cron.php", got ${JSON.stringify(script)}`,
      );
    }
  }
  return wildcardPattern(scripts);
}

/** "php" and ".php" both mean ".php". */
function withDot(extension: string): string {
  return extension.startsWith('.') ? extension : `.${extension}`;
}

/** "wp-content/uploads" (as nginx users write it) and "/wp-content/uploads" are the same folder. */
function withSlash(folder: string): string {
  return folder.startsWith('/') ? folder : `/${folder}`;
}

/**
 * The classic step of a request: answers it here (a static file, a redirect, 403, 404, 400, 405)
 * and returns null, or returns the script for the exchange.
 */
export type ClassicDispatch = (
  request: FastifyRequest,
  reply: FastifyReply,
  target: string,
) => Promise<ExchangeScript | null>;

export function createClassicDispatch(classic: ResolvedClassic, staticLayer: StaticHandler): ClassicDispatch {
  const { resolver } = classic;
  return async function dispatch(request, reply, target) {
    const verdict = await resolver.resolve(target);
    switch (verdict.kind) {
      case 'script':
        return verdict; // the verdict holds every field of an ExchangeScript: no copy per request
      case 'static':
        if (request.method !== 'GET' && request.method !== 'HEAD') {
          reply.header('allow', 'GET, HEAD');
          answer(reply, 405, 'Method Not Allowed');
        } else if (!(await staticLayer.sendPath(request, reply, verdict.path))) {
          // gone or refused between the resolver's look and ours
          answer(reply, 404, 'Not Found');
        }
        return null;
      case 'redirect':
        sendRedirect(request, reply, verdict.location, verdict.status);
        return null;
      case 'forbidden':
        answer(reply, 403, 'Forbidden');
        return null;
      case 'not-found':
        answer(reply, verdict.status, verdict.status === 404 ? 'Not Found' : 'Error');
        return null;
      case 'invalid':
        // nginx answers 414 for a request line over its buffers; past PATH_MAX no file has the name
        if (verdict.reason === 'too-long')
          answer(reply, 414, `URI Too Long: the path is over ${MAX_PATH_CHARS} characters`);
        else answer(reply, 400, 'Bad Request');
        return null;
    }
  };
}

function answer(reply: FastifyReply, status: number, text: string): void {
  reply.code(status).type('text/plain; charset=utf-8').send(`${text}\n`);
}
