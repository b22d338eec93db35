// PHP that warmpool starts itself runs as warmpool's user unless server.user says otherwise. Started
// as root (systemd's default for a service), that is root: php-fpm refuses such a pool outright
// (unless run with -R). A warning, not a refusal: containers and throwaway machines run as root on
// purpose, and the quick start runs there too.
//
// The other way round, server.user needs root to switch to: a warmpool run as www-data (systemd's
// User=) with server.user: nobody failed at its first worker with a bare "spawn EPERM" (php-cgi: a
// chown's EPERM) after config check had passed it. Both refuse it now, at its line; a server.user
// that is warmpool's own user (and group) asks for no switch, and stays fine.
import { userInfo } from 'node:os';
import {
  InvalidValueError,
  type LoadedConfig,
  type Position,
  type ServerOptions,
  type SiteOptions,
} from '@warmpool/config';

export interface RootPhpWarning {
  key: string;
  file: string;
  line: number;
  col: number;
  message: string;
}

/** One warning per site whose PHP processes would run as root; none when not root. */
export function rootPhpWarnings(
  server: Pick<ServerOptions, 'sites'>,
  loaded: LoadedConfig,
  uid: number | undefined = process.getuid?.(),
): RootPhpWarning[] {
  if (uid !== 0) return [];
  const warnings: RootPhpWarning[] = [];
  for (const site of server.sites) {
    if (!runsPhpItself(site) || site.plugin.pool?.uid !== undefined) continue;
    const prefix = site.index === null ? '' : `sites[${site.index}].`;
    const at = loaded.positionOf(`${prefix}server`) ??
      (site.index === null ? null : loaded.positionOf(`sites[${site.index}]`)) ??
      loaded.positionOf('server') ?? { file: loaded.file, line: 1, col: 1 };
    const which = site.hosts === null ? 'the PHP processes' : `the PHP processes of ${site.hosts.join(', ')}`;
    warnings.push({
      key: `${prefix}server.user`,
      file: at.file,
      line: at.line,
      col: at.col,
      message: `not set, and warmpool runs as root: ${which} run as root, so a flaw in the app (an upload, a plugin) is root on this machine; set server.user (e.g. www-data), as php-fpm refuses root pools`,
    });
  }
  return warnings;
}

/** Worker loops and managed php-cgi; a site that passes to php-fpm runs php-fpm's processes. */
export function runsPhpItself(site: SiteOptions): boolean {
  const { fastcgi, command } = site.plugin;
  return fastcgi === undefined ? command !== undefined : fastcgi.pass === undefined;
}

/** The user and group warmpool runs as (effective ids: those the kernel checks a switch against). */
export interface OwnIds {
  uid: number;
  gid: number;
}

function ownIds(): OwnIds | null {
  const uid = process.geteuid?.();
  const gid = process.getegid?.();
  return uid === undefined || gid === undefined ? null : { uid, gid };
}

/**
 * One problem per server.user (or server.group) that asks PHP to run as a user or group warmpool is
 * not, when warmpool is not root: the kernel refuses the switch (setuid/setgid, the chown of
 * php-cgi's socket folder) to anyone but root. Same key and line for many sites: checkSites keeps one.
 */
export function phpUserProblems(
  server: Pick<ServerOptions, 'sites'>,
  loaded: LoadedConfig,
  own: OwnIds | null = ownIds(),
): InvalidValueError[] {
  if (own === null || own.uid === 0) return [];
  const problems: InvalidValueError[] = [];
  for (const site of server.sites) {
    const pool = site.plugin.pool;
    if (!runsPhpItself(site) || (pool?.uid === undefined && pool?.gid === undefined)) continue;
    const prefix = site.index === null ? '' : `sites[${site.index}].`;
    const fix = 'run it as root (it drops to that user for PHP)';
    if (pool.uid !== undefined && pool.uid !== own.uid) {
      const [key, at] = located(loaded, prefix, 'server.user');
      problems.push(
        new InvalidValueError(
          key,
          at,
          `switching PHP to ${named('user', site.server.user, pool.uid)} needs root; warmpool runs as ${describeOwnUser(own.uid)}: ${fix}, or remove server.user`,
        ),
      );
    } else if (pool.gid !== undefined && pool.gid !== own.gid) {
      // the user is warmpool's own, its group is not: server.group, or server.user's primary group
      const setsGroup = site.server.group !== undefined;
      const [key, at] = located(loaded, prefix, setsGroup ? 'server.group' : 'server.user');
      const group = setsGroup
        ? named('group', site.server.group, pool.gid)
        : `gid ${pool.gid} (the primary group of ${named('user', site.server.user, pool.uid ?? own.uid)})`;
      problems.push(
        new InvalidValueError(
          key,
          at,
          `switching PHP to ${group} needs root; warmpool runs as ${describeOwnUser(own.uid)}, gid ${own.gid}: ${fix}, or ${setsGroup ? 'remove server.group' : `set server.group to ${own.gid}, or remove server.user`}`,
        ),
      );
    }
  }
  return problems;
}

/** The site's own key when it sets one, else the top level's (inherited), with its position. */
function located(loaded: LoadedConfig, prefix: string, key: string): [string, Position] {
  for (const candidate of [`${prefix}${key}`, key]) {
    const at = loaded.positionOf(candidate);
    if (at !== null) return [candidate, at];
  }
  const at = loaded.positionOf(`${prefix}${key}`, { nearest: true }) ?? { file: loaded.file, line: 1, col: 1 };
  return [`${prefix}${key}`, at];
}

/** `user "www-data"`, or `uid 33` for a number as given. */
function named(kind: 'user' | 'group', value: string | number | undefined, id: number): string {
  return value === undefined || /^\d+$/.test(String(value))
    ? `${kind === 'user' ? 'uid' : 'gid'} ${id}`
    : `${kind} "${value}"`;
}

/** `uid 1000 (alice)`; `uid 1000` for a uid without a passwd entry. */
export function describeOwnUser(uid: number): string {
  try {
    // userInfo() is the process's own user: a uid given by a test is not
    if (uid === process.geteuid?.()) return `uid ${uid} (${userInfo().username})`;
    return `uid ${uid}`;
  } catch {
    return `uid ${uid}`;
  }
}
