import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandProblem } from '../../src/worker/command-check.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-command-check-'));
  await writeFile(join(dir, 'worker.php'), '<?php\n');
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const env = { PATH: process.env.PATH };

describe('commandProblem', () => {
  it('passes php and a script that is there, relative to the workers folder or absolute', () => {
    expect(commandProblem(['php', 'worker.php'], env, dir)).toBeNull();
    expect(commandProblem(['php', join(dir, 'worker.php')], env, undefined)).toBeNull();
    expect(commandProblem([process.execPath, 'anything.js'], env, dir)).toBeNull();
  });

  it('names a script that is not there, with the folder relative paths start at', () => {
    expect(commandProblem(['php', 'missing.php'], env, dir)).toBe(
      `PHP's script "missing.php" is not there: no file ${join(dir, 'missing.php')} (relative paths start at ${dir}, the workers' folder: the site's root, else the config file's folder)`,
    );
    expect(commandProblem(['php8.2', '/nowhere/w.php'], { PATH: dir }, dir)).toMatch(/^command not found: "php8.2"/);
  });

  it("finds php's script behind its options, as php reads them", () => {
    // -d and -c take a value (a .php one too); -f names the script; -- ends the options
    expect(
      commandProblem(['php', '-d', 'auto_prepend_file=/x.php', '-c', '/etc/php.ini', '-n', 'worker.php'], env, dir),
    ).toBeNull();
    expect(commandProblem(['php', '-d', 'opcache.enable_cli=1', 'gone.php'], env, dir)).toMatch(
      /"gone.php" is not there/,
    );
    expect(commandProblem(['php', '-dmemory_limit=1G', '-f', 'gone.php'], env, dir)).toMatch(/"gone.php" is not there/);
    expect(commandProblem(['php', '--', 'gone.php'], env, dir)).toMatch(/"gone.php" is not there/);
    // code given inline, or read from stdin: no script file to look for
    expect(commandProblem(['php', '-r', 'echo 1;'], env, dir)).toBeNull();
    expect(commandProblem(['php'], env, dir)).toBeNull();
    // php-cgi speaks FastCGI: its scripts come with each request
    expect(commandProblem(['php-cgi', '-d', 'x=1'], env, dir)).toBeNull();
  });

  it('names a program that is neither on PATH nor a file, with what to do', () => {
    expect(commandProblem(['no-such-program-wp', 'worker.php'], env, dir)).toBe(
      'command not found: "no-such-program-wp" (not on PATH). Install it or give its full path in the pool\'s command (server.command; fastcgi.command for classic PHP).',
    );
    expect(commandProblem(['./bin/php', 'worker.php'], env, dir)).toBe(
      `command not found: "./bin/php" (no executable file ${join(dir, 'bin/php')}). Install it (Debian/Ubuntu: apt-get install php-cli) or give its full path in server.command.`,
    );
    expect(commandProblem(['php-cgi8.9'], env, dir)).toMatch(
      /apt-get install php-cgi\) or give its full path in fastcgi.command/,
    );
  });

  it('leaves a workers folder that is not there to the options check', () => {
    expect(commandProblem(['php', 'worker.php'], env, join(dir, 'no-such-folder'))).toBeNull();
  });
});
