import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { isAlive } from '../helpers/php.js';

// The README's quick start, as a user runs it: node examples/hello/server.mjs, then a browser.
describe('examples/hello over real HTTP', () => {
  let server: ChildProcess;
  let base: string;
  let output = '';

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawn(process.execPath, [fileURLToPath(new URL('../../examples/hello/server.mjs', import.meta.url))], {
      env: { ...process.env, PORT: String(port), WORKERS: '2', LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    server.stdout!.on('data', (c: Buffer) => (output += c));
    server.stderr!.on('data', (c: Buffer) => (output += c));
    const deadline = Date.now() + 20_000;
    while (!output.includes('listening on')) {
      if (Date.now() > deadline || server.exitCode !== null) throw new Error(`example did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(async () => {
    if (server.exitCode === null) {
      server.kill('SIGTERM');
      await once(server, 'exit');
    }
  });

  it('prints what it is doing: workers booting and the listening address', () => {
    expect(output).toContain('booting 2 PHP workers');
    expect(output).toContain(`listening on ${base}/`);
  });

  it('serves the PHP page from a warm worker whose counter goes up', async () => {
    const pages: { pid: number; count: number }[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await request(`${base}/?name=you`);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
      const html = await res.body.text();
      pages.push({ pid: Number(/id="pid">(\d+)/.exec(html)![1]), count: Number(/id="count">(\d+)/.exec(html)![1]) });
      expect(html).toContain('<code>name</code> = <code>you</code>');
    }
    // Sequential requests land on the most recently used worker: one pid, counting up.
    expect(new Set(pages.map((p) => p.pid)).size).toBe(1);
    expect(pages.map((p) => p.count)).toEqual([1, 2, 3, 4].map((n) => n + pages[0]!.count - 1));
  });

  it('serves static files from public/ and never the PHP source', async () => {
    const css = await request(`${base}/style.css`);
    expect(css.statusCode).toBe(200);
    expect(css.headers['content-type']).toMatch(/^text\/css/);
    expect(await css.body.text()).toContain('font-family');
    const source = await request(`${base}/worker.php`);
    expect(await source.body.text()).not.toContain('<?php');
  });

  it('stops its workers on SIGTERM', async () => {
    const res = await request(`${base}/`);
    const pid = Number(/id="pid">(\d+)/.exec(await res.body.text())![1]);
    expect(isAlive(pid)).toBe(true);
    server.kill('SIGTERM');
    const [code] = await once(server, 'exit');
    expect(code).toBe(0);
    expect(isAlive(pid)).toBe(false);
  });
});
