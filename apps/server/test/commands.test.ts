import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPool, SILENT_LOGGER, type Pool } from '@warmpool/pool';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, type Output } from '../src/admin/client.js';
import { createPoolHandlers, startAdminServer, type AdminServer } from '../src/admin/server.js';
import * as reset from '../src/commands/reset.js';
import * as tune from '../src/commands/tune.js';
import { adviceOf } from '../src/commands/tune.js';
import * as workers from '../src/commands/workers.js';
import { formatAge } from '../src/commands/workers.js';
import { until } from '../../../test/helpers/until.js';

function fixture(name: string): string {
  return fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));
}

/** An Output that records what a command printed, in order. */
class RecordingOutput implements Output {
  readonly lines: string[] = [];
  readonly tables: Array<{ rows: string[][]; columns: string[] }> = [];
  info(message: string) {
    this.lines.push(`info: ${message}`);
  }
  success(message: string) {
    this.lines.push(`success: ${message}`);
  }
  error(message: string) {
    this.lines.push(`error: ${message}`);
  }
  table(rows: readonly (readonly string[])[], columns: readonly string[]) {
    this.tables.push({ rows: rows.map((r) => [...r]), columns: [...columns] });
    this.lines.push(`table: ${rows.length} rows`);
  }
}

/** A stdout stand-in that records writes; isTTY as given. */
function recordingStdout(isTTY: boolean) {
  const writes: string[] = [];
  return { isTTY, writes, write: (text: string) => writes.push(text) };
}

let dir: string;
let socket: string;
const pools: Pool[] = [];
const servers: AdminServer[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-cli-'));
  socket = join(dir, 'admin.sock');
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(pools.splice(0).map((p) => p.close()));
  await rm(dir, { recursive: true, force: true });
});

async function serve(
  sites: Record<
    string,
    ({ fixture: string; workers: number } | { fixture: string; min: number; max: number }) & {
      reset_timeout?: string;
      destroy_timeout?: string;
    }
  >,
): Promise<Map<string, Pool>> {
  const map = new Map<string, Pool>();
  for (const [name, spec] of Object.entries(sites)) {
    const pool = createPool({
      command: ['php', fixture(spec.fixture)],
      ...('workers' in spec ? { num_workers: spec.workers } : { min_workers: spec.min, max_workers: spec.max }),
      ...(spec.reset_timeout === undefined ? {} : { reset_timeout: spec.reset_timeout }),
      ...(spec.destroy_timeout === undefined ? {} : { destroy_timeout: spec.destroy_timeout }),
      logger: SILENT_LOGGER,
    });
    pools.push(pool);
    await pool.start();
    map.set(name, pool);
  }
  servers.push(
    await startAdminServer(
      socket,
      createPoolHandlers(() => map),
      SILENT_LOGGER,
    ),
  );
  return map;
}

