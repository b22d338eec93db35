import { execFile, spawn, spawnSync } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, request, WebSocket } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ALL_FEATURES_CERTIFICATES,
  ALL_FEATURES_CONFIG,
  allCertificatesIssued,
  everyNameHere,
  prepareAllFeatures,
} from '../helpers/all-features.js';
import { freePort } from '../helpers/free-port.js';
import { hasPebble, startPebble } from '../helpers/pebble.js';
import { waitForFile } from '../helpers/wait-for-file.js';
import { isAlive } from '../helpers/php.js';
import { FIXTURES, overrides, RunningServer, stopAllServers } from '../helpers/warmpool-server.js';

// The single executable (`pnpm build:binary` → apps/server/dist-bin/warmpool), as it ships: copied
// alone into an empty folder (no node_modules, no dist/ beside it), run by path, serving real PHP.
// It is (re)built here when missing or older than the compiled server it bundles, so CI proves the
// build itself too; the build takes ~15 s, most of it postject writing the 100 MB file.
const APP = fileURLToPath(new URL('../../apps/server/', import.meta.url));
const BUILT_BINARY = join(APP, 'dist-bin', 'warmpool');
const BUILD_SCRIPT = join(APP, 'scripts', 'build-binary.mjs');
/** What the binary bundles: every package's compiled output, and the build script itself. */
const INPUTS = [
  join(APP, 'dist'),
  ...['pool', 'fastify', 'config'].map((p) => fileURLToPath(new URL(`../../packages/${p}/dist`, import.meta.url))),
  BUILD_SCRIPT,
  join(APP, 'package.json'),
];
const PACKAGE_VERSION = (JSON.parse(await readFile(join(APP, 'package.json'), 'utf8')) as { version: string }).version;
const run = promisify(execFile);
const pebbleInstalled = await hasPebble();

async function newestMtime(path: string): Promise<number> {
  const info = await stat(path);
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = 0;
  for (const entry of await readdir(path)) newest = Math.max(newest, await newestMtime(join(path, entry)));
  return newest;
}

async function ensureBinary(): Promise<void> {
  if (!existsSync(join(APP, 'dist', 'main.js')))
    throw new Error('apps/server/dist/main.js is missing: run `pnpm build` first');
  const inputs = Math.max(...(await Promise.all(INPUTS.map(newestMtime))));
  if (existsSync(BUILT_BINARY) && statSync(BUILT_BINARY).mtimeMs >= inputs) return;
  const build = spawnSync(process.execPath, [BUILD_SCRIPT], { encoding: 'utf8', timeout: 120_000 });
  if (build.status !== 0)
    throw new Error(`pnpm build:binary failed (exit ${build.status ?? build.signal}):\n${build.stdout}${build.stderr}`);
}

