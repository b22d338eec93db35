// Reading and parsing: YAML text → document with positions → validated, typed config. The parse
// keeps a LineCounter so every key maps back to file:line:col; ${VAR} expansion happens later, on
// string values only (validate.ts), so a variable can never change the file's structure.
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, LineCounter, parseDocument, type YAMLError } from 'yaml';
import type { Env } from './env-expansion.js';
import { ConfigError, ConfigFileError, ConfigSyntaxError, type LocatedConfigError, type Position } from './errors.js';
import { applyOverrides } from './overrides.js';
import { validateDocument, type ConfigWarning } from './validate.js';
import type { WarmpoolConfig } from './warmpool-config.js';

export interface ParseOptions {
  /** the name used in messages and positions; default "warmpool.yaml" */
  file?: string;
  /** where ${VAR} values come from; default process.env */
  env?: Env;
  /** `-o key=value` arguments, applied over the file in order (RoadRunner's overrides) */
  overrides?: readonly string[];
}

export interface LoadedConfig {
  config: WarmpoolConfig;
  /** unsupported RoadRunner keys and other things ignored, each with its place */
  warnings: readonly ConfigWarning[];
  file: string;
  /** the `-o key=value` arguments applied over the file */
  overrides: readonly string[];
  /**
   * Where a key path sits in the file: "http.pool.num_workers", "sites[1].http.pool" (or
   * "sites.1.http.pool"). Null when the file does not set it; with `nearest`, the closest ancestor
   * the file does set (for errors about a default value), and null only when there is none.
   */
  positionOf(keyPath: string, options?: { nearest?: boolean }): Position | null;
}

/** Reads and parses a config file; throws ConfigFileError, or ConfigError with every problem. */
export async function loadConfigFile(
  path: string,
  options: { env?: Env; overrides?: readonly string[] } = {},
): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigFileError(path, error);
  }
  return parseConfig(text, { file: path, ...options });
}

/** Parses config text; throws ConfigError listing every problem (syntax, keys, values, variables). */
export function parseConfig(text: string, options: ParseOptions = {}): LoadedConfig {
  const file = options.file ?? 'warmpool.yaml';
  const env = options.env ?? process.env;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: true });
  const at = (offset: number): Position => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line: Math.max(line, 1), col: Math.max(col, 1) };
  };
  if (doc.errors.length > 0) throw new ConfigError(file, syntaxErrors(doc.errors, text, file, lineCounter));
  const overrides = options.overrides ?? [];
  const marks = applyOverrides(doc, overrides, file);
  const result = validateDocument(doc, { file, env, lineCounter, overrides: marks });
  if (result.config === null) throw new ConfigError(file, result.errors);
  const warnings: ConfigWarning[] = [
    ...doc.warnings.map((warning) => ({ key: '', ...at(warning.pos[0]), message: warning.message })),
    ...result.warnings,
  ].sort((a, b) => a.line - b.line || a.col - b.col);
  const positions = result.positions;
  return {
    config: result.config,
    warnings,
    file,
    overrides: [...overrides],
    positionOf(keyPath, { nearest = false } = {}) {
      // a map key that is a number ("http.error_pages.502") is not a list index
      const exact = positions.get(keyPath);
      if (exact !== undefined) return { ...exact };
      let path = keyPath.replace(/\.(\d+)(?=\.|\[|$)/g, '[$1]');
      while (path !== '') {
        const found = positions.get(path);
        if (found !== undefined) return { ...found };
        if (!nearest) return null;
        const parent = path.replace(/(\.[^.[\]]*|\[\d+\])$/, '');
        path = parent === path ? '' : parent;
      }
      return null;
    },
  };
}

/** Some top-level sections of a config, checked alone (the rest of the file is not looked at). */
export interface LoadedSections {
  /** each requested section the file or an override sets, checked and typed */
  sections: Partial<Pick<WarmpoolConfig, 'admin' | 'rpc'>> & Record<string, unknown>;
  /** the file, or null when there is none */
  file: string | null;
  /** problems in those sections: -o ones have line 0 */
  errors: readonly LocatedConfigError[];
  /** where each key of those sections sits ("admin.socket"); a -o one has line 0 */
  positions: ReadonlyMap<string, Position>;
}

/**
 * Reads only `names` (e.g. admin, rpc) from a config file and the -o overrides: what the admin
 * commands need to find a running server, even in a file that does not describe a whole server
 * (Octane's empty .rr.yaml with `-o rpc.listen=…`). Never throws for a problem in the file.
 */
