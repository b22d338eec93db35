// Managed classic PHP is a pool like any other through `warmpool serve`: num_workers: auto sizes
// php-cgi processes after warming the script "/" resolves to, and the admin socket's commands work
// on them: `warmpool workers` lists them, `warmpool tune` measures them, `warmpool reset` rolls them.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { FIXTURES, runCli, startServer, stopAllServers } from '../helpers/warmpool-server.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-classic-pool-'));
afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

describe('managed classic PHP through warmpool serve', () => {
  it('num_workers: auto, then workers, tune and a rolling reset of the php-cgi processes', async () => {
    const port = await freePort();
    const socket = join(dir, 'admin.sock');
    const config = join(dir, 'warmpool.yaml');
    writeFileSync(
      config,
      [
        'version: "3"',
        'http:',
        `  address: 127.0.0.1:${port}`,
        '  pool: { num_workers: auto, allocate_timeout: 10s, destroy_timeout: 5s }',
        `admin: { socket: ${socket} }`,
        'fastcgi:',
        `  root: ${FIXTURES}/sites/classic-app`,
        '',
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', config]);
    await server.ready(30_000);
    expect(server.stdout + server.stderr).toMatch(/num_workers auto: \d+ \(cpu \d+ cores?/);
    const get = async (path: string) => {
      const res = await request(`http://127.0.0.1:${port}${path}`);
      return { status: res.statusCode, text: await res.body.text() };
    };
    expect((await get('/post/sized')).status).toBe(200);

    const listed = await runCli(['workers', '--json', '--socket', socket]);
    expect(listed.code).toBe(0);
    const [site] = JSON.parse(listed.stdout) as Array<{ site: string; workers: Array<{ pid: number; state: string }> }>;
    const pids = site!.workers.filter((w) => w.state === 'ready' || w.state === 'working').map((w) => w.pid);
    expect(pids.length).toBeGreaterThan(0);
    // the processes listed are the ones that answer
    const info = JSON.parse((await get('/info.php')).text) as { SAPI: string };
    expect(info.SAPI).toBe('cgi-fcgi');

    let loading = true;
    const load = (async () => {
      while (loading) await get('/post/load');
    })();
    const tune = await runCli(['tune', '--socket', socket, '--window', '1s'], { timeoutMs: 20_000 });
    loading = false;
    await load;
    expect(tune.code).toBe(0);
    expect(tune.stdout).toMatch(/recommend/i);

    const reset = await runCli(['reset', '--socket', socket], { timeoutMs: 20_000 });
    expect(reset.code).toBe(0);
    const after = JSON.parse((await runCli(['workers', '--json', '--socket', socket])).stdout) as Array<{
      workers: Array<{ pid: number; state: string }>;
    }>;
    const fresh = after[0]!.workers.filter((w) => w.state === 'ready').map((w) => w.pid);
    expect(fresh.length).toBe(pids.length);
    for (const pid of fresh) expect(pids).not.toContain(pid);
    expect((await get('/post/after-reset')).status).toBe(200);
    await server.stop();
  });

  it.skipIf(process.getuid?.() !== 0)(
    "server.user alone: the php-cgi processes run as that user in its primary group, never in root's",
    async () => {
      const port = await freePort();
      const socket = join(dir, 'admin-user.sock');
      // a root the user can read (mkdtemp's folders are 0700)
      const root = mkdtempSync(join(tmpdir(), 'warmpool-classic-user-'));
      chmodSync(root, 0o755);
      writeFileSync(join(root, 'index.php'), '<?php echo "ok";');
      const config = join(dir, 'warmpool-user.yaml');
      writeFileSync(
        config,
        [
          'version: "3"',
          'server: { user: nobody }',
          'http:',
          `  address: 127.0.0.1:${port}`,
          '  pool: { num_workers: 1, allocate_timeout: 10s, destroy_timeout: 5s }',
          `admin: { socket: ${socket} }`,
          `fastcgi: { root: ${root} }`,
          '',
        ].join('\n'),
      );
      const server = startServer(['serve', '-c', config]);
      try {
        await server.ready(30_000);
        const res = await request(`http://127.0.0.1:${port}/`);
        expect([res.statusCode, await res.body.text()]).toEqual([200, 'ok']);
        const [site] = JSON.parse((await runCli(['workers', '--json', '--socket', socket])).stdout) as Array<{
          workers: Array<{ pid: number }>;
        }>;
        const [uid, gid] = ['-u', '-g'].map((flag) =>
          execFileSync('id', [flag, 'nobody'], { encoding: 'utf8' }).trim(),
        );
        for (const { pid } of site!.workers) {
          const status = readFileSync(`/proc/${pid}/status`, 'utf8');
          // real, effective, saved and filesystem ids
          expect(status).toMatch(new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
          expect(status).toMatch(new RegExp(`^Gid:\\s+${gid}\\s+${gid}\\s+${gid}\\s+${gid}$`, 'm'));
          // nobody's own groups (php-fpm's initgroups), none of root's
          const groups = /^Groups:(.*)$/m.exec(status)![1]!.trim().split(/\s+/).sort();
          expect(groups).toEqual(execFileSync('id', ['-G', 'nobody'], { encoding: 'utf8' }).trim().split(' ').sort());
        }
        await server.stop();
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  );
});
