// Every failure of the pool is one class with a stable WP_ code. The README's Errors table lists the
// same codes; test/errors.test.ts keeps the two in sync.

export interface ErrorDetails {
  pid?: number;
  /** the option a WP_*_INVALID_OPTION error is about, as the caller spelled it (`supervisor.exec_ttl`) */
  key?: string;
  /** what is wrong with it, without the key (`must be an integer from 1 to 500, got 0`) */
  reason?: string;
  /** the offending value, when there is one */
  value?: unknown;
  file?: string;
  line?: number;
  [name: string]: unknown;
}

/**
 * The details of an option error: the key, the reason and the value, set where the option is
 * checked. Code that reports the error elsewhere (the config's file:line, a prefixed key in the
 * plugin) reads these, never the message text.
 */
export interface OptionErrorDetails extends ErrorDetails {
  key: string;
  reason: string;
}

/** The key and reason of a WP_*_INVALID_OPTION error, or null for any other value. */
export function optionErrorDetails(error: unknown): OptionErrorDetails | null {
  const details = (error as { details?: ErrorDetails } | null)?.details;
  return typeof details?.key === 'string' && typeof details.reason === 'string'
    ? (details as OptionErrorDetails)
    : null;
}

export class WarmpoolError<C extends string = string> extends Error {
  readonly code: C;
  readonly details: ErrorDetails;
  constructor(code: C, message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
  }
}

// ---- protocol: the bytes a worker sent cannot be trusted any more; the worker is killed ----

export class ProtocolError<C extends string = string> extends WarmpoolError<C> {}

export class BadChecksumError extends ProtocolError<'WP_PROTOCOL_BAD_CHECKSUM'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_PROTOCOL_BAD_CHECKSUM', message, { details });
  }
}

export class FrameTooLargeError extends ProtocolError<'WP_PROTOCOL_FRAME_TOO_LARGE'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_PROTOCOL_FRAME_TOO_LARGE', message, { details });
  }
}

export class MalformedFrameError extends ProtocolError<'WP_PROTOCOL_MALFORMED_FRAME'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_PROTOCOL_MALFORMED_FRAME', message, { details });
  }
}

export class UnexpectedFrameError extends ProtocolError<'WP_PROTOCOL_UNEXPECTED_FRAME'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_PROTOCOL_UNEXPECTED_FRAME', message, { details });
  }
}

export class BadHandshakeError extends ProtocolError<'WP_PROTOCOL_BAD_HANDSHAKE'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_PROTOCOL_BAD_HANDSHAKE', message, { details });
  }
}

export class BadContextError extends ProtocolError<'WP_PROTOCOL_BAD_CONTEXT'> {
  constructor(message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super('WP_PROTOCOL_BAD_CONTEXT', message, options);
  }
}

// ---- worker: one process and one execution ----

export class WorkerExitedError extends WarmpoolError<'WP_WORKER_EXITED'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_WORKER_EXITED', message, { details });
  }
}

export class ExecTimeoutError extends WarmpoolError<'WP_WORKER_EXEC_TIMEOUT'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_WORKER_EXEC_TIMEOUT', message, { details });
  }
}

/** The worker answered with an ERROR frame: the request failed, the worker stays in service. */
export class WorkerReportedError extends WarmpoolError<'WP_WORKER_ERROR'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_WORKER_ERROR', message, { details });
  }
}

export class BootFailedError extends WarmpoolError<'WP_WORKER_BOOT_FAILED'> {
  constructor(message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super('WP_WORKER_BOOT_FAILED', message, options);
  }
}

export class CommandNotFoundError extends WarmpoolError<'WP_WORKER_COMMAND_NOT_FOUND'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_WORKER_COMMAND_NOT_FOUND', message, { details });
  }
}

/** The caller aborted the execution (client went away before the reply). */
export class ExecAbortedError extends WarmpoolError<'WP_WORKER_EXEC_ABORTED'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_WORKER_EXEC_ABORTED', message, { details });
  }
}

