// Classic mode behind the exchange: an ExchangeRequest with its resolved script becomes the CGI
// params nginx's fastcgi_params sends, its body streams to STDIN, and the script's CGI response
// becomes status, headers and a body. The backend is a pool of php-cgi workers (managed) or a
// connection pool to an external php-fpm (`pass`): the same exchange, the same errors.
import type { CancelSignal } from '../cancel.js';
import type { Readable } from 'node:stream';
import { Chunks } from '../chunks.js';
import { FileBody } from '../file-body.js';
import type { FastCgiBody } from '../fastcgi/connection.js';
import { FastCgiClientPool } from '../fastcgi/client-pool.js';
import { DEFAULT_SERVER_SOFTWARE, type EncodedParams, encodeFastCgiParams } from '../fastcgi/params.js';
import { headerTextFromBytes } from '../protocol/header-fields.js';
import { MAX_STDERR_LINES_PER_SECOND, StderrLogLimit } from '../fastcgi/stderr-lines.js';
import { phpLineLevel } from '../worker/output.js';
import type { Logger } from '../logger.js';
import type { Pool } from '../pool/pool.js';
import type { HeaderMap } from '../protocol/http-context.js';
import type { CgiReply, CgiRequest } from '../worker/cgi-worker.js';
import {
  type Exchange,
  type ExchangeOptions,
  type ExchangeRequest,
  type ExchangeResponse,
  type ExchangeScript,
  labelOf,
} from './exchange.js';

/**
 * A response body up to this size is read whole before the response is answered: it gets a
 * Content-Length, the micro-cache can keep it, and PHP is freed before a slow client has read it
 * (nginx's fastcgi_buffering sends each buffer as it fills: nothing goes out here before this much
 * or the end, so a script writing slowly marks its reply, docs/CLASSIC.md). A larger one, or one sent with `X-Accel-Buffering: no` (a PHP
 * app that streams, as nginx users mark it), is streamed with backpressure.
 */
export const DEFAULT_BUFFER_BYTES = 1024 * 1024;

/** What runs the requests: php-cgi workers the pool manages, or an external php-fpm. */
export type FastCgiBackend = Pool<CgiRequest, CgiReply> | FastCgiClientPool;

export interface FastCgiExchangeOptions {
  /** extra params, added last (nginx's fastcgi_param lines): { APP_ENV: "production" } */
  params?: Readonly<Record<string, string>>;
  /** where STDERR lines go (PHP warnings, error_log()), with the script that wrote them */
  logger?: Logger;
  /** see DEFAULT_BUFFER_BYTES; 0 streams every response */
  bufferBytes?: number;
  /** SERVER_SOFTWARE; default "warmpool (nginx-compatible)" (DEFAULT_SERVER_SOFTWARE) */
  serverSoftware?: string;
  /**
   * Reuse the memory of whole bodies once their responses close (ExchangeResponse.release): no
   * fresh memory per response for V8 to collect. Only for an HTTP side where nothing keeps a body
   * past its response without copying it (`warmpool serve`); default false.
   */
  recycleBodies?: boolean;
}

export class FastCgiExchange implements Exchange {
  /** PHP reads its own body from STDIN, at its own pace: never read whole first */
  readonly streamsRequestBody = true;
  /** PHP parses its own forms and uploads */
  readonly takesParsedForms = false;
  readonly backend: FastCgiBackend;
  readonly #extra: Readonly<Record<string, string>> | undefined;
  readonly #logger: Logger | null;
  /** the site's STDERR lines, at most MAX_STDERR_LINES_PER_SECOND logged */
  readonly #stderrLimit: StderrLogLimit | null;
  /**
   * its PHP errors (Fatal error, Parse error, Uncaught), on a bound of their own: a flood of
   * warnings (tt-rss on PHP 8.2 writes thousands a page) dropped the fatal error of a request
   */
  readonly #errorLimit: StderrLogLimit | null;
  readonly #bufferBytes: number;
  readonly #serverSoftware: string;
  readonly #recycleBodies: boolean;

  constructor(backend: FastCgiBackend, options: FastCgiExchangeOptions = {}) {
    this.backend = backend;
    this.#extra = options.params;
    this.#logger = options.logger ?? null;
    const logger = this.#logger;
    const limit = (what: string) =>
      logger === null
        ? null
        : new StderrLogLimit((dropped, script) =>
            logger.warn(
              { stream: 'stderr', suppressed: dropped, script },
              `PHP wrote ${dropped} more ${what} than the ${MAX_STDERR_LINES_PER_SECOND}/s log limit (the last from ${script}); they were dropped`,
            ),
          );
    this.#stderrLimit = limit('stderr lines');
    this.#errorLimit = limit('error lines');
    this.#bufferBytes = options.bufferBytes ?? DEFAULT_BUFFER_BYTES;
    this.#serverSoftware = options.serverSoftware ?? DEFAULT_SERVER_SOFTWARE;
    this.#recycleBodies = options.recycleBodies === true;
  }

