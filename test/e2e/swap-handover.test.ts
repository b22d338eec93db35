import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAlive } from '../helpers/php.js';
import { load, makeBinary, startSupervisor, swapCli, type Supervisor } from './swap-harness.js';

// warmpool-swap with the real server as its child: a swap v1 → v2 under load loses nothing, a long
// request on blue finishes during the hand-over, rollback returns to v1, status tells the story.
let dir: string;
let v1: string;
let v2: string;
let supervisor: Supervisor | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-swap-'));
  v1 = await makeBinary(dir, 'v1', { APP_VERSION: 'v1' });
  v2 = await makeBinary(dir, 'v2', { APP_VERSION: 'v2' });
  supervisor = await startSupervisor(dir, v1);
});
afterAll(async () => {
  await supervisor?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('warmpool-swap', () => {
  it('swaps v1 → v2 under load (32 connections) with every request answered 200, and a long request on blue finishes', async () => {
    const s = supervisor!;
    const first = await request(`http://127.0.0.1:${s.httpPort}/`);
    expect(await first.body.text()).toBe('v1');
    const bluePid = s.state().active!.pid;

    const traffic = load(s.httpPort);
    const long = request(`http://127.0.0.1:${s.httpPort}/long`, { method: 'POST', body: '1500' });
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const swap = await swapCli(['swap', '--binary', v2, '--state', s.stateDir]);
    const swapMs = Date.now() - started;
    await new Promise((r) => setTimeout(r, 300));
    const result = await traffic.stop();

    expect(swap.stderr).toBe('');
    expect(swap.code).toBe(0);
    expect(swap.stdout).toMatch(/green pid \d+ ready/);
    expect(swap.stdout).toMatch(/✓ swapped to .*v2\.mjs/);
    expect(result.errors.slice(0, 5)).toEqual([]);
    expect(result.failed).toBe(0);
    expect(result.versions.get('v1')).toBeGreaterThan(0);
    expect(result.versions.get('v2')).toBeGreaterThan(0);

    const longRes = await long;
    expect(longRes.statusCode).toBe(200);
    expect(await longRes.body.text()).toBe('v1');

    const after = await request(`http://127.0.0.1:${s.httpPort}/`);
    expect(await after.body.text()).toBe('v2');
    expect(isAlive(bluePid)).toBe(false);
    const state = s.state();
    expect(state.active!.colour).toBe('green');
    expect(state.previous).toBe(v1);
    console.log(`swap v1→v2: ${swapMs} ms, ${result.ok} requests ok, versions ${JSON.stringify([...result.versions])}`);
  });

  it('the public status address answers for the active child', async () => {
    const res = await request(`http://127.0.0.1:${supervisor!.statusPort}/ready`);
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { status: string }).status).toBe('ready');
  });

  it('status prints the active colour, binary, pids and history; rollback goes back to v1', async () => {
    const s = supervisor!;
    const status = await swapCli(['status', '--state', s.stateDir]);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/active: green pid \d+ .*v2\.mjs \(warmpool /);
    expect(status.stdout).toContain('✓');
    expect(status.stdout).toMatch(/v1\.mjs → .*v2\.mjs/);

    const back = await swapCli(['rollback', '--state', s.stateDir]);
    expect(back.code).toBe(0);
    expect(back.stdout).toMatch(/✓ swapped to .*v1\.mjs \(blue pid \d+\)/);
    const res = await request(`http://127.0.0.1:${s.httpPort}/`);
    expect(await res.body.text()).toBe('v1');

    const json = await swapCli(['status', '--json', '--state', s.stateDir]);
    const parsed = JSON.parse(json.stdout) as { state: { history: unknown[]; active: { colour: string } } };
    expect(parsed.state.active.colour).toBe('blue');
    expect(parsed.state.history).toHaveLength(2);
  });

  it('SIGHUP and SIGUSR1 to the supervisor reach the server (reload, reopen logs); the supervisor stays', async () => {
    const s = supervisor!;
    const before = s.output.length;
    // before: SIGHUP killed the supervisor (exit 129) and left its server unsupervised; SIGUSR1
    // opened Node's inspector
    s.child.kill('SIGHUP');
    await s.waitFor('SIGHUP: reloading', 15_000, before);
    s.child.kill('SIGUSR1');
    await s.waitFor('SIGUSR1: no log file to reopen', 15_000, before);
    expect(s.child.exitCode).toBeNull();
    expect(s.output.slice(before)).not.toContain('Debugger listening');
    const res = await request(`http://127.0.0.1:${s.httpPort}/`);
    expect(res.statusCode).toBe(200);
    await res.body.dump();
  });

  it('SIGTERM to the supervisor drains the children and exits 0, the request in flight on the old colour included', async () => {
    const s = supervisor!;
    // blue (v1) serves a long request; a swap to v2 hands over, and blue drains it
    const long = request(`http://127.0.0.1:${s.httpPort}/long`, { method: 'POST', body: '3000' });
    await new Promise((r) => setTimeout(r, 300));
    const before = s.output.length;
    const swap = swapCli(['swap', '--binary', v2, '--state', s.stateDir]);
    await s.waitFor('draining (SIGTERM', 15_000, before);
    const pids = s.state().children.map((child) => child.pid);
    // systemctl stop while blue still drains: blue must not get a second SIGTERM (the server's
    // "exit now, cut the requests"); before, the long request was cut
    expect(await s.stop()).toBe(0);
    const longRes = await long;
    expect(longRes.statusCode).toBe(200);
    expect(await longRes.body.text()).toBe('v1');
    for (const pid of pids) if (pid !== null) expect(isAlive(pid)).toBe(false);
    // the swap is not "✓ swapped": it ended with the supervisor, and no release was restarted
    const ended = await swap;
    expect(ended.code).toBe(1);
    expect(ended.stdout).toContain('✗ the supervisor was stopped (SIGTERM) during the hand-over');
    expect(ended.stderr).toMatch(/^✗ WP_SWAP_STOPPED: /);
    expect(ended.stderr).not.toContain('rolled back');
    expect(s.output).toContain('SIGTERM: forwarding to the server');
    expect(s.output).not.toContain('SIGTERM again');
  });
});
