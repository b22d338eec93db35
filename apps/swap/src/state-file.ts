// <state>/state.json: what runs now and what ran before. Written atomically (tmp + rename) after
// every change; `pending` is where SIGUSR2 reads the binary to swap to.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Colour } from './child.js';

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
  writeFileSync(`${file}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${file}.tmp`, file);
}

export function readState(dir: string): SwapState | null {
  try {
    return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as SwapState;
  } catch {
    return null;
  }
}
