/** The logger shape the pool writes to: pino's, so a pino instance (or child) plugs in as is. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

const noop = () => {};

/** Default when none is given: warnings and errors to stderr, the rest dropped. */
export const STDERR_LOGGER: Logger = {
  debug: noop,
  info: noop,
  warn: (obj, msg) => process.stderr.write(`warmpool warn: ${msg ?? ''} ${JSON.stringify(obj)}\n`),
  error: (obj, msg) => process.stderr.write(`warmpool error: ${msg ?? ''} ${JSON.stringify(obj)}\n`),
};

export const SILENT_LOGGER: Logger = { debug: noop, info: noop, warn: noop, error: noop };
