// Every failure of warmpool-swap is one class with a stable WP_SWAP_ code. Same shape as the pool's
// WarmpoolError (code, message, details, cause), defined here because apps/swap has no internal deps.

export interface ErrorDetails {
  [name: string]: unknown;
}

export class SwapError<C extends SwapErrorCode = SwapErrorCode> extends Error {
  readonly code: C;
  readonly details: ErrorDetails;
  constructor(code: C, message: string, options: { cause?: unknown; details?: ErrorDetails } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.details = options.details ?? {};
  }
}

/** Every WP_SWAP_ code, one per class below; the README's Errors table lists exactly these. */
export const SWAP_ERROR_CODES = [
  'WP_SWAP_USAGE',
  'WP_SWAP_LISTEN_FAILED',
  'WP_SWAP_CHECK_FAILED',
  'WP_SWAP_BOOT_FAILED',
  'WP_SWAP_NOT_READY',
  'WP_SWAP_BUSY',
  'WP_SWAP_NO_PREVIOUS',
  'WP_SWAP_UNREACHABLE',
  'WP_SWAP_CONTROL',
  'WP_SWAP_STATE_FILE',
  'WP_SWAP_STOPPED',
] as const;

export type SwapErrorCode = (typeof SWAP_ERROR_CODES)[number];

export class UsageError extends SwapError<'WP_SWAP_USAGE'> {
  constructor(message: string) {
    super('WP_SWAP_USAGE', message);
  }
}
export class ListenFailedError extends SwapError<'WP_SWAP_LISTEN_FAILED'> {
  constructor(name: string, address: string, reason: string) {
    super('WP_SWAP_LISTEN_FAILED', `cannot bind ${name} ${address}: ${reason}`, { details: { name, address } });
  }
}
/** `<bin> version` or `<bin> config check` failed. */
export class CheckFailedError extends SwapError<'WP_SWAP_CHECK_FAILED'> {
  constructor(message: string, output: string) {
    super('WP_SWAP_CHECK_FAILED', `${message}${output.trim() === '' ? '' : `:\n${output.trim()}`}`, {
      details: { output },
    });
  }
}
/** The new child exited while booting or during the hand-over. */
export class BootFailedError extends SwapError<'WP_SWAP_BOOT_FAILED'> {
  constructor(message: string, output: string) {
    super(
      'WP_SWAP_BOOT_FAILED',
      `${message}${output.trim() === '' ? '' : `:\n${output.trim().split('\n').slice(-15).join('\n')}`}`,
      { details: { output } },
    );
  }
}
/** /ready did not answer 200 in time; `output`: the child's last lines, which say what it waits for. */
export class NotReadyError extends SwapError<'WP_SWAP_NOT_READY'> {
  constructor(message: string, output = '') {
    super(
      'WP_SWAP_NOT_READY',
      `${message}${output.trim() === '' ? '' : `:\n${output.trim().split('\n').slice(-15).join('\n')}`}`,
      { details: { output } },
    );
  }
}
export class BusyError extends SwapError<'WP_SWAP_BUSY'> {
  constructor() {
    super('WP_SWAP_BUSY', 'a swap is already in progress');
  }
}
export class NoPreviousError extends SwapError<'WP_SWAP_NO_PREVIOUS'> {
  constructor() {
    super('WP_SWAP_NO_PREVIOUS', 'no previous binary to roll back to');
  }
}
export class UnreachableError extends SwapError<'WP_SWAP_UNREACHABLE'> {
  constructor(path: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException)?.code;
    super(
      'WP_SWAP_UNREACHABLE',
      code === 'EACCES' || code === 'EPERM'
        ? // the supervisor is there; this user may not talk to it (control.sock is 0600)
          `permission denied on ${path}: the supervisor's control socket is its user's alone; run this as that user (sudo -u warmpool) or root`
        : `no warmpool-swap supervisor answers on ${path} (${(cause as Error)?.message ?? String(cause)}); is \`warmpool-swap start\` running with this --state?`,
      { cause },
    );
  }
}
export class ControlError extends SwapError<'WP_SWAP_CONTROL'> {
  constructor(message: string) {
    super('WP_SWAP_CONTROL', message);
  }
}
/** `<state>/state.json` is missing, unreadable or not a state object. */
export class StateFileError extends SwapError<'WP_SWAP_STATE_FILE'> {
  constructor(file: string, reason: string, cause?: unknown) {
    super('WP_SWAP_STATE_FILE', `state file ${file} ${reason}`, { cause, details: { file } });
  }
}
/** The supervisor was stopped (SIGTERM/SIGINT) while the swap ran: its children drain and exit. */
export class StoppedError extends SwapError<'WP_SWAP_STOPPED'> {
  constructor(signal: string) {
    super(
      'WP_SWAP_STOPPED',
      `the supervisor was stopped (${signal}) during the swap: every server drains and exits, no release is restarted; start warmpool-swap again`,
    );
  }
}
