// Every failure of the config loader is one class with a stable WP_CONFIG_ code. The README's
// Errors table lists the same codes; test/errors.test.ts keeps the two in sync.
import { WarmpoolError, type ErrorDetails } from '@warmpool/pool';

/**
 * Where a key or value sits in the file; line and col are 1-based. A value set on the command line
 * (`-o key=value`) has line 0 and col 0, `file` is the argument (`-o http.pool.num_workers=4`) and
 * `override` the key it sets.
 */
export interface Position {
  file: string;
  line: number;
  col: number;
  override?: string;
}

/** `file:line:col`, or `-o key=value` for a value from the command line. */
export function formatPosition(position: Position): string {
  return position.line === 0 ? position.file : `${position.file}:${position.line}:${position.col}`;
}

/**
 * One problem at one place in the file. Its message starts with `file:line:col key:` so a list of
 * them reads like compiler output; `key`, `file`, `line` and `col` are also fields and `details`.
 */
export abstract class LocatedConfigError<C extends string = string> extends WarmpoolError<C> {
  /** the dotted key path ("http.pool.num_workers", "sites[1].hosts[0]"); '' for the whole file */
  readonly key: string;
  readonly file: string;
  readonly line: number;
  readonly col: number;
  /** the message without the location prefix */
  readonly reason: string;
  constructor(code: C, key: string, position: Position, reason: string, extra: ErrorDetails = {}) {
    const where = formatPosition(position);
    // `-o http.pool.num_workers=abc: …` names its key already
    const named = key === '' || position.override === key;
    super(code, named ? `${where}${position.line === 0 ? ':' : ''} ${reason}` : `${where} ${key}: ${reason}`, {
      details: { ...extra, key, file: position.file, line: position.line, col: position.col },
    });
    this.key = key;
    this.file = position.file;
    this.line = position.line;
    this.col = position.col;
    this.reason = reason;
  }
}

/** The file is not valid YAML (bad indentation, unclosed quote, duplicate key, unknown alias, several documents). */
export class ConfigSyntaxError extends LocatedConfigError<'WP_CONFIG_SYNTAX'> {
  constructor(position: Position, reason: string, key = '') {
    super('WP_CONFIG_SYNTAX', key, position, reason);
  }
}

/** A key the key table does not know, with the closest known key when one is near. */
export class UnknownKeyError extends LocatedConfigError<'WP_CONFIG_UNKNOWN_KEY'> {
  /** the full path of the suggested key, or null */
  readonly suggestion: string | null;
  constructor(key: string, position: Position, suggestion: string | null, hint = '') {
    const tail = suggestion === null ? '' : `; did you mean "${suggestion}"?`;
    super('WP_CONFIG_UNKNOWN_KEY', key, position, `unknown key${hint === '' ? '' : ` (${hint})`}${tail}`, {
      suggestion,
    });
    this.suggestion = suggestion;
  }
}

/** A value of the wrong type or out of range; the reason says what to write instead. */
export class InvalidValueError extends LocatedConfigError<'WP_CONFIG_INVALID_VALUE'> {
  constructor(key: string, position: Position, reason: string) {
    super('WP_CONFIG_INVALID_VALUE', key, position, reason);
  }
}

/** A key that must be set is absent; the position is the section that lacks it. */
export class MissingKeyError extends LocatedConfigError<'WP_CONFIG_MISSING_KEY'> {
  constructor(key: string, position: Position, reason: string) {
    super('WP_CONFIG_MISSING_KEY', key, position, reason);
  }
}

/** `${NAME}` without a default names a variable that is not set. */
export class UndefinedVariableError extends LocatedConfigError<'WP_CONFIG_UNDEFINED_VARIABLE'> {
  readonly variable: string;
  constructor(key: string, position: Position, variable: string) {
    super(
      'WP_CONFIG_UNDEFINED_VARIABLE',
      key,
      position,
      `environment variable ${variable} is not set; set it, or give a default: \${${variable}:-value}`,
      { variable },
    );
    this.variable = variable;
  }
}

/** Two sites claim the same host; both places are named. */
export class DuplicateHostError extends LocatedConfigError<'WP_CONFIG_DUPLICATE_HOST'> {
  readonly host: string;
  readonly other: { key: string } & Position;
  constructor(key: string, position: Position, host: string, other: { key: string } & Position) {
    super(
      'WP_CONFIG_DUPLICATE_HOST',
      key,
      position,
      `host "${host}" is already served by ${other.key} (${formatPosition(other)}); a host belongs to one site only`,
      { host, otherKey: other.key, otherLine: other.line, otherCol: other.col },
    );
    this.host = host;
    this.other = other;
  }
}

/** A `-o` argument that is not `key=value` (RoadRunner's override syntax). */
export class BadOverrideError extends LocatedConfigError<'WP_CONFIG_BAD_OVERRIDE'> {
  readonly arg: string;
  constructor(arg: string, reason: string) {
    super('WP_CONFIG_BAD_OVERRIDE', '', { file: `-o ${arg}`, line: 0, col: 0 }, reason, { arg });
    this.arg = arg;
  }
}

/** Every problem found in one file, thrown once so an operator fixes them all in one go. */
export class ConfigError extends WarmpoolError<'WP_CONFIG_INVALID'> {
  readonly errors: readonly LocatedConfigError[];
  readonly file: string;
  constructor(file: string, errors: readonly LocatedConfigError[]) {
    const sorted = [...errors].sort((a, b) => a.line - b.line || a.col - b.col);
    const count = sorted.length === 1 ? '1 error' : `${sorted.length} errors`;
    super('WP_CONFIG_INVALID', `${file} has ${count}:\n${sorted.map((error) => `  ${error.message}`).join('\n')}`, {
      details: { file, count: sorted.length },
    });
    this.errors = sorted;
    this.file = file;
  }
}

/** The file cannot be read (missing, a directory, no permission). */
export class ConfigFileError extends WarmpoolError<'WP_CONFIG_FILE_UNREADABLE'> {
  constructor(file: string, cause: unknown) {
    const code = (cause as { code?: string } | null)?.code;
    const why =
      code === 'ENOENT'
        ? 'no such file; pass the right path with -c, or create it'
        : code === 'EACCES'
          ? 'permission denied; make it readable by the user warmpool runs as'
          : code === 'EISDIR'
            ? 'it is a directory; pass the YAML file inside it'
            : ((cause as Error | null)?.message ?? String(cause));
    super('WP_CONFIG_FILE_UNREADABLE', `cannot read config file ${file}: ${why}`, { cause, details: { file } });
  }
}

/** Every code this package can throw; the README table is checked against it. */
export const CONFIG_ERROR_CODES = [
  'WP_CONFIG_INVALID',
  'WP_CONFIG_SYNTAX',
  'WP_CONFIG_UNKNOWN_KEY',
  'WP_CONFIG_INVALID_VALUE',
  'WP_CONFIG_MISSING_KEY',
  'WP_CONFIG_UNDEFINED_VARIABLE',
  'WP_CONFIG_DUPLICATE_HOST',
  'WP_CONFIG_FILE_UNREADABLE',
  'WP_CONFIG_BAD_OVERRIDE',
] as const;

export type ConfigErrorCode = (typeof CONFIG_ERROR_CODES)[number];
