import {
  ExecAbortedError,
  ExecTimeoutError,
  FastCgiClosedError,
  FastCgiError,
  NoFreeWorkerError,
  PoolClosedError,
  ProtocolError,
  QueueFullError,
  WorkerExitedError,
  WorkerReportedError,
  WorkersDownError,
} from '@warmpool/pool';

export interface ErrorStatus {
  status: number;
  /** seconds for Retry-After, or null */
  retryAfter: number | null;
  /**
   * load shedding: every worker (or php-fpm connection) busy and the queue full, a 503 the pool is
   * there to give, not a failure of PHP (routes.ts logs these as a count, overload-log.ts)
   */
  overloaded: boolean;
}

/** The one table from a pool error to an HTTP status (DESIGN: no other file does this). */
export function statusOf(error: unknown): ErrorStatus {
  if (error instanceof NoFreeWorkerError || error instanceof QueueFullError)
    return { status: 503, retryAfter: 1, overloaded: true };
  if (error instanceof PoolClosedError) return { status: 503, retryAfter: 5, overloaded: false };
  if (error instanceof ExecTimeoutError) return { status: 504, retryAfter: null, overloaded: false };
  // the client went away first: nobody reads this; the access log shows nginx's "client closed request"
  if (error instanceof ExecAbortedError) return { status: 499, retryAfter: null, overloaded: false };
  // no worker runs and none can boot: PHP is down, as nginx answers with php-fpm down (not overload)
  if (error instanceof WorkerExitedError || error instanceof ProtocolError || error instanceof WorkersDownError) {
    return { status: 502, retryAfter: null, overloaded: false };
  }
  if (error instanceof WorkerReportedError) return { status: 500, retryAfter: null, overloaded: false };
  // classic mode: each FastCGI error carries its status (502 down, 503 overloaded, 504 silent, 499
  // the client left), as nginx answers for php-fpm
  if (error instanceof FastCgiError) {
    const overloaded = error.statusCode === 503 && !(error instanceof FastCgiClosedError);
    const retryAfter = overloaded ? 1 : error instanceof FastCgiClosedError ? 5 : null;
    return { status: error.statusCode, retryAfter, overloaded };
  }
  return { status: 500, retryAfter: null, overloaded: false };
}
