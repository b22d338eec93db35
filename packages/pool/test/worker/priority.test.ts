import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { getPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { autogroupNice, DEFAULT_WORKER_NICE, lowerWorkerPriority } from '../../src/worker/priority.js';
import { withPool } from '../php-fixtures.js';
import { withCgiPool } from './cgi-pools.js';

// http.pool.nice: PHP workers run below the server's CPU priority, both as the process's nice and
// as its autogroup's (each worker leads a session, so the kernel weighs it as a whole group).

/** The nice value of a process, field 19 of /proc/PID/stat (after the command in parentheses). */
function niceOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

const ownAutogroup = process.platform === 'linux' ? autogroupNice(process.pid) : null;
const isRoot = process.getuid?.() === 0;

describe.skipIf(process.platform !== 'linux')('worker CPU priority (nice)', () => {
  it(`runs goridge workers ${DEFAULT_WORKER_NICE} steps below the server by default`, async () => {
    await withPool('echo.php', { num_workers: 2 }, async (pool) => {
      const workers = await pool.workers();
      expect(workers).toHaveLength(2);
      for (const { pid } of workers) {
        expect(niceOf(pid)).toBe(Math.min(19, getPriority() + DEFAULT_WORKER_NICE));
        if (ownAutogroup !== null) expect(autogroupNice(pid)).toBe(Math.min(19, ownAutogroup + DEFAULT_WORKER_NICE));
      }
    });
  });

  it('runs php-cgi workers at the configured nice', async () => {
    await withCgiPool({ num_workers: 2, nice: 9 }, async (pool) => {
      for (const { pid } of await pool.workers()) {
        expect(niceOf(pid)).toBe(Math.min(19, getPriority() + 9));
        if (ownAutogroup !== null) expect(autogroupNice(pid)).toBe(Math.min(19, ownAutogroup + 9));
      }
    });
  });

  it('nice: 0 leaves workers at the server priority (their new autogroup at 0)', async () => {
    await withPool('echo.php', { nice: 0 }, async (pool) => {
      const [worker] = await pool.workers();
      expect(niceOf(worker!.pid)).toBe(getPriority());
      if (ownAutogroup !== null) expect(autogroupNice(worker!.pid)).toBe(0);
    });
  });

  it.skipIf(ownAutogroup === null)(
    'leaves the autogroup alone once the worker has exited (its pid may be reused)',
    async () => {
      const child = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
      try {
        lowerWorkerPriority(child.pid!, 6, () => false);
        expect(niceOf(child.pid!)).toBe(Math.min(19, getPriority() + 6));
        expect(autogroupNice(child.pid!)).toBe(0);
      } finally {
        child.kill('SIGKILL');
      }
    },
  );

  // Without CAP_SYS_ADMIN the kernel takes one autogroup change per 100 ms: workers started
  // together get theirs in turn. Run as nobody, with plain `sleep` children standing in for PHP.
  it.skipIf(!isRoot || ownAutogroup === null)(
    'an unprivileged server still lowers every worker started at once (the autogroup rate limit)',
    async () => {
      // the built module (node builtins only), copied where nobody can read it
      const dir = mkdtempSync(join(tmpdir(), 'warmpool-nice-'));
      chmodSync(dir, 0o755);
      const priority = join(dir, 'priority.mjs');
      copyFileSync(fileURLToPath(new URL('../../dist/worker/priority.js', import.meta.url)), priority);
      chmodSync(priority, 0o644);
      const script = `
        import { spawn } from 'node:child_process';
        import { autogroupNice, lowerWorkerPriority } from ${JSON.stringify(priority)};
        const children = [1, 2, 3, 4].map(() => spawn('sleep', ['30'], { detached: true, stdio: 'ignore' }));
        for (const child of children) lowerWorkerPriority(child.pid, 6);
        const done = () => children.every((child) => autogroupNice(child.pid) === 6);
        const started = Date.now();
        while (!done() && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 20));
        console.log(JSON.stringify(children.map((child) => autogroupNice(child.pid))));
        for (const child of children) child.kill('SIGKILL');
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        uid: 65534,
        gid: 65534,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
      });
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      rmSync(dir, { recursive: true, force: true });
      expect(code).toBe(0);
      expect(JSON.parse(out)).toEqual([6, 6, 6, 6]);
    },
  );
});