/** A worker reply that is no HTTP response: status outside 100-599, a 1xx as the last frame (answered 502). */
export class BadReplyError extends ProtocolError<'WP_PROTOCOL_BAD_REPLY'> {
  constructor(message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super('WP_PROTOCOL_BAD_REPLY', message, options);
  }
}

/** A streamed reply's reader read nothing for send_timeout: the stream was cancelled (PROTOCOL.md §3.6). */
export class StreamStalledError extends WarmpoolError<'WP_WORKER_STREAM_STALLED'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_WORKER_STREAM_STALLED', message, { details });
  }
}

/** The worker replied {"stop":true}: retire it and run the request on another worker (PROTOCOL.md §3.3). */
export class WorkerStopRequestedError extends WarmpoolError<'WP_WORKER_STOP_REQUESTED'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_WORKER_STOP_REQUESTED', message, { details });
  }
}

// ---- pool ----

export class NoFreeWorkerError extends WarmpoolError<'WP_POOL_NO_FREE_WORKER'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_POOL_NO_FREE_WORKER', message, { details });
  }
}

export class QueueFullError extends WarmpoolError<'WP_POOL_QUEUE_FULL'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_POOL_QUEUE_FULL', message, { details });
  }
}

/**
 * No worker is alive and the last boot attempt failed: the request fails at once (502, as nginx
 * answers while php-fpm is down) instead of waiting allocate_timeout for a worker that cannot come.
 */
export class WorkersDownError extends WarmpoolError<'WP_POOL_WORKERS_DOWN'> {
  constructor(message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super('WP_POOL_WORKERS_DOWN', message, options);
  }
}

export class PoolClosedError extends WarmpoolError<'WP_POOL_CLOSED'> {
  constructor(message = 'the pool is closed: no new requests are taken') {
    super('WP_POOL_CLOSED', message);
  }
}

export class PoolNotStartedError extends WarmpoolError<'WP_POOL_NOT_STARTED'> {
  constructor() {
    super('WP_POOL_NOT_STARTED', 'the pool has not been started: await pool.start() before exec()');
  }
}

export class InvalidPoolOptionError extends WarmpoolError<'WP_POOL_INVALID_OPTION'> {
  declare readonly details: OptionErrorDetails;
  constructor(key: string, reason: string, value?: unknown) {
    super('WP_POOL_INVALID_OPTION', `pool option "${key}": ${reason}`, {
      details: value === undefined ? { key, reason } : { key, reason, value },
    });
  }
}

// ---- fastcgi: classic mode (php-fpm, php-cgi); each class carries the HTTP status it maps to ----

/**
 * Base of the FastCGI errors. `statusCode` is the answer a client gets: 502 when the backend is
 * down or broke the protocol, 503 when it (or our connection pool) is overloaded, 504 when it took
 * too long. fastify's status table reads it; nothing else turns these into a status.
 */
export class FastCgiError<C extends string = string> extends WarmpoolError<C> {
  readonly statusCode: number;
  constructor(code: C, statusCode: number, message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(code, message, options);
    this.statusCode = statusCode;
  }
}

/** A record declared more content than the decoder accepts (its `maxContentBytes`). */
export class FastCgiRecordTooLargeError extends FastCgiError<'WP_FASTCGI_RECORD_TOO_LARGE'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_FASTCGI_RECORD_TOO_LARGE', 502, message, { details });
  }
}

/** The bytes are not FastCGI records (wrong version, bad fixed-size body, broken name-value pairs). */
export class FastCgiMalformedRecordError extends FastCgiError<'WP_FASTCGI_MALFORMED_RECORD'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_FASTCGI_MALFORMED_RECORD', 502, message, { details });
  }
}

/** A well-formed record that makes no sense now (another request id, output while idle, a server-side type). */
export class FastCgiUnexpectedRecordError extends FastCgiError<'WP_FASTCGI_UNEXPECTED_RECORD'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_FASTCGI_UNEXPECTED_RECORD', 502, message, { details });
  }
}

