// The temp folders PHP processes meet when they run as another user (server.user): php-cgi's
// private socket folder is made under the server's TMPDIR, and PHP keeps uploads and large POST
// bodies in its own TMPDIR. A folder that user cannot enter, or cannot write, fails in ways that do
// not name the cause (php-cgi: "Permission denied" binding its socket; PHP: UPLOAD_ERR_CANT_WRITE, a
// POST body dropped with a 200), so the pool checks both once, at start.
import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';

const ENTER = 0o1;
const WRITE_AND_ENTER = 0o3;

/** Whether the user may do `bits` (0o1 enter, 0o2 write, 0o4 read) on a file of this owner and mode. */
export function userMay(
  file: { uid: number; gid: number; mode: number },
  uid: number,
  gid: number | undefined,
  bits: number,
): boolean {
  if (uid === 0) return true;
  if (file.uid === uid) return ((file.mode >> 6) & bits) === bits;
  if (gid !== undefined && file.gid === gid) return ((file.mode >> 3) & bits) === bits;
  return (file.mode & bits) === bits;
}

/**
 * Why the user could not make files in `folder` (or, `write` false, enter it): the first folder on
 * its path it may not enter, or the folder itself it may not write; null when it can (or the folder
 * is not there: that error is PHP's to give). Supplementary groups are not looked at: a folder
 * shared through one is reported, which the message allows for.
 */
export async function tempDirProblem(
  folder: string,
  uid: number,
  gid: number | undefined,
  write = true,
): Promise<string | null> {
  try {
    const own = await stat(folder);
    if (!userMay(own, uid, gid, write ? WRITE_AND_ENTER : ENTER)) return `${folder} is ${describe(own)}`;
    for (let parent = dirname(folder); ; parent = dirname(parent)) {
      const info = await stat(parent);
      if (!userMay(info, uid, gid, ENTER)) return `${parent} is ${describe(info)}`;
      if (parent === dirname(parent)) return null;
    }
  } catch {
    return null;
  }
}

function describe(file: { uid: number; gid: number; mode: number }): string {
  return `${(file.mode & 0o7777).toString(8).padStart(4, '0')}, owned by uid ${file.uid} gid ${file.gid}`;
}
