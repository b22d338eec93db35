import { Cancellation, type CancelSignal } from '../cancel.js';
import { EventEmitter } from 'node:events';
import {
  BootFailedError,
  CommandNotFoundError,
  ExecAbortedError,
  NoFreeWorkerError,
  PoolClosedError,
  PoolNotStartedError,
  QueueFullError,
  type WarmpoolError,
  WorkersDownError,
} from '../errors.js';
import { QUEUE_PER_WORKER, resolvePoolOptions, type PoolOptions, type ResolvedPoolOptions } from '../options.js';
import type { PoolEvents, PoolStats, WorkerInfo } from '../stats.js';
import {
  describeSizing,
  readCpuSample,
  readMachineLimits,
  readWorkerMemory,
  recommendWorkers,
  diffCpuSamples,
  ioWaitShare,
  type SizingResult,
} from '../sizing/index.js';
import { readRss } from '../supervisor/rss.js';
import { Supervisor } from '../supervisor/supervisor.js';
import { WORKER_STATES, type RecycleReason, type WorkerState } from '../worker/state.js';
import { GoridgeDriver } from '../worker/goridge-driver.js';
import type { ExecOptions, PoolWorker, WorkerDriver, WorkerHooks } from '../worker/pool-worker.js';
import type { ExecReply, ExecRequest } from '../worker/worker.js';
import { BootBackoff, jobLimitWithJitter } from './allocator.js';
import { fateOf } from './fate.js';
import { FreeList } from './free-list.js';

export interface PoolExecOptions {
  /** aborted when the caller no longer wants the reply (its client went away) */
  signal?: CancelSignal;
  /** what the request is ("GET /path"), for the slow-request warning, overload lines and `warmpool workers` */
  label?: string;
}

/** How many times one request follows workers that reply {"stop":true} before it fails. */
const MAX_STOP_RETRIES = 8;

/**
 * The warm pool: exec → take a ready worker (or queue) → run → release by the fate table.
 * Workers that leave service are replaced; reset() rolls one worker at a time; close() drains.
 *
 * `Req` and `Rep` are what its workers take and give (goridge frames by default; FastCGI requests
 * for php-cgi workers, worker/cgi-driver.ts): the pool passes them through and knows neither.
 */
/** How often a worker past max_jobs tries a fresh replacement while boots fail. */
export const REPLACE_RETRY_MS = 10_000;

export class Pool<Req = ExecRequest, Rep = ExecReply> extends EventEmitter<PoolEvents> {
  readonly options: ResolvedPoolOptions<Req>;
  readonly #driver: WorkerDriver<Req, Rep>;
  readonly #free: FreeList<Worker<Req, Rep>>;
  /** every worker not yet exited, retired ones included */
  readonly #workers = new Set<Worker<Req, Rep>>();
  /** requests run again because their worker went away before they began (see exec()) */
  readonly #sentAgain = new WeakSet<object>();
  readonly #hooks: WorkerHooks<Worker<Req, Rep>>;
  readonly #execOptions: ExecOptions;
  readonly #backoff = new BootBackoff();
  #opened = false;
  #supervisor: Supervisor | null = null;
  #booting = 0;
  #inFlight = 0;
  /** workers to keep live: num_workers, the measured size, or a dynamic pool's current size */
  #target: number;
  #sizing: SizingResult | null = null;
  #started = false;
  #closing = false;
  #closed: Promise<void> | null = null;
  #resetting: Promise<void> | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #bootError: Error | null = null;
  /** workers at max_jobs out of service while their replacement boots (#recycleAtJobLimit) */
  readonly #held = new WeakSet<Worker<Req, Rep>>();
  #bootFailures = 0;
  /** when a worker past max_jobs may next try a fresh one while boots fail (#recycleAtJobLimit) */
  #replaceAt = 0;
  /** when the pending boot retry runs (Date.now() ms) */
  #retryAt = 0;
  #requests = 0;
  #pipelined = 0;
  readonly #errors: Record<string, number> = {};
  readonly #recycles: Partial<Record<RecycleReason, number>> = {};
  #onIdle: (() => void) | null = null;
  /** fired by close() once the requests are done: a worker still booting is not waited for */
  readonly #bootsCancelled = new Cancellation();

