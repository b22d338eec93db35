// A CGI response as a FastCGI responder writes it on STDOUT (RFC 3875 §6): header fields, a blank
// line, the body. The header block is found incrementally (it may arrive split over any number of
// records, or share a record with the body's first bytes), checked, and the rest of STDOUT is the
// body, handed on as the same stream.
import { Readable } from 'node:stream';
import { FastCgiBadHeaderError, FastCgiConnectionClosedError, FastCgiHeaderTooLargeError } from '../errors.js';
import { type RecycledBuffers, responseBuffers } from '../recycled-buffers.js';
import { streamsOnPurpose } from '../streamed-on-purpose.js';
import { DEFAULT_STDOUT_HIGH_WATER_MARK, type StdoutControl, type StdoutSink } from './connection.js';
import { controlByteIn, isFieldName } from '../protocol/header-fields.js';

/**
 * nginx's fastcgi_buffer_size (4 or 8 KiB) is the usual "upstream sent too big header" limit;
 * WordPress sites with a CSP and a dozen cookies outgrow it, so the default here is roomier.
 */
export const DEFAULT_MAX_HEADER_BYTES = 64 * 1024;
export const DEFAULT_MAX_HEADER_COUNT = 500;

export interface CgiHeadLimits {
  /** bytes of the header block, blank line included; default DEFAULT_MAX_HEADER_BYTES */
  maxHeaderBytes?: number;
  /** header lines (folded continuations count); default DEFAULT_MAX_HEADER_COUNT */
  maxHeaderCount?: number;
}

export interface CgiResponseHead {
  /** From `Status:`; else 302 with a Location (§6.2.3, §6.2.4); else 200. */
  status: number;
  /** The reason phrase after the code in `Status: 404 Not Found`, or null. */
  statusText: string | null;
  /**
   * Lower-case name → values in arrival order (each `Set-Cookie` its own entry), on an object
   * that inherits nothing (HEADER_FIELDS). Values are latin1 strings, one char per byte, as
   * Node's HTTP layer takes them. `Status` is consumed, not listed.
   */
  headers: Record<string, string[]>;
  /**
   * RFC 3875 §6.2.2 local redirect: no `Status:` and a `Location:` that is a path on this server
   * ("/login?x=1"). The server may answer the request for that path itself (an internal redirect,
   * as Apache does); `status` is 302 so that one that does not still redirects the client. Null
   * otherwise, including for a client redirect (an absolute URI, §6.2.3) and for any Location
   * sent with a Status (PHP sends `Status: 302 Found` with every `header('Location: ...')`).
   */
  localRedirect: string | null;
}

export interface ParsedCgiHead extends CgiResponseHead {
  /** Bytes after the blank line that arrived with the header block: the body's first bytes. */
  bodyStart: Buffer;
}

export interface CgiResponse extends CgiResponseHead {
  /** The rest of STDOUT (body start included), with its backpressure; destroying it aborts. */
  body: Readable;
}

const NL = 0x0a;
const CR = 0x0d;

/**
 * Finds the end of the header block byte by byte across chunks (no rescans, no joins until it is
 * complete), then parses it. Feed STDOUT with push() until it returns the head; the head's
 * bodyStart holds what followed the blank line in that chunk.
 */
export class CgiHeadParser {
  readonly #maxHeaderBytes: number;
  readonly #maxHeaderCount: number;
  #chunks: Buffer[] = [];
  #bytes = 0;
  /** 0: inside a line; 1: at the start of a line; 2: after a CR at the start of a line */
  #state = 1;
  #done = false;

  constructor(limits: CgiHeadLimits = {}) {
    this.#maxHeaderBytes = limits.maxHeaderBytes ?? DEFAULT_MAX_HEADER_BYTES;
    this.#maxHeaderCount = limits.maxHeaderCount ?? DEFAULT_MAX_HEADER_COUNT;
  }

  /** Header bytes seen so far. */
  get bytesSeen(): number {
    return this.#bytes;
  }

