// What the pool needs of a worker process, whatever it speaks: the goridge `Worker` (a RoadRunner
// loop) and the FastCGI `CgiWorker` (php-cgi) both implement it, so every pool rule (max_jobs,
// exec_ttl, max_worker_memory, idle_ttl, scale to zero, rolling reset, stats, sizing) applies to
// both. The pool never sees a frame or a record: `Req` and `Rep` pass through it untouched.
import type { CancelSignal } from '../cancel.js';
import type { ResolvedPoolOptions } from '../options.js';
import type { RecycleReason, WorkerState } from './state.js';

export interface ExecOptions {
  /** exec_ttl; 0 = unbounded. For streams it bounds each frame (PROTOCOL.md §4). */
  timeoutMs: number;
  /** what the request is, for logs and `warmpool workers` ("GET /path"); the pool knows no HTTP */
  label?: string;
}

/** How the pool hears that a worker finished an execution (error null = served) or exited. */
export interface WorkerHooks<W> {
  /** `error` decides the worker's fate (pool/fate.ts): null or a reusable outcome releases it */
  execEnd(worker: W, error: Error | null): void;
  exit(worker: W): void;
}

/** One PHP process as the pool runs it: one execution at a time, then stop with grace or kill. */
export interface PoolWorker<Req, Rep> {
  readonly pid: number;
  readonly createdAt: number;
  readonly state: WorkerState;
  /** executions served (max_jobs counts these) */
  jobs: number;
  lastUsedAt: number;
  execStartedAt: number;
  /** the running request's ExecOptions.label, while working */
  execLabel: string | null;
  /** set by the supervisor or the pool: leave service at the next release */
  markedFor: RecycleReason | null;
  /** max_jobs for this worker, with jitter; 0 = unlimited */
  jobLimit: number;
  /** last RSS read by the supervisor or workers() */
  rssBytes: number;
  /** wall time spent executing requests, summed */
  busyMs: number;
  /** why it left service, once it has */
  retiredFor: RecycleReason | null;
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  /** resolves when the process has exited and its state is settled */
  readonly exited: Promise<void>;
  /** the last lines it printed, for crash and boot-failure messages */
  readonly recentOutput: readonly string[];
  attach(hooks: WorkerHooks<PoolWorker<Req, Rep>>): void;
  /**
   * Runs one request; only the pool calls it, on a ready worker, or on a working one whose
   * canQueue() said yes (it then ends the running request's execution and goes on with this one).
   */
  exec(request: Req, options: ExecOptions): Promise<Rep>;
  /**
   * Pipelining (php-cgi workers): whether this working worker takes `request` now, queued behind
   * its running one (`null`: whether it would take any request that may be queued). Absent: one
   * request at a time.
   */
  canQueue?(request: Req | null): boolean;
  /** Graceful stop; a busy worker is killed. */
  stop(reason: RecycleReason): Promise<void>;
  /** SIGKILL to the worker's process group. */
  kill(reason?: RecycleReason): void;
}

/**
 * How one pool starts its workers (created per pool): goridge workers share a relay listener and an
 * RR_* environment, php-cgi workers a FastCGI environment. The pool calls open() once at start,
 * spawn() for every worker, and close() after the last one exited.
 */
export interface WorkerDriver<Req, Rep> {
  /** what the workers speak; shown by `warmpool workers` and in logs */
  readonly protocol: 'goridge' | 'fastcgi';
  /** without exec_ttl, how long a worker may be silent before its request ends (0 or absent: never) */
  readonly silenceTimeoutMs?: number;
  open(options: ResolvedPoolOptions<Req>): Promise<void>;
  /**
   * Starts one worker; resolves once it is ready, or rejects with BootFailedError /
   * CommandNotFoundError, or PoolClosedError once `signal` fires (the pool closed during the boot).
   */
  spawn(signal?: CancelSignal): Promise<PoolWorker<Req, Rep>>;
  /** Reads a reply nobody else will read to its end (num_workers: auto's warm-up), so its worker is released. */
  drain(reply: Rep): Promise<void>;
  close(): Promise<void>;
}
