// Worker sites parse uploads in Node and hand PHP a temp file under http.uploads.dir (the system's
// temp folder by default), chowned to the workers' user. With server.user, PHP opens that file as
// that user: a folder on the way it may not search (/root/uploads, a 0700 home) made every upload a
// "failed to open stream" in PHP, while `config check` had passed the file. Said at start and by
// `config check`, as a warning: an ACL may still let the user in. (Not a supplementary group: the
// workers get server.user's uid and gid only, as libuv drops the groups when it switches.)
import { statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, resolve } from 'node:path';
import type { LoadedConfig, ServerOptions } from '@warmpool/config';
import { userMay } from '@warmpool/pool';
import { runsPhpItself } from './root-php.js';

export interface UploadsAccessWarning {
  key: string;
  file: string;
  line: number;
  col: number;
  message: string;
}

/** One warning per worker site whose server.user cannot search every folder down to its uploads.dir. */
export function uploadsAccessWarnings(
  server: Pick<ServerOptions, 'sites'>,
  loaded: LoadedConfig,
  temp: string = tmpdir(),
): UploadsAccessWarning[] {
  const warnings: UploadsAccessWarning[] = [];
  for (const site of server.sites) {
    const { plugin } = site;
    const uid = plugin.pool?.uid;
    // classic PHP reads its own uploads (PHP's upload_tmp_dir); raw_body hands PHP no file
    if (!runsPhpItself(site) || plugin.fastcgi !== undefined || plugin.raw_body === true) continue;
    if (uid === undefined || uid === 0) continue;
    const dir = resolve(plugin.uploads?.dir ?? temp);
    const blocked = unsearchable(dir, uid, plugin.pool?.gid);
    if (blocked === null) continue;
    const prefix = site.index === null ? '' : `sites[${site.index}].`;
    const key = [`${prefix}http.uploads.dir`, 'http.uploads.dir', `${prefix}server.user`, 'server.user'].find(
      (candidate) => loaded.positionOf(candidate) !== null,
    );
    const at = (key === undefined ? null : loaded.positionOf(key)) ?? { file: loaded.file, line: 1, col: 1 };
    const who = site.server.user === undefined ? `uid ${uid}` : `server.user ${site.server.user} (uid ${uid})`;
    warnings.push({
      key: key ?? `${prefix}http.uploads.dir`,
      ...at,
      message: `${who} cannot reach the uploads folder ${dir}: ${blocked.path} is mode ${blocked.mode.toString(8).padStart(4, '0')}, owned by uid ${blocked.uid}, gid ${blocked.gid}, so PHP cannot open the files uploaded to it ($_FILES tmp_name); let that user search it (chmod o+x ${blocked.path}) or set http.uploads.dir to a folder it can reach`,
    });
  }
  return warnings;
}

/** The first folder from / down to `dir` that `uid`/`gid` may not search (x), or null; missing ones are skipped. */
function unsearchable(
  dir: string,
  uid: number,
  gid: number | undefined,
): { path: string; mode: number; uid: number; gid: number } | null {
  const chain: string[] = [];
  for (let path = dir; ; path = dirname(path)) {
    chain.unshift(path);
    if (dirname(path) === path) break;
  }
  for (const path of chain) {
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats === undefined) continue; // created at start, by warmpool
    // the pool's own check of its temp folders (enter: 0o1)
    if (!userMay(stats, uid, gid, 0o1)) return { path, mode: stats.mode & 0o7777, uid: stats.uid, gid: stats.gid };
  }
  return null;
}
