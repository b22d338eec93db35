// state.json: written atomically (tmp + rename, 0600), read back as written; a missing, corrupt or
// malformed file is a StateFileError that names the file and what is wrong with it.
import {
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  closeSync,
  rmSync,
  statSync,
  writeFileSync,
  readdirSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StateFileError } from '../src/errors.js';
import { controlSocket, readState, stateFile, writeState, type SwapState } from '../src/state-file.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'wp-swap-state-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

function state(phase: string, binary = '/opt/warmpool-v1'): SwapState {
  return {
    supervisorPid: 4242,
    startedAt: '2025-01-01T00:00:00.000Z',
    active: {
      colour: 'blue',
      binary,
      version: 'warmpool 1.0.0',
      pid: 4243,
      startedAt: '2025-01-01T00:00:01.000Z',
      statusUrl: 'http://127.0.0.1:40000/ready',
    },
    previous: null,
    phase,
    children: [{ colour: 'blue', pid: 4243, binary }],
    history: [{ at: '2025-01-01T00:00:02.000Z', from: null, to: binary, ok: false, reason: 'check failed', ms: 12 }],
  };
}

function readAll(fd: number): string {
  const chunks: Buffer[] = [];
  const buffer = Buffer.alloc(4096);
  for (let n = readSync(fd, buffer); n > 0; n = readSync(fd, buffer)) chunks.push(Buffer.from(buffer.subarray(0, n)));
  return Buffer.concat(chunks).toString('utf8');
}

describe('writeState / readState', () => {
  it('reads back what was written, in <dir>/state.json, owner-only', () => {
    writeState(dir, state('idle'));
    expect(stateFile(dir)).toBe(join(dir, 'state.json'));
    expect(controlSocket(dir)).toBe(join(dir, 'control.sock'));
    expect(readState(dir)).toEqual(state('idle'));
    expect(statSync(stateFile(dir)).mode & 0o777).toBe(0o600);
    expect(readFileSync(stateFile(dir), 'utf8').endsWith('}\n')).toBe(true);
  });

  it('a rewrite after any change keeps the "pending" an operator wrote (and a broken file has none to keep)', () => {
    writeFileSync(stateFile(dir), JSON.stringify({ ...state('idle'), pending: '/opt/warmpool-v2' }));
    writeState(dir, state('swapping'));
    expect(readState(dir)).toMatchObject({ phase: 'swapping', pending: '/opt/warmpool-v2' });
    writeState(dir, { ...state('idle'), pending: '/opt/warmpool-v3' });
    expect(readState(dir).pending).toBe('/opt/warmpool-v3');
    writeFileSync(stateFile(dir), '{ not json');
    writeState(dir, state('idle'));
    expect(readState(dir).pending).toBeUndefined();
  });

  it('keeps a "pending" binary an operator added (what SIGUSR2 swaps to)', () => {
    writeFileSync(stateFile(dir), JSON.stringify({ ...state('idle'), pending: '/opt/warmpool-v2' }));
    expect(readState(dir).pending).toBe('/opt/warmpool-v2');
  });

  it('replaces the file whole: a reader of the old file sees all of it, never a mix, and no tmp file stays', () => {
    writeState(dir, state('idle', '/opt/old'));
    const before = statSync(stateFile(dir)).ino;
    const fd = openSync(stateFile(dir), 'r');
    try {
      writeState(dir, state('handover', `/opt/${'new'.repeat(2000)}`));
      // the reader that opened the old file still reads exactly the old state
      expect(JSON.parse(readAll(fd))).toEqual(state('idle', '/opt/old'));
    } finally {
      closeSync(fd);
    }
    expect(statSync(stateFile(dir)).ino).not.toBe(before);
    expect(readState(dir).phase).toBe('handover');
    expect(readdirSync(dir)).toEqual(['state.json']);
  });

  it('leaves the previous state intact when the new one cannot be written', () => {
    writeState(dir, state('idle'));
    mkdirSync(`${stateFile(dir)}.tmp`); // the tmp path is taken: the write fails before any rename
    expect(() => writeState(dir, state('handover'))).toThrow();
    expect(readState(dir)).toEqual(state('idle'));
  });
});

describe('readState errors', () => {
  function failure(): StateFileError {
    try {
      readState(dir);
    } catch (error) {
      return error as StateFileError;
    }
    throw new Error('readState did not throw');
  }

  it('a missing file names the file and asks whether the supervisor runs with this --state', () => {
    const error = failure();
    expect(error).toBeInstanceOf(StateFileError);
    expect(error.code).toBe('WP_SWAP_STATE_FILE');
    expect(error.message).toBe(
      `state file ${stateFile(dir)} does not exist: is \`warmpool-swap start\` running with this --state?`,
    );
    expect(error.details).toEqual({ file: stateFile(dir) });
  });

  it('a truncated file is "not valid JSON", with the parser message', () => {
    writeFileSync(stateFile(dir), JSON.stringify(state('idle')).slice(0, 40));
    const error = failure();
    expect(error.code).toBe('WP_SWAP_STATE_FILE');
    expect(error.message).toMatch(new RegExp(`^state file ${stateFile(dir)} is not valid JSON \\(.+\\)$`));
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });

  it.each([
    ['null', 'does not hold a JSON object'],
    ['[1, 2]', 'does not hold a JSON object'],
    ['"idle"', 'does not hold a JSON object'],
    ['{"pending": 7}', 'has a "pending" that is not a binary path string: 7'],
  ])('%s: %s', (text, reason) => {
    writeFileSync(stateFile(dir), text);
    expect(failure().message).toBe(`state file ${stateFile(dir)} ${reason}`);
  });

  it('an unreadable path (a directory) says it cannot be read, with the errno', () => {
    mkdirSync(stateFile(dir));
    expect(failure().message).toBe(`state file ${stateFile(dir)} cannot be read (EISDIR)`);
  });
});
