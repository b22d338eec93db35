// One FastCGI connection (unix socket or TCP) running one request at a time with FCGI_KEEP_CONN,
// as php-fpm and php-cgi serve it: BEGIN_REQUEST, PARAMS, STDIN streamed with backpressure; STDOUT
// out as a Readable with backpressure (the socket pauses while the reader is behind); STDERR as
// lines (stderr-lines.ts); END_REQUEST ends the request and frees the connection for the next one.
// Opening one is connect.ts's; reading it into one buffer, socket-reads.ts's.
import type { CancelSignal } from '../cancel.js';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import {
  FastCgiAbortedError,
  FastCgiConnectionClosedError,
  type FastCgiError,
  FastCgiOverloadedError,
  FastCgiReadTimeoutError,
  FastCgiRequestRejectedError,
  FastCgiUnexpectedRecordError,
  QueuedRequestNotRunError,
  StreamStalledError,
} from '../errors.js';
import { type FastCgiAddress, formatFastCgiAddress } from './address.js';
import { RecordDecoder } from './decoder.js';
import type { LingeringScripts } from './lingering-scripts.js';
import type { ScriptDurations } from './script-durations.js';
import type { SocketReads } from './socket-reads.js';
import { StderrLines } from './stderr-lines.js';
import {
  decodeEndRequest,
  decodeGetValuesResult,
  type EndRequestBody,
  encodeAbortRequest,
  encodeGetValues,
  encodeRecord,
  encodeRequestHead,
  encodeStreamRecords,
  type FastCgiParams,
  type FastCgiRecord,
  ProtocolStatus,
  RecordType,
  recordTypeName,
} from './records.js';

/** nginx's fastcgi_read_timeout. */
export const DEFAULT_READ_TIMEOUT_MS = 60_000;
/** How long an aborted request may take to send END_REQUEST before its connection is closed. */
export const DEFAULT_ABORT_TIMEOUT_MS = 5_000;
/** STDOUT buffered for a slow reader before the socket pauses. */
export const DEFAULT_STDOUT_HIGH_WATER_MARK = 64 * 1024;

/** A body this small goes out in the same write as the request's params. */
const INLINE_STDIN_BYTES = 16 * 1024;

/** One request at a time per connection: php-fpm does not multiplex (FCGI_MPXS_CONNS=0). */
const REQUEST_ID = 1;

/**
 * Pipelining: a request is queued behind a running one only while that one has run at most this
 * long, or twice its usual time, and never behind a script whose runs usually last longer
 * (ScriptDurations): behind a slow script it would wait long while another process may be free by
 * then (php-fpm's accept queue gives a request to whichever child is free first).
 */
export const DEFAULT_QUEUE_BEHIND_MS = 10;
const QUEUE_BEHIND_FACTOR = 2;
/** The weight of the newest request in a connection's average request. */
const AVERAGE_WEIGHT = 0.2;

/**
 * A request body: bytes, a list of byte chunks, or a stream (a Readable, an async iterable).
 * A stream is pulled only as fast as the backend takes it, never buffered whole.
 */
export type FastCgiBody = Uint8Array | readonly Uint8Array[] | AsyncIterable<Uint8Array | string> | null | undefined;

export interface FastCgiRequestOptions {
  params: FastCgiParams;
  stdin?: FastCgiBody;
  /** Longest silence from the backend while it owes us records; 0: none. Default DEFAULT_READ_TIMEOUT_MS. */
  readTimeoutMs?: number;
  /**
   * How long the script may run once its request body is sent, output or not (php-fpm's
   * request_terminate_timeout: a script that keeps printing is stopped too); 0 (default): no bound.
   */
  runTimeoutMs?: number;
  /**
   * The error a read or run timeout fails the request with (default WP_FASTCGI_READ_TIMEOUT): a
   * managed php-cgi worker uses them as exec_ttl and reports WP_WORKER_EXEC_TIMEOUT.
   */
  timeoutError?: (timeoutMs: number, kind: 'silence' | 'run') => Error;
  /** After abort(), how long to wait for END_REQUEST before closing. Default DEFAULT_ABORT_TIMEOUT_MS. */
  abortTimeoutMs?: number;
  /**
   * send_timeout: STDOUT's reader may read nothing for this long while the backend has more for it;
   * then the request is aborted and the reader fails with WP_WORKER_STREAM_STALLED. 0: no bound.
   */
  stallTimeoutMs?: number;
  /** Each STDERR line (PHP warnings with fastcgi.logging=1, error_log() calls), without its newline. */
  onStderr?: (line: string) => void;
  /** Aborting it aborts the request (the client left); null: none. */
  signal?: CancelSignal | null;
  stdoutHighWaterMark?: number;
  /**
   * The script it runs (SCRIPT_FILENAME): its runs are timed into the connection's
   * ScriptDurations, so that pipelining queues nothing behind a script known to run long.
   */
  script?: string | null;
}

/** What a STDOUT reader may ask of its request. */
export interface StdoutControl {
  /** The reader caught up after write() returned false: deliver held records, read the socket again. */
  resume(): void;
  /** Sends ABORT_REQUEST; the connection is closed once END_REQUEST arrives (or abortTimeoutMs passes). */
  abort(reason?: unknown): void;
}

/**
 * Where a request's STDOUT goes, straight from the record decoder: a Readable (request()), or a
 * reader that keeps a small response whole without any stream (cgi-response.ts, CgiResponseReader).
 */
