// A connection pool to one external FastCGI server (php-fpm): a backend without managed processes.
// Keep-alive connections are reused (most recently used first), at most maxConnections are open,
// requests beyond that wait in a bounded queue; every failure is a FastCgiError carrying its status
// (502 down, 503 overloaded or queue full, 504 timed out).
import type { CancelSignal } from '../cancel.js';
import { EventEmitter } from 'node:events';
import type { Readable } from 'node:stream';
import {
  FastCgiAbortedError,
  FastCgiClosedError,
  FastCgiConnectFailedError,
  FastCgiConnectionClosedError,
  FastCgiNoFreeConnectionError,
  FastCgiQueueFullError,
  InvalidFastCgiOptionError,
  isWarmpoolError,
  QueuedRequestNotRunError,
} from '../errors.js';
import { type Logger, SILENT_LOGGER } from '../logger.js';
import { type FastCgiAddress, formatFastCgiAddress, parseFastCgiAddress } from './address.js';
import { type CgiHeadLimits, type CgiResponseHead, CgiResponseReader } from './cgi-response.js';
import { connectFastCgi, DEFAULT_CONNECT_TIMEOUT_MS, getFastCgiValues, PROBE_VALUE_NAMES } from './connect.js';
import {
  DEFAULT_ABORT_TIMEOUT_MS,
  DEFAULT_QUEUE_BEHIND_MS,
  DEFAULT_READ_TIMEOUT_MS,
  type FastCgiBody,
  FastCgiConnection,
  type FastCgiRequestOptions,
  type FastCgiRun,
} from './connection.js';
import type { EndRequestBody, FastCgiParams } from './records.js';
import { LingeringScripts } from './lingering-scripts.js';
import { ScriptDurations } from './script-durations.js';

/**
 * Default connection limit. Set it to php-fpm's pm.max_children (php-fpm does not report it: its
 * GET_VALUES answers only FCGI_MPXS_CONNS). A higher value is safe, only less efficient: see
 * #release() on connections stuck in php-fpm's accept queue.
 */
export const DEFAULT_MAX_CONNECTIONS = 8;
export const DEFAULT_MAX_QUEUE = 100;
/** A new connection without an answer for this long is taken to sit in php-fpm's accept queue. */
export const STALL_MS = 1_000;
/** A probe unanswered for this long means php-fpm has no free child: the log says so (once). */
export const PROBE_REPORT_MS = 1_000;
/** As the pool's allocate_timeout. */
export const DEFAULT_QUEUE_TIMEOUT_MS = 60_000;
/** While the address does not answer, how often it is tried again in the background. */
export const RECHECK_MS = 1_000;
/** nginx's keepalive_timeout for upstream connections. */
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;
/**
 * A kept connection is closed once its request ends after this long (nginx's keepalive_time, made
 * short): a php-fpm child serves one connection until it closes, so anything else using the same
 * php-fpm pool (nginx serving other sites, a monitoring check through cgi-fcgi) would otherwise
 * wait in its accept queue for as long as warmpool stays busy. A few connects a second cost nothing.
 */
export const DEFAULT_MAX_CONNECTION_AGE_MS = 2_000;
/**
 * A new connection still without an answer after this long, while another pool of this process
 * keeps idle connections to the same address: that pool closes one, as its idle connection may
 * hold the php-fpm child this one waits for.
 */
export const SIBLING_STALL_MS = 10;
/**
 * The pools of this process connected to each address (two sites passing to one php-fpm pool):
 * php-fpm's children are theirs together, and one pool's kept connections could otherwise hold
 * every child while the other's requests wait in the accept queue until those connections idle out.
 */
const poolsByAddress = new Map<string, Set<FastCgiClientPool>>();
/**
 * After this long with nothing running, the capacity goes back to maxConnections, to be learnt
 * again by the next burst: php-fpm's children change meanwhile (pm = ondemand kills idle ones after
 * pm.process_idle_timeout, 10 s by default, and spawns them again under load, slower than a request
 * runs, which looked like fewer children and kept the capacity low for good).
 */
export const RELEARN_AFTER_IDLE_MS = 10_000;
/** How many times a request queued behind another runs again after its connection closed first. */
const MAX_QUEUED_RETRIES = 3;

export interface FastCgiClientPoolOptions {
  /** `unix:/run/php/php8.2-fpm.sock`, `127.0.0.1:9000`, or a parsed address. */
  address: string | FastCgiAddress;
  /** Connections open at most, busy and idle; php-fpm's pm.max_children is the right value. */
  maxConnections?: number;
  /** Requests that may wait for a connection; one more fails with WP_FASTCGI_QUEUE_FULL (503). 0: none wait. */
  maxQueue?: number;
  /** How long a request waits for a connection before WP_FASTCGI_NO_FREE_CONNECTION (503). */
  queueTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Longest silence from the server during a request (WP_FASTCGI_READ_TIMEOUT, 504); 0: none. */
  readTimeoutMs?: number;
  /** After an abort, how long the server may take to end the request before the connection is cut. */
  abortTimeoutMs?: number;
  /** An idle connection is closed after this; 0: kept until the server closes it. */
  idleTimeoutMs?: number;
  /** A connection is closed once idle after this age (DEFAULT_MAX_CONNECTION_AGE_MS); 0: any age. */
  maxConnectionAgeMs?: number;
  /** send_timeout: a response whose reader reads nothing for this long is aborted (WP_WORKER_STREAM_STALLED); 0: none. */
  stallTimeoutMs?: number;
  /** Limits of the script's CGI header block. */
  maxHeaderBytes?: number;
  maxHeaderCount?: number;
  /**
   * Pipelining: with every connection busy, a replayable request is written behind a running one
   * that has run at most this long (or twice its connection's average request), so the php-fpm
   * child goes on to it without a round trip through us. Default DEFAULT_QUEUE_BEHIND_MS; 0: never.
   */
  queueBehindMs?: number;
  /** After this long with nothing running, the capacity is learnt again (RELEARN_AFTER_IDLE_MS); 0: never. */
  relearnAfterIdleMs?: number;
  /** STDERR lines of every request go here (warn, with the address), unless the request has onStderr. */
  logger?: Logger;
}

