// max_worker_memory is read from /proc each watch_tick: it bounds a runaway request in time, not
// in bytes (a request allocating 1 GB/s reached 2.1 GB against 128 MB). PHP's memory_limit bounds
// bytes, but the php-cli of Debian, Ubuntu and the Docker images has none (-1), so a worker site
// that sets max_worker_memory and runs `php` without `-d memory_limit=` is warned, at boot and by
// `config check`. Asked of that php itself (one `php -r`, with the command's -n / -c), since php.ini
// decides.
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

/** One warning per worker site with max_worker_memory whose `php` has memory_limit -1. */
export function memoryLimitWarnings(server: Pick<ServerOptions, 'sites'>, loaded: LoadedConfig): MemoryLimitWarning[] {
  const warnings: MemoryLimitWarning[] = [];
  const asked = new Map<string, string | null>();
  for (const site of server.sites) {
    const limitMb = site.plugin.pool?.supervisor?.max_worker_memory ?? 0;
    if (site.plugin.fastcgi !== undefined || site.plugin.command === undefined || !(limitMb > 0)) continue;
    const argv = commandArgv(site.plugin.command);
    if (argv.length === 0 || !/^php[\d.]*$/.test(basename(argv[0]!))) continue;
    if (
      argv.some((arg, i) => /^-dmemory_limit=/.test(arg) || (arg === '-d' && /^memory_limit=/.test(argv[i + 1] ?? '')))
    )
      continue;
    const ini = iniFlags(argv);
    const id = [argv[0], ...ini].join('\0');
    if (!asked.has(id)) asked.set(id, askMemoryLimit(argv[0]!, ini));
    if (asked.get(id) !== '-1') continue;
    const prefix = site.index === null ? '' : `sites[${site.index}].`;
    const key = `${prefix}http.pool.supervisor.max_worker_memory`;
    const at = loaded.positionOf(key) ??
      loaded.positionOf('http.pool.supervisor.max_worker_memory') ?? { file: loaded.file, line: 1, col: 1 };
    warnings.push({
      key,
      file: at.file,
      line: at.line,
      col: at.col,
      message: `is ${limitMb} MB, but ${argv[0]} has memory_limit = -1 (no limit): RSS is checked each watch_tick, so a runaway request can grow far past it before it is killed; add -d memory_limit=${limitMb}M to the worker command (${argv[0]} -d memory_limit=${limitMb}M …)`,
    });
  }
  return warnings;
}

function commandArgv(command: string | readonly string[]): string[] {
  return Array.isArray(command) ? [...command] : String(command).trim().split(/\s+/);
}

/** The flags that choose php.ini: -n, -c FILE, -cFILE. */
function iniFlags(argv: readonly string[]): string[] {
  const flags: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-n') flags.push(arg);
    else if (arg === '-c' && argv[i + 1] !== undefined) flags.push(arg, argv[++i]!);
    else if (arg.startsWith('-c') && arg.length > 2) flags.push(arg);
    else if (!arg.startsWith('-')) break; // the script: what follows is its own
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