export interface StdoutSink {
  /** Called by start() before any record can arrive. */
  bind(control: StdoutControl): void;
  /**
   * One STDOUT record's content (never empty); false: hold further records until control.resume().
   * The chunk is valid only during the call (it is the connection's read buffer): keep a copy.
   */
  write(chunk: Buffer): boolean;
  /** END_REQUEST with REQUEST_COMPLETE: STDOUT is complete. */
  end(): void;
  /** The request failed or was aborted; may be called more than once, and after end(). */
  destroy(error: Error): void;
}

/** One running request whose STDOUT goes to a sink (start()). */
export interface FastCgiRun extends StdoutControl {
  /** Resolves on END_REQUEST with REQUEST_COMPLETE; rejects with a FastCgiError otherwise. */
  readonly done: Promise<EndRequestBody>;
  /** Bytes received from the backend during this request. */
  readonly bytesReceived: number;
  /** Whether the connection had served a request before this one. */
  readonly reusedConnection: boolean;
  /** Whether any of a streamed body was pulled (it cannot be sent again). */
  readonly stdinStarted: boolean;
  /** Queued (queue()): whether it has begun, that is the request ahead of it ended. */
  readonly begun: boolean;
  /** Whether it is over for the connection (END_REQUEST came, or it failed). */
  readonly ended: boolean;
  /**
   * Aborted without ABORT_REQUEST (PHP already had the request queued behind it, or it was
   * queued itself): its output is dropped and the connection is kept once it ends ('advance' or
   * 'idle'), instead of closed.
   */
  readonly keptAfterAbort: boolean;
}

/** One running request whose STDOUT is a Readable (request()). */
export interface FastCgiCall extends FastCgiRun {
  /** The script's STDOUT (CGI head and body). Destroying it before the end aborts the request. */
  readonly stdout: Readable;
}

export interface FastCgiConnectionEvents {
  /** A request finished and the connection can take the next one. */
  idle: [];
  /** A request finished and the one queued behind it began (queue()). */
  advance: [];
  /** The socket closed; `error` says why when it was not a clean close. */
  close: [error: Error | null];
}

/** lingering: half-closed after a script that goes on after its END_REQUEST (lingering-scripts.ts) */
export type FastCgiConnectionState = 'idle' | 'busy' | 'lingering' | 'closed';

const noop = () => {};
const EMPTY_STDIN = Buffer.alloc(0);

/** No body, or a small one in memory: the whole request fits one write (and can be queued). */
function isInlineBody(stdin: FastCgiBody): stdin is Uint8Array | null | undefined {
  return stdin === null || stdin === undefined || (stdin instanceof Uint8Array && stdin.length <= INLINE_STDIN_BYTES);
}

interface Call {
  readonly sink: StdoutSink;
  readonly resolve: (end: EndRequestBody) => void;
  readonly reject: (error: Error) => void;
  readonly onStderr: ((line: string) => void) | null;
  readonly readTimeoutMs: number;
  readonly runTimeoutMs: number;
  readonly timeoutError: ((timeoutMs: number, kind: 'silence' | 'run') => Error) | null;
  readonly abortTimeoutMs: number;
  readonly stallTimeoutMs: number;
  readonly signal: CancelSignal | null;
  readonly onSignal: () => void;
  readonly reused: boolean;
  /** SCRIPT_FILENAME, for ScriptDurations; null: not timed */
  readonly script: string | null;
  /**
   * The script that ran before it on this connection, until its first record came: a long wait for
   * that record means that script lingered (LingeringScripts). null: nothing to learn.
   */
  after: string | null;
  /**
   * (queued: written behind the running request →) running → aborting (waiting for END_REQUEST)
   * → finished
   */
  phase: 'queued' | 'running' | 'aborting' | 'finished';
  /** aborted without ABORT_REQUEST (a request was queued behind it): the connection stays usable */
  softAbort: boolean;
  /** it began: it was started, or the request ahead of it ended */
  began: boolean;
  stdinDone: boolean;
  stdinStarted: boolean;
  /** the reader is behind: the socket is paused and the decoder holds records */
  stdoutPaused: boolean;
  /** send_timeout, armed while stdoutPaused */
  stallTimer: NodeJS.Timeout | null;
  /** waiting for the socket to drain while writing STDIN */
  waitingDrain: boolean;
  bytesReceived: number;
  /** its STDERR lines so far; null until it writes any */
  stderr: StderrLines | null;
  /** wakes the STDIN pump (drain, finish, close) */
  wake: (() => void) | null;
}

interface CallControl {
  abort(call: Call, reason?: unknown): void;
  resume(call: Call): void;
}

/**
 * A running request as its caller and its sink see it. A class, not an object literal with getters
 * and closures: V8 makes such a literal in dictionary mode, its parts in old space, and that
 * garbage kept each request's young objects alive through scavenges until the next full GC (a
 * fifth of the new space survived each scavenge; with the class, under 1 %).
 */
class RunHandle implements FastCgiRun {
  readonly done: Promise<EndRequestBody>;
  readonly #call: Call;
  readonly #control: CallControl;

  constructor(done: Promise<EndRequestBody>, call: Call, control: CallControl) {
    this.done = done;
    this.#call = call;
    this.#control = control;
  }

  get bytesReceived(): number {
    return this.#call.bytesReceived;
  }

  get reusedConnection(): boolean {
    return this.#call.reused;
  }

  get stdinStarted(): boolean {
    return this.#call.stdinStarted;
  }

  get begun(): boolean {
    return this.#call.began;
  }

  get ended(): boolean {
    return this.#call.phase === 'finished';
  }

  get keptAfterAbort(): boolean {
    return this.#call.softAbort;
  }

  abort(reason?: unknown): void {
    this.#control.abort(this.#call, reason);
  }

  resume(): void {
    this.#control.resume(this.#call);
  }
}

