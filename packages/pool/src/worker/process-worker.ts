// What both worker kinds share, the goridge `Worker` (a RoadRunner loop) and the php-cgi
// `CgiWorker`: the pool's bookkeeping, the process's output and exit, and the steps of stop, kill
// and exit that do not depend on what the process speaks. Each kind adds its wire: how it asks the
// process to stop, what a kill does to a running request, how that request fails when the process
// dies, and what to close afterwards.
import type { ChildProcess } from 'node:child_process';
import type { Logger } from '../logger.js';
import { WorkerOutput } from './output.js';
import type { ExecOptions, PoolWorker, WorkerHooks } from './pool-worker.js';
import { describeExit, exitedDuringRequest, killAfterGrace, killGroup, lastOutputText } from './process.js';
import type { RecycleReason, WorkerState } from './state.js';

export interface ProcessWorkerOptions {
  logger: Logger;
  /** destroy_timeout: how long a stopping process may take before it is killed */
  destroyTimeoutMs: number;
  /** how log lines name the process: "worker 123", "php-cgi 123" */
  noun: string;
  /** whether the process's stdout is output to log (false: it carries the protocol) */
  logsStdout: boolean;
  /** cleanup once the process exited and its state is settled; `exited` resolves after it */
  afterExit?: () => Promise<unknown>;
  /** hold its output back from the log until releaseBootOutput() (the boot's outcome decides) */
  holdsBootOutput?: boolean;
}

export abstract class ProcessWorker<Req, Rep> implements PoolWorker<Req, Rep> {
  readonly pid: number;
  readonly createdAt = Date.now();
  /** executions served (max_jobs counts these) */
  jobs = 0;
  lastUsedAt = 0;
  execStartedAt = 0;
  execLabel: string | null = null;
  /** set by the supervisor or the pool: leave service at the next release */
  markedFor: RecycleReason | null = null;
  /** max_jobs for this worker, with jitter so workers do not all recycle together; 0 = unlimited */
  jobLimit = 0;
  /** last RSS read by the supervisor or workers() */
  rssBytes = 0;
  /** wall time spent executing requests, summed (with CPU time it gives the I/O-wait share) */
  busyMs = 0;
  /** why it left service, once it has */
  retiredFor: RecycleReason | null = null;
  exitCode: number | null = null;
  exitSignal: NodeJS.Signals | null = null;

  protected workerState: WorkerState = 'booting';
  protected hooks: WorkerHooks<PoolWorker<Req, Rep>> | null = null;
  readonly #options: ProcessWorkerOptions;
  readonly #stderr: WorkerOutput;
  readonly #stdout: WorkerOutput | null;
  readonly #exited: Promise<void>;

  protected constructor(child: ChildProcess, options: ProcessWorkerOptions) {
    this.#options = options;
    this.pid = child.pid!;
    this.#stderr = new WorkerOutput(options.logger, this.pid, 'stderr', () => this.execLabel);
    child.stderr!.on('data', (chunk: Buffer) => this.#stderr.write(chunk));
    this.#stdout = options.logsStdout
      ? new WorkerOutput(options.logger, this.pid, 'stdout', () => this.execLabel)
      : null;
    if (this.#stdout !== null) child.stdout!.on('data', (chunk: Buffer) => this.#stdout!.write(chunk));
    if (options.holdsBootOutput === true) {
      this.#stderr.hold();
      this.#stdout?.hold();
    }
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        // Let data already read from the pipes and sockets be processed before failing the request.
        setImmediate(() => {
          this.#onExit();
          if (options.afterExit === undefined) resolve();
          else void options.afterExit().finally(resolve);
        });
      });
    });
  }

  get state(): WorkerState {
    return this.workerState;
  }

  /** Ends holdsBootOutput: logs the output held back during boot, or drops it. */
  protected releaseBootOutput(log: boolean): void {
    this.#stdout?.release(log);
    this.#stderr.release(log);
  }

  /** The last lines the process printed (stderr, and stdout when it is not the protocol's). */
  get recentOutput(): readonly string[] {
    return this.#stdout === null ? this.#stderr.recent : [...this.#stdout.recent, ...this.#stderr.recent];
  }

  /** Resolves when the process has exited and its state is settled. */
  get exited(): Promise<void> {
    return this.#exited;
  }

  attach(hooks: WorkerHooks<PoolWorker<Req, Rep>>): void {
    this.hooks = hooks;
  }

  abstract exec(request: Req, options: ExecOptions): Promise<Rep>;

  /** Graceful stop: asks the process to leave, killed after destroy_timeout; a busy worker is killed. */
  stop(reason: RecycleReason): Promise<void> {
    this.retiredFor ??= reason;
    if (this.workerState === 'exited' || this.workerState === 'stopping') return this.#exited;
    if (this.workerState === 'working') {
      this.kill(reason);
      return this.#exited;
    }
    this.workerState = 'stopping';
    this.askToStop();
    killAfterGrace(
      this.#options.destroyTimeoutMs,
      () => {
        // said: its shutdown work (a framework's terminate hooks, a flush) was cut off
        this.#options.logger.warn(
          { workerPid: this.pid, reason: 'destroy_timeout' },
          `worker ${this.pid} did not stop within destroy_timeout (${this.#options.destroyTimeoutMs}ms) of being asked; killed (SIGKILL)`,
        );
        this.kill();
      },
      this.#exited,
    );
    return this.#exited;
  }

  /** SIGKILL to the worker's process group (it runs in its own, like RoadRunner's). */
  kill(reason?: RecycleReason): void {
    if (reason !== undefined) this.retiredFor ??= reason;
    if (this.workerState === 'exited') return;
    this.workerState = 'stopping';
    this.onKill();
    killGroup(this.pid);
  }

  /** The polite half of stop(): tell the process to finish (a STOP frame, SIGTERM). */
  protected abstract askToStop(): void;

  /** What a kill does before the signal (php-cgi: its running request fails now). */
  protected onKill(): void {}

  /** Whether a request was running when the process exited. */
  protected abstract hasRunningRequest(): boolean;

  /** Fails the running request: its process is gone. */
  protected abstract failRunningRequest(error: Error): void;

  /** Closes what the worker talked to the process through (relay, FastCGI connection). */
  protected abstract closeWire(): void;

  #onExit(): void {
    this.#stderr.flush();
    this.#stdout?.flush();
    const was = this.workerState;
    this.workerState = 'exited';
    // Reap anything the worker left in its process group.
    killGroup(this.pid);
    if (this.hasRunningRequest()) {
      this.retiredFor ??= 'crashed';
      const error = exitedDuringRequest(this.pid, this.exitCode, this.exitSignal, this.retiredFor, this.recentOutput);
      if (was !== 'stopping') this.#options.logger.error({ workerPid: this.pid, reason: 'crashed' }, error.message);
      this.failRunningRequest(error);
    } else if (was !== 'stopping' && was !== 'booting') {
      // an exit during boot is the boot's failure, reported by start() with the process's output
      this.retiredFor ??= 'crashed';
      this.#options.logger.warn(
        { pid: this.pid, reason: 'crashed' },
        `${this.#options.noun} ${this.pid} ${describeExit(this.exitCode, this.exitSignal)} while idle. ${lastOutputText(this.recentOutput)}`.trim(),
      );
    }
    this.closeWire();
    this.hooks?.exit(this);
  }
}