let dir: string;
let binary: string;
/** The binary's environment: nothing that could point it at node_modules or change how Node starts. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _options, NODE_PATH: _path, ...rest } = process.env;
  return { ...rest, NO_COLOR: '1', ...extra };
}

function startBinary(args: string[], extra: Record<string, string>): RunningServer {
  return new RunningServer(spawn(binary, args, { cwd: dir, env: env(extra), stdio: ['ignore', 'pipe', 'pipe'] }));
}

beforeAll(async () => {
  await ensureBinary();
  dir = await mkdtemp(join(tmpdir(), 'wp-binary-'));
  binary = join(dir, 'warmpool');
  await copyFile(BUILT_BINARY, binary);
  await chmod(binary, 0o755);
}, 150_000);

afterAll(async () => {
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('the warmpool binary', () => {
  it('is alone in its folder: no node_modules, no JavaScript beside it', async () => {
    expect(await readdir(dir)).toEqual(['warmpool']);
  });

  it('`./warmpool version` reports this package version, its own Node.js and the RR protocol', async () => {
    const text = await run('./warmpool', ['version'], { cwd: dir, env: env() });
    expect(text.stdout).toContain(`warmpool ${PACKAGE_VERSION}`);
    expect(text.stderr).toBe(''); // no SEA or require() warnings
    const json = JSON.parse((await run('./warmpool', ['version', '--json'], { cwd: dir, env: env() })).stdout) as {
      warmpool: string;
      node: string;
      rr: { rr_version: string };
    };
    expect(json.warmpool).toBe(PACKAGE_VERSION);
    expect(json.node).toMatch(/^v\d+\.\d+\.\d+$/);
    expect(json.rr.rr_version).toMatch(/^\d{4}\.\d+\.\d+$/);
  });

  it('exits with the CLI exit codes: 2 for a usage error, with the message', async () => {
    const result = spawnSync(binary, ['serve', '--bogus'], { cwd: dir, env: env(), encoding: 'utf8' });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('unknown flag --bogus');
    expect(result.stderr).not.toContain('Warning');
  });

  it('`./warmpool config check` reads and validates a YAML config', async () => {
    const ports = {
      HTTP_PORT: '8080',
      STATUS_PORT: '2114',
      METRICS_PORT: '2115',
      ADMIN_SOCKET: join(dir, 'check.sock'),
      FIXTURES,
    };
    const { stdout } = await run(
      './warmpool',
      ['config', 'check', '-c', join(FIXTURES, 'server', 'basic.yaml'), '--json'],
      { cwd: dir, env: env(ports) },
    );
    const effective = JSON.parse(stdout) as { listeners: { http: { address: string } } };
    expect(effective.listeners.http.address).toBe('127.0.0.1:8080');
  });

  it('`./warmpool serve` answers HTTP from PHP, static files (gzip), /ready, /metrics and the admin socket; SIGTERM stops it and its PHP', async () => {
    const ports = {
      HTTP_PORT: String(await freePort()),
      STATUS_PORT: String(await freePort()),
      METRICS_PORT: String(await freePort()),
    };
    const socket = join(dir, 'admin.sock');
    const server = startBinary(['serve', '-c', join(FIXTURES, 'server', 'basic.yaml')], {
      ...ports,
      ADMIN_SOCKET: socket,
      FIXTURES,
    });
    await server.ready();
    expect(server.stderr).not.toContain('Warning');
    const base = `http://127.0.0.1:${ports.HTTP_PORT}`;

    // PHP, through the bundled Fastify, plugin and pool
    const page = await request(`${base}/from-the-binary?x=1`, { method: 'POST', body: 'hello php' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['x-served-by']).toBe('warmpool');
    const body = (await page.body.json()) as {
      pid: number;
      body: string;
      context: { uri: string };
      env: { APP_NAME: string };
    };
    expect(body.context.uri).toBe(`${base}/from-the-binary?x=1`);
    expect(body.body).toBe('hello php');
    expect(body.env.APP_NAME).toBe('basic');

    // static files (send's MIME table is bundled) and compression
    const file = await request(`${base}/hello.txt`);
    expect(file.statusCode).toBe(200);
    expect(file.headers['content-type']).toMatch(/^text\/plain/);
    expect(await file.body.text()).toBe('hello static\n');
    const big = await request(`${base}/big`, {
      method: 'POST',
      body: 'x'.repeat(4096),
      headers: { 'accept-encoding': 'gzip' },
    });
    expect(big.headers['content-encoding']).toBe('gzip');
    await big.body.arrayBuffer();

    // the ops listeners
    const ready = await request(`http://127.0.0.1:${ports.STATUS_PORT}/ready`);
    expect(ready.statusCode).toBe(200);
    expect(((await ready.body.json()) as { status: string }).status).toBe('ready');
    const metrics = await request(`http://127.0.0.1:${ports.METRICS_PORT}/metrics`);
    expect(await metrics.body.text()).toMatch(/^warmpool_requests_total\{site="default",status="200"\} \d+$/m);

    // the admin client, the same binary: the workers' pids, to check they are gone after the stop
    const workers = JSON.parse(
      (await run('./warmpool', ['workers', '--socket', socket, '--json'], { cwd: dir, env: env() })).stdout,
    ) as unknown;
    const pids = JSON.stringify(workers)
      .match(/"pid":\s*(\d+)/g)!
      .map((m) => Number(m.replace(/\D/g, '')));
    expect(pids).toContain(body.pid);

    const { code } = await server.stop('SIGTERM');
    expect(code).toBe(0);
    expect(server.stdout).toMatch(/✓ stopped in/);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });

  // `warmpool cert` runs the openssl CLI
  const openssl = spawnSync('openssl', ['version']).status === 0;
  it.skipIf(!openssl)('serves HTTPS with HTTP/2 from a certificate made by `./warmpool cert`', async () => {
    const certs = join(dir, 'certs');
    await mkdir(certs);
    const made = spawnSync(binary, ['cert', '--out', certs, '--host', 'localhost'], {
      cwd: dir,
      env: env(),
      encoding: 'utf8',
    });
    expect(made.stderr).not.toContain('Warning');
    expect(made.status).toBe(0);
    const ports = { HTTP_PORT: String(await freePort()), HTTPS_PORT: String(await freePort()) };
    const server = startBinary(['serve', '-c', join(FIXTURES, 'server', 'tls.yaml')], {
      ...ports,
      CERT_DIR: certs,
      FIXTURES,
    });
    await server.ready();
    const dispatcher = new Agent({ connect: { ca: await readFile(join(certs, 'cert.pem')) }, allowH2: true });
    try {
      const res = await request(`https://localhost:${ports.HTTPS_PORT}/secure`, { dispatcher });
      expect(res.statusCode).toBe(200);
      const body = (await res.body.json()) as { context: { protocol: string; uri: string } };
      expect(body.context.protocol).toBe('HTTP/2.0');
      expect(body.context.uri).toBe(`https://localhost:${ports.HTTPS_PORT}/secure`);
    } finally {
      await dispatcher.close();
    }
    expect((await server.stop()).code).toBe(0);
  });

  it.skipIf(!pebbleInstalled)(
    '`./warmpool serve` gets its certificate from an ACME CA (pebble): the ACME client and X.509 code are in the binary',
    async () => {
      const ports = { http: await freePort(), https: await freePort() };
      const pebble = await startPebble({ httpPort: ports.http, tlsPort: ports.https });
      const work = await mkdtemp(join(tmpdir(), 'wp-binary-acme-'));
      try {
        const config = join(work, 'acme.yaml');
        await writeFile(
          config,
          `server:\n  command: php ${FIXTURES}/php/echo.php\nhttp:\n  address: 127.0.0.1:${ports.http}\n  pool: { num_workers: 1 }\n` +
            `  ssl:\n    address: 127.0.0.1:${ports.https}\n    acme:\n      certs_dir: ${join(work, 'certs')}\n` +
            `      directory: ${pebble.directory}\n      domains: [bin.test]\nadmin:\n  socket: ${join(work, 'admin.sock')}\n`,
        );
        const server = startBinary(['serve', '-c', config], { NODE_EXTRA_CA_CERTS: pebble.caFile });
        await server.waitFor('a temporary self-signed one is served', 15_000);
        await server.waitFor(/certificate bin\.test issued: /, 45_000);
        expect(pebble.issued()).toBe(1);
        expect((await server.stop()).code).toBe(0);
      } finally {
        await pebble.stop();
        await rm(work, { recursive: true, force: true });
      }
    },
    60_000,
  );
  it('runs as rr, linked or copied into an app folder: --version as RoadRunner, serve with -o, reset -s over rpc.listen', async () => {
    const app = await mkdtemp(join(tmpdir(), 'wp-binary-rr-'));
    try {
      await writeFile(join(app, '.rr.yaml'), '');
      const linked = join(app, 'rr');
      await symlink(binary, linked);
      const copied = join(app, 'copy', 'rr');
      await mkdir(join(app, 'copy'));
      await copyFile(binary, copied);
      await chmod(copied, 0o755);
      for (const rr of [linked, copied]) {
        const version = await run(rr, ['--version'], { cwd: app, env: env() });
        expect(version.stdout).toMatch(
          new RegExp(`^rr version \\d{4}\\.\\d+\\.\\d+ \\(warmpool ${PACKAGE_VERSION}, node v[\\d.]+\\)\\n$`),
        );
        expect(version.stderr).toBe('');
      }
      const [port, rpcPort] = [await freePort(), await freePort()];
      const rpc = `tcp://127.0.0.1:${rpcPort}`;
      const server = new RunningServer(
        spawn(
          linked,
          [
            '-c',
            '.rr.yaml',
            ...overrides(
              `http.address=127.0.0.1:${port}`,
              `server.command=php,${join(FIXTURES, 'php', 'echo.php')}`,
              'http.pool.num_workers=1',
              `rpc.listen=${rpc}`,
              `admin.socket=${join(app, 'admin.sock')}`,
              'logs.mode=production',
              'logs.output=stdout',
              'logs.encoding=json',
            ),
            'serve',
          ],
          { cwd: app, env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
        ),
      );
      await server.ready(20_000);
      const first = (await (await request(`http://127.0.0.1:${port}/`)).body.json()) as { pid: number };
      const reset = await run(linked, ['reset', '-o', `rpc.listen=${rpc}`, '-s'], { cwd: app, env: env() });
      expect(reset).toMatchObject({ stdout: '', stderr: '' });
      const second = (await (await request(`http://127.0.0.1:${port}/`)).body.json()) as { pid: number };
      expect(second.pid).not.toBe(first.pid);
      expect(await server.stop()).toEqual({ code: 0, signal: null });
      for (const line of server.stdout.split('\n').filter(Boolean))
        expect(JSON.parse(line)).toMatchObject({
          level: expect.any(String),
          logger: expect.any(String),
          msg: expect.any(String),
        });
    } finally {
      await rm(app, { recursive: true, force: true });
    }
  });

  it('starts with the all-features config: certificates from the ACME CA, HTTPS + HTTP/2, sites, proxy and WebSocket, cache, access log', async () => {
    const setup = await prepareAllFeatures();
    // clients trust only the CA's root: every handshake below is with a certificate the binary ordered
    const dispatcher = new Agent({ connect: { ca: setup.root }, allowH2: true });
    const wsAgent = new Agent({ connect: { ca: setup.root, lookup: everyNameHere } });
    try {
      const server = startBinary(['serve', '-c', ALL_FEATURES_CONFIG], setup.serverEnv);
      await server.ready(20_000);
      await allCertificatesIssued(server);
      expect(setup.pebble.issued()).toBe(Object.keys(ALL_FEATURES_CERTIFICATES).length);
      expect(server.stderr).not.toContain('Warning');
      const get = async (path: string, host: string) => {
        const res = await request(`${setup.https}${path}`, { dispatcher, headers: { host } });
        return { headers: res.headers, text: await res.body.text() };
      };
      const a = await get('/from-binary', 'a.test');
      expect(JSON.parse(a.text).context.protocol).toBe('HTTP/2.0');
      expect(JSON.parse((await get('/codec', 'b.test')).text).codec).toBe('proto');
      expect((await get('/api/x', 'elsewhere.test')).headers['x-upstream']).toBe('yes');
      await get('/c?cc=public,%20max-age=60', 'elsewhere.test');
      expect((await get('/c?cc=public,%20max-age=60', 'elsewhere.test')).headers['x-cache']).toBe('HIT');
      const ws = new WebSocket(`wss://elsewhere.test:${setup.env.HTTPS_PORT}/ws/bin`, { dispatcher: wsAgent });
      const echoed = new Promise<string>((resolve, reject) => {
        ws.addEventListener('open', () => ws.send('from the binary'));
        ws.addEventListener('message', (e) => resolve(String(e.data)));
        ws.addEventListener('error', () => reject(new Error('websocket failed')));
      });
      expect(await echoed).toBe('echo from the binary from /ws/bin for 127.0.0.1');
      ws.close(1000);
      await waitForFile(setup.accessLog, '"GET /from-binary HTTP/2.0"');
      expect((await server.stop()).code).toBe(0);
    } finally {
      await Promise.all([dispatcher.close(), wsAgent.close()]);
      await setup.close();
    }
    // the CA's checks are bounded by allCertificatesIssued's deadline, not by the default test timeout
  }, 120_000);
});
