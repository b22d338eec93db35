import { type OptionErrorDetails, optionErrorDetails, WarmpoolError } from '@warmpool/pool';

export class InvalidOptionError extends WarmpoolError<'WP_FASTIFY_INVALID_OPTION'> {
  declare readonly details: OptionErrorDetails;
  constructor(key: string, reason: string, value?: unknown) {
    super('WP_FASTIFY_INVALID_OPTION', `warmpool option "${key}": ${reason}`, {
      details: value === undefined ? { key, reason } : { key, reason, value },
    });
  }

  /** Another option error (the pool's, a duration's) reported under this plugin's key for it. */
  static from(key: string, error: unknown): InvalidOptionError {
    const details = optionErrorDetails(error);
    if (details === null) throw error;
    return new InvalidOptionError(key, details.reason, details.value);
  }
}

/**
 * A check function that runs what it is given and adds the InvalidOptionError it throws to
 * `problems` (any other error is thrown on): every problem of some options, at once.
 */
export function optionChecker(problems: InvalidOptionError[]): (resolve: () => unknown) => void {
  return (resolve) => {
    try {
      resolve();
    } catch (error) {
      if (error instanceof InvalidOptionError) problems.push(error);
      else throw error;
    }
  };
}

/** A form RR would answer 500 for (a name that is both a value and a group of values) or a malformed body: 400. */
export class BadFormError extends WarmpoolError<'WP_FASTIFY_BAD_FORM'> {
  readonly statusCode = 400;
  constructor(message: string, options: { cause?: unknown; field?: string } = {}) {
    super('WP_FASTIFY_BAD_FORM', message, {
      cause: options.cause,
      details: options.field === undefined ? {} : { field: options.field },
    });
  }
}

/** The request body (or the multipart text fields) is over the limit: answered 413 before PHP runs. */
export class BodyTooLargeError extends WarmpoolError<'WP_FASTIFY_BODY_TOO_LARGE'> {
  readonly statusCode = 413;
  constructor(message: string, limit: number) {
    super('WP_FASTIFY_BODY_TOO_LARGE', message, { details: { limit } });
  }
}

/**
 * PHP's body ended short of the Content-Length it declared, before anything of the reply was sent
 * (a compressor held the bytes back): a 502, as nothing whole can be answered. Once the head is out,
 * the connection is closed instead (the client sees a cut download).
 */
export class ShortBodyError extends WarmpoolError<'WP_FASTIFY_SHORT_BODY'> {
  readonly statusCode = 502;
  constructor(sent: number, declared: number) {
    super('WP_FASTIFY_SHORT_BODY', `the body ended after ${sent} of its ${declared} declared bytes`, {
      details: { sent, declared },
    });
  }
}

/** A multipart form carries more files than uploads.max_files: answered 413 before PHP runs. */
export class TooManyFilesError extends WarmpoolError<'WP_FASTIFY_TOO_MANY_FILES'> {
  readonly statusCode = 413;
  constructor(limit: number) {
    super(
      'WP_FASTIFY_TOO_MANY_FILES',
      `the form has more than ${limit} files (uploads.max_files: ${limit}); send fewer files or raise uploads.max_files`,
      {
        details: { limit },
      },
    );
  }
}

/**
 * A form (urlencoded or multipart) carries more fields than uploads.max_fields: answered 413 before
 * PHP runs, and before Node parses the rest (a form of millions of fields held the event loop for
 * seconds: 2 M fields in 20 MB, 3.5 s of parsing and JSON).
 */
export class TooManyFieldsError extends WarmpoolError<'WP_FASTIFY_TOO_MANY_FIELDS'> {
  readonly statusCode = 413;
  constructor(limit: number) {
    super(
      'WP_FASTIFY_TOO_MANY_FIELDS',
      `the form has more than ${limit} fields (uploads.max_fields: ${limit}); send fewer fields or raise uploads.max_fields`,
      { details: { limit } },
    );
  }
}

/** More request header fields than max_header_count: answered 431 before anything else runs. */
export class TooManyHeadersError extends WarmpoolError<'WP_FASTIFY_TOO_MANY_HEADERS'> {
  readonly statusCode = 431;
  constructor(limit: number) {
    super('WP_FASTIFY_TOO_MANY_HEADERS', `the request has more than ${limit} header fields (max_header_count)`, {
      details: { limit },
    });
  }
}

/**
 * A request line naming HTTP/2.0 on an HTTP/1 connection (Node's parser takes it): answered 505,
 * as nginx does. HTTP/2 is spoken over TLS (ALPN h2) or from the connection's first bytes.
 */
export class HttpVersionError extends WarmpoolError<'WP_FASTIFY_HTTP_VERSION'> {
  readonly statusCode = 505;
  constructor(version: string) {
    super('WP_FASTIFY_HTTP_VERSION', `HTTP/${version} in an HTTP/1 request line is not supported: send HTTP/1.1`, {
      details: { version },
    });
  }
}

/**
 * A request body in a transfer coding other than chunked alone ("gzip, chunked"): Node's parser
 * takes it and hands on the body still coded, which PHP would read as the data; nginx answers 501.
 */
export class TransferEncodingError extends WarmpoolError<'WP_FASTIFY_TRANSFER_ENCODING'> {
  readonly statusCode = 501;
  constructor(coding: string) {
    super(
      'WP_FASTIFY_TRANSFER_ENCODING',
      `Transfer-Encoding "${coding}" is not supported: send the body with Content-Length, or chunked alone`,
      { details: { coding } },
    );
  }
}

/**
 * An HTTP/2 request whose head is over max_header_size: answered 431 before anything else runs
 * (Node enforces the size on HTTP/1.1 only; HTTP/2 took about 64 KB).
 */
