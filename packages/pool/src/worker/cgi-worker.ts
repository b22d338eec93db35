// A php-cgi process as a pool worker (classic mode, managed): `php-cgi -b <socket>` in a private
// 0700 temp dir, one process (PHP_FCGI_CHILDREN=0) serving one keep-alive FastCGI connection, one
// request at a time. The pool decides everything a php-fpm master would: how many run, when one is
// recycled (max_jobs, ttl, idle_ttl, max_worker_memory), when one is killed (exec_ttl).
import { rejectOnAbort, type CancelSignal } from '../cancel.js';
import type { ChildProcess } from 'node:child_process';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  BootFailedError,
  ExecAbortedError,
  ExecTimeoutError,
  FastCgiAbortedError,
  FastCgiConnectionClosedError,
  PoolClosedError,
  QueuedRequestNotRunError,
  StreamStalledError,
  WorkerExitedError,
} from '../errors.js';
import type { FastCgiAddress } from '../fastcgi/address.js';
import {
  type CgiHeadLimits,
  type CgiResponseHead,
  type CgiResult,
  CgiResponseReader,
} from '../fastcgi/cgi-response.js';
import { connectFastCgi, getFastCgiValues, PROBE_VALUE_NAMES } from '../fastcgi/connect.js';
import type { FastCgiBody, FastCgiConnection, FastCgiRequestOptions, FastCgiRun } from '../fastcgi/connection.js';
import type { FastCgiPoolRequest } from '../fastcgi/client-pool.js';
import type { ScriptDurations } from '../fastcgi/script-durations.js';
import type { CgiUploads } from './cgi-uploads.js';
import type { Logger } from '../logger.js';
import type { ExecOptions } from './pool-worker.js';
import { ProcessWorker } from './process-worker.js';
import {
  describeExit,
  killedWhy,
  killGroup,
  lastOutputText,
  spawnProcess,
  waitForSpawn,
  type ProcessSpec,
} from './process.js';
import type { RecycleReason } from './state.js';

/** Everything needed to start one php-cgi worker; resolved once per pool (cgi-driver.ts). */
export interface CgiSpec extends ProcessSpec {
  logger: Logger;
  /** limits of the script's CGI header block */
  headLimits: CgiHeadLimits;
  /** pipelining: see CgiDriverOptions.queueBehindMs; 0 never queues */
  queueBehindMs: number;
  /** without exec_ttl, PHP's longest silence (CgiDriverOptions.silenceTimeoutMs) */
  silenceTimeoutMs: number;
  /** how long each script usually runs, shared by the pool's workers (pipelining) */
  scriptDurations: ScriptDurations;
  /** where each process's private socket folder is made (cgiSocketBase) */
  socketBase: string;
  /** the pool's upload_tmp_dir, swept of a killed process's uploads; null: php.ini names one, left to PHP */
  uploads: CgiUploads | null;
}

/**
 * One request as a php-cgi worker takes it: a FastCGI request as the connection pool to php-fpm
 * takes it (the same exchange serves both), with its body, signal and STDERR handler always given.
 */
export interface CgiRequest extends FastCgiPoolRequest {
  /** the request body: bytes, or a stream pulled as fast as PHP reads it */
  stdin: FastCgiBody;
  /** aborted when the client leaves: the request gets ABORT_REQUEST */
  signal: CancelSignal | null;
  /** STDERR lines of this request (PHP warnings, error_log()); null: the worker's logger */
  onStderr: ((line: string) => void) | null;
}

/** The script's response: its CGI head, and its body, whole or as a stream with backpressure to PHP. */
export interface CgiReply extends CgiResponseHead {
  pid: number;
  /** whole (fit bufferBytes) or a stream; destroying the stream before its end aborts the request (ABORT_REQUEST) */
  body: Buffer | Readable;
  /** a whole body: gives its memory back for reuse once nothing reads it (CgiResult.release) */
  release?: () => void;
}

/** The longest a timer can wait: the connection's own abort timeout is replaced by stream_timeout here. */
const NO_TIMEOUT_MS = 2_147_483_647;
/** A unix socket path must fit in sun_path (108 bytes on Linux). */
const MAX_SOCKET_PATH_BYTES = 100;
/** How often boot tries the socket before php-cgi listens on it. */
const CONNECT_RETRY_MS = 5;

