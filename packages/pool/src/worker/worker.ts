import type { ChildProcess } from 'node:child_process';
import { Readable } from 'node:stream';
import {
  BootFailedError,
  ExecAbortedError,
  ExecTimeoutError,
  MalformedFrameError,
  PoolClosedError,
  StreamStalledError,
  type ProtocolError,
  UnexpectedFrameError,
  WorkerExitedError,
  WorkerReportedError,
  WorkerStopRequestedError,
} from '../errors.js';
import { rejectOnAbort, type CancelSignal } from '../cancel.js';
import type { Logger } from '../logger.js';
import {
  encodePidRequest,
  isStopReply,
  parsePidReply,
  PONG_FRAME,
  STOP_COMMAND,
  STOP_STREAM_FRAME,
} from '../protocol/control.js';
import { FrameDecoder } from '../protocol/decoder.js';
import { FILE_BODY_READ_BYTES, FileBody } from '../file-body.js';
import {
  describeBytes,
  encodeDataFrame,
  encodeDataFrameHead,
  FLAG_CONTROL,
  FLAG_ERROR,
  frameBodyParts,
  frameContext,
  payloadLength,
  PING,
  STREAM,
  type Frame,
} from '../protocol/frame.js';
import { openFifoToWorker, type FifoToWorker } from '../relay/fifo.js';
import { createPipesRelay } from '../relay/pipes.js';
import { ExecDeadline } from '../supervisor/exec-deadline.js';
import { writeFrame, type Relay, type RelaySpec } from '../relay/relay.js';
import type { SocketRelayListener } from '../relay/socket.js';
import type { ExecOptions } from './pool-worker.js';
import { ProcessWorker } from './process-worker.js';
import {
  bootHint,
  describeExit,
  lastOutputText,
  scriptNotOpenedHint,
  spawnProcess,
  waitForSpawn,
  type ProcessSpec,
} from './process.js';

export type { ExecOptions } from './pool-worker.js';

/** Everything needed to start one goridge worker process; resolved once by the pool. */
export interface WorkerSpec extends ProcessSpec {
  relay: RelaySpec;
  listener: SocketRelayListener | null;
  maxFrameBytes: number;
  logger: Logger;
}

/** One request as it goes on the wire: the codec flag, the context and the body. */
export interface ExecRequest {
  flags: number;
  context: Buffer | string;
  /**
   * A list is written as it is, in one writev (a large body is not joined first); a FileBody in
   * pieces after the frame head, as the pipe takes them (the caller holds it acquired).
   */
  body: Buffer | readonly Buffer[] | FileBody | null;
}

/** The first reply frame; `stream` carries the later frames when the worker streams. */
export interface ExecReply {
  pid: number;
  flags: number;
  context: Buffer;
  /** The body. When `bodyParts` is set, reading this joins the parts (one copy, made once). */
  readonly body: Buffer;
  /** Set for a large body that arrived in several chunks: the body as those chunks, not copied. */
  readonly bodyParts?: readonly Buffer[];
  stream: ReplyStream | null;
}

/** A reply whose body is still the chunks it arrived in; `body` joins them on first read. */
class ChunkedReply implements ExecReply {
  #body: Buffer | null = null;
  constructor(
    readonly pid: number,
    readonly flags: number,
    readonly context: Buffer,
    readonly bodyParts: readonly Buffer[],
    readonly stream: ReplyStream | null,
  ) {}

  get body(): Buffer {
    this.#body ??= Buffer.concat(this.bodyParts);
    return this.#body;
  }
}

interface PendingExec {
  resolve: (reply: ExecReply) => void;
  reject: (error: Error) => void;
  stream: ReplyStream | null;
  /** exec_ttl for this request (per frame for a stream): the worker's one deadline */
  deadline: ExecDeadline;
}

/** Frames after the first of a streamed reply. Destroying it early cancels the stream (STOP frame). */
export class ReplyStream extends Readable {
  readonly #worker: Worker;
  /** set once the last frame arrived or the worker failed: destroy() then cancels nothing */
  settled = false;

  constructor(worker: Worker) {
    super({ objectMode: true, highWaterMark: 8 });
    this.#worker = worker;
    // A failure can arrive in the same chunk as the first frame, before the caller has resumed from
    // `await pool.exec()` and attached anything; consumers still see it (for await, pipeline, errored).
    this.on('error', () => {});
  }

