import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { linkAsRr, runRr, startRr } from '../helpers/rr-link.js';
import {
  FIXTURES,
  overrides,
  runCli,
  splitRootPhpWarnings,
  startServer,
  stopAllServers,
} from '../helpers/warmpool-server.js';

// The RoadRunner-compatible command line through the built CLI: `-o key=value` overrides over an
// empty .rr.yaml (as Laravel Octane runs `rr`), with their errors naming the argument.
let dir: string;
let empty: string;
let rr: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-rr-cli-'));
  empty = join(dir, '.rr.yaml');
  // the scripts the commands below name: config check looks for them beside the file
  for (const script of ['worker.php', 'w.php']) await writeFile(join(dir, script), '<?php\n');
  await writeFile(empty, '');
  rr = await linkAsRr(dir);
});
afterAll(async () => {
  await stopAllServers();
  await rm(dir, { recursive: true, force: true });
});

/** The -o pairs of a server on `port` running echo.php with `workers` workers and its admin socket. */
function echoServer(port: number, workers: number, socket: string): string[] {
  return [
    `http.address=127.0.0.1:${port}`,
    `server.command=php,-d,memory_limit=256M,${join(FIXTURES, 'php', 'echo.php')}`,
    `http.pool.num_workers=${workers}`,
    `admin.socket=${socket}`,
  ];
}