interface PendingExec {
  /** set once its outcome is known; later notices are ignored */
  settled: boolean;
  /** its request on the connection, once sent */
  run: FastCgiRun | null;
  /** queued, and its outcome came before its turn in this worker did: applied once it has it */
  pending: (() => void) | null;
  /** what its broken connection means, once asked (#failureOf) */
  failure: Promise<Error> | null;
  /** ExecOptions.label: the worker's execLabel while it runs */
  label: string | null;
  /** when exec_ttl ends its run (performance.now() ms), also once its client left; null: unset or queued */
  deadline: number | null;
}

/** One php-cgi process: spawn, ready once its socket accepts, one request at a time, stop or kill. */
export class CgiWorker extends ProcessWorker<CgiRequest, CgiReply> {
  readonly #spec: CgiSpec;
  readonly #address: FastCgiAddress;
  #connection: FastCgiConnection | null = null;
  #exec: PendingExec | null = null;
  /** a request queued behind the running one on the connection (pipelining; canQueue()) */
  #queued: PendingExec | null = null;
  /** stream_timeout for an aborted request: PHP must end it, or the process is killed */
  #cancelTimer: NodeJS.Timeout | null = null;
  readonly #logStderr: (line: string) => void;

  private constructor(child: ChildProcess, spec: CgiSpec, dirs: readonly string[], socketPath: string) {
    super(child, {
      logger: spec.logger,
      destroyTimeoutMs: spec.destroyTimeoutMs,
      noun: 'php-cgi',
      logsStdout: true,
      // the socket's folder, and the uploads a killed PHP never deleted
      afterExit: async () => {
        await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
        await spec.uploads?.exited(this);
      },
      // the PHP CLI's 70 lines of usage text say less than its boot failure does
      holdsBootOutput: true,
    });
    this.#spec = spec;
    this.#address = { kind: 'unix', path: socketPath };
    this.#logStderr = (line) => spec.logger.warn({ workerPid: this.pid, stream: 'stderr' }, line);
  }

  /**
   * Spawns php-cgi on a socket of its own and connects to it within bootTimeoutMs
   * (allocate_timeout), racing the process exiting. A failure says why, with php-cgi's last output.
   */
  /** Spawns php-cgi and waits until it accepts on its socket; `signal` (the pool closing) cuts the wait short. */
  static async start(spec: CgiSpec, signal?: CancelSignal): Promise<CgiWorker> {
    const dir = await mkdtemp(join(spec.socketBase, 'warmpool-php-cgi-'));
    const dirs = [dir];
    const socketPath = join(dir, 'php-cgi.sock');
    // until the worker owns the folders (its afterExit removes them), a failure here removes them: a
    // chown refused (server.user without root) left one empty folder per boot attempt behind
    let worker: CgiWorker;
    try {
      // php-cgi creates the socket itself: when it runs as another user, the folder must be its
      if (spec.uid !== undefined) await chown(dir, spec.uid, spec.gid ?? -1);
      const args = ['-b', socketPath];
      if (spec.uploads !== null) args.push('-d', `upload_tmp_dir=${spec.uploads.dir}`);
      const child = spawnProcess(spec, ['ignore', 'pipe', 'pipe'], args);
      await waitForSpawn(child, spec.argv, spec.cwd);
      worker = new CgiWorker(child, spec, dirs, socketPath);
      spec.uploads?.started(worker);
    } catch (error) {
      await Promise.all(dirs.map((one) => rm(one, { recursive: true, force: true })));
      throw error;
    }
    try {
      await worker.#boot(signal);
      worker.releaseBootOutput(true);
      return worker;
    } catch (error) {
      worker.releaseBootOutput(!(error instanceof BootFailedError && error.details?.cli === true));
      worker.kill();
      await worker.exited;
      throw error;
    }
  }