describe('warmpool workers', () => {
  it('prints a table: pid, state, jobs, RSS (MiB), age, idle, busy', async () => {
    const sites = await serve({ main: { fixture: 'echo.php', workers: 2 } });
    const pool = sites.get('main')!;
    await pool.exec({ flags: 0, context: Buffer.from('{}'), body: null });
    const out = new RecordingOutput();
    expect(await workers.run({ socket }, out)).toBe(EXIT_OK);
    expect(out.tables).toHaveLength(1);
    const { columns, rows } = out.tables[0]!;
    expect(columns).toEqual(['pid', 'state', 'jobs', 'RSS (MiB)', 'age', 'idle', 'busy']);
    const pids = (await pool.workers()).map((w) => String(w.pid)).sort();
    expect(rows.map((r) => r[0]).sort()).toEqual(pids);
    for (const row of rows) {
      expect(row[1]).toBe('ready');
      expect(Number(row[3])).toBeGreaterThan(1);
      expect(row[4]).toMatch(/^\d+s$/);
    }
    // one worker served one request (idle is a duration), the other none yet ("-")
    expect(rows.map((r) => r[2]).sort()).toEqual(['0', '1']);
    expect(rows.map((r) => r[5] === '-').sort()).toEqual([false, true]);
    expect(rows.map((r) => r[6])).toEqual(['-', '-']);
  });

  it('shows how long a busy worker has run its request, and the request (method and path)', async () => {
    const sites = await serve({ main: { fixture: 'hang.php', workers: 1, destroy_timeout: '100ms' } });
    const pool = sites.get('main')!;
    // one request served first: the worker has an idle time, which its working row must not show
    await pool.exec({ flags: 0, context: Buffer.from('{}'), body: Buffer.from('ok') });
    void pool
      .exec({ flags: 0, context: Buffer.from('{}'), body: Buffer.from('hang') }, { label: 'GET /hang' })
      .catch(() => {});
    await until(async () => (await pool.workers())[0]!.state === 'working', 'the worker to take the request');
    const out = new RecordingOutput();
    expect(await workers.run({ socket }, out)).toBe(EXIT_OK);
    const { columns, rows } = out.tables[0]!;
    expect(columns).toEqual(['pid', 'state', 'jobs', 'RSS (MiB)', 'age', 'idle', 'busy', 'request']);
    expect(rows[0]![1]).toBe('working');
    expect(rows[0]![5]).toBe('-');
    expect(rows[0]![6]).toMatch(/^\d+s$/);
    expect(rows[0]![7]).toBe('GET /hang');
  });

  it('`warmpool workers` names the site of each worker when a php-fpm site is listed beside it', () => {
    const out = new RecordingOutput();
    const phpFpm = {
      address: 'unix:/run/php/php8.2-fpm.sock',
      maxConnections: 2,
      capacity: 2,
      busy: 0,
      idle: 0,
      connecting: 0,
      queued: 0,
      unreachable: null,
    };
    const worker = {
      pid: 4242,
      state: 'ready',
      jobs: 19,
      rssBytes: 33 << 20,
      ageMs: 75_000,
      idleMs: 4_000,
      markedFor: null,
      busyMs: 0,
      requestMs: null,
      request: null,
    };
    workers.printWorkers(
      [
        { site: 'fpm.test', workers: [], phpFpm },
        { site: 'a.test', workers: [worker] as never },
      ],
      out,
    );
    // the table came right after the php-fpm line with no site column: the worker read as fpm.test's
    expect(out.tables[0]!.columns[0]).toBe('site');
    expect(out.tables[0]!.rows[0]![0]).toBe('a.test');
  });

  it('adds a site column when the server runs several sites, and filters with --site', async () => {
    await serve({ shop: { fixture: 'echo.php', workers: 1 }, blog: { fixture: 'echo.php', workers: 1 } });
    const all = new RecordingOutput();
    await workers.run({ socket }, all);
    expect(all.tables[0]!.columns[0]).toBe('site');
    expect(all.tables[0]!.rows.map((r) => r[0])).toEqual(['shop', 'blog']);
    const one = new RecordingOutput();
    await workers.run({ socket, site: 'blog' }, one);
    expect(one.tables[0]!.columns[0]).toBe('pid');
    expect(one.tables[0]!.rows).toHaveLength(1);
  });

  it('--json prints the server data as JSON on stdout', async () => {
    await serve({ main: { fixture: 'echo.php', workers: 1 } });
    const stdout = recordingStdout(false);
    const out = new RecordingOutput();
    expect(await workers.run({ socket, json: true }, out, { stdout })).toBe(EXIT_OK);
    const data = JSON.parse(stdout.writes.join(''));
    expect(data[0].site).toBe('main');
    expect(data[0].workers[0]).toHaveProperty('rssBytes');
    expect(out.lines).toEqual([]);
  });

  it('-i refreshes until stopped, clearing the screen with ANSI only on a terminal', async () => {
    await serve({ main: { fixture: 'echo.php', workers: 1 } });
    for (const isTTY of [true, false]) {
      const stdout = recordingStdout(isTTY);
      const out = new RecordingOutput();
      const stop = new AbortController();
      const running = workers.run({ socket, interactive: true }, out, { stdout, signal: stop.signal, intervalMs: 50 });
      while (out.tables.length < 3) await new Promise((r) => setTimeout(r, 20));
      stop.abort();
      expect(await running).toBe(EXIT_OK);
      const clears = stdout.writes.filter((w) => w === '\x1b[H\x1b[2J').length;
      if (isTTY) expect(clears).toBeGreaterThanOrEqual(3);
      else expect(stdout.writes.join('')).not.toContain('\x1b[');
      expect(out.lines.filter((l) => l.startsWith('info: warmpool workers at')).length).toBeGreaterThanOrEqual(3);
    }
  });

  it('says where it looked when no server runs, with exit code 3', async () => {
    const out = new RecordingOutput();
    expect(await workers.run({ socket }, out)).toBe(EXIT_UNREACHABLE);
    expect(out.lines).toEqual([
      `error: is warmpool running? no admin socket at ${socket} (a server makes it at its config's admin.socket): start warmpool, or pass -c FILE or --socket PATH to reach another server`,
    ]);
  });

  it('formats ages with two units at most', () => {
    expect([0, 42_000, 185_000, 7_380_000, 370_800_000].map(formatAge)).toEqual([
      '0s',
      '42s',
      '3m05s',
      '2h03m',
      '4d07h',
    ]);
  });
});

describe('warmpool reset', () => {
  it('prints one progress line per replaced worker, then success', async () => {
    const sites = await serve({ main: { fixture: 'echo.php', workers: 2 } });
    const before = (await sites.get('main')!.workers()).map((w) => w.pid);
    const out = new RecordingOutput();
    expect(await reset.run({ socket }, out)).toBe(EXIT_OK);
    expect(out.lines).toEqual([
      'info: rolling restart of every site…',
      'info: main: replaced 1/2 workers',
      'info: main: replaced 2/2 workers',
      'success: reset done: 2 workers replaced (main)',
    ]);
    const after = (await sites.get('main')!.workers()).map((w) => w.pid);
    expect(after.some((pid) => before.includes(pid))).toBe(false);
  });

  it('an unknown site fails with exit code 1 and the server message', async () => {
    await serve({ main: { fixture: 'echo.php', workers: 1 } });
    const out = new RecordingOutput();
    expect(await reset.run({ socket, site: 'nope' }, out)).toBe(EXIT_FAILED);
    expect(out.lines.at(-1)).toBe('error: no site named "nope"; this server runs: main');
  });
});

