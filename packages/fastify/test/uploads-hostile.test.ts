// Hostile multipart forms against the real plugin and a real PHP worker, over a raw socket (file
// names are written byte for byte, NUL included): too many files, control bytes in a file name,
// forbidden extensions hidden behind trailing dots and spaces.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { warmpool } from '../src/index.js';
import type { UploadOptions } from '../src/http/uploads.js';

const FORM_UPLOADS = fileURLToPath(new URL('../../../test/fixtures/php/form-uploads.php', import.meta.url));
const BOUNDARY = 'wpHostileBoundary41';

const apps: FastifyInstance[] = [];
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-uploads-hostile-'));
});

afterAll(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await rm(dir, { recursive: true, force: true });
});

async function listen(uploads: UploadOptions = {}): Promise<{ app: FastifyInstance; port: number }> {
  const app = Fastify();
  apps.push(app);
  await app.register(warmpool, {
    command: ['php', FORM_UPLOADS],
    pool: { num_workers: 1 },
    uploads: { dir, ...uploads },
    // the refusals then say their code (plain text either way)
    debug: true,
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, port: (app.server.address() as { port: number }).port };
}

/** One file part; `disposition` is the Content-Disposition parameters after form-data, as raw bytes. */
function filePart(disposition: string, data = 'hello'): Buffer {
  return Buffer.from(
    `--${BOUNDARY}\r\nContent-Disposition: form-data; ${disposition}\r\nContent-Type: text/plain\r\n\r\n${data}\r\n`,
    'latin1',
  );
}

interface Answer {
  status: number;
  head: string;
  body: string;
}

/**
 * POSTs `body` over a fresh connection and reads until the server closes. A write error is left to
 * the answer: a 413 comes, and the connection closes, before a large body is all sent.
 */
function post(port: number, path: string, contentType: string, body: Buffer): Promise<Answer> {
  const head =
    `POST ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n` +
    `Content-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`;
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(Buffer.concat([Buffer.from(head), body])));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {});
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      resolve({ status: Number(text.slice(9, 12)), head: text.slice(0, split), body: text.slice(split + 4) });
    });
  });
}

/** POSTs the parts as one multipart body. */
function postParts(port: number, parts: Buffer[]): Promise<Answer> {
  const body = Buffer.concat([...parts, Buffer.from(`--${BOUNDARY}--\r\n`)]);
  return post(port, '/upload', `multipart/form-data; boundary=${BOUNDARY}`, body);
}

/** POSTs an urlencoded form. */
function postForm(port: number, form: string): Promise<Answer> {
  return post(port, '/form', 'application/x-www-form-urlencoded', Buffer.from(form));
}

const files = (n: number): Buffer[] => Array.from({ length: n }, (_, i) => filePart(`name="f[]"; filename="${i}.txt"`));

