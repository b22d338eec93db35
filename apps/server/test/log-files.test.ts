// The log files a config names (logs.output, http.access_log.output), checked before serve opens
// them and by config check: a path that cannot be created is said at its key, with what to do;
// config check makes nothing, serve makes the folder and the file.
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, toServerOptions } from '@warmpool/config';
import { afterAll, describe, expect, it } from 'vitest';
import { logFileProblem, logFileProblems, logFilesOf } from '../src/log-files.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-log-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function loaded(logs: string, access: string) {
  const config = parseConfig(
    `version: "3"\nserver:\n  command: php worker.php\nhttp:\n  address: 127.0.0.1:8080\n  access_log: { output: ${access} }\nlogs:\n  output: ${logs}\n`,
    { file: join(dir, 'warmpool.yaml'), env: {} },
  );
  return { config, server: toServerOptions(config) };
}

describe('log files', () => {
  it('every file among logs.output (each item) and http.access_log.output; not stdout or stderr', () => {
    const { server } = loaded('[stderr, /var/log/a.log, b.log]', '/var/log/access.log');
    expect(logFilesOf(server)).toEqual([
      { key: 'logs.output[1]', path: '/var/log/a.log' },
      // a relative path starts at the config file's folder
      { key: 'logs.output[2]', path: join(dir, 'b.log') },
      { key: 'http.access_log.output', path: '/var/log/access.log' },
    ]);
    expect(logFilesOf(loaded('stdout', 'stderr').server)).toEqual([]);
  });

  it('a file in the way of a folder: at the key and line, for both', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const { config, server } = loaded(`${file}/x/warmpool.log`, `${file}/access.log`);
    for (const create of [false, true]) {
      const error = logFileProblems(server, config, { create });
      // sorted by line, as every config error
      expect(error?.errors.map((e) => [e.key, e.line, e.reason])).toEqual([
        [
          'http.access_log.output',
          6,
          `cannot create ${file}/access.log: a file is in the way (${file} is not a folder); name a path in a folder`,
        ],
        [
          'logs.output',
          8,
          `cannot create ${file}/x/warmpool.log: a file is in the way (${file} is not a folder); name a path in a folder`,
        ],
      ]);
    }
  });

  it('config check makes nothing; serve makes the folder and the file', () => {
    const path = join(dir, 'new', 'deeper', 'access.log');
    expect(logFileProblem(path, false)).toBeNull();
    expect(existsSync(join(dir, 'new'))).toBe(false);
    expect(logFileProblem(path, true)).toBeNull();
    expect(readdirSync(join(dir, 'new', 'deeper'))).toEqual(['access.log']);
  });

  it('a folder where the file should be', () => {
    for (const create of [false, true])
      expect(logFileProblem(dir, create)).toBe(
        `${dir} is a folder; name a file in it (e.g. ${join(dir, 'warmpool.log')})`,
      );
  });

  it('a new file or folder under /proc or /sys is refused, not made (Node mkdir never returns there), an existing file taken', () => {
    for (const create of [false, true]) {
      expect(logFileProblem('/proc/warmpool-nope/access.log', create)).toMatch(
        /^cannot create \/proc\/warmpool-nope\/access\.log: no file or folder can be made under \/proc;/,
      );
      expect(logFileProblem('/sys/warmpool-nope/a/b.log', create)).toMatch(
        /no file or folder can be made under \/sys;/,
      );
      // the folder exists and root's access(2) says it may write there; config check passed it, serve failed
      expect(logFileProblem('/sys/kernel/warmpool.log', create)).toMatch(/no file or folder can be made under \/sys;/);
    }
    expect(logFileProblem('/proc/self/fd/1', false)).toBeNull();
  });
});
