import type { ChildProcess } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { Relay } from './relay.js';

/**
 * stdin/stdout relay (RoadRunner's default), or fds 3/4 for the warmpool SDK's `fds` relay.
 * `toWorker`: the stream to the worker when its stdin is a pipe of ours (relay/fifo.ts).
 */
export function createPipesRelay(child: ChildProcess, useExtraFds: boolean, toWorker?: Writable): Relay {
  const output = toWorker ?? ((useExtraFds ? child.stdio[3] : child.stdin) as Writable);
  const input = (useExtraFds ? child.stdio[4] : child.stdout) as Readable;
  // A worker that dies makes writes fail with EPIPE; the exit handler reports it, so do not crash.
  output.on('error', () => {});
  input.on('error', () => {});
  return {
    input,
    output,
    handshakePid: null,
    close() {
      output.destroy();
      input.destroy();
    },
  };
}
