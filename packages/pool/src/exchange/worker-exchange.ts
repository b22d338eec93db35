import { Chunks } from '../chunks.js';
import { FileBody } from '../file-body.js';
import { BadReplyError, ExecAbortedError } from '../errors.js';
import type { Pool, PoolExecOptions } from '../pool/pool.js';
import { type Frame, frameBodyParts, frameContext, STREAM } from '../protocol/frame.js';
import {
  type Codec,
  decodeResponseContext,
  encodeRequestContext,
  type HeaderMap,
  type HttpRequestContext,
  type HttpResponseContext,
} from '../protocol/http-context.js';
import { headerMapProblem, wellFormedHeaders } from '../protocol/header-fields.js';
import { DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADER_COUNT } from '../fastcgi/cgi-response.js';
import type { ExecReply, ExecRequest, ReplyStream } from '../worker/worker.js';
import {
  type Exchange,
  type ExchangeOptions,
  type ExchangeRequest,
  type ExchangeResponse,
  labelOf,
} from './exchange.js';
import { ReplyBody } from './reply-body.js';

/**
 * Worker mode behind the exchange: an ExchangeRequest becomes RoadRunner's HTTP request context
 * (json or proto codec) and body in one frame; the reply frames become status, headers and a body
 * (whole, or a stream for a streamed reply). 1xx frames go to onInformational.
 */
export class WorkerExchange implements Exchange {
  readonly streamsRequestBody = false;
  readonly takesParsedForms = true;
  readonly pool: Pool;
  readonly codec: Codec;

  constructor(pool: Pool, codec: Codec) {
    this.pool = pool;
    this.codec = codec;
  }

  exchange(request: ExchangeRequest, options?: ExchangeOptions): Promise<ExchangeResponse> {
    const body = request.body;
    return body instanceof FileBody ? this.#exchangeFileBody(body, request, options) : this.#exchange(request, options);
  }

  /** Its file stays open while a worker may read it (once more if the request runs again elsewhere). */
  async #exchangeFileBody(
    body: FileBody,
    request: ExchangeRequest,
    options?: ExchangeOptions,
  ): Promise<ExchangeResponse> {
    if (!body.acquire()) throw new ExecAbortedError('the request body was let go before a worker took it');
    try {
      return await this.#exchange(request, options);
    } finally {
      body.release();
    }
  }

  async #exchange(request: ExchangeRequest, options?: ExchangeOptions): Promise<ExchangeResponse> {
    const execOptions: PoolExecOptions = { label: labelOf(request) };
    if (options?.signal !== undefined) execOptions.signal = options.signal;
    const reply = await this.pool.exec(toExecRequest(request, this.codec), execOptions);
    const response = await toExchangeResponse(reply, options);
    // HEAD gets the head alone: a streamed body (an endless one too) is stopped now, not run to its end
    if (request.method === 'HEAD' && response.body instanceof ReplyBody) {
      response.body.destroy();
      return { ...response, body: EMPTY_BODY };
    }
    return response;
  }
}

const EMPTY_BODY = Buffer.alloc(0);

/** The request as one goridge frame's parts: the encoded context and the body (parsed form or bytes). */
export function toExecRequest(request: ExchangeRequest, codec: Codec): ExecRequest {
  const { flags, context } = encodeRequestContext(toRequestContext(request), codec);
  const { body, form } = request;
  if (form !== null) return { flags, context, body: form.fields };
  if (body === null) return { flags, context, body: null };
  if (Buffer.isBuffer(body)) return { flags, context, body };
  if (body instanceof Chunks) return { flags, context, body: body.parts };
  if (body instanceof FileBody) return { flags, context, body };
  throw new TypeError('a worker needs the request body as bytes (Buffer, Chunks or FileBody), not a stream');
}

/** RoadRunner's HTTP request context (PROTOCOL.md §5.3) for an exchange request. */
export function toRequestContext(request: ExchangeRequest): HttpRequestContext {
  const { target } = request;
  const q = target.indexOf('?');
  // bytes that are not UTF-8 as U+FFFD, as RoadRunner's JSON has them (a lone surrogate would fail PHP's json_decode)
  const headers = wellFormedHeaders(request.headers);
  const cookie = headers.Cookie;
  return {
    remoteAddr: request.remoteAddr,
    protocol: request.protocol,
    method: request.method,
    // RR quirk: the URI is absolute; an absolute-form request target is used as given
    uri: (isAbsoluteForm(target) ? target : `${request.scheme}://${request.host}${target}`).replace(/[\r\n]/g, ''),
    headers,
    cookies: parseCookies(cookie === undefined ? undefined : cookie.join('; ')),
    rawQuery: q < 0 ? '' : target.slice(q + 1).replace(/[\r\n]/g, ''),
    parsed: request.form !== null,
    uploads: request.form === null ? null : request.form.uploads,
    attributes: null,
  };
}

function isAbsoluteForm(target: string): boolean {
  return target.charCodeAt(0) !== 47 /* '/' */ && /^[a-z][a-z0-9+.-]*:\/\//i.test(target);
}

/**
 * Cookie header → name → value (URL-unescaped; undecodable ones dropped, as RR does). A name sent
 * twice keeps its first value, as PHP's $_COOKIE (RR keeps the last): a browser sends the cookie of
 * the more specific domain and path first, so a cookie a sibling subdomain set for the parent
 * domain cannot take the place of the site's own session cookie.
 */
