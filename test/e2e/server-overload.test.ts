// Bounded queues by default (docs/SECURITY.md): 500 clients at once against two workers running a
// 200 ms handler. Every client gets an answer; those beyond the default queue (16 per worker) get
// 503 + Retry-After at once instead of waiting; the server serves normally right after.
import { join } from 'node:path';
import { Pool, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { FIXTURES, startServer, stopAllServers } from '../helpers/warmpool-server.js';

let httpPort: number;
let statusPort: number;

beforeAll(async () => {
  [httpPort, statusPort] = [await freePort(), await freePort()];
  const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'overload.yaml')], {
    env: { HTTP_PORT: String(httpPort), STATUS_PORT: String(statusPort), FIXTURES },
  });
  await server.ready();
});

afterAll(stopAllServers);

describe('overload with the default queue', () => {
  it('answers 500 simultaneous clients: 503 + Retry-After beyond the queue, 200 for the rest', async () => {
    const clients = new Pool(`http://127.0.0.1:${httpPort}`, { connections: 500, pipelining: 0 });
    try {
      const results = await Promise.all(
        Array.from({ length: 500 }, async () => {
          const res = await clients.request({ path: '/', method: 'POST', body: '200' });
          await res.body.text();
          return { status: res.statusCode, retryAfter: res.headers['retry-after'] };
        }),
      );
      const byStatus = new Map<number, number>();
      for (const { status } of results) byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
      console.log(`500 clients: ${[...byStatus].map(([s, n]) => `${n} × ${s}`).join(', ')}`);
      expect([...byStatus.keys()].sort()).toEqual([200, 503]);
      // 2 running + 32 queued at any moment: most of the 500 are told at once to come back
      expect(byStatus.get(503)).toBeGreaterThan(250);
      for (const r of results.filter((r) => r.status === 503)) expect(r.retryAfter).toBe('1');
    } finally {
      await clients.close();
    }
    const metrics = await (await request(`http://127.0.0.1:${statusPort}/metrics`)).body.text();
    expect(metrics).toMatch(/warmpool_queue_length\{[^}]*\} 0/);
    const res = await request(`http://127.0.0.1:${httpPort}/`, { method: 'POST', body: '0' });
    expect(res.statusCode).toBe(200);
    await res.body.text();
  });
});
