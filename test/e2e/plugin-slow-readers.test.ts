// Bounded memory for slow readers (docs/SECURITY.md): twenty clients that ask for a 10 MB reply and
// stop reading must not make Node hold 200 MB. Past BODY_MEMORY_BYTES a body waits for a slow
// client in a temp file (unlinked at once), as nginx's proxy buffers spill to disk.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../helpers/slow-readers.mjs', import.meta.url));
const MB = 1024 * 1024;

interface Phase {
  phase: string;
  arrayBuffers: number;
  spilled: number;
}

function run(): Promise<Phase[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', SCRIPT], { env: { ...process.env, CLIENTS: '20' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c));
    child.stderr.on('data', (c: Buffer) => (err += c));
    child.once('exit', (code) => {
      if (code !== 0) reject(new Error(`slow-readers.mjs exited ${code}: ${err}`));
      else
        resolve(
          out
            .trim()
            .split('\n')
            .map((line) => JSON.parse(line) as Phase),
        );
    });
  });
}

describe('slow readers of large replies', () => {
  it('twenty clients stalled on a 10 MB reply each hold about 1 MB in Node, not 10; it all goes when they leave', async () => {
    const [before, waiting, after] = await run();
    console.log(
      `ArrayBuffers: ${Math.round(before!.arrayBuffers / MB)} MB before, ${Math.round(waiting!.arrayBuffers / MB)} MB ` +
        `with 20 stalled readers (${waiting!.spilled} bodies in temp files), ${Math.round(after!.arrayBuffers / MB)} MB after`,
    );
    expect(waiting!.spilled).toBe(20);
    // 20 × 10 MB is 200 MB held without the spill
    expect(waiting!.arrayBuffers - before!.arrayBuffers).toBeLessThan(25 * MB);
    expect(after!.arrayBuffers - before!.arrayBuffers).toBeLessThan(5 * MB);
    expect(after!.spilled).toBe(0);
  });
});
