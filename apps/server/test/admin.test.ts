import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmod, lstat, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPool, SILENT_LOGGER, type Pool } from '@warmpool/pool';
import { pino } from 'pino';
import { markBackendReply } from '@warmpool/fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { adminRequest, exitCodeOf, EXIT_FAILED, EXIT_UNREACHABLE, type Output } from '../src/admin/client.js';
import {
  AdminRemoteError,
  AdminUnreachableError,
  AlreadyRunningError,
  AdminSocketError,
  describeResetProgress,
  parseAdminRequest,
} from '../src/admin/protocol.js';
import { createPoolHandlers, startAdminServer, type AdminHandlers, type AdminServer } from '../src/admin/server.js';
import * as cacheCommand from '../src/commands/cache.js';
import * as workersCommand from '../src/commands/workers.js';
import * as resetCommand from '../src/commands/reset.js';
import { registerMicroCache } from '../src/micro-cache.js';
import Fastify from 'fastify';
import { createFastCgiClientPool, encodeFastCgiParams } from '@warmpool/pool/fastcgi';
import { startPhpFpm } from '../../../test/helpers/php-fpm.js';
import { until } from '../../../test/helpers/until.js';

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

/** An Output that records what a command printed. */
class RecordingOutput implements Output {
  readonly lines: string[] = [];
  info(message: string) {
    this.lines.push(`info: ${message}`);
  }
  success(message: string) {
    this.lines.push(`success: ${message}`);
  }
  error(message: string) {
    this.lines.push(`error: ${message}`);
  }
  table() {}
}

let dir: string;
let socketPath: string;
const servers: AdminServer[] = [];
const pools: Pool[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-admin-'));
  socketPath = join(dir, 'admin.sock');
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(pools.splice(0).map((p) => p.close()));
  await rm(dir, { recursive: true, force: true });
});

async function startPool(name = 'echo.php', numWorkers = 2): Promise<Pool> {
  const pool = createPool({ command: ['php', fixture(name)], num_workers: numWorkers, logger: SILENT_LOGGER });
  pools.push(pool);
  await pool.start();
  return pool;
}

async function start(handlers: AdminHandlers, path = socketPath): Promise<AdminServer> {
  // a pino logger, as the server passes its own
  const server = await startAdminServer(path, handlers, pino({ level: 'silent' }));
  servers.push(server);
  return server;
}

/** Handlers over one site "main" backed by a real pool. */
async function startWithPool(name = 'echo.php', numWorkers = 2): Promise<{ pool: Pool; server: AdminServer }> {
  const pool = await startPool(name, numWorkers);
  const server = await start(createPoolHandlers(() => new Map([['main', pool]])));
  return { pool, server };
}

