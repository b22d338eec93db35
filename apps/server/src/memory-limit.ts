// PHP's memory_limit bounds a runaway request in bytes, and the php-cli of Debian, Ubuntu and the
// Docker images has none (-1): a worker site running such a php with nothing else bounding it grew
// to 23 GB in a probe, until the kernel's OOM killer took a process of its choosing (php-fpm's
// php.ini has 128M: the same route was a 500 in 60 ms). max_worker_memory is read from /proc each
// watch_tick: it bounds a worker in time, not in bytes (a request allocating 1 GB/s reached 2.1 GB
// against 128 MB). So a worker site whose `php` has memory_limit -1 is warned, at boot and by
// `config check`: at max_worker_memory when it is set, else at the command. Asked of that php
// itself (one `php -r`, with the command's -n / -c), since php.ini decides.
import { execFileSync } from 'node:child_process';
import { basename } from 'node:path';
import type { LoadedConfig, ServerOptions } from '@warmpool/config';

export interface MemoryLimitWarning {
  key: string;
  file: string;
  line: number;
  col: number;
  message: string;
}

/** One warning per worker site whose `php` has memory_limit -1 and no -d memory_limit. */
export function memoryLimitWarnings(server: Pick<ServerOptions, 'sites'>, loaded: LoadedConfig): MemoryLimitWarning[] {
  const warnings: MemoryLimitWarning[] = [];
  const asked = new Map<string, string | null>();
  for (const site of server.sites) {
    const limitMb = site.plugin.pool?.supervisor?.max_worker_memory ?? 0;
    if (site.plugin.fastcgi !== undefined || site.plugin.command === undefined) continue;
    const argv = commandArgv(site.plugin.command);
    if (argv.length === 0 || !/^php[\d.]*$/.test(basename(argv[0]!))) continue;
    // php's own -d, before the script (after it, a -d is the script's argument)
    const own = phpFlags(argv);
    if (own.some((arg, i) => /^-dmemory_limit=/.test(arg) || (arg === '-d' && /^memory_limit=/.test(own[i + 1] ?? ''))))
      continue;
    const ini = iniFlags(argv);
    const id = [argv[0], ...ini].join('\0');
    if (!asked.has(id)) asked.set(id, askMemoryLimit(argv[0]!, ini));
    if (asked.get(id) !== '-1') continue;
    const prefix = site.index === null ? '' : `sites[${site.index}].`;
    const bounded = limitMb > 0;
    const key = bounded ? `${prefix}http.pool.supervisor.max_worker_memory` : `${prefix}server.command`;
    const at = loaded.positionOf(key) ??
      loaded.positionOf(key.slice(prefix.length)) ?? { file: loaded.file, line: 1, col: 1 };
    warnings.push({
      key,
      file: at.file,
      line: at.line,
      col: at.col,
      message: bounded
        ? `is ${limitMb} MB, but ${argv[0]} has memory_limit = -1 (no limit): RSS is checked each watch_tick, so a runaway request can grow far past it before it is killed; add -d memory_limit=${limitMb}M to the worker command (${argv[0]} -d memory_limit=${limitMb}M …)`
        : `runs ${argv[0]} with memory_limit = -1 (php-cli's default: no limit), so one runaway request can take all of the machine's memory; add -d memory_limit=256M (php-fpm's php.ini has 128M), e.g. ${argv[0]} -d memory_limit=256M …, and http.pool.supervisor.max_worker_memory to recycle a worker that grows`,
    });
  }
  return warnings;
}

/** Wrappers that run the command after their own words: their options that take a value. */
const WRAPPERS: Record<string, readonly string[]> = {
  env: ['-u', '--unset', '-C', '--chdir', '-S', '--split-string'],
  nice: ['-n', '--adjustment'],
  ionice: ['-c', '--class', '-n', '--classdata', '-p', '--pid', '-P', '--pgid', '-u', '--uid'],
  // a plain word of their own first: the mask, the priority
  taskset: [],
  chrt: [],
};

/**
 * The command's words from its php on, past wrappers, their options and env's NAME=value words:
 * `env -i APP=1 php …`, `nice -n 10 php …`, `ionice -c3 php …` (a probe's `nice -n 10 php` was not
 * warned of).
 */
function commandArgv(command: string | readonly string[]): string[] {
  const argv = Array.isArray(command) ? [...command] : String(command).trim().split(/\s+/);
  const isPhp = (word: string) => /^php[\d.]*$/.test(basename(word));
  let i = 0;
  while (i < argv.length - 1 && !isPhp(argv[i]!)) {
    const takes = WRAPPERS[basename(argv[i]!)];
    if (takes === undefined && !/^[A-Za-z_]\w*=/.test(argv[i]!)) break;
    i++;
    while (i < argv.length - 1 && !isPhp(argv[i]!) && WRAPPERS[basename(argv[i]!)] === undefined) {
      const word = argv[i]!;
      if (word.startsWith('-')) i += takes?.includes(word) === true ? 2 : 1;
      else if (/^[A-Za-z_]\w*=/.test(word) || takes?.length === 0) i++;
      else break;
    }
  }
  return argv.slice(i);
}

/** php's own flags, up to the script (what follows the script is its own). */
function phpFlags(argv: readonly string[]): string[] {
  const flags: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('-')) break;
    flags.push(arg);
    // the flags that take a separate value
    if (/^-[dczf]$/.test(arg) && argv[i + 1] !== undefined) flags.push(argv[++i]!);
  }
  return flags;
}

/** The flags that choose php.ini: -n, -c FILE, -cFILE. */
function iniFlags(argv: readonly string[]): string[] {
  const own = phpFlags(argv);
  const flags: string[] = [];
  for (let i = 0; i < own.length; i++) {
    const arg = own[i]!;
    if (arg === '-n') flags.push(arg);
    else if (arg === '-c' && own[i + 1] !== undefined) flags.push(arg, own[++i]!);
    else if (arg.startsWith('-c') && arg.length > 2) flags.push(arg);
    else if (/^-[dzf]$/.test(arg)) i++;
  }
  return flags;
}

/** memory_limit as that php reports it; null when it cannot be asked (the boot will say why). */
function askMemoryLimit(php: string, ini: readonly string[]): string | null {
  try {
    return execFileSync(php, [...ini, '-r', 'echo ini_get("memory_limit");'], {
      encoding: 'utf8',
      timeout: 5000,
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return null;
  }
}
