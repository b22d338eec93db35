// Issue "right-sized pools" on the example app, through the real server: num_workers: auto logs its
// inputs and result, `warmpool tune` measures the running pool, and a dynamic pool scales to zero.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { FIXTURES, runCli, startServer, stopAllServers } from '../helpers/warmpool-server.js';

const HELLO = fileURLToPath(new URL('../../examples/hello/warmpool.yaml', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'warmpool-sizing-'));
afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

describe('pool sizing through warmpool serve', () => {
  it('examples/hello with num_workers: auto: sizes itself, says why, and `warmpool tune` recommends', async () => {
    const [port, status] = [await freePort(), await freePort()];
    const socket = join(dir, 'warmpool-hello-main.sock');
    const server = startServer(['serve', '-c', HELLO], {
      env: { PORT: String(port), STATUS_PORT: String(status), ADMIN_DIR: dir },
    });
    await server.ready(20_000);
    expect(server.stdout + server.stderr).toMatch(/num_workers auto: \d+ \(cpu \d+ cores?/);
    const page = await request(`http://127.0.0.1:${port}/?name=tune`);
    expect(await page.body.text()).toContain('Hello from a warm PHP worker');
    // keep the workers busy while tune measures
    let loading = true;
    const load = (async () => {
      while (loading) await (await request(`http://127.0.0.1:${port}/`)).body.dump();
    })();
    const tune = await runCli(['tune', '--socket', socket, '--window', '1s'], { timeoutMs: 20_000 });
    loading = false;
    await load;
    expect(tune.code).toBe(0);
    expect(tune.stdout).toMatch(/Passenger/);
    expect(tune.stdout).toMatch(/gunicorn +\d+\s+= min\(2 × \d+ \+ 1/);
    expect(tune.stdout).toMatch(/recommend/i);
    await server.stop();
  });

  it('a dynamic pool (min_workers: 0) scales to zero and serves the next request after one boot', async () => {
    const [port, status] = [await freePort(), await freePort()];
    const config = join(dir, 'dynamic.yaml');
    writeFileSync(
      config,
      [
        'version: "3"',
        `server: { command: php ${FIXTURES}/php/echo.php }`,
        'http:',
        `  address: 127.0.0.1:${port}`,
        '  pool:',
        '    min_workers: 0',
        '    max_workers: 2',
        '    supervisor: { idle_ttl: 300ms, watch_tick: 100ms }',
        `status: { address: 127.0.0.1:${status} }`,
        `admin: { socket: ${join(dir, 'dynamic.sock')} }`,
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', config]);
    await server.ready(20_000);
    const readiness = async () =>
      (await (await request(`http://127.0.0.1:${status}/ready`)).body.json()) as {
        status: string;
        sites: { default: { workers: { ready: number } } };
      };
    const readyWorkers = async () => (await readiness()).sites.default.workers.ready;
    for (let i = 0; i < 100 && (await readyWorkers()) > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await readyWorkers()).toBe(0);
    // scaled to zero on purpose is still ready: the next request boots a worker
    expect((await readiness()).status).toBe('ready');
    const res = await request(`http://127.0.0.1:${port}/cold`);
    expect(res.statusCode).toBe(200);
    expect(((await res.body.json()) as { count: number }).count).toBe(1);
    await server.stop();
  });
});
