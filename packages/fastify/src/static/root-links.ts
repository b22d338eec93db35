// A static root reached through a symlink that its owner may switch. A tenant who owns the folder
// above its root can put a link to / in the root's place; nginx follows it too, but as www-data,
// where warmpool's static layer runs as root and served /etc/shadow and the other tenants' files.
// nginx's `disable_symlinks if_not_owner` is the rule taken, for the root's own path, with one
// more way out: a link that someone other than root owns must lead to a folder of that same owner,
// or into the folder the link is in (a deploy user's current → releases/B, the release chowned to
// www-data, stays inside /srv/app; Debian's root-owned links are root's). A link to /, or to
// another tenant's folder, leads out of the folder it is in, to a folder of another owner.
import { lstatSync, realpathSync, statSync, type Stats } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';

/** Null, or why `root` may not be served from: a link of one user's on its way to another's folder. */
export function rootLinkProblem(root: string): string | null {
  let path = '';
  for (const part of resolve(root).split('/')) {
    if (part === '') continue;
    path += `/${part}`;
    let link: Stats;
    try {
      link = lstatSync(path);
    } catch {
      return null; // not there: the root's own check says so
    }
    if (!link.isSymbolicLink() || link.uid === 0) continue;
    let real: string;
    let target: Stats;
    try {
      real = realpathSync(path);
      target = statSync(real);
    } catch {
      return null;
    }
    if (target.uid !== link.uid && !inside(real, realFolderOf(path)))
      return `${path} is a symlink of uid ${link.uid}'s to ${real}, a folder of uid ${target.uid}'s outside the folder the link is in: a root is only followed through a link to its owner's own folder or into the link's own folder (as a deploy's current → releases/N); point it there, or let root own the link`;
  }
  return null;
}

/** The real path of the folder holding `path` (itself possibly reached through links). */
function realFolderOf(path: string): string {
  try {
    return realpathSync(dirname(path));
  } catch {
    return dirname(path);
  }
}

function inside(real: string, folder: string): boolean {
  return real.startsWith(folder.endsWith(sep) ? folder : folder + sep);
}
