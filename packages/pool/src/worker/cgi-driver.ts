// The driver of php-cgi workers (classic mode, managed): the spawn spec every php-cgi process of a
// pool shares, and createCgiPool(), the pool that runs them.
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { CancelSignal } from '../cancel.js';
import type { CgiHeadLimits } from '../fastcgi/cgi-response.js';
import type { PoolOptions, ResolvedPoolOptions } from '../options.js';
import { Pool } from '../pool/pool.js';
import { DEFAULT_QUEUE_BEHIND_MS, DEFAULT_READ_TIMEOUT_MS } from '../fastcgi/connection.js';
import { ScriptDurations } from '../fastcgi/script-durations.js';
import { CgiWorker, cgiSocketBase, type CgiReply, type CgiRequest, type CgiSpec } from './cgi-worker.js';
import { CgiUploads } from './cgi-uploads.js';
import { buildCgiEnv } from './command.js';
import { tempDirProblem } from './temp-dir.js';
import type { WorkerDriver } from './pool-worker.js';

export interface CgiDriverOptions extends CgiHeadLimits {
  /**
   * Pipelining: a replayable request (GET or HEAD without a body) may be queued behind a running
   * one that has run at most this long, or twice its usual time if that is longer, and never
   * behind a script whose runs usually last longer (default DEFAULT_QUEUE_BEHIND_MS). 0: never
   * (one request per worker at a time).
   */
  queueBehindMs?: number;
  /**
   * Start php-cgi with only CGI_KEPT_ENV of the server's environment, plus the pool's `env`
   * (php-fpm's clear_env); false: all of it. Default true.
   */
  clearEnv?: boolean;
  /**
   * Without exec_ttl, how long PHP may stay silent before the request gets 504: nginx's
   * fastcgi_read_timeout, as `pass` to php-fpm has it (default DEFAULT_READ_TIMEOUT_MS, 60 s). The
   * script runs on to its end, as php-fpm's does behind nginx; stream_timeout later the process is
   * killed if it has not ended. A classic site has no hung request held for good.
   */
  silenceTimeoutMs?: number;
}

export class CgiDriver implements WorkerDriver<CgiRequest, CgiReply> {
  readonly protocol = 'fastcgi';

  get silenceTimeoutMs(): number {
    return this.#silenceTimeoutMs;
  }
  readonly #headLimits: CgiHeadLimits;
  readonly #queueBehindMs: number;
  readonly #clearEnv: boolean;
  readonly #silenceTimeoutMs: number;
  #spec: CgiSpec | null = null;

  constructor(options: CgiDriverOptions = {}) {
    const { queueBehindMs, clearEnv, silenceTimeoutMs, ...headLimits } = options;
    this.#headLimits = headLimits;
    this.#silenceTimeoutMs = silenceTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS;
    this.#queueBehindMs = queueBehindMs ?? DEFAULT_QUEUE_BEHIND_MS;
    this.#clearEnv = clearEnv ?? true;
  }

  async open(options: ResolvedPoolOptions<CgiRequest>): Promise<void> {
    const env = buildCgiEnv(options.env, process.env, this.#clearEnv);
    const ini = await askPhpIni(env, options);
    this.#spec = {
      argv: options.argv,
      env,
      cwd: options.cwd,
      bootTimeoutMs: options.allocateTimeoutMs,
      destroyTimeoutMs: options.destroyTimeoutMs,
      streamTimeoutMs: options.streamTimeoutMs,
      sendTimeoutMs: options.sendTimeoutMs,
      uid: options.uid,
      gid: options.gid,
      nice: options.nice,
      logger: options.logger,
      headLimits: this.#headLimits,
      queueBehindMs: this.#queueBehindMs,
      silenceTimeoutMs: this.#silenceTimeoutMs,
      scriptDurations: new ScriptDurations(),
      socketBase: await usableSocketBase(options.uid, options.gid),
      // one folder for the pool, swept of what a killed process left (cgi-uploads.ts), unless
      // php.ini names one
      uploads: ini.uploadTmpDir === '' ? await CgiUploads.create(env.TMPDIR ?? '/tmp', options.uid, options.gid) : null,
    };
    if (options.uid !== undefined) await warnOfPhpTempDir(env.TMPDIR ?? '/tmp', options);
    if (ini.apcu && mayRunSeveral(options)) warnOfPerProcessApcu(options);
  }

