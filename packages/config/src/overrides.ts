// Command-line overrides: `-o key=value`, RoadRunner's flag (roadrunner-server/config plugin.go:
// parseFlag, then viper.Set over the file). Each one is applied to the parsed YAML document before
// it is walked, so an overridden value gets the same checks, types, ${VAR} expansion and errors as
// a value in the file; its position is the argument itself (`-o http.pool.num_workers=abc`).
//
// Semantics, as RoadRunner's:
// - `key` is a dotted path ("http.pool.supervisor.exec_ttl"); missing sections are created;
// - the value is text: surrounding quotes (" ' `) are stripped; an empty value is an error;
// - a key that takes a list reads a comma-separated value as the list (viper's string-to-slice
//   hook): `server.command=/usr/bin/php,vendor/bin/roadrunner-worker`, `http.middleware=static,gzip`;
// - a later override of the same key wins; an override wins over the file.
import { isAlias, isMap, isScalar, isSeq, Pair, Scalar, YAMLMap, YAMLSeq, type Document } from 'yaml';
import { BadOverrideError, ConfigError, type Position } from './errors.js';
import { findKey, type KeySpec } from './keys.js';

export interface Override {
  /** the argument as given after -o */
  arg: string;
  key: string;
  value: string;
}

/** Where a value set by `-o ARG` sits: the argument itself (line 0: not a line of the file). */
export function overridePosition(arg: string, key?: string): Position {
  return { file: `-o ${arg}`, line: 0, col: 0, ...(key === undefined ? {} : { override: key }) };
}