export interface FastCgiPoolRequest {
  params: FastCgiParams;
  stdin?: FastCgiBody;
  /** The client left: the request is aborted (ABORT_REQUEST), or taken out of the queue. */
  signal?: CancelSignal | null;
  /** STDERR lines of this request (PHP warnings, error_log()); absent or null: the pool's logger */
  onStderr?: ((line: string) => void) | null;
  /**
   * A body up to this many bytes is read whole before the request resolves (nginx's
   * fastcgi_buffering); a larger one, or one sent with `X-Accel-Buffering: no`, streams. Default 0:
   * every body streams.
   */
  bufferBytes?: number;
  /**
   * Keep a whole body in reused memory and hand back its `release()` (CgiReadOptions.recycle):
   * only for a caller that calls it once nothing reads the body. Default false.
   */
  recycleBody?: boolean;
  /**
   * It may run again if the process goes away before it began: GET or HEAD without a body (nginx
   * retries only such requests on another upstream). Only these are queued behind a running one.
   */
  replayable?: boolean;
  /**
   * The script it runs (SCRIPT_FILENAME): its runs are timed, and no request is queued behind a
   * script known to run longer than queueBehindMs (ScriptDurations). Absent: not timed.
   */
  script?: string | null;
}

export interface FastCgiResponse extends CgiResponseHead {
  /**
   * The body: whole (one Buffer) when it fit the request's bufferBytes, else streamed with
   * backpressure (destroying the stream aborts the request).
   */
  body: Buffer | Readable;
  /** a whole body: gives its memory back for reuse once nothing reads it (CgiResult.release) */
  release?: () => void;
  /** Resolves on END_REQUEST; rejects when the request fails after its head (a timeout, a dying PHP). */
  done: Promise<EndRequestBody>;
}

export interface FastCgiPoolStats {
  address: string;
  maxConnections: number;
  /** open connections, busy and idle */
  connections: number;
  busy: number;
  idle: number;
  /** connections being opened */
  connecting: number;
  queued: number;
  /** connections opened since the start: with keep-alive, far fewer than requests */
  opened: number;
  requests: number;
  /** requests sent again on a new connection because a kept one had closed (see request()) */
  retries: number;
  /** requests written behind a running one (pipelining; queueBehindMs) */
  pipelined: number;
  /**
   * The connections opened at most for now: maxConnections, or fewer once php-fpm was seen serving
   * fewer at once (a connection stalled in its accept queue); it grows again while a probe finds a
   * free php-fpm child (see #release() and #probe())
   */
  capacity: number;
  /**
   * idle connections closed because another one waited in the server's accept queue: when this
   * grows, maxConnections is above php-fpm's pm.max_children (see #release())
   */
  stalls: number;
  /** connections closed at maxConnectionAgeMs, so that php-fpm's children take turns with other clients */
  recycled: number;
  /**
   * connections (among busy) half-closed after a script that goes on running after its response
   * (fastcgi_finish_request), until php-fpm closes them as it ends
   */
  lingering: number;
  errors: Record<string, number>;
  closing: boolean;
  /**
   * Why the address does not answer (no socket file, connection refused), from the last attempt to
   * connect; null once a connection succeeds. Tried again every RECHECK_MS meanwhile.
   */
  unreachable: string | null;
}

export interface FastCgiClientPoolEvents {
  'connection:open': [{ connections: number }];
  'connection:close': [{ connections: number; error: Error | null }];
  'pool:queue-full': [{ queued: number }];
}

/** A request already written behind a running one (pipelining), as a waiter gets it. */
class QueuedCall {
  constructor(readonly run: FastCgiRun) {}
}

interface Waiter {
  settled: boolean;
  resolve(outcome: FastCgiConnection | QueuedCall): void;
  /** queues the waiter's request behind the one `connection` runs; null when it may not be queued */
  queueOn: ((connection: FastCgiConnection) => FastCgiRun | null) | null;
  /** only a new connection will do (a request sent again after a kept one closed under it) */
  fresh: boolean;
  reject(error: Error): void;
  timer: NodeJS.Timeout | null;
  signal: CancelSignal | null;
  onAbort: () => void;
}

interface ResolvedOptions {
  maxConnections: number;
  maxQueue: number;
  queueTimeoutMs: number;
  connectTimeoutMs: number;
  readTimeoutMs: number;
  abortTimeoutMs: number;
  idleTimeoutMs: number;
  maxConnectionAgeMs: number;
  stallTimeoutMs: number;
  queueBehindMs: number;
  relearnAfterIdleMs: number;
  limits: CgiHeadLimits;
  logger: Logger;
}

const KNOWN_OPTIONS = [
  'address',
  'maxConnections',
  'maxQueue',
  'queueTimeoutMs',
  'connectTimeoutMs',
  'readTimeoutMs',
  'abortTimeoutMs',
  'idleTimeoutMs',
  'maxConnectionAgeMs',
  'stallTimeoutMs',
  'maxHeaderBytes',
  'maxHeaderCount',
  'queueBehindMs',
  'relearnAfterIdleMs',
  'logger',
];

