import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { linkAsRr } from '../helpers/rr-link.js';
import { FIXTURES, overrides } from '../helpers/warmpool-server.js';

// Laravel Octane switching to warmpool: an app folder with the warmpool binary linked as `rr`, and
// test/fixtures/octane/octane.php playing `php artisan octane:start --server=roadrunner` with
// Octane's own argument list, environment and log reading (json_decode of every stdout line and
// the same key accesses), `rr reset -s` as Octane's reload, SIGTERM as its stop. The app's worker
// is a PSR7Worker shaped like Octane's vendor/bin/roadrunner-worker.
type OctaneEvent = { event: string } & Record<string, unknown>;

class Octane {
  readonly child: ChildProcess;
  readonly events: OctaneEvent[] = [];
  readonly stderr: string[] = [];
  readonly #waiters: Array<{ match: (e: OctaneEvent) => boolean; resolve: (e: OctaneEvent) => void }> = [];
  readonly exited: Promise<number | null>;

  constructor(base: string, port: number, rpcPort: number, host = '127.0.0.1') {
    this.child = spawn('php', [join(FIXTURES, 'octane', 'octane.php'), base, host, String(port), String(rpcPort)], {
      cwd: base,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const event = JSON.parse(line) as OctaneEvent;
      this.events.push(event);
      for (const waiter of [...this.#waiters])
        if (waiter.match(event)) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.resolve(event);
        }
    });
    createInterface({ input: this.child.stderr! }).on('line', (line) => this.stderr.push(line));
    this.exited = once(this.child, 'exit').then(([code]) => code as number | null);
  }

  /** The next event (or one already seen after `from`) matching; fails when the fixture exits first. */
  next(match: (e: OctaneEvent) => boolean, from = 0): Promise<OctaneEvent> {
    const seen = this.events.slice(from).find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return Promise.race([
      new Promise<OctaneEvent>((resolve) => this.#waiters.push({ match, resolve })),
      this.exited.then((code) => {
        throw new Error(
          `octane.php exited (${code}) first:\n${this.stderr.join('\n')}\n${JSON.stringify(this.events)}`,
        );
      }),
    ]);
  }

  send(command: 'reload' | 'stop'): void {
    this.child.stdin!.write(`${command}\n`);
  }
}

let base: string;
let octane: Octane;
let port: number;
const agent = new Agent({ connections: 8 });

/** GET on the app; resolves with status and body (never throws for a status). */
async function get(path: string): Promise<{ status: number; body: string }> {
  const res = await request(`http://127.0.0.1:${port}${path}`, { dispatcher: agent });
  return { status: res.statusCode, body: await res.body.text() };
}

/** Until the server answers: Octane itself does not wait, its user's browser retries. */
async function untilServing(): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await get('/');
      return;
    } catch (error) {
      if (octane.child.exitCode !== null)
        throw new Error(`octane.php exited (${octane.child.exitCode}):\n${octane.stderr.join('\n')}`);
      if (attempt > 400) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'wp-octane-app-'));
  await mkdir(join(base, 'public'));
  await mkdir(join(base, 'vendor', 'bin'), { recursive: true });
  await writeFile(join(base, 'public', 'robots.txt'), 'User-agent: *\n');
  // `php artisan storage:link`: public/storage is a link out of public/ to storage/app/public,
  // which the app's .rr.yaml names for links to lead into (Octane only touches the file)
  await mkdir(join(base, 'storage', 'app', 'public'), { recursive: true });
  await writeFile(join(base, 'storage', 'app', 'public', 'avatar.txt'), 'an uploaded avatar\n');
  await writeFile(join(base, 'storage', 'app', 'invoice.txt'), 'a private invoice\n');
  await symlink(join(base, 'storage', 'app', 'public'), join(base, 'public', 'storage'));
  // a link to a folder the .rr.yaml does not name
  await symlink(join(base, 'storage', 'app'), join(base, 'public', 'app-files'));
  await writeFile(join(base, '.rr.yaml'), 'http:\n  static:\n    link_targets: [storage/app/public]\n');
  // vendor/bin/roadrunner-worker, as Octane ships it: a PSR7Worker loop
  await writeFile(
    join(base, 'vendor', 'bin', 'roadrunner-worker'),
    `<?php\nrequire ${JSON.stringify(join(FIXTURES, 'php', 'octane-psr7-worker.php'))};\n`,
  );
  await linkAsRr(base);
  port = await freePort();
  octane = new Octane(base, port, await freePort());
  await octane.next((e) => e.event === 'started');
  await untilServing();
}, 30_000);

afterAll(async () => {
  if (octane !== undefined && octane.child.exitCode === null) {
    octane.send('stop');
    await octane.exited;
  }
  // octane.php ended early (a failed test): its server would outlive it
  const pid = octane?.events.find((e) => e.event === 'started')?.pid as number | undefined;
  if (pid !== undefined && !octane.events.some((e) => e.event === 'stopped')) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  await agent.close();
  await rm(base, { recursive: true, force: true });
});

