/** Where one worker process is in its life. */
export type WorkerState = 'booting' | 'ready' | 'working' | 'stopping' | 'exited';

/** Why a worker left service; carried by `worker:recycle` events and the recycles metric. */
export type RecycleReason =
  | 'max_jobs'
  | 'ttl'
  | 'idle_ttl'
  | 'exec_ttl'
  | 'memory'
  | 'crashed'
  | 'protocol'
  | 'errored'
  | 'reset'
  | 'worker_stop'
  | 'shutdown';

export const WORKER_STATES: readonly WorkerState[] = ['booting', 'ready', 'working', 'stopping', 'exited'];

export const RECYCLE_REASONS: readonly RecycleReason[] = [
  'max_jobs',
  'ttl',
  'idle_ttl',
  'exec_ttl',
  'memory',
  'crashed',
  'protocol',
  'errored',
  'reset',
  'worker_stop',
  'shutdown',
];

const TRANSITIONS: Record<WorkerState, readonly WorkerState[]> = {
  booting: ['ready', 'stopping', 'exited'],
  ready: ['working', 'stopping', 'exited'],
  working: ['ready', 'stopping', 'exited'],
  stopping: ['exited'],
  exited: [],
};

export function canTransition(from: WorkerState, to: WorkerState): boolean {
  return TRANSITIONS[from].includes(to);
}