function integer(
  options: FastCgiClientPoolOptions,
  key: keyof FastCgiClientPoolOptions,
  fallback: number,
  min: number,
) {
  const value = options[key] ?? fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new InvalidFastCgiOptionError(key, `must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function resolveOptions(options: FastCgiClientPoolOptions): ResolvedOptions {
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.includes(key)) {
      throw new InvalidFastCgiOptionError(
        key,
        `is not a FastCGI client option; known options: ${KNOWN_OPTIONS.join(', ')}`,
      );
    }
  }
  return {
    maxConnections: integer(options, 'maxConnections', DEFAULT_MAX_CONNECTIONS, 1),
    maxQueue: integer(options, 'maxQueue', DEFAULT_MAX_QUEUE, 0),
    queueTimeoutMs: integer(options, 'queueTimeoutMs', DEFAULT_QUEUE_TIMEOUT_MS, 1),
    connectTimeoutMs: integer(options, 'connectTimeoutMs', DEFAULT_CONNECT_TIMEOUT_MS, 1),
    readTimeoutMs: integer(options, 'readTimeoutMs', DEFAULT_READ_TIMEOUT_MS, 0),
    abortTimeoutMs: integer(options, 'abortTimeoutMs', DEFAULT_ABORT_TIMEOUT_MS, 0),
    idleTimeoutMs: integer(options, 'idleTimeoutMs', DEFAULT_IDLE_TIMEOUT_MS, 0),
    maxConnectionAgeMs: integer(options, 'maxConnectionAgeMs', DEFAULT_MAX_CONNECTION_AGE_MS, 0),
    stallTimeoutMs: integer(options, 'stallTimeoutMs', 0, 0),
    queueBehindMs: integer(options, 'queueBehindMs', DEFAULT_QUEUE_BEHIND_MS, 0),
    relearnAfterIdleMs: integer(options, 'relearnAfterIdleMs', RELEARN_AFTER_IDLE_MS, 0),
    limits: {
      ...(options.maxHeaderBytes === undefined ? {} : { maxHeaderBytes: integer(options, 'maxHeaderBytes', 0, 64) }),
      ...(options.maxHeaderCount === undefined ? {} : { maxHeaderCount: integer(options, 'maxHeaderCount', 0, 1) }),
    },
    logger: options.logger ?? SILENT_LOGGER,
  };
}

export function createFastCgiClientPool(options: FastCgiClientPoolOptions): FastCgiClientPool {
  return new FastCgiClientPool(options);
}

export class FastCgiClientPool extends EventEmitter<FastCgiClientPoolEvents> {
  readonly address: FastCgiAddress;
  readonly #where: string;
  readonly #options: ResolvedOptions;
  readonly #all = new Set<FastCgiConnection>();
  /** idle connections, most recently used last */
  readonly #idle: FastCgiConnection[] = [];
  readonly #idleTimers = new Map<FastCgiConnection, NodeJS.Timeout>();
  readonly #waiters: Waiter[] = [];
  #connecting = 0;
  #opened = 0;
  #requests = 0;
  #retries = 0;
  #pipelined = 0;
  /** how long each script usually runs, over all connections (pipelining) */
  readonly #scriptDurations = new ScriptDurations();
  /** the scripts that keep their child busy after END_REQUEST (fastcgi_finish_request) */
  readonly #lingeringScripts: LingeringScripts;
  #stalls = 0;
  #recycled = 0;
  /** the connections php-fpm is taken to serve at once (≤ maxConnections): see stats().capacity */
  #capacity: number;
  /** the probe's connection while it waits for php-fpm to answer (see #probe()) */
  #probing: FastCgiConnection | 'connecting' | null = null;
  /** connections of this pool that closed while the probe waited: a child it freed may answer it */
  #closedWhileProbing = 0;
  /** connections closed to make way in this turn of the event loop (see #lowerAfterReads()) */
  #freedForWaiting = 0;
  /** this pool and the other pools of the process connected to the same address */
  readonly #siblings: Set<FastCgiClientPool>;
  /** when a request last began or ended (performance.now()): see RELEARN_AFTER_IDLE_MS */
  #activeAt = performance.now();
  /** the log said once that php-fpm serves fewer connections than maxConnections */
  #capacityReported = false;
  readonly #errors: Record<string, number> = Object.create(null);
  #closing = false;
  /** set by releaseIdle(): a connection whose request ends closes unless a request waits for it */
  #keepNone = false;
  #unreachable: FastCgiConnectFailedError | null = null;
  #recheck: NodeJS.Timeout | null = null;
  #drained: (() => void) | null = null;

  constructor(options: FastCgiClientPoolOptions) {
    super();
    if (options === null || typeof options !== 'object') {
      throw new InvalidFastCgiOptionError(
        'address',
        'options must be an object such as { address: "unix:/run/php/php-fpm.sock" }',
      );
    }
    this.address =
      typeof options.address === 'string' ? parseFastCgiAddress(options.address, 'address') : options.address;
    if (this.address === undefined) throw new InvalidFastCgiOptionError('address', 'is required');
    this.#where = formatFastCgiAddress(this.address);
    this.#options = resolveOptions(options);
    this.#capacity = this.#options.maxConnections;
    this.#lingeringScripts = new LingeringScripts((script) =>
      this.#options.logger.info(
        { address: this.#where, script },
        `${script} goes on running after its response (fastcgi_finish_request): its connection to php-fpm ` +
          'is closed after it instead of reused, so that the next request does not wait for it',
      ),
    );
    const siblings = poolsByAddress.get(this.#where) ?? new Set<FastCgiClientPool>();
    poolsByAddress.set(this.#where, siblings);
    siblings.add(this);
    this.#siblings = siblings;
  }

  get maxConnections(): number {
    return this.#options.maxConnections;
  }

  /**
   * Runs one request and resolves with its CGI head and streamed body. A request that fails on a
   * kept-alive connection before any byte came back is sent again once, on a new connection, when
   * its body can be sent again (none, bytes, or a stream not yet read): php-fpm closes a kept
   * connection after pm.max_requests right after an END_REQUEST, and the next request written to
   * it meets a closed socket. Never on another kept one: with a small pm.max_requests that one's
   * child may be at its last request too, and the retry would fail as well.
   */
  async request(request: FastCgiPoolRequest): Promise<FastCgiResponse> {
    this.#requests++;
    try {
      for (let attempt = 0, queuedRetries = 0; ; attempt++) {
        const reader = new CgiResponseReader(
          this.#options.limits,
          request.bufferBytes ?? 0,
          request.recycleBody === true,
        );
        const options: FastCgiRequestOptions = {
          params: request.params,
          stdin: request.stdin,
          readTimeoutMs: this.#options.readTimeoutMs,
          abortTimeoutMs: this.#options.abortTimeoutMs,
          stallTimeoutMs: this.#options.stallTimeoutMs,
          onStderr: request.onStderr ?? this.#logStderr,
          signal: request.signal ?? null,
          script: request.script ?? null,
        };
        const call = await this.#run(request, options, reader, attempt > 0 || queuedRetries > 0);
        try {
          const result = await reader.response;
          const response: FastCgiResponse = {
            status: result.status,
            statusText: result.statusText,
            headers: result.headers,
            localRedirect: result.localRedirect,
            body: result.body,
            done: call.done,
          };
          if (result.release !== undefined) response.release = result.release;
          return response;
        } catch (error) {
          // queued behind a request whose connection closed first: nothing of it ran
          if (error instanceof QueuedRequestNotRunError && !this.#closing && queuedRetries++ < MAX_QUEUED_RETRIES) {
            this.#retries++;
            attempt--;
            continue;
          }
          if (attempt === 0 && this.#canRetry(error, call, request)) {
            this.#retries++;
            continue;
          }
          throw error;
        }
      }
    } catch (error) {
      const code = isWarmpoolError(error) ? error.code : 'other';
      this.#errors[code] = (this.#errors[code] ?? 0) + 1;
      throw error;
    }
  }

  /**
   * Starts the request on a connection of its own, or queues it behind a running one (pipelining:
   * every connection busy, none may open, nothing waits, and the request is replayable).
   */
  async #run(request: FastCgiPoolRequest, options: FastCgiRequestOptions, reader: CgiResponseReader, fresh: boolean) {
    this.#relearnAfterIdle();
    // the closure only when the request may wait (no idle connection, none may open) and be queued
    let queueOn: Waiter['queueOn'] = null;
    const atCapacity = this.#idle.length === 0 && !this.#mayOpen();
    // php-fpm may have a free child by now (dynamic pm adds them): the request need not wait or queue
    if (atCapacity && this.#capacity < this.maxConnections) this.#probe();
    if (!fresh && request.replayable === true && this.#options.queueBehindMs > 0 && atCapacity) {
      queueOn = (connection) => this.#queueOn(connection, request, options, reader);
      if (this.#waiters.length === 0) {
        const queued = this.#queueBehindAny(queueOn);
        if (queued !== null) return queued;
      }
    }
    const acquired = await this.#acquire(request.signal ?? null, queueOn, fresh);
    if (acquired instanceof QueuedCall) return acquired.run;
    let run: FastCgiRun;
    try {
      run = acquired.start(options, reader);
    } catch (error) {
      this.#release(acquired); // nothing was sent
      throw error;
    }
    if (this.#siblings.size > 1 && acquired.requests === 0) this.#watchNew(acquired);
    // the place behind this request goes to a waiter at once
    if (this.#waiters.length > 0) this.#offerQueueSlot(acquired);
    return run;
  }

  /** A capacity learnt before a quiet spell goes back to maxConnections (RELEARN_AFTER_IDLE_MS). */
  #relearnAfterIdle(): void {
    const now = performance.now();
    this.#resetIfQuiet(now);
    this.#activeAt = now;
  }

  /** The reset itself, also when the stats are read (`warmpool workers` after a quiet spell). */
  #resetIfQuiet(now: number): void {
    const relearnMs = this.#options.relearnAfterIdleMs;
    const quiet = relearnMs > 0 && now - this.#activeAt >= relearnMs;
    if (!quiet || this.#capacity >= this.maxConnections) return;
    if (this.#all.size !== this.#idle.length || this.#waiters.length > 0) return; // something still runs
    this.#capacity = this.maxConnections;
  }

  #queueOn(
    connection: FastCgiConnection,
    request: FastCgiPoolRequest,
    options: FastCgiRequestOptions,
    reader: CgiResponseReader,
  ): FastCgiRun | null {
    if (this.#closing || !connection.queuesBehind(request.stdin, this.#options.queueBehindMs, this.#guessing))
      return null;
    this.#pipelined++;
    return connection.queue(options, reader);
  }

  /** The busy connection whose request began first, if one queues this request behind it. */
  #queueBehindAny(queueOn: (connection: FastCgiConnection) => FastCgiRun | null): FastCgiRun | null {
    let oldest: FastCgiConnection | null = null;
    for (const connection of this.#all) {
      if (connection.state === 'busy' && (oldest === null || connection.runningMs > oldest.runningMs)) {
        if (connection.queuesBehind(null, this.#options.queueBehindMs, this.#guessing)) oldest = connection;
      }
    }
    return oldest === null ? null : queueOn(oldest);
  }

  /**
   * A connection went on to the request queued on it: the first waiter whose request may be
   * queued takes the place behind (it is written at once: nothing else can take it meanwhile).
   */
  #offerQueueSlot(connection: FastCgiConnection): void {
    for (const waiter of this.#waiters) {
      if (waiter.queueOn === null || waiter.settled || waiter.signal?.aborted === true) continue;
      const run = waiter.queueOn(connection);
      if (run !== null) this.#settle(waiter, new QueuedCall(run));
      return;
    }
  }

  /**
   * The capacity is below maxConnections: a guess that php-fpm has fewer children, maybe wrong (a
   * probe checks it). A request is then queued only behind a script timed as short: behind one
   * not yet timed it could wait for a slow script while a child is free.
   */
  get #guessing(): boolean {
    return this.#capacity < this.maxConnections;
  }

  #mayOpen(): boolean {
    return this.#all.size + this.#connecting < this.#capacity;
  }

  #canRetry(error: unknown, call: FastCgiRun, request: FastCgiPoolRequest): boolean {
    return (
      error instanceof FastCgiConnectionClosedError &&
      call.reusedConnection &&
      call.bytesReceived === 0 &&
      !call.stdinStarted &&
      !this.#closing &&
      request.signal?.aborted !== true
    );
  }

  readonly #logStderr = (line: string) => this.#options.logger.warn({ address: this.#where, line }, 'php stderr');

  /** FCGI_MAX_CONNS and the other management values, on a connection of their own. */
  getValues(): Promise<Record<string, string>> {
    return getFastCgiValues(this.address, {
      connectTimeoutMs: this.#options.connectTimeoutMs,
      readTimeoutMs: this.#options.readTimeoutMs || DEFAULT_READ_TIMEOUT_MS,
    });
  }

  stats(): FastCgiPoolStats {
    this.#resetIfQuiet(performance.now());
    const idle = this.#idle.length;
    return {
      address: this.#where,
      maxConnections: this.maxConnections,
      connections: this.#all.size,
      busy: this.#all.size - idle,
      idle,
      connecting: this.#connecting,
      queued: this.#waiters.length,
      opened: this.#opened,
      requests: this.#requests,
      retries: this.#retries,
      pipelined: this.#pipelined,
      capacity: this.#capacity,
      stalls: this.#stalls,
      recycled: this.#recycled,
      lingering: this.#countLingering(),
      errors: { ...this.#errors },
      closing: this.#closing,
      unreachable: this.#unreachable?.message ?? null,
    };
  }

  #countLingering(): number {
    let count = 0;
    for (const connection of this.#all) if (connection.state === 'lingering') count++;
    return count;
  }

  /**
   * Connects once and closes again: null when the address answers (an accept queue that is full
   * counts as answering), else why not. What a server says at start, and what /ready reflects.
   */
  async probe(): Promise<FastCgiConnectFailedError | null> {
    try {
      const connection = await connectFastCgi(this.address, { connectTimeoutMs: this.#options.connectTimeoutMs });
      connection.close();
      this.#reachable();
      return null;
    } catch (error) {
      if (!(error instanceof FastCgiConnectFailedError)) return null;
      this.#notReachable(error);
      return error;
    }
  }

  /** The address answers: for every pool of this process connected to it (one php-fpm, several sites). */
  #reachable(): void {
    for (const pool of this.#siblings) {
      pool.#unreachable = null;
      pool.#stopRecheck();
    }
  }

  #stopRecheck(): void {
    if (this.#recheck !== null) clearInterval(this.#recheck);
    this.#recheck = null;
  }

  /**
   * The address does not answer: for every pool of this process connected to it, so that each
   * site's health says so at once, not after its own next request fails.
   */
  #notReachable(error: FastCgiConnectFailedError): void {
    for (const pool of this.#siblings) {
      pool.#unreachable = error;
      if (pool.#recheck !== null || pool.#closing) continue;
      // with no traffic nothing else would notice the backend coming back (a health check alone)
      pool.#recheck = setInterval(() => void pool.probe(), RECHECK_MS);
      pool.#recheck.unref();
    }
  }

  /**
   * Gives php-fpm its processes back while requests still run: idle connections close now, and from
   * now on a connection whose request ends closes instead of waiting idle (a queued request still
   * takes it). php-fpm serves one connection per child, so an idle kept-alive connection pins a child:
   * a draining server calls this at the start of its drain, so that the server taking over (the
   * other colour of a blue-green swap, sharing the php-fpm) gets those children at once.
   */
  releaseIdle(): void {
    this.#keepNone = true;
    for (const connection of this.#idle.splice(0)) this.#closeIdle(connection);
  }

  /**
   * Stops taking requests: waiting ones fail with WP_FASTCGI_CLOSED, idle connections close now,
   * busy ones once their request ends. Resolves when every connection is closed.
   */
  async close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = true;
      this.#siblings.delete(this);
      if (this.#siblings.size === 0) poolsByAddress.delete(this.#where);
      this.#stopRecheck();
      if (this.#probing instanceof FastCgiConnection) this.#probing.destroy();
      for (const waiter of this.#waiters.splice(0)) this.#settle(waiter, new FastCgiClosedError());
      for (const connection of this.#idle.splice(0)) this.#closeIdle(connection);
      // nothing more to learn from a script still running after its response
      for (const connection of this.#all) if (connection.state === 'lingering') connection.destroy();
    }
    if (this.#all.size === 0 && this.#connecting === 0) return;
    await new Promise<void>((resolve) => {
      const previous = this.#drained;
      this.#drained = () => {
        previous?.();
        resolve();
      };
    });
  }

  // ---- lending connections ----

  async #acquire(
    signal: CancelSignal | null,
    queueOn: Waiter['queueOn'] = null,
    fresh = false,
  ): Promise<FastCgiConnection | QueuedCall> {
    if (this.#closing) throw new FastCgiClosedError();
    if (signal?.aborted) throw new FastCgiAbortedError('the request was aborted before it got a connection');
    const idle = fresh ? null : this.#takeIdle();
    if (idle !== null) return idle;
    // a new one in place of an idle one (its php-fpm child goes back to the accept queue)
    if (fresh && !this.#mayOpen() && this.#idle.length > 0) this.#closeIdle(this.#idle.shift()!);
    if (this.#mayOpen()) return this.#open(signal);
    if (this.#waiters.length >= this.#options.maxQueue) {
      this.emit('pool:queue-full', { queued: this.#waiters.length });
      throw new FastCgiQueueFullError(
        `${this.#waiters.length} requests already wait for one of the ${this.maxConnections} FastCGI connections to ${this.#where} (max_queue)`,
        { address: this.#where, queued: this.#waiters.length, maxConnections: this.maxConnections },
      );
    }
    return new Promise<FastCgiConnection | QueuedCall>((resolve, reject) => {
      const waiter: Waiter = {
        settled: false,
        resolve,
        queueOn,
        fresh,
        reject,
        timer: null,
        signal,
        onAbort: () =>
          this.#settle(waiter, new FastCgiAbortedError('the request was aborted while it waited for a connection')),
      };
      waiter.timer = setTimeout(
        () =>
          this.#settle(
            waiter,
            new FastCgiNoFreeConnectionError(
              `no FastCGI connection to ${this.#where} became free within ${this.#options.queueTimeoutMs} ms ` +
                `(${this.maxConnections} busy)`,
              { address: this.#where, queueTimeoutMs: this.#options.queueTimeoutMs },
            ),
          ),
        this.#options.queueTimeoutMs,
      );
      signal?.addEventListener('abort', waiter.onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  #takeIdle(): FastCgiConnection | null {
    const connection = this.#idle.pop();
    if (connection === undefined) return null;
    const timer = this.#idleTimers.get(connection);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.#idleTimers.delete(connection);
    }
    return connection;
  }

  /** Opens a connection for a caller (a request, or the first waiter when a connection died). */
  async #open(signal: CancelSignal | null): Promise<FastCgiConnection> {
    this.#connecting++;
    let connection: FastCgiConnection;
    try {
      connection = await connectFastCgi(this.address, {
        connectTimeoutMs: this.#options.connectTimeoutMs,
        scriptDurations: this.#scriptDurations,
        lingeringScripts: this.#lingeringScripts,
        ...(signal === null ? {} : { signal }),
      });
    } catch (error) {
      if (error instanceof FastCgiConnectFailedError) this.#notReachable(error);
      throw error;
    } finally {
      this.#connecting--;
    }
    if (this.#unreachable !== null) this.#reachable();
    this.#opened++;
    this.#all.add(connection);
    connection.on('idle', () => this.#release(connection));
    connection.on('advance', () => this.#offerQueueSlot(connection));
    connection.once('close', (error) => this.#forget(connection, error));
    this.emit('connection:open', { connections: this.#all.size });
    if (this.#closing) {
      connection.close();
      throw new FastCgiClosedError();
    }
    return connection;
  }

  /**
   * A request ended and the connection can take another: the first waiter gets it, or it idles.
   * Except when another connection still waits for its first byte. Its request may sit in php-fpm's
   * accept queue (maxConnections > pm.max_children), and a php-fpm child leaves a kept connection
   * only when it closes: so this one is closed rather than kept idle, and rather than handed to a
   * waiter once that wait passed STALL_MS (else a stream of waiters would starve the stalled one
   * until its read timeout), or once there are more connections than php-fpm is taken to serve.
   * A slow script with no output yet looks the same; that costs a reconnect.
   *
   * A stall also lowers the capacity to the connections php-fpm is known to serve: without that,
   * every request beyond pm.max_children would open a connection, stall, and close another, and
   * keep-alive would be lost for all of them (Debian's php-fpm pool has 5 children, maxConnections
   * defaults to 8). Known to serve: those that had an answer, and those still silent that were
   * made before one of them (php-fpm's children take connections from its accept queue in order),
   * so a script that works before it prints is not taken for a queued one while children are free.
   * A capacity guessed too low is raised again by #probe().
   */
  #release(connection: FastCgiConnection): void {
    if (connection.state !== 'idle') return;
    this.#activeAt = performance.now();
    const { waitedMs, accepted, queued } = this.#firstByteWaits();
    // each of these holds a php-fpm child: proof of at least that many
    if (accepted > this.#capacity) this.#capacity = accepted;
    // connections waiting longer than their script runs sit in its accept queue: no child for them
    if (queued > 0) this.#lower(Math.max(accepted, this.#all.size - queued));
    // another pool's new connection may wait for the child this one holds
    const groupWaitedMs = this.#siblings.size > 1 ? this.#siblingsFirstByteWaitMs(waitedMs) : waitedMs;
    if (groupWaitedMs !== null && !this.#closing) {
      if (this.#waiters.length === 0 || groupWaitedMs >= STALL_MS || this.#all.size > this.#capacity) {
        // this served connection makes way for the waiting one: php-fpm is taken to serve no more
        this.#stalls++;
        this.#closeIdle(connection);
        this.#lowerAfterReads();
        return;
      }
    }
    // old enough: its php-fpm child goes back to the accept queue, where others may wait (a waiter
    // of ours gets a new connection once this one is gone: #forget())
    const ageLeftMs = this.#ageLeftMs(connection);
    if (ageLeftMs <= 0) {
      this.#recycled++;
      this.#closeIdle(connection);
      return;
    }
    const waiter = this.#waiters[0];
    if (waiter?.fresh === true) {
      // it waits for a new connection: this one makes way (#forget() opens it one)
      this.#closeIdle(connection);
      return;
    }
    if (waiter !== undefined) {
      this.#settle(waiter, connection);
      return;
    }
    if (this.#closing || this.#keepNone) {
      this.#closeIdle(connection);
      return;
    }
    this.#idle.push(connection);
    const idleMs = Math.min(this.#options.idleTimeoutMs > 0 ? this.#options.idleTimeoutMs : Infinity, ageLeftMs);
    if (idleMs !== Infinity) {
      const timer = setTimeout(() => {
        this.#idleTimers.delete(connection);
        const at = this.#idle.indexOf(connection);
        if (at !== -1) this.#idle.splice(at, 1);
        connection.close();
      }, idleMs);
      timer.unref();
      this.#idleTimers.set(connection, timer);
    }
  }

  /**
   * A connection was closed to make way for one still without an answer: once the reads of this
   * turn of the event loop are done (answers that came together are all read by then, in whatever
   * order), the capacity comes down to the connections known to hold a php-fpm child, and the one
   * each such close freed.
   */
  #lowerAfterReads(): void {
    this.#freedForWaiting++;
    if (this.#freedForWaiting > 1) return;
    setImmediate(() => {
      const freed = this.#freedForWaiting;
      this.#freedForWaiting = 0;
      if (this.#closing) return;
      const { waitedMs, accepted } = this.#firstByteWaits();
      if (waitedMs !== null) this.#lower(accepted + freed);
    });
  }

  /**
   * The capacity comes down to `capacity`, a guess (a script still working before it prints looks
   * like a connection in the accept queue): a probe checks it at once, so a child that is free in
   * fact is used again before requests wait for one.
   */
  #lower(capacity: number): void {
    if (capacity >= this.#capacity) return;
    this.#capacity = capacity;
    this.#probe();
  }

  /** How long the connection may still be kept (Infinity: maxConnectionAgeMs 0). */
  #ageLeftMs(connection: FastCgiConnection): number {
    const maxAgeMs = this.#options.maxConnectionAgeMs;
    return maxAgeMs > 0 ? connection.openedAt + maxAgeMs - performance.now() : Infinity;
  }

  /**
   * The longest wait of a connection for its first byte (null: none waits); how many connections
   * are known to hold a php-fpm child (accepted, at least 1: the one just released): those that had
   * an answer, and those still waiting that were made before the newest of them, as php-fpm's
   * children accept connections in order; and how many of the others have waited longer than their
   * script usually runs (queued: likely in php-fpm's accept queue, not a slow first page).
   */
  #firstByteWaits(): { waitedMs: number | null; accepted: number; queued: number } {
    let waitedMs: number | null = null;
    let served = 0;
    let newestServedAt = Number.NEGATIVE_INFINITY;
    for (const other of this.#all) {
      const wait = other.firstByteWaitMs;
      if (wait === null) {
        served++;
        if (other.openedAt > newestServedAt) newestServedAt = other.openedAt;
      } else if (waitedMs === null || wait > waitedMs) waitedMs = wait;
    }
    let accepted = served;
    let queued = 0;
    if (waitedMs !== null) {
      for (const other of this.#all) {
        if (other.firstByteWaitMs === null) continue;
        if (other.openedAt < newestServedAt) accepted++;
        else if (other.likelyQueued) queued++;
      }
    }
    return { waitedMs, accepted: Math.max(1, accepted), queued };
  }

  /** The longest first-byte wait over the connections of every pool to this address. */
  #siblingsFirstByteWaitMs(own: number | null): number | null {
    let longest = own;
    for (const sibling of this.#siblings) {
      const wait = sibling === this ? null : sibling.#firstByteWaits().waitedMs;
      if (wait !== null && (longest === null || wait > longest)) longest = wait;
    }
    return longest;
  }

  /**
   * A new connection of this pool, with other pools to the same address: if it has no answer
   * after SIBLING_STALL_MS, another pool closes the connection it has kept idle the longest. An idle
   * connection is released by nothing else until its idle timeout, and its php-fpm child may be
   * the one this connection waits for in the accept queue.
   */
  #watchNew(connection: FastCgiConnection): void {
    const timer = setTimeout(() => {
      if (connection.firstByteWaitMs === null || this.#closing) return;
      for (const sibling of this.#siblings) {
        // #idle: most recently used last, so [0] has been idle the longest
        const idle = sibling === this ? undefined : sibling.#idle.shift();
        if (idle === undefined) continue;
        sibling.#stalls++;
        sibling.#closeIdle(idle);
        return;
      }
    }, SIBLING_STALL_MS);
    timer.unref();
  }

  /**
   * With the capacity below maxConnections and a request about to wait: asks php-fpm, on a
   * connection of its own, for GET_VALUES. A free child answers at once; with none, the probe waits
   * in php-fpm's accept queue until a child comes free (php-fpm's dynamic pm adds children while
   * all are busy, another client lets one go), and its answer raises the capacity by one (unless a
   * connection of this pool closed meanwhile: its child may be the one that answered). The answer
   * also proves more: php-fpm's children take connections from its accept queue in order, so every
   * connection made before the probe that is still open holds a child of its own, beside the one
   * that answered. Only one probe is ever out, and it never times out: a probe given up would stay
   * in the accept queue, one more each time, until php-fpm's listen.backlog is full.
   */
  #probe(): void {
    if (this.#probing !== null || this.#closing) return;
    this.#probing = 'connecting';
    this.#closedWhileProbing = 0;
    const startedAt = performance.now();
    const report = setTimeout(() => this.#reportCapacity(), PROBE_REPORT_MS);
    report.unref();
    connectFastCgi(this.address, { connectTimeoutMs: this.#options.connectTimeoutMs })
      .then((connection) => {
        if (this.#closing) {
          connection.close();
          throw new FastCgiClosedError();
        }
        this.#probing = connection;
        return connection.getValues(PROBE_VALUE_NAMES, 0);
      })
      .then(
        () => {
          clearTimeout(report);
          this.#probing = null;
          if (this.#closing) return;
          // a child that one of our own connections let go is no child more than the capacity
          if (this.#closedWhileProbing === 0 && this.#capacity < this.maxConnections) this.#capacity++;
          const servedBefore = this.#openedBefore(startedAt) + 1;
          if (servedBefore > this.#capacity) this.#capacity = Math.min(this.maxConnections, servedBefore);
          this.#openForWaiter();
          // requests still wait: ask again (this answer may have found a child a connection made
          // after the probe took; the next probe comes after that one in the accept queue)
          if (this.#waiters.length > 0 && this.#capacity < this.maxConnections) this.#probe();
        },
        () => {
          // refused or closed (php-fpm restarting, the pool closing): the next wait probes again
          clearTimeout(report);
          this.#probing = null;
        },
      );
  }

  /** The open connections made before `at` (performance.now()): ahead of a probe made then. */
  #openedBefore(at: number): number {
    let count = 0;
    for (const connection of this.#all) if (connection.openedAt < at) count++;
    return count;
  }

  /** Tells the operator, once, that php-fpm serves fewer connections than maxConnections. */
  #reportCapacity(): void {
    if (this.#capacityReported || this.#closing) return;
    this.#capacityReported = true;
    // no count of children: while scripts run before they print, how many php-fpm has is a guess
    // (a probe said 2 or 3 of a static pool of 4), and an operator would size things after it
    const held = this.#all.size;
    const keeps =
      'so warmpool keeps to the connections it gets and queues the rest (`warmpool workers` shows how many)';
    const others = [...this.#siblings].filter((sibling) => sibling !== this && !sibling.#closing);
    if (others.length > 0) {
      // the sites of this server that pass to the same php-fpm share its children
      const together = others.reduce((sum, sibling) => sum + sibling.maxConnections, this.maxConnections);
      const theirs = others.reduce((sum, sibling) => sum + sibling.#all.size, 0);
      this.#options.logger.warn(
        {
          address: this.#where,
          capacity: this.#capacity,
          maxConnections: this.maxConnections,
          connections: held,
          otherSites: others.length,
          otherConnections: theirs,
        },
        `php-fpm at ${this.#where} had no child free for another connection while this site held ${held}: ` +
          `${others.length} other site${others.length === 1 ? '' : 's'} of this server pass${others.length === 1 ? 'es' : ''} ` +
          `to the same php-fpm and held ${theirs} connection${theirs === 1 ? '' : 's'} to it, and their ` +
          `max_connections and this site's add up to ${together}; ${keeps}. To serve them all at once, give that ` +
          `php-fpm pool pm.max_children = ${together}, or each site a php-fpm pool of its own (its own listen socket)`,
      );
      return;
    }
    this.#options.logger.warn(
      { address: this.#where, capacity: this.#capacity, maxConnections: this.maxConnections, connections: held },
      `php-fpm at ${this.#where} had no child free for another connection while warmpool held ${held} of ` +
        `max_connections (${this.maxConnections}): php-fpm has fewer children (pm.max_children) than that, or ` +
        `clients outside warmpool (another server, a cron job through cgi-fcgi) hold some; ${keeps}. Set ` +
        "fastcgi.max_connections to php-fpm's pm.max_children, and give warmpool a php-fpm pool of its own",
    );
  }

  #closeIdle(connection: FastCgiConnection): void {
    const timer = this.#idleTimers.get(connection);
    if (timer !== undefined) clearTimeout(timer);
    this.#idleTimers.delete(connection);
    connection.close();
  }

  /** A connection closed (by us, by the server, or broken): forget it; a waiter may need a new one. */
  #forget(connection: FastCgiConnection, error: Error | null): void {
    this.#all.delete(connection);
    if (this.#probing !== null) this.#closedWhileProbing++;
    const at = this.#idle.indexOf(connection);
    if (at !== -1) this.#idle.splice(at, 1);
    const timer = this.#idleTimers.get(connection);
    if (timer !== undefined) clearTimeout(timer);
    this.#idleTimers.delete(connection);
    this.emit('connection:close', { connections: this.#all.size, error });
    this.#openForWaiter();
    if (this.#closing && this.#all.size === 0 && this.#connecting === 0) {
      const drained = this.#drained;
      this.#drained = null;
      drained?.();
    }
  }

  /** The first waiter gets a new connection, when one may open. */
  #openForWaiter(): void {
    if (this.#waiters.length === 0 || this.#closing || !this.#mayOpen()) return;
    const waiter = this.#waiters.shift()!;
    this.#open(waiter.signal).then(
      (opened) => this.#settle(waiter, opened),
      (openError: Error) => this.#settle(waiter, openError),
    );
  }

  /** Ends a wait: with a connection, or with an error (a connection handed to a gone waiter is released). */
  #settle(waiter: Waiter, outcome: FastCgiConnection | QueuedCall | Error): void {
    if (waiter.settled) {
      // it timed out or was aborted while a connection was being opened for it
      if (outcome instanceof FastCgiConnection) this.#release(outcome);
      return;
    }
    waiter.settled = true;
    const at = this.#waiters.indexOf(waiter);
    if (at !== -1) this.#waiters.splice(at, 1);
    if (waiter.timer !== null) clearTimeout(waiter.timer);
    waiter.timer = null;
    waiter.signal?.removeEventListener('abort', waiter.onAbort);
    if (outcome instanceof Error) {
      waiter.reject(outcome);
      return;
    }
    if (waiter.signal?.aborted && outcome instanceof FastCgiConnection) {
      waiter.reject(new FastCgiAbortedError('the request was aborted while it waited for a connection'));
      this.#release(outcome);
      return;
    }
    waiter.resolve(outcome);
  }
}
