// The CLI's exit codes, one table (platformatic's exitCodes). main.ts prints it in `warmpool help`;
// the admin commands' codes (admin/client.ts) are the same numbers.
import {
  EXIT_DENIED,
  EXIT_FAILED as ADMIN_FAILED,
  EXIT_OK as ADMIN_OK,
  EXIT_UNREACHABLE,
  EXIT_USAGE,
} from './admin/client.js';

export const EXIT_OK = ADMIN_OK; // 0
/** a command failed at run time (also: a forced stop by a second SIGINT/SIGTERM) */
export const EXIT_FAILED = ADMIN_FAILED; // 1
/** bad arguments, or a config (or TLS file) with problems: fix the lines printed */
export const EXIT_CONFIG = EXIT_USAGE; // 2
/** no warmpool answers on the admin socket */
export const EXIT_ADMIN_UNREACHABLE = EXIT_UNREACHABLE; // 3
/** the admin socket exists but this user may not use it */
export const EXIT_ADMIN_DENIED = EXIT_DENIED; // 4
/** a listener could not bind (address in use, privileged port), LISTEN_FDS is unusable, or another warmpool answers on admin.socket */
export const EXIT_LISTEN = 5;
/** PHP workers did not boot (command not found, the worker dies or never handshakes) */
export const EXIT_BOOT = 6;

export const EXIT_CODES: ReadonlyArray<[number, string]> = [
  [EXIT_OK, 'success; `serve` stopped cleanly after a drain'],
  [EXIT_FAILED, 'the command failed at run time, or a second SIGINT/SIGTERM forced the stop'],
  [EXIT_CONFIG, 'bad arguments, or the config / TLS files have problems (each printed with file:line:col)'],
  [EXIT_ADMIN_UNREACHABLE, 'no warmpool answers on the admin socket (workers, reset, tune)'],
  [EXIT_ADMIN_DENIED, "the admin socket is not this user's (run as the server's user)"],
  [
    EXIT_LISTEN,
    'a listener could not bind (address in use, port < 1024), LISTEN_FDS is unusable, or another warmpool answers on admin.socket',
  ],
  [EXIT_BOOT, "PHP workers failed to boot (the message carries the worker's output)"],
];
