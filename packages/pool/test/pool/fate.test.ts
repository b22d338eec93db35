import { describe, expect, it } from 'vitest';
import {
  BadChecksumError,
  BadContextError,
  BadHandshakeError,
  BootFailedError,
  CommandNotFoundError,
  ExecAbortedError,
  ExecTimeoutError,
  FrameTooLargeError,
  InvalidPoolOptionError,
  MalformedFrameError,
  NoFreeWorkerError,
  PoolClosedError,
  PoolNotStartedError,
  ProtocolError,
  QueueFullError,
  UnexpectedFrameError,
  WarmpoolError,
  WorkerExitedError,
  WorkerReportedError,
  WorkerStopRequestedError,
} from '../../src/errors.js';
import { fateOf, type Fate } from '../../src/pool/fate.js';

describe('fateOf: the one table of worker fate', () => {
  it('releases a worker that served the request', () => {
    expect(fateOf(null)).toBe('release');
  });

  it.each<[string, Error, Fate]>([
    // The worker is healthy: it answered with an ERROR frame, or the caller gave up.
    ['WorkerReportedError (ERROR frame)', new WorkerReportedError('boom'), 'release'],
    ['ExecAbortedError (client went away)', new ExecAbortedError('aborted'), 'release'],
    // {"stop":true}: retire it and run the request elsewhere.
    ['WorkerStopRequestedError ({"stop":true})', new WorkerStopRequestedError('stop'), 'retry'],
    // The stream cannot be trusted or the worker is gone: it is being killed.
    ['ExecTimeoutError (exec_ttl)', new ExecTimeoutError('slow'), 'kill'],
    ['WorkerExitedError', new WorkerExitedError('exited'), 'kill'],
    ['BadChecksumError', new BadChecksumError('crc'), 'kill'],
    ['FrameTooLargeError', new FrameTooLargeError('big'), 'kill'],
    ['MalformedFrameError', new MalformedFrameError('bad'), 'kill'],
    ['UnexpectedFrameError', new UnexpectedFrameError('stray'), 'kill'],
    ['BadHandshakeError', new BadHandshakeError('pid'), 'kill'],
    ['BadContextError', new BadContextError('ctx'), 'kill'],
    [
      'a ProtocolError subclass of the future',
      new (class FutureProtocolError extends ProtocolError<'WP_PROTOCOL_X'> {})('WP_PROTOCOL_X', 'x'),
      'kill',
    ],
    // Anything unknown is treated as the worst case.
    ['BootFailedError', new BootFailedError('boot'), 'kill'],
    ['CommandNotFoundError', new CommandNotFoundError('nope'), 'kill'],
    ['NoFreeWorkerError', new NoFreeWorkerError('none'), 'kill'],
    ['QueueFullError', new QueueFullError('full'), 'kill'],
    ['PoolClosedError', new PoolClosedError(), 'kill'],
    ['PoolNotStartedError', new PoolNotStartedError(), 'kill'],
    ['InvalidPoolOptionError', new InvalidPoolOptionError('k', 'bad'), 'kill'],
    ['a plain WarmpoolError', new WarmpoolError('WP_POOL_X', 'x'), 'kill'],
    ['a plain Error', new Error('unknown'), 'kill'],
    ['a TypeError', new TypeError('bug'), 'kill'],
  ])('%s → %s', (_name, error, fate) => {
    expect(fateOf(error)).toBe(fate);
  });

  it('decides by class, not by message or code text', () => {
    const lookalike = Object.assign(new Error('WorkerReportedError'), { code: 'WP_WORKER_ERROR' });
    expect(fateOf(lookalike)).toBe('kill');
  });
});
