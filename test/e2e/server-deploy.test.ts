import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, listening } from '../helpers/free-port.js';
import { isAlive } from '../helpers/php.js';
import { parseUnit, seconds, value, type Unit } from '../helpers/systemd-unit.js';
import { FIXTURES, RunningServer, SERVER_MAIN, startServer, stopAllServers } from '../helpers/warmpool-server.js';

// apps/server/deploy/ tested as behaviour: each file is read only for the values it hands to
// warmpool (paths, ports, signals, fd names, commands), and the built server is run with exactly
// those values, so the files and the server cannot drift apart:
// - Docker/Kubernetes: the image's warmpool.yaml serves; the probes' paths answer 200, then 503
//   (and the HEALTHCHECK command fails) from SIGTERM on while a slow request drains to a 200;
// - systemd: warmpool takes the sockets of the .socket units the way systemd hands them over
//   (LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES from FileDescriptorName), and ExecReload keeps serving.
// LISTEN_FDS itself (single fd, names, LISTEN_PID of another process) is covered by
// server-lifecycle.test.ts; this file adds what the unit files rely on.
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const DEPLOY = join(REPO, 'apps', 'server', 'deploy');
// YAML is parsed with the server's own parser (the test package does not depend on `yaml`)
const YAML = createRequire(join(REPO, 'apps', 'server', 'package.json'))('yaml') as {
  parse(text: string): unknown;
  parseAllDocuments(text: string): Array<{ toJS(): unknown }>;
};
const exec = promisify(execFile);

// ---- reading the deploy files (values only) ----

/** The port of "host:port" / ":port". */
function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}

interface WarmpoolYaml {
  server: { command: string };
  http: { address: string; pool: { destroy_timeout: string } };
  status: { address: string };
  metrics: { address: string };
  admin: { socket: string };
}

interface Probe {
  httpGet: { path: string; port: string | number };
}
interface Container {
  args: string[];
  ports: Array<{ name: string; containerPort: number }>;
  startupProbe: Probe;
  readinessProbe: Probe;
  livenessProbe: Probe;
  lifecycle: { preStop: { exec: { command: string[] } } };
}
interface Deployment {
  kind: 'Deployment';
  spec: {
    template: {
      metadata: { annotations: Record<string, string> };
      spec: { terminationGracePeriodSeconds: number; containers: Container[] };
    };
  };
}
interface Service {
  kind: 'Service';
  spec: { ports: Array<{ name: string; port: number; targetPort: string | number }> };
}

/** Dockerfile instruction lines (continuations joined). */
function dockerInstructions(text: string): string[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

let dir: string;
let service: Unit;
let httpSocket: Unit;
let httpsSocket: Unit;
let deployment: Deployment;
let k8sService: Service;
let docker: string[];
let imageConfigText: string;
let imageConfig: WarmpoolYaml;
let systemdConfigText: string;
let systemdConfig: WarmpoolYaml;
const held: Server[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-deploy-'));
  const read = (path: string) => readFile(join(DEPLOY, path), 'utf8');
  service = parseUnit(await read('systemd/warmpool.service'));
  httpSocket = parseUnit(await read('systemd/warmpool-http.socket'));
  httpsSocket = parseUnit(await read('systemd/warmpool-https.socket'));
  const docs = YAML.parseAllDocuments(await read('kubernetes/warmpool.yaml')).map((d) => d.toJS()) as Array<
    Deployment | Service
  >;
  deployment = docs.find((d): d is Deployment => d.kind === 'Deployment')!;
  k8sService = docs.find((d): d is Service => d.kind === 'Service')!;
  docker = dockerInstructions(await read('docker/Dockerfile'));
  imageConfigText = await read('docker/warmpool.yaml');
  imageConfig = YAML.parse(imageConfigText) as WarmpoolYaml;
  systemdConfigText = await read('systemd/warmpool.yaml');
  systemdConfig = YAML.parse(systemdConfigText) as WarmpoolYaml;
});

