import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidPoolOptionError } from '../../src/errors.js';
import { createPool } from '../../src/pool/pool.js';
import { fixture, recordingLogger, request, withPool } from '../php-fixtures.js';

const isRoot = process.getuid?.() === 0;

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

  it.skipIf(!isRoot)('unix:// relay with workers run as another user (server.user): they may connect', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'warmpool-relay-user-'));
    chmodSync(dir, 0o755);
    try {
      // before: the socket was root's, srwxr-xr-x, and every boot failed with "Permission denied"
      await withPool(
        'whoami.php',
        { relay: `unix://${join(dir, 'relay.sock')}`, uid: 65534, gid: 65534 },
        async (pool) => {
          expect(JSON.parse((await pool.exec(request())).body.toString())).toEqual({ uid: 65534, gid: 65534 });
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a relay that cannot listen is the relay option's error, saying why and what to do", async () => {
    const missing = createPool({
      command: ['php', fixture('echo.php')],
      relay: 'unix:///nonexistent-warmpool/dir/r.sock',
      logger: recordingLogger(),
    });
    const error = await missing.start().catch((e: unknown) => e);
    await missing.close();
    expect(error).toBeInstanceOf(InvalidPoolOptionError);
    expect((error as Error).message).toBe(
      'pool option "relay": cannot listen on unix:///nonexistent-warmpool/dir/r.sock: the folder /nonexistent-warmpool/dir does not exist: create it, or leave relay unset (pipes)',
    );

    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as { port: number };
    const busy = createPool({
      command: ['php', fixture('echo.php')],
      relay: `tcp://127.0.0.1:${port}`,
      logger: recordingLogger(),
    });
    const inUse = await busy.start().catch((e: unknown) => e);
    await busy.close();
    taken.close();
    expect((inUse as Error).message).toContain(`cannot listen on tcp://127.0.0.1:${port}: the address is in use`);
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