/** Sends raw bytes on the admin socket and collects every line until the server closes. */
async function rawExchange(path: string, text: string): Promise<unknown[]> {
  const socket = createConnection(path);
  socket.setEncoding('utf8');
  let data = '';
  socket.on('data', (chunk: string) => (data += chunk));
  await once(socket, 'connect');
  socket.write(text);
  await once(socket, 'close');
  return data
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

/** A socket file left by a server that died: a node process listens, then is SIGKILLed. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(
    process.execPath,
    ['-e', `require('net').createServer().listen(process.argv[1], () => console.log('up'))`, path],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await once(child.stdout!, 'data');
  child.kill('SIGKILL');
  await once(child, 'exit');
}

describe('admin socket: the file', () => {
  it('is a socket of mode 0600, and the process umask is left as it was', async () => {
    const umaskBefore = process.umask(0o022);
    process.umask(umaskBefore);
    await start(createPoolHandlers(() => new Map()));
    const stat = await lstat(socketPath);
    expect(stat.isSocket()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);
    const umaskAfter = process.umask(0o022);
    process.umask(umaskAfter);
    expect(umaskAfter).toBe(umaskBefore);
  });

  it('creates a missing parent folder (0700) and removes the socket on close', async () => {
    const nested = join(dir, 'run', 'warmpool', 'admin.sock');
    const server = await startAdminServer(
      nested,
      createPoolHandlers(() => new Map()),
      SILENT_LOGGER,
    );
    expect((await lstat(join(dir, 'run', 'warmpool'))).mode & 0o777).toBe(0o700);
    await server.close();
    await expect(lstat(nested)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('replaces a stale socket left by a server that died', async () => {
    await staleSocket(socketPath);
    expect((await lstat(socketPath)).isSocket()).toBe(true);
    await start(createPoolHandlers(() => new Map()));
    expect(await adminRequest(socketPath, { cmd: 'ping' })).toEqual({ pid: process.pid, sites: [] });
  });

  it('refuses to start when another server answers on the socket', async () => {
    await start(createPoolHandlers(() => new Map()));
    const error = await startAdminServer(
      socketPath,
      createPoolHandlers(() => new Map()),
      SILENT_LOGGER,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AlreadyRunningError);
    expect((error as Error).message).toBe(
      `another warmpool is running (admin socket ${socketPath} answers); stop it first, or give this server its own admin.socket in warmpool.yaml`,
    );
    // the first server still answers
    expect(await adminRequest(socketPath, { cmd: 'ping' })).toMatchObject({ pid: process.pid });
  });

  it('never removes a file that is not a socket', async () => {
    await writeFile(socketPath, 'precious');
    const error = await startAdminServer(
      socketPath,
      createPoolHandlers(() => new Map()),
      SILENT_LOGGER,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdminSocketError);
    expect((error as AdminSocketError).code).toBe('WP_SERVER_ADMIN_SOCKET');
    expect((error as Error).message).toContain('exists and is not a socket');
    expect(await readFile(socketPath, 'utf8')).toBe('precious');
  });

  it('a socket this user may not make: says which path to give admin.socket instead', async () => {
    // /proc refuses every bind, root's too
    const error = await startAdminServer(
      '/proc/self/warmpool-admin.sock',
      createPoolHandlers(() => new Map()),
      SILENT_LOGGER,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdminSocketError);
    expect((error as Error).message).toMatch(
      /^cannot listen on the admin socket \/proc\/self\/warmpool-admin\.sock: .*EACCES.*; give admin\.socket a path in a folder this user \(uid \d+\) can write, e\.g\. \/run\/warmpool\/admin\.sock/,
    );
  });

  it('refuses a path longer than a unix socket allows, naming the config key', async () => {
    const long = join(dir, 'x'.repeat(120), 'admin.sock');
    await expect(
      startAdminServer(
        long,
        createPoolHandlers(() => new Map()),
        SILENT_LOGGER,
      ),
    ).rejects.toThrow(/unix sockets allow 107: choose a shorter admin\.socket/);
  });

  it.runIf(process.getuid?.() === 0)('denies other users (checked as uid 65534)', async () => {
    await chmod(dir, 0o755); // the folder is open; only the socket's own mode keeps them out
    await start(createPoolHandlers(() => new Map()));
    const child = spawn(
      process.execPath,
      [
        '-e',
        `require('net').createConnection(process.argv[1]).on('connect', () => { console.log('connected'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(0) })`,
        socketPath,
      ],
      {
        uid: 65534,
        gid: 65534,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let out = '';
    child.stdout!.on('data', (chunk: Buffer) => (out += chunk));
    await once(child, 'exit');
    expect(out.trim()).toBe('EACCES');
  });
});

describe('admin socket: protocol', () => {
  it('answers workers and stats per site with real pool data', async () => {
    const { pool } = await startWithPool();
    const workers = await adminRequest(socketPath, { cmd: 'workers' });
    expect(workers).toHaveLength(1);
    expect(workers[0]!.site).toBe('main');
    expect(workers[0]!.workers).toHaveLength(2);
    expect(workers[0]!.workers[0]).toMatchObject({ state: 'ready', jobs: 0, markedFor: null });
    expect(workers[0]!.workers[0]!.rssBytes).toBeGreaterThan(0);
    expect(new Set(workers[0]!.workers.map((w) => w.pid))).toEqual(new Set((await pool.workers()).map((w) => w.pid)));

    const stats = await adminRequest(socketPath, { cmd: 'stats', site: 'main' });
    expect(stats).toEqual([{ site: 'main', stats: pool.stats() }]);
  });

  it('`warmpool workers` says why a site has no worker: its boots fail, with the error and what to do', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wp-admin-gate-'));
    const gate = join(dir, 'gate');
    const pool = createPool({
      command: ['php', fixture('boot-gate.php')],
      env: { BOOT_GATE: gate },
      num_workers: 1,
      logger: SILENT_LOGGER,
    });
    pools.push(pool);
    await pool.start();
    await start(createPoolHandlers(() => new Map([['main', pool]])));
    try {
      await writeFile(gate, ''); // a broken deploy: the replacement cannot boot
      process.kill((await pool.workers())[0]!.pid, 'SIGKILL');
      await until(() => pool.stats().bootError !== null && pool.stats().workers.booting === 0, 'a failed boot');
      const sites = await adminRequest(socketPath, { cmd: 'workers' });
      expect(sites[0]!.pool).toMatchObject({ booting: 0, bootError: expect.stringContaining('boot refused') });
      const out = new RecordingOutput();
      workersCommand.printWorkers(sites, out);
      // before: only "no workers running (main)"
      expect(out.lines[0]).toMatch(
        /^error: site main: workers cannot boot: .*boot refused.* \(retried on its own; `warmpool reset` tries now\)$/,
      );
      expect(out.lines.at(-1)).toBe('info: no workers running (main)');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('speaks newline-delimited JSON: one request line in, one final line out, then close', async () => {
    await startWithPool('echo.php', 1);
    const lines = await rawExchange(socketPath, '{"cmd":"ping"}\n');
    expect(lines).toEqual([{ ok: true, data: { pid: process.pid, sites: ['main'] } }]);
  });

  it('answers a request that ends without a newline when the client half-closes', async () => {
    await start(createPoolHandlers(() => new Map()));
    const socket = createConnection(socketPath);
    let data = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (data += chunk));
    await once(socket, 'connect');
    socket.end('{"cmd":"ping"}');
    await once(socket, 'close');
    expect(JSON.parse(data)).toEqual({ ok: true, data: { pid: process.pid, sites: [] } });
  });

  it('answers bad requests with WP_SERVER_ADMIN_BAD_REQUEST and names the problem', async () => {
    await start(createPoolHandlers(() => new Map()));
    expect(await rawExchange(socketPath, '{not json\n')).toEqual([
      { ok: false, error: { code: 'WP_SERVER_ADMIN_BAD_REQUEST', message: 'the request is not JSON: "{not json"' } },
    ]);
    // not even the start of a JSON line (a goridge frame: the CLI told -o rpc.listen=unix://THIS): answered
    // at once, not left waiting for a newline
    const goridge = Buffer.from([0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
    const [frame] = (await rawExchange(socketPath, goridge.toString('latin1'))) as Array<{
      error: { code: string; message: string };
    }>;
    expect(frame!.error.code).toBe('WP_SERVER_ADMIN_BAD_REQUEST');
    expect(frame!.error.message).toMatch(/^this is warmpool's admin socket, which speaks newline-delimited JSON/);
    const [unknown] = (await rawExchange(socketPath, '{"cmd":"explode"}\n')) as Array<{
      error: { code: string; message: string };
    }>;
    expect(unknown!.error.code).toBe('WP_SERVER_ADMIN_BAD_REQUEST');
    expect(unknown!.error.message).toBe(
      'unknown command "explode"; known commands: ping, workers, stats, reset, tune, reload, certs, cache-purge',
    );
    const [window] = (await rawExchange(socketPath, '{"cmd":"tune","windowMs":5}\n')) as Array<{
      error: { message: string };
    }>;
    expect(window!.error.message).toMatch(/"windowMs" must be a number of milliseconds from 100/);
  });

  it('answers a line longer than 64 KiB with an error instead of buffering forever', async () => {
    await start(createPoolHandlers(() => new Map()));
    const [answer] = (await rawExchange(socketPath, 'x'.repeat(70 * 1024))) as Array<{ error: { code: string } }>;
    expect(answer!.error.code).toBe('WP_SERVER_ADMIN_BAD_REQUEST');
  });

  it('names the sites when one does not exist, and keeps the server code on the client', async () => {
    await startWithPool('echo.php', 1);
    const error = await adminRequest(socketPath, { cmd: 'workers', site: 'blog' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdminRemoteError);
    expect(error).toMatchObject({
      code: 'WP_SERVER_UNKNOWN_SITE',
      message: 'no site named "blog"; this server runs: main',
    });
    expect(exitCodeOf(error)).toBe(EXIT_FAILED);
  });

  it('answers reload with WP_SERVER_ADMIN_UNSUPPORTED until the server wires it, and with the changes after', async () => {
    await start(createPoolHandlers(() => new Map()));
    await expect(adminRequest(socketPath, { cmd: 'reload' })).rejects.toMatchObject({
      code: 'WP_SERVER_ADMIN_UNSUPPORTED',
    });
    const other = join(dir, 'other.sock');
    await start(
      createPoolHandlers(() => new Map(), { reload: async () => ['site blog: added'] }),
      other,
    );
    expect(await adminRequest(other, { cmd: 'reload' })).toEqual({ changes: ['site blog: added'] });
  });

  it('refuses reset, tune and reload while the server drains (WP_SERVER_DRAINING); workers and ping still answer', async () => {
    let draining = false;
    await start(
      createPoolHandlers(() => new Map(), {
        reload: async () => ['nothing to reload'],
        config: '/etc/warmpool/warmpool.yaml',
        draining: () => draining,
      }),
    );
    expect(await adminRequest(socketPath, { cmd: 'reload' })).toEqual({ changes: ['nothing to reload'] });
    draining = true;
    for (const request of [{ cmd: 'reset' }, { cmd: 'tune', windowMs: 1000 }, { cmd: 'reload' }] as const) {
      await expect(adminRequest(socketPath, request)).rejects.toMatchObject({
        code: 'WP_SERVER_DRAINING',
        message: expect.stringMatching(/this server is draining .* would act on workers about to stop/),
      });
    }
    expect(await adminRequest(socketPath, { cmd: 'workers' })).toEqual([]);
    expect(await adminRequest(socketPath, { cmd: 'ping' })).toEqual({
      pid: process.pid,
      sites: [],
      config: '/etc/warmpool/warmpool.yaml',
    });
  });

  it('answers certs with what the server serves, or WP_SERVER_ADMIN_UNSUPPORTED from a server without it', async () => {
    await start(createPoolHandlers(() => new Map()));
    await expect(adminRequest(socketPath, { cmd: 'certs' })).rejects.toMatchObject({
      code: 'WP_SERVER_ADMIN_UNSUPPORTED',
    });
    const other = join(dir, 'certs.sock');
    const data = { automatic: false, certificates: [] };
    await start(
      createPoolHandlers(() => new Map(), { certificates: () => data }),
      other,
    );
    expect(await adminRequest(other, { cmd: 'certs' })).toEqual(data);
  });

  it('passes a handler error through with its WP_ code, and wraps others as WP_SERVER_ADMIN_FAILED', async () => {
    const handlers = createPoolHandlers(() => new Map());
    handlers.workers = async () => {
      throw new Error('disk on fire');
    };
    await start(handlers);
    await expect(adminRequest(socketPath, { cmd: 'workers' })).rejects.toMatchObject({
      code: 'WP_SERVER_ADMIN_FAILED',
      message: 'disk on fire',
    });
  });
});

describe('describeResetProgress', () => {
  it('says "replaced" for a replaced worker, and the wait for an old one still in a request', () => {
    expect(describeResetProgress({ site: 'a.test', replaced: 1, total: 2 })).toBe('a.test: replaced 1/2 workers');
    expect(describeResetProgress({ site: 'a.test', replaced: 1, total: 1 })).toBe('a.test: replaced 1/1 worker');
    // SIGUSR2 printed this event as a second "replaced 2/2 workers"
    expect(
      describeResetProgress({ site: 'a.test', replaced: 2, total: 2, waiting: { pids: [41, 42], timeoutMs: 60_000 } }),
    ).toBe(
      'a.test: waiting for the request of old workers 41, 42 to end (up to reset_timeout 60s; then they are killed and the request fails)',
    );
  });
});

describe('admin socket: reset and tune against a real pool', () => {
  it('reset streams one progress line per replaced worker, then the final line; every pid is new', async () => {
    const { pool } = await startWithPool('echo.php', 3);
    const before = (await pool.workers()).map((w) => w.pid);
    const lines = await rawExchange(socketPath, '{"cmd":"reset"}\n');
    expect(lines).toEqual([
      { progress: { site: 'main', replaced: 1, total: 3 } },
      { progress: { site: 'main', replaced: 2, total: 3 } },
      { progress: { site: 'main', replaced: 3, total: 3 } },
      { ok: true, data: { replaced: 3, sites: ['main'] } },
    ]);
    const after = (await pool.workers()).map((w) => w.pid);
    expect(after).toHaveLength(3);
    expect(after.filter((pid) => before.includes(pid))).toEqual([]);
  });

  it('adminRequest hands progress to its callback in order', async () => {
    await startWithPool('echo.php', 2);
    const progress: unknown[] = [];
    const data = await adminRequest(socketPath, { cmd: 'reset', site: 'main' }, (p) => progress.push(p));
    expect(progress).toEqual([
      { site: 'main', replaced: 1, total: 2 },
      { site: 'main', replaced: 2, total: 2 },
    ]);
    expect(data).toEqual({ replaced: 2, sites: ['main'] });
  });

  it('tune measures the running pool under traffic and returns the describeTuning report', async () => {
    const pool = await startPool('sleep.php', 2);
    await start(createPoolHandlers(() => new Map([['main', pool]])));
    // Traffic that waits (usleep), as a worker waiting on a database does: I/O-bound.
    let running = true;
    const traffic = Promise.all(
      [0, 1].map(async () => {
        while (running) await pool.exec({ flags: 0, context: Buffer.from('{}'), body: Buffer.from('40') });
      }),
    );
    const progress: unknown[] = [];
    const report = await adminRequest(socketPath, { cmd: 'tune', windowMs: 800 }, (p) => progress.push(p)).finally(
      () => {
        running = false;
      },
    );
    await traffic;
    expect(progress).toEqual([{ site: 'main', windowMs: 800 }]);
    expect(report.site).toBe('main');
    expect(report.currentWorkers).toBe(2);
    expect(report.workers).toHaveLength(2);
    expect(report.workload.workers).toBe(2);
    expect(report.workload.busyMs).toBeGreaterThan(500);
    expect(report.workload.ioShare).not.toBeNull();
    expect(report.workload.ioShare!).toBeGreaterThan(0.5);
    expect(report.result.workload).toBe('io-bound');
    expect(report.input.worker.rssBytes).toBe(Math.max(...report.workers.map((w) => w.rssBytes)));
    const text = report.lines.join('\n');
    for (const heading of [
      'Measured 2 workers for 0.8s',
      'Inputs',
      'Rules of thumb',
      'Passenger',
      'gunicorn',
      'Recommendation',
      `num_workers: ${report.result.numWorkers}`,
      'Memory budget',
    ]) {
      expect(text).toContain(heading);
    }
  });

  it('tune on an idle pool still reports, with a note that I/O wait could not be measured', async () => {
    await startWithPool('echo.php', 1);
    const report = await adminRequest(socketPath, { cmd: 'tune', windowMs: 150 });
    expect(report.workload.ioShare).toBeNull();
    expect(report.result.workload).toBe('unmeasured');
    expect(report.lines.at(-1)).toMatch(/^Note: the workers were busy 0 ms in total, too little to measure I\/O wait/);
  });

  it('tune asks for a site when the server runs several', async () => {
    const a = await startPool('echo.php', 1);
    const b = await startPool('echo.php', 1);
    await start(
      createPoolHandlers(
        () =>
          new Map([
            ['shop', a],
            ['blog', b],
          ]),
      ),
    );
    await expect(adminRequest(socketPath, { cmd: 'tune', windowMs: 100 })).rejects.toMatchObject({
      code: 'WP_SERVER_UNKNOWN_SITE',
      message: 'this server runs 2 sites (shop, blog): name one, e.g. warmpool tune --site shop',
    });
  });

  it('closing the admin server aborts a running tune and ends its connection', async () => {
    const { server } = await startWithPool('echo.php', 1);
    const pending = adminRequest(socketPath, { cmd: 'tune', windowMs: 60_000 }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    await server.close();
    const error = await pending;
    expect(error).toBeInstanceOf(AdminUnreachableError);
    expect((error as Error).message).toMatch(/closed its admin socket .* before answering "tune"/);
  });
});

describe('admin socket: cache purge', () => {
  /** A site's micro-cache over a route that counts how often it runs (no PHP needed to fill a cache). */
  async function cachedSite() {
    const app = Fastify();
    const cache = registerMicroCache(app);
    let runs = 0;
    app.get('/*', async (request, reply) => {
      runs++;
      markBackendReply(request); // as the plugin marks PHP's answers: the micro-cache stores only those
      return reply.header('cache-control', 'public, max-age=60').send(`${request.url} #${runs}`);
    });
    await app.ready();
    return { app, cache, runs: () => runs };
  }

  it('drops the entries under a prefix on one site or all, via the CLI command', async () => {
    const a = await cachedSite();
    const b = await cachedSite();
    const pool = await startPool('echo.php', 1);
    try {
      for (const url of ['/blog/1', '/blog/2', '/shop/1']) {
        await a.app.inject(url);
        await b.app.inject(url);
      }
      await start(
        createPoolHandlers(
          () =>
            new Map([
              ['a.test', pool],
              ['b.test', pool],
              ['c.test', pool],
            ]),
          {
            caches: () =>
              new Map([
                ['a.test', a.cache],
                ['b.test', b.cache],
              ]),
          },
        ),
      );
      const out = new RecordingOutput();
      expect(await cacheCommand.run({ socket: socketPath, site: 'a.test', prefix: '/blog/' }, out)).toBe(0);
      expect(out.lines).toEqual(['success: purged 2 cache entries under /blog/ (a.test)']);
      expect((await a.app.inject('/blog/1')).headers['x-cache']).toBe('MISS');
      expect((await b.app.inject('/blog/1')).headers['x-cache']).toBe('HIT');

      expect(await adminRequest(socketPath, { cmd: 'cache-purge' })).toEqual({
        purged: 5,
        sites: ['a.test', 'b.test'],
      });
      expect((await b.app.inject('/shop/1')).headers['x-cache']).toBe('MISS');

      const noCache = new RecordingOutput();
      expect(await cacheCommand.run({ socket: socketPath, site: 'c.test' }, noCache)).toBe(EXIT_FAILED);
      expect(noCache.lines[0]).toMatch(/site c\.test has no micro-cache/);
      const unknown = adminRequest(socketPath, { cmd: 'cache-purge', site: 'nope' });
      await expect(unknown).rejects.toMatchObject({ code: 'WP_SERVER_UNKNOWN_SITE' });
      await expect(adminRequest(socketPath, { cmd: 'cache-purge', prefix: 'blog' } as never)).rejects.toMatchObject({
        code: 'WP_SERVER_ADMIN_BAD_REQUEST',
      });
    } finally {
      await a.app.close();
      await b.app.close();
    }
  });
});

