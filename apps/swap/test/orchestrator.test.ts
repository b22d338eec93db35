// SwapOrchestrator against real child processes: the fixtures in ./fixtures are small Node "server
// binaries" that answer `version` and `config check`, listen on the LISTEN_FDS sockets they are
// handed and answer /ready on their private status socket — or fail their check, exit while
// booting, never become ready, ignore SIGTERM, or drain until a test lets them go.
//
// The phases a swap goes through (as state().phase reports them): idle → checking → green-starting
// → green-ready → handover (blue drains: SIGTERM, SIGKILL after the drain timeout) → idle with green
// active. Any failure before the hand-over kills green and leaves blue serving (rollback).
import { EventEmitter, once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  BootFailedError,
  BusyError,
  CheckFailedError,
  ListenFailedError,
  NoPreviousError,
  NotReadyError,
} from '../src/errors.js';
import type { ListenerName } from '../src/listeners.js';
import { SwapOrchestrator, type SwapOrchestratorOptions } from '../src/orchestrator.js';
import { readState } from '../src/state-file.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}.mjs`, import.meta.url));
const READY = fixture('ready');
const FAILS_CONFIG_CHECK = fixture('fails-config-check');
const SILENT_VERSION = fixture('silent-version');
const EXITS_WHILE_BOOTING = fixture('exits-while-booting');
const NEVER_READY = fixture('never-ready');
const IGNORES_SIGTERM = fixture('ignores-sigterm');
const DRAINS_UNTIL_SIGUSR2 = fixture('drains-until-sigusr2');
const EXITS_AFTER_READY = fixture('exits-after-ready');

interface Harness {
  o: SwapOrchestrator;
  dir: string;
  /** everything the orchestrator logged, children's output included ("[blue 123] …") */
  lines: string[];
  /** resolves with the first logged line (past or future) that matches */
  line(pattern: RegExp): Promise<string>;
}

const harnesses: Harness[] = [];
const strays: number[] = [];

afterEach(async () => {
  for (const { o, dir } of harnesses.splice(0)) {
    await o.shutdown('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  for (const pid of strays.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone, as it should be
    }
  }
});

function harness(options: Partial<SwapOrchestratorOptions> & { binary: string }): Harness {
  const dir = mkdtempSync(join(tmpdir(), 'wp-swap-orch-'));
  const lines: string[] = [];
  const logged = new EventEmitter();
  const o = new SwapOrchestrator({
    args: ['serve', '-c', 'warmpool.yaml'],
    listen: new Map<ListenerName, string>([['http', '127.0.0.1:0']]),
    stateDir: dir,
    readyTimeoutMs: 20_000,
    drainTimeoutMs: 10_000,
    log: (line) => {
      lines.push(line);
      logged.emit('line', line);
    },
    ...options,
  });
  const line = (pattern: RegExp) =>
    new Promise<string>((resolve) => {
      const seen = lines.find((l) => pattern.test(l));
      if (seen !== undefined) return resolve(seen);
      const onLine = (l: string) => {
        if (!pattern.test(l)) return;
        logged.off('line', onLine);
        resolve(l);
      };
      logged.on('line', onLine);
    });
  const h = { o, dir, lines, line };
  harnesses.push(h);
  return h;
}

/** A second "binary": a wrapper around ready.mjs whose `version` names itself. */
function readyCopy(dir: string, name: string): string {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(file, `import ${JSON.stringify(pathToFileURL(READY).href)};\n`);
  return file;
}

interface Answer {
  status: number;
  body: { colour: string; pid: number; listener: string; ports: Record<string, number>; grandchild: number | null };
}

/** One GET on a fresh connection (no keep-alive: each request is accepted anew on the socket). */
function get(url: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    httpGet(url, { agent: false }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => {
        text += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Answer['body'] }));
    }).on('error', reject);
  });
}

/** The active child's /ready answer: its pid, colour and the ports it listens on. */
async function activeInfo(o: SwapOrchestrator): Promise<Answer['body']> {
  return (await get(o.state().active!.statusUrl!)).body;
}