afterAll(async () => {
  await stopAllServers();
  await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const container = () => deployment.spec.template.spec.containers[0]!;

/** A probe's port (a name of the container's ports, or a number) → the container port. */
function probePort(probe: Probe): number {
  const { port } = probe.httpGet;
  if (typeof port === 'number') return port;
  const found = container().ports.find((p) => p.name === port);
  if (found === undefined) throw new Error(`probe port "${port}" is not a container port`);
  return found.containerPort;
}

/** The Dockerfile's HEALTHCHECK exec-form command. */
function healthcheck(): string[] {
  const line = docker.find((l) => l.startsWith('HEALTHCHECK '));
  const cmd = line === undefined ? null : /\sCMD\s+(\[.*\])\s*$/.exec(line);
  if (cmd === null || cmd === undefined) throw new Error('the Dockerfile has no HEALTHCHECK ... CMD ["..."]');
  return JSON.parse(cmd[1]!) as string[];
}

function dockerInstruction(name: string): string | undefined {
  return docker.find((l) => l.startsWith(`${name} `))?.slice(name.length + 1);
}

/** Runs the HEALTHCHECK command as Docker would, with the status address moved to the test's port. */
function runHealthcheck(from: string, to: string): number | null {
  const [cmd, ...args] = healthcheck().map((a) => a.replaceAll(from, to));
  return spawnSync(cmd!, args, { encoding: 'utf8', timeout: 10_000 }).status;
}

/** Waits until the status listener reports `working` busy workers. */
async function untilWorking(statusPort: number, working: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const res = await request(`http://127.0.0.1:${statusPort}/ready`);
    const body = (await res.body.json()) as { sites: { default: { workers: { working: number } } } };
    if (body.sites.default.workers.working === working) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('no worker became busy');
}

describe('Docker and Kubernetes', () => {
  it('the ports agree: Dockerfile EXPOSE, HEALTHCHECK, container ports, probes and the image config', () => {
    const httpPort = portOf(imageConfig.http.address);
    const statusPort = portOf(imageConfig.status.address);
    expect(dockerInstruction('EXPOSE')?.split(/\s+/).map(Number).sort()).toEqual([httpPort, statusPort].sort());
    expect(healthcheck().join(' ')).toContain(`127.0.0.1:${statusPort}/`);
    for (const probe of [container().startupProbe, container().readinessProbe, container().livenessProbe])
      expect(probePort(probe)).toBe(statusPort);
    expect(container().ports.find((p) => p.name === 'http')?.containerPort).toBe(httpPort);
    expect(k8sService.spec.ports.map((p) => p.targetPort)).toEqual(['http']); // the status port stays private
    const annotations = deployment.spec.template.metadata.annotations;
    expect(Number(annotations['prometheus.io/port'])).toBe(portOf(imageConfig.metrics.address));
  });

  it('the image config serves the app; startup, readiness and liveness probes, /metrics and HEALTHCHECK pass; the stop signal drains to exit 0', async () => {
    const http = `127.0.0.1:${await freePort()}`;
    const status = `127.0.0.1:${await freePort()}`;
    // the image, moved into this checkout: /app is the repository root (Dockerfile: COPY examples/hello /app/examples/hello)
    const text = imageConfigText
      .replaceAll('/app/', REPO)
      .replaceAll(imageConfig.http.address, http)
      .replaceAll(imageConfig.status.address, status)
      .replaceAll(imageConfig.admin.socket, join(dir, 'image.sock'));
    expect(text).not.toContain('0.0.0.0');
    const file = join(dir, 'image.yaml');
    await writeFile(file, text);
    // the image's CMD (ENTRYPOINT is tini + the binary), with the moved config
    const cmd = JSON.parse(dockerInstruction('CMD')!) as string[];
    expect(cmd).toEqual(container().args);
    const server = startServer(cmd.map((a) => (a === '/etc/warmpool/warmpool.yaml' ? file : a)));
    await server.ready(20_000);

    const page = await request(`http://${http}/?name=docker`);
    expect(page.statusCode).toBe(200);
    expect(await page.body.text()).toContain('Hello from a warm PHP worker');
    const css = await request(`http://${http}/style.css`);
    expect(css.statusCode).toBe(200);
    await css.body.text();
    for (const probe of [container().startupProbe, container().readinessProbe, container().livenessProbe]) {
      const res = await request(`http://${status}${probe.httpGet.path}`);
      expect(res.statusCode, probe.httpGet.path).toBe(200);
      await res.body.text();
    }
    const metrics = await request(
      `http://${status}${deployment.spec.template.metadata.annotations['prometheus.io/path']}`,
    );
    expect(await metrics.body.text()).toContain('warmpool_requests_total');
    expect(runHealthcheck(`127.0.0.1:${portOf(imageConfig.status.address)}`, status)).toBe(0);

    const stop = (dockerInstruction('STOPSIGNAL') ?? 'SIGTERM') as NodeJS.Signals;
    expect((await server.stop(stop)).code).toBe(0);
  });

  it('from SIGTERM on, the readiness probe gets 503 and HEALTHCHECK fails while a slow request drains; it completes with 200', async () => {
    const stop = (dockerInstruction('STOPSIGNAL') ?? 'SIGTERM') as NodeJS.Signals;
    expect(stop).toBe('SIGTERM'); // what Kubernetes sends after preStop, and what the systemd unit sends
    expect(value(service, 'Service', 'KillSignal')).toBe(stop);
    const env = {
      HTTP_PORT: String(await freePort()),
      STATUS_PORT: String(await freePort()),
      ADMIN_SOCKET: join(dir, 'drain.sock'),
      FIXTURES,
    };
    const status = Number(env.STATUS_PORT);
    const readiness = `http://127.0.0.1:${status}${container().readinessProbe.httpGet.path}`;
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'drain.yaml')], { env });
    await server.ready();
    expect((await request(readiness)).statusCode).toBe(200);
    expect(runHealthcheck(`127.0.0.1:${portOf(imageConfig.status.address)}`, `127.0.0.1:${status}`)).toBe(0);

    const slow = request(`http://127.0.0.1:${env.HTTP_PORT}/slow`, { method: 'POST', body: '1500' });
    await untilWorking(status, 1);
    server.child.kill(stop);
    await server.waitFor(`${stop}: draining`);

    // the kubelet counts 200-399 as ready; Docker a 0 exit as healthy
    const during = await request(readiness);
    expect(during.statusCode).toBe(503);
    expect(((await during.body.json()) as { status: string }).status).toBe('draining');
    expect(runHealthcheck(`127.0.0.1:${portOf(imageConfig.status.address)}`, `127.0.0.1:${status}`)).not.toBe(0);

    const res = await slow;
    expect(res.statusCode).toBe(200);
    const pid = Number(await res.body.text());
    expect((await server.exited).code).toBe(0);
    expect(isAlive(pid)).toBe(false);
  });

  it('the stop timeouts outlast the worst drain (3 x destroy_timeout): terminationGracePeriodSeconds after preStop, TimeoutStopSec', async () => {
    const { stdout } = await exec(process.execPath, [SERVER_MAIN, 'help']);
    expect(stdout).toContain('serve'); // the built server is what the deploy files run
    const preStop = container().lifecycle.preStop.exec.command;
    expect(preStop[0]).toBe('sleep');
    const drain = 3 * seconds(imageConfig.http.pool.destroy_timeout);
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds).toBeGreaterThan(Number(preStop[1]) + drain);
    expect(seconds(value(service, 'Service', 'TimeoutStopSec'))).toBeGreaterThan(
      3 * seconds(systemdConfig.http.pool.destroy_timeout),
    );
    // only warmpool gets the stop signal: the PHP workers finish their requests and are stopped by it
    expect(value(service, 'Service', 'KillMode')).toBe('mixed');
  });
});

