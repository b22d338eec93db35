import type { ResolvedPoolOptions } from '../options.js';
import type { SocketRelayListener } from '../relay/socket.js';
import { relayDsn } from '../relay/relay.js';
import { buildWorkerEnv } from '../worker/command.js';
import type { WorkerSpec } from '../worker/worker.js';

/** The spawn spec every worker of a pool shares, built once. */
export function createWorkerSpec(
  options: ResolvedPoolOptions<unknown>,
  listener: SocketRelayListener | null,
): WorkerSpec {
  const dsn = relayDsn(options.relay, listener?.port);
  return {
    argv: options.argv,
    env: buildWorkerEnv(
      options.env,
      { relay: dsn, mode: options.mode, extraFds: options.relay.kind === 'fds' },
      process.env,
      options.clearEnv,
    ),
    cwd: options.cwd,
    relay: options.relay,
    listener,
    bootTimeoutMs: options.allocateTimeoutMs,
    destroyTimeoutMs: options.destroyTimeoutMs,
    streamTimeoutMs: options.streamTimeoutMs,
    sendTimeoutMs: options.sendTimeoutMs,
    maxFrameBytes: options.maxFrameBytes,
    uid: options.uid,
    gid: options.gid,
    nice: options.nice,
    logger: options.logger,
  };
}

/** max_jobs plus a random 0-14% on top (RR), so workers started together do not all recycle together. */
export function jobLimitWithJitter(maxJobs: number, random: () => number = Math.random): number {
  if (maxJobs <= 0) return 0;
  return maxJobs + Math.floor(random() * 0.14 * maxJobs);
}

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 10_000;

/** Exponential backoff for workers that fail to boot: 100ms, 200ms, … up to 10s; reset by a success. */
export class BootBackoff {
  #failures = 0;

  get failures(): number {
    return this.#failures;
  }

  /** Records a failure and returns how long to wait before the next attempt. */
  fail(): number {
    this.#failures++;
    return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (this.#failures - 1));
  }

  succeed(): void {
    this.#failures = 0;
  }
}
