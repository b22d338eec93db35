// Walks a parsed YAML document against the key table (keys.ts), expanding ${VAR} in string values
// and converting each value to its type. Nothing is thrown here: every problem is collected with
// its key and file:line:col, so the caller reports them all at once; unsupported RoadRunner keys
// become warnings. The checks that span several keys (required keys, one host per site, the
// middleware that switches a section on) run after the walk, on what it built.
import { parseDuration } from '@warmpool/pool';
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter, type Node, type YAMLMap } from 'yaml';
import { expandVariables, type Env } from './env-expansion.js';
import {
  ConfigSyntaxError,
  DuplicateHostError,
  InvalidValueError,
  MissingKeyError,
  UndefinedVariableError,
  UnknownKeyError,
  formatPosition,
  type LocatedConfigError,
  type Position,
} from './errors.js';
import { CONFIG_KEYS, childKeys, findKey, type KeySpec } from './keys.js';
import type { Middleware, WarmpoolConfig } from './warmpool-config.js';

/** An unsupported RoadRunner key (or a harmless oddity): loading goes on. */
export interface ConfigWarning {
  key: string;
  file: string;
  line: number;
  col: number;
  /** what is ignored and what to do instead, without the location */
  message: string;
}

export interface ValidationResult {
  /** null when there are errors */
  config: WarmpoolConfig | null;
  errors: LocatedConfigError[];
  warnings: ConfigWarning[];
  /** concrete key path ("sites[0].http.pool") → where its key (or list item) starts */
  positions: Map<string, Position>;
  /** the walked sections as typed (a partial walk's result; null when the document is empty) */
  root?: Record<string, unknown> | null;
}

/** the log channels warmpool has (apps/server/src/logging.ts) */
const LOG_CHANNELS: readonly string[] = ['http', 'server', 'warmpool'];
const SUPPORTED_MIDDLEWARE: readonly Middleware[] = ['static', 'headers', 'gzip'];
/** A value that failed its check: the parent leaves the key out (the error is already recorded). */
const INVALID: unique symbol = Symbol('invalid');
type Obj = Record<string, unknown>;

const ROOT: KeySpec = { path: '', type: 'section', description: 'the file', origin: 'rr' };

export function validateDocument(
  doc: Document,
  options: {
    file: string;
    env: Env;
    lineCounter: LineCounter;
    /** nodes set by `-o key=value` (overrides.ts), with the argument as their position */
    overrides?: WeakMap<object, Position>;
    /** some sections only: walk them, skip the checks that need a whole file (config stays null) */
    partial?: boolean;
  },
): ValidationResult {
  const walker = new Walker(doc, options.file, options.env, options.lineCounter, options.overrides);
  return walker.run(options.partial === true);
}

class Walker {
  readonly #doc: Document;
  readonly #file: string;
  readonly #env: Env;
  readonly #lines: LineCounter;
  readonly #errors: LocatedConfigError[] = [];
  /** http.static / http.headers sections dropped because the middleware does not list them ("sites[0].http.static") */
  readonly #gated = new Set<string>();
  readonly #warnings: ConfigWarning[] = [];
  readonly #positions = new Map<string, Position>();
  /** collections being walked, to stop an alias that points at its own ancestor */
  readonly #active = new Set<unknown>();
  readonly #overrides: WeakMap<object, Position>;

  constructor(doc: Document, file: string, env: Env, lines: LineCounter, overrides = new WeakMap<object, Position>()) {
    this.#doc = doc;
    this.#file = file;
    this.#env = env;
    this.#lines = lines;
    this.#overrides = overrides;
  }

  run(partial = false): ValidationResult {
    const top = this.#position(0);
    const contents = this.#doc.contents;
    let root: Obj = {};
    if (contents !== null && !(isScalar(contents) && contents.value === null)) {
      const walked = this.#walk(contents, ROOT, '', top);
      if (walked !== INVALID) root = walked as Obj;
    }
    if (partial)
      return { config: null, errors: this.#errors, warnings: this.#warnings, positions: this.#positions, root };
    const config = this.#finish(root, top);
    return {
      config: this.#errors.length === 0 ? config : null,
      errors: this.#errors,
      warnings: this.#warnings,
      positions: this.#positions,
    };
  }

  // ---- positions and reporting ----

  #position(offset: number): Position {
    const { line, col } = this.#lines.linePos(offset);
    return { file: this.#file, line: Math.max(line, 1), col: Math.max(col, 1) };
  }

  #nodePosition(node: unknown, fallback: Position): Position {
    const override = typeof node === 'object' && node !== null ? this.#overrides.get(node) : undefined;
    if (override !== undefined) return override;
    const range = (node as Node | null)?.range;
    return range ? this.#position(range[0]) : fallback;
  }