describe('admin socket: a site passing PHP to php-fpm (fastcgi.pass)', () => {
  it('`warmpool workers` says when php-fpm serves fewer connections than max_connections', () => {
    const out = new RecordingOutput();
    const phpFpm = {
      address: 'unix:/run/php/php8.2-fpm.sock',
      maxConnections: 8,
      capacity: 5,
      busy: 5,
      idle: 0,
      connecting: 0,
      queued: 3,
      unreachable: null,
    };
    workersCommand.printWorkers([{ site: 'wp', workers: [], phpFpm }], out);
    expect(out.lines).toEqual([
      "info: site wp: PHP runs in php-fpm at unix:/run/php/php8.2-fpm.sock (its processes, not warmpool's); " +
        'connections to it: 5 busy, 0 idle, at most 5 for now (php-fpm had no more children free; max_connections is 8); ' +
        '3 requests waiting for one',
    ]);
  });

  it("shows warmpool's connections to php-fpm, refuses reset and tune with what to do, and knows the site", async () => {
    const fpm = await startPhpFpm({ maxChildren: 2 });
    // kept however long the test takes: its idle connection is what `workers` shows
    const client = createFastCgiClientPool({ address: fpm.pass, maxConnections: 2, maxConnectionAgeMs: 0 });
    const pool = await startPool('echo.php', 1);
    try {
      // one real request, so that one kept-alive connection sits idle
      const script = fixture('echo.php');
      const reply = await client.request({
        params: encodeFastCgiParams({
          method: 'GET',
          scheme: 'http',
          requestUri: '/',
          protocol: 'HTTP/1.1',
          headers: { host: 'fpm.test' },
          clientAddress: '127.0.0.1',
          clientPort: 1,
          serverAddress: '127.0.0.1',
          serverPort: 80,
          documentRoot: fileURLToPath(new URL('../../../test/fixtures/php', import.meta.url)),
          scriptName: '/echo.php',
          scriptFilename: script,
        }),
        bufferBytes: 1 << 20,
      });
      await reply.done;
      const noCache = { purge: () => 0 };
      await start(
        createPoolHandlers(() => new Map([['main', pool]]), {
          passes: () => new Map([['fpm', client]]),
          caches: () => new Map([['main', noCache]]),
        }),
      );

      const listed = await adminRequest(socketPath, { cmd: 'workers' });
      expect(listed.map((s) => s.site)).toEqual(['main', 'fpm']);
      expect(listed[1]).toEqual({
        site: 'fpm',
        workers: [],
        phpFpm: {
          address: fpm.pass,
          maxConnections: 2,
          capacity: 2,
          busy: 0,
          idle: 1,
          connecting: 0,
          queued: 0,
          unreachable: null,
        },
      });
      const out = new RecordingOutput();
      expect(await workersCommand.run({ socket: socketPath, site: 'fpm' }, out)).toBe(0);
      expect(out.lines).toEqual([
        `info: site fpm: PHP runs in php-fpm at ${fpm.pass} (its processes, not warmpool's); connections to it: 0 busy, 1 idle, at most 2`,
      ]);

      for (const cmd of ['reset', 'tune'] as const) {
        await expect(adminRequest(socketPath, { cmd, site: 'fpm' })).rejects.toMatchObject({
          code: 'WP_SERVER_PASS_SITE',
          message: expect.stringMatching(
            new RegExp(`php-fpm at ${fpm.pass}.*nothing to ${cmd}; restart or reload php-fpm`),
          ),
        });
      }
      // every site asked: the php-fpm site is said to be left alone
      const resetOut = new RecordingOutput();
      expect(await resetCommand.run({ socket: socketPath }, resetOut)).toBe(0);
      expect(resetOut.lines.at(-1)).toBe(
        'info: not reset: fpm (PHP runs in php-fpm there: reload php-fpm itself, e.g. systemctl reload php8.2-fpm)',
      );
      // the site exists for every command: a cache purge names its missing cache, an unknown site lists it
      await expect(adminRequest(socketPath, { cmd: 'cache-purge', site: 'fpm' })).rejects.toMatchObject({
        code: 'WP_SERVER_NO_CACHE',
      });
      await expect(adminRequest(socketPath, { cmd: 'workers', site: 'nope' })).rejects.toMatchObject({
        code: 'WP_SERVER_UNKNOWN_SITE',
        message: 'no site named "nope"; this server runs: main, fpm',
      });
      expect(await adminRequest(socketPath, { cmd: 'ping' })).toMatchObject({ sites: ['main', 'fpm'] });
    } finally {
      await client.close();
      await fpm.stop();
    }
  });
});

