#!/usr/bin/env node
// `warmpool`: argv → command → exit code. Every command is `run(args, out) → Promise<number>`; the
// exit codes are one table (exit-codes.ts), printed by `warmpool help`.
import { accessSync, constants, existsSync, realpathSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { optionErrorDetails, parseDuration } from '@warmpool/pool';
import {
  formatPosition,
  loadConfigSections,
  parseRpcListen,
  DEFAULT_ADMIN_SOCKET,
  type Position,
} from '@warmpool/config';
import type { AdminCommandArgs } from './admin/client.js';
import { MAX_TUNE_WINDOW_MS, MIN_TUNE_WINDOW_MS } from './admin/protocol.js';
import { UsageError } from './errors.js';
import { EXIT_CODES, EXIT_CONFIG, EXIT_FAILED, EXIT_OK } from './exit-codes.js';
import { createOutput, silenced, type CliOutput } from './output.js';
import type { CertArgs } from './commands/cert.js';

// Commands load on demand: `warmpool version` or `workers` should not pay for Fastify and the pool.
const version = () => import('./commands/version.js');

export { EXIT_CODES } from './exit-codes.js';

const HELP = `warmpool: a PHP application server (RoadRunner worker protocol, warm PHP workers behind Fastify)

usage: warmpool <command> [flags]

  serve [-c FILE] [-s]            run the server (FILE: ./warmpool.yaml, else ./.rr.yaml); -s: no progress lines (log lines follow logs.level)
  config check [-c FILE] [--json] validate FILE and print the effective config (defaults filled in)
  workers [--site NAME] [-i] [--json]   the running server's workers (-i: refresh every second)
  reset [--site NAME] [--json] [-s]   rolling restart of the running server's workers (-s: silent)
  reload [--json]                 as SIGHUP: the server re-reads its TLS pairs and config, applies log levels (exit 2: file refused)
  tune [--site NAME] [--window 10s] [--json]   measure the workers under real traffic, suggest num_workers
  cache purge [--site NAME] [PREFIX] [--json]   drop micro-cache entries whose path starts with PREFIX (all without one)
  cert [--out DIR] [--host NAME]... [--days N] [--force]   self-signed cert.pem + key.pem for development
  cert status [--json]            the running server's certificates: names, issuer, expiry, next renewal
  version [--json]                versions: warmpool, node, RoadRunner protocol
  help                            this text

  workers, reset, reload, tune, cache purge and cert status talk to the server's admin socket: --socket PATH, else
  -o rpc.listen=ADDRESS (RoadRunner's RPC, as \`rr reset\` is run), else admin.socket of the config (-c FILE or the
  default file; one with \${WARMPOOL_SWAP_COLOUR} in it: the colour whose server answers), else its rpc.listen,
  else ${DEFAULT_ADMIN_SOCKET}.

  -o key=value (repeatable; RoadRunner's flag) sets a config key over the file for every command that reads it:
  -o http.pool.num_workers=4 -o http.middleware=static,gzip (a comma-separated value is a list where the key takes one).

exit codes:
${EXIT_CODES.map(([code, meaning]) => `  ${code}  ${meaning}`).join('\n')}
`;

/** Flags that take a value; everything else starting with "-" is a switch. */
const VALUE_FLAGS: Record<string, string> = {
  '-c': 'config',
  '--config': 'config',
  '--out': 'out',
  '--host': 'host',
  '--days': 'days',
  '--site': 'site',
  '--socket': 'socket',
  '--window': 'window',
  // RoadRunner's: override a config key (-o http.pool.num_workers=4), repeatable
  '-o': 'override',
  '--override': 'override',
};
const SWITCHES: Record<string, string> = {
  '--json': 'json',
  '-i': 'interactive',
  '--interactive': 'interactive',
  '--force': 'force',
  '-h': 'help',
  '--help': 'help',
  '-v': 'version',
  '--version': 'version',
  // RoadRunner's: print nothing but errors (serve: no progress lines; reset: no progress nor result)
  '-s': 'silent',
  '--silent': 'silent',
};

export interface ParsedArgs {
  words: string[];
  values: Map<string, string[]>;
  switches: Set<string>;
  /** run as `rr`: ./.rr.yaml is the default config before ./warmpool.yaml */
  roadRunner?: boolean;
}

export function parseArgs(argv: readonly string[]): ParsedArgs {
  const words: string[] = [];
  const values = new Map<string, string[]>();
  const switches = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      words.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      words.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const name = VALUE_FLAGS[flag];
    if (name !== undefined) {
      const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
      if (value === undefined || value === '')
        throw new UsageError(
          `${flag} needs a value, e.g. ${flag === '-c' || flag === '--config' ? '-c warmpool.yaml' : `${flag} VALUE`}`,
        );
      values.set(name, [...(values.get(name) ?? []), value]);
      continue;
    }
    const sw = SWITCHES[flag];
    if (sw === undefined || eq !== -1) throw new UsageError(`unknown flag ${arg}; see warmpool help`);
    switches.add(sw);
  }
  return { words, values, switches };
}