describe('warmpool reset waiting for a running request', () => {
  it('prints which old worker it waits for, up to reset_timeout, before it is done', async () => {
    const pools = await serve({ main: { fixture: 'hang.php', workers: 1, reset_timeout: '300ms' } });
    const pool = pools.get('main')!;
    const [old] = (await pool.workers()).map((w) => w.pid);
    pool.exec({ flags: 0, context: Buffer.from('{}'), body: Buffer.from('hang') }).catch(() => {});
    await expect.poll(() => pool.stats().workers.working).toBe(1);
    const out = new RecordingOutput();
    expect(await reset.run({ socket }, out)).toBe(EXIT_OK);
    expect(out.lines).toEqual([
      'info: rolling restart of every site…',
      'info: main: replaced 1/1 worker',
      `info: main: waiting for the request of old worker ${old} to end (up to reset_timeout 0.3s; then it is killed and the request fails)`,
      'success: reset done: 1 worker replaced (main)',
    ]);
  });
});

describe('warmpool tune', () => {
  it('prints the measuring line and the report lines; with no traffic to measure, a warning, not a ✓', async () => {
    await serve({ main: { fixture: 'echo.php', workers: 1 } });
    const out = new RecordingOutput();
    expect(await tune.run({ socket, windowMs: 200 }, out)).toBe(EXIT_OK);
    expect(out.lines[0]).toBe('info: measuring site main for 0.2s: keep real traffic flowing…');
    const text = out.lines.join('\n');
    for (const part of ['info: Inputs', 'info: Rules of thumb', 'info: Recommendation', 'info: Memory budget'])
      expect(text).toContain(part);
    // nothing ran in the window: the figure is the CPU count's, and it is not passed off as a finding
    expect(out.lines.at(-1)).toMatch(
      /^info: num_workers: \d+ from the CPU count alone \(the site runs 1\): nothing was measured; run warmpool tune again while the site has traffic/,
    );
  });

  it('a dynamic pool (min_workers/max_workers) is advised its max_workers, never num_workers beside them', async () => {
    await serve({ main: { fixture: 'echo.php', min: 0, max: 4 } });
    const out = new RecordingOutput();
    expect(await tune.run({ socket, windowMs: 150 }, out)).toBe(EXIT_OK);
    const text = out.lines.join('\n');
    expect(text).not.toContain('num_workers');
    expect(text).toContain('info:   max_workers: ');
    expect(out.lines.at(-1)).toMatch(
      /^info: max_workers: \d+ from the CPU count alone \(the site's dynamic pool runs 1, min_workers 0, max_workers 4\): nothing was measured/,
    );
  });

  it('measured: the key to set and to restart, max_workers (and a min_workers above it) for a dynamic pool', () => {
    const result = { numWorkers: 5, workload: 'cpu' } as never;
    expect(adviceOf({ result, currentWorkers: 2 }).text).toBe(
      'num_workers: 5 (the site runs 2 now); set http.pool.num_workers in warmpool.yaml and restart warmpool',
    );
    expect(adviceOf({ result, currentWorkers: 1, dynamic: { minWorkers: 0, maxWorkers: 4 } })).toEqual({
      measured: true,
      text: "max_workers: 5 (the site's dynamic pool runs 1, min_workers 0, max_workers 4); set http.pool.max_workers in warmpool.yaml and restart warmpool",
    });
    expect(adviceOf({ result, currentWorkers: 6, dynamic: { minWorkers: 6, maxWorkers: 8 } }).text).toBe(
      "max_workers: 5 (the site's dynamic pool runs 6, min_workers 6, max_workers 8); set http.pool.max_workers in warmpool.yaml and min_workers to 5 or less and restart warmpool",
    );
    expect(adviceOf({ result, currentWorkers: 2, dynamic: { minWorkers: 1, maxWorkers: 5 } }).text).toBe(
      "max_workers: 5 — what the site's dynamic pool has now (the site's dynamic pool runs 2, min_workers 1, max_workers 5)",
    );
  });

  it('--json prints the whole report', async () => {
    await serve({ main: { fixture: 'echo.php', workers: 1 } });
    const stdout = recordingStdout(false);
    expect(await tune.run({ socket, windowMs: 150, json: true }, new RecordingOutput(), { stdout })).toBe(EXIT_OK);
    const report = JSON.parse(stdout.writes.join(''));
    expect(report).toMatchObject({ site: 'main', windowMs: 150, currentWorkers: 1 });
    expect(report.result.numWorkers).toBeGreaterThanOrEqual(1);
  });
});
