// How long each script usually runs, shared by the connections of one backend (a pool of php-cgi
// workers, or the connections to one php-fpm). Pipelining reads it: a request is queued behind a
// running one at its very start, before that one's own time says anything, so a script known to
// run long (an export, wp-cron.php) must be told apart by its name, or the request queued behind
// it waits for all of it while another process may be free.

/** The weight of a script's newest run in its average. */
const WEIGHT = 0.2;
/** Beyond it the table is cleared: a client cannot grow it with made-up script names. */
const MAX_SCRIPTS = 1000;

export class ScriptDurations {
  readonly #averageMs = new Map<string, number>();

  /** A run of `script` (its SCRIPT_FILENAME) that ended after `ms`. */
  record(script: string, ms: number): void {
    const average = this.#averageMs.get(script);
    if (average === undefined && this.#averageMs.size >= MAX_SCRIPTS) this.#averageMs.clear();
    this.#averageMs.set(script, average === undefined ? ms : average + WEIGHT * (ms - average));
  }

  /** The moving average of the script's runs in ms; undefined before its first run ended. */
  typicalMs(script: string): number | undefined {
    return this.#averageMs.get(script);
  }
}