/** -c FILE as given; else ./warmpool.yaml, else ./.rr.yaml (run as rr: the other way round); null when none exists. */
export function findConfig(explicit: string | undefined, roadRunner = false): string | null {
  if (explicit !== undefined) return explicit;
  const candidates = roadRunner ? ['.rr.yaml', 'warmpool.yaml'] : ['warmpool.yaml', '.rr.yaml'];
  for (const candidate of candidates) if (existsSync(candidate)) return candidate;
  return null;
}

function requireConfig(args: ParsedArgs): string {
  const file = findConfig(last(args, 'config'), args.roadRunner);
  if (file === null)
    throw new UsageError(
      'no config file: ./warmpool.yaml and ./.rr.yaml do not exist; pass -c FILE (examples/hello/warmpool.yaml and apps/server/README.md have small ones to start from)',
    );
  return file;
}

function last(args: ParsedArgs, name: string): string | undefined {
  return args.values.get(name)?.at(-1);
}

/**
 * `warmpool workers -i | head`: once the reader is gone, stdout's EPIPE ends the command as the
 * reader wanted (as `yes | head` ends), not with a stack trace.
 */
function exitQuietlyOnClosedPipe(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(EXIT_OK);
    throw error;
  });
}

/** Every -o key=value, in order (a later one of the same key wins). */
function overrides(args: ParsedArgs): string[] {
  return args.values.get('override') ?? [];
}

/** -s: the CLI's progress lines are left out, its warnings and errors stay (log lines follow logs.level). */
function quiet(args: ParsedArgs, out: CliOutput): CliOutput {
  return args.switches.has('silent') ? silenced(out) : out;
}

/** Flags a command does not take are usage errors, so a typo never passes silently. */
function allow(args: ParsedArgs, command: string, values: string[], switches: string[]): void {
  for (const name of args.values.keys())
    if (!values.includes(name)) throw new UsageError(`${command} does not take --${name}; see warmpool help`);
  for (const name of args.switches)
    if (!switches.includes(name)) throw new UsageError(`${command} does not take --${name}; see warmpool help`);
}

/**
 * A command's words beyond its own (`serve new.yaml`, `workers extra`) are usage errors: they were
 * dropped before, and `config check new.yaml` checked ./warmpool.yaml instead. A word that looks like
 * a config file (ends in .yaml/.yml, or is a file here) is pointed at -c. `takes` is how many words
 * the command itself is (`config check`: 2).
 */
function noMoreWords(args: ParsedArgs, command: string, takes: number): void {
  const extra = args.words[takes];
  if (extra === undefined) return;
  throw new UsageError(
    `${command}: unexpected argument "${extra}"; ` +
      (looksLikeConfig(extra) ? `did you mean -c ${extra}?` : `${command} takes flags only (see warmpool help)`),
  );
}

function looksLikeConfig(word: string): boolean {
  return /\.ya?ml$/i.test(word) || existsSync(word);
}

/**
 * `rr workers http`, `rr reset http`: RoadRunner's commands take plugin names, which are not read
 * (every site; docs/RR-COMPAT.md), so run as `rr` they pass unless one looks like a config file.
 * As `warmpool` the commands take no words.
 */
function pluginNames(args: ParsedArgs, command: string): void {
  if (!args.roadRunner) {
    noMoreWords(args, command, 1);
    return;
  }
  const file = args.words.slice(1).find((word) => /\.ya?ml$/i.test(word));
  if (file !== undefined)
    throw new UsageError(
      `${command}: unexpected argument "${file}" (a plugin name was expected); did you mean -c ${file}?`,
    );
}

/**
 * Where the admin commands reach the running server: --socket PATH; else -o rpc.listen=… (how Laravel
 * Octane runs `rr reset`); else the config's admin.socket when it sets one, else its rpc.listen, else
 * the default admin socket. Only the admin and rpc sections are read (with the -o overrides), so the
 * file need not describe a whole server. A problem in them (or YAML the file cannot be read as) is a
 * usage error, as a bad -o value is.
 */