  /** The recorded position of a path, or of its nearest recorded ancestor. */
  #at(path: string, fallback: Position): Position {
    for (let p = path; p !== ''; p = parentPath(p)) {
      const found = this.#positions.get(p);
      if (found) return found;
    }
    return fallback;
  }

  #warn(key: string, at: Position, message: string): void {
    this.#warnings.push({ key, file: at.file, line: at.line, col: at.col, message });
  }

  #invalid(key: string, at: Position, reason: string): typeof INVALID {
    this.#errors.push(new InvalidValueError(key, at, reason));
    return INVALID;
  }

  // ---- the walk ----

  #walk(raw: unknown, spec: KeySpec, path: string, at: Position): unknown {
    const node = this.#resolve(raw, path, at);
    if (node === INVALID) return INVALID;
    switch (spec.type) {
      case 'section':
      case 'map':
        return this.#walkMapping(node, spec, path, at);
      case 'list':
        return this.#walkList(node, spec, path, at);
      case 'string[]':
        return this.#walkStrings(node, spec, path, at, false);
      case 'string|string[]':
        return this.#walkStrings(node, spec, path, at, true);
      default:
        return this.#walkScalar(node, spec, path, at);
    }
  }

  /** Follows an alias (*name) to its anchor's node. */
  #resolve(raw: unknown, path: string, at: Position): unknown {
    if (!isAlias(raw)) return raw;
    const target = raw.resolve(this.#doc);
    if (target === undefined) {
      this.#errors.push(
        new ConfigSyntaxError(
          at,
          `unknown alias *${raw.source}: define the anchor &${raw.source} before using it`,
          path,
        ),
      );
      return INVALID;
    }
    return target;
  }

  #walkMapping(node: unknown, spec: KeySpec, path: string, at: Position): unknown {
    if (isScalar(node) && node.value === null) {
      // An empty section (`http:` with nothing under it) reads as {}.
      if (spec.type === 'section' && spec.path !== '') this.#checkRequired(spec.path, path, {}, at);
      return {};
    }
    // RoadRunner's own sample writes server.env as a list of one-key mappings (- KEY: value); a free
    // map accepts that form too.
    const mappings =
      spec.type === 'map' && isSeq(node) ? node.items.map((item) => this.#resolve(item, path, at)) : [node];
    const bad = mappings.find((m) => !isMap(m));
    if (bad !== undefined) {
      if (bad === INVALID) return INVALID;
      const what = spec.type === 'map' ? 'mapping of names to values' : 'section (a mapping of keys)';
      return this.#invalid(
        path,
        mappings.length === 1 ? at : this.#nodePosition(bad, at),
        `must be a ${what}, got ${describeNode(bad)}`,
      );
    }
    if (mappings.some((m) => this.#active.has(m))) return this.#invalid(path, at, 'refers to itself through an alias');
    for (const m of mappings) this.#active.add(m);
    const out: Obj = {};
    const freeSpec = spec.type === 'map' ? findKey(`${spec.path}.*`) : undefined;
    for (const entry of mappings.flatMap((m) => this.#entries(m as YAMLMap, path, at))) {
      const childPath = path === '' ? entry.name : `${path}.${entry.name}`;
      const childAt = this.#nodePosition(entry.key, at);
      this.#positions.set(childPath, childAt);
      // Top-level x-* keys hold YAML anchors to reuse (docker-compose's extension fields).
      if (spec.path === '' && entry.name.startsWith('x-')) continue;
      const childSpec = freeSpec ?? findKey(spec.path === '' ? entry.name : `${spec.path}.${entry.name}`);
      if (childSpec === undefined) {
        this.#errors.push(unknownKey(entry.name, spec.path, path, childPath, childAt));
        continue;
      }
      if (childSpec.warned !== undefined) {
        this.#warn(childPath, childAt, `is not supported by warmpool and is ignored: ${childSpec.warned}`);
        continue;
      }
      const value = this.#walk(entry.value, childSpec, childPath, childAt);
      if (value !== INVALID) out[entry.name] = value;
    }
    for (const m of mappings) this.#active.delete(m);
    if (spec.type === 'section' && spec.path !== '') this.#checkRequired(spec.path, path, out, at);
    return out;
  }

  #checkRequired(pattern: string, path: string, out: Obj, at: Position): void {
    for (const name of childKeys(pattern)) {
      const child = findKey(`${pattern}.${name}`);
      if (child?.required !== true || name in out || this.#positions.has(`${path}.${name}`)) continue;
      const unless = child.requiredUnless;
      if (unless === undefined || !(unless in out || this.#positions.has(`${path}.${unless}`))) {
        this.#errors.push(
          new MissingKeyError(
            `${path}.${name}`,
            at,
            `is required${unless === undefined ? '' : ` (or set ${path}.${unless})`}: ${child.description}${child.hint ? ` (${child.hint})` : ''}`,
          ),
        );
      }
    }
  }

  /** The key/value entries of a mapping, with YAML merge keys (<<: *base) applied: own keys win. */
  #entries(
    map: YAMLMap,
    path: string,
    at: Position,
    merging = new Set<YAMLMap>(),
  ): { name: string; key: unknown; value: unknown }[] {
    merging.add(map);
    const own: { name: string; key: unknown; value: unknown }[] = [];
    const merged: { name: string; key: unknown; value: unknown }[] = [];
    for (const pair of map.items) {
      if (isMergeKey(pair.key)) {
        const sources = isSeq(pair.value) ? pair.value.items : [pair.value];
        for (const source of sources) {
          const target = this.#resolve(source, path, at);
          if (target === INVALID) continue;
          if (!isMap(target)) {
            this.#invalid(
              path,
              this.#nodePosition(pair.key, at),
              `the merge key << must refer to a mapping, got ${describeNode(target)}`,
            );
            continue;
          }
          if (merging.has(target)) {
            this.#invalid(path, this.#nodePosition(pair.key, at), 'the merge key << refers to the mapping it is in');
            continue;
          }
          for (const entry of this.#entries(target, path, at, merging)) {
            if (!merged.some((m) => m.name === entry.name)) merged.push(entry);
          }
        }
        continue;
      }
      const name = isScalar(pair.key) ? String(pair.key.value) : String(pair.key);
      own.push({ name, key: pair.key, value: pair.value });
    }
    return [...own, ...merged.filter((m) => !own.some((o) => o.name === m.name))];
  }

  #walkList(node: unknown, spec: KeySpec, path: string, at: Position): unknown {
    if (isScalar(node) && node.value === null) return [];
    if (!isSeq(node))
      return this.#invalid(path, at, `must be a list (- item per line, or [a, b]), got ${describeNode(node)}`);
    const itemSpec = findKey(`${spec.path}[]`)!;
    // Items stay at their index (an invalid one is undefined) so later checks can name sites[i].
    return node.items.map((item, i) => {
      const itemPath = `${path}[${i}]`;
      const itemAt = this.#nodePosition(item, at);
      this.#positions.set(itemPath, itemAt);
      const value = this.#walk(item, itemSpec, itemPath, itemAt);
      return value === INVALID ? undefined : value;
    });
  }

  #walkStrings(node: unknown, spec: KeySpec, path: string, at: Position, single: boolean): unknown {
    const expected = single ? 'a string or a list of strings' : 'a list of strings';
    if (isScalar(node) && typeof node.value === 'string') {
      const expanded = this.#expand(node.value, spec, path, at);
      const checked = expanded === INVALID ? INVALID : this.#checkPattern(expanded.text, spec, path, at);
      // One string where RR takes a list: read it as a list of one (as RR's weak decoding does).
      return checked === INVALID || single ? checked : [checked];
    }
    if (!isSeq(node)) return this.#invalid(path, at, `must be ${expected}, got ${describeNode(node)}`);
    if (single && node.items.length === 0)
      return this.#invalid(path, at, `must not be an empty list; write ${expected}`);
    let failed = false;
    const out = node.items.map((raw, i) => {
      const itemPath = `${path}[${i}]`;
      const itemAt = this.#nodePosition(raw, at);
      this.#positions.set(itemPath, itemAt);
      const item = this.#resolve(raw, itemPath, itemAt);
      if (item === INVALID) {
        failed = true;
        return undefined;
      }
      if (!isScalar(item) || typeof item.value !== 'string') {
        // A bare number in a list of strings (forbid: [.php, 1]) is written as text.
        if (isScalar(item) && (typeof item.value === 'number' || typeof item.value === 'boolean'))
          return String(item.value);
        this.#invalid(itemPath, itemAt, `must be a string (an item of ${expected}), got ${describeNode(item)}`);
        failed = true;
        return undefined;
      }
      const expanded = this.#expand(item.value, spec, itemPath, itemAt);
      const checked = expanded === INVALID ? INVALID : this.#checkPattern(expanded.text, spec, itemPath, itemAt);
      if (checked === INVALID) {
        failed = true;
        return undefined;
      }
      return checked;
    });
    return failed ? INVALID : out;
  }

  #checkPattern(text: string, spec: KeySpec, path: string, at: Position): string | typeof INVALID {
    if (spec.pattern && !spec.pattern.test(text)) {
      return this.#invalid(
        path,
        at,
        `must be ${spec.hint ?? `text matching ${spec.pattern}`}, got ${spec.secret === true ? `a value of ${text.length} characters (not shown: a secret)` : JSON.stringify(text)}`,
      );
    }
    const problem = spec.check?.(text) ?? null;
    if (problem !== null) return this.#invalid(path, at, problem);
    return text;
  }

  /** Expands ${VAR} in one string; records the error and returns INVALID when it cannot. */
  #expand(
    text: string,
    spec: KeySpec,
    path: string,
    at: Position,
  ): { text: string; fromEnv: boolean } | typeof INVALID {
    const result = expandVariables(text, this.#env);
    if (!result.ok) {
      if (result.kind === 'undefined') this.#errors.push(new UndefinedVariableError(path, at, result.variable));
      else this.#errors.push(new InvalidValueError(path, at, result.message));
      return INVALID;
    }
    // server.env values are expanded again by the pool at spawn ($VAR and ${VAR}), as RoadRunner does;
    // try_files' $uri and $args are its own.
    const bare = result.bare.filter((name) => spec.ownVariables?.includes(name) !== true);
    if (bare.length > 0 && !spec.path.endsWith('server.env.*')) {
      const name = bare[0]!;
      this.#warn(
        path,
        at,
        `contains $${name}, which warmpool does not expand (RoadRunner does): write \${${name}}, or $$ for a literal $`,
      );
    }
    return { text: result.value, fromEnv: result.expanded };
  }

  #walkScalar(node: unknown, spec: KeySpec, path: string, at: Position): unknown {
    const expected = expectation(spec);
    if (!isScalar(node)) return this.#invalid(path, at, `must be ${expected}, got ${describeNode(node)}`);
    let value = node.value;
    let fromEnv = false;
    if (value === null) {
      // `KEY:` with nothing after it, in server.env or a header map, is an empty string (as in RR).
      if (spec.type === 'scalar-string') return '';
      return this.#invalid(path, at, `has no value; write ${expected}, or remove the key`);
    }
    if (typeof value === 'string') {
      const expanded = this.#expand(value, spec, path, at);
      if (expanded === INVALID) return INVALID;
      value = expanded.text;
      // a -o value is text standing for a typed value, as a variable's is
      fromEnv = expanded.fromEnv || this.#overrides.has(node);
    }
    const got = `got ${describeValue(value)}${fromEnv && value !== node.value ? ` (from ${JSON.stringify(node.value)})` : ''}`;
    const fail = (why = `must be ${expected}`): typeof INVALID => this.#invalid(path, at, `${why}, ${got}`);
    // An expanded string stands for what the variable holds: "8" is a number where a number is wanted;
    // so does a quoted one (max_jobs: "100"), as RoadRunner's weak typing reads it
    const textual = fromEnv || typeof node.value === 'string';
    const numeric = (v: unknown): number | null =>
      typeof v === 'number'
        ? v
        : textual && typeof v === 'string' && /^-?\d+(\.\d+)?$/.test(v.trim())
          ? Number(v)
          : null;
    const inRange = (n: number): boolean =>
      (spec.min === undefined || n >= spec.min) && (spec.max === undefined || n <= spec.max);

    switch (spec.type) {
      case 'string':
        if (typeof value !== 'string') {
          // quoting helps only a value whose text is right (a port alone is no address: ":8080" is)
          const text = String(value);
          const quoting = spec.pattern === undefined || spec.pattern.test(text) ? ` (quote it: "${text}")` : '';
          return fail(`must be ${expected}${quoting}`);
        }
        return this.#checkPattern(value, spec, path, at);
      case 'scalar-string':
        return typeof value === 'string' ? value : String(value);
      case 'enum': {
        const text = String(value);
        return spec.values!.includes(text) ? text : fail();
      }
      case 'boolean':
        if (typeof value === 'boolean') return value;
        if (textual && typeof value === 'string' && /^(true|false)$/i.test(value.trim()))
          return value.trim().toLowerCase() === 'true';
        return fail();
      case 'integer': {
        const n = numeric(value);
        return n !== null && Number.isSafeInteger(n) && inRange(n) ? n : fail();
      }
      case 'number':
      case 'size-mb': {
        const n = numeric(value);
        return n !== null && Number.isFinite(n) && inRange(n) ? n : fail();
      }
      case 'integer|auto': {
        if (typeof value === 'string' && value.trim() === 'auto') return 'auto';
        const n = numeric(value);
        return n !== null && Number.isSafeInteger(n) && inRange(n) ? n : fail();
      }
      case 'duration':
        return this.#duration(value, fail);
      case 'bytes': {
        const n = numeric(value) ?? parseBytes(value);
        return n !== null && Number.isSafeInteger(n) && inRange(n) ? n : fail();
      }
      default:
        return fail();
    }
  }

  /** Durations keep their RR text ("1m30s"); a bare number of seconds becomes "<n>s" for the pool. */
  #duration(value: unknown, fail: (why?: string) => typeof INVALID): unknown {
    if (typeof value === 'number') {
      return Number.isFinite(value) && value >= 0 ? `${value}s` : fail();
    }
    if (typeof value !== 'string') return fail();
    const text = value.trim();
    try {
      parseDuration(text, 'duration');
    } catch {
      return fail();
    }
    return /^\d+$/.test(text) ? `${text}s` : text;
  }

  // ---- checks across keys, after the walk ----

  #finish(root: Obj, top: Position): WarmpoolConfig {
    // RoadRunner 2023+ runs a "2.7" file with a notice: its http, server, rpc, logs and metrics
    // sections are v3's; jobs, which changed, is not read here anyway
    if (root.version === '2.7')
      this.#warn(
        'version',
        this.#positions.get('version') ?? top,
        'version "2.7" is read as "3" (the sections warmpool reads are the same): write version: "3"',
      );
    const server = (root.server ?? {}) as Obj;
    // RR's sample writes user: "" and group: "" for "not set".
    for (const s of [
      server,
      ...(Array.isArray(root.sites)
        ? (root.sites as (Obj | undefined)[]).map((site) => site?.server as Obj | undefined)
        : []),
    ]) {
      if (s === undefined) continue;
      if (s.user === '') delete s.user;
      if (s.group === '') delete s.group;
    }
    // RR's pool docs: an empty http.pool.command means "use server.command" (its sample has the line)
    for (const h of [
      root.http as Obj | undefined,
      ...(Array.isArray(root.sites)
        ? (root.sites as (Obj | undefined)[]).map((site) => site?.http as Obj | undefined)
        : []),
    ]) {
      const pool = h?.pool as Obj | undefined;
      if (pool !== undefined && (pool.command === '' || (Array.isArray(pool.command) && pool.command.length === 0)))
        delete pool.command;
    }
    const http = (root.http ?? {}) as Obj;
    if (root.http === undefined && !this.#positions.has('http')) {
      this.#errors.push(
        new MissingKeyError(
          'http.address',
          top,
          `is required: ${findKey('http.address')!.description} (${findKey('http.address')!.hint})`,
        ),
      );
    }
    const rawSites = Array.isArray(root.sites) ? (root.sites as (Obj | undefined)[]) : [];
    const sites = rawSites.map((site) => (site === undefined ? undefined : normaliseSite(site)));

    const topMiddleware = this.#middleware(http, 'http');
    this.#gateSections(http, 'http', topMiddleware);
    this.#warnDebug(http, 'http');
    sites.forEach((site, i) => {
      if (site === undefined) return;
      const own = this.#middleware(site.http, `sites[${i}].http`);
      this.#gateSections(site.http, `sites[${i}].http`, own ?? topMiddleware);
      this.#warnDebug(site.http, `sites[${i}].http`);
    });
    // a sites key that is not a list is reported as such: whether its sites name commands is unknown
    // (after the gating above: a static section the middleware does not list serves nothing)
    if (Array.isArray(root.sites) || !this.#positions.has('sites'))
      this.#checkCommand(server, http, sites, top, root.fastcgi !== undefined, root.proxy);
    this.#warnLogChannels(root.logs, top);
    this.#checkHosts(sites, top);
    this.#checkProxyPrefixes(root.proxy, 'proxy', top);
    sites.forEach((site, i) => {
      this.#checkProxyPrefixes(site?.proxy, `sites[${i}].proxy`, top);
    });

    // RR's num_workers: 0 means "CPU count", which is what the pool does when the key is absent.
    for (const pool of [http.pool, ...sites.map((site) => site?.http.pool)]) {
      if (pool !== undefined && (pool as Obj).num_workers === 0) delete (pool as Obj).num_workers;
    }

    const list = <T>(value: unknown): T[] | null => (Array.isArray(value) && value.length > 0 ? (value as T[]) : null);
    return {
      version: '3',
      server,
      http,
      status: root.status ?? null,
      metrics: root.metrics ?? null,
      logs: root.logs ?? null,
      sites: list(sites),
      proxy: list(root.proxy),
      cache: root.cache ?? null,
      fastcgi: root.fastcgi ?? null,
      admin: root.admin ?? null,
      rpc: root.rpc ?? null,
    } as unknown as WarmpoolConfig;
  }

  /**
   * server.command (or http.pool.command) must be set at the top level or in every site; a classic
   * site (its own fastcgi section; the top level's for the default site) needs none, nor does a
   * site of static files or proxy routes only (no sites[]: the top level is that site).
   */
  #checkCommand(
    server: Obj,
    http: Obj,
    sites: (SiteShape | undefined)[],
    top: Position,
    classic: boolean,
    rootProxy: unknown,
  ): void {
    const hasCommand = (s: Obj, h: Obj): boolean =>
      s.command !== undefined || (h.pool as Obj | undefined)?.command !== undefined;
    sites.forEach((site, i) => {
      if (site?.redirect !== undefined) this.#checkRedirect(site, i, top);
      if (site?.php !== false) return;
      for (const [own, key] of [
        [site.server.command, 'server.command'],
        [(site.http.pool as Obj | undefined)?.command, 'http.pool.command'],
        [site.fastcgi, 'fastcgi'],
      ] as const)
        if (own !== undefined)
          this.#invalid(
            `sites[${i}].${key}`,
            this.#at(`sites[${i}].${key}`, top),
            `runs PHP, and sites[${i}].php: false says this site has none: remove one of the two`,
          );
      if (!servesWithoutPhp(site, http, rootProxy))
        this.#invalid(
          `sites[${i}].php`,
          this.#at(`sites[${i}].php`, top),
          'false, and the site has no static files (http.middleware: [static] with http.static.dir) and no proxy routes: it would answer 404 to every request',
        );
    });
    if (hasCommand(server, http)) return;
    if (sites.length === 0 && servesWithoutPhp({ server: {}, http: {}, hosts: [] }, http, rootProxy)) return;
    if (classic && sites.every((site) => site === undefined || site.fastcgi !== undefined)) return;
    if (this.#positions.has('server.command') || this.#positions.has('http.pool.command')) return; // invalid, already reported
    const lacking = sites.flatMap((site, i) =>
      site !== undefined &&
      site.php !== false &&
      site.fastcgi === undefined &&
      !hasCommand(site.server, site.http) &&
      !servesWithoutPhp(site, http, rootProxy) &&
      !this.#positions.has(`sites[${i}].server.command`)
        ? [i]
        : [],
    );
    if (sites.length > 0 && lacking.length === 0) return;
    // a site meant to serve files only, written almost right: say what stops it
    const hints = (sites.length === 0 ? [null] : lacking).flatMap((i) => {
      const at = i === null ? 'http' : `sites[${i}].http`;
      if (this.#gated.has(`${at}.static`) || (i !== null && this.#gated.has('http.static')))
        return [`${at}.static is not used: ${at}.middleware does not list static`];
      const site = i === null ? { http } : sites[i]!;
      const middleware = (site.http.middleware ?? http.middleware ?? []) as unknown[];
      if (middleware.includes('static'))
        return [`${at}.middleware lists static, but there is no static section with a dir`];
      return [];
    });
    const why =
      (sites.length === 0
        ? ''
        : `, or in every site (${lacking.map((i) => `sites[${i}]`).join(', ')} ${lacking.length === 1 ? 'has' : 'have'} none)`) +
      (hints.length === 0 ? '' : `; for a site of static files only: ${hints.join('; ')}`);
    this.#errors.push(
      new MissingKeyError(
        'server.command',
        // the one site that lacks it, when there is one: its line, not the file's first
        this.#at(lacking.length === 1 && !this.#positions.has('server') ? `sites[${lacking[0]}]` : 'server', top),
        `is required: the command that starts one PHP worker, e.g. "php worker.php" (or a fastcgi section for classic PHP; a site of static files or proxy routes only needs none)${why}`,
      ),
    );
  }

  /** A redirecting site serves nothing else: its own command, fastcgi, static files, proxy or php: true are refused. */
  #checkRedirect(site: SiteShape, i: number, top: Position): void {
    for (const [own, key] of [
      [site.server.command, 'server.command'],
      [(site.http.pool as Obj | undefined)?.command, 'http.pool.command'],
      [site.fastcgi, 'fastcgi'],
      [site.http.static, 'http.static'],
      [site.proxy, 'proxy'],
      [site.php === true ? true : undefined, 'php'],
    ] as const)
      if (own !== undefined)
        this.#invalid(
          `sites[${i}].${key}`,
          this.#at(`sites[${i}].${key}`, top),
          `sites[${i}].redirect sends every request of this site elsewhere: it serves nothing else; remove one of the two`,
        );
  }

  /** Keeps the supported middleware names, warning about the others; undefined when not written. */
  #middleware(http: Obj, httpPath: string): Middleware[] | undefined {
    const list = http.middleware as (string | undefined)[] | undefined;
    if (list === undefined) return undefined;
    const kept: Middleware[] = [];
    list.forEach((name, i) => {
      if (name === undefined) return;
      if ((SUPPORTED_MIDDLEWARE as readonly string[]).includes(name)) {
        if (!kept.includes(name as Middleware)) kept.push(name as Middleware);
      } else {
        const path = `${httpPath}.middleware[${i}]`;
        this.#warn(
          path,
          this.#at(path, this.#at(httpPath, { file: this.#file, line: 1, col: 1 })),
          `middleware "${name}" is not supported by warmpool and is skipped (supported: ${SUPPORTED_MIDDLEWARE.join(', ')})`,
        );
      }
    });
    http.middleware = kept;
    return kept;
  }

  /** RoadRunner runs http.static / http.headers only when http.middleware lists them; so do we. */
  #gateSections(http: Obj, httpPath: string, middleware: Middleware[] | undefined): void {
    for (const name of ['static', 'headers'] as const) {
      if (http[name] === undefined || middleware?.includes(name)) continue;
      this.#gated.add(`${httpPath}.${name}`);
      const path = `${httpPath}.${name}`;
      this.#warn(
        path,
        this.#at(path, { file: this.#file, line: 1, col: 1 }),
        `is ignored because http.middleware does not list "${name}" (RoadRunner ignores it too); add "${name}" to http.middleware to use it`,
      );
      delete http[name];
    }
  }

  /**
   * http.pool.debug: true keeps RoadRunner's key with another meaning (RoadRunner: a new worker for
   * every request, so code edits show at once; here: worker error text in 500 responses). A
   * RoadRunner dev config would get warm workers serving old code, and its errors shown to clients.
   */
  #warnDebug(http: Obj, httpPath: string): void {
    const pool = http.pool as Obj | undefined;
    if (pool?.debug !== true) return;
    const path = `${httpPath}.pool.debug`;
    this.#warn(
      path,
      this.#at(path, { file: this.#file, line: 1, col: 1 }),
      "true shows worker error text (stack traces) in 500 responses, never for production; it does not start a new worker for every request as RoadRunner's debug does: after a code change run `warmpool reset` (or set http.pool.max_jobs: 1 while developing)",
    );
  }

  /**
   * warmpool's log has three channels and one destination: RoadRunner's per-plugin channels (jobs,
   * grpc, a typo) and per-channel outputs were ignored without a word by `config check`, so a
   * `channels: { pool: { level: debug } }` looked valid and logged nothing more.
   */
  #warnLogChannels(logs: unknown, top: Position): void {
    if (typeof logs !== 'object' || logs === null || Array.isArray(logs)) return;
    const section = logs as Obj;
    const ignoredOutput = 'ignored: every log channel writes to logs.output in the top-level format';
    if (section.err_output !== undefined)
      this.#warn('logs.err_output', this.#at('logs.err_output', top), ignoredOutput);
    const channels = section.channels;
    if (typeof channels !== 'object' || channels === null || Array.isArray(channels)) return;
    for (const [name, channel] of Object.entries(channels as Obj)) {
      const path = `logs.channels.${name}`;
      if (!LOG_CHANNELS.includes(name)) {
        const near = closest(name, LOG_CHANNELS);
        this.#warn(
          path,
          this.#at(path, top),
          `no such channel: ignored${near === null ? '' : `; did you mean "${near}"?`} (warmpool's channels: http, the requests and the access log; server, PHP workers' output and pool events; warmpool, the server itself)`,
        );
        continue;
      }
      if (typeof channel !== 'object' || channel === null) continue;
      for (const key of ['mode', 'encoding', 'output', 'err_output'])
        if ((channel as Obj)[key] !== undefined)
          this.#warn(`${path}.${key}`, this.#at(`${path}.${key}`, top), ignoredOutput);
    }
  }

  /** A host belongs to one site; hosts are compared lower-cased, without a trailing dot. */
  #checkHosts(sites: (SiteShape | undefined)[], top: Position): void {
    const seen = new Map<string, { key: string } & Position>();
    sites.forEach((site, i) => {
      site?.hosts.forEach((host, j) => {
        if (host === undefined) return;
        const key = `sites[${i}].hosts[${j}]`;
        const at = this.#at(key, top);
        const first = seen.get(host);
        if (first) this.#errors.push(new DuplicateHostError(key, at, host, first));
        else seen.set(host, { key, ...at });
      });
    });
  }

  #checkProxyPrefixes(proxy: unknown, path: string, top: Position): void {
    if (!Array.isArray(proxy)) return;
    const seen = new Map<string, string>();
    proxy.forEach((route: Obj | undefined, i) => {
      const prefix = route?.prefix;
      if (typeof prefix !== 'string') return;
      const key = `${path}[${i}].prefix`;
      // "/" is checked against its site's PHP and static files when the sites are built (to-options.ts)
      const first = seen.get(prefix);
      if (first === undefined) {
        seen.set(prefix, key);
        return;
      }
      const other = this.#at(first, top);
      this.#invalid(
        key,
        this.#at(key, top),
        `prefix "${prefix}" is already proxied by ${first} (${formatPosition(other)}); give each prefix one upstream`,
      );
    });
  }
}