describe('Laravel Octane runs warmpool as rr', () => {
  it("started the binary with Octane's exact arguments; the worker got Octane's environment", async () => {
    const started = octane.events.find((e) => e.event === 'started')!;
    expect((started.command as string[]).slice(1)).toEqual([
      '-c',
      join(base, '.rr.yaml'),
      ...overrides(
        'version=3',
        `http.address=127.0.0.1:${port}`,
        expect.stringMatching(
          new RegExp(`^server\\.command=/.*php[^,]*,${join(base, 'vendor/bin/roadrunner-worker')}$`),
        ),
        'http.pool.num_workers=0',
        'http.pool.max_jobs=500',
        expect.stringMatching(/^rpc\.listen=tcp:\/\/127\.0\.0\.1:\d+$/),
        'http.pool.supervisor.exec_ttl=30s',
        `http.static.dir=${join(base, 'public')}`,
        'http.middleware=static',
        'logs.mode=production',
        'logs.level=debug',
        'logs.output=stdout',
        'logs.encoding=json',
      ),
      'serve',
    ]);
    const page = JSON.parse((await get('/dashboard?tab=1')).body) as Record<string, string>;
    expect(page).toMatchObject({
      uri: expect.stringContaining('/dashboard?tab=1'),
      APP_BASE_PATH: base,
      LARAVEL_OCTANE: '1',
    });
    expect(await get('/robots.txt')).toEqual({ status: 200, body: 'User-agent: *\n' });
  });

  it("serves Laravel's storage link (public/storage) through the link_targets of the app's .rr.yaml, kept over Octane's -o flags", async () => {
    expect(await get('/storage/avatar.txt')).toEqual({ status: 200, body: 'an uploaded avatar\n' });
    // only the folder named: a link into the rest of storage/ is not followed (the worker answers)
    expect((await get('/app-files/invoice.txt')).body).not.toContain('a private invoice');
  });

  it('shows each request as Octane does (from the "http log" line), and the worker\'s exception stream', async () => {
    const from = octane.events.length;
    expect((await get('/orders/42')).status).toBe(200);
    const line = await octane.next((e) => e.event === 'request' && e.url === '/orders/42', from);
    expect(line).toMatchObject({ method: 'GET', statusCode: 200, duration: expect.any(Number) });
    expect((await get('/broken?throw=1')).status).toBe(500);
    const stream = await octane.next((e) => e.event === 'stream', from);
    expect(stream.stream).toMatchObject({
      type: 'throwable',
      class: 'RuntimeException',
      message: 'boom from the worker',
    });
    // the worker's plain stderr lines are printed raw (logger "server")
    expect(octane.events).toContainEqual(
      expect.objectContaining({ event: 'raw', text: expect.stringMatching(/^octane worker \d+ booted$/) }),
    );
  });

  it('reloads with `rr reset -s` while requests run: no request fails, every worker is replaced, nothing on stderr', async () => {
    const pidsBefore = new Set<number>();
    for (let i = 0; i < 4; i++) pidsBefore.add((JSON.parse((await get(`/warm?i=${i}`)).body) as { pid: number }).pid);
    let reloading = true;
    const statuses: number[] = [];
    const pidsAfter = new Set<number>();
    // bounded load: four clients, each request held 20 ms by the worker, until the reload is done and
    // three more each
    const clients = Array.from({ length: 4 }, async (_, c) => {
      let sentSince = 0;
      for (let n = 0; n < 500 && (reloading || sentSince < 3); n++) {
        // a request sent after the reload answered can only meet new workers
        const sentAfter = !reloading;
        if (sentAfter) sentSince++;
        const { status, body } = await get(`/load?c=${c}&n=${n}&sleep=20`);
        statuses.push(status);
        if (sentAfter && status === 200) pidsAfter.add((JSON.parse(body) as { pid: number }).pid);
      }
    });
    const from = octane.events.length;
    octane.send('reload');
    const reloaded = await octane.next((e) => e.event === 'reloaded', from);
    reloading = false;
    await Promise.all(clients);
    expect(reloaded).toEqual({ event: 'reloaded', exitCode: 0, stdout: '', failure: null });
    expect(statuses.length).toBeGreaterThanOrEqual(12);
    expect(pidsAfter.size).toBeGreaterThan(0);
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    expect([...pidsAfter].filter((pid) => pidsBefore.has(pid))).toEqual([]);
  });

  it("Sail's `octane:start --host=0.0.0.0`: the warning about the RPC address is a log record, not a red error in Octane's console", async () => {
    const sailPort = await freePort();
    const sail = new Octane(base, sailPort, await freePort(), '0.0.0.0');
    try {
      await sail.next((e) => e.event === 'started');
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await request(`http://127.0.0.1:${sailPort}/robots.txt`, { dispatcher: agent });
          await res.body.text();
          break;
        } catch (error) {
          if (sail.child.exitCode !== null || attempt > 400) throw error;
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      }
      sail.send('stop');
      await sail.next((e) => e.event === 'stopped');
      expect(await sail.exited).toBe(0);
      // Octane shows every stderr line without DEBUG, INFO or WARN as an error; RoadRunner's own
      // warnings are zap records on its log output
      expect(sail.events.filter((e) => e.event === 'error')).toEqual([]);
    } finally {
      if (sail.child.exitCode === null) sail.child.kill('SIGKILL');
    }
  });

  it("stops on SIGTERM; every stdout line was readable by Octane's handling, and stderr had no error line", async () => {
    octane.send('stop');
    const stopped = await octane.next((e) => e.event === 'stopped');
    expect(await octane.exited).toBe(0);
    expect(stopped.exitCode).toBe(0);
    expect(stopped.lines as number).toBeGreaterThan(10);
    // a warning in the PHP handling (an undefined msg, logger or level) would have ended octane.php with an ErrorException
    expect(octane.stderr).toEqual([]);
    expect(octane.events.filter((e) => e.event === 'error' || e.event === 'failed' || e.event === 'info')).toEqual([]);
  });
});
