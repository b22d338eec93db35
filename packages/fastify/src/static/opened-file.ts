// What an open file really is. A name checked and then opened by name can be swapped in between: a
// tenant who may write in its own root flips "r.txt" between a file and a symlink to /etc/shadow,
// and warmpool (root, unlike nginx's www-data workers) sent the link's target. Asking the kernel
// which file a descriptor holds (Linux: /proc/self/fd/N), after the open, leaves no such gap.
import { existsSync, fstatSync, readlinkSync, type ReadStream, type Stats } from 'node:fs';

const PROC_FD = process.platform === 'linux' && existsSync('/proc/self/fd');

/**
 * The real path of the file `fd` holds; undefined where the system cannot say (no /proc: the
 * checks made on the name stand alone), null when it held none or was deleted meanwhile.
 */
export function openedPath(fd: number): string | null | undefined {
  if (!PROC_FD) return undefined;
  let path: string;
  try {
    path = readlinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return null;
  }
  return path.startsWith('/') && !path.endsWith(' (deleted)') ? path : null;
}

/** The descriptor a file stream opened, or null when its open failed. */
export function whenOpened(stream: ReadStream): Promise<number | null> {
  const fd = (stream as unknown as { fd: number | null }).fd;
  if (typeof fd === 'number') return Promise.resolve(fd);
  return new Promise((resolve) => {
    const opened = (fd: number) => {
      stream.off('error', failed);
      resolve(fd);
    };
    const failed = () => {
      stream.off('open', opened);
      resolve(null);
    };
    stream.once('open', opened);
    stream.once('error', failed);
  });
}

/** Whether `fd` holds the file `stat` was taken of (the one a response's headers were made from). */
export function holdsFile(fd: number, stat: Stats): boolean {
  const opened = fstatSync(fd);
  return opened.ino === stat.ino && opened.dev === stat.dev;
}