  /**
   * Runs one request on the worker's connection; resolves with the CGI head once PHP sent it. The
   * worker stays busy until END_REQUEST: exec_ttl bounds the script's run once its body is sent,
   * output or not, and PHP's silence (which restarts whenever PHP sends output, and stops while PHP
   * waits for the request body or the reader is behind). On a
   * working worker (the pool checked canQueue()) the request is queued behind the running one.
   */
  async exec(request: CgiRequest, options: ExecOptions): Promise<CgiReply> {
    if (this.workerState === 'working') return this.#execQueued(request, options);
    if (this.workerState !== 'ready') {
      const error = new WorkerExitedError(`worker ${this.pid} is ${this.workerState}, not ready`, { pid: this.pid });
      this.hooks?.execEnd(this, error);
      throw error;
    }
    this.workerState = 'working';
    this.jobs++;
    this.execStartedAt = Date.now();
    this.execLabel = options.label ?? null;
    const exec: PendingExec = {
      settled: false,
      run: null,
      pending: null,
      failure: null,
      label: this.execLabel,
      deadline: options.timeoutMs > 0 ? performance.now() + options.timeoutMs : null,
    };
    this.#exec = exec;
    let connection = this.#connection;
    if (connection === null || connection.state !== 'idle') {
      try {
        connection = await this.#connect();
      } catch (error) {
        this.#fail(exec, error as Error, 'crashed');
        throw error;
      }
    }
    const reader = this.#reader(request);
    try {
      exec.run = connection.start(this.#runOptions(request, options), reader);
    } catch (error) {
      // nothing was sent (a param too large for a record): the worker is as it was
      this.#settle(exec, null);
      throw error;
    }
    this.#follow(exec);
    return this.#reply(await this.#response(exec, reader));
  }

  /**
   * Pipelining: whether this worker takes `request` now, queued behind the one it runs, so that
   * php-cgi goes on to it without waiting for a round trip through us (it reads its next request
   * only once it answered the current one). Only a replayable request (it runs elsewhere if this
   * worker goes away before it began), one deep, and only behind a request that has not run long.
   * `null`: whether it would take any replayable request now.
   */
  canQueue(request: CgiRequest | null): boolean {
    if (request !== null && request.replayable !== true) return false;
    if (this.workerState !== 'working' || this.#queued !== null) return false;
    if (this.markedFor !== null || this.retiredFor !== null) return false;
    if (this.jobLimit > 0 && this.jobs >= this.jobLimit) return false;
    if (this.#exec === null || this.#exec.run === null) return false;
    return this.#connection?.queuesBehind(request === null ? null : request.stdin, this.#spec.queueBehindMs) === true;
  }

  async #execQueued(request: CgiRequest, options: ExecOptions): Promise<CgiReply> {
    const connection = this.#connection;
    if (connection === null || !this.canQueue(request)) {
      // the pool's check is a tick old: the request goes back to it
      const error = new QueuedRequestNotRunError(`worker ${this.pid} can no longer queue a request`, {
        details: { pid: this.pid },
      });
      this.hooks?.execEnd(this, error);
      throw error;
    }
    const exec: PendingExec = {
      settled: false,
      run: null,
      pending: null,
      failure: null,
      label: options.label ?? null,
      deadline: null,
    };
    const reader = this.#reader(request);
    try {
      exec.run = connection.queue(this.#runOptions(request, options), reader);
    } catch (error) {
      // nothing was sent (a param too large for a record)
      this.hooks?.execEnd(this, new QueuedRequestNotRunError((error as Error).message, { cause: error }));
      throw error;
    }
    this.#queued = exec;
    this.#follow(exec);
    return this.#reply(await this.#response(exec, reader));
  }

  /** The reader's head; a request php-cgi never read fails as not run (the pool runs it elsewhere). */
  async #response(exec: PendingExec, reader: CgiResponseReader): Promise<CgiResult> {
    try {
      return await reader.response;
    } catch (error) {
      throw await this.#failureOf(exec, error as Error);
    }
  }

  /**
   * What a broken connection means for a request that got nothing back: not run (the pool runs it on
   * another process), or the error as it is. The same answer for the caller and the worker's fate.
   */
  #failureOf(exec: PendingExec, error: Error): Promise<Error> {
    exec.failure ??= this.#judge(exec, error);
    return exec.failure;
  }

  async #judge(exec: PendingExec, error: Error): Promise<Error> {
    if (!(error instanceof FastCgiConnectionClosedError) || !unsent(exec)) return error;
    const code = errno(error);
    // written after php-cgi had closed its socket: it read none of it
    if (code === 'EPIPE') return this.#notRun(error);
    if (code !== 'ECONNRESET') return error;
    // Closed with bytes unread: our whole request (php-cgi left between two requests), or only the
    // empty record that ends a GET's body (it died running the script). php-cgi leaves with code 0
    // only between requests, so its exit tells (it may still be shutting down: killed only if it
    // has not left after a grace, which then counts as a crash).
    if (this.workerState !== 'exited') {
      const grace = setTimeout(() => killGroup(this.pid), LEAVING_GRACE_MS);
      await this.exited;
      clearTimeout(grace);
    }
    return this.exitCode === 0 && this.exitSignal === null ? this.#notRun(error) : error;
  }

