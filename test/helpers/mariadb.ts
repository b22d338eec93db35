// A real MariaDB for the WordPress tests: Debian's mariadbd in the foreground, a data folder and a
// unix socket of its own in a temp dir (no TCP port, never the system's server or its config), in a
// process group of its own. root has no password on it; tests make one database each.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface MariaDb {
  /** the unix socket: WordPress's DB_HOST is "localhost:<socket>" */
  readonly socket: string;
  /** creates an empty database (utf8mb4) */
  createDatabase(name: string): void;
  stop(): Promise<void>;
}

const MARIADBD = '/usr/sbin/mariadbd';
const INSTALL_DB = '/usr/bin/mariadb-install-db';

export function hasMariaDb(): boolean {
  return existsSync(MARIADBD) && existsSync(INSTALL_DB);
}

export async function startMariaDb(): Promise<MariaDb> {
  if (!hasMariaDb())
    throw new Error(
      'MariaDB is not installed: apt-get install -y --no-install-recommends mariadb-server-core (scripts/setup.sh does)',
    );
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-mariadb-'));
  const data = join(dir, 'data');
  const socket = join(dir, 'mariadb.sock');
  // as root, mariadbd must be told to stay root (it refuses otherwise); as anybody else it runs as them
  const asUser = process.getuid?.() === 0 ? ['--user=root'] : [];
  execFileSync(
    INSTALL_DB,
    ['--no-defaults', `--datadir=${data}`, '--auth-root-authentication-method=normal', '--skip-test-db', ...asUser],
    { stdio: 'pipe' },
  );
  const child: ChildProcess = spawn(
    MARIADBD,
    [
      '--no-defaults',
      `--datadir=${data}`,
      `--socket=${socket}`,
      `--pid-file=${join(dir, 'mariadb.pid')}`,
      '--skip-networking',
      '--innodb-buffer-pool-size=16M',
      ...asUser,
    ],
    { detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const ready = new Promise<void>((resolve, reject) => {
    const onText = (text: string) => {
      output += text;
      if (output.includes('ready for connections')) resolve();
    };
    child.stdout!.setEncoding('utf8').on('data', onText);
    child.stderr!.setEncoding('utf8').on('data', onText);
    child.once('exit', (code) => reject(new Error(`mariadbd exited with ${code}:\n${output}`)));
  });
  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= (async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exit = once(child, 'exit');
        process.kill(-child.pid!, 'SIGTERM'); // a clean shutdown
        await exit;
      }
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  try {
    await ready;
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    socket,
    createDatabase(name) {
      // PHP's mysqli, which WordPress needs anyway (no dependency on a mysql client binary)
      execFileSync('php', [
        '-r',
        '$db = new mysqli("localhost", "root", "", "", 0, $argv[1]); $db->query("CREATE DATABASE `" . $argv[2] . "` CHARACTER SET utf8mb4") or exit(1);',
        socket,
        name,
      ]);
    },
    stop,
  };
}