/** Who accepts on the shared http socket. */
async function servedBy(port: number): Promise<{ colour: string; pid: number }> {
  const { body } = await get(`http://127.0.0.1:${port}/`);
  expect(body.listener).toBe('http');
  return { colour: body.colour, pid: body.pid };
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Binds `port` and lets it go again: true when nothing else holds it. */
async function canBind(port: number): Promise<boolean> {
  const server = createServer();
  const bound = await new Promise<boolean>((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => resolve(true));
  });
  if (bound) await new Promise((resolve) => server.close(resolve));
  return bound;
}

/** Dead: no /proc entry, or a zombie waiting for its parent. */
function isGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return /^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return true;
  }
}

/** Waits for a SIGKILLed process that is not our child to die (no event tells us; bounded). */
async function waitGone(pid: number): Promise<boolean> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20)))
    if (isGone(pid)) return true;
  return isGone(pid);
}

describe('start', () => {
  it('binds the shared sockets, starts blue and waits for its /ready; blue serves; state.json says so', async () => {
    const { o, dir } = harness({ binary: READY });
    await o.start();
    const state = o.state();
    expect(state.phase).toBe('idle');
    expect(state.active).toMatchObject({ colour: 'blue', binary: READY, version: 'fake-server ready.mjs' });
    expect(state.active!.statusUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/ready$/);
    expect(state.children).toEqual([{ colour: 'blue', pid: state.active!.pid, binary: READY }]);
    expect(state.previous).toBeNull();
    expect(state.history).toEqual([]);
    expect(readState(dir)).toEqual(JSON.parse(JSON.stringify(state)));

    const info = await activeInfo(o);
    expect(info).toMatchObject({ colour: 'blue', pid: state.active!.pid, listener: 'status' });
    expect(await servedBy(info.ports.http!)).toEqual({ colour: 'blue', pid: state.active!.pid });
  });

  it("relays the child's output: JSON log lines as they are (still JSON), other lines with the colour and pid", async () => {
    const { o, line } = harness({ binary: READY });
    await o.start();
    const pid = o.state().active!.pid;
    // before: "[blue 123] {...}", no JSON for log shippers reading the supervisor's output
    expect(JSON.parse(await line(/fake server serving/))).toEqual({
      level: 30,
      msg: 'fake server serving',
      colour: 'blue',
    });
    expect(await line(/a human line/)).toBe(`[blue ${pid}] fake server: a human line`);
  });

  it('an address already in use: ListenFailedError naming it, and no child is started', async () => {
    const holder = createServer().listen(0, '127.0.0.1');
    await once(holder, 'listening');
    const address = `127.0.0.1:${(holder.address() as { port: number }).port}`;
    try {
      const { o } = harness({ binary: READY, listen: new Map([['http', address]]) });
      const error = await o.start().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ListenFailedError);
      expect((error as Error).message).toBe(`cannot bind http ${address}: EADDRINUSE`);
      expect(o.state().children).toEqual([]);
      expect(o.active).toBeUndefined();
    } finally {
      holder.close();
    }
  });

  it('a blue that exits while booting: BootFailedError with its output, and the sockets are released', async () => {
    const port = await freePort();
    const { o } = harness({ binary: EXITS_WHILE_BOOTING, listen: new Map([['http', `127.0.0.1:${port}`]]) });
    const error = await o.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailedError);
    expect((error as Error).message).toMatch(
      /^blue pid \d+ exit code 3 while booting:\ncannot open \/srv\/app\/index\.php: boot failed$/,
    );
    expect(await canBind(port)).toBe(true);
  });
});

