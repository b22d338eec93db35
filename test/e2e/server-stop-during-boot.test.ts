// SIGTERM to a server whose PHP is still booting (a worker stuck before its handshake, a php-cgi
// that never listens): the processes booting are killed and the server exits 0 at once. Before, it
// waited for the boot to end, up to allocate_timeout, and warmpool-swap SIGKILLed it after 5 s,
// leaving php-cgi's socket folders behind. allocate_timeout is 10 minutes here: past the test's bound.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { isAlive } from '../helpers/php.js';
import { type RunningServer, startServer, stopAllServers } from '../helpers/warmpool-server.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-stop-booting-'));
afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

/** Waits until `count` booting processes wrote their pid into `marks`; returns the pids. */
async function booted(server: RunningServer, marks: string, count: number): Promise<number[]> {
  for (;;) {
    const pids = readdirSync(marks).map(Number);
    if (pids.length >= count) return pids;
    if (server.child.exitCode !== null) throw new Error(`server exited:\n${server.stdout}${server.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function stopWhileBooting(name: string, site: string[], marks: string): Promise<string> {
  const port = await freePort();
  const config = join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    [
      'version: "3"',
      `http: { address: "127.0.0.1:${port}", pool: { num_workers: 2, allocate_timeout: 10m } }`,
      'logs: { mode: production, level: error }',
      ...site,
      '',
    ].join('\n'),
  );
  const tmp = join(dir, `${name}-tmp`);
  mkdirSync(tmp);
  const server = startServer(['serve', '-c', config], { env: { TMPDIR: tmp } });
  const pids = await booted(server, marks, 2);
  const exit = await server.stop('SIGTERM');
  const output = server.stdout + server.stderr;
  expect(exit, output).toEqual({ code: 0, signal: null });
  expect(output).toContain('SIGTERM during boot: stopped the workers booting');
  expect(output).not.toContain('warmpool ready');
  for (const pid of pids) expect(isAlive(pid), `pid ${pid}`).toBe(false);
  // php-cgi's socket folders go with their processes
  expect(readdirSync(tmp)).toEqual([]);
  return output;
}

describe('a stop signal while the PHP processes boot', () => {
  it('worker mode: workers stuck before the handshake are killed, exit 0', async () => {
    const marks = join(dir, 'worker-marks');
    mkdirSync(marks);
    const worker = join(dir, 'stuck-worker.php');
    writeFileSync(worker, `<?php touch('${marks}/' . getmypid()); sleep(600);\n`);
    await stopWhileBooting('worker', [`server: { command: "php ${worker}" }`], marks);
  });

  it('managed php-cgi: processes that never listen are killed, their socket folders removed, exit 0', async () => {
    const marks = join(dir, 'cgi-marks');
    mkdirSync(marks);
    const root = join(dir, 'root');
    mkdirSync(root);
    writeFileSync(join(root, 'index.php'), '<?php echo "hello";\n');
    // php-cgi's stand-in: runs, never binds its socket
    const stuck = join(dir, 'stuck-cgi.sh');
    // (php-cgi gets a cleared environment: the folder is written into the script)
    writeFileSync(stuck, `#!/bin/sh\ntouch "${marks}/$$"\nexec sleep 600\n`);
    chmodSync(stuck, 0o755);
    await stopWhileBooting('cgi', ['fastcgi:', `  root: ${root}`, `  command: ${stuck}`], marks);
  });
});