export async function loadConfigSections(
  path: string | null,
  names: readonly string[],
  options: { env?: Env; overrides?: readonly string[] } = {},
): Promise<LoadedSections> {
  let text = '';
  if (path !== null) {
    try {
      text = await readFile(path, 'utf8');
    } catch {
      text = '';
    }
  }
  const file = path ?? '-o';
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, merge: true, uniqueKeys: true });
  let marks: WeakMap<object, Position>;
  try {
    // only the requested sections' overrides: another -o's problem is not this reader's to report
    const wanted = (options.overrides ?? []).filter((arg) =>
      names.includes(arg.replace(/^[\s"'`]+/, '').split(/[.=]/)[0]!),
    );
    // a file that is not YAML says nothing of any section (and a guess would reach another server)
    if (doc.errors.length > 0)
      return {
        sections: {},
        file: path,
        errors: syntaxErrors(doc.errors, text, file, lineCounter),
        positions: new Map(),
      };
    marks = applyOverrides(doc, wanted, file);
  } catch (error) {
    if (error instanceof ConfigError) return { sections: {}, file: path, errors: error.errors, positions: new Map() };
    throw error;
  }
  if (isMap(doc.contents))
    doc.contents.items = doc.contents.items.filter(
      (pair) => isScalar(pair.key) && names.includes(String(pair.key.value)),
    );
  const result = validateDocument(doc, {
    file,
    env: options.env ?? process.env,
    lineCounter,
    overrides: marks,
    partial: true,
  });
  return {
    sections: (result.root ?? {}) as LoadedSections['sections'],
    file: path,
    errors: result.errors,
    positions: result.positions,
  };
}

function syntaxErrors(
  errors: readonly YAMLError[],
  text: string,
  file: string,
  lineCounter: LineCounter,
): ConfigSyntaxError[] {
  // a line indented too deep is reported twice by the parser at one place: say it once
  const kept = errors.filter(
    (error) =>
      error.code !== 'MULTILINE_IMPLICIT_KEY' ||
      !errors.some(
        (other) => other !== error && other.code === 'BLOCK_AS_IMPLICIT_KEY' && other.pos[0] === error.pos[0],
      ),
  );
  return kept.map((error) => {
    // a quote never closed is found at the end of the file: said where it opens
    const opened = unclosedQuoteAt(error, text);
    const { line, col } = lineCounter.linePos(opened ?? error.pos[0]);
    return new ConfigSyntaxError(
      { file, line: Math.max(line, 1), col: Math.max(col, 1) },
      opened === null
        ? describeYamlError(error, text)
        : `YAML syntax: the quote ${text[opened]} opened here is never closed (the rest of the file reads as this value); close it`,
    );
  });
}

/** The offset of the quote an unclosed quoted value begins with (the last unescaped one before the end); null for other errors. */
function unclosedQuoteAt(error: YAMLError, text: string): number | null {
  const quote = error.code === 'MISSING_CHAR' ? /Missing closing (["'])quote/.exec(error.message)?.[1] : undefined;
  if (quote === undefined) return null;
  for (let at = Math.min(error.pos[0], text.length) - 1; at >= 0; at--) {
    if (text[at] !== quote) continue;
    // inside "...": \" does not close; inside '...': '' is a quote
    if (quote === '"' && text[at - 1] === '\\') continue;
    if (quote === "'" && (text[at - 1] === "'" || text[at + 1] === "'")) continue;
    return at;
  }
  return null;
}

function describeYamlError(error: YAMLError, text: string): string {
  switch (error.code) {
    case 'DUPLICATE_KEY': {
      const key =
        /^\s*("[^"\n]*"|'[^'\n]*'|[^:\n]*?)\s*:/.exec(text.slice(error.pos[0]))?.[1]?.replace(/^["']|["']$/g, '') ?? '';
      return `duplicate key${key === '' ? '' : ` "${key}"`}: it is already set in the same section; keep one`;
    }
    case 'MULTIPLE_DOCS':
      return 'the file holds several YAML documents (---); warmpool reads one: remove the extra "---"';
    case 'TAB_AS_INDENT':
      return 'YAML syntax: tabs are not allowed as indentation; indent with spaces';
    case 'BLOCK_AS_IMPLICIT_KEY':
    case 'MULTILINE_IMPLICIT_KEY':
      // a key indented deeper than the keys beside it reads as the rest of the value before it
      return `YAML syntax: ${firstLine(error.message)}: a line below this value is indented deeper than the keys beside it, so it reads as part of this value; indent it as its neighbours (sections use 2 spaces a level)`;
    default:
      return `YAML syntax: ${error.message}`;
  }
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
}
