// The files warmpool writes its logs to (logs.output, each item of a list, and http.access_log.output),
// checked as nginx -t opens its log files: a path that cannot be created was, in serve, an
// "✗ unexpected error: Error: EACCES: permission denied, mkdir ..." with a stack trace (exit 1),
// after config check had passed it. Both now say which key, what is in the way and what to do
// (exit 2). The channels' own outputs are not opened (logging.ts warns of them), so not checked.
//
// config check creates nothing (a check that leaves an empty log file, or its folder, behind is a
// surprise on a machine where the config is only being tried): it walks up to the nearest path that
// exists and asks the kernel (access(2)) whether warmpool's user may write there, as it would to
// create what is missing. serve makes the same check, for the same message, then creates the folder
// and opens the file for appending, as its loggers will: what access(2) cannot foresee (an ACL, a
// full disk) is still said at the key.
import { accessSync, closeSync, constants, mkdirSync, openSync, statSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ConfigError, InvalidValueError, type LoadedConfig, type ServerOptions } from '@warmpool/config';
import { describeOwnUser } from './root-php.js';

/** One log file the config names: its key (for the error's line) and its path. */
export interface LogFile {
  key: string;
  path: string;
}

/** Every file path among logs.output and http.access_log.output (stdout and stderr are not files). */
export function logFilesOf(server: Pick<ServerOptions, 'logs' | 'http'>): LogFile[] {
  const files: LogFile[] = [];
  const output = server.logs.output;
  if (typeof output === 'string') files.push({ key: 'logs.output', path: output });
  else if (Array.isArray(output))
    for (const [i, path] of output.entries()) files.push({ key: `logs.output[${i}]`, path });
  const access = server.http.access_log?.output;
  if (access !== undefined) files.push({ key: 'http.access_log.output', path: access });
  return files.filter((file) => file.path !== 'stdout' && file.path !== 'stderr');
}

/**
 * Each log file warmpool cannot create or append to, at its key's line; null: all can be written.
 * `create`: serve's check, which then makes the folder and opens the file (config check's makes nothing).
 */
export function logFileProblems(
  server: Pick<ServerOptions, 'logs' | 'http'>,
  loaded: LoadedConfig,
  { create }: { create: boolean },
): ConfigError | null {
  const errors: InvalidValueError[] = [];
  for (const { key, path } of logFilesOf(server)) {
    const problem = logFileProblem(resolve(path), create);
    if (problem === null) continue;
    const at = loaded.positionOf(key, { nearest: true }) ?? { file: loaded.file, line: 1, col: 1 };
    errors.push(new InvalidValueError(key, at, problem));
  }
  return errors.length === 0 ? null : new ConfigError(loaded.file, errors);
}

/** Why `path` (absolute) cannot be written, or null. */
export function logFileProblem(path: string, create: boolean): string | null {
  const problem = foreseenProblem(path);
  if (problem !== null || !create) return problem;
  try {
    mkdirSync(dirname(path), { recursive: true });
    closeSync(openSync(path, 'a'));
    return null;
  } catch (error) {
    return `cannot create ${path}: ${describeErrno(error)}`;
  }
}

/** What the kernel says to writing `path` (and making its missing folders), without making anything. */
function foreseenProblem(path: string): string | null {
  // the nearest path that exists: the file itself, its folder, or a folder (or file) further up
  let existing = path;
  let info: Stats | null = null;
  for (;;) {
    try {
      info = statSync(existing);
      break;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || existing === dirname(existing))
        return `cannot create ${path}: ${describeErrno(error)}`;
      existing = dirname(existing);
    }
  }
  if (existing === path) {
    if (info.isDirectory()) return `${path} is a folder; name a file in it (e.g. ${join(path, 'warmpool.log')})`;
    const denied = accessProblem(path, constants.W_OK);
    return denied === null
      ? null
      : `cannot open ${path} for appending: ${denied === 'EACCES' ? denyHint('it') : denied}`;
  }
  if (!info.isDirectory())
    return `cannot create ${path}: a file is in the way (${existing} is not a folder); name a path in a folder`;
  const folder = dirname(path);
  // nothing new can be made under /proc or /sys, root's access(2) there notwithstanding (and Node's
  // recursive mkdir never returns for a missing folder there: each mkdir says ENOENT, so it makes
  // the parent again, and again)
  if (/^\/(proc|sys)(\/|$)/.test(folder))
    return `cannot create ${path}: no file or folder can be made under /${folder.split('/')[1]}; name a file that exists there (e.g. /proc/1/fd/1) or a path elsewhere`;
  const denied = accessProblem(existing, constants.W_OK | constants.X_OK);
  if (denied === null) return null;
  if (denied !== 'EACCES') return `cannot create ${path}: ${denied}`;
  return `cannot create ${path}: ${denyHint(existing)}${existing === folder ? '' : `, or create ${folder} for that user`}`;
}

/**
 * Why a folder warmpool must write in (http.ssl.acme.certs_dir) cannot be used, or null; nothing is
 * made: serve makes it, and says the same at its key when it cannot.
 */
export function folderProblem(path: string): string | null {
  let info: Stats;
  try {
    info = statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') return `cannot use ${path}: ${describeErrno(error)}`;
    // missing: can it be made where the nearest existing folder is?
    return foreseenProblem(join(path, 'x'))?.replace(join(path, 'x'), path) ?? null;
  }
  if (!info.isDirectory()) return `cannot use ${path}: a file is in the way of a folder; name a folder`;
  const denied = accessProblem(path, constants.W_OK | constants.X_OK);
  if (denied === null) return null;
  return `cannot use ${path}: ${denied === 'EACCES' ? denyHint('it') : denied}`;
}

/** null when warmpool's user may (access(2)); 'EACCES' when permission is denied; else what the kernel said. */
function accessProblem(path: string, mode: number): string | null {
  try {
    accessSync(path, mode);
    return null;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM' ? 'EACCES' : describeErrno(error);
  }
}

/** "permission denied; make WHAT writable by the user warmpool runs as, uid 1000 (deploy)" */
function denyHint(what: string): string {
  return `permission denied; make ${what} writable by the user warmpool runs as, ${describeOwnUser(process.geteuid?.() ?? -1)}`;
}

function describeErrno(error: unknown): string {
  const { code, path } = error as NodeJS.ErrnoException;
  if (code === 'EACCES' || code === 'EPERM') return denyHint(path === undefined ? 'its folder' : dirname(path));
  if (code === 'EROFS') return 'read-only filesystem; name a path on a writable one (e.g. under /var/log)';
  if (code === 'ENOTDIR' || code === 'EEXIST')
    return `a file is in the way${path === undefined ? '' : ` (${path})`}; name a path in a folder`;
  if (code === 'EISDIR') return 'it is a folder; name a file in it';
  return (error as Error).message;
}
