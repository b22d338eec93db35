// php-cgi processes started one by one each have their own APCu, where php-fpm's children share one:
// an app keeping its sessions there (MediaWiki's default) lost its logins on every other request
// behind two php-cgi. The pool says so at start when APCu is on and more than one process may run.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { recordingLogger } from '../php-fixtures.js';
import { withCgiPool } from './cgi-pools.js';

const apcuLoaded = (() => {
  try {
    return execFileSync('php-cgi', ['-m'], { encoding: 'utf8' }).split('\n').includes('apcu');
  } catch {
    return false;
  }
})();

const warnings = (logger: ReturnType<typeof recordingLogger>) =>
  logger.lines.filter((line) => line.obj.reason === 'apcu');

describe.skipIf(!apcuLoaded)('APCu in managed php-cgi', () => {
  it('two processes with APCu on: one warning at start naming the split and what to do', async () => {
    const logger = recordingLogger();
    await withCgiPool({ num_workers: 2, logger }, async () => {});
    const [warning, ...more] = warnings(logger);
    expect(more).toEqual([]);
    expect(warning?.level).toBe('warn');
    expect(warning?.msg).toMatch(/^APCu is on in php-cgi, and each php-cgi process has an APCu of its own/);
    expect(warning?.msg).toContain('use fastcgi.pass to php-fpm, or a shared store');
  });

  it('one process, or APCu turned off by a flag of the command: nothing to say', async () => {
    const one = recordingLogger();
    await withCgiPool({ num_workers: 1, logger: one }, async () => {});
    const off = recordingLogger();
    await withCgiPool({ command: 'php-cgi -d apc.enabled=0', num_workers: 2, logger: off }, async () => {});
    expect([...warnings(one), ...warnings(off)]).toEqual([]);
  });
});
