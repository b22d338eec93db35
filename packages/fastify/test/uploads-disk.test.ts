// A worker site's uploads.dir that cannot take a body (full, or gone: ENOSPC comes the same way as
// this ENOENT, the temp file's open or write fails): the server's fault, said in the log, never
// the client's 400 with an errno in Fastify's JSON.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { FormData, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_REQUEST_BODY_MEMORY_BYTES, requestBodyMemory } from '../src/http/raw-body.js';
import { warmpool } from '../src/index.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));

let app: FastifyInstance | null = null;
afterEach(async () => {
  await app?.close();
  app = null;
  requestBodyMemory.maxBytes = DEFAULT_REQUEST_BODY_MEMORY_BYTES;
});

/** A worker site whose uploads.dir is removed once it is up; its log lines. */
async function siteWithoutUploadsDir(): Promise<{ base: string; dir: string; lines: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'wp-uploads-gone-'));
  const lines: string[] = [];
  app = Fastify({ logger: { stream: { write: (line: string) => lines.push(line) } } });
  await app.register(warmpool, { command: ['php', fixture('echo.php')], pool: { num_workers: 1 }, uploads: { dir } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  rmSync(dir, { recursive: true, force: true });
  const { port } = app.server.address() as { port: number };
  return { base: `http://127.0.0.1:${port}`, dir, lines };
}

const logged = (lines: string[], level: number) =>
  lines.map((line) => JSON.parse(line) as { level: number; msg: string }).filter((l) => l.level === level);

describe('uploads.dir that cannot take a body (worker site)', () => {
  it('a raw body past the memory bound: 500 in plain text, and an error line saying where (before: 400 ENOENT in JSON, no line)', async () => {
    requestBodyMemory.maxBytes = 64 * 1024;
    const { base, dir, lines } = await siteWithoutUploadsDir();
    const res = await request(`${base}/raw`, {
      method: 'POST',
      body: Buffer.alloc(300_000, 1),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.statusCode).toBe(500);
    expect(res.headers['content-type']).toBe('text/plain; charset=utf-8');
    expect(await res.body.text()).toBe('Internal Server Error\n');
    expect(logged(lines, 50).map((l) => l.msg)).toEqual([
      `cannot write a request body to ${dir} (ENOENT): free space there, or point uploads.dir (http.uploads.dir) at a larger disk`,
    ]);
  });

  it('a multipart file: PHP gets the error PHP itself reports, and a warning says why (before: nothing)', async () => {
    const { base, dir, lines } = await siteWithoutUploadsDir();
    const form = new FormData();
    form.append('doc', new Blob([Buffer.alloc(50_000, 2)]), 'doc.bin');
    const res = await request(`${base}/upload`, { method: 'POST', body: form });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    expect(logged(lines, 40).map((l) => l.msg)).toEqual([
      `an uploaded file could not be written to ${dir} (ENOENT): PHP gets it with error 6 (UPLOAD_ERR_NO_TMP_DIR), as PHP reports it; free space there, or point uploads.dir (http.uploads.dir) at a larger disk`,
    ]);
  });
});
