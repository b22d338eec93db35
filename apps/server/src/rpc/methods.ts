// The RPC methods warmpool answers, each mapped onto the admin socket's handlers (admin/server.ts),
// so `rr reset` over rpc.listen and `warmpool reset` over the admin socket do the same thing:
//
//   resetter.List(true)      → ["http"]                 (roadrunner-server/resetter rpc.go)
//   resetter.Reset("http")   → true: rolling reset of every site's workers
//   informer.List(true)      → ["http"]                 (roadrunner-server/informer rpc.go)
//   informer.Workers("http") → {"workers":[process.State]} (roadrunner-server/pool state/process)
//   warmpool.Command({"cmd":"reset","site":"shop"}) → {"progress":[…],"ok":true,"data":…}: any admin
//     request (admin/protocol.ts), answered as the admin socket would (progress lines collected)
//
// "http" is RoadRunner's plugin name for the HTTP workers: with several sites it stands for all of them.
import type { WorkerInfo, WorkerState } from '@warmpool/pool';
import { runCommand, type AdminHandlers } from '../admin/server.js';
import { parseAdminRequest, toWireError } from '../admin/protocol.js';

/** The plugin name RoadRunner gives the HTTP workers. */
export const HTTP_PLUGIN = 'http';

export const RPC_METHODS = [
  'resetter.List',
  'resetter.Reset',
  'informer.List',
  'informer.Workers',
  'warmpool.Command',
] as const;

/** A failed call: its text goes back in an ERROR frame (RoadRunner's PHP client throws ServiceException with it). */
export class RpcCallError extends Error {}

/** roadrunner-server/pool fsm/state.go: the numbers and names RoadRunner reports for a worker's state. */
const FSM: Record<WorkerState, [number, string]> = {
  booting: [0, 'inactive'],
  ready: [1, 'ready'],
  working: [2, 'working'],
  stopping: [4, 'stopping'],
  exited: [5, 'stopped'],
};

/** One worker as RoadRunner's process.State (JSON keys as its struct tags). */
export interface ProcessState {
  pid: number;
  status: number;
  numExecs: number;
  /** unix nanoseconds of the worker's start */
  created: number;
  memoryUsage: number;
  CPUPercent: number;
  command: string;
  statusStr: string;
}

export function toProcessState(worker: WorkerInfo, now = Date.now()): ProcessState {
  const [status, statusStr] = FSM[worker.state];
  return {
    pid: worker.pid,
    status,
    numExecs: worker.jobs,
    created: Number(`${Math.round(now - worker.ageMs)}000000`),
    memoryUsage: worker.rssBytes,
    // busy share of the worker's life: what it spent serving, not CPU time measured by the kernel
    CPUPercent: worker.ageMs > 0 ? Math.round((worker.busyMs / worker.ageMs) * 10_000) / 100 : 0,
    command: '',
    statusStr,
  };
}

/** Runs one call; the value is encoded by the caller with the request's codec. Throws RpcCallError. */
export async function callMethod(
  method: string,
  argument: unknown,
  handlers: AdminHandlers,
  signal: AbortSignal,
): Promise<unknown> {
  switch (method) {
    case 'resetter.List':
    case 'informer.List':
      return [HTTP_PLUGIN];
    case 'resetter.Reset':
      // roadrunner-server/resetter rpc.go: fmt.Errorf("%w: %s", errNoSuchPlugin, service)
      if (argument !== HTTP_PLUGIN) throw new RpcCallError(`no such plugin: ${String(argument)}`);
      await handlers.reset(undefined, () => {});
      return true;
    case 'informer.Workers': {
      // RoadRunner answers a plugin without workers with an empty list ({"workers":null})
      if (argument !== HTTP_PLUGIN) return { workers: null };
      const sites = await handlers.workers(undefined);
      const now = Date.now();
      return { workers: sites.flatMap(({ workers }) => workers.map((worker) => toProcessState(worker, now))) };
    }
    case 'warmpool.Command':
      return runAdminCommand(argument, handlers, signal);
    default:
      // net/rpc's words for an unknown method
      throw new RpcCallError(`rpc: can't find ${method.includes('.') ? 'method' : 'service'} ${method}`);
  }
}

/** An admin request over RPC: the admin socket's answer, with its progress lines collected. */
async function runAdminCommand(argument: unknown, handlers: AdminHandlers, signal: AbortSignal): Promise<unknown> {
  const progress: unknown[] = [];
  try {
    const request = parseAdminRequest(typeof argument === 'string' ? argument : JSON.stringify(argument));
    const data = await runCommand(request, handlers, (p) => progress.push(p), signal);
    return { progress, ok: true, data };
  } catch (error) {
    return { progress, ok: false, error: toWireError(error) };
  }
}
