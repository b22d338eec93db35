import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { FIXTURES, runCli, startServer, stopAllServers } from '../helpers/warmpool-server.js';

// One VPS, several sites: one site's broken deploy (a parse error in its worker) must not keep the
// others from starting, as one php-fpm pool's broken app does not stop nginx's other sites.
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-broken-site-'));
});
afterAll(async () => {
  await stopAllServers();
  await rm(dir, { recursive: true, force: true });
});

describe('a site whose workers cannot boot, among others', () => {
  it('the others are served; it answers 502 and says why; once fixed, a reset brings it up', async () => {
    const broken = join(dir, 'broken.php');
    await writeFile(broken, '<?php\nthis is not php(\n');
    const port = await freePort();
    const statusPort = await freePort();
    const socket = join(dir, 'admin.sock');
    const file = join(dir, 'warmpool.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        `http: { address: "127.0.0.1:${port}", pool: { num_workers: 1 } }`,
        `admin: { socket: ${socket} }`,
        `status: { address: "127.0.0.1:${statusPort}" }`,
        'sites:',
        '  - hosts: [good.test]',
        `    server: { command: php ${FIXTURES}/php/echo.php }`,
        '  - hosts: [broken.test]',
        `    server: { command: php ${broken} }`,
        '',
      ].join('\n'),
    );
    // before: serve exited 6, and every site was down
    const server = startServer(['serve', '-c', file]);
    await server.ready();
    expect(server.stderr).toContain('site broken.test: PHP workers failed to boot');
    expect(server.stderr).toContain('the other sites are served');
    // the worker that runs, not the two the sites want; one period after the error
    expect(server.stdout).toMatch(/warmpool ready in .*: 2 sites, 1 worker /);
    expect(server.stderr).not.toContain('..');
    const get = async (host: string) => {
      const res = await request(`http://127.0.0.1:${port}/`, { headers: { host } });
      await res.body.dump();
      return res.statusCode;
    };
    expect(await get('good.test')).toBe(200);
    expect(await get('broken.test')).toBe(502);
    // /ready is the whole server's; ?site= one site's, for a load balancer in front of each
    const ready = async (query: string) => {
      const res = await request(`http://127.0.0.1:${statusPort}/ready${query}`);
      await res.body.dump();
      return res.statusCode;
    };
    expect([await ready(''), await ready('?site=good.test'), await ready('?site=broken.test')]).toEqual([
      503, 200, 503,
    ]);
    expect(await ready('?site=nowhere.test')).toBe(404);
    // the deploy is fixed: a reset boots it now, not at the next retry
    await writeFile(broken, `<?php\nrequire ${JSON.stringify(join(FIXTURES, 'php', 'echo.php'))};\n`);
    const reset = await runCli(['reset', '--site', 'broken.test', '--socket', socket]);
    expect(reset.code).toBe(0);
    expect(await get('broken.test')).toBe(200);
    expect((await server.stop()).code).toBe(0);
  });

  it('every site down: serve runs on and retries, but its ready line is a warning that says so, never a ✓', async () => {
    const broken = join(dir, 'all-broken.php');
    await writeFile(broken, '<?php\nthis is not php(\n');
    const file = join(dir, 'all-broken.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        `http: { address: "127.0.0.1:${await freePort()}", pool: { num_workers: 1 } }`,
        `admin: { socket: ${join(dir, 'all-broken.sock')} }`,
        `server: { command: php ${broken} }`,
        'sites:',
        '  - hosts: [one.test]',
        '  - hosts: [two.test]',
        '',
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', file]);
    await server.ready();
    expect(server.stdout + server.stderr).toMatch(
      /▲ warmpool ready in .*: 3 sites, 0 workers .*; but no site's PHP workers could boot \(said above\): every request gets 502 while warmpool retries/,
    );
    expect(server.stdout).not.toMatch(/✓ warmpool ready/);
    await server.stop();
  });

  it('alone, a site whose workers cannot boot still stops serve (exit 6), as RoadRunner', async () => {
    const broken = join(dir, 'alone.php');
    await writeFile(broken, '<?php\nthis is not php(\n');
    const file = join(dir, 'alone.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        `http: { address: "127.0.0.1:${await freePort()}" }`,
        `server: { command: php ${broken} }`,
        '',
      ].join('\n'),
    );
    const served = await runCli(['serve', '-c', file]);
    expect(served.code).toBe(6);
    expect(served.stderr).toContain('PHP workers failed to boot');
  });
});
