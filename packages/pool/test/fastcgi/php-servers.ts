// Real FastCGI servers for the tests: `php-cgi -b <socket>` and `php-fpm -F` with a config of its
// own, each in a temp dir, in a process group of its own so that stop() can prove nothing is left.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { fileURLToPath } from 'node:url';
import { findPhpFpm } from '../../../../test/helpers/php-fpm.js';
import type { FastCgiAddress } from '../../src/fastcgi/address.js';
import type { FastCgiPoolRequest, FastCgiResponse } from '../../src/fastcgi/client-pool.js';

/** test/fixtures/php/fastcgi, the document root of these tests. */
export const FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/php/fastcgi', import.meta.url));

/** A response body that must be a stream (a request without bufferBytes streams every body). */
export function streamed(body: unknown): Readable {
  if (!(body instanceof Readable))
    throw new Error(`expected a streamed body, got ${Object.prototype.toString.call(body)}`);
  return body;
}

/** A GET of a fixture, replayable and timed by its script name (what pipelining may queue). */
export function replayableGet(script: string, query = ''): FastCgiPoolRequest {
  return { params: scriptParams(script, { query }), replayable: true, script };
}

/** append.php's run of `tag`, logged to `log` (appendedRuns reads it back). */
export function appendRequest(log: string, tag: string): FastCgiPoolRequest {
  return replayableGet('append.php', `log=${log}&tag=${tag}`);
}

/** A streamed response's body as text. */
export function bodyText(response: FastCgiResponse): Promise<string> {
  return text(streamed(response.body));
}

export function fixturePath(name: string): string {
  return join(FIXTURES, name);
}

export interface PhpServer {
  readonly address: FastCgiAddress;
  readonly dir: string;
  readonly pid: number;
  /** What the server wrote to stdout/stderr so far (php-fpm's log goes there). */
  output(): string;
  /** Stops the whole process group and checks that no process of it is left. */
  stop(): Promise<void>;
}

/** The params php needs to run a fixture (what params.ts builds fully for real requests). */
export function scriptParams(
  script: string,
  options: {
    method?: string;
    query?: string;
    contentLength?: number;
    contentType?: string;
    extra?: Record<string, string>;
  } = {},
): Record<string, string> {
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: 'warmpool-test',
    REQUEST_METHOD: options.method ?? 'GET',
    SCRIPT_FILENAME: fixturePath(script),
    SCRIPT_NAME: `/${script}`,
    DOCUMENT_ROOT: FIXTURES,
    REQUEST_URI: `/${script}${options.query ? `?${options.query}` : ''}`,
    QUERY_STRING: options.query ?? '',
    CONTENT_LENGTH: options.contentLength === undefined ? '' : String(options.contentLength),
    CONTENT_TYPE: options.contentType ?? '',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    REMOTE_ADDR: '127.0.0.1',
    REMOTE_PORT: '50000',
    REDIRECT_STATUS: '200',
    ...options.extra,
  };
}

function startGroup(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; output: string[] } {
  const child = spawn(command, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (text: string) => output.push(text));
  child.stderr!.setEncoding('utf8').on('data', (text: string) => output.push(text));
  return { child, output };
}

/** The runs append.php logged to `log`, one "<pid> <tag>" line each. */
export function appendedRuns(log: string): string[] {
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter((line) => line !== '');
}