describe('swap', () => {
  it('blue → checking → green-starting → green-ready → handover → idle: green serves, blue drained and gone', async () => {
    const statusPort = await freePort();
    const { o, dir, lines } = harness({
      binary: READY,
      listen: new Map([
        ['http', '127.0.0.1:0'],
        ['status', `127.0.0.1:${statusPort}`],
      ]),
    });
    await o.start();
    const blue = o.state().active!;
    const { http } = (await activeInfo(o)).ports;
    expect((await get(`http://127.0.0.1:${statusPort}/ready`)).body.pid).toBe(blue.pid);
    const v2 = readyCopy(dir, 'v2');

    const phases: string[] = [];
    const note = () => {
      const phase = o.state().phase;
      if (phases.at(-1) !== phase) phases.push(phase);
    };
    const progress: string[] = [];
    await o.swap(v2, (line) => {
      progress.push(line);
      note();
      // green-ready lasts from this line to the last /ready probe, which needs network round trips
      // the event loop cannot finish before the next check phase
      if (/^• green pid \d+ ready$/.test(line)) setImmediate(note);
    });
    note();
    expect(phases).toEqual(['checking', 'green-starting', 'green-ready', 'handover', 'idle']);

    const state = o.state();
    expect(state.active).toMatchObject({ colour: 'green', binary: v2, version: 'fake-server v2.mjs' });
    expect(state.previous).toBe(READY);
    expect(state.children.map((c) => c.colour)).toEqual(['green']);
    expect(state.history).toMatchObject([{ from: READY, to: v2, ok: true }]);
    expect(readState(dir)).toEqual(JSON.parse(JSON.stringify(state)));
    expect(progress).toContain(
      `• blue pid ${blue.pid} draining (SIGTERM, SIGKILL after 10000 ms); green pid ${state.active!.pid} serves`,
    );
    expect(progress.filter((line) => line === `• green pid ${state.active!.pid} ready`)).toHaveLength(1);
    expect(progress).toContain(`• blue pid ${blue.pid} exit code 0`);
    // said once: the log has the swap's progress (warmpool-swap logs it), not the exit handler's copy
    expect(lines.filter((line) => line.startsWith(`• blue pid ${blue.pid} exit`))).toEqual([]);
    expect(progress.at(-1)).toMatch(new RegExp(`^✓ swapped to ${v2} \\(green pid ${state.active!.pid}\\) in \\d+ ms$`));
    expect(isGone(blue.pid!)).toBe(true);
    // the same shared socket, now accepted by green only; the public status follows the active child
    expect(await servedBy(http!)).toEqual({ colour: 'green', pid: state.active!.pid });
    expect((await get(`http://127.0.0.1:${statusPort}/ready`)).body.pid).toBe(state.active!.pid);
  });

  it('rollback swaps back to the previous binary; before any swap there is none', async () => {
    const { o, dir } = harness({ binary: READY });
    await o.start();
    await expect(o.rollback()).rejects.toBeInstanceOf(NoPreviousError);
    const v2 = readyCopy(dir, 'v2');
    await o.swap(v2);
    await o.rollback();
    const state = o.state();
    expect(state.active).toMatchObject({ colour: 'blue', binary: READY });
    expect(state.previous).toBe(v2);
    expect(state.history.map((h) => [h.to, h.ok])).toEqual([
      [v2, true],
      [READY, true],
    ]);
    expect(await servedBy((await activeInfo(o)).ports.http!)).toMatchObject({ colour: 'blue' });
  });

  it('a second swap while one runs is refused with BusyError; the first completes', async () => {
    const { o, dir } = harness({ binary: READY });
    await o.start();
    const first = o.swap(readyCopy(dir, 'v2'));
    await expect(o.swap(readyCopy(dir, 'v3'))).rejects.toBeInstanceOf(BusyError);
    await first;
    expect(o.state().active!.binary).toBe(join(dir, 'v2.mjs'));
  });

  it("a config whose listeners changed since start is refused before green starts: the sockets are the supervisor's", async () => {
    let now = new Map<ListenerName, string>([['http', '127.0.0.1:0']]);
    const { o, dir } = harness({ binary: READY, currentListen: () => now });
    await o.start();
    const blue = o.state().active!;
    // before: "✓ swapped" with the new server on the old port, or binding https itself (the next
    // swap then failed with EADDRINUSE)
    now = new Map<ListenerName, string>([
      ['http', '127.0.0.1:8081'],
      ['https', '127.0.0.1:8443'],
    ]);
    const error = await o.swap(readyCopy(dir, 'v2')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckFailedError);
    expect((error as Error).message).toMatch(
      /^the config's listeners changed \(http 127\.0\.0\.1:0 → 127\.0\.0\.1:8081, https 127\.0\.0\.1:8443 added\): warmpool-swap holds the sockets it started with/,
    );
    expect(o.state().active).toMatchObject({ colour: 'blue', pid: blue.pid });
    expect(o.state().children).toHaveLength(1);
    // the same addresses again: the swap goes through
    now = new Map<ListenerName, string>([['http', '127.0.0.1:0']]);
    await o.swap(readyCopy(dir, 'v3'));
    expect(o.state().active!.colour).toBe('green');
  });

  it('a swap to the binary already running (rebuilt in place) is done, and warned of: rollback has nothing else', async () => {
    const { o } = harness({ binary: READY });
    await o.start();
    const progress: string[] = [];
    await o.swap(READY, (line) => progress.push(line));
    expect(progress[0]).toBe(
      `▲ ${READY} is the binary blue runs: rollback will have no other release to go back to; give each release a folder of its own`,
    );
    expect(o.state().active).toMatchObject({ colour: 'green', binary: READY });
  });
});