  spawn(signal?: CancelSignal): Promise<CgiWorker> {
    return CgiWorker.start(this.#spec!, signal);
  }

  async drain(reply: CgiReply): Promise<void> {
    if (!(reply.body instanceof Readable)) return;
    reply.body.resume();
    await finished(reply.body).catch(() => {});
  }

  async close(): Promise<void> {
    await this.#spec?.uploads?.close();
  }
}

/**
 * A pool of php-cgi processes (classic mode without an external php-fpm): `command` is php-cgi with
 * its flags ("php-cgi -d opcache.enable=1"); every pool option applies as for goridge workers.
 */
export function createCgiPool(
  options: PoolOptions<CgiRequest> | ResolvedPoolOptions<CgiRequest>,
  cgi?: CgiDriverOptions,
): Pool<CgiRequest, CgiReply> {
  return new Pool<CgiRequest, CgiReply>(options, new CgiDriver(cgi));
}

/**
 * The server's temp dir for php-cgi's socket folders, unless the PHP processes' user cannot enter
 * it (a TMPDIR of mode 0700): then /tmp, which every user can. Their own folder in it is theirs.
 */
async function usableSocketBase(uid: number | undefined, gid: number | undefined): Promise<string> {
  const base = cgiSocketBase();
  if (uid === undefined || base === '/tmp') return base;
  return (await tempDirProblem(base, uid, gid, false)) === null ? base : '/tmp';
}

/** Whether the pool may run more than one php-cgi process at a time. */
function mayRunSeveral(options: ResolvedPoolOptions<CgiRequest>): boolean {
  if (options.dynamic !== null) return options.dynamic.maxWorkers > 1;
  return options.numWorkers === 'auto' || options.numWorkers > 1;
}

/** What the pool's php-cgi settings say, asked once at start. */
interface PhpIni {
  /** APCu is on */
  apcu: boolean;
  /** the upload_tmp_dir its php.ini or flags set; '' for none (PHP's TMPDIR) */
  uploadTmpDir: string;
}

const INI_PROBE =
  '<?php echo json_encode([extension_loaded("apcu") && ini_get("apc.enabled"), (string) ini_get("upload_tmp_dir")]);';
const PROBE_TIMEOUT_MS = 5_000;

/**
 * Asks this php-cgi, with its flags and environment, what PhpIni holds, in one run. A probe that
 * cannot run says APCu off and no upload_tmp_dir: the boot says why it cannot.
 */
async function askPhpIni(env: NodeJS.ProcessEnv, options: ResolvedPoolOptions<CgiRequest>): Promise<PhpIni> {
  try {
    const [apcu, uploadTmpDir] = JSON.parse(await runPhpCgi(env, options, INI_PROBE)) as [unknown, unknown];
    return { apcu: apcu === true, uploadTmpDir: typeof uploadTmpDir === 'string' ? uploadTmpDir : '' };
  } catch {
    return { apcu: false, uploadTmpDir: '' };
  }
}

/** What this php-cgi, with its flags and environment, prints for `script` (trimmed); '' when it cannot run. */
function runPhpCgi(env: NodeJS.ProcessEnv, options: ResolvedPoolOptions<CgiRequest>, script: string): Promise<string> {
  const [command, ...flags] = options.argv;
  if (command === undefined) return Promise.resolve('');
  return new Promise<string>((resolve) => {
    let out = '';
    const child = spawn(command, [...flags, '-q'], {
      env,
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'ignore'],
      timeout: PROBE_TIMEOUT_MS,
    });
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    child.on('error', () => resolve(''));
    child.on('close', () => resolve(out.trim()));
    child.stdin.on('error', () => {});
    child.stdin.end(script);
  });
}

/**
 * php-fpm's children share their master's APCu; separately started php-cgi processes each have
 * their own. What an app keeps in APCu for all requests (MediaWiki's default CACHE_ACCEL holds its
 * sessions there: logins and edit tokens were lost on every other request) is then split between
 * processes, so it is said once at start.
 */
function warnOfPerProcessApcu(options: ResolvedPoolOptions<CgiRequest>): void {
  options.logger.warn(
    { reason: 'apcu' },
    "APCu is on in php-cgi, and each php-cgi process has an APCu of its own (php-fpm's children share " +
      "their master's): what an app keeps there for every request is not shared between them, so sessions " +
      "or locks kept in APCu (MediaWiki's default $wgMainCacheType CACHE_ACCEL) are lost on every other " +
      'request. For such an app use fastcgi.pass to php-fpm, or a shared store (CACHE_DB, Redis, memcached); ' +
      'APCu as a local cache is fine (docs/CLASSIC.md, "APCu")',
  );
}

/** PHP keeps uploads and large POST bodies in its TMPDIR: one its user cannot write is said at start. */
async function warnOfPhpTempDir(folder: string, options: ResolvedPoolOptions<CgiRequest>): Promise<void> {
  const problem = await tempDirProblem(folder, options.uid!, options.gid);
  if (problem === null) return;
  options.logger.warn(
    { tmpdir: folder, uid: options.uid, reason: 'tmpdir' },
    `PHP's TMPDIR ${folder} is not writable by the user PHP runs as (uid ${options.uid}): ${problem}. ` +
      'PHP keeps uploads and large POST bodies there, so they would fail (UPLOAD_ERR_CANT_WRITE) or be dropped. ' +
      "Give that user the folder, or PHP a folder of its own: server.env TMPDIR (e.g. /tmp) or php.ini's upload_tmp_dir",
  );
}
