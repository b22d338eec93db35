// What the Node contenders share: their settings, a logger and the stop signal. bench/ is a
// workspace package, so the warmpool packages and Fastify are plain imports in each contender.

/** The contender's settings, passed by the harness as JSON in BENCH_CONFIG. */
export function readConfig() {
  const raw = process.env.BENCH_CONFIG;
  if (raw === undefined) throw new Error('BENCH_CONFIG is not set: contenders are started by bench/run.mjs');
  return JSON.parse(raw);
}

/** Pool warnings and errors to stderr (the contender's log file); nothing on the hot path. */
export const stderrLogger = {
  debug() {},
  info() {},
  warn: (obj, msg) => process.stderr.write(`warn: ${msg ?? ''} ${JSON.stringify(obj)}\n`),
  error: (obj, msg) => process.stderr.write(`error: ${msg ?? ''} ${JSON.stringify(obj)}\n`),
};

/**
 * Stop cleanly on SIGTERM/SIGINT, and also when the harness goes away (its stdin pipe closes),
 * so a contender never outlives the bench.
 */
export function stopOn(close) {
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), 5000);
    force.unref();
    try {
      await close();
    } finally {
      process.exit(0);
    }
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}