  #notRun(error: Error): QueuedRequestNotRunError {
    const how = errno(error) ?? `exit code ${this.exitCode}`;
    return new QueuedRequestNotRunError(
      `php-cgi ${this.pid} closed its connection before it read the request (${how}); it runs on another process`,
      { cause: error, details: { pid: this.pid } },
    );
  }

  #reader(request: CgiRequest): CgiResponseReader {
    return new CgiResponseReader(this.#spec.headLimits, request.bufferBytes ?? 0, request.recycleBody === true);
  }

  #runOptions(request: CgiRequest, options: ExecOptions): FastCgiRequestOptions {
    return {
      params: request.params,
      stdin: request.stdin,
      onStderr: request.onStderr ?? this.#logStderr,
      readTimeoutMs: options.timeoutMs > 0 ? options.timeoutMs : this.#spec.silenceTimeoutMs,
      // exec_ttl also bounds the script's whole run once its body is in (php-fpm's
      // request_terminate_timeout); unset, only the silence is bounded, as nginx's fastcgi_read_timeout
      runTimeoutMs: Math.max(options.timeoutMs, 0),
      timeoutError: (ms, kind) => this.#execTimeout(ms, options.timeoutMs > 0, kind),
      abortTimeoutMs: NO_TIMEOUT_MS,
      stallTimeoutMs: this.#spec.sendTimeoutMs,
      signal: request.signal,
      script: request.script ?? null,
    };
  }

  #follow(exec: PendingExec): void {
    exec.run!.done.then(
      () => this.#onEnd(exec),
      (error: Error) => this.#onFailure(exec, error),
    );
  }

  #reply(result: CgiResult): CgiReply {
    const reply: CgiReply = {
      pid: this.pid,
      status: result.status,
      statusText: result.statusText,
      headers: result.headers,
      localRedirect: result.localRedirect,
      body: result.body,
    };
    if (result.release !== undefined) reply.release = result.release;
    return reply;
  }

  /** Graceful stop: SIGTERM (php-cgi exits at once when idle), then SIGKILL after destroy_timeout. */
  protected askToStop(): void {
    this.#connection?.close();
    try {
      process.kill(this.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }

  /** A running request fails at once with WorkerExitedError, not when the exit is seen. */
  protected override onKill(): void {
    if (this.#exec !== null && this.#connection !== null) {
      this.#connection.fail(
        new WorkerExitedError(`worker ${this.pid} was killed${killedWhy(this.retiredFor)} during a request`, {
          pid: this.pid,
        }),
      );
    }
  }

  // ---- boot and connection ----

  async #boot(signal: CancelSignal | undefined): Promise<void> {
    const spec = this.#spec;
    let timer: NodeJS.Timeout | undefined;
    let stopped = false;
    const closed = rejectOnAbort(signal, () => new PoolClosedError(`the pool closed while php-cgi ${this.pid} booted`));
    try {
      const exited: Promise<never> = this.exited.then(() => {
        const cli = phpCliUsage(this.recentOutput);
        if (cli !== null)
          throw new BootFailedError(
            `"${spec.argv.join(' ')}" is the PHP CLI, not php-cgi: it exited at once (${cli}). ` +
              'Classic sites need php-cgi: set fastcgi.command: php-cgi (Debian/Ubuntu: apt-get install php-cgi), ' +
              'or run php-fpm and set fastcgi.pass.',
            { details: { pid: this.pid, exitCode: this.exitCode, cli: true } },
          );
        throw new BootFailedError(
          `php-cgi exited during boot (${describeExit(this.exitCode, this.exitSignal)}) before it listened on its socket. ` +
            `${lastOutputText(this.recentOutput)}Check that "${spec.argv.join(' ')} -b /tmp/x.sock" starts (run it by hand).`,
          { details: { pid: this.pid, exitCode: this.exitCode } },
        );
      });
      exited.catch(() => {});
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new BootFailedError(
                `php-cgi ${this.pid} did not accept connections on its socket within ${spec.bootTimeoutMs}ms (allocate_timeout). ` +
                  lastOutputText(this.recentOutput),
                { details: { pid: this.pid } },
              ),
            ),
          spec.bootTimeoutMs,
        );
      });
      const connected = (async () => {
        // The socket exists once php-cgi bound it and accepts once it listens: try until it does.
        for (;;) {
          try {
            return await connectFastCgi(this.#address, {
              connectTimeoutMs: spec.bootTimeoutMs,
              scriptDurations: spec.scriptDurations,
            });
          } catch (error) {
            if (stopped) throw error;
            await new Promise((resolve) => setTimeout(resolve, CONNECT_RETRY_MS));
            if (stopped) throw error;
          }
        }
      })();
      connected.then(
        (connection) => {
          if (stopped) connection.destroy();
        },
        () => {},
      );
      this.#adopt(await Promise.race([connected, exited, timeout, closed.promise]));
      this.workerState = 'ready';
    } finally {
      stopped = true;
      clearTimeout(timer);
      closed.dispose();
    }
  }

  /** A new connection to this worker's php-cgi (after one was dropped: an aborted request, unread STDIN). */
  async #connect(): Promise<FastCgiConnection> {
    const connection = await connectFastCgi(this.#address, {
      connectTimeoutMs: this.#spec.bootTimeoutMs,
      scriptDurations: this.#spec.scriptDurations,
    });
    if (this.workerState === 'exited' || this.workerState === 'stopping') {
      connection.destroy();
      throw new WorkerExitedError(`worker ${this.pid} is ${this.workerState}`, { pid: this.pid });
    }
    this.#adopt(connection);
    return connection;
  }

  #adopt(connection: FastCgiConnection): void {
    this.#connection = connection;
    connection.once('close', () => {
      if (this.#connection === connection) this.#connection = null;
    });
  }

  // ---- the end of a request ----

  /** END_REQUEST: served. The connection is kept, or was dropped (STDIN left unread) and is made again. */
  #onEnd(exec: PendingExec): void {
    if (exec.settled) return;
    if (exec === this.#queued) {
      // it ran and ended before the end of the request ahead of it reached us
      exec.pending = () => this.#onEnd(exec);
      return;
    }
    const connection = this.#connection;
    const next = this.#queued;
    const idle = connection !== null && connection.state === 'idle';
    if (idle || (next !== null && next.run!.begun) || this.workerState === 'exited') {
      this.#settle(exec, null);
      return;
    }
    this.#connect().then(
      () => this.#settle(exec, null),
      (error: Error) => this.#fail(exec, error, 'crashed'),
    );
  }

  /**
   * The request failed. Aborted (the client left, send_timeout, a bad CGI head): PHP finishes the
   * script, answers END_REQUEST and drops the connection; the worker is free once it did, within
   * stream_timeout, else it is killed. Anything else leaves the process in doubt: it is killed.
   */
  #onFailure(exec: PendingExec, error: Error): void {
    if (exec.settled) return;
    if (exec === this.#queued) {
      if (error instanceof QueuedRequestNotRunError) {
        // nothing of it ran (the connection closed first): the pool runs it elsewhere
        exec.settled = true;
        this.#queued = null;
        this.hooks?.execEnd(this, error);
      } else {
        exec.pending = () => this.#onFailure(exec, error);
      }
      return;
    }
    if (error instanceof FastCgiAbortedError || error instanceof StreamStalledError) {
      this.#awaitAbortedEnd(exec);
      return;
    }
    if (error instanceof FastCgiConnectionClosedError && unsent(exec)) {
      // php-cgi may have left between two requests (a wrapper's PHP_FCGI_MAX_REQUESTS) with our
      // request unread: then it runs on another process
      void this.#failureOf(exec, error).then((failure) => this.#fail(exec, failure, 'crashed'));
      return;
    }
    if (error instanceof ExecTimeoutError && error.details?.killed === false) {
      // the client has its 504; the script runs on, as an aborted request does
      this.#awaitAbortedEnd(exec);
      return;
    }
    this.#fail(exec, error, error instanceof ExecTimeoutError ? 'exec_ttl' : this.#failureReason(error));
  }

  #failureReason(error: Error): RecycleReason {
    return error instanceof FastCgiConnectionClosedError || error instanceof WorkerExitedError ? 'crashed' : 'protocol';
  }

  #awaitAbortedEnd(exec: PendingExec): void {
    const connection = this.#connection;
    const aborted = new ExecAbortedError('the request was aborted; php-cgi finished it', { pid: this.pid });
    // Aborted without ABORT_REQUEST (a request was queued behind it, or it was queued itself): the
    // connection stays, and the worker is free once PHP ended this one.
    const kept = exec.run!.keptAfterAbort && connection !== null && connection.state !== 'closed';
    if (kept && exec.run!.ended) {
      this.#settle(exec, aborted);
      return;
    }
    const stopWaiting = () => {
      if (this.#cancelTimer !== null) clearTimeout(this.#cancelTimer);
      this.#cancelTimer = null;
    };
    // exec_ttl still holds once the client left: a looping script of a 1 s visit ran on for the
    // whole stream_timeout (60 s) past a 5 s exec_ttl; php-fpm's request_terminate_timeout ignores the client too
    const untilTtl = exec.deadline === null ? Number.POSITIVE_INFINITY : Math.max(exec.deadline - performance.now(), 0);
    const byTtl = untilTtl < this.#spec.streamTimeoutMs;
    this.#cancelTimer = setTimeout(
      () => {
        this.#cancelTimer = null;
        if (byTtl) {
          this.#spec.logger.warn(
            { pid: this.pid, reason: 'exec_ttl' },
            `php-cgi ${this.pid} reached exec_ttl on a request its client had left; killing it`,
          );
          this.#fail(exec, new ExecAbortedError('the aborted request outlasted exec_ttl'), 'exec_ttl');
          return;
        }
        this.#spec.logger.warn(
          { pid: this.pid, reason: 'stream_timeout' },
          `php-cgi ${this.pid} did not end an aborted request within stream_timeout (${this.#spec.streamTimeoutMs}ms); killing it`,
        );
        this.#fail(exec, new ExecAbortedError('the aborted request did not end within stream_timeout'), 'errored');
      },
      byTtl ? untilTtl : this.#spec.streamTimeoutMs,
    );
    if (!kept) {
      // PHP notices a client that left only when its output fails (it reads nothing while a script
      // runs): the connection is cut, as nginx cuts its own, so the script stops at its next output
      // unless it ignores aborts. php-cgi takes a new connection once the script is over.
      connection?.destroy();
      this.#whenFree().then(
        () => {
          stopWaiting();
          this.#settle(exec, aborted);
        },
        (error: Error) => {
          stopWaiting();
          this.#fail(exec, error, 'crashed');
        },
      );
      return;
    }
    const onEnded = () => {
      connection.off('close', reconnect);
      connection.off('advance', onEnded);
      connection.off('idle', onEnded);
      stopWaiting();
      this.#settle(exec, aborted);
    };
    const reconnect = () => {
      connection.off('advance', onEnded);
      connection.off('idle', onEnded);
      stopWaiting();
      if (exec.settled) return;
      if (this.workerState !== 'working') {
        this.#fail(exec, new WorkerExitedError(`worker ${this.pid} left during an aborted request`), 'crashed');
        return;
      }
      this.#connect().then(
        () => this.#settle(exec, aborted),
        (error: Error) => this.#fail(exec, error, 'crashed'),
      );
    };
    connection.once('close', reconnect);
    connection.once('advance', onEnded);
    connection.once('idle', onEnded);
  }

  /**
   * Resolves once php-cgi has ended the script it ran and can serve again: it accepts a new
   * connection only then, and answers a GET_VALUES on it at once (then drops that connection); the
   * worker's own connection is made again after it.
   */
  async #whenFree(): Promise<void> {
    if (this.workerState !== 'working')
      throw new WorkerExitedError(`worker ${this.pid} left during an aborted request`);
    // no read timeout: stream_timeout bounds the wait
    await getFastCgiValues(this.#address, {
      connectTimeoutMs: this.#spec.bootTimeoutMs,
      names: PROBE_VALUE_NAMES,
      readTimeoutMs: 0,
    });
    await this.#connect();
  }

  #execTimeout(ms: number, set: boolean, kind: 'silence' | 'run'): Error {
    const limit = set ? 'exec_ttl' : "the classic default (exec_ttl unset: nginx's fastcgi_read_timeout)";
    const how = kind === 'run' ? `${ms}ms running` : `${ms}ms without output from PHP`;
    // nginx's fastcgi_read_timeout ends the answer, not the script: php-fpm runs it to its end (a
    // feed subscription that waited 40 s on a slow site was left half saved when the process was
    // killed). exec_ttl, set, is php-fpm's request_terminate_timeout: that one kills
    const outcome = set
      ? `worker ${this.pid} was killed`
      : `php-cgi ${this.pid} finishes the script (stream_timeout bounds it), as php-fpm behind nginx does`;
    const error = new ExecTimeoutError(`request exceeded ${limit} (${how}); ${outcome}`, {
      pid: this.pid,
      killed: set,
    });
    this.#spec.logger.warn({ workerPid: this.pid, reason: 'exec_ttl' }, error.message);
    return error;
  }

  /** The process cannot be trusted any more: kill it; the pool replaces it (fate: kill). */
  #fail(exec: PendingExec, error: Error, reason: RecycleReason): void {
    if (exec.settled) return;
    this.retiredFor ??= reason;
    // kill() without its onKill: that would fail the connection with WorkerExitedError, and this
    // request already has its own error (a timeout's 504, a broken connection's 502)
    if (this.workerState !== 'exited') {
      this.workerState = 'stopping';
      killGroup(this.pid);
    }
    // ExecAbortedError means "reusable" to the fate table; this worker is not
    this.#settle(exec, error instanceof ExecAbortedError ? new WorkerExitedError(error.message) : error);
  }

  /** Ends the execution: ready again unless it is leaving; the pool decides what comes next. */
  #settle(exec: PendingExec, error: Error | null): void {
    if (exec.settled) return;
    exec.settled = true;
    if (this.#cancelTimer !== null) clearTimeout(this.#cancelTimer);
    this.#cancelTimer = null;
    if (this.#exec === exec) this.#exec = null;
    this.lastUsedAt = Date.now();
    this.busyMs += this.lastUsedAt - this.execStartedAt;
    const next = this.#queued;
    if (next !== null && this.workerState === 'working' && next.run!.begun) {
      // PHP went on to the request queued behind: it is this worker's request now
      this.#queued = null;
      this.#exec = next;
      this.jobs++;
      this.execStartedAt = this.lastUsedAt;
      this.execLabel = next.label;
      this.hooks?.execEnd(this, error);
      const pending = next.pending;
      next.pending = null;
      pending?.();
      return;
    }
    if (this.workerState === 'working') this.workerState = 'ready';
    this.hooks?.execEnd(this, error);
  }

  protected hasRunningRequest(): boolean {
    return this.#exec !== null;
  }

  protected failRunningRequest(error: Error): void {
    if (this.#leftBetweenRequests()) return;
    this.#connection?.fail(error);
    this.#fail(this.#exec!, error, 'crashed');
  }

  protected closeWire(): void {
    if (this.#leftBetweenRequests()) return;
    this.#connection?.destroy();
  }

  /**
   * php-cgi left with code 0, which it does only between two requests (a wrapper's
   * PHP_FCGI_MAX_REQUESTS): its socket tells the rest, so the connection is read to its end rather
   * than cut. Our request either was answered before it left (END_REQUEST is there to read) or was
   * never read (the kernel reset the socket with it unread: it runs on another process, #onFailure).
   */
  #leftBetweenRequests(): boolean {
    const connection = this.#connection;
    return this.exitCode === 0 && this.exitSignal === null && connection !== null && connection.state !== 'closed';
  }
}

/** How long php-cgi may take to exit after its socket was reset under a request (see #judge). */
const LEAVING_GRACE_MS = 1_000;

/** The OS temp dir, unless its path leaves no room for a socket name (then /tmp). */
export function cgiSocketBase(): string {
  const base = tmpdir();
  return Buffer.byteLength(base) + 40 > MAX_SOCKET_PATH_BYTES ? '/tmp' : base;
}

/** Nothing came back, and the body went out with the head (or is a stream not yet read): it can go again. */
function unsent(exec: PendingExec): boolean {
  const run = exec.run;
  return run !== null && run.bytesReceived === 0 && !run.stdinStarted;
}

function errno(error: Error): string | undefined {
  return (error.cause as NodeJS.ErrnoException | undefined)?.code;
}

/**
 * The PHP CLI started where php-cgi was meant to be: it does not know php-cgi's `-b` and prints
 * its usage text. Its error line when the output has it, else null.
 */
export function phpCliUsage(lines: readonly string[]): string | null {
  const error = lines.find((line) => /option not found b\b/.test(line));
  if (error !== undefined) return `"${error.trim()}"`;
  return lines.some((line) => /^Usage: php \[options\] \[-f\] <file>/.test(line)) ? 'its usage text' : null;
}