  override _read(): void {
    this.#worker.resumeReading();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.settled) {
      this.settled = true;
      this.#worker.cancelStream();
    }
    callback(error);
  }
}

/** One PHP process: spawn, pid handshake, one execution at a time, stop with grace or kill. */
export class Worker extends ProcessWorker<ExecRequest, ExecReply> {
  readonly #child: ChildProcess;
  readonly #spec: WorkerSpec;
  /** the pipes relay's pipe to the worker's stdin, when it runs over one */
  readonly #fifo: FifoToWorker | null;
  #relay: Relay | null = null;
  #exec: PendingExec | null = null;
  #cancelTimer: NodeJS.Timeout | null = null;
  #cancelling = false;
  #paused = false;
  #deadline: ExecDeadline | null = null;
  /** armed while a stream waits for its reader (backpressure): send_timeout */
  #stallTimer: NodeJS.Timeout | null = null;
  #decoder: FrameDecoder | null = null;
  /** the execution whose body is still being written from its temp file */
  #sending: PendingExec | null = null;
  #onBootFrame: ((frame: Frame) => void) | null = null;
  #onBootError: ((error: Error) => void) | null = null;

  private constructor(child: ChildProcess, spec: WorkerSpec, fifo: FifoToWorker | null = null) {
    super(child, {
      logger: spec.logger,
      destroyTimeoutMs: spec.destroyTimeoutMs,
      noun: 'worker',
      logsStdout: spec.relay.kind !== 'pipes',
    });
    this.#child = child;
    this.#spec = spec;
    this.#fifo = fifo;
  }

  /**
   * Spawns the command and completes the pid handshake within bootTimeoutMs (allocate_timeout),
   * racing it against the process exiting. A failure says why, with the worker's last output.
   */
  /** Spawns a worker and waits for its handshake; `signal` (the pool closing) cuts the wait short. */
  static async start(spec: WorkerSpec, signal?: CancelSignal): Promise<Worker> {
    // RoadRunner's stdin relay over a real pipe (relay/fifo.ts), else Node's socketpair
    const fifo = spec.relay.kind === 'pipes' ? await openFifoToWorker() : null;
    let child: ChildProcess;
    try {
      child = spawnWorkerProcess(spec, fifo);
    } finally {
      fifo?.releaseChildEnd(); // the child has its copy
    }
    try {
      await waitForSpawn(child, spec.argv, spec.cwd);
    } catch (error) {
      fifo?.close();
      throw error;
    }
    const worker = new Worker(child, spec, fifo);
    try {
      await worker.#boot(signal);
      return worker;
    } catch (error) {
      worker.kill();
      await worker.exited;
      throw error;
    }
  }

