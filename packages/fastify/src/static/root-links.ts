// A static root reached through a symlink that its owner may switch. A tenant who owns the folder
// above its root can put a link to / in the root's place; nginx follows it too, but as www-data,
// where warmpool's static layer runs as root and served /etc/shadow and the other tenants' files.
// nginx's `disable_symlinks if_not_owner` is the rule taken, for the root's own path: a link that
// someone other than root owns must lead to a folder of that same owner (a deploy user's
// current → releases/B, Debian's root-owned links, all still work).
import { lstatSync, realpathSync, statSync, type Stats } from 'node:fs';
import { resolve } from 'node:path';

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
    if (target.uid !== link.uid)
      return `${path} is a symlink of uid ${link.uid}'s to ${real}, a folder of uid ${target.uid}'s: a root is only followed through a link to its owner's own folder (nginx's disable_symlinks if_not_owner); point it at a folder of that user, or let root own the link`;
  }
  return null;
}
