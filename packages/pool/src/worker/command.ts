import { InvalidPoolOptionError } from '../errors.js';

/** The version RoadRunner-aware PHP code sees in RR_VERSION. */
export const RR_COMPAT_VERSION = '2025.1.15';

/**
 * Splits `server.command` into argv the way a shell would for the simple cases people write
 * (`php -d opcache.enable_cli=1 worker.php`, quoted paths); no variables, globs or pipes.
 */
export function parseCommand(command: string | readonly string[]): string[] {
  if (typeof command !== 'string') {
    if (command.length === 0 || command.some((part) => typeof part !== 'string')) {
      throw new InvalidPoolOptionError('command', 'must be a non-empty string or an array of strings');
    }
    return [...command];
  }
  const argv: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  for (let i = 0; i < command.length; i++) {
    const ch = command[i]!;
    if (quote !== null) {
      if (ch === quote) quote = null;
      else if (ch === '\\' && quote === '"' && i + 1 < command.length) current += command[++i];
      else current += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      inWord = true;
    } else if (ch === '\\' && i + 1 < command.length) {
      current += command[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) argv.push(current);
      current = '';
      inWord = false;
    } else {
      current += ch;
      inWord = true;
    }
  }
  if (quote !== null)
    throw new InvalidPoolOptionError('command', `unterminated ${quote} quote in ${JSON.stringify(command)}`);
  if (inWord) argv.push(current);
  if (argv.length === 0)
    throw new InvalidPoolOptionError(
      'command',
      'is empty; give the command that starts a worker, e.g. "php worker.php"',
    );
  return argv;
}

/**
 * The worker environment (PROTOCOL.md §1): the server's own, then `env` with keys upper-cased and
 * $VAR / ${VAR} expanded from the server environment, then the RR_* variables workers read.
 */
export function buildWorkerEnv(
  userEnv: Readonly<Record<string, string>>,
  rr: { relay: string; mode: string; extraFds: boolean },
  base: NodeJS.ProcessEnv = process.env,
  /** only CGI_KEPT_ENV of `base` (server.clear_env, php-fpm's clear_env) */
  clearEnv = false,
): NodeJS.ProcessEnv {
  const env = withUserEnv(userEnv, base, clearEnv ? keptOf(base) : base);
  env.RR_RELAY = rr.relay;
  env.RR_MODE = rr.mode;
  env.RR_VERSION = RR_COMPAT_VERSION;
  // Our SDK reads these to run the protocol on fds 3/4 instead of stdin/stdout.
  if (rr.extraFds) env.WARMPOOL_RELAY_FDS = '3,4';
  else delete env.WARMPOOL_RELAY_FDS;
  env.WARMPOOL = '1';
  return env;
}

/**
 * What a php-cgi worker keeps of the server's environment when it is cleared (php-fpm's clear_env,
 * on by default): where to find programs and temp space, and PHP's own startup settings (php.ini
 * location and scan folder), read before any script runs. Nothing else: PHP puts its environment in
 * every request's $_SERVER, so a phpinfo() page would show the server's secrets to the internet.
 */
export const CGI_KEPT_ENV = ['PATH', 'TMPDIR', 'PHPRC', 'PHP_INI_SCAN_DIR'] as const;

/**
 * A php-cgi worker's environment: with `clearEnv` (the default) only CGI_KEPT_ENV of the server's
 * own, else all of it; then `env` as for goridge workers (given by name: php-fpm's env[NAME]).
 * php-cgi forks no children (PHP_FCGI_CHILDREN=0: the pool counts and supervises each process) and
 * never exits on its own after a number of requests (PHP_FCGI_MAX_REQUESTS=0: max_jobs decides).
 */
export function buildCgiEnv(
  userEnv: Readonly<Record<string, string>>,
  base: NodeJS.ProcessEnv = process.env,
  clearEnv = true,
): NodeJS.ProcessEnv {
  const env = withUserEnv(userEnv, base, clearEnv ? keptOf(base) : base);
  env.PHP_FCGI_CHILDREN = '0';
  env.PHP_FCGI_MAX_REQUESTS = '0';
  env.WARMPOOL = '1';
  return env;
}

/** The CGI_KEPT_ENV variables `base` has. */
function keptOf(base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const kept: NodeJS.ProcessEnv = {};
  for (const key of CGI_KEPT_ENV) if (base[key] !== undefined) kept[key] = base[key];
  return kept;
}

/** `start` (the base environment) plus `userEnv`, keys upper-cased and $VAR / ${VAR} expanded from `base`. */
function withUserEnv(
  userEnv: Readonly<Record<string, string>>,
  base: NodeJS.ProcessEnv,
  start: NodeJS.ProcessEnv = base,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...start };
  for (const [key, value] of Object.entries(userEnv)) {
    env[key.toUpperCase()] = String(value).replace(
      /\$\{(\w+)\}|\$(\w+)/g,
      (_, a: string | undefined, b: string | undefined) => base[(a ?? b)!] ?? '',
    );
  }
  return env;
}