  /** Sends one request; resolves with the first reply frame. Only the pool calls this, on a ready worker. */
  exec(request: ExecRequest, options: ExecOptions): Promise<ExecReply> {
    if (this.workerState !== 'ready') {
      const error = new WorkerExitedError(`worker ${this.pid} is ${this.workerState}, not ready`, { pid: this.pid });
      this.hooks?.execEnd(this, error);
      return Promise.reject(error);
    }
    this.workerState = 'working';
    this.jobs++;
    this.execStartedAt = Date.now();
    this.execLabel = options.label ?? null;
    return new Promise<ExecReply>((resolve, reject) => {
      // one deadline per worker (one request at a time), made on its first request
      this.#deadline ??= new ExecDeadline(options.timeoutMs, () => {
        if (this.#exec !== null) this.#killOnExecTtl(this.#exec);
      });
      const exec: PendingExec = { resolve, reject, stream: null, deadline: this.#deadline };
      this.#exec = exec;
      exec.deadline.arm();
      const body = request.body;
      if (body instanceof FileBody) void this.#writeFileFrame(exec, request.flags, request.context, body);
      else writeFrame(this.#relay!.output, encodeDataFrame(request.flags, request.context, body));
    });
  }

  /**
   * A frame whose body is in a temp file: the head, then the file in pieces, each written once the
   * pipe took the one before (memory: a piece or two per worker, whatever the body's size). The
   * worker reads the whole frame before it answers, so no reply (and no later request) comes
   * before the last piece. A read that fails cuts the frame: the worker cannot be resynchronised.
   */
  async #writeFileFrame(exec: PendingExec, flags: number, context: Buffer | string, body: FileBody): Promise<void> {
    const output = this.#relay!.output;
    output.write(encodeDataFrameHead(flags, context, body.length));
    this.#sending = exec;
    // gone: the worker failed or exited (its request failed with it), the rest goes nowhere
    const gone = () => this.#exec !== exec || output.destroyed || output.writableEnded;
    try {
      for (let position = 0; position < body.length; ) {
        const piece = Buffer.allocUnsafe(Math.min(FILE_BODY_READ_BYTES, body.length - position));
        const read = await body.readAt(piece, position);
        if (gone()) return;
        if (read === 0) throw new Error(`the temp file ended at ${position} of ${body.length} bytes`);
        position += read;
        const more = output.write(read === piece.length ? piece : piece.subarray(0, read));
        // all of it is on its way: a reply may come from here on
        if (position >= body.length) break;
        if (!more) await drained(output);
        if (gone()) return;
      }
    } catch (error) {
      if (gone()) return;
      const failure = new Error(
        `the request body could not be read from its temp file (${(error as Error).message}); worker ${this.pid} got part of its frame and was killed`,
        { cause: error },
      );
      this.#spec.logger.error({ workerPid: this.pid, reason: 'request_body' }, failure.message);
      this.kill('errored');
      this.#failExec(exec, failure);
    } finally {
      if (this.#sending === exec) this.#sending = null;
    }
  }

  /** Graceful stop: the stop command, then SIGKILL after destroy_timeout. Never used on a busy worker. */
  protected askToStop(): void {
    const relay = this.#relay;
    if (relay !== null) writeFrame(relay.output, [STOP_COMMAND]);
  }

  /** Backpressure from a ReplyStream consumer: read the worker again. */
  resumeReading(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#clearStallTimer();
    // Frames already read but held back go first; they may pause us again, or be broken.
    try {
      this.#decoder?.resume();
    } catch (error) {
      this.#failProtocol(error as Error);
      return;
    }
    if (this.#paused) return;
    this.#relay?.input.resume();
    if (this.#exec !== null) this.#exec.deadline.arm();
  }

  /** The consumer of a stream went away: STOP, then discard until the last frame (§3.6). */
  cancelStream(): void {
    const exec = this.#exec;
    if (exec === null || exec.stream === null || this.workerState !== 'working') return;
    exec.deadline.clear();
    this.#clearStallTimer();
    this.#cancelling = true;
    writeFrame(this.#relay!.output, [STOP_STREAM_FRAME]);
    this.resumeReading();
    this.#cancelTimer = setTimeout(() => {
      this.#spec.logger.warn(
        { workerPid: this.pid, request: this.execLabel, reason: 'stream_timeout' },
        `worker ${this.pid} did not end a cancelled stream${this.execLabel === null ? '' : ` (${this.execLabel})`} within stream_timeout (${this.#spec.streamTimeoutMs}ms); killing it`,
      );
      this.kill('errored');
    }, this.#spec.streamTimeoutMs);
  }

  async #boot(signal: CancelSignal | undefined): Promise<void> {
    const spec = this.#spec;
    let timer: NodeJS.Timeout | undefined;
    let cancelAccept: (() => void) | undefined;
    const closed = rejectOnAbort(signal, () => new PoolClosedError(`the pool closed while worker ${this.pid} booted`));
    try {
      const handshake = new Promise<void>((resolve, reject) => {
        this.#onBootError = reject;
        this.#onBootFrame = (frame) => {
          try {
            parsePidReply(frame);
            resolve();
          } catch (error) {
            reject(
              new BootFailedError(
                `worker ${this.pid} answered the pid handshake wrongly: ${(error as Error).message}`,
                { cause: error, details: { pid: this.pid } },
              ),
            );
          }
        };
      });
      const exited: Promise<never> = this.exited.then(() => {
        throw new BootFailedError(
          `worker exited during boot (${describeExit(this.exitCode, this.exitSignal)}) before the pid handshake. ` +
            `${lastOutputText(this.recentOutput)}${bootHint(this.recentOutput, spec.argv, `Check that "${spec.argv.join(' ')}" runs a worker loop (e.g. run it by hand).`, spec.uid)}`,
          { details: { pid: this.pid, exitCode: this.exitCode } },
        );
      });
      // Boot is over once this method returns; a later exit must not surface as an unhandled rejection.
      exited.catch(() => {});
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new BootFailedError(
                `worker ${this.pid} did not complete the pid handshake within ${spec.bootTimeoutMs}ms (allocate_timeout). ` +
                  `${lastOutputText(this.recentOutput)}A worker must call waitPayload()/waitRequest() once it has booted.`,
                { details: { pid: this.pid } },
              ),
            ),
          spec.bootTimeoutMs,
        );
      });
      let relay: Promise<Relay>;
      if (spec.relay.kind === 'pipes' || spec.relay.kind === 'fds') {
        relay = Promise.resolve(createPipesRelay(this.#child, spec.relay.kind === 'fds', this.#fifo?.output()));
      } else {
        const accepted = spec.listener!.accept(this.pid);
        cancelAccept = accepted.cancel;
        relay = accepted.relay;
      }
      this.#relay = await Promise.race([relay, exited, timeout, closed.promise]);
      this.#listen(this.#relay);
      if (this.#relay.handshakePid === null) {
        writeFrame(this.#relay.output, [encodePidRequest()]);
        await Promise.race([handshake, exited, timeout, closed.promise]);
      }
      this.#onBootFrame = null;
      this.#onBootError = null;
      this.workerState = 'ready';
    } finally {
      clearTimeout(timer);
      closed.dispose();
      cancelAccept?.();
    }
  }

  #listen(relay: Relay): void {
    const decoder = new FrameDecoder((frame) => this.#onFrame(frame), {
      maxFrameBytes: this.#spec.maxFrameBytes,
      scriptNotOpenedHint: () => scriptNotOpenedHint(this.#spec.uid),
    });
    this.#decoder = decoder;
    relay.input.on('data', (chunk: Buffer) => {
      if (this.workerState === 'exited') return;
      try {
        decoder.push(chunk);
      } catch (error) {
        this.#failProtocol(error as Error);
      }
    });
    relay.input.resume();
  }

  /** Returns false to hold further frames (the stream consumer is behind). */
  #onFrame(frame: Frame): boolean {
    if (this.#onBootFrame !== null) {
      this.#onBootFrame(frame);
      return true;
    }
    if (this.workerState === 'stopping' || this.workerState === 'exited') return true;
    if (this.#cancelling) {
      this.#onCancelledFrame(frame);
      return true;
    }
    const exec = this.#exec;
    if (exec === null && isStopReply(frame)) {
      // it answered, then asked to be retired (RoadRunner's $worker->stop() after respond(): a
      // memory guard, a clean-up): it leaves service as it asked, and its exit brings a replacement
      this.#spec.logger.info({ workerPid: this.pid, reason: 'worker_stop' }, 'worker asked to stop after its reply');
      void this.stop('worker_stop');
      return true;
    }
    if (exec === null) {
      this.#failProtocol(
        new UnexpectedFrameError(
          `worker sent a frame while idle (flags 0x${frame.flags.toString(16)}, ${describeBytes(payloadHead(frame))}); ` +
            'it would desync every later reply. Likely cause: it answered a request twice (respond() and error()).',
          { pid: this.pid },
        ),
      );
      return false;
    }
    if ((frame.control & PING) !== 0) writeFrame(this.#relay!.output, [PONG_FRAME]);
    if (exec.stream === null) {
      this.#onFirstFrame(exec, frame);
      return true;
    }
    return this.#onStreamFrame(exec, exec.stream, frame);
  }

  #onFirstFrame(exec: PendingExec, frame: Frame): void {
    if (this.#sending === exec) {
      // the rest of its body would be read as its next frame
      this.#failProtocol(
        new UnexpectedFrameError(`worker ${this.pid} answered before it had read its whole request body`, {
          pid: this.pid,
        }),
      );
      return;
    }
    if ((frame.flags & FLAG_ERROR) !== 0) {
      exec.reject(new WorkerReportedError(frame.payload.toString('utf8'), { pid: this.pid }));
      this.#endExec(exec, null);
      return;
    }
    if (isStopReply(frame)) {
      const error = new WorkerStopRequestedError(
        `worker ${this.pid} asked to be retired; the request runs on another worker`,
        { pid: this.pid },
      );
      exec.reject(error);
      this.#endExec(exec, error);
      return;
    }
    const problem = checkDataFrame(frame);
    if (problem !== null) {
      this.#failProtocol(
        new MalformedFrameError(`${problem} (${describeBytes(payloadHead(frame))})`, { pid: this.pid }),
      );
      return;
    }
    const contextLength = frame.options[0]!;
    const streaming = (frame.control & STREAM) !== 0;
    const stream = streaming ? new ReplyStream(this) : null;
    exec.stream = stream;
    exec.resolve(
      frame.parts === undefined
        ? {
            pid: this.pid,
            flags: frame.flags,
            context: frame.payload.subarray(0, contextLength),
            body: frame.payload.subarray(contextLength),
            stream,
          }
        : new ChunkedReply(this.pid, frame.flags, frameContext(frame), frameBodyParts(frame), stream),
    );
    if (stream === null) this.#endExec(exec, null);
    else exec.deadline.arm();
  }

  #onStreamFrame(exec: PendingExec, stream: ReplyStream, frame: Frame): boolean {
    if ((frame.flags & FLAG_ERROR) !== 0) {
      const error = new WorkerReportedError(frame.payload.toString('utf8'), { pid: this.pid });
      stream.settled = true;
      stream.destroy(error);
      this.#endExec(exec, null);
      return true;
    }
    const problem = checkDataFrame(frame);
    if (problem !== null) {
      this.#failProtocol(
        new MalformedFrameError(`${problem} in a streamed reply (${describeBytes(payloadHead(frame))})`, {
          pid: this.pid,
        }),
      );
      return false;
    }
    const last = (frame.control & STREAM) === 0;
    const more = stream.push(frame);
    if (last) {
      stream.settled = true;
      stream.push(null);
      this.#endExec(exec, null);
      return true;
    }
    if (!more) {
      // Backpressure: hold decoded frames and stop reading; the pipe fills and PHP blocks in fwrite.
      // The worker is held by a reader that does not read: exec_ttl keeps counting (a hard cap, as
      // RoadRunner users expect), and send_timeout bounds the wait even without exec_ttl.
      this.#paused = true;
      this.#relay!.input.pause();
      this.#armStallTimer(exec, stream);
      return false;
    }
    exec.deadline.arm();
    return true;
  }

  #onCancelledFrame(frame: Frame): void {
    if ((frame.control & PING) !== 0) writeFrame(this.#relay!.output, [PONG_FRAME]);
    const exec = this.#exec;
    if (exec === null) return;
    if ((frame.flags & FLAG_ERROR) !== 0) {
      // The worker's code did not catch the cancel (§3.6): a failed cancel, so retire it.
      this.markedFor ??= 'errored';
      this.#finishCancel(exec);
      return;
    }
    if ((frame.control & STREAM) === 0) this.#finishCancel(exec);
  }

  #finishCancel(exec: PendingExec): void {
    this.#cancelling = false;
    if (this.#cancelTimer !== null) clearTimeout(this.#cancelTimer);
    this.#cancelTimer = null;
    this.#endExec(
      exec,
      new ExecAbortedError('the stream consumer went away; the stream was cancelled', { pid: this.pid }),
    );
  }

  /** Ends the current execution; the worker is ready again (unless it is leaving). */
  #endExec(exec: PendingExec, error: Error | null): void {
    if (this.#exec !== exec) return;
    exec.deadline.clear();
    this.#clearStallTimer();
    this.#exec = null;
    this.lastUsedAt = Date.now();
    this.busyMs += this.lastUsedAt - this.execStartedAt;
    if (this.workerState === 'working') this.workerState = 'ready';
    if (this.#paused) {
      this.#paused = false;
      this.#relay?.input.resume();
    }
    this.hooks?.execEnd(this, error);
  }

  /** send_timeout: the reader of a paused stream has not read for that long; cancel the stream. */
  #armStallTimer(exec: PendingExec, stream: ReplyStream): void {
    const ms = this.#spec.sendTimeoutMs;
    if (ms <= 0 || this.#stallTimer !== null) return;
    this.#stallTimer = setTimeout(() => {
      this.#stallTimer = null;
      if (this.#exec !== exec || stream.settled) return;
      const error = new StreamStalledError(
        `the reader of worker ${this.pid}'s streamed reply read nothing for ${ms}ms (send_timeout); the stream was cancelled`,
        { pid: this.pid },
      );
      this.#spec.logger.warn({ workerPid: this.pid, reason: 'send_timeout' }, error.message);
      // destroying the stream cancels it (STOP) and fails its reader, who closes the client's connection
      stream.destroy(error);
    }, ms);
  }

  #clearStallTimer(): void {
    if (this.#stallTimer !== null) clearTimeout(this.#stallTimer);
    this.#stallTimer = null;
  }

  /** exec_ttl ran out (supervisor/exec-deadline.ts): the worker is killed, its request gets 504. */
  #killOnExecTtl(exec: PendingExec): void {
    if (this.#exec !== exec) return;
    const error = new ExecTimeoutError(
      `request exceeded exec_ttl (${exec.deadline.ms}ms${exec.stream !== null ? ' between stream frames' : ''}); worker ${this.pid} was killed`,
      { pid: this.pid },
    );
    this.#spec.logger.warn({ workerPid: this.pid, reason: 'exec_ttl' }, error.message);
    this.kill('exec_ttl');
    this.#failExec(exec, error);
  }

  /** Broken bytes from the worker: fail its request, log one line, kill it. */
  #failProtocol(error: Error): void {
    if (this.#onBootError !== null) {
      this.#onBootError(
        new BootFailedError(`worker ${this.pid} broke the protocol during boot: ${error.message}`, {
          cause: error,
          details: { pid: this.pid },
        }),
      );
      return;
    }
    if (this.workerState === 'exited' || (this.workerState === 'stopping' && this.#exec === null)) return;
    this.#spec.logger.error(
      { workerPid: this.pid, reason: 'protocol', code: (error as ProtocolError).code },
      error.message,
    );
    this.kill('protocol');
    const exec = this.#exec;
    if (exec !== null) this.#failExec(exec, error);
  }

  /** The execution fails with `error` and the worker is leaving service. */
  #failExec(exec: PendingExec, error: Error): void {
    if (this.#exec !== exec) return;
    exec.deadline.clear();
    this.#clearStallTimer();
    this.#exec = null;
    this.busyMs += Date.now() - this.execStartedAt;
    if (exec.stream === null) exec.reject(error);
    else if (!exec.stream.settled) {
      exec.stream.settled = true;
      exec.stream.destroy(error);
    }
    this.hooks?.execEnd(this, error);
  }

  protected hasRunningRequest(): boolean {
    return this.#exec !== null;
  }

  protected failRunningRequest(error: Error): void {
    this.#failExec(this.#exec!, error);
  }

  protected closeWire(): void {
    if (this.#cancelTimer !== null) clearTimeout(this.#cancelTimer);
    this.#relay?.close();
  }
}