  async exchange(request: ExchangeRequest, options?: ExchangeOptions): Promise<ExchangeResponse> {
    const cgi = this.toCgiRequest(request, options?.signal ?? null);
    // the same request object for both backends (a CgiRequest is a FastCgiPoolRequest)
    const reply =
      this.backend instanceof FastCgiClientPool
        ? await this.backend.request(cgi)
        : await this.backend.exec(
            cgi,
            cgi.signal === null ? { label: labelOf(request) } : { signal: cgi.signal, label: labelOf(request) },
          );
    // whole up to bufferBytes, else (or with X-Accel-Buffering: no) streamed: the backend's reader decided
    const response: ExchangeResponse = { status: reply.status, headers: toHeaderMap(reply.headers), body: reply.body };
    if (reply.statusText !== null) response.statusText = reply.statusText;
    if (reply.release !== undefined) response.release = reply.release;
    return response;
  }

  /** The request as a php-cgi worker or php-fpm takes it (also used for num_workers: auto's warm-up). */
  toCgiRequest(request: ExchangeRequest, signal: CancelSignal | null): CgiRequest {
    const script = request.script;
    if (script === undefined || script === null) {
      throw new TypeError('a FastCGI exchange needs the script to run (ExchangeRequest.script, from the resolver)');
    }
    const { body, length } = toStdin(request);
    const logger = this.#logger;
    const limit = this.#stderrLimit;
    const errorLimit = this.#errorLimit!;
    return {
      params: toParams(request, script, length, this.#extra, this.#serverSoftware),
      stdin: body,
      signal,
      onStderr:
        logger === null || limit === null
          ? null
          : (line) => {
              const level = phpLineLevel(line, 'warn');
              if ((level === 'error' ? errorLimit : limit).admit(script.scriptName))
                // the request too, as nginx's "FastCGI sent in stderr" line names it
                logger[level](
                  { script: script.scriptName, stream: 'stderr', request: labelOf(request) },
                  `${script.scriptName}: ${line}`,
                );
            },
      bufferBytes: this.#bufferBytes,
      recycleBody: this.#recycleBodies,
      replayable: body === null && (request.method === 'GET' || request.method === 'HEAD'),
      script: script.scriptFilename,
    };
  }
}

/** The CGI/FastCGI params of an exchange request (RFC 3875 §4.1 as nginx's fastcgi_params sends them). */
export function toParams(
  request: ExchangeRequest,
  script: ExchangeScript,
  contentLength: number | undefined,
  extra: Readonly<Record<string, string>> | undefined,
  serverSoftware = DEFAULT_SERVER_SOFTWARE,
): EncodedParams {
  return encodeFastCgiParams({
    method: request.method,
    scheme: request.scheme,
    requestUri: request.target,
    protocol: request.protocol,
    headers: request.headers,
    host: request.host,
    clientAddress: request.remoteAddr,
    ...(request.remoteUser === undefined ? {} : { remoteUser: request.remoteUser }),
    clientPort: request.remotePort,
    serverAddress: request.serverAddr,
    serverPort: request.serverPort,
    documentRoot: script.documentRoot,
    scriptName: script.scriptName,
    scriptFilename: script.scriptFilename,
    pathInfo: script.pathInfo,
    documentUri: script.documentUri,
    queryString: script.queryString,
    contentType: request.headers['Content-Type']?.[0] ?? '',
    contentLength,
    extra,
    serverSoftware,
    headerText: 'utf8',
  });
}

/**
 * The body as STDIN and its CONTENT_LENGTH. php reads exactly CONTENT_LENGTH bytes, so a stream
 * must come with its Content-Length (the HTTP side buffers a chunked body first, bounded by
 * max_request_size).
 */
function toStdin(request: ExchangeRequest): { body: FastCgiBody; length: number | undefined } {
  const { body } = request;
  // a Content-Length with no body is 0: CONTENT_LENGTH "0", as nginx (a bodiless fetch POST sends it)
  if (body === null) return { body: null, length: request.headers['Content-Length'] === undefined ? undefined : 0 };
  if (Buffer.isBuffer(body)) return { body, length: body.length };
  if (body instanceof Chunks) return { body: body.parts, length: body.length };
  if (body instanceof FileBody) return { body: body.stream(), length: body.length };
  // a body spooled to a file knows its length (a chunked one has no Content-Length)
  const spooled = (body as { byteLength?: unknown }).byteLength;
  if (typeof spooled === 'number') return { body: body as Readable, length: spooled };
  const declared = Number(request.headers['Content-Length']?.[0]);
  if (!Number.isSafeInteger(declared) || declared < 0) {
    throw new TypeError('a streamed request body needs its Content-Length (buffer a chunked body first)');
  }
  return { body: body as Readable, length: declared };
}

/** CGI header values are latin1 chars (one per byte); the exchange carries text (headerTextFromBytes). */
function toHeaderMap(headers: Record<string, string[]>): HeaderMap {
  const out: HeaderMap = Object.create(null);
  for (const name in headers) {
    const values = headers[name]!;
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the range is the point
    out[name] = values.some((v) => /[^\x00-\x7f]/.test(v)) ? values.map(headerTextFromBytes) : values;
  }
  return out;
}