interface SiteShape {
  hosts: (string | undefined)[];
  root?: string;
  server: Obj;
  http: Obj;
  cache?: Obj;
  proxy?: unknown[];
  fastcgi?: Obj;
  php?: unknown;
  redirect?: unknown;
}

/**
 * Whether a site serves anything with no PHP: static files (its middleware, own or the top level's,
 * lists static and a static section is there after gating) or proxy routes (its own, else the top's).
 */
function servesWithoutPhp(site: SiteShape, topHttp: Obj, rootProxy: unknown): boolean {
  if (site.redirect !== undefined) return true;
  const middleware = (site.http.middleware ?? topHttp.middleware ?? []) as unknown[];
  const staticSection = site.http.static ?? topHttp.static;
  if (middleware.includes('static') && staticSection !== undefined) return true;
  const proxy = site.proxy ?? rootProxy;
  return Array.isArray(proxy) && proxy.length > 0;
}

function normaliseSite(site: Obj): SiteShape {
  const hosts = Array.isArray(site.hosts) ? (site.hosts as (string | undefined)[]) : [];
  return {
    hosts: hosts.map((host) => host?.toLowerCase().replace(/\.$/, '')),
    ...(site.root === undefined ? {} : { root: site.root as string }),
    server: (site.server ?? {}) as Obj,
    http: (site.http ?? {}) as Obj,
    ...(site.cache === undefined ? {} : { cache: (site.cache ?? {}) as Obj }),
    ...(Array.isArray(site.proxy) ? { proxy: site.proxy as unknown[] } : site.proxy === null ? { proxy: [] } : {}),
    ...(site.fastcgi === undefined ? {} : { fastcgi: (site.fastcgi ?? {}) as Obj }),
    ...(site.php === undefined ? {} : { php: site.php }),
    ...(site.redirect === undefined ? {} : { redirect: site.redirect }),
  };
}