export class HeadersTooLargeError extends WarmpoolError<'WP_FASTIFY_HEADERS_TOO_LARGE'> {
  readonly statusCode = 431;
  constructor(limit: number) {
    super('WP_FASTIFY_HEADERS_TOO_LARGE', `the request head is over ${limit} bytes (max_header_size)`, {
      details: { limit },
    });
  }
}

/**
 * An HTTP/2 request whose body was not all received within request_timeout: answered 408 and its
 * stream closed (Node cuts only HTTP/1.1 requests at requestTimeout).
 */
export class RequestTimeoutError extends WarmpoolError<'WP_FASTIFY_REQUEST_TIMEOUT'> {
  readonly statusCode = 408;
  constructor(timeoutMs: number) {
    super(
      'WP_FASTIFY_REQUEST_TIMEOUT',
      `the request body was not all received within ${timeoutMs} ms (request_timeout)`,
      { details: { timeoutMs } },
    );
  }
}

/**
 * A client that sent nothing of its request body for body_timeout while the server was ready to
 * read it (nginx's client_body_timeout): answered 408, the connection or stream closed.
 */
export class BodyTimeoutError extends WarmpoolError<'WP_FASTIFY_BODY_TIMEOUT'> {
  readonly statusCode = 408;
  constructor(timeoutMs: number) {
    super('WP_FASTIFY_BODY_TIMEOUT', `the client sent nothing of its request body for ${timeoutMs} ms (body_timeout)`, {
      details: { timeoutMs },
    });
  }
}

/** The app declared a route warmpool's catch-all already holds (GET /, OPTIONS *), after registering warmpool. */
export class RouteTakenError extends WarmpoolError<'WP_FASTIFY_ROUTE_TAKEN'> {
  constructor(route: string) {
    super(
      'WP_FASTIFY_ROUTE_TAKEN',
      `${route} is warmpool's (every request no other route takes goes to PHP): declare this route, or register the plugin that adds it (e.g. @fastify/cors), before app.register(warmpool); or mount warmpool under a prefix (README, "Routes")`,
      { details: { route } },
    );
  }
}

/**
 * The plugin registered a second time on an instance that already holds a pool (app.warmpool):
 * refused before the second pool boots, which Fastify's FST_ERR_DEC_ALREADY_PRESENT came after.
 */
export class AlreadyRegisteredError extends WarmpoolError<'WP_FASTIFY_ALREADY_REGISTERED'> {
  constructor() {
    super(
      'WP_FASTIFY_ALREADY_REGISTERED',
      'warmpool is already registered on this instance (app.warmpool is its pool); one instance holds one pool: for a second pool, register it in its own scope with a prefix, app.register(async (scope) => { await scope.register(warmpool, { ... }) }, { prefix: \'/blog\' }) (README, "Routes")',
    );
  }
}

/**
 * A pool whose scope's catch-all routes (`prefix/` and `prefix/*`, every method) another pool (or
 * the app) already holds: it would never receive a request. Two pools in sibling scopes with no
 * prefix, or the same one.
 */
export class PoolUnreachableError extends WarmpoolError<'WP_FASTIFY_POOL_UNREACHABLE'> {
  constructor(pool: string, prefix: string, owner: string | null) {
    const where = prefix === '' ? 'with no prefix' : `under the prefix "${prefix}"`;
    const by = owner === null ? 'routes of the app' : `the warmpool of ${owner}, registered before in a scope ${where}`;
    super(
      'WP_FASTIFY_POOL_UNREACHABLE',
      `the warmpool of ${pool} would never receive a request: every method of "${prefix}/" and "${prefix}/*" already goes to ${by}; give each pool a scope with its own prefix, app.register(async (scope) => { await scope.register(warmpool, { ... }) }, { prefix: '/blog' }) (README, "Routes")`,
      { details: { pool, prefix, owner } },
    );
  }
}

/**
 * A request body could not be written to its temp file in http.uploads.dir (a full disk: ENOSPC):
 * the server's failure, not the client's (a 400 before, which no 5xx alert saw), answered 500 and
 * logged at error, as nginx's "pwrite() failed (28: No space left on device)".
 */
export class SpoolFailedError extends WarmpoolError<'WP_FASTIFY_SPOOL_FAILED'> {
  readonly statusCode = 500;
  constructor(dir: string, cause: unknown) {
    const reason = (cause as NodeJS.ErrnoException).code ?? String((cause as Error).message ?? cause);
    super(
      'WP_FASTIFY_SPOOL_FAILED',
      `cannot write a request body to ${dir} (${reason}): free space there, or point uploads.dir (http.uploads.dir) at a larger disk`,
      { cause, details: { dir, reason } },
    );
  }
}

export const FASTIFY_ERROR_CODES = [
  'WP_FASTIFY_INVALID_OPTION',
  'WP_FASTIFY_BAD_FORM',
  'WP_FASTIFY_BODY_TOO_LARGE',
  'WP_FASTIFY_TOO_MANY_FILES',
  'WP_FASTIFY_TOO_MANY_HEADERS',
  'WP_FASTIFY_REQUEST_TIMEOUT',
  'WP_FASTIFY_HEADERS_TOO_LARGE',
  'WP_FASTIFY_TOO_MANY_FIELDS',
  'WP_FASTIFY_HTTP_VERSION',
  'WP_FASTIFY_TRANSFER_ENCODING',
  'WP_FASTIFY_SHORT_BODY',
  'WP_FASTIFY_ROUTE_TAKEN',
  'WP_FASTIFY_ALREADY_REGISTERED',
  'WP_FASTIFY_POOL_UNREACHABLE',
  'WP_FASTIFY_SPOOL_FAILED',
] as const;