/** The CGI response header block on STDOUT is invalid (no colon, bad name, bad Status, control bytes, cut short). */
export class FastCgiBadHeaderError extends FastCgiError<'WP_FASTCGI_BAD_HEADER'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_FASTCGI_BAD_HEADER', 502, message, { details });
  }
}

/** The CGI response header block is larger than `maxHeaderBytes` or has more than `maxHeaderCount` fields. */
export class FastCgiHeaderTooLargeError extends FastCgiError<'WP_FASTCGI_HEADER_TOO_LARGE'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_FASTCGI_HEADER_TOO_LARGE', 502, message, { details });
  }
}

/** One param (name + value) does not fit a PARAMS record, which php-fpm requires of every pair. */
export class FastCgiParamTooLargeError extends FastCgiError<'WP_FASTCGI_PARAM_TOO_LARGE'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_FASTCGI_PARAM_TOO_LARGE', 431, message, { details });
  }
}

/** END_REQUEST said CANT_MPX_CONN or UNKNOWN_ROLE (or a status FastCGI 1.0 does not define). */
export class FastCgiRequestRejectedError extends FastCgiError<'WP_FASTCGI_REQUEST_REJECTED'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_FASTCGI_REQUEST_REJECTED', 502, message, { details });
  }
}

/** The backend is overloaded: END_REQUEST said OVERLOADED, or its unix socket's accept queue is full (EAGAIN). */
export class FastCgiOverloadedError extends FastCgiError<'WP_FASTCGI_OVERLOADED'> {
  constructor(message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super('WP_FASTCGI_OVERLOADED', 503, message, options);
  }
}

/** The backend cannot be reached: connection refused, no socket file, permission denied, host unreachable. */
export class FastCgiConnectFailedError extends FastCgiError<'WP_FASTCGI_CONNECT_FAILED'> {
  constructor(message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super('WP_FASTCGI_CONNECT_FAILED', 502, message, options);
  }
}

/** The connection was reset or closed before END_REQUEST (the PHP process died, or the backend restarted). */
export class FastCgiConnectionClosedError extends FastCgiError<'WP_FASTCGI_CONNECTION_CLOSED'> {
  constructor(message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super('WP_FASTCGI_CONNECTION_CLOSED', 502, message, options);
  }
}

/** Connecting took longer than `connect_timeout`. */
export class FastCgiConnectTimeoutError extends FastCgiError<'WP_FASTCGI_CONNECT_TIMEOUT'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_FASTCGI_CONNECT_TIMEOUT', 504, message, { details });
  }
}

/** Nothing arrived from the backend for `read_timeout` while a request was running. */
export class FastCgiReadTimeoutError extends FastCgiError<'WP_FASTCGI_READ_TIMEOUT'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_FASTCGI_READ_TIMEOUT', 504, message, { details });
  }
}

/** `max_queue` requests already wait for a FastCGI connection. */
export class FastCgiQueueFullError extends FastCgiError<'WP_FASTCGI_QUEUE_FULL'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_FASTCGI_QUEUE_FULL', 503, message, { details });
  }
}

/** No FastCGI connection became free within `queue_timeout`. */
export class FastCgiNoFreeConnectionError extends FastCgiError<'WP_FASTCGI_NO_FREE_CONNECTION'> {
  constructor(message: string, details: ErrorDetails = {}) {
    super('WP_FASTCGI_NO_FREE_CONNECTION', 503, message, { details });
  }
}

/** The FastCGI client pool is closed. */
export class FastCgiClosedError extends FastCgiError<'WP_FASTCGI_CLOSED'> {
  constructor(message = 'the FastCGI client pool is closed: no new requests are taken') {
    super('WP_FASTCGI_CLOSED', 503, message);
  }
}

