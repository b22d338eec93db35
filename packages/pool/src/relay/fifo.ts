// The `pipes` relay's direction to the worker over a real pipe (a FIFO), as RoadRunner (Go's
// os.Pipe) gives its workers. Node's stdio 'pipe' is a socketpair, and PHP opens a socket stdin as
// a socket stream, on which default_socket_timeout (60 s) bounds every blocking read: RoadRunner's
// goridge StreamRelay, which does not lift it (warmpool's SDK does), threw "Unable to read frame
// header" after a minute idle and the worker was lost. On a FIFO, stdin is a plain stream to PHP.
//
// Only stdin: the worker's replies stay on the socketpair, whose buffer (about 200 KiB) a 1 MiB
// reply crosses in a few writes. A pipe holds 64 KiB, which cost 1 MiB bodies a third of their
// throughput; Node cannot enlarge a pipe (no fcntl), so perl (perl-base is part of every Debian)
// does it once per worker: F_SETPIPE_SZ to PIPE_BYTES (measured: 1 MiB request bodies as fast as
// over the socketpair; 256 KiB were still 15 % slower). Without perl the pipe keeps its 64 KiB:
// slower large bodies, nothing else. A worker blocks on stdout
// only while this server does not read, which spooled replies keep short.
//
// No pipe(2) in Node: the FIFO is made with mkfifo in a private folder, opened in an order that
// never blocks, and unlinked at once; the child gets a plain blocking reader, this process a
// non-blocking writer it writes as a stream.
import { execFile, spawn } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The pipe's capacity (F_SETPIPE_SZ): a 1 MiB body in one write. Linux's pipe-max-size, 1 MiB by
 * default, is what an unprivileged process may set; pages are taken only as data fills them.
 */
const PIPE_BYTES = 1024 * 1024;
/** Linux's fcntl command number (fcntl.h): perl's Fcntl module does not export it. */
const F_SETPIPE_SZ = 1031;

/** perl could not run: pipes keep their 64 KiB. */
let noPerl = false;

/** Grows the pipe `fd` belongs to, through perl (its stdin is that pipe); false when it could not. */
async function growPipe(fd: number): Promise<boolean> {
  if (noPerl) return false;
  return new Promise((resolve) => {
    const child = spawn('perl', ['-e', `fcntl(STDIN, ${F_SETPIPE_SZ}, ${PIPE_BYTES}) or exit 1`], {
      stdio: [fd, 'ignore', 'ignore'],
    });
    child.once('error', () => {
      noPerl = true;
      resolve(false);
    });
    child.once('exit', (code) => resolve(code === 0));
  });
}

/** One worker's pipe to its stdin: the child's end (for spawn's stdio) and, after spawn, this process's. */
export interface FifoToWorker {
  /** the child's stdin: the read end */
  readonly childIn: number;
  /** after spawn (or when it failed): closes the child's end here; the child has its own copy */
  releaseChildEnd(): void;
  /** this process's write end as a stream (call once, after spawn) */
  output(): Socket;
  /** closes everything (spawn failed) */
  close(): void;
}

/** mkfifo could not run (no coreutils): the caller falls back to Node's socketpair stdio. */
let unavailable = false;

export async function openFifoToWorker(): Promise<FifoToWorker | null> {
  if (unavailable || process.platform === 'win32') return null;
  const dir = await mkdtemp(join(tmpdir(), 'warmpool-fifo-'));
  const path = join(dir, 'stdin');
  try {
    try {
      await run('mkfifo', ['-m', '600', path]);
    } catch {
      unavailable = true;
      return null;
    }
    // a writer held for a moment lets the child's blocking reader open at once
    const holder = openSync(path, constants.O_RDWR);
    let childIn: number;
    let write: number;
    try {
      childIn = openSync(path, constants.O_RDONLY);
      try {
        write = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
      } catch (error) {
        closeSync(childIn);
        throw error;
      }
    } finally {
      closeSync(holder);
    }
    // the capacity belongs to the pipe: set through the reader's fd, it holds for both ends
    await growPipe(childIn);
    let childEndOpen = true;
    const fifo: FifoToWorker = {
      childIn,
      releaseChildEnd() {
        if (!childEndOpen) return;
        childEndOpen = false;
        closeSync(childIn);
      },
      output() {
        const output = new Socket({ fd: write, readable: false, writable: true });
        // a worker that dies makes writes fail with EPIPE; the exit handler reports it
        output.on('error', () => {});
        return output;
      },
      close() {
        fifo.releaseChildEnd();
        closeSync(write);
      },
    };
    return fifo;
  } finally {
    // the name is not needed once the ends are open
    await rm(dir, { recursive: true, force: true });
  }
}
