// The sinks of the log files (logs.output, http.access_log): what happens when one cannot be
// written or opened again. Neither may take the server down: nginx goes on serving with /var/log
// full, or with a log folder logrotate left to another owner.
import type { EventEmitter } from 'node:events';
import pino from 'pino';

/** A log file after SIGUSR1: its path, and why it could not be opened again (null: it was). */
export interface Reopened {
  path: string;
  error: Error | null;
}

/** The part of pino.destination (sonic-boom) a reopen uses. */
export type ReopenableSink = Pick<EventEmitter, 'listeners' | 'removeListener'> & { reopen?: () => void };

/** What a file that cannot be written keeps of its lines meanwhile; later ones are dropped. */
const MAX_WAITING_BYTES = 4 * 1024 * 1024;

/** The error a failed reopen threw, which sonic-boom also emits a tick later: said once, by serve. */
const reopenErrors = new WeakMap<object, unknown>();

/**
 * A log file written one line at a time (no line lost when the process exits). A write that fails
 * (ENOSPC, EIO) is said once on stderr, and the lines wait in memory, up to 4 MiB, until the file
 * takes them again; before, sonic-boom's error event had no listener and ended the process: a full
 * /var/log stopped every site, at boot or at the next request.
 */
export function logFile(path: string): ReturnType<typeof pino.destination> {
  const sink = pino.destination({ dest: path, mkdir: true, append: true, sync: true, maxLength: MAX_WAITING_BYTES });
  let failing = false;
  let dropped = 0;
  sink.on('error', (error: NodeJS.ErrnoException) => {
    if (reopenErrors.get(sink) === error || failing) return;
    failing = true;
    tellStderr(
      `warmpool: cannot write to ${path} (${error.code ?? error.message}): its lines wait in memory (4 MiB at most, then dropped) until it can; serving goes on\n`,
    );
  });
  sink.on('drop', () => {
    dropped++;
  });
  sink.on('write', () => {
    if (!failing) return;
    failing = false;
    tellStderr(`warmpool: writing to ${path} again${dropped > 0 ? ` (${dropped} lines dropped)` : ''}\n`);
    dropped = 0;
  });
  return sink;
}

/**
 * stdout or stderr as a log's destination. When it cannot be written (a full disk under
 * `>> file 2>&1` or systemd's `append:`, /dev/full, a pipe whose reader has gone) the lines are
 * dropped, there being nowhere to say so: before, the first failed line ended the process (at
 * boot with 2>/dev/full; else at the next log line, from a timer, without a word).
 */
export function standardStream(fd: 1 | 2): ReturnType<typeof pino.destination> {
  const sink = pino.destination({ dest: fd, sync: true });
  sink.on('error', () => {});
  return sink;
}

/** Says something on stderr, unless stderr itself cannot be written (the same full disk). */
function tellStderr(line: string): void {
  try {
    process.stderr.write(line);
  } catch {
    // nowhere left to say it
  }
}

/**
 * Opens the file at `path` again for `sink`. sonic-boom's synchronous reopen throws when the open
 * fails (the folder not the server user's, a file in its way): out of SIGUSR1's handler that ended
 * the process, every site down, where nginx logs the failure and keeps writing to the old file.
 * Here the sink keeps its old file, and the error is returned to be said.
 */
export function reopenLogFile(sink: ReopenableSink, path: string): Reopened {
  const before = new Set(sink.listeners('ready'));
  try {
    sink.reopen?.();
    return { path, error: null };
  } catch (error) {
    reopenErrors.set(sink, error);
    // its listener that closes the old file once the new one is open stays behind: the next
    // reopen would close that descriptor twice (another file's, if its number was taken again)
    for (const listener of sink.listeners('ready'))
      if (!before.has(listener)) sink.removeListener('ready', listener as (...args: unknown[]) => void);
    return { path, error: error as Error };
  }
}
