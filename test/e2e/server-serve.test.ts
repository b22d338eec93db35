import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForFile } from '../helpers/wait-for-file.js';
import { freePort } from '../helpers/free-port.js';
import { isAlive } from '../helpers/php.js';
import {
  FIXTURES,
  SERVER_MAIN,
  runCli,
  startServer,
  stopAllServers,
  type RunningServer,
} from '../helpers/warmpool-server.js';

// `warmpool serve` as users run it: the built binary, real sockets, real PHP.
let dir: string;
afterAll(async () => {
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-serve-'));
});

async function ports() {
  return {
    HTTP_PORT: String(await freePort()),
    STATUS_PORT: String(await freePort()),
    METRICS_PORT: String(await freePort()),
  };
}

describe('serve basic.yaml', () => {
  let server: RunningServer;
  let env: Record<string, string>;
  let base: string;

  beforeAll(async () => {
    env = { ...(await ports()), ADMIN_SOCKET: join(dir, 'basic.sock'), FIXTURES };
    base = `http://127.0.0.1:${env.HTTP_PORT}`;
    server = startServer(['serve', '-c', join(FIXTURES, 'server', 'basic.yaml')], { env });
    await server.ready();
  });

  it('prints each listening address, the workers ready (count and time) and where logs go', () => {
    expect(server.stdout).toContain(`listening on ${base} (HTTP/1.1)`);
    expect(server.stdout).toContain(`status listening on http://127.0.0.1:${env.STATUS_PORT} (/health, /ready)`);
    expect(server.stdout).toContain(`metrics listening on http://127.0.0.1:${env.METRICS_PORT} (/metrics)`);
    expect(server.stdout).toMatch(/✓ site default: 2 workers ready in \d+ ms/);
    expect(server.stdout).toContain('logs: stderr (JSON, level info), access log on');
    expect(server.stdout).toContain(`admin socket ${env.ADMIN_SOCKET}`);
  });

  it('serves the PHP page from a warm worker, with the configured headers and a request id', async () => {
    const res = await request(`${base}/page?x=1`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-served-by']).toBe('warmpool');
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const body = (await res.body.json()) as { env: { APP_NAME: string; RR_VERSION: string }; context: { uri: string } };
    expect(body.env.APP_NAME).toBe('basic');
    expect(body.context.uri).toBe(`${base}/page?x=1`);
    // the version the CLI reports is the one workers see
    const version = JSON.parse((await runCli(['version', '--json'])).stdout) as { rr: { rr_version: string } };
    expect(body.env.RR_VERSION).toBe(version.rr.rr_version);
  });

  it('serves static files before PHP', async () => {
    const res = await request(`${base}/hello.txt`);
    expect(res.statusCode).toBe(200);
    // no http.static.cache_control: no Cache-Control, as RoadRunner and nginx send none unless told
    expect(res.headers['cache-control']).toBeUndefined();
    expect(await res.body.text()).toBe('hello static\n');
  });

  it('writes one JSON access-log line per request to stderr', async () => {
    await request(`${base}/logged?y=2`).then((r) => r.body.dump());
    await server.waitFor('"url":"/logged?y=2"');
    const line = server.stderr.split('\n').find((l) => l.includes('"url":"/logged?y=2"'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({
      channel: 'http',
      site: 'default',
      method: 'GET',
      status: 200,
      protocol: 'HTTP/1.1',
      remoteAddr: '127.0.0.1',
    });
  });

  it('answers /health and /ready on the status listener only, and /metrics on the metrics listener', async () => {
    const ready = await request(`http://127.0.0.1:${env.STATUS_PORT}/ready`);
    expect(ready.statusCode).toBe(200);
    expect(await ready.body.json()).toMatchObject({ status: 'ready', sites: { default: { status: 'ready' } } });
    const health = await request(`http://127.0.0.1:${env.STATUS_PORT}/health`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
    const metrics = await request(`http://127.0.0.1:${env.METRICS_PORT}/metrics`);
    expect(metrics.statusCode).toBe(200);
    expect(metrics.headers['content-type']).toContain('text/plain; version=0.0.4');
    const text = await metrics.body.text();
    expect(text).toContain('warmpool_workers{site="default",state="ready"}');
    expect(text).toMatch(/warmpool_requests_total\{site="default",status="200"\} \d+/);
    // the main listener sends /ready to PHP like any other path (RoadRunner serves it on status.address only)
    const onMain = await request(`${base}/ready`);
    expect(((await onMain.body.json()) as { context: { uri: string } }).context.uri).toBe(`${base}/ready`);
  });

  it('wires the admin socket: warmpool workers and reset', async () => {
    const workers = await runCli(['workers', '-c', join(FIXTURES, 'server', 'basic.yaml')], { env });
    expect(workers.code).toBe(0);
    expect(workers.stdout).toMatch(/pid\s+state\s+jobs/);
    expect(workers.stdout.match(/\bready\b/g)?.length).toBeGreaterThanOrEqual(2);
    const reset = await runCli(['reset', '--socket', env.ADMIN_SOCKET!]);
    expect(reset.code).toBe(0);
    expect(reset.stdout).toContain('reset done: 2 workers replaced');
  });

  it('warmpool workers -i piped into a reader that leaves (| head): exit 0, no stack trace', async () => {
    const child = spawn(process.execPath, [SERVER_MAIN, 'workers', '-i', '--socket', env.ADMIN_SOCKET!], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk));
    // the reader takes the first lines and closes the pipe, as head does
    await once(child.stdout!, 'data');
    child.stdout!.destroy();
    const [code] = (await once(child, 'exit')) as [number | null];
    expect([code, stderr]).toEqual([0, '']);
  });

  it('SIGUSR2 rolls every worker, printing progress', async () => {
    const before = ((await (await request(`${base}/`)).body.json()) as { pid: number }).pid;
    server.child.kill('SIGUSR2');
    await server.waitFor(/reset done in .*: 2 workers replaced/);
    expect(server.stdout).toContain('site default: replaced 1/2 workers');
    expect(isAlive(before)).toBe(false);
  });

  it('drains on SIGTERM and exits 0', async () => {
    const { code } = await server.stop('SIGTERM');
    expect(code).toBe(0);
    expect(server.stdout).toContain('SIGTERM: draining');
    expect(server.stdout).toMatch(/✓ stopped in/);
  });
});

describe('a request that fails in PHP', () => {
  it("logs an error line carrying the request's id (the X-Request-Id of its reply)", async () => {
    const env = { HTTP_PORT: String(await freePort()) };
    const file = join(dir, 'crash.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        `server:\n  command: php ${join(FIXTURES, 'php', 'crash-mid-request.php')}`,
        'http:\n  address: 127.0.0.1:${HTTP_PORT}\n  pool:\n    num_workers: 1',
        'logs:\n  mode: production\n  level: info',
        `admin:\n  socket: ${join(dir, 'crash.sock')}`,
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', file], { env });
    await server.ready();
    const res = await request(`http://127.0.0.1:${env.HTTP_PORT}/`, { method: 'POST', body: 'crash' });
    await res.body.dump();
    expect(res.statusCode).toBe(502);
    const id = res.headers['x-request-id'];
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    await server.waitFor('PHP request failed');
    const line = server.stderr.split('\n').find((l) => l.includes('PHP request failed'));
    expect(JSON.parse(line!)).toMatchObject({ level: 50, channel: 'http', reqId: id, status: 502 });
    expect((await server.stop()).code).toBe(0);
  });
});

describe('serve a RoadRunner .rr.yaml', () => {
  it('warns about each unsupported key by name and serves the PHP page and static files', async () => {
    const env = { ...(await ports()), ADMIN_SOCKET: join(dir, 'rr.sock'), RPC_PORT: String(await freePort()) };
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'roadrunner.rr.yaml')], { env });
    await server.ready();
    // rpc.listen is RoadRunner's RPC listener, served (rr reset, Octane's reload)
    expect(server.stdout).toContain(`rpc listening on tcp://127.0.0.1:${env.RPC_PORT}`);
    for (const key of ['server.relay_timeout', 'http.fcgi', 'reload', 'jobs', 'kv']) {
      expect(server.stderr).toMatch(new RegExp(`roadrunner\\.rr\\.yaml:\\d+:\\d+ ${key.replace('.', '\\.')}: `));
    }
    const res = await request(`http://127.0.0.1:${env.HTTP_PORT}/`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-powered-by']).toBe('RoadRunner');
    expect(((await res.body.json()) as { env: { APP_NAME: string } }).env.APP_NAME).toBe('roadrunner');
    const file = await request(`http://127.0.0.1:${env.HTTP_PORT}/hello.txt`);
    expect(await file.body.text()).toBe('hello static\n');
    expect((await server.stop()).code).toBe(0);
  });
});

describe('SIGHUP', () => {
  it('applies new log levels live and names what needs a restart', async () => {
    const env = { ...(await ports()), ADMIN_SOCKET: join(dir, 'hup.sock'), FIXTURES };
    const file = join(dir, 'hup.yaml');
    const original = await readFile(join(FIXTURES, 'server', 'basic.yaml'), 'utf8');
    await writeFile(file, original);
    const server = startServer(['serve', '-c', file], { env });
    await server.ready();
    await writeFile(
      file,
      original
        .replace('level: info', 'level: debug')
        .replace('num_workers: 2', 'num_workers: 3')
        .replace('mode: production', 'mode: development'),
    );
    server.child.kill('SIGHUP');
    await server.waitFor('needs a restart to apply');
    expect(server.stdout).toContain('log level of channel http: info → debug');
    // each key by its path; logs.mode is not applied (only the levels are), so it is named too
    expect(server.stderr).toContain('changed in the file, needs a restart to apply: http.pool.num_workers, logs.mode');
    // a broken file: every one of its errors is named, and the running config stays
    await writeFile(file, `${original}\nhttp: {address: x\n`);
    server.child.kill('SIGHUP');
    await server.waitFor('config NOT re-read');
    const line = server.stderr.split('\n').find((l) => l.includes('config NOT re-read'))!;
    expect(line).toContain('the running config stays (fix the file, then reload again)');
    expect(line).toMatch(/has 2 errors: .*duplicate key "http".* \| .*YAML syntax/);
    // the file moved away: put it back, not "pass -c", which a running server cannot be given
    const from = server.stderr.length;
    await rm(file);
    server.child.kill('SIGHUP');
    await server.waitFor('no such file');
    const gone = server.stderr
      .slice(from)
      .split('\n')
      .find((l) => l.includes('config NOT re-read'))!;
    expect(gone).toContain(`the running config stays (put the file back at ${file}, then reload again)`);
    expect(gone).not.toContain('pass the right path with -c');
    expect((await server.stop()).code).toBe(0);
  });

  it('with logs.output naming a file, what serve says on the terminal reaches the file too: a refused reload', async () => {
    // before: after a refused reload the file said only "TLS certificate reloaded", as if it had worked
    const env = { ...(await ports()), ADMIN_SOCKET: join(dir, 'hup-file.sock'), FIXTURES };
    const file = join(dir, 'hup-file.yaml');
    const logFile = join(dir, 'hup-logs', 'warmpool.log');
    const original = (await readFile(join(FIXTURES, 'server', 'basic.yaml'), 'utf8')).replace(
      '  level: info',
      `  level: info\n  output: [stderr, ${logFile}]`,
    );
    await writeFile(file, original);
    const server = startServer(['serve', '-c', file], { env });
    await server.ready();
    expect(await waitForFile(logFile, 'warmpool ready in')).toContain('listening on http://127.0.0.1:');
    await writeFile(file, `${original}\nhttp: {address: x\n`);
    server.child.kill('SIGHUP');
    expect(await waitForFile(logFile, 'config NOT re-read')).toMatch(
      /"level":40.*config NOT re-read, the running config stays/,
    );
    expect((await server.stop()).code).toBe(0);
  });

  it('warmpool reload does the same over the admin socket: ✓ applied, ▲ needs a restart, ✗ a refused file (exit 2), exit 3 with no server', async () => {
    const env = { ...(await ports()), ADMIN_SOCKET: join(dir, 'reload.sock'), FIXTURES };
    const file = join(dir, 'reload.yaml');
    const original = await readFile(join(FIXTURES, 'server', 'basic.yaml'), 'utf8');
    await writeFile(file, original);
    const server = startServer(['serve', '-c', file], { env });
    await server.ready();
    const unchanged = await runCli(['reload', '-c', file], { env });
    expect(unchanged).toEqual({
      code: 0,
      stdout: '✓ nothing to reload: the file is unchanged (new PHP code of a worker site: `warmpool reset`)\n',
      stderr: '',
    });
    await writeFile(file, original.replace('level: info', 'level: debug').replace('num_workers: 2', 'num_workers: 3'));
    const applied = await runCli(['reload', '-c', file], { env });
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stdout).toContain('✓ log level of channel http: info → debug');
    expect(applied.stderr).toBe('▲ changed in the file, needs a restart to apply: http.pool.num_workers\n');
    // a value the server refuses: its line in the file, the running config stays, exit 2 (as config check)
    await writeFile(file, original.replace('num_workers: 2', 'num_workers: many'));
    const refused = await runCli(['reload', '-c', file], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(
      /^✗ config NOT re-read, the running config stays .*\n {2}.*reload\.yaml:18:\d+ http\.pool\.num_workers: /m,
    );
    const json = await runCli(['reload', '-c', file, '--json'], { env });
    expect(json.code).toBe(2);
    expect(JSON.parse(json.stdout)).toEqual({ changes: [expect.stringContaining('config NOT re-read')] });
    // the server's own output says each reload and what it did, as for SIGHUP
    expect(server.stdout).toContain('• warmpool reload: reloading log levels and checking the config'); // no certificate files in its config
    expect(server.stderr).toContain('▲ config NOT re-read, the running config stays (fix the file, then reload again)');
    expect((await server.stop()).code).toBe(0);
    const gone = await runCli(['reload', '--socket', env.ADMIN_SOCKET]);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain(env.ADMIN_SOCKET);
  });

  it('names a changed fastcgi section (a classic site) as needing a restart, not "unchanged"', async () => {
    const port = await freePort();
    const file = join(dir, 'hup-classic.yaml');
    const config = (root: string) =>
      [
        'http:',
        `  address: 127.0.0.1:${port}`,
        '  pool: { num_workers: 1 }',
        `admin: { socket: ${join(dir, 'hup-classic.sock')} }`,
        'fastcgi:',
        `  root: ${root}`,
        '  command: php-cgi',
        '',
      ].join('\n');
    await writeFile(file, config(join(FIXTURES, 'php', 'fastcgi')));
    const server = startServer(['serve', '-c', file]);
    await server.ready();
    await writeFile(file, config(join(FIXTURES, 'sites', 'classic-app')));
    server.child.kill('SIGHUP');
    await server.waitFor('needs a restart to apply');
    expect(server.stderr).toContain('changed in the file, needs a restart to apply: fastcgi.root');
    expect(server.stdout).not.toContain('nothing to reload');
    expect((await server.stop()).code).toBe(0);
  });
});

describe('ops listeners on every interface', () => {
  it('serve and config check warn about status and metrics on 0.0.0.0 / ":port", naming the key and line', async () => {
    const env = { ...(await ports()) };
    const file = join(dir, 'exposed.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        `server:\n  command: php ${join(FIXTURES, 'php', 'echo.php')}`,
        'http:\n  address: 127.0.0.1:${HTTP_PORT}\n  pool:\n    num_workers: 1',
        'status:\n  address: 0.0.0.0:${STATUS_PORT}',
        'metrics:\n  address: :${METRICS_PORT}',
        `admin:\n  socket: ${join(dir, 'exposed.sock')}`,
      ].join('\n'),
    );
    const check = await runCli(['config', 'check', '-c', file], { env });
    expect(check.code).toBe(0);
    expect(check.stderr).toContain(
      `${file}:9:3 status.address: "0.0.0.0:${env.STATUS_PORT}" listens on every interface`,
    );
    expect(check.stderr).toContain(`${file}:11:3 metrics.address: ":${env.METRICS_PORT}" listens on every interface`);

    const server = startServer(['serve', '-c', file], { env });
    await server.ready();
    expect(server.stderr).toContain(
      `${file}:9:3 status.address: "0.0.0.0:${env.STATUS_PORT}" listens on every interface`,
    );
    expect(server.stderr).toContain(`${file}:11:3 metrics.address:`);
    // it is a warning: the listeners do serve
    const health = await request(`http://127.0.0.1:${env.STATUS_PORT}/health`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
    expect((await server.stop()).code).toBe(0);

    // bound to loopback: no warning
    await writeFile(
      file,
      (await readFile(file, 'utf8')).replace('0.0.0.0:', '127.0.0.1:').replace(' :$', ' 127.0.0.1:$'),
    );
    const quiet = await runCli(['config', 'check', '-c', file], { env });
    expect(quiet.stderr).not.toContain('listens on every interface');
  });
});

describe('trusted_subnets holding every address', () => {
  it('config check warns at the key: every client would be a trusted proxy', async () => {
    const file = join(dir, 'trust-all.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        `server:\n  command: php ${join(FIXTURES, 'php', 'echo.php')}`,
        'http:\n  address: 127.0.0.1:8080\n  trusted_subnets: [10.0.0.0/8, 0.0.0.0/0, "::/0"]',
        '',
      ].join('\n'),
    );
    const check = await runCli(['config', 'check', '-c', file]);
    expect(check.code).toBe(0);
    expect(check.stderr).toContain(
      `${file}:6:3 http.trusted_subnets: 0.0.0.0/0, ::/0 trusts every client as a proxy: any client names its own address in X-Forwarded-For`,
    );
    // the proxies' own addresses: no warning
    await writeFile(file, (await readFile(file, 'utf8')).replace(', 0.0.0.0/0, "::/0"', ''));
    expect((await runCli(['config', 'check', '-c', file])).stderr).not.toContain('trusts every client');
  });
});

describe('http.codec', () => {
  it('serve sends the context as protobuf to a site with codec: proto, JSON to one without', async () => {
    const env = { HTTP_PORT: String(await freePort()) };
    const file = join(dir, 'codec.yaml');
    const worker = join(FIXTURES, 'php', 'sdk-http-echo.php');
    await writeFile(
      file,
      [
        'version: "3"',
        `server:\n  command: php ${worker}`,
        'http:\n  address: 127.0.0.1:${HTTP_PORT}\n  codec: proto\n  pool:\n    num_workers: 1',
        'sites:\n  - hosts: [json.test]\n    http:\n      codec: json',
        `admin:\n  socket: ${join(dir, 'codec.sock')}`,
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', file], { env });
    await server.ready();
    const codecOf = async (host: string) => {
      const res = await request(`http://127.0.0.1:${env.HTTP_PORT}/c`, { headers: { host } });
      return ((await res.body.json()) as { codec: string }).codec;
    };
    expect(await codecOf('any.test')).toBe('proto');
    expect(await codecOf('json.test')).toBe('json');
    expect((await server.stop()).code).toBe(0);
  });
});