export function parseCookies(header: string | undefined): Record<string, string> {
  // Null prototype: a cookie named __proto__ is just a key, never the object's prototype.
  const cookies: Record<string, string> = Object.create(null);
  if (header === undefined || header === '') return cookies;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name === '' || name in cookies) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    try {
      cookies[name] = value.includes('%') ? decodeURIComponent(value) : value;
    } catch {
      // RR drops cookies whose value fails to unescape
    }
  }
  return cookies;
}

/**
 * The bound on a worker reply's head, as classic mode's CGI head (and nginx's "upstream sent too
 * big header"): a head of 100,000 headers or one 10 MB value blocked the event loop for every site
 * as Node decoded and wrote it (up to 1.2 s), and reached the client. Checked on the encoded context,
 * before it is decoded; the frame was read whole, so the worker stays in step and serves on.
 */
export const MAX_REPLY_HEAD_BYTES = DEFAULT_MAX_HEADER_BYTES;
export const MAX_REPLY_HEADER_COUNT = DEFAULT_MAX_HEADER_COUNT;

function decodeHead(flags: number, context: Buffer): HttpResponseContext {
  if (context.length > MAX_REPLY_HEAD_BYTES) {
    throw new BadReplyError(
      `worker reply head (status and headers) is ${context.length} bytes, over the ${MAX_REPLY_HEAD_BYTES}-byte bound on a reply head (fixed, as classic mode's); the script sends too many or too large headers`,
    );
  }
  let head: HttpResponseContext;
  try {
    head = decodeResponseContext(flags, context);
  } catch (error) {
    throw new BadReplyError(`worker reply has an undecodable context: ${(error as Error).message}`, { cause: error });
  }
  if (head.status < 100 || head.status > 599) {
    throw new BadReplyError(`worker replied with status ${head.status}, outside 100-599`);
  }
  // refused here, as a 502 for this request, rather than by Node as it writes the head (a 500)
  const problem = headerMapProblem(head.headers, MAX_REPLY_HEADER_COUNT);
  if (problem !== null) throw new BadReplyError(`worker reply: ${problem}`);
  return head;
}

/**
 * The first reply frame (and, for a stream, the frames after it) as an exchange response. 1xx
 * frames are handed to onInformational and skipped; a stream is cancelled if this fails.
 */
export async function toExchangeResponse(reply: ExecReply, options?: ExchangeOptions): Promise<ExchangeResponse> {
  const frames = reply.stream;
  try {
    let head = decodeHead(reply.flags, reply.context);
    let body: Buffer | readonly Buffer[] = reply.bodyParts ?? reply.body;
    let streaming = frames !== null;
    while (head.status < 200) {
      if (!streaming || frames === null) {
        throw new BadReplyError(`worker sent a final reply with informational status ${head.status}`);
      }
      options?.onInformational?.(head.status, head.headers);
      const frame = await nextFrame(frames);
      if (frame === null) throw new BadReplyError('worker ended the stream after an informational reply');
      head = decodeHead(frame.flags, frameContext(frame));
      body = frameBodyParts(frame);
      // the frame without STREAM is the last: no body stream follows
      streaming = (frame.control & STREAM) !== 0;
    }
    if (!streaming || frames === null) {
      if (frames !== null) frames.destroy();
      return { status: head.status, headers: head.headers, body: wholeBody(body) };
    }
    // the worker's error came in the same read as the stream's first frame: nothing went out yet,
    // so the request fails as if the error had been its reply
    if (frames.errored !== null) throw frames.errored;
    const stream = new ReplyBody(Buffer.isBuffer(body) ? [body] : body, frames);
    const signal = options?.signal;
    if (signal !== undefined) {
      if (signal.aborted) stream.destroy();
      else {
        const cancel = () => stream.destroy();
        signal.addEventListener('abort', cancel, { once: true });
        stream.once('close', () => signal.removeEventListener('abort', cancel));
      }
    }
    return { status: head.status, headers: head.headers, body: stream };
  } catch (error) {
    frames?.destroy();
    throw error;
  }
}

function wholeBody(body: Buffer | readonly Buffer[]): Buffer | Chunks {
  if (Buffer.isBuffer(body)) return body;
  return body.length === 1 ? body[0]! : new Chunks(body);
}

/** The next frame of a stream; null when it ended. Rejects when the stream fails. */
function nextFrame(frames: ReplyStream): Promise<Frame | null> {
  if (frames.errored !== null) return Promise.reject(frames.errored);
  const frame = frames.read() as Frame | null;
  if (frame !== null) return Promise.resolve(frame);
  if (frames.readableEnded || frames.destroyed) return Promise.resolve(null);
  return new Promise((resolve, reject) => {
    const settle = (): void => {
      frames.off('readable', onReadable);
      frames.off('end', onEnd);
      frames.off('error', onError);
      frames.off('close', onEnd);
    };
    const onReadable = (): void => {
      const next = frames.read() as Frame | null;
      if (next === null) return;
      settle();
      resolve(next);
    };
    const onEnd = (): void => {
      settle();
      resolve(null);
    };
    const onError = (error: Error): void => {
      settle();
      reject(error);
    };
    frames.on('readable', onReadable);
    frames.once('end', onEnd);
    frames.once('error', onError);
    frames.once('close', onEnd);
  });
}

export type { HeaderMap };