// ---- unknown keys and suggestions ----

/** Names people give a key that has another name here: the key they mean. */
const MEANT: Readonly<Record<string, string>> = {
  'cache.ttl': 'cache.max_age',
  'cache.valid': 'cache.max_age',
  'cache.expires': 'cache.max_age',
};

function unknownKey(name: string, parentSpec: string, parentPath: string, path: string, at: Position): UnknownKeyError {
  const join = (key: string): string => (parentPath === '' ? key : `${parentPath}.${key}`);
  const meant = MEANT[`${parentSpec.replace(/^sites\[\]\./, '')}.${name}`];
  if (meant !== undefined) return new UnknownKeyError(path, at, join(lastSegment(meant)));
  // a folder, which each section names its own way
  if (name === 'root' && (parentSpec === '' || parentSpec === 'http'))
    return new UnknownKeyError(
      path,
      at,
      null,
      "a site's folder is sites[].root, classic PHP's document root fastcgi.root, static files' http.static.dir",
    );
  // a section of http written at the top level ("static:") is that, not a typo of a sibling ("status")
  const topElsewhere = parentSpec === '' ? findKey(`http.${name}`) : undefined;
  if (topElsewhere !== undefined) return new UnknownKeyError(path, at, `http.${name}`, 'it belongs under http');
  // 1. A sibling one or two typos away: "num_worker" → "num_workers".
  const near = closest(name, childKeys(parentSpec));
  if (near !== null) return new UnknownKeyError(path, at, join(near));
  // 2. A listener key written inside a site.
  if (parentSpec.startsWith('sites[].')) {
    const topPattern = `${parentSpec.slice('sites[].'.length)}.${name}`;
    if (findKey(topPattern) !== undefined) {
      return new UnknownKeyError(path, at, topPattern, 'it is shared by all sites: set it at the top level');
    }
  }
  // 3. The same key name in another section: "max_worker_memory" under http.pool.
  const elsewhere = CONFIG_KEYS.find(
    (spec) =>
      spec.site !== true &&
      spec.warned === undefined &&
      lastSegment(spec.path) === name &&
      spec.path.split('.').length > 1,
  );
  if (elsewhere !== undefined)
    return new UnknownKeyError(
      path,
      at,
      elsewhere.path,
      `it belongs under ${elsewhere.path.slice(0, elsewhere.path.lastIndexOf('.'))}`,
    );
  if (parentSpec === '' && name === 'include')
    return new UnknownKeyError(
      path,
      at,
      null,
      "RoadRunner's include of other files is not read: warmpool takes one file; merge the included ones into it (later ones win), or give per-environment values with ${VAR:-default} or -o key=value",
    );
  if (parentSpec === '')
    return new UnknownKeyError(path, at, null, 'not a RoadRunner v3 section warmpool knows, nor a warmpool one');
  return new UnknownKeyError(path, at, null, `known keys here: ${childKeys(parentSpec).join(', ')}`);
}

