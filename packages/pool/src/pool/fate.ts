import {
  ExecAbortedError,
  ExecTimeoutError,
  ProtocolError,
  QueuedRequestNotRunError,
  WorkerExitedError,
  WorkerReportedError,
  WorkerStopRequestedError,
} from '../errors.js';

/**
 * What happens to a worker after an execution ends, by how it ended. The one table of worker fate:
 * - release: back to the free list (unless max_jobs or a supervisor mark says recycle)
 * - recycle: graceful stop and a replacement
 * - retry:   recycle, and the request runs again on another worker
 * - kill:    the worker is already being killed (or is dead); a replacement follows its exit
 * - requeue: a request queued behind another never began; it runs again elsewhere, and the worker's
 *            fate is its running request's
 */
export type Fate = 'release' | 'recycle' | 'retry' | 'kill' | 'requeue';

export function fateOf(error: Error | null): Fate {
  if (error === null) return 'release';
  if (error instanceof QueuedRequestNotRunError) return 'requeue';
  if (error instanceof WorkerReportedError) return 'release';
  if (error instanceof ExecAbortedError) return 'release';
  if (error instanceof WorkerStopRequestedError) return 'retry';
  if (error instanceof ExecTimeoutError) return 'kill';
  if (error instanceof ProtocolError) return 'kill';
  if (error instanceof WorkerExitedError) return 'kill';
  return 'kill';
}
