// Every failure of the pool is one class with a stable WP_ code. The README's Errors table lists the
// same codes; test/errors.test.ts keeps the two in sync.

export interface ErrorDetails {
  pid?: number;
  key?: string;
  file?: string;
  line?: number;
  [name: string]: unknown;
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
  constructor(key: string, message: string) {
    super('WP_POOL_INVALID_OPTION', `pool option "${key}": ${message}`, { details: { key } });
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
  'WP_POOL_CLOSED',
  'WP_POOL_NOT_STARTED',
  'WP_POOL_INVALID_OPTION',
] as const;

export type PoolErrorCode = (typeof POOL_ERROR_CODES)[number];

export function isWarmpoolError(value: unknown): value is WarmpoolError {
  return value instanceof WarmpoolError;
}