/** Parses one `-o` argument as RoadRunner does; throws BadOverrideError naming it. */
export function parseOverride(arg: string): Override {
  const trimmed = arg.replace(/^[\s"'`]+/, '');
  const eq = trimmed.indexOf('=');
  const hint = 'write -o key=value, e.g. -o http.pool.num_workers=4';
  if (eq < 0) throw new BadOverrideError(arg, `not key=value; ${hint}`);
  const key = trimmed.slice(0, eq).trim();
  let value = trimmed.slice(eq + 1).trim();
  if (key === '') throw new BadOverrideError(arg, `the key is empty; ${hint}`);
  if (value === '') throw new BadOverrideError(arg, `the value is empty; ${hint}`);
  if (!/^[^.[\]\s]+(\.[^.[\]\s]+)*$/.test(key))
    throw new BadOverrideError(
      arg,
      `"${key}" is not a dotted key path like http.pool.num_workers (list items cannot be set with -o)`,
    );
  const quote = value[0]!;
  if (quote === '"' || quote === "'" || quote === '`') {
    // RoadRunner's parseValue: strings.Trim(value, quote), then \" → "
    let start = 0;
    let end = value.length;
    while (start < end && value[start] === quote) start++;
    while (end > start && value[end - 1] === quote) end--;
    value = value.slice(start, end).split(`\\${quote}`).join(quote);
  }
  // sites.0.root: an item of a list (a number after a list key; http.error_pages.404 is a map's key)
  const segments = key.split('.');
  const list = segments.findIndex(
    (segment, i) => i > 0 && /^\d+$/.test(segment) && findKey(segments.slice(0, i).join('.'))?.type === 'list',
  );
  if (list > 0)
    throw new BadOverrideError(
      arg,
      `${segments.slice(0, list).join('.')} is a list: its items cannot be set with -o (edit the file)`,
    );
  return { arg, key, value };
}

/** The key spec of a concrete dotted path ("server.env.FOO" → "server.env.*"), if any. */
function specOf(path: string): KeySpec | undefined {
  let pattern = '';
  let spec: KeySpec | undefined;
  for (const segment of path.split('.')) {
    const exact = pattern === '' ? segment : `${pattern}.${segment}`;
    if (findKey(exact) !== undefined) pattern = exact;
    else if (pattern !== '' && findKey(`${pattern}.*`) !== undefined) pattern = `${pattern}.*`;
    else return undefined;
    spec = findKey(pattern);
  }
  return spec;
}

const LIST_TYPES = new Set(['string[]', 'string|string[]', 'list']);

/**
 * Applies the overrides to `doc` in order. Returns the nodes they created, each with its position,
 * for the walker: values it converts like ${VAR} results ("4" is a number where one is wanted), and
 * keys whose errors name the -o argument instead of a line. Throws ConfigError listing every
 * malformed argument (before anything is applied), or one naming a list it cannot set items of.
 */
export function applyOverrides(doc: Document, args: readonly string[], file: string): WeakMap<object, Position> {
  const marks = new WeakMap<object, Position>();
  if (args.length === 0) return marks;
  const bad: BadOverrideError[] = [];
  const overrides = args.flatMap((arg) => {
    try {
      return [parseOverride(arg)];
    } catch (error) {
      if (!(error instanceof BadOverrideError)) throw error;
      bad.push(error);
      return [];
    }
  });
  if (bad.length > 0) throw new ConfigError(file, bad);
  let root = doc.contents as unknown;
  if (root === null || (isScalar(root) && root.value === null)) {
    root = new YAMLMap();
    doc.contents = root as YAMLMap;
  }
  // A file whose top level is not a mapping is reported as such by the walker; nothing to merge into.
  if (!isMap(root)) return marks;
  for (const override of overrides) {
    const at = overridePosition(override.arg, override.key);
    const segments = override.key.split('.');
    let map = root;
    try {
      for (const segment of segments.slice(0, -1)) map = sectionOf(doc, map, segment, at, marks);
    } catch (error) {
      if (error instanceof BadOverrideError) throw new ConfigError(file, [error]);
      throw error;
    }
    const name = segments.at(-1)!;
    map.items = map.items.filter((pair) => keyName(pair.key) !== name);
    const key = new Scalar(name);
    marks.set(key, at);
    map.items.push(new Pair(key, valueNode(override, marks, at)));
  }
  return marks;
}

function valueNode(override: Override, marks: WeakMap<object, Position>, at: Position): Scalar | YAMLSeq {
  const spec = specOf(override.key);
  if (spec !== undefined && LIST_TYPES.has(spec.type) && override.value.includes(',')) {
    const seq = new YAMLSeq();
    for (const item of override.value.split(',')) {
      const scalar = new Scalar(item.trim());
      marks.set(scalar, at);
      seq.items.push(scalar);
    }
    marks.set(seq, at);
    return seq;
  }
  const scalar = new Scalar(override.value);
  marks.set(scalar, at);
  return scalar;
}

function keyName(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

/**
 * The mapping under `name` in `map`, made the map's own (so setting a key in it changes neither an
 * anchor used elsewhere nor a mapping merged in with <<), or a new one.
 */
function sectionOf(doc: Document, map: YAMLMap, name: string, at: Position, marks: WeakMap<object, Position>): YAMLMap {
  const own = map.items.find((pair) => keyName(pair.key) === name);
  if (own !== undefined) {
    let value = own.value as unknown;
    if (isAlias(value)) value = value.resolve(doc);
    if (isSeq(value))
      throw new BadOverrideError(
        at.file.slice('-o '.length),
        `${name} is a list in the file; its items cannot be set with -o (edit the file)`,
      );
    if (isMap(value)) {
      const copy = value === own.value ? value : value.clone();
      own.value = copy;
      return copy as YAMLMap;
    }
    // `http:` with nothing, or a value that is not a mapping: the override replaces it, as in RoadRunner
    const fresh = new YAMLMap();
    own.value = fresh;
    return fresh;
  }
  const merged = mergedValue(doc, map, name, new Set());
  const section = isMap(merged) ? (merged.clone() as YAMLMap) : new YAMLMap();
  const key = new Scalar(name);
  marks.set(key, at);
  map.items.push(new Pair(key, section));
  return section;
}

/** The value `name` has in the mappings merged into `map` with `<<: *anchor`, if any. */
function mergedValue(doc: Document, map: YAMLMap, name: string, seen: Set<unknown>): unknown {
  if (seen.has(map)) return undefined;
  seen.add(map);
  for (const pair of map.items) {
    if (!(isScalar(pair.key) && (typeof pair.key.value === 'symbol' || pair.key.value === '<<'))) continue;
    const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
    for (const source of sources) {
      const target = isAlias(source) ? source.resolve(doc) : source;
      if (!isMap(target)) continue;
      const found = target.items.find((p) => keyName(p.key) === name);
      if (found !== undefined) return isAlias(found.value) ? found.value.resolve(doc) : found.value;
      const deeper = mergedValue(doc, target, name, seen);
      if (deeper !== undefined) return deeper;
    }
  }
  return undefined;
}