function lastSegment(pattern: string): string {
  return pattern.slice(pattern.lastIndexOf('.') + 1);
}

/** The candidate nearest by edit distance, if it is close enough to be a typo. */
export function closest(name: string, candidates: readonly string[]): string | null {
  let best: string | null = null;
  let bestDistance = Infinity;
  const limit = Math.max(1, Math.min(3, Math.floor(name.length / 3)));
  for (const candidate of candidates) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : null;
}

/** Levenshtein distance, with a transposition counted as one edit (Damerau, restricted). */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

// ---- wording ----

function isMergeKey(key: unknown): boolean {
  return isScalar(key) && (typeof key.value === 'symbol' || (key.value === '<<' && key.type === 'PLAIN'));
}

/** "a.b[2].c" → "a.b[2]"; "a[2]" → "a"; "a" → "". */
function parentPath(path: string): string {
  const bracket = path.endsWith(']') ? path.lastIndexOf('[') : -1;
  const dot = path.lastIndexOf('.');
  const cut = Math.max(bracket, dot);
  return cut < 0 ? '' : path.slice(0, cut);
}

function expectation(spec: KeySpec): string {
  const range = (what: string): string => {
    if (spec.min !== undefined && spec.max !== undefined) return `${what} from ${spec.min} to ${spec.max}`;
    if (spec.min !== undefined) return `${what} >= ${spec.min}`;
    return what;
  };
  switch (spec.type) {
    case 'string':
    case 'scalar-string':
      return spec.hint ?? 'a string';
    case 'boolean':
      return 'true or false';
    case 'integer':
      return range('an integer');
    case 'number':
      return range('a number');
    case 'size-mb':
      return range('a number of megabytes');
    case 'integer|auto':
      return `${range('an integer')} or "auto"`;
    case 'duration':
      return 'a duration such as "500ms", "60s", "5m" or "1h30m"';
    case 'bytes':
      return `a size in bytes (an integer, or with k, m or g: "64m")${spec.min !== undefined ? ` >= ${spec.min}` : ''}`;
    case 'enum':
      return spec.hint ?? `one of ${spec.values!.map((v) => JSON.stringify(v)).join(', ')}`;
    default:
      return `a ${spec.type}`;
  }
}

function describeNode(node: unknown): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) return describeValue(node.value);
  return String(node);
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

const BYTE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

function parseBytes(value: unknown): number | null {
  if (typeof value !== 'string') return null;
  const m = /^(\d+)\s*(?:([kmg])(?:i?b)?|b)?$/i.exec(value.trim());
  if (m === null) return null;
  return Number(m[1]) * BYTE_UNITS[(m[2] ?? '').toLowerCase()]!;
}
