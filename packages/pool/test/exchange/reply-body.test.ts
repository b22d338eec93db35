// ReplyBody over a frame stream that failed before the body was built on it (the worker's error
// frame in the same read as the first frame): the body fails too, instead of waiting for good.
import { once } from 'node:events';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ReplyBody } from '../../src/exchange/reply-body.js';
import type { ReplyStream } from '../../src/worker/worker.js';

async function destroyedFrames(error?: Error): Promise<ReplyStream> {
  const frames = new Readable({ objectMode: true, read() {} });
  frames.on('error', () => {});
  frames.destroy(error);
  await new Promise((resolve) => frames.once('close', resolve));
  return frames as unknown as ReplyStream;
}

describe('ReplyBody over frames that already failed', () => {
  it('fails with the frames error', async () => {
    const body = new ReplyBody([Buffer.from('part1\n')], await destroyedFrames(new Error('failed mid-stream')));
    const [error] = (await once(body, 'error')) as [Error];
    expect(error.message).toBe('failed mid-stream');
  });

  it('fails when the frames were destroyed without an error', async () => {
    const body = new ReplyBody([Buffer.from('part1\n')], await destroyedFrames());
    const [error] = (await once(body, 'error')) as [Error];
    expect(error.message).toMatch(/stopped before its end/);
  });
});