  /** Returns the head once the blank line has arrived, else null. Throws a typed error on a bad head. */
  push(chunk: Buffer): ParsedCgiHead | null {
    if (this.#done) throw new Error('CgiHeadParser: the head is complete; the rest is body');
    let state = this.#state;
    const limit = Math.min(chunk.length, this.#maxHeaderBytes - this.#bytes);
    for (let i = 0; i < limit; i++) {
      const c = chunk[i]!;
      if (c === NL) {
        if (state !== 0) {
          // blank line: the block is everything up to here
          this.#done = true;
          this.#chunks.push(chunk.subarray(0, i + 1));
          this.#bytes += i + 1;
          const block = this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#bytes);
          this.#chunks = [];
          return parseHeaderBlock(block, this.#maxHeaderCount, chunk.subarray(i + 1));
        }
        state = 1;
      } else if (c === CR && state === 1) {
        state = 2;
      } else {
        state = 0;
      }
    }
    if (limit < chunk.length) {
      throw new FastCgiHeaderTooLargeError(
        `the script's header block is over ${this.#maxHeaderBytes} bytes without its blank line (nginx: ` +
          `"upstream sent too big header"): make it send fewer or smaller headers (most often a cookie, ` +
          `or a header added in a loop); warmpool serve has no config key for this limit (nginx's ` +
          `fastcgi_buffer_size is 4 or 8 KiB)`,
        { maxHeaderBytes: this.#maxHeaderBytes },
      );
    }
    this.#state = state;
    this.#chunks.push(Buffer.from(chunk)); // kept past this call, whose chunk may be a reused read buffer
    this.#bytes += chunk.length;
    return null;
  }

  /** STDOUT ended: throws unless the head was complete. */
  end(): void {
    if (this.#done) return;
    throw new FastCgiBadHeaderError(
      this.#bytes === 0
        ? 'the script ended without any output: no CGI header block (a crash, or exit before output?)'
        : `the script's output ended inside its header block, after ${this.#bytes} bytes: ${quote(Buffer.concat(this.#chunks).subarray(0, 200))}`,
      { bytes: this.#bytes },
    );
  }
}

/** A complete header block in one buffer (tests, fixed responses). */
export function parseCgiHead(bytes: Buffer, limits: CgiHeadLimits = {}): ParsedCgiHead {
  const parser = new CgiHeadParser(limits);
  const head = parser.push(bytes);
  if (head === null) parser.end();
  return head!;
}

/**
 * The prototype of a head's fields: empty, with a null prototype, so the fields inherit nothing (a
 * field named "constructor" or "__proto__" is just a field). Not Object.create(null) for the
 * fields themselves: V8 never optimized the function that filled such a dictionary object (each
 * call's stores into it reset the function's counters), which tripled this function's cost.
 */
const HEADER_FIELDS: object = Object.create(null);

// Hot: once per classic response. Objects are built as literals, never spread (`{ ...head, x }`
// costs about half a microsecond in V8, more than parsing a short head).
function parseHeaderBlock(block: Buffer, maxHeaderCount: number, bodyStart: Buffer): ParsedCgiHead {
  // latin1 keeps every byte as one char: the values go to Node's HTTP layer as they came
  const lines = block.toString('latin1').split('\n');
  lines.pop(); // after the final newline
  lines.pop(); // the blank line (or lone CR)
  if (lines.length === 0) {
    throw new FastCgiBadHeaderError('the script sent an empty header block; a CGI response needs at least one field');
  }
  if (lines.length > maxHeaderCount) {
    throw new FastCgiHeaderTooLargeError(
      `the script sent ${lines.length} header lines; the limit is ${maxHeaderCount}: make it send fewer headers (most often one added in a loop)`,
      {
        count: lines.length,
        maxHeaderCount,
      },
    );
  }
  const headers: Record<string, string[]> = Object.create(HEADER_FIELDS);
  let status: number | null = null;
  let statusText: string | null = null;
  let last: { name: string; values: string[] } | null = null;
  for (let line of lines) {
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const first = line.charCodeAt(0);
    if (first === 0x20 || first === 0x09) {
      // obs-fold (RFC 9112 §5.2): a continuation joins the previous value with one space
      if (last === null)
        throw new FastCgiBadHeaderError(`header block starts with a continuation line: ${quote(line)}`);
      const more = checkedValue(line, last.name);
      const values = last.values;
      values[values.length - 1] = values[values.length - 1] === '' ? more : `${values[values.length - 1]} ${more}`;
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) {
      throw new FastCgiBadHeaderError(
        colon === 0 ? `header line without a name: ${quote(line)}` : `header line without a colon: ${quote(line)}`,
      );
    }
    const rawName = line.slice(0, colon);
    if (!isFieldName(rawName)) throw new FastCgiBadHeaderError(`invalid header name ${quote(rawName)}`);
    const name = rawName.toLowerCase();
    const value = checkedValue(line.slice(colon + 1), name);
    if (name === 'status') {
      // several Status lines: the last one counts, as in nginx
      // a CGI response is final: an informational 1xx (101 above all) would leave the client's
      // connection waiting for another response, or switched to a protocol nobody speaks
      const match = /^([2-5][0-9][0-9])(?:[ \t]+(.*))?$/.exec(value);
      if (match === null) {
        throw new FastCgiBadHeaderError(
          /^1[0-9][0-9]\b/.test(value)
            ? `invalid Status header ${quote(value)}: an informational status cannot end a CGI response`
            : `invalid Status header ${quote(value)}: want "NNN reason"`,
        );
      }
      status = Number(match[1]);
      statusText = match[2] === undefined || match[2] === '' ? null : match[2];
      last = { name, values: [] }; // a continuation of Status is dropped with it
      continue;
    }
    let values = headers[name];
    if (values === undefined) {
      values = [];
      headers[name] = values;
    }
    values.push(value);
    last = { name, values };
  }

  let localRedirect: string | null = null;
  const location = headers.location?.[0];
  if (status === null) {
    if (location !== undefined) {
      status = 302;
      if (location.charCodeAt(0) === 0x2f /* / */ && location.charCodeAt(1) !== 0x2f) localRedirect = location;
    } else {
      status = 200;
    }
  }
  return { status, statusText, headers, localRedirect, bodyStart };
}

/** The value without surrounding whitespace; control bytes (but tab) would split or smuggle a response. */
function checkedValue(raw: string, name: string): string {
  let start = 0;
  let end = raw.length;
  while (start < end && isBlank(raw.charCodeAt(start))) start++;
  while (end > start && isBlank(raw.charCodeAt(end - 1))) end--;
  const value = start === 0 && end === raw.length ? raw : raw.slice(start, end);
  const c = controlByteIn(value);
  if (c >= 0) {
    throw new FastCgiBadHeaderError(
      `header ${name} has a control byte 0x${c.toString(16).padStart(2, '0')} in its value`,
    );
  }
  return value;
}

function isBlank(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

function quote(text: string | Buffer): string {
  const s = typeof text === 'string' ? text : text.toString('latin1');
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}…` : s);
}

/**
 * Reads the head from a STDOUT stream and resolves with it and the body: the same stream, paused,
 * with the body's first bytes put back in front (no copy, backpressure kept). On a bad head the
 * promise rejects with the error and the stream is destroyed (which aborts the request).
 */
export function readCgiResponse(stdout: Readable, limits: CgiHeadLimits = {}): Promise<CgiResponse> {
  return new Promise((resolve, reject) => {
    const parser = new CgiHeadParser(limits);
    const cleanup = () => {
      stdout.off('data', onData);
      stdout.off('end', onEnd);
      stdout.off('error', onError);
      stdout.off('close', onClose);
    };
    const fail = (error: Error) => {
      cleanup();
      reject(error);
      // destroyed without the error: the promise carries it, and an 'error' nobody listens to would crash
      stdout.destroy();
    };
    const onData = (chunk: Buffer) => {
      let head: ParsedCgiHead | null;
      try {
        head = parser.push(chunk);
      } catch (error) {
        fail(error as Error);
        return;
      }
      if (head === null) return;
      cleanup();
      stdout.pause();
      if (head.bodyStart.length > 0) stdout.unshift(head.bodyStart);
      const { status, statusText, headers, localRedirect } = head;
      resolve({ status, statusText, headers, localRedirect, body: stdout });
    };
    const onEnd = () => {
      try {
        parser.end();
      } catch (error) {
        fail(error as Error);
      }
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    const onClose = () => {
      cleanup();
      reject(new FastCgiConnectionClosedError('STDOUT closed before the script sent its header block'));
    };
    stdout.on('data', onData);
    stdout.on('end', onEnd);
    stdout.on('error', onError);
    stdout.on('close', onClose);
  });
}

export interface CgiReadOptions extends CgiHeadLimits {
  /**
   * A body up to this many bytes is read whole before the response resolves, as nginx's
   * fastcgi_buffering does; a larger one, or one sent with `X-Accel-Buffering: no`, resolves as a
   * stream once the limit is passed (or with the head). 0: every body streams.
   */
  bufferBytes?: number;
  /** STDOUT buffered for a slow reader of a streamed body before the socket pauses. */
  highWaterMark?: number;
  /**
   * Keep a whole body in a reused buffer and give the result a `release()` to hand it back (for a
   * caller that calls it once nothing reads the body). Default false: the body is copied out into
   * memory of its own at the end and the buffer it was assembled in is reused at once.
   */
  recycle?: boolean;
  /** where the buffers bodies are assembled in come from (default: the process's responseBuffers) */
  buffers?: RecycledBuffers;
}

export interface CgiResult extends CgiResponseHead {
  /**
   * The whole body (one Buffer), or the rest of STDOUT as a stream with backpressure, which aborts
   * the request when destroyed early.
   */
  body: Buffer | Readable;
  /**
   * For a whole body: gives its memory back for reuse by a later response. Call it once nothing
   * will read the body again (the HTTP response closed), or never (the memory is then collected).
   */
  release?: () => void;
}

const EMPTY_BODY = Buffer.alloc(0);
const noop = () => {};

/**
 * A CGI response read straight from the connection's STDOUT records (a StdoutSink for
 * FastCgiConnection.start()): the head is parsed as records arrive, and a body that ends within
 * bufferBytes is kept whole, with no stream, promise or listener per chunk. `response` resolves
 * with the whole body at END_REQUEST, or with a stream as soon as the body is known to stream.
 * A bad head rejects it and aborts the request.
 */
export class CgiResponseReader implements StdoutSink {
  readonly response: Promise<CgiResult>;
  readonly #bufferBytes: number;
  readonly #highWaterMark: number;
  readonly #buffers: RecycledBuffers;
  readonly #recycle: boolean;
  #parser: CgiHeadParser | null;
  #head: CgiResponseHead | null = null;
  /** the body so far, in one buffer from #buffers (records are copied in: they are read buffers) */
  #body: Buffer | null = null;
  #bytes = 0;
  #stream: Readable | null = null;
  #settled = false;
  #control: StdoutControl | null = null;
  #resolve!: (result: CgiResult) => void;
  #reject!: (error: Error) => void;

  /** `bufferBytes` and `recycle` override the options' (so one options object serves every request). */
  constructor(
    options: CgiReadOptions = {},
    bufferBytes = options.bufferBytes ?? 0,
    recycle = options.recycle === true,
  ) {
    this.#bufferBytes = bufferBytes;
    this.#recycle = recycle;
    this.#highWaterMark = options.highWaterMark ?? DEFAULT_STDOUT_HIGH_WATER_MARK;
    this.#buffers = options.buffers ?? responseBuffers;
    this.#parser = new CgiHeadParser(options);
    this.response = new Promise<CgiResult>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  bind(control: StdoutControl): void {
    this.#control = control;
  }

  write(chunk: Buffer): boolean {
    // chunk is the connection's read buffer, valid during this call only: what is kept is copied
    if (this.#stream !== null) return this.#stream.push(Buffer.from(chunk));
    if (this.#settled) return true; // a bad head: the request is being aborted
    let body = chunk;
    if (this.#head === null) {
      let parsed: ParsedCgiHead | null;
      try {
        parsed = this.#parser!.push(chunk);
      } catch (error) {
        this.#fail(error as Error);
        return true;
      }
      if (parsed === null) return true;
      this.#parser = null;
      this.#head = parsed;
      body = parsed.bodyStart;
      parsed.bodyStart = EMPTY_BODY; // a view of the connection's read buffer: not kept
      const headers = parsed.headers;
      if (
        this.#bufferBytes === 0 ||
        streamsOnPurpose(headers['x-accel-buffering']?.[0], headers['content-type']?.[0])
      ) {
        // a streaming app: the head now, the body as it comes
        this.#append(body);
        return this.#startStream();
      }
    }
    if (body.length === 0) return true;
    this.#append(body);
    return this.#bytes <= this.#bufferBytes || this.#startStream();
  }

  /** Copies body bytes into #body, moving to a larger buffer when it is full. */
  #append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    const needed = this.#bytes + bytes.length;
    let body = this.#body;
    if (body === null || needed > body.length) {
      const larger = this.#buffers.take(needed);
      if (body !== null) {
        body.copy(larger, 0, 0, this.#bytes);
        this.#buffers.give(body);
      }
      body = larger;
      this.#body = larger;
    }
    bytes.copy(body, this.#bytes);
    this.#bytes = needed;
  }

  end(): void {
    if (this.#stream !== null) {
      this.#stream.push(null);
      return;
    }
    if (this.#settled) return;
    if (this.#head === null) {
      try {
        this.#parser!.end();
      } catch (error) {
        this.#settled = true;
        this.#reject(error as Error);
      }
      return;
    }
    const memory = this.#body;
    this.#body = null;
    if (memory === null) {
      this.#settle(EMPTY_BODY);
      return;
    }
    if (!this.#recycle) {
      // memory of its own, sized to the body; the assembly buffer serves the next response
      const body = Buffer.from(memory.subarray(0, this.#bytes));
      this.#buffers.give(memory);
      this.#settle(body);
      return;
    }
    let given = false;
    this.#settle(memory.subarray(0, this.#bytes), () => {
      if (given) return;
      given = true;
      this.#buffers.give(memory);
    });
  }

  destroy(error: Error): void {
    if (this.#stream !== null) {
      if (!this.#stream.destroyed) this.#stream.destroy(error);
      return;
    }
    if (this.#settled) return;
    this.#settled = true;
    this.#dropBody();
    this.#reject(error);
  }

  /** The body will never be read: its memory goes back at once. */
  #dropBody(): void {
    if (this.#body !== null) this.#buffers.give(this.#body);
    this.#body = null;
  }

  /** The body streams from here: what was kept goes first; returns false when the reader is already behind. */
  #startStream(): boolean {
    const control = this.#control!;
    const stream = new Readable({
      highWaterMark: this.#highWaterMark,
      read: () => control.resume(),
      destroy: (error, callback) => {
        // a no-op once the request is over
        control.abort(error ?? undefined);
        callback(error);
      },
    });
    // Errors reach readers through pipeline / async iteration; without a listener one would crash.
    stream.on('error', noop);
    this.#stream = stream;
    // the stream keeps what came so far: a copy, as it may be read long after the memory goes back
    const more = this.#bytes === 0 || stream.push(Buffer.from(this.#body!.subarray(0, this.#bytes)));
    this.#dropBody();
    this.#settle(stream);
    return more;
  }

  #settle(body: Buffer | Readable, release?: () => void): void {
    this.#settled = true;
    const head = this.#head!;
    const result: CgiResult = {
      status: head.status,
      statusText: head.statusText,
      headers: head.headers,
      localRedirect: head.localRedirect,
      body,
    };
    if (release !== undefined) result.release = release;
    this.#resolve(result);
  }

  /** A bad head: the response fails with its error, and the request is aborted. */
  #fail(error: Error): void {
    this.#settled = true;
    this.#parser = null;
    this.#dropBody();
    this.#reject(error);
    this.#control?.abort(error);
  }
}
