import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { parseUnit, seconds, value, type Unit } from '../helpers/systemd-unit.js';
import { FIXTURES, runCli, SERVER_MAIN } from '../helpers/warmpool-server.js';
import { SWAP_MAIN, Supervisor, swapCli } from './swap-harness.js';

// apps/server/deploy/systemd/warmpool-swap.service tested as behaviour, as server-deploy.test.ts
// does for warmpool.service: its ExecStart (the shell line, as systemd runs it) starts
// warmpool-swap on the example /etc/warmpool/warmpool.yaml with the release layout the deploy doc
// describes (/opt/warmpool/releases/<v>/warmpool, /opt/warmpool/current → the running release);
// then the doc's deploy steps: swap to a new release, point `current` at it, use each colour's
// admin socket, roll back to the release (not to the moved symlink), stop with KillSignal.
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SYSTEMD = join(REPO, 'apps', 'server', 'deploy', 'systemd');

let dir: string;
let unit: Unit;
let supervisor: Supervisor | null = null;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-swap-deploy-'));
  unit = parseUnit(await readFile(join(SYSTEMD, 'warmpool-swap.service'), 'utf8'));
});

afterAll(async () => {
  await supervisor?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A release: `releases/<version>/warmpool`, an executable that runs the built server as that version. */
async function release(opt: string, version: string): Promise<string> {
  const file = join(opt, 'releases', version, 'warmpool');
  await mkdir(join(opt, 'releases', version), { recursive: true });
  await writeFile(file, `#!/bin/sh\nAPP_VERSION=${version} exec "${process.execPath}" "${SERVER_MAIN}" "$@"\n`);
  await chmod(file, 0o755);
  return file;
}

describe('systemd: warmpool-swap.service', () => {
  it('ExecStart serves the `current` release; a deploy swaps to the next, rollback returns to the release; KillSignal stops it', async () => {
    // 1. the machine as the doc sets it up, under a temp root
    const opt = join(dir, 'opt', 'warmpool');
    const run = join(dir, 'run');
    await mkdir(join(run, 'warmpool'), { recursive: true });
    await mkdir(join(dir, 'srv-app', 'public'), { recursive: true });
    await release(opt, 'v1');
    const v2 = await release(opt, 'v2');
    await symlink(join(opt, 'releases', 'v1'), join(opt, 'current'));
    const httpPort = await freePort();
    const statusPort = await freePort();
    const config = join(dir, 'warmpool.yaml');
    const example = await readFile(join(SYSTEMD, 'warmpool.yaml'), 'utf8');
    await writeFile(
      config,
      example
        .replace('/srv/app/worker.php', join(FIXTURES, 'php', 'swap-version.php'))
        .replace('/srv/app/public', join(dir, 'srv-app', 'public'))
        // the status address first: a free HTTP port such as 21144 would match its 127.0.0.1:2114
        .replaceAll('127.0.0.1:2114', `127.0.0.1:${statusPort}`)
        .replace('":80"', `127.0.0.1:${httpPort}`)
        .replace('num_workers: auto', 'num_workers: 1')
        .replace('/run/warmpool/', `${run}/warmpool/`),
    );

    // 2. ExecStart as systemd runs it: `$$` is a literal `$`, then /bin/sh runs the quoted line
    const execStart = value(unit, 'Service', 'ExecStart');
    const line = /^\/bin\/sh -c '(.*)'$/.exec(execStart);
    expect(line, execStart).not.toBeNull();
    const script = line![1]!
      .replaceAll('$$', '$')
      .replace('/usr/local/bin/warmpool-swap', `"${process.execPath}" "${SWAP_MAIN}"`)
      .replaceAll('/run/warmpool-swap', join(run, 'warmpool-swap'))
      .replaceAll('/opt/warmpool', opt)
      .replace('/etc/warmpool/warmpool.yaml', config);
    const child = spawn('/bin/sh', ['-c', script], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    supervisor = new Supervisor(child, join(run, 'warmpool-swap'), httpPort, statusPort);
    await supervisor.waitFor('warmpool-swap ready');
    const version = async () => (await (await request(`http://127.0.0.1:${httpPort}/`)).body.text()).trim();
    expect(await version()).toBe('v1');
    // the supervisor records the release itself (readlink -f), not the symlink
    expect(supervisor.state().active!.binary).toBe(join(opt, 'releases', 'v1', 'warmpool'));

    // 3. a deploy, as the doc writes it: swap, then point `current` at the new release
    const swap = await swapCli(['swap', '--state', join(run, 'warmpool-swap'), '--binary', v2]);
    expect(swap.code, swap.stdout + swap.stderr).toBe(0);
    expect(await version()).toBe('v2');
    await rm(join(opt, 'current'));
    await symlink(join(opt, 'releases', 'v2'), join(opt, 'current'));
    // each colour has its own admin socket (two servers ran at once during the swap)
    const colour = supervisor.state().active!.colour;
    const workers = await runCli(['workers', '--socket', join(run, 'warmpool', `admin-${colour}.sock`), '--json']);
    expect(workers.code, workers.stderr).toBe(0);

    // 4. rollback returns to v1, though `current` now points at v2
    const back = await swapCli(['rollback', '--state', join(run, 'warmpool-swap')]);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    expect(await version()).toBe('v1');

    // 5. systemctl stop: KillSignal to the supervisor, which forwards it; exit 0 within TimeoutStopSec
    expect(value(unit, 'Service', 'KillMode')).toBe('mixed');
    expect(seconds(value(unit, 'Service', 'TimeoutStopSec'))).toBeGreaterThan(3 * 30);
    child.kill(value(unit, 'Service', 'KillSignal') as NodeJS.Signals);
    expect(await supervisor.exited).toBe(0);
    supervisor = null;
  });

  it('conflicts with warmpool.service and its sockets (the same ports), and gives each colour an admin socket', async () => {
    const conflicts = value(unit, 'Unit', 'Conflicts').split(/\s+/).sort();
    expect(conflicts).toEqual(['warmpool-http.socket', 'warmpool-https.socket', 'warmpool.service']);
    const example = await readFile(join(SYSTEMD, 'warmpool.yaml'), 'utf8');
    expect(example).toMatch(/socket: \/run\/warmpool\/admin-\$\{WARMPOOL_SWAP_COLOUR:-main\}\.sock/);
    expect(value(unit, 'Service', 'RuntimeDirectory').split(/\s+/)).toEqual(['warmpool', 'warmpool-swap']);
  });

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!analyze)('systemd-analyze verify accepts the unit', async () => {
    const units = join(dir, 'units');
    await mkdir(units, { recursive: true });
    const names = ['warmpool-swap.service', 'warmpool.service', 'warmpool-http.socket', 'warmpool-https.socket'];
    for (const name of names) {
      const text = await readFile(join(SYSTEMD, name), 'utf8');
      await writeFile(join(units, name), text.replaceAll('/usr/local/bin/warmpool', process.execPath));
    }
    const result = spawnSync('systemd-analyze', ['verify', '--man=no', join(units, 'warmpool-swap.service')], {
      encoding: 'utf8',
      cwd: units,
    });
    const ours = `${result.stdout}${result.stderr}`.split('\n').filter((l) => l.includes('warmpool-swap.service'));
    expect(ours).toEqual([]);
    expect(result.status).toBe(0);
  });
});
