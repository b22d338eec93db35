// A real php-fpm for the tests of classic mode's `fastcgi.pass`: Debian's php-fpm binary, started in
// the foreground with a config and a unix socket of its own in a temp dir (never the system's),
// in a process group of its own so that stop() can prove none of its processes is left.
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Debian installs php-fpm as /usr/sbin/php-fpm<version>. */
export function findPhpFpm(): string | null {
  for (const dir of ['/usr/sbin', '/usr/local/sbin', '/usr/bin']) {
    if (!existsSync(dir)) continue;
    const name = readdirSync(dir)
      .filter((n) => /^php-fpm[0-9.]*$/.test(n))
      .sort()
      .pop();
    if (name !== undefined) return join(dir, name);
  }
  return null;
}

export interface PhpFpm {
  /** the `fastcgi.pass` value: "unix:/tmp/…/php-fpm.sock" (or "127.0.0.1:<port>" with tcpPort) */
  readonly pass: string;
  readonly socket: string;
  readonly dir: string;
  readonly pid: number;
  /** php-fpm's log so far */
  log(): string;
  stop(): Promise<void>;
}

export interface PhpFpmOptions {
  /** pm.max_children (pm = static); default 2 */
  maxChildren?: number;
  /** php_admin_value[...] lines: { memory_limit: '256M' } */
  ini?: Record<string, string>;
  /** more lines for the pool section */
  pool?: string[];
  /** listen on 127.0.0.1:<tcpPort> instead of a unix socket (`pass` is then "127.0.0.1:<port>") */
  tcpPort?: number;
}

/** Pids whose process group is `pgid` (zombies excluded). */
function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') members.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return members;
}

async function until(check: () => boolean, what: string, log: () => string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${log()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `php-fpm -F -R -y <dir>/php-fpm.conf -p <dir>`: pm static, listening on <dir>/php-fpm.sock. */
export async function startPhpFpm(options: PhpFpmOptions = {}): Promise<PhpFpm> {
  const binary = findPhpFpm();
  if (binary === null) throw new Error('php-fpm is not installed: apt-get install -y php-fpm (scripts/setup.sh does)');
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-fpm-'));
  const socket = join(dir, 'php-fpm.sock');
  const ini = Object.entries({ post_max_size: '64M', upload_max_filesize: '64M', ...options.ini }).map(
    ([key, value]) => `php_admin_value[${key}] = ${value}`,
  );
  writeFileSync(
    join(dir, 'php-fpm.conf'),
    [
      '[global]',
      `pid = ${join(dir, 'php-fpm.pid')}`,
      `error_log = ${join(dir, 'php-fpm.log')}`,
      'daemonize = no',
      '[www]',
      `listen = ${options.tcpPort === undefined ? socket : `127.0.0.1:${options.tcpPort}`}`,
      'pm = static',
      `pm.max_children = ${options.maxChildren ?? 2}`,
      'catch_workers_output = yes',
      'decorate_workers_output = no',
      // the test run's stamp reaches the children, so the suite's teardown can count them
      'clear_env = no',
      ...ini,
      ...(options.pool ?? []),
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(binary, ['-F', '-R', '-y', join(dir, 'php-fpm.conf'), '-p', dir], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (t: string) => output.push(t));
  child.stderr!.setEncoding('utf8').on('data', (t: string) => output.push(t));
  const log = () => {
    try {
      return readFileSync(join(dir, 'php-fpm.log'), 'utf8') + output.join('');
    } catch {
      return output.join('');
    }
  };
  let stopped: Promise<void> | null = null;
  const stop = () => {
    stopped ??= (async () => {
      const pgid = child.pid!;
      if (child.exitCode === null && child.signalCode === null) {
        const exit = once(child, 'exit');
        try {
          process.kill(pgid, 'SIGQUIT'); // graceful: children finish their request
        } catch {}
        const graceful = await Promise.race([exit.then(() => true), new Promise((r) => setTimeout(r, 5000, false))]);
        if (!graceful) process.kill(-pgid, 'SIGKILL');
        await exit;
      }
      await until(() => groupMembers(pgid).length === 0, `php-fpm group ${pgid} to end`, log, 10_000).catch(() => {
        try {
          process.kill(-pgid, 'SIGKILL');
        } catch {}
      });
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  try {
    await until(() => log().includes('ready to handle connections') || child.exitCode !== null, 'php-fpm', log);
    if (child.exitCode !== null) throw new Error(`php-fpm exited with ${child.exitCode}:\n${log()}`);
  } catch (error) {
    await stop();
    throw error;
  }
  const pass = options.tcpPort === undefined ? `unix:${socket}` : `127.0.0.1:${options.tcpPort}`;
  return { pass, socket, dir, pid: child.pid!, log, stop };
}
