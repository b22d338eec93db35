// The order lock between servers sharing certs_dir: exclusive, released, taken over from a holder
// that died (a real process that exited) or went silent, never from a live one.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAlive, tryLock, type HeldLock, type LockOwner } from '../../src/acme/lock.js';

let dir: string;
let path: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-acme-lock-'));
  path = join(dir, 'order.lock');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const isHeld = (result: HeldLock | LockOwner): result is HeldLock => 'release' in result;

describe('tryLock', () => {
  it('is exclusive: of ten concurrent attempts one holds it, the others see who', async () => {
    const results = await Promise.all(Array.from({ length: 10 }, () => tryLock(path)));
    const held = results.filter(isHeld);
    expect(held).toHaveLength(1);
    for (const other of results.filter((r) => !isHeld(r))) expect(other).toMatchObject({ pid: process.pid });
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ pid: process.pid });
    await held[0]!.release();
    const again = await tryLock(path);
    expect(isHeld(again)).toBe(true);
    await (again as HeldLock).release();
  });

  it('under load, no attempt ever reads a lock still being written: 50 rounds of ten', async () => {
    for (let round = 0; round < 50; round++) {
      const roundPath = join(dir, `round-${round}.lock`);
      const results = await Promise.all(Array.from({ length: 10 }, () => tryLock(roundPath)));
      expect(results.filter(isHeld)).toHaveLength(1);
      for (const other of results.filter((r) => !isHeld(r))) expect(other).toMatchObject({ pid: process.pid });
    }
    // the records were written aside and linked in: nothing but the locks is left in the folder
    expect((await readdir(dir)).every((name) => name.endsWith('.lock'))).toBe(true);
  });

  it('an empty or garbled lock file belongs to nobody and is taken over at once', async () => {
    await writeFile(path, '');
    const result = await tryLock(path);
    expect(isHeld(result)).toBe(true);
    await (result as HeldLock).release();
    await writeFile(path, '{"pid": 12');
    const again = await tryLock(path);
    expect(isHeld(again)).toBe(true);
    await (again as HeldLock).release();
  });

  it('takes over the lock of a process that is gone', async () => {
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
    expect(isAlive(Number(dead))).toBe(false);
    await writeFile(path, JSON.stringify({ pid: Number(dead), host: (await import('node:os')).hostname(), since: '' }));
    const result = await tryLock(path);
    expect(isHeld(result)).toBe(true);
    await (result as HeldLock).release();
  });

  it("another host's lock is kept while fresh and taken over once stale", async () => {
    await writeFile(path, JSON.stringify({ pid: 1, host: 'elsewhere', since: '2026-01-01T00:00:00Z' }));
    expect(await tryLock(path, 60_000)).toEqual({ pid: 1, host: 'elsewhere', since: '2026-01-01T00:00:00Z' });
    const old = new Date(Date.now() - 120_000);
    await utimes(path, old, old);
    const result = await tryLock(path, 60_000);
    expect(isHeld(result)).toBe(true);
    await (result as HeldLock).release();
  });

  it('release() leaves a lock that is no longer ours alone', async () => {
    const held = (await tryLock(path)) as HeldLock;
    await writeFile(path, JSON.stringify({ pid: 1, host: 'elsewhere', since: 'x', token: 'theirs' }));
    await held.release();
    expect(JSON.parse(await readFile(path, 'utf8'))).toMatchObject({ token: 'theirs' });
  });
});