/** A port held by this process: a server that tried to bind it itself would fail. */
async function blockedPort(): Promise<number> {
  const { server, port } = await listening();
  held.push(server);
  return port;
}

/**
 * Starts warmpool as systemd.exec does for a socket-activated service: the sockets as fds 3, 4, …,
 * LISTEN_FDS, LISTEN_FDNAMES, and LISTEN_PID set to the service's own pid (the shell execs into the
 * server, keeping its pid). The command line is the unit's ExecStart with the test's config file.
 */
function startActivated(config: string, sockets: Array<{ fd: number; name: string }>): RunningServer {
  const [, ...args] = value(service, 'Service', 'ExecStart').split(/\s+/);
  const argv = args.map((a) => (a === '/etc/warmpool/warmpool.yaml' ? config : a));
  const child = spawn(
    '/bin/sh',
    ['-c', 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', 'sh', process.execPath, SERVER_MAIN, ...argv],
    {
      env: {
        ...process.env,
        NO_COLOR: '1',
        LISTEN_FDS: String(sockets.length),
        LISTEN_FDNAMES: sockets.map((s) => s.name).join(':'),
      },
      stdio: ['ignore', 'pipe', 'pipe', ...sockets.map((s) => s.fd)],
    },
  );
  return new RunningServer(child);
}

/** A certificate pair from `warmpool cert` (which runs the openssl CLI). */
async function makeCert(): Promise<string> {
  const certs = join(dir, 'certs');
  await mkdir(certs, { recursive: true });
  const made = spawnSync(process.execPath, [SERVER_MAIN, 'cert', '--out', certs, '--host', 'localhost'], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1' },
  });
  if (made.status !== 0) throw new Error(`warmpool cert failed:\n${made.stdout}${made.stderr}`);
  return certs;
}
const openssl = spawnSync('openssl', ['version']).status === 0;