describe('swap rollback: a green that is not fit never takes over, blue keeps serving', () => {
  /** Starts blue (ready.mjs) and returns what a failed swap must leave untouched. */
  async function started(options: Partial<SwapOrchestratorOptions> = {}) {
    const h = harness({ binary: READY, ...options });
    await h.o.start();
    const blue = h.o.state().active!;
    const { http } = (await activeInfo(h.o)).ports;
    return { ...h, blue, http: http! };
  }

  async function expectBlueUntouched(h: Awaited<ReturnType<typeof started>>, to: string, reason: RegExp) {
    const state = h.o.state();
    expect(state.phase).toBe('idle');
    expect(state.active).toMatchObject({ colour: 'blue', pid: h.blue.pid, binary: READY });
    expect(state.children).toEqual([{ colour: 'blue', pid: h.blue.pid, binary: READY }]);
    expect(state.previous).toBeNull();
    expect(state.history).toHaveLength(1);
    expect(state.history[0]).toMatchObject({ from: READY, to, ok: false });
    expect(state.history[0]!.reason).toMatch(reason);
    expect(readState(h.dir)).toEqual(JSON.parse(JSON.stringify(state)));
    expect(await servedBy(h.http)).toEqual({ colour: 'blue', pid: h.blue.pid });
  }

  it('fails its config check: CheckFailedError with the check output; green is never started', async () => {
    const h = await started();
    const progress: string[] = [];
    const error = await h.o.swap(FAILS_CONFIG_CHECK, (line) => progress.push(line)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckFailedError);
    expect((error as Error).message).toBe(
      `\`${FAILS_CONFIG_CHECK} config check -c warmpool.yaml\` failed (exit 1):\nwarmpool.yaml:3:5: http.pool.num_workers must be an integer`,
    );
    expect(progress.some((line) => line.includes('starting on the shared sockets'))).toBe(false);
    // one line for the progress and the history, with what is wrong (not a line ending in ':')
    const summary = `\`${FAILS_CONFIG_CHECK} config check -c warmpool.yaml\` failed (exit 1): warmpool.yaml:3:5: http.pool.num_workers must be an integer`;
    expect(progress).toContain(`✗ ${summary}`);
    await expectBlueUntouched(h, FAILS_CONFIG_CHECK, /config check -c warmpool\.yaml` failed \(exit 1\)/);
    expect(h.o.state().history[0]!.reason).toBe(summary);
  });

  it('prints no version (a wrapper script, another program): CheckFailedError, green never starts', async () => {
    const h = await started();
    const progress: string[] = [];
    const error = await h.o.swap(SILENT_VERSION, (line) => progress.push(line)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckFailedError);
    expect((error as Error).message).toBe(
      `\`${SILENT_VERSION} version\` printed nothing: is it the warmpool binary (or a link to it)?`,
    );
    expect(progress.some((line) => line.includes('starting on the shared sockets'))).toBe(false);
    await expectBlueUntouched(h, SILENT_VERSION, /version` printed nothing/);
  });

  it('does not run at all: CheckFailedError from `version`', async () => {
    const h = await started();
    const missing = join(h.dir, 'no-such-binary');
    const error = await h.o.swap(missing).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CheckFailedError);
    expect((error as Error).message).toMatch(
      new RegExp(`^\`${missing} version\` failed \\(did not run\\):\\n.*ENOENT`),
    );
    await expectBlueUntouched(h, missing, /version` failed \(did not run\)/);
  });

  it('exits while booting: BootFailedError with its output; green is gone', async () => {
    const h = await started();
    const progress: string[] = [];
    const error = await h.o.swap(EXITS_WHILE_BOOTING, (line) => progress.push(line)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailedError);
    const greenPid = Number(/green pid (\d+) starting/.exec(progress.join('\n'))![1]);
    expect((error as Error).message).toBe(
      `green pid ${greenPid} exit code 3 while booting:\ncannot open /srv/app/index.php: boot failed`,
    );
    expect(isGone(greenPid)).toBe(true);
    await expectBlueUntouched(h, EXITS_WHILE_BOOTING, /exit code 3 while booting/);
  });

  it('never answers /ready 200: NotReadyError after the ready timeout; green is stopped', async () => {
    const h = await started({ readyTimeoutMs: 1_000 });
    const progress: string[] = [];
    const error = await h.o.swap(NEVER_READY, (line) => progress.push(line)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotReadyError);
    // green's last lines come with it: what a real server says it waits for
    expect((error as Error).message).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+\/ready not ready within 1000 ms: last answered 503:\n(?:.*\n)*listening http=\d+ status=\d+$/,
    );
    const greenPid = Number(/green pid (\d+) starting/.exec(progress.join('\n'))![1]);
    expect(progress).toContain(`• stopping green pid ${greenPid}; blue pid ${h.blue.pid} keeps serving`);
    expect(progress).toContain(
      `✗ ${(error as Error).message.split('\n')[0]} listening http=${/http=(\d+)/.exec((error as Error).message)![1]} status=${/status=(\d+)/.exec((error as Error).message)![1]}`,
    );
    // its exit is said once, by the swap (the exit handler leaves it to the swap's progress)
    expect(progress).toContain(`• green pid ${greenPid} exit code 0`);
    expect(h.lines.filter((line) => line.startsWith(`• green pid ${greenPid} exit`))).toEqual([]);
    expect(isGone(greenPid)).toBe(true);
    await expectBlueUntouched(h, NEVER_READY, /not ready within 1000 ms/);
  });
  it('dies within --settle of being ready: BootFailedError at once, blue never drained', async () => {
    // a long settle: the swap must end when green dies, not when the settle time is up
    const h = await started({ settleMs: 60_000 });
    const progress: string[] = [];
    const error = await h.o.swap(EXITS_AFTER_READY, (line) => progress.push(line)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailedError);
    const greenPid = Number(/green pid (\d+) starting/.exec(progress.join('\n'))![1]);
    expect(progress).toContain('• green serves beside blue for --settle 60000 ms before blue drains');
    expect((error as Error).message).toMatch(
      new RegExp(`^green pid ${greenPid} exit code 9 within --settle \\(60000 ms\\) of being ready:\n`),
    );
    expect(progress.some((line) => line.includes('draining'))).toBe(false);
    await expectBlueUntouched(h, EXITS_AFTER_READY, /exit code 9 within --settle/);
  });

  it('a green that stays up through --settle is handed over', async () => {
    const h = await started({ settleMs: 200 });
    const progress: string[] = [];
    await h.o.swap(readyCopy(h.dir, 'v2'), (line) => progress.push(line));
    expect(progress).toContain('• green serves beside blue for --settle 200 ms before blue drains');
    expect(progress.at(-1)).toMatch(/^✓ swapped to /);
    expect(await servedBy(h.http)).toMatchObject({ colour: 'green' });
  });
});

describe('hand-over', () => {
  it('a blue that ignores SIGTERM is SIGKILLed after the drain timeout, with its worker in another process group', async () => {
    const { o, dir } = harness({ binary: IGNORES_SIGTERM, drainTimeoutMs: 500 });
    await o.start();
    const blue = await activeInfo(o);
    expect(blue.grandchild).toBeTypeOf('number');
    strays.push(blue.grandchild!);
    const progress: string[] = [];
    await o.swap(readyCopy(dir, 'v2'), (line) => progress.push(line));
    expect(progress).toContain(`• blue pid ${blue.pid} killed by SIGKILL`);
    // the swap succeeds, but not silently: what the drain still served was cut
    expect(progress).toContain(
      "▲ blue's drain ran past --drain-timeout (500 ms) and was cut: requests it still served were lost; raise --drain-timeout above the server's longest drain",
    );
    expect(isGone(blue.pid)).toBe(true);
    expect(await waitGone(blue.grandchild!)).toBe(true);
    expect(await servedBy(blue.ports.http!)).toMatchObject({ colour: 'green' });
  });

  it('green dies while blue drains: the old binary is started again at once, before the drain ends, and the swap fails', async () => {
    const { o, line } = harness({ binary: DRAINS_UNTIL_SIGUSR2 });
    await o.start();
    const blue = await activeInfo(o);
    const progress: string[] = [];
    const swap = o.swap(READY, (message) => {
      progress.push(message);
      // blue is draining; green is active: make green exit now
      if (/draining \(SIGTERM/.test(message))
        void get(o.state().active!.statusUrl!.replace(/\/ready$/, '/exit?code=7')).catch(() => {});
    });
    const deadGreen = Number(/pid (\d+)/.exec(await line(/^• green pid \d+ exit code 7$/))![1]);
    // blue still drains (until SIGUSR2), and the old binary already serves again, under green's
    // colour (blue's admin socket is still held); before, nothing accepted until blue's drain ended
    await line(new RegExp(`^\\[green (?!${deadGreen}\\])\\d+\\] listening `));
    const again = o.state().active!;
    expect(again).toMatchObject({ colour: 'green', binary: DRAINS_UNTIL_SIGUSR2 });
    expect(isGone(blue.pid)).toBe(false);
    expect(await servedBy(blue.ports.http!)).toEqual({ colour: 'green', pid: again.pid });
    expect(progress).toContain(`✗ green exit code 7 during the hand-over; starting ${DRAINS_UNTIL_SIGUSR2} again now`);

    process.kill(blue.pid, 'SIGUSR2'); // blue's drain ends
    const error = await swap.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BootFailedError);
    expect((error as Error).message).toMatch(
      new RegExp(`^green exit code 7 during the hand-over; restarted ${DRAINS_UNTIL_SIGUSR2}`),
    );
    const state = o.state();
    expect(state.phase).toBe('idle');
    expect(state.active).toMatchObject({ colour: 'green', binary: DRAINS_UNTIL_SIGUSR2, pid: again.pid });
    expect(state.previous).toBeNull();
    expect(state.history).toMatchObject([{ to: READY, ok: false }]);

    // this one drains until released too
    const stopping = o.shutdown('SIGTERM');
    await line(new RegExp(`^\\[green ${again.pid}\\] draining until SIGUSR2$`));
    process.kill(again.pid!, 'SIGUSR2');
    await stopping;
  });
});

describe('the active child and shutdown', () => {
  it('the active child killed by SIGKILL is started again on the same sockets: a connection meanwhile waits in the backlog and is answered', async () => {
    // The supervisor exited with it and closed the sockets it holds: every request was refused
    // until systemd restarted the whole service.
    const { o, line } = harness({ binary: READY });
    await o.start();
    let gaveUp = false;
    o.onActiveExit = () => (gaveUp = true);
    const killed = await activeInfo(o);
    process.kill(killed.pid, 'SIGKILL');
    await line(new RegExp(`^• blue pid ${killed.pid} killed by SIGKILL$`));
    // nothing accepts on the socket now; the connection waits in its backlog for the new server
    const answer = await servedBy(killed.ports.http!);
    expect(answer.colour).toBe('blue');
    expect(answer.pid).not.toBe(killed.pid);
    expect(o.state().active).toMatchObject({ colour: 'blue', binary: READY, pid: answer.pid });
    expect(await line(/^✗ the active server/)).toBe(
      `✗ the active server (blue pid ${killed.pid}) killed by SIGKILL; starting ${READY} again now (restart 1 of 5 within 60000 ms); the sockets stay open: connections wait in the backlog`,
    );
    await line(new RegExp(`^• blue pid ${answer.pid} ready$`));
    expect(gaveUp).toBe(false);
  });

  it('a release that keeps exiting is restarted as the policy allows (with its backoff), then onActiveExit with its code', async () => {
    const { o, line, lines } = harness({
      binary: READY,
      restart: { max: 2, windowMs: 60_000, backoffMs: [0, 100] },
    });
    await o.start();
    const exited = new Promise<[number, string]>((resolve) => {
      o.onActiveExit = (code, how) => resolve([code, how]);
    });
    for (let i = 1; i <= 3; i++) {
      const { pid, ports } = await activeInfo(o);
      await get(`http://127.0.0.1:${ports.http}/exit?code=4`);
      await line(new RegExp(`^• blue pid ${pid} exit code 4$`));
      // started again and ready (start's own ready line is the first)
      if (i < 3)
        await vi.waitFor(() => expect(lines.filter((l) => /^• blue pid \d+ ready$/.test(l))).toHaveLength(i + 1), {
          timeout: 20_000,
        });
    }
    expect(await exited).toEqual([4, 'exit code 4']);
    expect(lines.filter((l) => l.startsWith('✗ the active server'))).toEqual([
      expect.stringMatching(/exit code 4; starting .* again now \(restart 1 of 2 within 60000 ms\)/),
      expect.stringMatching(/exit code 4; starting .* again in 100 ms \(restart 2 of 2 within 60000 ms\)/),
      expect.stringMatching(
        /exit code 4: 3 exits within 60000 ms, more than the 2 restarts allowed; warmpool-swap stops$/,
      ),
    ]);
  });

  it('blue killed while green settles: the blue started again is the one the hand-over drains, none is left', async () => {
    const { o, line } = harness({ binary: READY, settleMs: 2_000 });
    await o.start();
    const killed = await activeInfo(o);
    const swap = o.swap(readyCopy(o.options.stateDir, 'v2'), (message) => {
      if (/serves beside blue for --settle/.test(message)) process.kill(killed.pid, 'SIGKILL');
    });
    const listening = await line(new RegExp(`^\\[blue (?!${killed.pid}\\])\\d+\\] listening `));
    const again = Number(/^\[blue (\d+)\]/.exec(listening)![1]);
    await swap;
    expect(o.state().active).toMatchObject({ colour: 'green' });
    expect(o.state().children).toEqual([expect.objectContaining({ colour: 'green' })]);
    expect(isGone(again)).toBe(true);
  });

  it('shutdown forwards the signal, waits for the children and releases the sockets', async () => {
    const port = await freePort();
    const { o, dir } = harness({ binary: READY, listen: new Map([['http', `127.0.0.1:${port}`]]) });
    await o.start();
    const pid = o.state().active!.pid!;
    expect(await canBind(port)).toBe(false);
    await o.shutdown('SIGTERM');
    expect(isGone(pid)).toBe(true);
    expect(o.state()).toMatchObject({ phase: 'stopping', children: [] });
    expect(readState(dir)).toMatchObject({ phase: 'stopping', children: [] });
    expect(await canBind(port)).toBe(true);
  });
});
