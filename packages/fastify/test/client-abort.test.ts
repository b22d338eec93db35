// fastcgi.ignore_client_abort over real sockets, against one php-cgi process: a request whose
// client hangs up while it waits for PHP leaves without running, except a script the list names
// (WordPress's wp-cron.php by default), which its site asks of itself and hangs up on after 10 ms.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { type FastCgiOptions, resolveClassicOptions } from '../src/classic.js';
import { warmpool } from '../src/index.js';

const ROOT = fileURLToPath(new URL('../../../test/fixtures/sites/classic-app', import.meta.url));
const flags = mkdtempSync(join(tmpdir(), 'warmpool-client-abort-'));
let count = 0;
const unique = () => `${process.pid}-${Date.now()}-${++count}`;
/** wp-cron.php's mark: the file it leaves in the temp folder once it ran */
const markOf = (name: string) => join(tmpdir(), `warmpool-cron-${name}`);
const marks: string[] = [];
afterAll(() => {
  rmSync(flags, { recursive: true, force: true });
  for (const mark of marks) rmSync(mark, { force: true });
});

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

/** Connections the server has seen close: a hang-up is only known to it once counted here. */
const closedConnections = new WeakMap<FastifyInstance, { count: number }>();

async function listen(fastcgi: Partial<FastCgiOptions> = {}): Promise<{ app: FastifyInstance; port: number }> {
  const app = Fastify();
  apps.push(app);
  const closed = { count: 0 };
  closedConnections.set(app, closed);
  app.server.on('connection', (socket) => socket.once('close', () => closed.count++));
  // pipelining off: a request waits in the pool's queue, never behind the running script
  await app.register(warmpool, { fastcgi: { root: ROOT, pipelining: false, ...fastcgi }, pool: { num_workers: 1 } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, port: (app.server.address() as { port: number }).port };
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

/**
 * Holds the one php-cgi process, queues `path` from a client that then hangs up, and releases the
 * process; resolves once the process is free again with the pool's request count.
 */
async function askAndHangUp(app: FastifyInstance, port: number, path: string): Promise<number> {
  const flag = join(flags, unique());
  const held = request(`http://127.0.0.1:${port}/wait.php?flag=${flag}`);
  await eventually(() => app.warmpool.stats().workers.working === 1, 'wait.php to hold the process');
  const client = connect(port, '127.0.0.1', () =>
    client.write(`POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n`),
  );
  await eventually(() => app.warmpool.stats().queued === 1, 'the request to be queued');
  const closed = closedConnections.get(app)!;
  const before = closed.count;
  client.destroy();
  // the server has seen the hang-up (the response's 'close' follows on the same turn) before the
  // process is released: otherwise the request could be handed to it first, on a busy machine
  await eventually(() => closed.count > before, 'the server to see the hang-up');
  await new Promise((resolve) => setImmediate(resolve));
  writeFileSync(flag, '');
  expect(await (await held).body.text()).toBe('released');
  await eventually(
    () => app.warmpool.stats().workers.ready === 1 && app.warmpool.stats().queued === 0,
    'the process to be free and the queue empty',
  );
  return app.warmpool.stats().requests;
}

describe('fastcgi.ignore_client_abort (one php-cgi process)', () => {
  it('runs wp-cron.php (the default) to its end though its client hung up while it was queued', async () => {
    const { app, port } = await listen();
    const mark = unique();
    marks.push(markOf(mark));
    const requests = await askAndHangUp(app, port, `/wp-cron.php?doing_wp_cron=1&mark=${mark}`);
    // the wait, then wp-cron.php: it ran once its turn came
    await eventually(() => existsSync(markOf(mark)), "wp-cron.php's mark");
    expect(requests).toBe(2);
  });

  it('drops any other script whose client hung up while it was queued, and wp-cron.php too with []', async () => {
    const cases: Array<[Partial<FastCgiOptions>, string]> = [
      [{}, '/post/gone'],
      [{ ignore_client_abort: [] }, '/wp-cron.php?mark='],
    ];
    for (const [fastcgi, path] of cases) {
      const { app, port } = await listen(fastcgi);
      const mark = unique();
      marks.push(markOf(mark));
      const requests = await askAndHangUp(app, port, `${path}${path.endsWith('=') ? mark : ''}`);
      expect(requests, path).toBe(1);
      expect(existsSync(markOf(mark))).toBe(false);
      await app.close();
    }
  });

  it('matches script paths, "*" for any characters (WordPress in a folder)', () => {
    const pattern = resolveClassicOptions({ root: ROOT, ignore_client_abort: ['*/wp-cron.php', '/jobs/run.php'] }, {})
      .ignoreClientAbort!;
    expect(['/wp-cron.php', '/blog/wp-cron.php', '/jobs/run.php'].map((p) => pattern.test(p))).toEqual([
      true,
      true,
      true,
    ]);
    expect(['/wp-cron.phpx', '/xwp-cron.php', '/jobs/run.php/x', '/jobs/runXphp'].map((p) => pattern.test(p))).toEqual([
      false,
      false,
      false,
      false,
    ]);
    expect(resolveClassicOptions({ root: ROOT }, {}).ignoreClientAbort!.test('/wp-cron.php')).toBe(true);
    expect(resolveClassicOptions({ root: ROOT, ignore_client_abort: [] }, {}).ignoreClientAbort).toBeNull();
  });

  it('refuses nginx\'s "on" and entries that are no script path, naming the key', () => {
    expect(() => resolveClassicOptions({ root: ROOT, ignore_client_abort: true as never }, {})).toThrow(
      /fastcgi\.ignore_client_abort.*is a list of the scripts.*\["\*\/wp-cron\.php"\]/,
    );
    for (const bad of ['wp-cron.php', '/cron.php?x=1', '/a b.php']) {
      expect(() => resolveClassicOptions({ root: ROOT, ignore_client_abort: [bad] }, {})).toThrow(
        /fastcgi\.ignore_client_abort.*script paths from the root/,
      );
    }
  });
});
