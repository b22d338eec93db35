// A request body in a temp file (FileBody): written into the worker's frame in pieces after its
// head, never read back whole, byte for byte; a file that cannot give its bytes kills the worker
// that got part of the frame, and the next request runs on its replacement.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileBody } from '../src/file-body.js';
import { FLAG_CODEC_JSON } from '../src/protocol/frame.js';
import type { ExecRequest } from '../src/worker/worker.js';
import { eventually, recordingLogger, request, withPool } from './php-fixtures.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-file-body-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A FileBody over a file holding `bytes`; `declared`: the length it claims (more: a file that ends early). */
async function fileBody(bytes: Buffer, declared = bytes.length): Promise<FileBody> {
  const path = join(dir, `body-${Math.random().toString(36).slice(2)}`);
  const handle = await open(path, 'w+');
  await handle.write(bytes, 0, bytes.length, 0);
  return new FileBody(handle, declared);
}

const execRequest = (body: FileBody): ExecRequest => ({
  flags: FLAG_CODEC_JSON,
  context: JSON.stringify({ method: 'POST', uri: 'http://localhost/' }),
  body,
});

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('FileBody', () => {
  it('reaches the worker byte for byte, as often as it is sent, and the worker serves on', async () => {
    const bytes = Buffer.alloc(5 * 1024 * 1024 + 17);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7 + (i >> 12)) & 0xff;
    const body = await fileBody(bytes);
    await withPool('body-checksum.php', {}, async (pool) => {
      const answers = [];
      // twice: a request that runs again on another worker reads the file again from its start
      for (let i = 0; i < 2; i++) answers.push(JSON.parse((await pool.exec(execRequest(body))).body.toString()));
      expect(answers.map((a) => [a.length, a.sha256])).toEqual([
        [bytes.length, sha(bytes)],
        [bytes.length, sha(bytes)],
      ]);
      expect(answers[0].pid).toBe(answers[1].pid);
      expect(JSON.parse((await pool.exec(request('after'))).body.toString()).length).toBe(5);
    });
    body.dispose();
    // as a STDIN stream too, once more
    const again = await fileBody(bytes);
    const parts: Buffer[] = [];
    for await (const part of again.stream()) parts.push(part as Buffer);
    expect(sha(Buffer.concat(parts))).toBe(sha(bytes));
    again.dispose();
  });

  it('a file that ends early fails its request and kills the worker, which got part of its frame', async () => {
    const logger = recordingLogger();
    const body = await fileBody(Buffer.alloc(300 * 1024, 1), 400 * 1024);
    await withPool('body-checksum.php', { logger }, async (pool) => {
      await expect(pool.exec(execRequest(body))).rejects.toThrow(/could not be read from its temp file.*was killed/);
      expect(logger.lines.some((line) => line.obj.reason === 'request_body')).toBe(true);
      await eventually(() => pool.stats().workers.ready === 1, 'the replacement worker');
      expect(JSON.parse((await pool.exec(request('next'))).body.toString()).length).toBe(4);
    });
    body.dispose();
  });
});
