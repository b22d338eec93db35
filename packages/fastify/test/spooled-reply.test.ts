// SpooledReply: a streamed reply read at the backend's pace while the client lags, kept in memory
// then in a temp file, and given back whole and in order; the backend waits again only past the
// file's bound or without a temp file. Real files, real streams.
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync, readlinkSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { responseMemory } from '../src/http/response-memory.js';
import { SpooledReply, spooledFileBytes } from '../src/http/spooled-reply.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-spool-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `chunks` chunks of 16 KiB, each different, as fast as they are asked for. */
function source(chunks: number): { stream: Readable; sha: string; bytes: number } {
  const all: Buffer[] = [];
  for (let i = 0; i < chunks; i++) all.push(Buffer.alloc(16 * 1024, i % 251));
  let next = 0;
  const stream = new Readable({
    read() {
      this.push(next < all.length ? all[next++] : null);
    },
  });
  return { stream, sha: createHash('sha256').update(Buffer.concat(all)).digest('hex'), bytes: chunks * 16 * 1024 };
}

async function readAll(stream: Readable): Promise<{ sha: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha: hash.digest('hex'), bytes };
}

describe('SpooledReply', () => {
  it('reads the backend to its end while the client reads nothing, then gives it all back in order', async () => {
    const backend = source(320); // 5 MiB
    const reply = new SpooledReply(backend.stream, { memoryBytes: 256 * 1024, dir });
    reply.pause();
    await once(backend.stream, 'end'); // the backend is done: nothing of it waits for the client
    // all of it: what waits here, and what the stream took into its own buffer before the pause
    expect(reply.spooledBytes + reply.readableLength).toBe(backend.bytes);
    // the temp file is unlinked at once: nothing is left in its folder
    expect(await readdir(dir)).toEqual([]);
    expect(await readAll(reply)).toEqual({ sha: backend.sha, bytes: backend.bytes });
  });

  it('counts its memory part in the process bound, and keeps nothing more in memory once the bound is reached', async () => {
    const before = responseMemory.heldBytes;
    const first = source(320);
    const kept = new SpooledReply(first.stream, { memoryBytes: 256 * 1024, dir });
    kept.pause();
    await once(first.stream, 'end');
    const memoryPart = responseMemory.heldBytes - before;
    expect(memoryPart).toBeGreaterThanOrEqual(256 * 1024);
    // the bound is reached: the next reply sends what its client has not taken to its file at once
    const max = responseMemory.maxBytes;
    responseMemory.maxBytes = responseMemory.heldBytes;
    try {
      const second = source(320);
      const filed = new SpooledReply(second.stream, { memoryBytes: 256 * 1024, dir });
      filed.pause();
      await once(second.stream, 'end');
      expect(responseMemory.heldBytes - before).toBe(memoryPart);
      expect(filed.spooledBytes + filed.readableLength).toBe(second.bytes);
      expect(await readAll(filed)).toEqual({ sha: second.sha, bytes: second.bytes });
    } finally {
      responseMemory.maxBytes = max;
    }
    expect(await readAll(kept)).toEqual({ sha: first.sha, bytes: first.bytes });
    expect(responseMemory.heldBytes).toBe(before);
  });

  it('passes a reply straight through to a client that keeps up', async () => {
    const backend = source(64);
    const reply = new SpooledReply(backend.stream, { memoryBytes: 256 * 1024, dir });
    expect(await readAll(reply)).toEqual({ sha: backend.sha, bytes: backend.bytes });
  });

  it('lets the backend wait for the client past the file bound, and again once it reads', async () => {
    const backend = source(320);
    const reply = new SpooledReply(backend.stream, { memoryBytes: 64 * 1024, fileMaxBytes: 512 * 1024, dir });
    reply.pause();
    await new Promise<void>((resolve) => {
      const check = () => (backend.stream.isPaused() ? resolve() : setImmediate(check));
      check();
    });
    expect(backend.stream.readableEnded).toBe(false);
    expect(reply.spooledBytes).toBeLessThan(backend.bytes);
    expect(await readAll(reply)).toEqual({ sha: backend.sha, bytes: backend.bytes });
  });

  it('a client reading steadily, slower than the backend: the temp file never grows past its bound (before: the whole reply went through it)', async () => {
    const sub = await mkdtemp(join(dir, 'steady-'));
    /** The size of the (unlinked) temp files this process holds open under `sub`, from /proc. */
    const onDisk = () => {
      let bytes = 0;
      for (const fd of readdirSync('/proc/self/fd')) {
        try {
          if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(sub)) bytes += statSync(`/proc/self/fd/${fd}`).size;
        } catch {
          // closed meanwhile
        }
      }
      return bytes;
    };
    const backend = source(640); // 10 MiB, as fast as it is asked for
    const fileMax = 512 * 1024;
    const reply = new SpooledReply(backend.stream, { memoryBytes: 64 * 1024, fileMaxBytes: fileMax, dir: sub });
    const hash = createHash('sha256');
    let bytes = 0;
    let largest = 0;
    for await (const chunk of reply) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
      largest = Math.max(largest, onDisk());
      // a turn of the event loop for every chunk read: the backend fills faster than this reads
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect({ sha: hash.digest('hex'), bytes }).toEqual({ sha: backend.sha, bytes: backend.bytes });
    expect(largest).toBeGreaterThan(0);
    // past the bound by at most what was on its way to the disk when it was reached: the batch being
    // written and the one queued behind it, each up to memoryBytes and a chunk (the old code: 10 MB)
    expect(largest).toBeLessThanOrEqual(fileMax + 2 * (64 * 1024 + 16 * 1024));
  });

  it('lets the backend wait once all the temp files of the process hold their bound, and counts them back', async () => {
    const before = spooledFileBytes();
    const backend = source(320);
    const reply = new SpooledReply(backend.stream, { memoryBytes: 64 * 1024, totalMaxBytes: before + 256 * 1024, dir });
    reply.pause();
    await new Promise<void>((resolve) => {
      // held by the bound over all files, not by a file still being opened
      const held = () => backend.stream.isPaused() && spooledFileBytes() >= before + 256 * 1024;
      const check = () => (held() ? resolve() : setImmediate(check));
      check();
    });
    expect(backend.stream.readableEnded).toBe(false);
    expect(spooledFileBytes()).toBeGreaterThan(before);
    expect(await readAll(reply)).toEqual({ sha: backend.sha, bytes: backend.bytes });
    expect(spooledFileBytes()).toBe(before);
    // a reply given up with bytes in its file gives them back too
    const gone = source(320);
    const left = new SpooledReply(gone.stream, { memoryBytes: 64 * 1024, dir });
    left.pause();
    await once(gone.stream, 'end');
    expect(spooledFileBytes()).toBeGreaterThan(before);
    left.destroy();
    await once(left, 'close');
    expect(spooledFileBytes()).toBe(before);
  });

  it('without a temp file (no folder), keeps to memory and lets the backend wait, as before', async () => {
    const backend = source(320);
    const reply = new SpooledReply(backend.stream, { memoryBytes: 64 * 1024, dir: join(dir, 'missing') });
    reply.pause();
    await new Promise<void>((resolve) => {
      const check = () => (backend.stream.isPaused() ? resolve() : setImmediate(check));
      check();
    });
    expect(backend.stream.readableEnded).toBe(false);
    expect(await readAll(reply)).toEqual({ sha: backend.sha, bytes: backend.bytes });
  });

  it('a client that leaves destroys the backend stream (the worker is let go); a backend error fails the reply', async () => {
    const gone = source(320);
    const left = new SpooledReply(gone.stream, { memoryBytes: 64 * 1024, dir });
    left.pause();
    await once(gone.stream, 'end').catch(() => {});
    const slow = new Readable({ read() {} });
    const reply = new SpooledReply(slow, { dir });
    slow.push(Buffer.alloc(10));
    reply.destroy();
    await once(slow, 'close');
    expect(slow.destroyed).toBe(true);

    // a backend stream destroyed without an error before its end cuts the reply, never leaves it waiting
    const stopped = new Readable({ read() {} });
    const cut = new SpooledReply(stopped, { dir });
    const cutError = once(cut, 'error');
    stopped.push(Buffer.alloc(10));
    stopped.destroy();
    expect(((await cutError)[0] as Error).message).toBe("the backend's reply stopped before its end");

    const failing = new Readable({ read() {} });
    const failed = new SpooledReply(failing, { dir });
    const error = once(failed, 'error');
    failing.destroy(new Error('the worker died mid-body'));
    expect(((await error)[0] as Error).message).toBe('the worker died mid-body');
    left.destroy();
  });
});

describe('SpooledReply over a backend stream that already failed', () => {
  it('fails with its error, though the error was emitted before the reply was built', async () => {
    const failed = new Readable({ read() {} });
    failed.on('error', () => {}); // as the pool's reply streams do: nobody listened yet
    failed.destroy(new Error('worker failed mid-stream'));
    await new Promise((resolve) => failed.once('close', resolve));
    const reply = new SpooledReply(failed, { dir });
    const [error] = (await once(reply, 'error')) as [Error];
    expect(error.message).toBe('worker failed mid-stream');
  });

  it('fails when the backend stream was destroyed without an error before its end', async () => {
    const cut = new Readable({ read() {} });
    cut.destroy();
    await once(cut, 'close');
    const reply = new SpooledReply(cut, { dir });
    const [error] = (await once(reply, 'error')) as [Error];
    expect(error.message).toMatch(/stopped before its end/);
  });
});