describe('systemd', () => {
  it('ExecStart runs `serve -c FILE`, and the example /etc/warmpool/warmpool.yaml passes `config check`', async () => {
    const [bin, ...args] = value(service, 'Service', 'ExecStart').split(/\s+/);
    expect(bin).toBe('/usr/local/bin/warmpool');
    expect(args).toEqual(['serve', '-c', '/etc/warmpool/warmpool.yaml']);
    const app = join(dir, 'srv-app');
    await mkdir(join(app, 'public'), { recursive: true });
    await writeFile(join(app, 'worker.php'), '<?php\n');
    const file = join(dir, 'systemd.yaml');
    await writeFile(file, systemdConfigText.replaceAll('/srv/app', app));
    const check = spawnSync(process.execPath, [SERVER_MAIN, 'config', 'check', '-c', file], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1' },
    });
    expect(check.stderr).toBe('');
    expect(check.status).toBe(0);
    // the admin socket lives in the unit's RuntimeDirectory (/run/<name>), which systemd creates for User=
    expect(systemdConfig.admin.socket.startsWith(`/run/${value(service, 'Service', 'RuntimeDirectory')}/`)).toBe(true);
  });

  it.skipIf(!openssl)(
    'the .socket units hand over http and https by FileDescriptorName, in either order: warmpool serves both without binding',
    async () => {
      const certs = await makeCert();
      expect(value(httpSocket, 'Socket', 'Service')).toBe('warmpool.service');
      expect(value(httpsSocket, 'Socket', 'Service')).toBe('warmpool.service');
      const http = await listening();
      const https = await listening();
      const status = await freePort();
      const file = join(dir, 'activated.yaml');
      // the configured addresses are taken by this process: warmpool must serve the handed-over sockets
      await writeFile(
        file,
        `server:\n  command: php ${FIXTURES}/php/echo.php\nhttp:\n  address: 127.0.0.1:${await blockedPort()}\n  pool: { num_workers: 1 }\n` +
          `  ssl:\n    address: 127.0.0.1:${await blockedPort()}\n    cert: ${certs}/cert.pem\n    key: ${certs}/key.pem\n` +
          `status:\n  address: 127.0.0.1:${status}\nadmin:\n  socket: ${join(dir, 'activated.sock')}\n`,
      );
      // https first: systemd does not order the sockets of two units, the names must decide
      const server = startActivated(file, [
        { fd: https.fd, name: value(httpsSocket, 'Socket', 'FileDescriptorName') },
        { fd: http.fd, name: value(httpSocket, 'Socket', 'FileDescriptorName') },
      ]);
      http.server.close();
      https.server.close();
      await server.ready();
      expect(server.stdout).toContain(`socket fd 3 from LISTEN_FDS`);
      expect(server.stdout).toMatch(
        new RegExp(`listening on https://127\\.0\\.0\\.1:${https.port} \\([^)]*socket fd 3 from LISTEN_FDS\\)`),
      );
      expect(server.stdout).toMatch(
        new RegExp(`listening on http://127\\.0\\.0\\.1:${http.port} \\([^)]*socket fd 4 from LISTEN_FDS\\)`),
      );

      const plain = await request(`http://127.0.0.1:${http.port}/over-http`);
      expect(plain.statusCode).toBe(200);
      expect(((await plain.body.json()) as { context: { uri: string } }).context.uri).toBe(
        `http://127.0.0.1:${http.port}/over-http`,
      );
      const dispatcher = new Agent({ connect: { ca: await readFile(join(certs, 'cert.pem')) } });
      try {
        const secure = await request(`https://localhost:${https.port}/over-https`, { dispatcher });
        expect(secure.statusCode).toBe(200);
        expect(((await secure.body.json()) as { context: { uri: string } }).context.uri).toBe(
          `https://localhost:${https.port}/over-https`,
        );
      } finally {
        await dispatcher.close();
      }
      expect((await server.stop(value(service, 'Service', 'KillSignal') as NodeJS.Signals)).code).toBe(0);
    },
  );

  it('an enabled https socket without http.ssl in the config is refused with exit 5, as the unit says', async () => {
    const http = await listening();
    const https = await listening();
    held.push(http.server, https.server);
    const file = join(dir, 'no-ssl.yaml');
    await writeFile(
      file,
      `server:\n  command: php ${FIXTURES}/php/echo.php\nhttp:\n  address: 127.0.0.1:${await blockedPort()}\n  pool: { num_workers: 1 }\nadmin:\n  socket: ${join(dir, 'no-ssl.sock')}\n`,
    );
    const server = startActivated(file, [
      { fd: http.fd, name: value(httpSocket, 'Socket', 'FileDescriptorName') },
      { fd: https.fd, name: value(httpsSocket, 'Socket', 'FileDescriptorName') },
    ]);
    expect((await server.exited).code).toBe(5);
    expect(server.stderr).toContain('LISTEN_FDS=2 but this config has 1 listener');
  });

  it('ExecReload (kill -HUP $MAINPID) reloads and keeps serving: same warm workers, /ready 200', async () => {
    const env = {
      HTTP_PORT: String(await freePort()),
      STATUS_PORT: String(await freePort()),
      METRICS_PORT: String(await freePort()),
      ADMIN_SOCKET: join(dir, 'reload.sock'),
      FIXTURES,
    };
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'basic.yaml')], { env });
    await server.ready();
    const base = `http://127.0.0.1:${env.HTTP_PORT}`;
    const pidsBefore = new Set<number>();
    for (let i = 0; i < 4; i++)
      pidsBefore.add(((await (await request(`${base}/before`)).body.json()) as { pid: number }).pid);

    // the unit's command, as systemd runs it: $MAINPID is the service's main pid
    const [kill, ...args] = value(service, 'Service', 'ExecReload')
      .replace('$MAINPID', String(server.pid))
      .split(/\s+/);
    const reload = spawnSync(kill!, args, { encoding: 'utf8' });
    expect(reload.status).toBe(0);
    await server.waitFor(/SIGHUP: reloading[\s\S]*nothing to reload: the file is unchanged/);

    expect(isAlive(server.pid)).toBe(true);
    const after = await request(`${base}/after`);
    expect(after.statusCode).toBe(200);
    expect(pidsBefore.has(((await after.body.json()) as { pid: number }).pid)).toBe(true);
    expect((await request(`http://127.0.0.1:${env.STATUS_PORT}/ready`)).statusCode).toBe(200);
    expect((await server.stop()).code).toBe(0);
  });

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!analyze)('systemd-analyze verify accepts the units (no unknown keys or bad values)', async () => {
    // verify checks that ExecStart exists: the built server stands in for /usr/local/bin/warmpool
    const units = join(dir, 'units');
    await mkdir(units);
    const names = ['warmpool.service', 'warmpool-http.socket', 'warmpool-https.socket'];
    for (const name of names) {
      const text = await readFile(join(DEPLOY, 'systemd', name), 'utf8');
      await writeFile(join(units, name), text.replaceAll('/usr/local/bin/warmpool', process.execPath));
    }
    const result = spawnSync('systemd-analyze', ['verify', '--man=no', ...names.map((n) => join(units, n))], {
      encoding: 'utf8',
    });
    const ours = `${result.stdout}${result.stderr}`.split('\n').filter((line) => names.some((n) => line.includes(n)));
    expect(ours).toEqual([]);
    expect(result.status).toBe(0);
  });
});
