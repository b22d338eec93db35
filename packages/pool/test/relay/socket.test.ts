import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { request, withPool } from '../php-fixtures.js';

describe('Socket relays: workers connect back as RoadRunner workers do', () => {
  it('unix:// relay serves requests, and the worker reads the socket DSN from RR_RELAY', async () => {
    const path = join(tmpdir(), `warmpool-relay-${process.pid}.sock`);
    await withPool('echo.php', { relay: `unix://${path}`, num_workers: 2 }, async (pool) => {
      const replies = await Promise.all([pool.exec(request('a')), pool.exec(request('b'))]);
      const bodies = replies.map((r) => JSON.parse(r.body.toString()));
      expect(bodies.map((b) => b.body).sort()).toEqual(['a', 'b']);
      expect(bodies[0].env.RR_RELAY).toBe(`unix://${path}`);
      expect(new Set(bodies.map((b) => b.pid)).size).toBe(2);
    });
  });

  it('tcp:// relay on an ephemeral port serves requests', async () => {
    await withPool('echo.php', { relay: 'tcp://127.0.0.1:0', num_workers: 2 }, async (pool) => {
      const reply = JSON.parse((await pool.exec(request('over tcp'))).body.toString());
      expect(reply.body).toBe('over tcp');
      expect(reply.env.RR_RELAY).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
      expect(reply.env.RR_RELAY).not.toBe('tcp://127.0.0.1:0');
    });
  });
});
