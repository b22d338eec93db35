// <state>/state.json: what runs now and what ran before. Written atomically (tmp + rename) after
// every change; `pending` is where SIGUSR2 reads the binary to swap to (the operator writes it, and
// it stays until they change it: a swap does not clear it).
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Colour } from './child.js';
import { StateFileError } from './errors.js';

export interface SwapRecord {
  at: string;
  from: string | null;
  to: string;
  ok: boolean;
  reason?: string;
  ms: number;
}

export interface SwapState {
  supervisorPid: number;
  startedAt: string;
  active: {
    colour: Colour;
    binary: string;
    version: string;
    pid: number | null;
    startedAt: string;
    statusUrl: string | null;
  } | null;
  previous: string | null;
  /** the binary SIGUSR2 swaps to */
  pending?: string;
  phase: string;
  children: { colour: Colour; pid: number | null; binary: string }[];
  history: SwapRecord[];
}

export const stateFile = (dir: string): string => join(dir, 'state.json');
export const controlSocket = (dir: string): string => join(dir, 'control.sock');

export function writeState(dir: string, state: SwapState): void {
  const file = stateFile(dir);
  // `pending` is the operator's field: a rewrite after any change keeps what they wrote there
  const pending = state.pending ?? pendingOnDisk(file);
  const written = pending === undefined ? state : { ...state, pending };
  writeFileSync(`${file}.tmp`, `${JSON.stringify(written, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

/** The `pending` binary in the file now, if it holds one (a broken file has none to keep). */
function pendingOnDisk(file: string): string | undefined {
  try {
    const { pending } = JSON.parse(readFileSync(file, 'utf8')) as { pending?: unknown };
    return typeof pending === 'string' ? pending : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The state as last written (plus a `pending` an operator may have added). Throws StateFileError
 * naming the file when it is missing, unreadable, not JSON, or not a state object.
 */
export function readState(dir: string): SwapState {
  const file = stateFile(dir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new StateFileError(
      file,
      code === 'ENOENT'
        ? 'does not exist: is `warmpool-swap start` running with this --state?'
        : `cannot be read (${code ?? (error as Error).message})`,
      error,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new StateFileError(file, `is not valid JSON (${(error as Error).message})`, error);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new StateFileError(file, 'does not hold a JSON object');
  const { pending } = value as { pending?: unknown };
  if (pending !== undefined && typeof pending !== 'string')
    throw new StateFileError(file, `has a "pending" that is not a binary path string: ${JSON.stringify(pending)}`);
  return value as SwapState;
}