/** Pids whose process group is `pgid` (read from /proc, so it sees grandchildren too). */
export function processGroupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      // fields after the ")" that ends the command name: state ppid pgrp ...
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid && fields[0] !== 'Z') members.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return members;
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string, output: string[], ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; output:\n${output.join('')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function canConnect(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function stopper(child: ChildProcess, dir: string, signal: NodeJS.Signals): () => Promise<void> {
  let stopped: Promise<void> | null = null;
  return () => {
    stopped ??= (async () => {
      const pgid = child.pid!;
      const exited = child.exitCode !== null || child.signalCode !== null;
      if (!exited) {
        const exit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        try {
          process.kill(pgid, signal);
        } catch {
          // already gone
        }
        const graceful = await Promise.race([exit.then(() => true), new Promise((r) => setTimeout(r, 5000, false))]);
        if (!graceful) process.kill(-pgid, 'SIGKILL');
        await exit;
      }
      // children of the group (php-cgi's, php-fpm's) follow their parent; make sure none is left
      await waitFor(() => processGroupMembers(pgid).length === 0, `process group ${pgid} to end`, [], 10_000).catch(
        () => {
          try {
            process.kill(-pgid, 'SIGKILL');
          } catch {}
        },
      );
      const left = processGroupMembers(pgid);
      rmSync(dir, { recursive: true, force: true });
      if (left.length > 0) throw new Error(`processes of group ${pgid} still run: ${left.join(', ')}`);
    })();
    return stopped;
  };
}

/** `php-cgi -b <dir>/php-cgi.sock` with PHP_FCGI_CHILDREN children (0: one process serves all). */
export async function startPhpCgi(
  options: { children?: number; maxRequests?: number; ini?: Record<string, string> } = {},
): Promise<PhpServer> {
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-php-cgi-'));
  const socketPath = join(dir, 'php-cgi.sock');
  const ini = Object.entries({ post_max_size: '64M', ...options.ini }).flatMap(([k, v]) => ['-d', `${k}=${v}`]);
  const { child, output } = startGroup('php-cgi', [...ini, '-b', socketPath], {
    ...process.env,
    PHP_FCGI_CHILDREN: String(options.children ?? 2),
    PHP_FCGI_MAX_REQUESTS: String(options.maxRequests ?? 500),
  });
  const stop = stopper(child, dir, 'SIGTERM');
  try {
    // the file appears at bind(), a moment before listen(): connect to be sure
    await waitFor(
      async () => child.exitCode !== null || (existsSync(socketPath) && (await canConnect(socketPath))),
      'php-cgi to listen',
      output,
    );
    if (child.exitCode !== null) throw new Error(`php-cgi exited with ${child.exitCode}:\n${output.join('')}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    address: { kind: 'unix', path: socketPath },
    dir,
    pid: child.pid!,
    output: () => output.join(''),
    stop,
  };
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface PhpFpmOptions {
  /** listen on 127.0.0.1:<tcpPort> instead of a unix socket */
  tcpPort?: number;
  maxChildren?: number;
  maxRequests?: number;
  /** listen.backlog (php-fpm's default is 511) */
  backlog?: number;
  /** extra lines for the pool section */
  pool?: string[];
}

/** `php-fpm -F -y <dir>/php-fpm.conf`, pm static, listening on <dir>/php-fpm.sock, status at /fpm-status. */
export async function startPhpFpm(options: PhpFpmOptions = {}): Promise<PhpServer> {
  const binary = findPhpFpm();
  if (binary === null) throw new Error('php-fpm is not installed: apt-get install -y php-fpm (scripts/setup.sh does)');
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-php-fpm-'));
  const socketPath = join(dir, 'php-fpm.sock');
  const address: FastCgiAddress =
    options.tcpPort === undefined
      ? { kind: 'unix', path: socketPath }
      : { kind: 'tcp', host: '127.0.0.1', port: options.tcpPort };
  const config = [
    '[global]',
    `pid = ${join(dir, 'php-fpm.pid')}`,
    `error_log = ${join(dir, 'php-fpm.log')}`,
    'daemonize = no',
    'log_level = notice',
    '[test]',
    `listen = ${options.tcpPort === undefined ? socketPath : `127.0.0.1:${options.tcpPort}`}`,
    `listen.backlog = ${options.backlog ?? 511}`,
    'pm = static',
    `pm.max_children = ${options.maxChildren ?? 2}`,
    `pm.max_requests = ${options.maxRequests ?? 0}`,
    'pm.status_path = /fpm-status',
    'catch_workers_output = yes',
    'decorate_workers_output = no',
    'php_admin_value[post_max_size] = 64M',
    ...(options.pool ?? []),
    '',
  ].join('\n');
  const configPath = join(dir, 'php-fpm.conf');
  writeFileSync(configPath, config);
  // -R: the tests may run as root; -F: stay in the foreground as our child
  const { child, output } = startGroup(binary, ['-F', '-R', '-y', configPath, '-p', dir], process.env);
  // php-fpm logs to a file (a pipe from spawn is a socket, which it cannot open by path)
  const log = () => {
    try {
      return readFileSync(join(dir, 'php-fpm.log'), 'utf8') + output.join('');
    } catch {
      return output.join('');
    }
  };
  const stop = stopper(child, dir, 'SIGTERM');
  try {
    await waitFor(
      () => log().includes('ready to handle connections') || child.exitCode !== null,
      'php-fpm to be ready',
      output,
    );
    if (child.exitCode !== null) throw new Error(`php-fpm exited with ${child.exitCode}:\n${log()}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    address,
    dir,
    pid: child.pid!,
    output: log,
    stop,
  };
}
