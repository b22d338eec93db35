import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';

// examples/existing-app as its README runs it: TypeScript routes and PHP side by side.
describe('examples/existing-app', () => {
  let server: ChildProcess;
  let base: string;
  let output = '';

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawn(
      process.execPath,
      [fileURLToPath(new URL('../../examples/existing-app/dist/app.js', import.meta.url))],
      {
        env: { ...process.env, PORT: String(port) },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    server.stdout!.on('data', (c: Buffer) => (output += c));
    server.stderr!.on('data', (c: Buffer) => (output += c));
    const deadline = Date.now() + 20_000;
    while (!output.includes('Server listening')) {
      if (Date.now() > deadline || server.exitCode !== null) throw new Error(`example did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(async () => {
    server.kill('SIGTERM');
    if (server.exitCode === null) await once(server, 'exit');
  });

  it('keeps its own TypeScript routes', async () => {
    const time = await (await request(`${base}/api/time`)).body.json();
    expect(time).toMatchObject({ servedBy: 'typescript' });
    const echo = await request(`${base}/api/echo`, {
      method: 'POST',
      body: JSON.stringify({ a: 1 }),
      headers: { 'content-type': 'application/json' },
    });
    expect(await echo.body.json()).toEqual({ youSent: { a: 1 } });
  });

  it('sends everything else to the warm PHP worker', async () => {
    const first = (await (await request(`${base}/products?id=7`)).body.json()) as {
      servedBy: string;
      path: string;
      query: unknown;
      hits: number;
    };
    const second = (await (await request(`${base}/products?id=7`)).body.json()) as { hits: number };
    expect(first).toMatchObject({ servedBy: 'php', path: '/products', query: { id: '7' } });
    expect(second.hits).toBe(first.hits + 1);
  });
});
