// The upload_tmp_dir of a pool's php-cgi processes, when php.ini names none: one folder for the
// pool, as php-fpm's children share /tmp. Apps keep state there, not only uploads: Adminer's
// get_temp_dir() reads upload_tmp_dir first and keeps its failed-login counts and its permanent-login
// key in it. A folder per process (before) gave each process its own count (3 processes: 90
// password guesses where php-fpm allows 30) and lost it, and every permanent login, with each
// recycled process.
//
// A process killed mid-request (exec_ttl, max_worker_memory) never runs PHP's shutdown, which
// deletes the request's uploads (PHP names them php + 6 characters, and closes each once written,
// so no process's open files tell whose it is). A request's uploads are written after it began:
// an upload last written before every request running now began (less a margin for PHP starting a
// pipelined request before the server has seen the last one end) belongs to none of them, and is
// removed, after each process's exit and then every few seconds while such files wait.
import { chown, mkdtemp, readdir, realpath, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** The name PHP gives an upload's temp file (php_open_temporary_fd: "php" + mkstemp's 6 characters). */
const UPLOAD_FILE = /^php[A-Za-z0-9]{6}$/;
/** How much older than the oldest running request an upload must be to be nobody's. */
export const ORPHAN_MARGIN_MS = 5_000;
/** How often uploads not yet known to be orphans are looked at again. */
const RESWEEP_MS = 2_000;

/** What the sweep reads of a live process: whether it runs a request, and since when (Date.now()). */
export interface UploadsHolder {
  readonly state: string;
  readonly execStartedAt: number;
}

export class CgiUploads {
  /** the folder given to each process as upload_tmp_dir */
  readonly dir: string;
  /** the pool's live processes */
  readonly #holders = new Set<UploadsHolder>();
  /** one sweep at a time; one more asked for meanwhile runs after it */
  #sweeping: Promise<void> | null = null;
  #again = false;
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  private constructor(dir: string) {
    this.dir = dir;
  }

  /** Makes the folder in `base` (PHP's TMPDIR), owned by the user php-cgi runs as. */
  static async create(base: string, uid: number | undefined, gid: number | undefined): Promise<CgiUploads> {
    const made = await mkdtemp(join(base, 'warmpool-php-uploads-'));
    try {
      if (uid !== undefined) await chown(made, uid, gid ?? -1);
      return new CgiUploads(await realpath(made));
    } catch (error) {
      await rm(made, { recursive: true, force: true });
      throw error;
    }
  }

  /** A process of the pool started. */
  started(holder: UploadsHolder): void {
    this.#holders.add(holder);
  }

  /** A process of the pool exited: the uploads it left are removed. */
  exited(holder: UploadsHolder): Promise<void> {
    this.#holders.delete(holder);
    return this.sweep();
  }

  /** Removes the uploads no running request can own. */
  sweep(): Promise<void> {
    if (this.#sweeping !== null) {
      this.#again = true;
      return this.#sweeping;
    }
    this.#sweeping = (async () => {
      let waiting = false;
      do {
        this.#again = false;
        waiting = await this.#sweepOnce().catch(() => false);
      } while (this.#again);
      this.#sweeping = null;
      if (waiting && !this.#closed && this.#timer === null) {
        this.#timer = setTimeout(() => {
          this.#timer = null;
          void this.sweep();
        }, RESWEEP_MS).unref();
      }
    })();
    return this.#sweeping;
  }

  /** The pool closed: the folder goes. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    await this.#sweeping;
    await rm(this.dir, { recursive: true, force: true });
  }

  /** True when uploads are left that may still be a running request's. */
  async #sweepOnce(): Promise<boolean> {
    // the requests running now, read before the folder: an upload made after this look is theirs
    let oldest = Number.POSITIVE_INFINITY;
    for (const holder of this.#holders)
      if (holder.state === 'working') oldest = Math.min(oldest, holder.execStartedAt - ORPHAN_MARGIN_MS);
    const names = (await readdir(this.dir)).filter((name) => UPLOAD_FILE.test(name));
    let waiting = false;
    await Promise.all(
      names.map(async (name) => {
        const path = join(this.dir, name);
        const written = await stat(path).then(
          (found) => found.mtimeMs,
          () => null,
        );
        if (written === null) return;
        if (written < oldest) await rm(path, { force: true });
        else waiting = true;
      }),
    );
    return waiting;
  }
}