/**
 * A request queued behind the running one on a kept connection (pipelining, to php-cgi or php-fpm)
 * never began: the connection closed first (the running request failed, its process was killed or
 * left, or PHP dropped the connection). PHP runs one request at a time and began none of it, so it
 * runs again on another process; a client sees it only when that keeps happening.
 */
export class QueuedRequestNotRunError extends FastCgiError<'WP_FASTCGI_QUEUED_NOT_RUN'> {
  constructor(message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super('WP_FASTCGI_QUEUED_NOT_RUN', 502, message, options);
  }
}

/**
 * The request was aborted (the client left). 499 is nginx's "client closed request": it is only
 * logged and counted, never sent, since nobody is left to read it.
 */
export class FastCgiAbortedError extends FastCgiError<'WP_FASTCGI_ABORTED'> {
  constructor(message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super('WP_FASTCGI_ABORTED', 499, message, options);
  }
}

/** A FastCGI client option is unknown or has a bad value (an address that is neither unix:/path nor host:port). */
export class InvalidFastCgiOptionError extends FastCgiError<'WP_FASTCGI_INVALID_OPTION'> {
  declare readonly details: OptionErrorDetails;
  constructor(key: string, reason: string, value?: unknown) {
    super('WP_FASTCGI_INVALID_OPTION', 500, `FastCGI option "${key}": ${reason}`, {
      details: value === undefined ? { key, reason } : { key, reason, value },
    });
  }
}

/** Every code this package can throw; the README table is checked against it. */
export const POOL_ERROR_CODES = [
  'WP_PROTOCOL_BAD_CHECKSUM',
  'WP_PROTOCOL_FRAME_TOO_LARGE',
  'WP_PROTOCOL_MALFORMED_FRAME',
  'WP_PROTOCOL_UNEXPECTED_FRAME',
  'WP_PROTOCOL_BAD_HANDSHAKE',
  'WP_PROTOCOL_BAD_CONTEXT',
  'WP_PROTOCOL_BAD_REPLY',
  'WP_WORKER_EXITED',
  'WP_WORKER_EXEC_TIMEOUT',
  'WP_WORKER_ERROR',
  'WP_WORKER_BOOT_FAILED',
  'WP_WORKER_COMMAND_NOT_FOUND',
  'WP_WORKER_EXEC_ABORTED',
  'WP_WORKER_STREAM_STALLED',
  'WP_WORKER_STOP_REQUESTED',
  'WP_POOL_NO_FREE_WORKER',
  'WP_POOL_QUEUE_FULL',
  'WP_POOL_WORKERS_DOWN',
  'WP_POOL_CLOSED',
  'WP_POOL_NOT_STARTED',
  'WP_POOL_INVALID_OPTION',
  'WP_FASTCGI_RECORD_TOO_LARGE',
  'WP_FASTCGI_MALFORMED_RECORD',
  'WP_FASTCGI_UNEXPECTED_RECORD',
  'WP_FASTCGI_BAD_HEADER',
  'WP_FASTCGI_HEADER_TOO_LARGE',
  'WP_FASTCGI_PARAM_TOO_LARGE',
  'WP_FASTCGI_REQUEST_REJECTED',
  'WP_FASTCGI_OVERLOADED',
  'WP_FASTCGI_CONNECT_FAILED',
  'WP_FASTCGI_CONNECTION_CLOSED',
  'WP_FASTCGI_CONNECT_TIMEOUT',
  'WP_FASTCGI_READ_TIMEOUT',
  'WP_FASTCGI_QUEUE_FULL',
  'WP_FASTCGI_NO_FREE_CONNECTION',
  'WP_FASTCGI_CLOSED',
  'WP_FASTCGI_QUEUED_NOT_RUN',
  'WP_FASTCGI_ABORTED',
  'WP_FASTCGI_INVALID_OPTION',
] as const;

export type PoolErrorCode = (typeof POOL_ERROR_CODES)[number];

export function isWarmpoolError(value: unknown): value is WarmpoolError {
  return value instanceof WarmpoolError;
}