describe('admin client: errors that say what to do', () => {
  it('no socket: asks whether warmpool runs and names the path and the config key', async () => {
    const error = await adminRequest(socketPath, { cmd: 'workers' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AdminUnreachableError);
    expect((error as Error).message).toBe(
      `is warmpool running? no admin socket at ${socketPath} (a server makes it at its config's admin.socket): start warmpool, or pass -c FILE or --socket PATH to reach another server`,
    );
    expect(exitCodeOf(error)).toBe(EXIT_UNREACHABLE);
  });

  it('stale socket: says nothing answers there', async () => {
    await staleSocket(socketPath);
    await expect(adminRequest(socketPath, { cmd: 'workers' })).rejects.toThrow(
      `warmpool is not running: nothing answers on ${socketPath}`,
    );
  });

  it('a path that is not a socket: says so', async () => {
    await writeFile(socketPath, '');
    await expect(adminRequest(socketPath, { cmd: 'workers' })).rejects.toThrow(
      `${socketPath} is not a socket (a file): check admin.socket in warmpool.yaml, or the --socket you passed`,
    );
  });

  it('timeoutMs bounds the wait for the final line', async () => {
    await startWithPool('echo.php', 1);
    await expect(
      adminRequest(socketPath, { cmd: 'tune', windowMs: 5000 }, undefined, { timeoutMs: 150 }),
    ).rejects.toThrow(/did not answer "tune" within 150 ms/);
  });

  it('parseAdminRequest ignores unknown keys so older servers answer newer clients', () => {
    expect(parseAdminRequest('{"cmd":"workers","site":"a","color":true}')).toEqual({ cmd: 'workers', site: 'a' });
  });
});
