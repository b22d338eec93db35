import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { linkAsRr, runRr } from '../helpers/rr-link.js';
import { FIXTURES, runCli, startServer, stopAllServers } from '../helpers/warmpool-server.js';

// The RoadRunner-compatible command line through the built CLI: `-o key=value` overrides over an
// empty .rr.yaml (as Laravel Octane runs `rr`), with their errors naming the argument.
let dir: string;
let empty: string;
let rr: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-rr-cli-'));
  empty = join(dir, '.rr.yaml');
  await writeFile(empty, '');
  rr = await linkAsRr(dir);
});
afterAll(async () => {
  await stopAllServers();
  await rm(dir, { recursive: true, force: true });
});

describe('-o key=value', () => {
  it('config check: scalars, lists and nested keys over an empty file, typed as the keys want', async () => {
    const { code, stdout, stderr } = await runCli([
      'config',
      'check',
      '--json',
      '-c',
      empty,
      '-o',
      'version=3',
      '-o',
      'http.address=127.0.0.1:8000',
      '-o',
      'server.command=/usr/bin/php,/app/worker.php',
      '--override=http.pool.num_workers=3',
      '-o',
      'http.pool.supervisor.exec_ttl=30s',
      '-o',
      'http.middleware=static,gzip',
      '-o',
      `http.static.dir=${dir}`,
      '-o',
      'server.env.APP_ENV="local"',
    ]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const effective = JSON.parse(stdout) as {
      listeners: { http: { address: string } };
      sites: { server: { command: unknown; env: Record<string, string> }; http: Record<string, unknown> }[];
    };
    expect(effective.listeners.http.address).toBe('127.0.0.1:8000');
    const [site] = effective.sites;
    expect(site!.server.command).toEqual(['/usr/bin/php', '/app/worker.php']);
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
      '-o',
      'http.address=127.0.0.1:8000',
      '-o',
      'server.command=php w.php',
      '-o',
      'http.pool.num_workers=abc',
      '-o',
      'http.pool.max_job=3',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('-o http.pool.num_workers=abc: must be an integer from 0 to 500 or "auto", got "abc"');
    expect(bad.stderr).toContain('-o http.pool.max_job=3: unknown key; did you mean "http.pool.max_jobs"?');
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
    const server = startServer(
      [
        '-c',
        empty,
        '-o',
        `http.address=127.0.0.1:${port}`,
        '-o',
        `server.command=php,${join(FIXTURES, 'php', 'echo.php')}`,
        '-o',
        'http.pool.num_workers=2',
        '-o',
        `admin.socket=${socket}`,
        'serve',
      ],
      { cwd: dir },
    );
    await server.ready();
    const reply = await request(`http://127.0.0.1:${port}/hello`);
    expect(reply.statusCode).toBe(200);
    expect(((await reply.body.json()) as { context: { uri: string } }).context.uri).toContain('/hello');
    // the admin commands read the same overrides to find the socket
    const workers = await runCli(['workers', '--json', '-c', empty, '-o', `admin.socket=${socket}`]);
    expect(workers.code).toBe(0);
    expect((JSON.parse(workers.stdout) as { workers: unknown[] }[])[0]!.workers).toHaveLength(2);
    expect((await server.stop()).code).toBe(0);
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