async function adminSocket(args: ParsedArgs, out: CliOutput): Promise<string> {
  const given = last(args, 'socket');
  if (given !== undefined) return given;
  const explicit = last(args, 'config');
  // a -c FILE that cannot be read says nothing of where its server is: the default socket would
  // reach whichever server holds it
  if (explicit !== undefined) {
    try {
      accessSync(explicit, constants.R_OK);
    } catch (error) {
      throw new UsageError(
        `cannot read config file ${explicit} (${(error as NodeJS.ErrnoException).code}): fix the path (the admin socket is read from it), or name the socket with --socket PATH`,
      );
    }
  }
  const file = findConfig(explicit, args.roadRunner);
  const { sections, errors, positions } = await loadConfigSections(file, ['admin', 'rpc'], {
    overrides: overrides(args),
  });
  const fromArgs = errors.filter((error) => error.line === 0);
  if (fromArgs.length > 0) throw new UsageError(fromArgs.map((error) => error.message).join('\n'));
  // guessing the default socket would ask another server (a second instance on the host)
  if (errors.length > 0) {
    throw new UsageError(
      `${errors.map((error) => error.message).join('\n')}\n` +
        'the admin socket cannot be read from this file: fix it, or name the socket with --socket PATH',
    );
  }
  const baseDir = file === null ? '.' : dirname(file);
  const rpc = sections.rpc?.listen === undefined ? null : parseRpcListen(sections.rpc.listen, baseDir).url;
  const rpcFromArgs = overrides(args).some((arg) => /^[\s"'`]*rpc\.listen=/.test(arg));
  if (rpc !== null && rpcFromArgs) return rpc;
  if (sections.admin?.socket !== undefined) {
    let socket = resolve(baseDir, sections.admin.socket);
    if (file !== null) {
      socket = await swapColourSocket(socket, file, args, out);
      await checkServerConfig(socket, file, positions.get('admin.socket') ?? null);
    }
    return socket;
  }
  if (rpc !== null) return rpc;
  if (file !== null) await checkServerConfig(DEFAULT_ADMIN_SOCKET, file, null);
  else if (!args.switches.has('json'))
    out.info(
      `no ${args.roadRunner === true ? '.rr.yaml or warmpool.yaml' : 'warmpool.yaml or .rr.yaml'} here; asking the server on ${DEFAULT_ADMIN_SOCKET} (-c FILE or --socket PATH for another)`,
    );
  return DEFAULT_ADMIN_SOCKET;
}

/**
 * Under warmpool-swap each server gets WARMPOOL_SWAP_COLOUR, and the docs give each colour its own
 * admin.socket with it (`admin-${WARMPOOL_SWAP_COLOUR:-main}.sock`); run by hand, without it, the
 * command asked admin-main.sock, where nothing answers. When the socket depends on the colour and
 * nothing answers on this one, the colour whose server answers is asked; both answer only during a
 * swap, and then the command says which socket is which colour's.
 */
async function swapColourSocket(socket: string, file: string, args: ParsedArgs, out: CliOutput): Promise<string> {
  if (process.env.WARMPOOL_SWAP_COLOUR !== undefined) return socket;
  const colours: Array<{ colour: string; socket: string }> = [];
  for (const colour of ['blue', 'green']) {
    const { sections } = await loadConfigSections(file, ['admin'], {
      overrides: overrides(args),
      env: { ...process.env, WARMPOOL_SWAP_COLOUR: colour },
    });
    const path = sections.admin?.socket;
    if (path !== undefined) colours.push({ colour, socket: resolve(dirname(file), path) });
  }
  if (colours.every((c) => c.socket === socket) || (await answersPing(socket))) return socket;
  const answering: typeof colours = [];
  for (const candidate of colours) if (await answersPing(candidate.socket)) answering.push(candidate);
  if (answering.length === 0) return socket;
  if (answering.length > 1)
    throw new UsageError(
      `admin.socket in ${file} depends on WARMPOOL_SWAP_COLOUR, and both colours' servers answer (a warmpool-swap swap is under way): ` +
        `${answering.map((c) => `--socket ${c.socket} (${c.colour})`).join(' or ')}; \`warmpool-swap status\` names the active one`,
    );
  const [found] = answering as [(typeof colours)[number]];
  if (!args.switches.has('json'))
    out.info(`admin.socket depends on WARMPOOL_SWAP_COLOUR: asking the ${found.colour} server on ${found.socket}`);
  return found.socket;
}

async function answersPing(socket: string): Promise<boolean> {
  if (!existsSync(socket)) return false;
  const { adminRequest } = await import('./admin/client.js');
  try {
    await adminRequest(socket, { cmd: 'ping' }, undefined, { timeoutMs: 5_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * The server answering on `socket` must be FILE's: the command must not act on another one for it.
 * A config without admin.socket is reached on the default socket, which the first server started
 * took, so a second server from another file has none of its own (a `reset -c second.yaml`
 * recycled the first server's workers); two files giving one admin.socket meet the same way
 * (`at`: where FILE sets it).
 */
async function checkServerConfig(socket: string, file: string, at: Position | null): Promise<void> {
  const { adminRequest } = await import('./admin/client.js');
  let ping: { pid: number; config?: string };
  try {
    ping = await adminRequest(socket, { cmd: 'ping' }, undefined, { timeoutMs: 5_000 });
  } catch {
    return; // nothing answers: the command itself says so
  }
  if (ping.config === undefined || sameFile(ping.config, file)) return;
  const started = `the server on ${socket} (pid ${ping.pid}) was started from ${ping.config}, not ${resolve(file)}: `;
  if (at === null)
    throw new UsageError(
      `${started}${file} sets no admin.socket and that server took the default one, so ${file}'s server has none; ` +
        `set admin.socket in ${file} and restart its server (or pass --socket PATH)`,
    );
  throw new UsageError(
    `${started}both files give this admin.socket (${formatPosition(at)}), and that server holds it; ` +
      `give ${file} its own admin.socket and restart its server, or pass --socket ${socket} to ask that server anyway`,
  );
}

function sameFile(a: string, b: string): boolean {
  const real = (path: string) => {
    try {
      return realpathSync(path);
    } catch {
      return resolve(path);
    }
  };
  return real(a) === real(b);
}

async function adminArgs(args: ParsedArgs, out: CliOutput): Promise<AdminCommandArgs> {
  const result: AdminCommandArgs = { socket: await adminSocket(args, out) };
  const site = last(args, 'site');
  if (site !== undefined) result.site = site;
  if (args.switches.has('json')) result.json = true;
  if (args.switches.has('interactive')) result.interactive = true;
  const window = last(args, 'window');
  if (window !== undefined) {
    let ms: number;
    try {
      ms = parseDuration(window, '--window');
    } catch (error) {
      throw new UsageError(`--window ${window}: ${optionErrorDetails(error)?.reason ?? (error as Error).message}`);
    }
    if (ms < MIN_TUNE_WINDOW_MS || ms > MAX_TUNE_WINDOW_MS)
      throw new UsageError(
        `--window must be from ${MIN_TUNE_WINDOW_MS} ms to ${MAX_TUNE_WINDOW_MS / 60_000} min, got ${window}`,
      );
    result.windowMs = ms;
  }
  return result;
}

export interface MainOptions {
  /**
   * The name the program was run by (basename of argv[1], or of argv0 for the single binary). As
   * `rr` (a link or a copy named so) it answers `--version` as RoadRunner's binary does, for tools
   * that drive RoadRunner (Laravel Octane): docs/RR-COMPAT.md.
   */
  name?: string;
}

/** Whether a program name is RoadRunner's (`rr`, `rr.exe`). */
export function isRoadRunnerName(name: string | undefined): boolean {
  return name !== undefined && /^rr(\.exe)?$/i.test(name);
}

export async function main(
  argv: readonly string[],
  out: CliOutput = createOutput(),
  options: MainOptions = {},
): Promise<number> {
  let args: ParsedArgs;
  const asRoadRunner = isRoadRunnerName(options.name);
  try {
    args = parseArgs(argv);
    args.roadRunner = asRoadRunner;
    const [command = 'help', sub] = args.words;
    if (args.switches.has('version') && args.words.length === 0)
      return await (await version()).run({ roadRunner: asRoadRunner }, out);
    if (args.switches.has('help') || command === 'help') {
      out.raw(HELP);
      return EXIT_OK;
    }
    switch (command) {
      case 'serve':
        allow(args, 'serve', ['config', 'override'], ['silent']);
        noMoreWords(args, 'serve', 1);
        return await (await import('./commands/serve.js')).run(
          { config: requireConfig(args), overrides: overrides(args), roadRunner: asRoadRunner },
          quiet(args, out),
        );
      case 'config':
        if (sub !== 'check')
          throw new UsageError(
            `unknown command "config${sub === undefined ? '' : ` ${sub}`}"; did you mean "warmpool config check"?`,
          );
        allow(args, 'config check', ['config', 'override'], ['json']);
        noMoreWords(args, 'config check', 2);
        return await (await import('./commands/config-check.js')).run(
          { config: requireConfig(args), json: args.switches.has('json'), overrides: overrides(args) },
          out,
        );
      case 'version':
        allow(args, 'version', [], ['json']);
        noMoreWords(args, 'version', 1);
        return await (await version()).run({ json: args.switches.has('json') }, out);
      case 'cert': {
        if (sub === 'status') {
          allow(args, 'cert status', ['config', 'socket', 'override'], ['json']);
          noMoreWords(args, 'cert status', 2);
          return await (await import('./commands/cert.js')).runStatus(await adminArgs(args, out), out);
        }
        if (sub !== undefined)
          throw new UsageError(`unknown command "cert ${sub}"; did you mean "warmpool cert status"?`);
        allow(args, 'cert', ['out', 'host', 'days'], ['force']);
        const certArgs: CertArgs = { force: args.switches.has('force') };
        const outDir = last(args, 'out');
        if (outDir !== undefined) certArgs.out = outDir;
        const hosts = args.values.get('host');
        if (hosts !== undefined) certArgs.hosts = hosts.flatMap((h) => h.split(',')).filter(Boolean);
        const days = last(args, 'days');
        if (days !== undefined) certArgs.days = days;
        return await (await import('./commands/cert.js')).run(certArgs, out);
      }
      case 'workers':
        allow(args, 'workers', ['config', 'socket', 'site', 'override'], ['json', 'interactive']);
        pluginNames(args, 'workers');
        exitQuietlyOnClosedPipe();
        return await (await import('./commands/workers.js')).run(await adminArgs(args, out), out);
      case 'reset':
        allow(args, 'reset', ['config', 'socket', 'site', 'override'], ['json', 'silent']);
        pluginNames(args, 'reset');
        return await (await import('./commands/reset.js')).run(
          await adminArgs(args, quiet(args, out)),
          quiet(args, out),
        );
      case 'reload':
        allow(args, 'reload', ['config', 'socket', 'override'], ['json']);
        noMoreWords(args, 'reload', 1);
        return await (await import('./commands/reload.js')).run(await adminArgs(args, out), out);
      case 'tune':
        allow(args, 'tune', ['config', 'socket', 'site', 'window', 'override'], ['json']);
        noMoreWords(args, 'tune', 1);
        return await (await import('./commands/tune.js')).run(await adminArgs(args, out), out);
      case 'cache': {
        if (sub !== 'purge')
          throw new UsageError(
            `unknown command "cache${sub === undefined ? '' : ` ${sub}`}"; did you mean "warmpool cache purge [PREFIX]"?`,
          );
        allow(args, 'cache purge', ['config', 'socket', 'site', 'override'], ['json']);
        const [, , prefix, extra] = args.words;
        if (extra !== undefined) throw new UsageError(`cache purge takes one PREFIX, got "${prefix}" and "${extra}"`);
        if (prefix !== undefined && !prefix.startsWith('/'))
          throw new UsageError(
            `the PREFIX of cache purge is a path starting with "/", like /blog/; got "${prefix}"` +
              (looksLikeConfig(prefix) ? `: did you mean -c ${prefix}?` : ''),
          );
        return await (await import('./commands/cache.js')).run(
          { ...(await adminArgs(args, out)), ...(prefix === undefined ? {} : { prefix }) },
          out,
        );
      }
      default:
        throw new UsageError(
          `unknown command "${command}"; commands: serve, config check, workers, reset, reload, tune, cache purge, cert, version, help`,
        );
    }
  } catch (error) {
    if (error instanceof UsageError) {
      out.error(error.message);
      return EXIT_CONFIG;
    }
    out.error(`unexpected error: ${(error as Error)?.stack ?? String(error)}`);
    return EXIT_FAILED;
  }
}

// Run when executed (node dist/main.js, the bin, or a link to it named rr), not when imported by tests.
const invokedAs = process.argv[1];
if (invokedAs !== undefined && import.meta.url === pathToFileURL(realpathSync(invokedAs)).href) {
  const code = await main(process.argv.slice(2), undefined, { name: basename(invokedAs) });
  process.exit(code);
}
