// What would stop a pool's command before PHP runs, found before anything boots: `config check`
// and serve's start name the key and line, where a failed boot can only show PHP's own words
// ("Could not open input file: worker.php") with no key, line, or folder it was looked for in.
import { statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { commandExists, installHint, isDirectory } from './process.js';

/** php's options that take the next argument as their value (`-d x=1`, `-c php.ini`). */
const VALUE_FLAGS = new Set(['-c', '-d', '-z', '--php-ini', '--define', '--zend-extension']);
/** php's options that run code given on the command line: there is no script file then. */
const CODE_FLAGS = new Set(['-r', '-B', '-R', '-F', '-E', '--run', '--process-begin', '--process-code']);
const FILE_FLAGS = new Set(['-f', '--file']);

/**
 * The problem, or null: the program is neither a path that is there nor a name on PATH, or the
 * command is php (php8.2, ...) and its script file is not there. Only what spawn and PHP would
 * certainly fail on: a script the workers' user cannot read is the boot's to say (its hint names it).
 */
export function commandProblem(
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
  cwd: string | undefined,
): string | null {
  const [program] = argv;
  // a folder that is not there is the pool options' check to report (resolvePoolOptions)
  if (program === undefined || (cwd !== undefined && !isDirectory(cwd))) return null;
  if (!commandExists(program, env, cwd)) {
    const where = program.includes('/') ? `no executable file ${resolve(cwd ?? '.', program)}` : 'not on PATH';
    return `command not found: "${program}" (${where}). ${installHint(program)}`;
  }
  if (!/^php[\d.]*$/.test(basename(program))) return null;
  const script = phpScript(argv.slice(1));
  if (script === null) return null;
  const path = resolve(cwd ?? '.', script);
  if (isFile(path)) return null;
  return `PHP's script "${script}" is not there: no file ${path}${script === path ? '' : ` (relative paths start at ${cwd ?? process.cwd()}, the workers' folder: the site's root, else the config file's folder)`}`;
}

/** The script php would run with these arguments, or null when it runs code given inline. */
function phpScript(args: readonly string[]): string | null {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return args[i + 1] ?? null;
    if (CODE_FLAGS.has(arg)) return null;
    if (FILE_FLAGS.has(arg)) return args[i + 1] ?? null;
    if (VALUE_FLAGS.has(arg)) i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return null;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