  /** `driver` starts the workers: goridge (RoadRunner's protocol) unless another is given. */
  constructor(options: PoolOptions<Req> | ResolvedPoolOptions<Req>, driver?: WorkerDriver<Req, Rep>) {
    super();
    this.options = 'argv' in options ? options : resolvePoolOptions(options);
    this.#driver = driver ?? (new GoridgeDriver() as unknown as WorkerDriver<Req, Rep>);
    this.#execOptions = { timeoutMs: this.options.execTtlMs };
    const { numWorkers, dynamic } = this.options;
    // A dynamic pool starts with at least one worker (it proves the command boots and serves the
    // first request warm); idle scale-down takes it to min_workers, even zero.
    this.#target = dynamic !== null ? Math.max(1, dynamic.minWorkers) : numWorkers === 'auto' ? 1 : numWorkers;
    this.#free = new FreeList(this.options.allocateTimeoutMs, (waitedMs) => this.#noFreeWorker(waitedMs));
    this.#hooks = {
      execEnd: (worker, error) => this.#onExecEnd(worker, error),
      exit: (worker) => this.#onWorkerExit(worker),
    };
  }

  /**
   * Boots num_workers in parallel. Rejects when the command cannot run at all (not found, or every
   * first boot failed), after cleaning up; a partial failure is retried in the background. When
   * `signal` fires before the boot is over, the pool closes (workers still booting are killed) and
   * start() rejects with PoolClosedError. `keepTrying`: when every first boot fails (but the command
   * is there, and num_workers is not auto), start() resolves with the pool down and retrying, as it
   * does when its workers stop booting later (a server of several sites serves the others meanwhile).
   */
  async start(signal?: CancelSignal, keepTrying = false): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    // a stop during the boot (SIGTERM to a server still booting) closes the pool: no wait for allocate_timeout
    const stop = () => void this.close();
    signal?.addEventListener('abort', stop, { once: true });
    try {
      if (signal?.aborted === true) stop();
      this.#throwIfClosing();
      await this.#driver.open(this.options);
      this.#opened = true;
      await this.#bootTarget(keepTrying && this.options.numWorkers !== 'auto');
      this.#throwIfClosing();
      if (this.options.numWorkers === 'auto') {
        this.#target = await this.#measureSize();
        await this.#bootTarget();
        this.#throwIfClosing();
      }
    } finally {
      signal?.removeEventListener('abort', stop);
    }
    if (Supervisor.isNeeded(this.options)) {
      this.#supervisor = new Supervisor(this.options, {
        liveWorkers: () => this.#workers,
        booting: () => this.#booting,
        recycleIfIdle: (worker, reason) => this.#recycleIfIdle(worker as Worker<Req, Rep>, reason),
        scaleDown: (worker) => this.#scaleDown(worker as Worker<Req, Rep>),
        killOverMemory: (worker, rssBytes) => this.#killOverMemory(worker as Worker<Req, Rep>, rssBytes),
        silenceTimeoutMs: this.#driver.silenceTimeoutMs ?? 0,
      });
      this.#supervisor.start();
    }
  }

  /** start() ends here when the pool was closed while it booted. */
  #throwIfClosing(): void {
    if (this.#closing) throw new PoolClosedError('the pool was closed while its workers booted');
  }

  /** Boots up to the target in parallel; rejects (after cleaning up) when nothing could boot. */
  async #bootTarget(keepTrying = false): Promise<void> {
    const missing = this.#target - this.#live();
    if (missing <= 0) return;
    const results = await Promise.allSettled(Array.from({ length: missing }, () => this.#boot()));
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (
      (failures.length === results.length && this.#live() === 0 && !keepTrying) ||
      failures.some((f) => f.reason instanceof CommandNotFoundError)
    ) {
      await this.close();
      throw failures[0]!.reason;
    }
    for (const failure of failures) this.#scheduleRetry(failure.reason as Error);
  }

  /**
   * num_workers: auto. One worker is up: warm it with the configured requests, measure its memory
   * and CPU share, read the machine's limits, and choose min(cpu-based, ram-based) (sizing.ts).
   */
  async #measureSize(): Promise<number> {
    const limits = await readMachineLimits();
    const probe = [...this.#workers][0]!;
    const before = await readCpuSample(probe.pid);
    let busyMs = 0;
    for (const request of this.options.warmup) {
      const started = performance.now();
      await this.#driver.drain(await this.exec(request));
      busyMs += performance.now() - started;
    }
    const after = await readCpuSample(probe.pid);
    const window = diffCpuSamples(before, after);
    const memory = await readWorkerMemory(probe.pid);
    const input = {
      limits,
      worker: memory,
      ioShare: ioWaitShare(busyMs, window.cpuMs, window.runQueueMs),
      headroom: this.options.headroom,
    };
    const result = recommendWorkers(input);
    this.#sizing = result;
    const line = describeSizing(input, result);
    this.options.logger.info({ numWorkers: result.numWorkers, reason: 'auto' }, line);
    this.emit('pool:sized', { numWorkers: result.numWorkers, line });
    return result.numWorkers;
  }

  /**
   * Runs one request on a warm worker. Rejects with a typed error (see fate.ts and errors.ts).
   * `signal`: the caller gave up (its client went away). A queued request leaves the queue at once
   * and never reaches PHP; a running one is left to finish (a stream is cancelled by destroying it).
   * (A request queued behind a running one on a php-cgi worker is PHP's already: it runs, unread.)
   */
  async exec(request: Req, options?: PoolExecOptions): Promise<Rep> {
    const signal = options?.signal;
    const label = options?.label;
    // a literal of the options' one shape, not a spread: this runs for every request
    const execOptions: ExecOptions =
      label === undefined ? this.#execOptions : { timeoutMs: this.#execOptions.timeoutMs, label };
    for (let attempt = 0; ; attempt++) {
      if (this.#closing) throw new PoolClosedError();
      if (!this.#started) throw new PoolNotStartedError();
      if (signal?.aborted === true) throw abortedBeforeRun(signal.reason);
      // a free worker; else, every worker busy, one that queues the request behind its running one
      let worker = this.#free.take();
      // one that left service while idle (it asked to stop, or was killed for a frame it sent
      // unasked) stays listed until its exit: never hand it a request (that was a 502)
      while (worker !== null && worker.state !== 'ready') worker = this.#free.take();
      if (worker === null) {
        const down = this.#downError();
        if (down !== null) {
          this.#countError(down);
          throw down;
        }
        if (this.options.dynamic !== null) this.#scaleUp();
        worker = this.#queueBehind(request);
      }
      // in-flight counts from the hand-over: a waiter's worker was counted by #putWorker
      if (worker !== null) this.#inFlight++;
      else {
        try {
          worker = await this.#waitForWorker(signal, request);
        } catch (error) {
          this.#countError(error);
          throw error;
        }
        // (read again: the await above may have seen the abort)
        if ((signal as CancelSignal | undefined)?.aborted === true) {
          // aborted in the tick the worker was handed over: give it to the next request
          this.#inFlight--;
          if (worker.state === 'working') this.#offerQueueSlot(worker);
          else this.#putWorker(worker);
          this.#checkIdle();
          const error = abortedBeforeRun(signal!.reason);
          this.#countError(error);
          throw error;
        }
      }
      this.#requests++;
      if (worker.state === 'working') this.#pipelined++;
      try {
        const reply = worker.exec(request, execOptions);
        // it has begun (or queued) this request: the place behind it goes to a waiter at once
        this.#offerQueueSlot(worker);
        return await reply;
      } catch (error) {
        const fate = fateOf(error as Error);
        if ((fate === 'retry' || fate === 'requeue') && attempt < MAX_STOP_RETRIES) {
          // its worker went away before it began: it runs on a worker of its own, never queued
          // behind a running request, which may be its worker's last too (PHP_FCGI_MAX_REQUESTS)
          this.#sentAgain.add(request as object);
          continue;
        }
        this.#countError(error);
        throw error;
      }
    }
  }

  #countError(error: unknown): void {
    const code = (error as WarmpoolError).code ?? 'UNKNOWN';
    this.#errors[code] = (this.#errors[code] ?? 0) + 1;
  }

  /**
   * No worker is free and none waits: a busy worker that can queue the request behind its running
   * one (php-cgi pipelining, PoolWorker.canQueue), the one that began its request first; or null.
   */
  #queueBehind(request: Req): Worker<Req, Rep> | null {
    if (this.#free.waiting > 0 || this.#sentAgain.has(request as object)) return null;
    let best: Worker<Req, Rep> | null = null;
    for (const worker of this.#workers) {
      if (worker.canQueue === undefined) return null; // a pool's workers all speak the same
      if (worker.canQueue(request) && (best === null || worker.execStartedAt < best.execStartedAt)) best = worker;
    }
    return best;
  }

  /** A worker went on with the request queued behind: a waiter it can queue takes the free place. */
  #offerQueueSlot(worker: Worker<Req, Rep>): void {
    // checked once for the worker first: waiters are only walked when it has a place (about 30 of
    // them at 32 connections, on every request that began)
    if (this.#free.waiting === 0 || worker.canQueue === undefined || !worker.canQueue(null)) return;
    const mayQueue = (request: unknown) => !this.#sentAgain.has(request as object) && worker.canQueue!(request as Req);
    if (this.#free.offer(worker, mayQueue)) this.#inFlight++;
  }

  /** Makes a ready worker available: to the oldest waiter (counted in-flight from here) or the free list. */
  #putWorker(worker: Worker<Req, Rep>): void {
    if (this.#free.waiting > 0) this.#inFlight++;
    this.#free.put(worker);
  }

  /**
   * Rolling restart: for each worker, boot a fresh one first, then retire the old one (at once if
   * idle, after its request if busy), so capacity never drops. Busy old workers get reset_timeout.
   */
  reset(): Promise<void> {
    this.#resetting ??= this.#rollWorkers().finally(() => {
      this.#resetting = null;
    });
    return this.#resetting;
  }

  /** Stops taking requests, lets in-flight and queued ones finish (bounded by destroy_timeout), stops workers. */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Workers ready to take a request right now. */
  get readyCount(): number {
    return this.#free.readyCount;
  }

  stats(): PoolStats {
    const workers = Object.fromEntries(WORKER_STATES.map((s) => [s, 0])) as Record<WorkerState, number>;
    workers.booting = this.#booting;
    for (const worker of this.#workers) workers[worker.state]++;
    return {
      numWorkers: this.#target,
      workers,
      queued: this.#free.waiting,
      requests: this.#requests,
      pipelined: this.#pipelined,
      errors: { ...this.#errors },
      recycles: { ...this.#recycles },
      bootFailures: this.#bootFailures,
      bootError: this.#bootError?.message ?? null,
      closing: this.#closing,
    };
  }

  /** Every worker with a fresh RSS reading, for the CLI table and metrics. */
  async workers(): Promise<WorkerInfo[]> {
    const now = Date.now();
    const list = [...this.#workers];
    await Promise.all(
      list.map(async (w) => {
        w.rssBytes = await readRss(w.pid);
      }),
    );
    return list.map((w) => ({
      pid: w.pid,
      state: w.state,
      jobs: w.jobs,
      rssBytes: w.rssBytes,
      ageMs: now - w.createdAt,
      idleMs: w.lastUsedAt === 0 ? null : now - w.lastUsedAt,
      markedFor: w.markedFor,
      busyMs: w.busyMs + (w.state === 'working' ? now - w.execStartedAt : 0),
      requestMs: w.state === 'working' ? now - w.execStartedAt : null,
      request: w.state === 'working' ? w.execLabel : null,
    }));
  }

  /** Runs the supervisor's checks now (also done every watch_tick). */
  async supervise(): Promise<void> {
    await this.#supervisor?.tick();
  }

  // ---- allocation ----

  #live(): number {
    let live = this.#booting;
    for (const worker of this.#workers) if (worker.retiredFor === null && worker.state !== 'exited') live++;
    return live;
  }

  async #boot(): Promise<Worker<Req, Rep>> {
    this.#booting++;
    const startedAt = Date.now();
    let worker: Worker<Req, Rep>;
    try {
      worker = await this.#driver.spawn(this.#bootsCancelled);
    } catch (error) {
      this.#bootFailures++;
      this.#bootError = error as Error;
      throw error;
    } finally {
      this.#booting--;
    }
    this.#backoff.succeed();
    this.#bootError = null;
    worker.attach(this.#hooks);
    worker.jobLimit = jobLimitWithJitter(this.options.maxJobs);
    this.#workers.add(worker);
    this.options.logger.debug({ workerPid: worker.pid, state: 'ready' }, 'worker ready');
    this.emit('worker:ready', { pid: worker.pid, bootMs: Date.now() - startedAt });
    if (this.#closing && this.#free.waiting === 0) void worker.stop('shutdown');
    else this.#putWorker(worker);
    return worker;
  }

  /** What num_workers: auto measured at start; null otherwise. */
  get sizing(): SizingResult | null {
    return this.#sizing;
  }

  /** Keeps the target live: spawns what is missing unless a boot backoff is pending. */
  #ensureCapacity(): void {
    if (!this.#started || this.#closing || this.#retryTimer !== null || !this.#opened) return;
    for (let missing = this.#target - this.#live(); missing > 0; missing--) {
      this.#boot().catch((error: Error) => this.#scheduleRetry(error));
    }
  }

  #scheduleRetry(error: Error): void {
    if (this.#closing) return;
    // one step of backoff per round of boots: the workers of a round fail together (4 workers took
    // the wait to its 10 s ceiling in two rounds, and a 2 s outage became 10 s of 502)
    const sameRound = this.#retryTimer !== null;
    const retryInMs = sameRound ? Math.max(0, this.#retryAt - Date.now()) : this.#backoff.fail();
    this.options.logger.error(
      { reason: 'boot_failed', attempt: this.#backoff.failures, retryInMs, code: (error as WarmpoolError).code },
      `worker failed to boot (attempt ${this.#backoff.failures}); retrying in ${retryInMs}ms: ${error.message}`,
    );
    this.emit('pool:boot-failed', { error, attempt: this.#backoff.failures, retryInMs });
    if (this.#retryTimer === null) {
      this.#retryAt = Date.now() + retryInMs;
      this.#retryTimer = setTimeout(() => {
        this.#retryTimer = null;
        this.#ensureCapacity();
      }, retryInMs);
      this.#retryTimer.unref();
    }
    this.#failWaitersIfDown();
  }

  /**
   * Why no request can be served now, or null: no worker is alive, none is booting and the last
   * boot failed (its retry is pending). Waiting would only run into allocate_timeout.
   */
  #downError(): WorkersDownError | null {
    if (this.#retryTimer === null || this.#booting > 0 || this.#bootError === null) return null;
    for (const worker of this.#workers) if (worker.retiredFor === null && worker.state !== 'exited') return null;
    const attempts = Math.max(1, this.#backoff.failures);
    const nextInS = Math.max(0, (this.#retryAt - Date.now()) / 1000).toFixed(1);
    return new WorkersDownError(
      `no worker is running and workers cannot boot (the last ${attempts === 1 ? 'attempt' : `${attempts} attempts`} failed; ` +
        `next in ${nextInS} s, or at once with \`warmpool reset\`): ${this.#bootError.message}`,
      { cause: this.#bootError, details: { attempts } },
    );
  }

  /** The pool just learnt it cannot serve: the requests waiting fail now, not at allocate_timeout. */
  #failWaitersIfDown(): void {
    if (this.#free.waiting === 0) return;
    const down = this.#downError();
    if (down === null) return;
    this.#free.rejectAll(down);
    this.#checkIdle();
  }

  /** The queue bound now: max_queue_size, or QUEUE_PER_WORKER per worker of the current target. */
  get maxQueueSize(): number {
    return this.options.maxQueueSize ?? QUEUE_PER_WORKER * Math.max(1, this.#target);
  }

  #waitForWorker(signal: CancelSignal | undefined, request: Req): Promise<Worker<Req, Rep>> {
    const maxQueueSize = this.maxQueueSize;
    if (maxQueueSize > 0 && this.#free.waiting >= maxQueueSize) {
      this.emit('pool:queue-full', { queued: this.#free.waiting });
      return Promise.reject(
        new QueueFullError(
          `request queue is full (max_queue_size ${maxQueueSize}); all ${this.#live()} workers are busy${this.#heldNote()}`,
          {
            queued: this.#free.waiting,
            heldByLongRequests: this.#heldByLongRequests(),
          },
        ),
      );
    }
    return this.#free.wait(signal, abortedBeforeRun, request);
  }

  #noFreeWorker(waitedMs: number): Error {
    const boot = this.#bootError === null ? '' : ` Workers are failing to boot: ${this.#bootError.message}`;
    return new NoFreeWorkerError(
      `no free worker within allocate_timeout (${waitedMs}ms): ${this.#inFlight} busy, ${this.#free.waiting} queued.${this.#heldNote()}${boot}`,
      { inFlight: this.#inFlight, heldByLongRequests: this.#heldByLongRequests() },
    );
  }

  /**
   * Every live worker has been on one request for longer than allocate_timeout and
   * request_slowlog_timeout: the 503s come from requests that do not end (a hung upstream, sleep()),
   * not from too few workers, and more workers would be held the same way.
   */
  #heldByLongRequests(): boolean {
    const now = Date.now();
    const longMs = this.#longRequestMs();
    let working = 0;
    for (const worker of this.#workers) {
      if (worker.state === 'exited' || worker.state === 'stopping') continue;
      if (worker.state !== 'working' || now - worker.execStartedAt < longMs) return false;
      working++;
    }
    return working > 0;
  }

  #longRequestMs(): number {
    return Math.max(this.options.allocateTimeoutMs, this.options.slowlogTimeoutMs);
  }

  /** " Every worker has been on one request for over 60s: GET /a (worker 12, 130s), …; …", or "". */
  #heldNote(): string {
    if (!this.#heldByLongRequests()) return '';
    const now = Date.now();
    const longest = [...this.#workers]
      .filter((worker) => worker.state === 'working')
      .sort((a, b) => a.execStartedAt - b.execStartedAt)
      .slice(0, 3)
      .map((w) => `${w.execLabel ?? 'a request'} (worker ${w.pid}, ${Math.round((now - w.execStartedAt) / 1000)}s)`);
    const ttl = this.options.execTtlMs;
    return ` Every worker has been on one request for over ${seconds(this.#longRequestMs())}: ${longest.join(', ')}; ${
      ttl > 0 ? `exec_ttl (${seconds(ttl)}) ends them` : 'with exec_ttl off they hold their workers until they end'
    }.`;
  }

  // ---- release and recycling ----

  #onExecEnd(worker: Worker<Req, Rep>, error: Error | null): void {
    this.#inFlight--;
    const fate = fateOf(error);
    if (fate === 'release' && worker.state === 'working') {
      // it went on with the request queued behind this one: still busy, with a place free behind
      this.#offerQueueSlot(worker);
      this.#checkIdle();
      return;
    }
    switch (fate) {
      case 'requeue':
        // the request never began and runs again (exec's loop); the worker goes on as it was
        break;
      case 'release':
        if (worker.retiredFor !== null) break;
        if (worker.markedFor !== null) this.#recycle(worker, worker.markedFor);
        else if (worker.jobLimit > 0 && worker.jobs >= worker.jobLimit) this.#recycleAtJobLimit(worker);
        else this.#putWorker(worker);
        break;
      case 'recycle':
      case 'retry':
        this.#recycle(worker, 'worker_stop');
        break;
      case 'kill':
        // The worker is already being killed; start its replacement now rather than at its exit.
        this.#ensureCapacity();
        break;
    }
    this.#checkIdle();
  }

  /**
   * max_jobs: the worker leaves for a fresh one, once the fresh one is ready. Broken code deployed
   * (or a reset that stopped) shrank the pool: each worker reaching its limit left, the fresh one
   * failed to boot; under load all of them reached it within one failing boot (a probe's pool of 4
   * went to 0, every request a 502). So the worker serves no more requests but stays while its
   * replacement boots, and leaves when it is ready; if it fails, the worker serves on past its
   * limit. While boots fail, a worker at its limit serves on, a fresh worker is tried at most every
   * REPLACE_RETRY_MS, and once one boots the old one leaves (at once when idle, else at its next
   * release).
   */
  #recycleAtJobLimit(worker: Worker<Req, Rep>): void {
    if (this.#closing) {
      this.#recycle(worker, 'max_jobs');
      return;
    }
    if (this.#bootError === null) {
      // held out of service (not on the free list), still counted live: no other boot for its place
      // (a reset leaves it to this one: two replacements for it grew a pool of 2 to 24, a probe)
      this.#held.add(worker);
      this.#boot().then(
        (fresh) => {
          this.#held.delete(worker);
          if (worker.retiredFor === null && worker.state !== 'exited') this.#recycle(worker, 'max_jobs');
          // it left another way meanwhile: the fresh worker is one too many if the pool is full
          else if (this.#live() > this.#target && !this.#recycleIfIdle(fresh, 'max_jobs'))
            fresh.markedFor ??= 'max_jobs';
        },
        () => {
          this.#held.delete(worker);
          // the first failed boot: back in service, and the retries below take over
          if (worker.retiredFor === null && worker.state === 'ready') this.#putWorker(worker);
        },
      );
      return;
    }
    this.#putWorker(worker);
    const now = Date.now();
    if (now < this.#replaceAt || this.#closing) return;
    this.#replaceAt = now + REPLACE_RETRY_MS;
    this.options.logger.warn(
      { workerPid: worker.pid, reason: 'max_jobs' },
      `worker ${worker.pid} serves on past max_jobs: fresh workers fail to boot (${this.#bootError.message}); trying one`,
    );
    this.#boot().then(
      () => {
        if (worker.retiredFor !== null || worker.state === 'exited') return;
        if (worker.state === 'ready') this.#recycle(worker, 'max_jobs');
        else worker.markedFor ??= 'max_jobs';
      },
      () => {},
    );
  }

  #recycle(worker: Worker<Req, Rep>, reason: RecycleReason): void {
    if (worker.retiredFor !== null) return;
    worker.retiredFor = reason;
    this.#free.remove(worker);
    this.options.logger.info({ workerPid: worker.pid, reason }, `recycling worker ${worker.pid} (${reason})`);
    this.emit('worker:recycle', { pid: worker.pid, reason });
    void worker.stop(reason);
    this.#ensureCapacity();
  }

  /** Dynamic pool: one more worker when requests wait and fewer are booting than wait. */
  #scaleUp(): void {
    const { maxWorkers } = this.options.dynamic!;
    if (this.#booting > this.#free.waiting || this.#target >= maxWorkers) return;
    this.#setTarget(this.#target + 1, 'demand');
    this.#ensureCapacity();
  }

  /** Dynamic pool: an idle worker leaves without a replacement while above min_workers. */
  #scaleDown(worker: Worker<Req, Rep>): boolean {
    const { minWorkers } = this.options.dynamic!;
    if (this.#target <= minWorkers || worker.state !== 'ready' || !this.#free.remove(worker)) return false;
    this.#setTarget(this.#target - 1, 'idle');
    this.#recycle(worker, 'idle_ttl');
    return true;
  }

  #setTarget(to: number, reason: 'demand' | 'idle'): void {
    const from = this.#target;
    this.#target = to;
    this.options.logger.debug({ from, to, reason }, `pool size ${from} → ${to} (${reason})`);
    this.emit('pool:scale', { from, to, reason });
  }

  #killOverMemory(worker: Worker<Req, Rep>, rssBytes: number): void {
    if (worker.state !== 'working') return;
    const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
    this.options.logger.warn(
      { pid: worker.pid, reason: 'memory', rssBytes },
      `worker ${worker.pid} uses ${mb(rssBytes)} MB, over max_worker_memory (${mb(this.options.maxWorkerMemoryBytes)} MB), ` +
        'for two watch_ticks during one request; killing it (the request fails with 502)',
    );
    worker.kill('memory');
  }

  #recycleIfIdle(worker: Worker<Req, Rep>, reason: RecycleReason): boolean {
    if (worker.state !== 'ready' || !this.#free.remove(worker)) return false;
    this.#recycle(worker, reason);
    return true;
  }

  #onWorkerExit(worker: Worker<Req, Rep>): void {
    this.#workers.delete(worker);
    this.#free.remove(worker);
    const reason = worker.retiredFor ?? 'crashed';
    this.#recycles[reason] = (this.#recycles[reason] ?? 0) + 1;
    this.emit('worker:exit', { pid: worker.pid, code: worker.exitCode, signal: worker.exitSignal, reason });
    this.#ensureCapacity();
    // the last worker left while boots are failing: nothing will take the waiting requests
    this.#failWaitersIfDown();
    this.#checkIdle();
  }

  // ---- reset and shutdown ----

  async #rollWorkers(): Promise<void> {
    // a worker held at max_jobs has its replacement booting already
    const old = [...this.#workers].filter((w) => w.retiredFor === null && !this.#held.has(w));
    // no worker, its boots failing (a broken deploy, since fixed): a reset retries now, not at the
    // backoff's next try; a boot that fails again says why
    if (old.length === 0 && this.#retryTimer !== null && this.#live() === 0) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = null;
      const booted = await Promise.allSettled(Array.from({ length: Math.max(1, this.#target) }, () => this.#boot()));
      const failed = booted.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (failed !== undefined && this.#live() === 0) {
        this.#scheduleRetry(failed.reason as Error);
        throw new BootFailedError(
          `reset: no worker runs, and a fresh one failed to boot. ${(failed.reason as Error).message}`,
          {
            cause: failed.reason,
          },
        );
      }
      this.emit('pool:reset-progress', { replaced: this.#live(), total: this.#live() });
      return;
    }
    let replaced = 0;
    for (const worker of old) {
      if (this.#closing) break;
      try {
        await this.#boot();
      } catch (error) {
        throw new BootFailedError(
          `reset stopped after ${replaced} of ${old.length} workers: a fresh worker failed to boot; the old workers keep serving. ${(error as Error).message}`,
          { cause: error },
        );
      }
      if (worker.retiredFor === null && !this.#recycleIfIdle(worker, 'reset')) worker.markedFor = 'reset';
      replaced++;
      this.emit('pool:reset-progress', { replaced, total: old.length });
    }
    // old workers still running a request: say who is waited for, and for how long at most
    const timeoutMs = this.options.resetTimeoutMs;
    const pids = old.filter((w) => w.retiredFor === null && w.state !== 'exited').map((w) => w.pid);
    if (pids.length > 0 && !this.#closing) {
      this.options.logger.info(
        { pids, reason: 'reset', timeoutMs },
        `reset: waiting for the request of worker ${pids.join(', ')} to end (up to reset_timeout ${seconds(timeoutMs)}; killed then, its request fails)`,
      );
      this.emit('pool:reset-waiting', { pids, timeoutMs });
    }
    await Promise.all(
      old.map((w) =>
        this.#exitWithin(w, timeoutMs, 'reset', () =>
          this.options.logger.warn(
            { pid: w.pid, reason: 'reset', timeoutMs },
            `reset: worker ${w.pid} still runs a request after reset_timeout (${seconds(timeoutMs)}); killing it (its request fails with 502)`,
          ),
        ),
      ),
    );
  }

  /** Resolves when the worker has exited, killing it after `ms` (`onKill` says why, first). */
  #exitWithin(worker: Worker<Req, Rep>, ms: number, reason: RecycleReason, onKill?: () => void): Promise<void> {
    if (worker.state === 'exited') return Promise.resolve();
    const timer = setTimeout(() => {
      if (worker.state === 'exited') return;
      onKill?.();
      worker.kill(reason);
    }, ms);
    return worker.exited.finally(() => clearTimeout(timer));
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    this.#supervisor?.stop();
    if (this.#retryTimer !== null) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    // 1. Let in-flight and queued requests finish, bounded by destroy_timeout.
    await this.#idle(this.options.destroyTimeoutMs);
    // 2. Whatever still waits gets a clear error, and no boot is waited for (its process is killed).
    this.#free.rejectAll(new PoolClosedError());
    this.#bootsCancelled.cancel();
    // 3. Stop every worker: idle ones with the stop command, busy ones (past the bound) by SIGKILL.
    await Promise.all(
      [...this.#workers].map((w) => {
        void w.stop('shutdown');
        return this.#exitWithin(w, this.options.destroyTimeoutMs, 'shutdown');
      }),
    );
    // 4. Workers that finished booting into a closing pool stop themselves; wait for them.
    while (this.#booting > 0 || this.#workers.size > 0) {
      await Promise.all([...this.#workers].map((w) => w.exited));
      if (this.#booting > 0) await new Promise((r) => setTimeout(r, 20));
    }
    if (this.#opened) await this.#driver.close();
  }

  #idle(timeoutMs: number): Promise<void> {
    if (this.#inFlight === 0 && this.#free.waiting === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      const self = this;
      function done() {
        clearTimeout(timer);
        self.#onIdle = null;
        resolve();
      }
      this.#onIdle = done;
    });
  }

  #checkIdle(): void {
    if (this.#onIdle !== null && this.#inFlight === 0 && this.#free.waiting === 0) this.#onIdle();
  }
}

/** The caller gave up before a worker took the request (its client went away while it waited). */
function abortedBeforeRun(reason: unknown): ExecAbortedError {
  const why = reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message}` : '';
  return new ExecAbortedError(`the request was cancelled before a worker took it (the client went away${why})`);
}

/** Creates a pool of goridge workers; call start() to boot them. */
export function createPool(options: PoolOptions): Pool {
  return new Pool(options);
}

/** Any pool, whatever its workers speak: what stats, metrics and the CLI read. */
export type AnyPool = Pool<unknown, unknown>;

type Worker<Req, Rep> = PoolWorker<Req, Rep>;

/** "60s", "1.5s": a duration as the config writes it. */
function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))}s`;
}
