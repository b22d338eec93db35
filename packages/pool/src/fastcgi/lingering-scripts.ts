// Scripts that keep their php-fpm child busy after END_REQUEST. php-fpm's fastcgi_finish_request()
// ends the response and lets the script go on (Symfony's Response::send() calls it, Laravel's
// afterResponse jobs and WordPress's wp-cron.php run after it). On a kept connection the child reads
// our next request only once the script is done, so that request waits while other children may
// be idle. nginx keeps no FastCGI connection by default and never meets this; we keep them, so we
// learn which scripts linger. The request that came next on the connection and waited far longer
// than its own script runs makes the script before it a suspect (a busy machine or a session lock
// can make a request wait too). A suspect's connection is half-closed at its next END_REQUEST
// instead of kept: the child closes it once the script is done, which times the linger. A long one
// makes the script known as lingering (its connections are half-closed from then on, each close
// timing it again); a short one clears the suspicion, at the cost of one reconnect.

/**
 * A linger at least this long is worth a new connection for the next request. Not less: under a
 * saturated CPU a php-fpm child may take tens of ms to read its next request after an ordinary
 * script (DokuWiki at 32 connections was taken for lingering at 50 ms, and every page reconnected:
 * 0.62x of nginx + php-fpm instead of 0.94x), while the jobs worth it (wp-cron.php, mail sent
 * after the response) run for seconds.
 */
export const LINGER_MS = 250;
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
  /** scripts whose next end is timed to tell (noteWait()) */
  readonly #suspects = new Set<string>();
  readonly #now: () => number;
  readonly #onNew: (script: string) => void;

  /** `onNew`: a script not known to linger was timed lingering (the pool logs it). */
  constructor(onNew: (script: string) => void = () => {}, now: () => number = () => performance.now()) {
    this.#onNew = onNew;
    this.#now = now;
  }

  /**
   * The request that ran next on a kept connection after `previous` waited `waitedMs` for its first
   * record, and its own script usually runs `typicalMs` (undefined: never timed, so no evidence).
   */
  noteWait(previous: string, waitedMs: number, typicalMs: number | undefined): void {
    if (typicalMs === undefined || waitedMs <= 2 * typicalMs + LINGER_MS || this.lingers(previous)) return;
    if (this.#suspects.size >= MAX_SCRIPTS) this.#suspects.clear();
    this.#suspects.add(previous);
  }

  /** `script`'s child closed the half-closed connection `ms` after its END_REQUEST. */
  noteLinger(script: string, ms: number): void {
    this.#suspects.delete(script);
    if (ms >= LINGER_MS) this.#mark(script);
  }

  /** Whether a connection is half-closed after `script`: known to keep its child busy, or a suspect. */
  lingers(script: string): boolean {
    if (this.#suspects.has(script) || this.#known(script)) return true;
    this.#until.delete(script); // forgotten, if it was known
    return false;
  }

  #mark(script: string): void {
    const known = this.#known(script);
    if (!known && this.#until.size >= MAX_SCRIPTS) this.#until.clear();
    this.#until.set(script, this.#now() + LINGER_MEMORY_MS);
    if (!known) this.#onNew(script);
  }

  #known(script: string): boolean {
    const until = this.#until.get(script);
    return until !== undefined && until > this.#now();
  }
}