/** Resolves once `output` drains, or closes or fails (the caller then finds the worker gone). */
function drained(output: NodeJS.WritableStream & { destroyed: boolean }): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      output.off('drain', done);
      output.off('close', done);
      output.off('error', done);
      resolve();
    };
    output.on('drain', done);
    output.on('close', done);
    output.on('error', done);
  });
}

/** The first bytes of a frame's payload, for error messages (a chunked frame is not joined for them). */
function payloadHead(frame: Frame): Buffer {
  return frame.parts?.[0] ?? frame.payload;
}

/** null when the frame is a well-formed data frame (exactly one option, within the payload). */
function checkDataFrame(frame: Frame): string | null {
  if ((frame.flags & FLAG_CONTROL) !== 0) return 'unexpected CONTROL frame in place of a reply';
  if (frame.options.length !== 1)
    return `reply has ${frame.options.length} options; a data frame carries exactly 1 (the context length)`;
  const length = payloadLength(frame);
  if (frame.options[0]! > length)
    return `reply context length ${frame.options[0]} exceeds its payload (${length} bytes)`;
  return null;
}

function spawnWorkerProcess(spec: WorkerSpec, fifo: FifoToWorker | null): ChildProcess {
  if (fifo !== null) return spawnProcess(spec, [fifo.childIn, 'pipe', 'pipe']);
  const stdio: ('pipe' | 'ignore')[] =
    spec.relay.kind === 'fds' ? ['ignore', 'pipe', 'pipe', 'pipe', 'pipe'] : ['pipe', 'pipe', 'pipe'];
  if (spec.relay.kind === 'unix' || spec.relay.kind === 'tcp') stdio[0] = 'ignore';
  return spawnProcess(spec, stdio);
}
