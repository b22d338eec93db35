// Scripts that keep their php-fpm child busy after END_REQUEST. php-fpm's fastcgi_finish_request()
// ends the response and lets the script go on (Symfony's Response::send() calls it, Laravel's
// afterResponse jobs and WordPress's wp-cron.php run after it). On a kept connection the child reads
// our next request only once the script is done, so that request waits while other children may
// be idle. nginx keeps no FastCGI connection by default and never meets this; we keep them, so we
// learn which scripts linger, from the request that came next on the connection and waited far
// longer than its own script runs. Such a script's connection is half-closed at its END_REQUEST
// instead of kept: the child closes it once the script is done (which times the linger, and keeps
// the script known as lingering) and then takes new connections from php-fpm's accept queue.

/** A linger at least this long is worth a new connection for the next request (a connect is ~0.1 ms). */
export const LINGER_MS = 20;
/**
 * A script is taken to linger this long after its last linger of LINGER_MS or more was seen. Long:
 * a script taken wrongly for one (a request that waited for a session lock) only loses keep-alive,
 * as behind nginx, while one forgotten too soon costs a visitor a wait (wp-cron.php runs rarely).
 */
export const LINGER_MEMORY_MS = 60 * 60_000;
/** Beyond it the table is cleared: a client cannot grow it with made-up script names. */
const MAX_SCRIPTS = 1000;

export class LingeringScripts {
  /** script → until when (performance.now()) it is taken to linger */
  readonly #until = new Map<string, number>();
  readonly #now: () => number;
  readonly #onNew: (script: string) => void;

  /** `onNew`: a script not known to linger was found lingering (the pool logs it once). */
  constructor(onNew: (script: string) => void = () => {}, now: () => number = () => performance.now()) {
    this.#onNew = onNew;
    this.#now = now;
  }

  /**
   * The request that ran next on a kept connection after `previous` waited `waitedMs` for its first
   * record, and its own script usually runs `typicalMs` (undefined: never timed, so no evidence).
   */
  noteWait(previous: string, waitedMs: number, typicalMs: number | undefined): void {
    if (typicalMs !== undefined && waitedMs > 2 * typicalMs + LINGER_MS) this.#mark(previous);
  }

  /** `script`'s child closed the half-closed connection `ms` after its END_REQUEST. */
  noteLinger(script: string, ms: number): void {
    if (ms >= LINGER_MS) this.#mark(script);
  }

  /** Whether `script` is taken to keep its child busy after END_REQUEST. */
  lingers(script: string): boolean {
    const until = this.#until.get(script);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#until.delete(script);
    return false;
  }

  #mark(script: string): void {
    const known = this.lingers(script);
    if (!known && this.#until.size >= MAX_SCRIPTS) this.#until.clear();
    this.#until.set(script, this.#now() + LINGER_MEMORY_MS);
    if (!known) this.#onNew(script);
  }
}