describe('multipart: files per request (max_files, PHP max_file_uploads)', () => {
  it('20 files by default are fine; the 21st answers 413 WP_FASTIFY_TOO_MANY_FILES before PHP runs, leaving no temp file', async () => {
    const { app, port } = await listen();
    const ok = await postParts(port, files(20));
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).uploads.f).toHaveLength(20);
    const before = app.warmpool.stats().requests;

    const over = await postParts(port, files(21));
    expect(over.status).toBe(413);
    expect(over.body).toMatch(/^WP_FASTIFY_TOO_MANY_FILES: /);
    expect(over.head.toLowerCase()).toContain('connection: close');
    expect(app.warmpool.stats().requests).toBe(before);
    expect(await readdir(dir)).toEqual([]);
  });

  it('max_files: 0 lifts the cap; a smaller cap is kept', async () => {
    const unlimited = await listen({ max_files: 0 });
    expect((await postParts(unlimited.port, files(25))).status).toBe(200);
    const two = await listen({ max_files: 2 });
    expect((await postParts(two.port, files(3))).status).toBe(413);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('forms: fields per request (max_fields, PHP max_input_vars)', () => {
  const textFields = (n: number): Buffer[] =>
    Array.from({ length: n }, (_, i) =>
      Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="t${i}"\r\n\r\nv\r\n`, 'latin1'),
    );
  /** an urlencoded form of `n` fields */
  const postUrlencoded = (port: number, n: number): Promise<Answer> =>
    postForm(port, Array.from({ length: n }, (_, i) => `t${i}=v`).join('&'));

  it('10000 fields by default are fine; one more answers 413 WP_FASTIFY_TOO_MANY_FIELDS before PHP runs (urlencoded and multipart)', async () => {
    const { app, port } = await listen();
    const ok = await postUrlencoded(port, 10_000);
    expect(ok.status).toBe(200);
    expect(Object.keys(JSON.parse(ok.body).fields)).toHaveLength(10_000);
    const before = app.warmpool.stats().requests;
    const over = await postUrlencoded(port, 10_001);
    expect(over.status).toBe(413);
    expect(over.body).toMatch(/^WP_FASTIFY_TOO_MANY_FIELDS: /);
    const overMultipart = await postParts(port, textFields(10_001));
    expect(overMultipart.status).toBe(413);
    expect(overMultipart.body).toMatch(/^WP_FASTIFY_TOO_MANY_FIELDS: /);
    expect(app.warmpool.stats().requests).toBe(before);
  });

  it("an urlencoded form over 10 MB (Go's and RoadRunner's limit) answers 413 before it is parsed; 1 MB is fine", async () => {
    const { port } = await listen();
    const postBytes = (bytes: number) => postForm(port, `a=${'x'.repeat(bytes - 2)}`);
    expect((await postBytes(1024 * 1024)).status).toBe(200);
    const over = await postBytes(10 * 1024 * 1024 + 1);
    expect(over.status).toBe(413);
    expect(over.body).toMatch(/^WP_FASTIFY_BODY_TOO_LARGE: /);
    expect(over.body).toMatch(/urlencoded form is over 10485760 bytes/);
  });

  it('max_fields: a smaller cap is kept (files do not count), 0 lifts it', async () => {
    const three = await listen({ max_fields: 3 });
    expect((await postUrlencoded(three.port, 3)).status).toBe(200);
    expect((await postUrlencoded(three.port, 4)).status).toBe(413);
    expect((await postParts(three.port, [...textFields(3), ...files(2)])).status).toBe(200);
    expect((await postParts(three.port, textFields(4))).status).toBe(413);
    const unlimited = await listen({ max_fields: 0 });
    expect((await postUrlencoded(unlimited.port, 12_000)).status).toBe(200);
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('multipart: file names', () => {
  it.each([
    ['a raw NUL', 'name="f"; filename="shell.php\x00.jpg"'],
    ['an encoded NUL (RFC 5987)', `name="f"; filename*=UTF-8''shell.php%00.jpg`],
    ['an encoded control byte', `name="f"; filename*=UTF-8''a%01b.txt`],
  ])(
    'a file name with %s answers 400 WP_FASTIFY_BAD_FORM; PHP never sees it and no temp file is left',
    async (_what, disposition) => {
      const { app, port } = await listen();
      const before = app.warmpool.stats().requests;
      const res = await postParts(port, [filePart('name="first"; filename="ok.txt"'), filePart(disposition)]);
      expect(res.status).toBe(400);
      expect(res.body).toMatch(/^WP_FASTIFY_BAD_FORM: /);
      expect(app.warmpool.stats().requests).toBe(before);
      expect(await readdir(dir)).toEqual([]);
    },
  );

  it('forbid sees through trailing dots and spaces: shell.php. and shell.php  are error 8, never stored', async () => {
    const { port } = await listen();
    const names = ['shell.php.', 'shell.php ', 'shell.php. .', 'SHELL.PHP..', 'run.exe ', 'fine.txt.'];
    const res = await postParts(
      port,
      names.map((name) => filePart(`name="f[]"; filename="${name}"`)),
    );
    expect(res.status).toBe(200);
    const leaves = JSON.parse(res.body).uploads.f as { name: string; error: number; tmpName: string }[];
    expect(leaves.map((leaf) => [leaf.name, leaf.error])).toEqual([
      ['shell.php.', 8],
      ['shell.php ', 8],
      ['shell.php. .', 8],
      ['SHELL.PHP..', 8],
      ['run.exe ', 8],
      ['fine.txt.', 0],
    ]);
    expect(leaves.filter((leaf) => leaf.error === 8).every((leaf) => leaf.tmpName === '')).toBe(true);
  });
});