/**
 * A connected socket and its record decoder. request() runs one request; after its END_REQUEST
 * the connection emits 'idle' and takes the next one. Anything that leaves the byte stream in
 * doubt (a timeout, an abort, a protocol error, END_REQUEST before all of STDIN was sent) closes it.
 */
export class FastCgiConnection extends EventEmitter<FastCgiConnectionEvents> {
  readonly address: FastCgiAddress;
  readonly #socket: Socket;
  readonly #where: string;
  readonly #decoder: RecordDecoder;
  #state: FastCgiConnectionState = 'idle';
  #call: Call | null = null;
  /** a request written behind the running one, begun when that one ends (queue()) */
  #next: Call | null = null;
  #requests = 0;
  /** when the current request started (performance.now()) */
  #startedAt = 0;
  /** the moving average of this connection's requests, start to END_REQUEST, in ms */
  #averageMs = 0;
  readonly #durations: ScriptDurations | null;
  /** php-fpm only: the scripts that go on after END_REQUEST; null: none do (php-cgi) */
  readonly #lingering: LingeringScripts | null;
  /** the script of the request that ended last here */
  #lastScript: string | null = null;
  /** while lingering: the script its child still runs, and since when (performance.now()) */
  #lingerScript: string | null = null;
  #lingerSince = 0;
  #timer: NodeJS.Timeout | null = null;
  /** the running request's run timeout (runTimeoutMs), started once its body is sent */
  #runTimer: NodeJS.Timeout | null = null;
  #abortTimer: NodeJS.Timeout | null = null;
  /** the socket's last error, kept as the cause of the close */
  #socketError: Error | null = null;
  /** why we closed the connection ourselves */
  #failure: Error | null = null;
  /** when the connection was made (performance.now()): the pool retires it at an age */
  readonly openedAt = performance.now();
  /** a management request (GET_VALUES) waiting for its answer */
  #management: ((record: FastCgiRecord | Error) => void) | null = null;
  /** what a request's RunHandle asks of its connection (one object per connection, not per request) */
  readonly #calls: CallControl = {
    abort: (call, reason) => this.#abort(call, reason),
    resume: (call) => this.#resumeStdout(call),
  };

  /**
   * Use connectFastCgi(); this wraps a socket that is already connected. `reads`: the socket was
   * connected with its `onread`; without it, the socket's 'data' events are read.
   */
  constructor(
    socket: Socket,
    address: FastCgiAddress,
    reads?: SocketReads,
    scriptDurations: ScriptDurations | null = null,
    lingeringScripts: LingeringScripts | null = null,
  ) {
    super();
    this.#socket = socket;
    this.#durations = scriptDurations;
    this.#lingering = lingeringScripts;
    this.address = address;
    this.#where = formatFastCgiAddress(address);
    if (address.kind === 'tcp') socket.setNoDelay(true);
    this.#decoder = new RecordDecoder((record) => this.#onRecord(record));
    if (reads === undefined) socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    else reads.attach((chunk) => this.#onData(chunk));
    socket.on('drain', () => this.#call?.wake?.());
    socket.on('error', (error) => {
      this.#socketError = error;
    });
    socket.on('close', () => this.#onClose());
  }

  get state(): FastCgiConnectionState {
    return this.#state;
  }

  /** Requests completed on this connection. */
  get requests(): number {
    return this.#requests;
  }

  get bytesRead(): number {
    return this.#socket.bytesRead;
  }

  get bytesWritten(): number {
    return this.#socket.bytesWritten;
  }

  /**
   * How long this connection has waited for its very first byte, or null once one came (or while
   * idle). A long wait may mean the request sits in the server's accept queue: every php-fpm child
   * is busy, or bound to another kept-alive connection.
   */
  get firstByteWaitMs(): number | null {
    return this.#state === 'busy' && this.#socket.bytesRead === 0 ? performance.now() - this.#startedAt : null;
  }

  /**
   * Waiting for its very first byte for longer than its script usually runs (twice its typical
   * run, and 1 ms more), or for any time when the script has no history: likely in the server's
   * accept queue rather than running (a connection beyond php-fpm's children).
   */
  get likelyQueued(): boolean {
    const wait = this.firstByteWaitMs;
    if (wait === null) return false;
    const typical = this.#typicalMs(this.#call);
    return typical === undefined || wait > 2 * typical + 1;
  }

  /** How long the call's script usually runs (ScriptDurations); undefined: not timed, or no run yet. */
  #typicalMs(call: Call | null): number | undefined {
    const script = call?.script ?? null;
    return script === null ? undefined : this.#durations?.typicalMs(script);
  }

  /** Bytes written but still queued in our socket buffer (not yet taken by the kernel). */
  get bufferedBytes(): number {
    return this.#socket.writableLength;
  }

  /** False while the socket is paused because STDOUT's reader is behind. */
  get reading(): boolean {
    return !this.#socket.isPaused();
  }

  /**
   * Starts a request whose STDOUT is a Readable with backpressure. Throws at once (leaving the
   * connection idle) when it is not idle or a param does not fit a record (FastCgiParamTooLargeError).
   */
  request(options: FastCgiRequestOptions): FastCgiCall {
    const sink = new ReadableStdout(options.stdoutHighWaterMark ?? DEFAULT_STDOUT_HIGH_WATER_MARK);
    // #newCall makes the handle of a ReadableStdout sink a StreamCall
    return this.start(options, sink) as StreamCall;
  }

  /**
   * Starts a request whose STDOUT records go to `sink` as they arrive (no stream in between). Throws
   * at once, as request() does, before the sink is bound.
   */
  start(options: FastCgiRequestOptions, sink: StdoutSink): FastCgiRun {
    if (this.#state !== 'idle') {
      throw new Error(`FastCGI connection to ${this.#where} is ${this.#state}; it runs one request at a time`);
    }
    const stdin = options.stdin;
    // no body, or a small one: the whole request in one buffer and one write (php gets it in one read)
    const inline = isInlineBody(stdin);
    const head = encodeRequestHead(REQUEST_ID, options.params, inline ? (stdin ?? EMPTY_STDIN) : null);
    const { call, run } = this.#newCall(options, sink, 'running');
    this.#state = 'busy';
    this.#call = call;
    this.#startedAt = performance.now();
    this.#write(head);
    if (inline) {
      call.stdinDone = true;
      this.#updateTimer(call);
    } else {
      this.#updateTimer(call);
      this.#pumpStdin(call, stdin).catch((error) => this.#abort(call, error));
    }
    this.#listen(call);
    return run;
  }

  /**
   * Whether queue() takes a request with this body now: a request runs whose body was all sent and
   * whose STDOUT is being read, nothing is queued yet, and the body is small and in memory (a
   * queued request may have to be sent again elsewhere, so a stream never is).
   */
  canQueue(stdin: FastCgiBody): boolean {
    const call = this.#call;
    return (
      this.#state === 'busy' &&
      call !== null &&
      call.phase === 'running' &&
      call.stdinDone &&
      !call.stdoutPaused &&
      this.#next === null &&
      this.#management === null &&
      !this.#socket.destroyed &&
      isInlineBody(stdin)
    );
  }

  /** Whether a request is queued behind the running one. */
  get hasQueued(): boolean {
    return this.#next !== null;
  }

  /**
   * Pipelining's rule, the same for php-cgi workers and php-fpm connections: canQueue(), the
   * running request has run at most `windowMs` or twice its usual time (its script's, else this
   * connection's average request), and its script is not known to run longer than `windowMs`
   * (a request is mostly offered this place as the running one starts, when its own time cannot
   * tell an export from a page). `windowMs` 0: never. `timedOnly`: not behind a script with no
   * timed run yet either.
   */
  queuesBehind(stdin: FastCgiBody, windowMs: number, timedOnly = false): boolean {
    if (windowMs <= 0 || !this.canQueue(stdin)) return false;
    // its END_REQUEST would come long before the child reads what is queued
    const script = this.#call!.script;
    if (script !== null && this.#lingering?.lingers(script) === true) return false;
    const typical = this.#typicalMs(this.#call);
    if (typical === undefined ? timedOnly : typical > windowMs) return false;
    return this.runningMs <= Math.max(windowMs, QUEUE_BEHIND_FACTOR * (typical ?? this.#averageMs));
  }

  /** How long the running request has run, in ms (0 when none runs). */
  get runningMs(): number {
    return this.#state === 'busy' ? performance.now() - this.#startedAt : 0;
  }

  /**
   * Pipelining, for a server that reads its next request only after it answered the current one
   * (php-cgi): writes the whole request now, behind the running one, so PHP starts it without
   * waiting for a round trip through us. It begins (its read timeout, its signal) when the running
   * one ends; if the connection closes first it fails with QueuedRequestNotRunError (nothing of it
   * ran: it may be sent again). An abort of the running request no longer sends ABORT_REQUEST (php
   * would drop the connection after running this one): its output is dropped until its end.
   * Throws when canQueue() is false.
   */
  queue(options: FastCgiRequestOptions, sink: StdoutSink): FastCgiRun {
    const stdin = options.stdin;
    if (!this.canQueue(stdin) || !isInlineBody(stdin)) {
      throw new Error(`FastCGI connection to ${this.#where} cannot queue a request now (see canQueue())`);
    }
    const head = encodeRequestHead(REQUEST_ID, options.params, stdin ?? EMPTY_STDIN);
    const { call, run } = this.#newCall(options, sink, 'queued');
    call.stdinDone = true;
    this.#next = call;
    this.#write(head);
    return run;
  }

  #newCall(
    options: FastCgiRequestOptions,
    sink: StdoutSink,
    phase: 'running' | 'queued',
  ): { call: Call; run: RunHandle } {
    let resolve!: (end: EndRequestBody) => void;
    let reject!: (error: Error) => void;
    const done = new Promise<EndRequestBody>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // The caller may only read STDOUT; a rejection nobody awaits must not crash the process.
    done.catch(noop);
    const signal = options.signal ?? null;
    const call: Call = {
      sink,
      resolve,
      reject,
      onStderr: options.onStderr ?? null,
      readTimeoutMs: options.readTimeoutMs ?? DEFAULT_READ_TIMEOUT_MS,
      runTimeoutMs: options.runTimeoutMs ?? 0,
      timeoutError: options.timeoutError ?? null,
      abortTimeoutMs: options.abortTimeoutMs ?? DEFAULT_ABORT_TIMEOUT_MS,
      stallTimeoutMs: options.stallTimeoutMs ?? 0,
      signal,
      onSignal: () => this.#abort(call, signal?.reason),
      reused: this.#requests > 0 || phase === 'queued',
      script: options.script ?? null,
      after: this.#lingering === null ? null : phase === 'queued' ? (this.#call?.script ?? null) : this.#lastScript,
      phase,
      softAbort: false,
      began: phase === 'running',
      stdinDone: false,
      stdinStarted: false,
      stdoutPaused: false,
      stallTimer: null,
      waitingDrain: false,
      bytesReceived: 0,
      stderr: null,
      wake: null,
    };
    const run =
      sink instanceof ReadableStdout
        ? new StreamCall(sink.stdout, done, call, this.#calls)
        : new RunHandle(done, call, this.#calls);
    sink.bind(run);
    return { call, run };
  }

  /** The request's signal aborts it from now on (a queued one listens once it begins). */
  #listen(call: Call): void {
    const signal = call.signal;
    if (signal === null) return;
    if (signal.aborted) queueMicrotask(call.onSignal);
    else signal.addEventListener('abort', call.onSignal, { once: true });
  }

  /** GET_VALUES as this connection's first and only exchange; the connection is closed after. */
  getValues(names: readonly string[], readTimeoutMs: number): Promise<Record<string, string>> {
    if (this.#state !== 'idle' || this.#requests > 0) {
      throw new Error('GET_VALUES must be the first exchange on a fresh FastCGI connection');
    }
    this.#state = 'busy';
    return new Promise<Record<string, string>>((resolve, reject) => {
      const timer =
        readTimeoutMs > 0
          ? setTimeout(
              () =>
                this.#management?.(
                  new FastCgiReadTimeoutError(`${this.#where} did not answer GET_VALUES within ${readTimeoutMs} ms`),
                ),
              readTimeoutMs,
            )
          : null;
      this.#management = (answer) => {
        this.#management = null;
        if (timer !== null) clearTimeout(timer);
        this.destroy();
        if (answer instanceof Error) reject(answer);
        else if (answer.type === RecordType.GET_VALUES_RESULT) resolve(decodeGetValuesResult(answer.content));
        else
          reject(
            new FastCgiUnexpectedRecordError(`${this.#where} answered GET_VALUES with ${recordTypeName(answer.type)}`),
          );
      };
      this.#writeAll([encodeGetValues(names)]);
    });
  }

  /** Closes gracefully when idle; a running request is cut (its call fails with CONNECTION_CLOSED). */
  close(): void {
    if (this.#state === 'idle') {
      this.#state = 'closed';
      this.#socket.end(() => this.#socket.destroy());
    } else {
      this.destroy();
    }
  }

  /**
   * Fails the running request with `error` (its caller and STDOUT's reader get it) and closes the
   * connection; without a request it only closes. A managed worker uses it when its process is killed.
   */
  fail(error: Error): void {
    if (this.#call !== null && this.#call.phase === 'running') this.#fail(error);
    else this.destroy(error);
  }

  destroy(error?: Error): void {
    if (error !== undefined) this.#failure ??= error;
    this.#socket.destroy();
  }

  // ---- writing ----

  #write(buffer: Buffer): boolean {
    if (this.#socket.destroyed) return false;
    return this.#socket.write(buffer);
  }

  #writeAll(buffers: readonly Buffer[]): boolean {
    if (this.#socket.destroyed) return false;
    if (buffers.length === 1) return this.#socket.write(buffers[0]!);
    this.#socket.cork();
    let ok = true;
    for (const buffer of buffers) ok = this.#socket.write(buffer);
    this.#socket.uncork();
    return ok;
  }

  /** Writes STDIN, then the empty STDIN record, pulling a stream only as fast as the socket drains. */
  async #pumpStdin(call: Call, body: FastCgiBody): Promise<void> {
    if (body !== null && body !== undefined) {
      if (body instanceof Uint8Array) {
        await this.#writeStdin(call, body);
      } else if (Array.isArray(body)) {
        for (const part of body as readonly Uint8Array[]) if (!(await this.#writeStdin(call, part))) return;
      } else if (body instanceof Readable) {
        if (!(await this.#pumpReadable(call, body))) return;
      } else {
        if (!(await this.#pumpIterable(call, body as AsyncIterable<Uint8Array | string>))) return;
      }
    }
    if (call.phase !== 'running') return;
    this.#writeAll([encodeRecord(RecordType.STDIN, REQUEST_ID)]);
    call.stdinDone = true;
    this.#updateTimer(call);
  }

  /**
   * Writes one chunk as STDIN records; false when the request stopped (finished early, aborted,
   * closed): stop sending. It waits for the socket to drain before writing, not after, so the last
   * chunk is followed by the end of STDIN at once: php answers once it has read CONTENT_LENGTH
   * bytes, and an END_REQUEST that overtook our empty STDIN record would cost the connection.
   */
  async #writeStdin(call: Call, data: Uint8Array): Promise<boolean> {
    if (call.phase !== 'running') return false;
    if (data.length === 0) return true;
    if (this.#socket.writableNeedDrain) {
      // the backend is not reading as fast as we write: wait, with the read timeout running
      call.waitingDrain = true;
      this.#updateTimer(call);
      await new Promise<void>((resolve) => {
        call.wake = resolve;
      });
      call.wake = null;
      call.waitingDrain = false;
      if (call.phase !== 'running') return false;
      this.#touch(call);
    }
    const buffer = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
    this.#writeAll(encodeStreamRecords(RecordType.STDIN, REQUEST_ID, buffer));
    return true;
  }

  async #pumpIterable(call: Call, body: AsyncIterable<Uint8Array | string>): Promise<boolean> {
    const iterator = body[Symbol.asyncIterator]();
    let finished = false;
    try {
      for (;;) {
        call.stdinStarted = true;
        const next = await iterator.next();
        if (next.done) {
          finished = true;
          return true;
        }
        const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
        if (!(await this.#writeStdin(call, chunk))) return false;
      }
    } finally {
      if (!finished) await iterator.return?.();
    }
  }

  /**
   * A Readable (a client's request) is read with read() rather than iterated: stopping early must
   * leave it alone (iterating would destroy it, and with it the client's socket and our answer).
   */
  #pumpReadable(call: Call, body: Readable): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      let waiting = false;
      const cleanup = () => {
        body.off('readable', pull);
        body.off('end', onEnd);
        body.off('error', onError);
        body.off('close', onClose);
      };
      const pull = async () => {
        if (waiting) return;
        for (;;) {
          if (call.phase !== 'running') {
            cleanup();
            resolve(false);
            return;
          }
          const chunk: Buffer | string | null = body.read();
          if (chunk === null) return; // 'readable' or 'end' comes next
          call.stdinStarted = true;
          waiting = true;
          const more = await this.#writeStdin(call, typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
          waiting = false;
          if (!more) {
            cleanup();
            resolve(false);
            return;
          }
        }
      };
      const onEnd = () => {
        cleanup();
        resolve(true);
      };
      const onError = (error: Error) => {
        cleanup();
        reject(new FastCgiAbortedError(`the request body failed: ${error.message}`, { cause: error }));
      };
      const onClose = () => {
        if (body.readableEnded) return;
        cleanup();
        reject(new FastCgiAbortedError('the request body closed before its end (the client left)'));
      };
      body.on('readable', pull);
      body.on('end', onEnd);
      body.on('error', onError);
      body.on('close', onClose);
      if (body.readableEnded) onEnd();
      else void pull();
    });
  }

  // ---- reading ----

  #onData(chunk: Buffer): void {
    const call = this.#call;
    if (call !== null) {
      call.bytesReceived += chunk.length;
      this.#touch(call);
    }
    try {
      this.#decoder.push(chunk);
    } catch (error) {
      this.#fail(error as Error);
    }
  }

  /** Returns false to hold further records while STDOUT's reader is behind. */
  #onRecord(record: FastCgiRecord): boolean {
    if (this.#management !== null) {
      this.#management(record);
      return false;
    }
    const call = this.#call;
    if (call === null || call.phase === 'finished') {
      throw new FastCgiUnexpectedRecordError(
        `${this.#where} sent ${recordTypeName(record.type)} while no request was running`,
        { type: record.type },
      );
    }
    if (record.requestId !== REQUEST_ID) {
      throw new FastCgiUnexpectedRecordError(
        `${this.#where} sent ${recordTypeName(record.type)} for request id ${record.requestId}; ours is ${REQUEST_ID}`,
        { type: record.type, requestId: record.requestId },
      );
    }
    if (call.after !== null) this.#noteWait(call);
    switch (record.type) {
      case RecordType.STDOUT:
        // An aborted request's output has nobody to go to. The empty record ending STDOUT is optional.
        if (call.phase === 'running' && record.content.length > 0 && !call.sink.write(record.content)) {
          call.stdoutPaused = true;
          this.#socket.pause();
          this.#updateTimer(call);
          this.#armStall(call);
          return false;
        }
        return true;
      case RecordType.STDERR:
        // lines are assembled only for a request that writes to STDERR
        call.stderr ??= new StderrLines(call.onStderr);
        call.stderr.push(record.content);
        return true;
      case RecordType.END_REQUEST:
        this.#end(call, decodeEndRequest(record.content));
        return true;
      default:
        throw new FastCgiUnexpectedRecordError(
          `${this.#where} sent ${recordTypeName(record.type)} during a request; a responder sends STDOUT, STDERR and END_REQUEST`,
          { type: record.type },
        );
    }
  }

  /** STDOUT's reader wants more: deliver held records, then read the socket again. */
  #resumeStdout(call: Call): void {
    if (!call.stdoutPaused || this.#call !== call) return;
    call.stdoutPaused = false;
    this.#clearStall(call);
    try {
      this.#decoder.resume();
    } catch (error) {
      this.#fail(error as Error);
      return;
    }
    if (!call.stdoutPaused && !this.#socket.destroyed) {
      this.#socket.resume();
      this.#updateTimer(call);
    }
  }

  #end(call: Call, end: EndRequestBody): void {
    call.stderr?.end();
    if (call.phase === 'aborting' && call.softAbort) {
      // no ABORT_REQUEST was sent: the byte stream is intact, the queued request is next
      this.#finish(call);
      this.#requests++;
      this.#advance(call);
      return;
    }
    if (call.phase === 'aborting') {
      // php reads the next record as the next request's BEGIN_REQUEST: if it is our unread
      // ABORT_REQUEST, it drops the connection. So an aborted connection is never reused.
      this.#finish(call);
      this.destroy();
      return;
    }
    if (end.protocolStatus !== ProtocolStatus.REQUEST_COMPLETE) {
      this.#fail(protocolStatusError(end, this.#where));
      return;
    }
    this.#finish(call);
    call.sink.end();
    call.resolve(end);
    this.#requests++;
    if (!call.stdinDone) {
      // The script answered without reading all of STDIN: the rest would be read as the next request.
      this.destroy();
      return;
    }
    this.#advance(call);
  }

  /** The running request (`ended`) ended cleanly: the queued one begins (PHP reads it next). */
  #advance(ended: Call): void {
    const ms = performance.now() - this.#startedAt;
    this.#averageMs = this.#averageMs === 0 ? ms : this.#averageMs + AVERAGE_WEIGHT * (ms - this.#averageMs);
    if (ended.script !== null) this.#durations?.record(ended.script, ms);
    this.#lastScript = ended.script;
    const next = this.#next;
    if (next === null) {
      if (ended.script !== null && this.#lingering?.lingers(ended.script) === true) {
        this.#linger(ended.script, ended.readTimeoutMs);
        return;
      }
      this.#state = 'idle';
      this.emit('idle');
      return;
    }
    this.#next = null;
    next.phase = 'running';
    next.began = true;
    this.#call = next;
    this.#startedAt = performance.now();
    this.#updateTimer(next);
    const signal = next.signal;
    if (signal !== null) {
      // aborted while queued: PHP has it and runs it whatever we send, so no ABORT_REQUEST
      if (signal.aborted) this.#abort(next, signal.reason, true);
      else signal.addEventListener('abort', next.onSignal, { once: true });
    }
    this.emit('advance');
  }

  /** The request's first record: had it waited far longer than its script runs, the one before lingered. */
  #noteWait(call: Call): void {
    const previous = call.after!;
    call.after = null;
    this.#lingering?.noteWait(previous, performance.now() - this.#startedAt, this.#typicalMs(call));
  }

  /**
   * The script that just ended goes on running (fastcgi_finish_request): the child would read a
   * request written here only once it is done. So no request is: the connection is half-closed,
   * php-fpm closes it when the script is done (the linger is timed then), and the child goes back
   * to taking new connections. It still counts as open meanwhile: its child is busy.
   */
  #linger(script: string, timeoutMs: number): void {
    this.#state = 'lingering';
    this.#lingerScript = script;
    this.#lingerSince = performance.now();
    this.#socket.end();
    if (timeoutMs > 0) this.#timer = setTimeout(() => this.destroy(), timeoutMs).unref();
  }

  // ---- ending ----

  /** The request is over for the connection: timers off, listeners off, pump woken. */
  #finish(call: Call): void {
    call.phase = 'finished';
    this.#clearTimer();
    this.#clearRunTimer();
    this.#clearStall(call);
    if (this.#abortTimer !== null) {
      clearTimeout(this.#abortTimer);
      this.#abortTimer = null;
    }
    call.signal?.removeEventListener('abort', call.onSignal);
    call.wake?.();
    if (this.#call === call) this.#call = null;
    if (call.stdoutPaused) {
      call.stdoutPaused = false;
      this.#socket.resume();
    }
  }

  #abort(call: Call, reason?: unknown, soft = this.#next !== null): void {
    if (call.phase !== 'running') return; // a queued one listens to its signal once it begins
    const error =
      reason instanceof FastCgiAbortedError || reason instanceof StreamStalledError
        ? reason
        : new FastCgiAbortedError('the request was aborted (the client left)', {
            cause: reason,
            details: { address: this.#where },
          });
    call.phase = 'aborting';
    // With a request queued behind, php would read ABORT_REQUEST only after running that one, then
    // drop the connection: this one's output is dropped instead until its end, and the queued one
    // follows on the same connection. (Decided before held records are read: one may be its end.)
    call.softAbort = soft;
    this.#clearStall(call);
    call.wake?.();
    call.reject(error);
    call.sink.destroy(error);
    if (call.stdoutPaused) {
      // its records are dropped from now on: read them so that END_REQUEST can arrive
      call.stdoutPaused = false;
      try {
        this.#decoder.resume();
      } catch (decodeError) {
        this.#fail(decodeError as Error);
        return;
      }
      this.#socket.resume();
    }
    if (this.#call !== call) return; // END_REQUEST was among the held records
    this.#clearTimer();
    this.#clearRunTimer();
    if (!call.softAbort) this.#writeAll([encodeAbortRequest(REQUEST_ID)]);
    this.#abortTimer = setTimeout(() => {
      this.#abortTimer = null;
      this.destroy();
    }, call.abortTimeoutMs);
  }

  /** A failure that leaves the byte stream in doubt: the request fails and the socket closes. */
  #fail(error: Error): void {
    const call = this.#call;
    if (call !== null) {
      const wasRunning = call.phase === 'running';
      this.#finish(call);
      if (wasRunning) {
        call.reject(error);
        call.sink.destroy(error);
      }
    }
    if (this.#management !== null) this.#management(error);
    this.destroy(error);
  }

  #onClose(): void {
    // a reset of an idle connection (php closing at pm.max_requests with our empty STDIN record
    // unread) is a normal end; our own failures are reported whatever the state
    const quiet = (this.#state === 'idle' || this.#state === 'lingering') && this.#failure === null;
    if (this.#state === 'lingering')
      this.#lingering?.noteLinger(this.#lingerScript!, performance.now() - this.#lingerSince);
    this.#state = 'closed';
    const next = this.#next;
    if (next !== null) {
      this.#next = null;
      next.phase = 'finished';
      const error = new QueuedRequestNotRunError(
        `the FastCGI connection to ${this.#where} closed before the request queued on it began; nothing of it ran`,
        { cause: this.#failure ?? this.#socketError ?? undefined, details: { address: this.#where } },
      );
      next.reject(error);
      next.sink.destroy(error);
    }
    const call = this.#call;
    if (call !== null) {
      const bytes = call.bytesReceived;
      const cause = this.#socketError;
      this.#fail(
        call.phase === 'running'
          ? new FastCgiConnectionClosedError(
              `FastCGI server ${this.#where} closed the connection before END_REQUEST ` +
                `(${bytes} bytes received${cause ? `; ${cause.message}` : ''}); the PHP process may have died`,
              { cause, details: { address: this.#where, bytesReceived: bytes, reused: call.reused } },
            )
          : new Error('closed while aborting'),
      );
    } else if (this.#management !== null) {
      this.#management(new FastCgiConnectionClosedError(`${this.#where} closed the connection during GET_VALUES`));
    }
    this.#clearTimer();
    this.#clearRunTimer();
    if (this.#abortTimer !== null) clearTimeout(this.#abortTimer);
    this.emit('close', this.#failure ?? (quiet ? null : this.#socketError));
  }

  // ---- send_timeout: a reader that stopped reading ----

  #armStall(call: Call): void {
    if (call.stallTimeoutMs <= 0 || call.stallTimer !== null) return;
    call.stallTimer = setTimeout(() => {
      call.stallTimer = null;
      if (this.#call !== call || call.phase !== 'running' || !call.stdoutPaused) return;
      this.#abort(
        call,
        new StreamStalledError(
          `the reader of the response from ${this.#where} read nothing for ${call.stallTimeoutMs} ms (send_timeout); the request was aborted`,
          { address: this.#where },
        ),
      );
    }, call.stallTimeoutMs);
  }

  #clearStall(call: Call): void {
    if (call.stallTimer !== null) clearTimeout(call.stallTimer);
    call.stallTimer = null;
  }

  // ---- the read timeout ----

  /**
   * The read timeout runs while the backend owes us something: after STDIN was sent, or while it
   * is not taking STDIN. It stops while we wait for the client's body or for STDOUT's reader.
   */
  #updateTimer(call: Call): void {
    const run =
      call.phase === 'running' && call.readTimeoutMs > 0 && !call.stdoutPaused && (call.stdinDone || call.waitingDrain);
    if (!run) this.#clearTimer();
    else if (this.#timer === null) this.#timer = setTimeout(() => this.#onReadTimeout(call), call.readTimeoutMs);
    // after the read timer: of two due together (a silent script), the silence is named
    if (this.#runTimer === null && call.runTimeoutMs > 0 && call.stdinDone && call.phase === 'running') {
      this.#runTimer = setTimeout(() => this.#onRunTimeout(call), call.runTimeoutMs);
    }
  }

  /** Bytes moved: the timeout starts over. */
  #touch(call: Call): void {
    if (this.#timer !== null) this.#timer.refresh();
    else this.#updateTimer(call);
  }

  #clearTimer(): void {
    if (this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  #clearRunTimer(): void {
    if (this.#runTimer !== null) {
      clearTimeout(this.#runTimer);
      this.#runTimer = null;
    }
  }

  #onRunTimeout(call: Call): void {
    this.#runTimer = null;
    if (this.#call !== call || call.phase !== 'running') return;
    this.#fail(
      call.timeoutError !== null
        ? call.timeoutError(call.runTimeoutMs, 'run')
        : new FastCgiReadTimeoutError(
            `the script on FastCGI server ${this.#where} ran for ${call.runTimeoutMs} ms without ending`,
            { address: this.#where, readTimeoutMs: call.runTimeoutMs },
          ),
    );
  }

  #onReadTimeout(call: Call): void {
    this.#timer = null;
    if (this.#call !== call || call.phase !== 'running') return;
    if (call.timeoutError !== null) {
      this.#fail(call.timeoutError(call.readTimeoutMs, 'silence'));
      return;
    }
    this.#fail(
      new FastCgiReadTimeoutError(
        `FastCGI server ${this.#where} sent nothing for ${call.readTimeoutMs} ms` +
          (call.stdinDone ? '' : ' and stopped reading the request body') +
          ' (exec_ttl: raise http.pool.supervisor.exec_ttl for scripts slow by design)',
        { address: this.#where, readTimeoutMs: call.readTimeoutMs },
      ),
    );
  }
}

/** request()'s running request: its handle, and STDOUT as a Readable. */
class StreamCall extends RunHandle implements FastCgiCall {
  readonly stdout: Readable;

  constructor(stdout: Readable, done: Promise<EndRequestBody>, call: Call, control: CallControl) {
    super(done, call, control);
    this.stdout = stdout;
  }
}

/** request()'s sink: STDOUT as a Readable, paused while its reader is behind; destroying it aborts. */
class ReadableStdout implements StdoutSink {
  readonly stdout: Readable;
  #control: StdoutControl | null = null;

  constructor(highWaterMark: number) {
    this.stdout = new Readable({
      highWaterMark,
      read: () => this.#control?.resume(),
      destroy: (error, callback) => {
        // a no-op once the request is over
        this.#control?.abort(error ?? undefined);
        callback(error);
      },
    });
    // Errors reach readers through pipeline / async iteration; without a listener one would crash.
    this.stdout.on('error', noop);
  }

  bind(control: StdoutControl): void {
    this.#control = control;
  }

  write(chunk: Buffer): boolean {
    // the record's memory is the connection's read buffer: the stream keeps a copy
    return this.stdout.push(Buffer.from(chunk));
  }

  end(): void {
    this.stdout.push(null);
  }

  destroy(error: Error): void {
    if (!this.stdout.destroyed) this.stdout.destroy(error);
  }
}

function protocolStatusError(end: EndRequestBody, where: string): FastCgiError {
  const details = { address: where, protocolStatus: end.protocolStatus, appStatus: end.appStatus };
  switch (end.protocolStatus) {
    case ProtocolStatus.OVERLOADED:
      return new FastCgiOverloadedError(`FastCGI server ${where} refused the request: OVERLOADED`, { details });
    case ProtocolStatus.CANT_MPX_CONN:
      return new FastCgiRequestRejectedError(
        `FastCGI server ${where} refused the request: CANT_MPX_CONN (it runs one request per connection)`,
        details,
      );
    case ProtocolStatus.UNKNOWN_ROLE:
      return new FastCgiRequestRejectedError(
        `FastCGI server ${where} refused the request: UNKNOWN_ROLE (it is not a FastCGI responder)`,
        details,
      );
    default:
      return new FastCgiRequestRejectedError(
        `FastCGI server ${where} ended the request with protocol status ${end.protocolStatus}, which FastCGI 1.0 does not define`,
        details,
      );
  }
}
