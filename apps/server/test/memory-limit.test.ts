import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, toServerOptions } from '@warmpool/config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { memoryLimitWarnings } from '../src/memory-limit.js';

// max_worker_memory bounds a runaway request in time only: a worker php with no memory_limit is warned about.
let dir: string;
let unlimited: string;
let limited: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-memory-limit-'));
  unlimited = join(dir, 'unlimited.ini');
  limited = join(dir, 'limited.ini');
  await writeFile(unlimited, 'memory_limit = -1\n');
  await writeFile(limited, 'memory_limit = 256M\n');
});

afterAll(async () => {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

function warningsOf(command: string, supervisor = 'max_worker_memory: 128') {
  const loaded = parseConfig(
    `version: "3"
server:
  command: ${command}
http:
  address: 127.0.0.1:8080
  pool:
    supervisor:
      ${supervisor}
`,
    { file: '/tmp/warmpool-memory.yaml', env: {} },
  );
  return memoryLimitWarnings(toServerOptions(loaded), loaded);
}

describe('memoryLimitWarnings', () => {
  it('warns at max_worker_memory when the worker php has memory_limit -1, suggesting -d memory_limit', () => {
    const warnings = warningsOf(`php -c ${unlimited} worker.php`);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ key: 'http.pool.supervisor.max_worker_memory', line: 8 });
    expect(warnings[0]!.message).toMatch(
      /^is 128 MB, but php has memory_limit = -1 \(no limit\): .*add -d memory_limit=128M to the worker command/,
    );
  });

  it('sees php behind env, nice, ionice and taskset with their options, as a command starts it', () => {
    for (const wrapped of [
      `env php -c ${unlimited} worker.php`,
      `env APP_ENV=prod nice php -c ${unlimited} worker.php`,
      `nice -n 10 php -c ${unlimited} worker.php`,
      `env -i APP=1 php -c ${unlimited} worker.php`,
      `ionice -c3 php -c ${unlimited} worker.php`,
      `ionice -c 2 -n 7 nice -n 5 php -c ${unlimited} worker.php`,
      `taskset 0x3 php -c ${unlimited} worker.php`,
      // a -d after the script is the script's argument, not php's
      `php -c ${unlimited} worker.php -d memory_limit=256M`,
    ])
      expect(
        warningsOf(wrapped, 'exec_ttl: 30s').map((w) => w.key),
        wrapped,
      ).toEqual(['server.command']);
  });

  it('without max_worker_memory, warns at the command: nothing bounds a runaway request', () => {
    const warnings = warningsOf(`php -c ${unlimited} worker.php`, 'exec_ttl: 30s');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ key: 'server.command', line: 3 });
    expect(warnings[0]!.message).toMatch(
      /^runs php with memory_limit = -1 \(php-cli's default: no limit\), so one runaway request can take all of the machine's memory; add -d memory_limit=256M/,
    );
  });

  it('says nothing when the command or php.ini sets a limit, or the command is not php', () => {
    expect(warningsOf(`php -c ${unlimited} -d memory_limit=128M worker.php`)).toEqual([]);
    expect(warningsOf(`php -c ${limited} worker.php`)).toEqual([]);
    expect(warningsOf(`php -c ${limited} worker.php`, 'exec_ttl: 30s')).toEqual([]);
    expect(warningsOf(`/bin/sh start.sh`, 'exec_ttl: 30s')).toEqual([]);
    expect(warningsOf(`env APP_ENV=prod php -c ${limited} worker.php`, 'exec_ttl: 30s')).toEqual([]);
  });
});
