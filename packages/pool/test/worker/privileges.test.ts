import { describe, expect, it } from 'vitest';
import { request, withPool } from '../php-fixtures.js';

// server.user / server.group: when the server runs as root, workers run as another user.
const isRoot = process.getuid?.() === 0;

describe('worker privileges', () => {
  it.skipIf(!isRoot)('runs workers as the configured uid/gid (nobody:nogroup here)', async () => {
    await withPool('whoami.php', { uid: 65534, gid: 65534 }, async (pool) => {
      expect(JSON.parse((await pool.exec(request())).body.toString())).toEqual({ uid: 65534, gid: 65534 });
    });
  });

  it('without uid/gid, workers run as the server user', async () => {
    await withPool('whoami.php', {}, async (pool) => {
      expect(JSON.parse((await pool.exec(request())).body.toString())).toEqual({
        uid: process.getuid!(),
        gid: process.getgid!(),
      });
    });
  });
});