describe('-o key=value', () => {
  it('config check: scalars, lists and nested keys over an empty file, typed as the keys want', async () => {
    const { code, stdout, stderr } = await runCli([
      'config',
      'check',
      '--json',
      '-c',
      empty,
      ...overrides(
        'version=3',
        'http.address=127.0.0.1:8000',
        'server.command=/usr/bin/php,-dmemory_limit=256M,worker.php',
      ),
      '--override=http.pool.num_workers=3',
      ...overrides(
        'http.pool.supervisor.exec_ttl=30s',
        'http.middleware=static,gzip',
        `http.static.dir=${join(FIXTURES, 'server', 'public-basic')}`,
        'server.env.APP_ENV="local"',
      ),
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const effective = JSON.parse(stdout) as {
      listeners: { http: { address: string } };
      sites: { server: { command: unknown; env: Record<string, string> }; http: Record<string, unknown> }[];
    };
    expect(effective.listeners.http.address).toBe('127.0.0.1:8000');
    const [site] = effective.sites;
    expect(site!.server.command).toEqual(['/usr/bin/php', '-dmemory_limit=256M', 'worker.php']);
    expect(site!.server.env).toEqual({ APP_ENV: 'local' });
    expect(site!.http.middleware).toEqual(['static', 'gzip']);
    expect(JSON.stringify(site)).toContain('"num_workers":3');
    expect(JSON.stringify(site)).toContain('"exec_ttl":"30s"');
  });

  it('a bad value, an unknown key and a malformed argument each name their -o, exit 2', async () => {
    const bad = await runCli([
      'config',
      'check',
      '-c',
      empty,
      ...overrides(
        'http.address=127.0.0.1:8000',
        'server.command=php w.php',
        'http.pool.num_workers=abc',
        'http.pool.max_job=3',
      ),
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('-o http.pool.num_workers=abc: must be an integer from 0 to 500 or "auto", got "abc"');
    expect(bad.stderr).toContain('-o http.pool.max_job=3: unknown key; did you mean "http.pool.max_jobs"?');
    // the command to check again carries the overrides: the file alone would pass
    expect(bad.stderr).toContain(
      `(check again with: warmpool config check -c ${empty} -o http.address=127.0.0.1:8000 -o 'server.command=php w.php' -o http.pool.num_workers=abc -o http.pool.max_job=3)`,
    );
    const malformed = await runCli(['serve', '-c', empty, '-o', 'http.address']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('-o http.address: not key=value');
    const admin = await runCli(['workers', '-c', empty, '-o', 'admin.socket=']);
    expect(admin.code).toBe(2);
    expect(admin.stderr).toContain('-o admin.socket=: the value is empty');
  });

  it('serve: an empty .rr.yaml plus -o runs the server those arguments describe', async () => {
    const port = await freePort();
    const socket = join(dir, 'admin.sock');
    const server = startServer(['-c', empty, ...overrides(...echoServer(port, 2, socket)), 'serve'], { cwd: dir });
    await server.ready();
    const reply = await request(`http://127.0.0.1:${port}/hello`);
    expect(reply.statusCode).toBe(200);
    expect(((await reply.body.json()) as { context: { uri: string } }).context.uri).toContain('/hello');
    // the admin commands read the same overrides to find the socket
    const workers = await runCli(['workers', '--json', '-c', empty, '-o', `admin.socket=${socket}`]);
    expect(workers.code).toBe(0);
    expect((JSON.parse(workers.stdout) as { workers: unknown[] }[])[0]!.workers).toHaveLength(2);
    // the admin socket given as rpc.listen: told at once which flag it belongs to (it waited forever)
    const mixed = await runCli(['workers', '-c', empty, '-o', `rpc.listen=unix://${socket}`]);
    expect(mixed).toMatchObject({ code: 3 });
    expect(mixed.stderr).toBe(
      `✗ unix://${socket} is warmpool's admin socket, not its RPC listener: pass it as --socket ${socket}\n`,
    );
    expect((await server.stop()).code).toBe(0);
  });
});

describe('-s', () => {
  it('serve -s writes no progress line: only warnings and errors remain', async () => {
    const port = await freePort();
    const socket = join(dir, 'silent.sock');
    const server = startServer(
      [
        'serve',
        '-s',
        '-c',
        empty,
        ...overrides(...echoServer(port, 1, socket), 'logs.mode=off', 'http.pool.max_jobs=-1'),
      ],
      { cwd: dir },
    );
    // a bad value still speaks up, on stderr, and the server does not start
    expect((await server.exited).code).toBe(2);
    expect(server.stderr).toContain('-o http.pool.max_jobs=-1: must be an integer >= 0');
    expect(server.stdout).toBe('');
    const quiet = startServer(
      ['serve', '-s', '-c', empty, ...overrides(...echoServer(port, 1, socket), 'logs.mode=off')],
      { cwd: dir },
    );
    // ready when the admin socket answers (nothing is printed to say so)
    for (let attempt = 0; ; attempt++) {
      const ping = await runCli(['workers', '--json', '--socket', socket]);
      if (ping.code === 0) break;
      if (attempt > 200 || quiet.child.exitCode !== null) throw new Error(`never ready: ${quiet.stderr}`);
    }
    expect((await request(`http://127.0.0.1:${port}/`)).statusCode).toBe(200);
    expect((await quiet.stop()).code).toBe(0);
    expect(quiet.stdout).toBe('');
    expect(splitRootPhpWarnings(quiet.stderr).rest).toBe(''); // warnings stay: only that one here, as root
  });
});

describe('the rr name', () => {
  it("rr --version answers as RoadRunner's binary, with a version Octane accepts and ours beside it", async () => {
    const { code, stdout, stderr } = await runRr(rr, ['--version'], { cwd: dir });
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    const pkg = JSON.parse((await runCli(['version', '--json'])).stdout) as { warmpool: string; node: string };
    expect(stdout).toBe(`rr version 2025.1.15 (warmpool ${pkg.warmpool}, node ${pkg.node})\n`);
    // laravel/octane InstallsRoadRunnerDependencies: Str::startsWith($version, 'rr version'), then
    // explode(' ', $version)[2] compared with version_compare(..., '2023.3.0', '>=')
    const word = stdout.split(' ')[2]!;
    expect(word.split('.').map(Number)).toEqual([2025, 1, 15]);
    expect((await runRr(rr, ['-v'], { cwd: dir })).stdout).toBe(stdout);
  });

  it('the same binary under its own name keeps its own version lines', async () => {
    const { stdout } = await runCli(['--version']);
    expect(stdout).toMatch(/^warmpool \d+\.\d+\.\d+\nnode v/);
  });
});

describe("logs.encoding: json (RoadRunner's zap shape)", () => {
  it('every stdout line is JSON with msg, logger and level; worker output is logger "server"; each request an "http log" line', async () => {
    const port = await freePort();
    const server = startRr(
      rr,
      [
        '-c',
        empty,
        ...overrides(
          `http.address=127.0.0.1:${port}`,
          `server.command=php,${join(FIXTURES, 'php', 'octane-psr7-worker.php')}`,
          'http.pool.num_workers=1',
          `admin.socket=${join(dir, 'zap.sock')}`,
          'logs.mode=production',
          'logs.level=debug',
          'logs.output=stdout',
          'logs.encoding=json',
        ),
        'serve',
      ],
      { cwd: dir },
    );
    await server.ready();
    const ok = await request(`http://127.0.0.1:${port}/users?id=7`);
    expect(ok.statusCode).toBe(200);
    await ok.body.text();
    const failed = await request(`http://127.0.0.1:${port}/boom?throw=1`);
    expect(failed.statusCode).toBe(500);
    await failed.body.text();
    await server.waitFor('"URI":"/boom?throw=1"');
    expect((await server.stop()).code).toBe(0);

    const records = server.stdout
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const record of records) {
      expect(typeof record.msg, JSON.stringify(record)).toBe('string');
      expect(typeof record.logger, JSON.stringify(record)).toBe('string');
      expect(['debug', 'info', 'warn', 'error', 'fatal']).toContain(record.level);
      expect(typeof record.ts).toBe('number');
    }
    // the worker's stderr, as RoadRunner's server plugin logs it
    expect(records).toContainEqual(
      expect.objectContaining({
        logger: 'server',
        level: 'info',
        msg: expect.stringMatching(/^octane worker \d+ booted$/),
      }),
    );
    const throwable = records.find((r) => r.logger === 'server' && String(r.msg).startsWith('{'));
    expect(JSON.parse(String(throwable!.msg))).toMatchObject({ type: 'throwable', message: 'boom from the worker' });
    // the access line, as roadrunner-server/http middleware/log.go writes it
    const httpLogs = records.filter((r) => r.msg === 'http log');
    expect(httpLogs).toEqual([
      expect.objectContaining({ logger: 'http', level: 'info', status: 200, method: 'GET', URI: '/users?id=7' }),
      expect.objectContaining({ logger: 'http', level: 'info', status: 500, method: 'GET', URI: '/boom?throw=1' }),
    ]);
    for (const line of httpLogs) {
      expect(line.remote_address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(line.elapsed).toMatch(/^\d+(\.\d+)?(ns|µs|ms|s)$/);
    }
    // the CLI's own progress lines are log lines too
    expect(records).toContainEqual(
      expect.objectContaining({ logger: 'warmpool', msg: expect.stringContaining('warmpool ready') }),
    );
  });
});

/** RoadRunner's PHP RPC client (roadrunner-php/goridge, copied into the fixture): one JSON result per call. */
async function phpRpc(
  address: string,
  ...calls: [string, unknown][]
): Promise<({ result: unknown } | { error: string })[]> {
  const args = [
    join(FIXTURES, 'php', 'goridge-rpc-client.php'),
    address,
    ...calls.flatMap(([m, a]) => [m, JSON.stringify(a)]),
  ];
  const { stdout } = await promisify(execFile)('php', args, { timeout: 30_000 });
  return JSON.parse(stdout) as ({ result: unknown } | { error: string })[];
}

describe("rpc.listen: RoadRunner's goridge RPC", () => {
  it('rr reset -o rpc.listen=… -s resets every worker silently; workers and tune reach the server there too', async () => {
    const [port, rpcPort] = [await freePort(), await freePort()];
    const rpc = `tcp://127.0.0.1:${rpcPort}`;
    const server = startRr(
      rr,
      [
        '-c',
        empty,
        ...overrides(
          `http.address=127.0.0.1:${port}`,
          `server.command=php,${join(FIXTURES, 'php', 'octane-psr7-worker.php')}`,
          'http.pool.num_workers=2',
          `admin.socket=${join(dir, 'rpc-admin.sock')}`,
          `rpc.listen=${rpc}`,
        ),
        'serve',
      ],
      { cwd: dir },
    );
    await server.ready();
    expect(server.stdout).toContain(`rpc listening on ${rpc}`);
    const pids = async () =>
      (
        JSON.parse((await runRr(rr, ['workers', '--json', '-o', `rpc.listen=${rpc}`], { cwd: dir })).stdout) as {
          workers: { pid: number }[];
        }[]
      )[0]!.workers
        .map((w) => w.pid)
        .sort();
    const before = await pids();
    expect(before).toHaveLength(2);
    // laravel/octane ServerProcessInspector::reloadServer: [rr, 'reset', '-o', "rpc.listen=tcp://$host:$rpcPort", '-s']
    const reset = await runRr(rr, ['reset', '-o', `rpc.listen=${rpc}`, '-s'], { cwd: dir });
    expect(reset).toEqual({ code: 0, stdout: '', stderr: '' });
    const after = await pids();
    expect(after).toHaveLength(2);
    expect(after.filter((pid) => before.includes(pid))).toEqual([]);
    expect(server.stderr).toContain('rpc: warmpool.Command');
    const tune = await runCli(['tune', '--json', '--window', '200ms', '-o', `rpc.listen=${rpc}`], { cwd: dir });
    expect(tune.code).toBe(0);
    expect((JSON.parse(tune.stdout) as { currentWorkers: number }).currentWorkers).toBe(2);

    // RoadRunner's PHP RPC client: the resetter and informer calls for the HTTP workers
    const [list, plugins, workers, resetOk, unknown] = await phpRpc(
      rpc,
      ['resetter.List', true],
      ['informer.List', true],
      ['informer.Workers', 'http'],
      ['resetter.Reset', 'http'],
      ['resetter.Reset', 'jobs'],
    );
    expect(list).toEqual({ result: ['http'] });
    expect(plugins).toEqual({ result: ['http'] });
    const states = (workers as { result: { workers: { pid: number; statusStr: string }[] } }).result.workers;
    expect(states.map((w) => w.pid).sort()).toEqual(after);
    expect(states.every((w) => w.statusStr === 'ready')).toBe(true);
    expect(resetOk).toEqual({ result: true });
    expect(unknown).toEqual({ error: `Error 'no such plugin: jobs' on ${rpc}` });
    expect((await pids()).filter((pid) => after.includes(pid))).toEqual([]);
    expect((await server.stop()).code).toBe(0);

    // nothing listens any more: exit 3, said on stderr (Octane shows stderr as the failure)
    const gone = await runRr(rr, ['reset', '-o', `rpc.listen=${rpc}`, '-s'], { cwd: dir });
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain(`nothing answers on ${rpc}`);
  });

  it('a malformed -o rpc.listen is a usage error naming it; an exposed one is warned about with its -o', async () => {
    const bad = await runRr(rr, ['reset', '-o', 'rpc.listen=127.0.0.1:6001'], { cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      '-o rpc.listen=127.0.0.1:6001: must be "tcp://127.0.0.1:6001" or "unix:///run/app/rpc.sock"',
    );
    const exposed = await runCli([
      'config',
      'check',
      '-c',
      empty,
      ...overrides('http.address=127.0.0.1:8000', 'server.command=php w.php', 'rpc.listen=tcp://0.0.0.0:6001'),
    ]);
    expect(exposed.code).toBe(0);
    expect(exposed.stderr).toContain(
      '-o rpc.listen=tcp://0.0.0.0:6001 rpc.listen: tcp://0.0.0.0:6001 can be reached from other machines',
    );
  });
});
