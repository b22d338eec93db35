import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, mkdtemp, readdir, rm, stat, readFile, unlink } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify';
import { FormData, Response } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { BodyTooLargeError, InvalidOptionError, TooManyFilesError } from '../src/errors.js';
import { registerFormParsers } from '../src/http/form-parsers.js';
import { encodeFormFields, isParsedForm, type FormTree, type FormValue } from '../src/http/forms.js';
import {
  DEFAULT_UPLOAD_FORBID,
  holdUploads,
  parseMultipart,
  resolveUploadOptions,
  type UploadedFile,
  type UploadOptions,
} from '../src/http/uploads.js';

const MB = 1024 * 1024;
const apps: FastifyInstance[] = [];
const dirs: string[] = [];
const sockets: Socket[] = [];

afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  await Promise.all(apps.splice(0).map((app) => app.close()));
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function uploadsDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wp-uploads-test-'));
  dirs.push(dir);
  return dir;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls (no timing assertion): fails only if the condition never holds within a generous bound. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await sleep(10);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const isEmptyDir = (dir: string) => async () => (await readdir(dir)).length === 0;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function leaves(tree: FormValue | null): UploadedFile[] {
  if (tree === null || typeof tree === 'string') return [];
  if (Array.isArray(tree)) return tree.flatMap(leaves);
  if ('tmpName' in tree && typeof tree.tmpName === 'string') return [tree as UploadedFile];
  return Object.values(tree as FormTree).flatMap(leaves);
}

interface DiskFile {
  mode: number;
  size: number;
  sha256: string;
}

interface Seen {
  kind: string;
  fields: Record<string, unknown>;
  uploads: Record<string, unknown> | null;
  /** tmpName → what was on disk while the handler ran */
  onDisk: Record<string, DiskFile>;
  /** the uploads dir while the handler ran */
  dirDuring: string[];
  rawLength?: number;
}

interface AppOptions {
  uploads?: UploadOptions;
  bodyLimit?: number;
  inHandler?: (request: FastifyRequest) => void | Promise<void>;
}

/** A Fastify app with the form parsers on the plugin's layout: an encapsulated child with a raw '*' parser. */
async function appWith(options: AppOptions = {}): Promise<{ app: FastifyInstance; dir: string }> {
  const dir = await uploadsDir();
  const app = Fastify();
  apps.push(app);
  await app.register(async (child) => {
    child.removeAllContentTypeParsers();
    child.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
    registerFormParsers(child, {
      uploads: resolveUploadOptions({ dir, ...options.uploads }),
      ...(options.bodyLimit === undefined ? {} : { bodyLimit: options.bodyLimit }),
    });
    child.post('/*', async (request): Promise<Seen> => {
      await options.inHandler?.(request);
      const body = request.body;
      if (!isParsedForm(body))
        return {
          kind: 'raw',
          fields: {},
          uploads: null,
          onDisk: {},
          dirDuring: [],
          rawLength: (body as Buffer).length,
        };
      const onDisk: Record<string, DiskFile> = {};
      for (const leaf of leaves(body.uploads)) {
        if (leaf.tmpName === '') continue;
        const info = await stat(leaf.tmpName);
        onDisk[leaf.tmpName] = {
          mode: info.mode & 0o777,
          size: info.size,
          sha256: sha256(await readFile(leaf.tmpName)),
        };
      }
      return {
        kind: body.kind,
        fields: body.fields,
        uploads: body.uploads,
        onDisk,
        dirDuring: (await readdir(dir)).sort(),
      };
    });
  });
  await app.ready();
  return { app, dir };
}

interface Part {
  name?: string;
  value?: string;
  filename?: string;
  type?: string;
  data?: Buffer | string;
}

const BOUNDARY = 'wpTestBoundary9f8e7d';

function partHead(part: Part, boundary = BOUNDARY): string {
  let disposition = 'form-data';
  if (part.name !== undefined) disposition += `; name="${part.name}"`;
  if (part.filename !== undefined) disposition += `; filename="${part.filename}"`;
  let head = `--${boundary}\r\nContent-Disposition: ${disposition}\r\n`;
  if (part.type !== undefined) head += `Content-Type: ${part.type}\r\n`;
  return `${head}\r\n`;
}

/** A hand-written multipart body, byte for byte. */
function multipart(parts: Part[], boundary = BOUNDARY): { payload: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    chunks.push(Buffer.from(partHead(part, boundary)), Buffer.from(part.data ?? part.value ?? ''), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

async function post(app: FastifyInstance, body: { payload: Buffer | Readable; contentType: string }) {
  return app.inject({
    method: 'POST',
    url: '/upload',
    headers: { 'content-type': body.contentType },
    payload: body.payload,
  });
}

/** Every byte value plus sequences that look like a boundary, so nothing is mistaken for structure. */
function trickyBytes(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + 7) & 0xff;
  Buffer.from(`\r\n--${BOUNDARY.slice(0, -1)}\r\n--`).copy(out, Math.floor(size / 2));
  return out;
}

describe('uploads: urlencoded through Fastify', () => {
  it('parses the form into a tree; an empty form is {}; other types stay raw', async () => {
    const { app } = await appWith();
    const res = await app.inject({
      method: 'POST',
      url: '/',
      headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' },
      payload: 'a[]=1&a[]=2&user[name]=Ann+Lee',
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      kind: 'urlencoded',
      fields: { a: ['1', '2'], user: { name: 'Ann Lee' } },
      uploads: null,
    });

    const empty = await app.inject({
      method: 'POST',
      url: '/',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: '',
    });
    expect(empty.json()).toMatchObject({ kind: 'urlencoded', fields: {} });

    const json = await app.inject({
      method: 'POST',
      url: '/',
      headers: { 'content-type': 'application/json' },
      payload: '{"a":1}',
    });
    expect(json.json()).toMatchObject({ kind: 'raw', rawLength: 7 });
  });

  it('a leaf/branch conflict answers 400 WP_FASTIFY_BAD_FORM', async () => {
    const { app } = await appWith();
    const res = await app.inject({
      method: 'POST',
      url: '/',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'a=1&a[b]=2',
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'WP_FASTIFY_BAD_FORM' });
    expect(res.json().message).toContain('"a" already holds a value');
  });

  it('respects bodyLimit (413)', async () => {
    const { app } = await appWith({ bodyLimit: 10 });
    const res = await app.inject({
      method: 'POST',
      url: '/',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: 'a=01234567890',
    });
    expect(res.statusCode).toBe(413);
  });
});

describe('uploads: multipart files and fields', () => {
  it('streams several files to 0600 temp files with the exact bytes, shaped by the tree rules, and deletes them after the response', async () => {
    const { app, dir } = await appWith();
    const a = trickyBytes(70_000);
    const b = Buffer.from('second file\n');
    const c = randomBytes(3000);
    const d = Buffer.alloc(0);
    const form = new FormData();
    form.append('title', 'Quarterly report');
    form.append('tags[]', 'x');
    form.append('tags[]', 'y');
    form.append('f[]', new Blob([a], { type: 'application/octet-stream' }), 'a.bin');
    form.append('f[]', new Blob([b], { type: 'text/plain' }), 'b.txt');
    form.append('docs[contract][signed]', new Blob([c], { type: 'application/pdf' }), 'contract.pdf');
    form.append('avatar', new Blob([d], { type: 'image/png' }), 'me.png');
    form.append('user[name]', 'Ann');
    const request = new Response(form);
    const payload = Buffer.from(await request.arrayBuffer());
    const res = await post(app, { payload, contentType: request.headers.get('content-type')! });

    expect(res.statusCode).toBe(200);
    const seen = res.json() as Seen;
    expect(seen.kind).toBe('multipart');
    expect(seen.fields).toEqual({ title: 'Quarterly report', tags: ['x', 'y'], user: { name: 'Ann' } });
    const tmp = expect.stringMatching(new RegExp(`^${dir}/upload[0-9a-f]{16}$`));
    expect(seen.uploads).toEqual({
      f: [
        { name: 'a.bin', mime: 'application/octet-stream', size: a.length, error: 0, tmpName: tmp },
        { name: 'b.txt', mime: 'text/plain', size: b.length, error: 0, tmpName: tmp },
      ],
      docs: {
        contract: { signed: { name: 'contract.pdf', mime: 'application/pdf', size: c.length, error: 0, tmpName: tmp } },
      },
      avatar: { name: 'me.png', mime: 'image/png', size: 0, error: 0, tmpName: tmp },
    });
    const files = leaves(seen.uploads as FormTree);
    expect(seen.dirDuring).toEqual(files.map((f) => f.tmpName.slice(dir.length + 1)).sort());
    const expected = [a, b, c, d];
    files.forEach((file, i) => {
      expect(seen.onDisk[file.tmpName]).toEqual({
        mode: 0o600,
        size: expected[i]!.length,
        sha256: sha256(expected[i]!),
      });
    });
    await eventually(isEmptyDir(dir), 'temp files to be deleted after the response');
  });

  it('the uploads tree is {} for a form without files; text parts without a filename are fields', async () => {
    const { app } = await appWith();
    const res = await post(
      app,
      multipart([
        { name: 'a', value: 'ä😀' },
        { name: 'blob', type: 'application/octet-stream', data: 'not a file' },
      ]),
    );
    expect(res.json()).toMatchObject({ kind: 'multipart', fields: { a: 'ä😀', blob: 'not a file' }, uploads: {} });
    expect(encodeFormFields(res.json().uploads).toString()).toBe('{}');
  });

  it('an empty file input is error 4; a second file under a plain name is not even written; a part without a name is skipped', async () => {
    const { app, dir } = await appWith();
    const res = await post(
      app,
      multipart([
        { name: 'empty', filename: '', type: 'application/octet-stream', data: '' },
        { name: 'one', filename: 'first.txt', type: 'text/plain', data: 'first' },
        { name: 'one', filename: 'second.txt', type: 'text/plain', data: 'second' },
        { filename: 'nameless.txt', type: 'text/plain', data: 'nameless' },
        { name: 'f[]', filename: 'x.txt', type: 'text/plain', data: 'x' },
      ]),
    );
    const seen = res.json() as Seen;
    expect(seen.uploads).toMatchObject({
      empty: { name: '', mime: 'application/octet-stream', size: 0, error: 4, tmpName: '' },
      one: { name: 'first.txt', size: 5, error: 0 },
      f: [{ name: 'x.txt', size: 1, error: 0 }],
    });
    expect(seen.dirDuring).toHaveLength(2);
    await eventually(isEmptyDir(dir), 'temp files to be deleted');
  });

  it('keeps non-ASCII file names and reports the media type without parameters', async () => {
    const { app } = await appWith();
    const form = new FormData();
    form.append('f', new Blob(['x'], { type: 'text/plain;charset=utf-8' }), 'résumé 2024.txt');
    const request = new Response(form);
    const res = await post(app, {
      payload: Buffer.from(await request.arrayBuffer()),
      contentType: request.headers.get('content-type')!,
    });
    expect(res.json().uploads.f).toMatchObject({ name: 'résumé 2024.txt', mime: 'text/plain', size: 1, error: 0 });
  });
});

describe('uploads: extension rules (RR: forbid first, then allow)', () => {
  it('forbidden extensions (default .php .exe .bat, any case) give error 8 and no temp file', async () => {
    const { app, dir } = await appWith();
    const res = await post(
      app,
      multipart([
        { name: 'f[]', filename: 'shell.php', type: 'text/plain', data: '<?php' },
        { name: 'f[]', filename: 'SHELL.PHP', type: 'text/plain', data: '<?php' },
        { name: 'f[]', filename: 'run.exe', type: 'application/octet-stream', data: 'MZ' },
        { name: 'f[]', filename: 'x.bat', type: 'text/plain', data: 'echo' },
        { name: 'f[]', filename: 'notes.php.txt', type: 'text/plain', data: 'ok' },
        { name: 'f[]', filename: '.htaccess', type: 'text/plain', data: 'ok' },
      ]),
    );
    const seen = res.json() as Seen;
    const f = (seen.uploads as { f: UploadedFile[] }).f;
    expect(f.map((u) => [u.name, u.error, u.size, u.tmpName === ''])).toEqual([
      ['shell.php', 8, 0, true],
      ['SHELL.PHP', 8, 0, true],
      ['run.exe', 8, 0, true],
      ['x.bat', 8, 0, true],
      ['notes.php.txt', 0, 2, false],
      ['.htaccess', 0, 2, false],
    ]);
    expect(seen.dirDuring).toHaveLength(2);
    await eventually(isEmptyDir(dir), 'temp files to be deleted');
  });

  it('a non-empty allow list admits only its extensions; forbid still wins', async () => {
    const { app } = await appWith({ uploads: { allow: ['.jpg', '.PNG', '.php'] } });
    const res = await post(
      app,
      multipart(
        ['a.JPG', 'b.png', 'c.gif', 'README', 'd.php'].map((filename) => ({
          name: 'f[]',
          filename,
          type: 'image/jpeg',
          data: 'img',
        })),
      ),
    );
    const seen = res.json() as Seen;
    expect((seen.uploads as { f: UploadedFile[] }).f.map((u) => u.error)).toEqual([0, 0, 8, 8, 8]);
    expect(seen.dirDuring).toHaveLength(2);
  });

  it('a custom forbid list replaces the default one', async () => {
    const { app } = await appWith({ uploads: { forbid: ['.txt'] } });
    const res = await post(
      app,
      multipart([
        { name: 'f[]', filename: 'a.php', data: '1' },
        { name: 'f[]', filename: 'b.txt', data: '2' },
      ]),
    );
    expect((res.json().uploads as { f: UploadedFile[] }).f.map((u) => u.error)).toEqual([0, 8]);
  });
});

describe('uploads: limits', () => {
  it('max_file_size (MB): a larger file is error 1 with no temp file; the parts after it still arrive', async () => {
    const { app, dir } = await appWith({ uploads: { max_file_size: 1 / 1024 } }); // 1024 bytes
    const res = await post(
      app,
      multipart([
        { name: 'exact', filename: 'exact.bin', data: Buffer.alloc(1024, 1) },
        { name: 'over', filename: 'over.bin', data: Buffer.alloc(1025, 2) },
        { name: 'huge', filename: 'huge.bin', data: Buffer.alloc(300_000, 3) },
        { name: 'after', value: 'still here' },
      ]),
    );
    const seen = res.json() as Seen;
    expect(seen.uploads).toMatchObject({
      exact: { size: 1024, error: 0 },
      over: { name: 'over.bin', size: 0, error: 1, tmpName: '' },
      huge: { size: 0, error: 1, tmpName: '' },
    });
    expect(seen.fields).toEqual({ after: 'still here' });
    expect(seen.dirDuring).toHaveLength(1);
    await eventually(isEmptyDir(dir), 'temp files to be deleted');
  });

  it('max_files: one file too many answers 413 WP_FASTIFY_TOO_MANY_FILES and leaves no temp file; empty inputs do not count', async () => {
    const { app, dir } = await appWith({ uploads: { max_files: 2 } });
    const files = (n: number): Part[] =>
      Array.from({ length: n }, (_, i) => ({ name: 'f[]', filename: `${i}.txt`, data: randomBytes(50_000) }));
    const ok = await post(app, multipart([...files(2), { name: 'none', filename: '', data: '' }]));
    expect(ok.statusCode).toBe(200);
    await eventually(isEmptyDir(dir), 'temp files to be deleted');

    const res = await post(app, multipart(files(3)));
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: 'WP_FASTIFY_TOO_MANY_FILES' });
    expect(res.headers.connection).toBe('close');
    expect(await readdir(dir)).toEqual([]);
  });

  it('bodyLimit: a declared Content-Length over it answers 413 without reading; a counted overflow too', async () => {
    const { app, dir } = await appWith({ bodyLimit: 100_000 });
    const big = multipart([{ name: 'f', filename: 'a.bin', data: randomBytes(150_000) }]);
    const declared = await post(app, big);
    expect(declared.statusCode).toBe(413);
    expect(declared.json()).toMatchObject({ code: 'WP_FASTIFY_BODY_TOO_LARGE' });

    // A streamed body without Content-Length: the first file is on disk before the limit is hit.
    const streamed = await post(app, {
      payload: Readable.from(chunksOf(big.payload, 16_384)),
      contentType: big.contentType,
    });
    expect(streamed.statusCode).toBe(413);
    expect(await readdir(dir)).toEqual([]);
  });

  it('parseMultipart: a counted overflow deletes the file already written before rejecting', async () => {
    const dir = await uploadsDir();
    const body = multipart([
      { name: 'a', filename: 'a.bin', data: randomBytes(40_000) },
      { name: 'b', filename: 'b.bin', data: randomBytes(40_000) },
    ]);
    const error = await parseMultipart(
      Readable.from(chunksOf(body.payload, 8192)),
      body.contentType,
      resolveUploadOptions({ dir }),
      60_000,
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BodyTooLargeError);
    expect((error as BodyTooLargeError).statusCode).toBe(413);
    expect(await readdir(dir)).toEqual([]);
  });

  it('text fields over 32 MiB in total answer 413', async () => {
    const { app, dir } = await appWith({ bodyLimit: 100 * MB });
    const res = await post(
      app,
      multipart([
        { name: 'f', filename: 'a.txt', data: 'x' },
        { name: 'a', value: 'x'.repeat(20 * MB) },
        { name: 'b', value: 'y'.repeat(13 * MB) },
      ]),
    );
    expect(res.statusCode).toBe(413);
    expect(res.json()).toMatchObject({ code: 'WP_FASTIFY_BODY_TOO_LARGE' });
    expect(await readdir(dir)).toEqual([]);
  });
});

function* chunksOf(buffer: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < buffer.length; i += size) yield buffer.subarray(i, i + size);
}

describe('uploads: malformed bodies', () => {
  it('a body cut off inside the second file answers 400 and removes the first file already written', async () => {
    const { app, dir } = await appWith();
    const full = multipart([
      { name: 'a', filename: 'a.bin', data: randomBytes(100_000) },
      { name: 'b', filename: 'b.bin', data: randomBytes(100_000) },
    ]).payload;
    const cut = full.subarray(0, full.length - 50_000);
    const res = await post(app, { payload: cut, contentType: `multipart/form-data; boundary=${BOUNDARY}` });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'WP_FASTIFY_BAD_FORM' });
    expect(res.json().message).toMatch(/malformed multipart/);
    expect(await readdir(dir)).toEqual([]);
  });

  it.each([
    ['no boundary parameter', 'multipart/form-data', multipart([{ name: 'a', value: '1' }]).payload],
    [
      'a body that never starts a part',
      `multipart/form-data; boundary=${BOUNDARY}`,
      Buffer.from('this is not multipart at all'),
    ],
    ['an empty body', `multipart/form-data; boundary=${BOUNDARY}`, Buffer.alloc(0)],
  ])('%s answers 400', async (_what, contentType, payload) => {
    const { app, dir } = await appWith();
    const res = await post(app, { payload, contentType });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'WP_FASTIFY_BAD_FORM' });
    expect(await readdir(dir)).toEqual([]);
  });

  it('a leaf/branch conflict between files answers 400 and removes the file written first', async () => {
    const { app, dir } = await appWith();
    const res = await post(
      app,
      multipart([
        { name: 'f', filename: 'a.bin', data: randomBytes(50_000) },
        { name: 'f[x]', filename: 'b.bin', data: 'b' },
      ]),
    );
    expect(res.statusCode).toBe(400);
    expect(res.json().message).toContain('"f" already holds a value');
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('uploads: temp file lifetime', () => {
  it('holdUploads keeps the files past the response until released', async () => {
    const releases: Array<() => void> = [];
    const { app, dir } = await appWith({
      inHandler: (request) => void (request.url === '/held' && releases.push(holdUploads(request))),
    });
    const body = multipart([{ name: 'f', filename: 'a.txt', data: 'held' }]);
    const held = await app.inject({
      method: 'POST',
      url: '/held',
      headers: { 'content-type': body.contentType },
      payload: body.payload,
    });
    const heldFile = (held.json() as Seen & { uploads: { f: UploadedFile } }).uploads.f.tmpName;
    const free = await post(app, body);
    const freeFile = (free.json() as Seen & { uploads: { f: UploadedFile } }).uploads.f.tmpName;
    await eventually(
      async () => !(await readdir(dir)).includes(freeFile.slice(dir.length + 1)),
      'the unheld request to be cleaned',
    );
    expect((await stat(heldFile)).isFile()).toBe(true);
    expect(releases).toHaveLength(1);
    releases[0]!();
    releases[0]!(); // idempotent
    await eventually(isEmptyDir(dir), 'the held file to be deleted after release');
    expect(holdUploads({ raw: {} } as FastifyRequest)).toBeTypeOf('function');
  });

  it('parseMultipart: cleanup deletes every temp file, is idempotent, and tolerates files PHP moved away', async () => {
    const dir = await uploadsDir();
    const body = multipart([
      { name: 'f[]', filename: 'a.txt', data: 'a' },
      { name: 'f[]', filename: 'b.txt', data: 'b' },
    ]);
    const parsed = await parseMultipart(
      Readable.from([body.payload]),
      body.contentType,
      resolveUploadOptions({ dir }),
      Infinity,
    );
    expect(parsed.tempFiles).toHaveLength(2);
    expect((await readdir(dir)).length).toBe(2);
    await unlink(parsed.tempFiles[0]!); // "moved" by PHP
    await parsed.cleanup();
    await parsed.cleanup();
    expect(await readdir(dir)).toEqual([]);
  });

  it('an uploads dir removed after the start gives error 6 per file, not a failed request', async () => {
    // (one missing at the start is a config error: resolveUploadOptions refuses it)
    const dir = await uploadsDir();
    const body = multipart([
      { name: 'f', filename: 'a.txt', data: 'a' },
      { name: 't', value: 'v' },
    ]);
    const gone = join(dir, 'gone');
    await mkdir(gone);
    const options = resolveUploadOptions({ dir: gone });
    await rm(gone, { recursive: true });
    const parsed = await parseMultipart(Readable.from([body.payload]), body.contentType, options, Infinity);
    expect(parsed.uploads).toEqual({ f: { name: 'a.txt', mime: 'text/plain', size: 0, error: 6, tmpName: '' } });
    expect(parsed.fields).toEqual({ t: 'v' });
  });
});

// ---- real sockets ----

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

async function openSocket(port: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  await once(socket, 'connect');
  return socket;
}

function requestHead(length: number): string {
  return (
    'POST /upload HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n' +
    `Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${length}\r\n\r\n`
  );
}

async function tempFileSize(dir: string): Promise<number> {
  const names = await readdir(dir);
  if (names.length !== 1) return -1;
  return (await stat(join(dir, names[0]!)).catch(() => ({ size: -1 }))).size;
}

describe('uploads: real sockets', () => {
  it('a client that aborts mid-upload leaves no temp file behind, and the server goes on serving', async () => {
    const { app, dir } = await appWith({ bodyLimit: 100 * MB });
    const port = await listen(app);
    const data = randomBytes(4 * MB);
    const head = Buffer.from(partHead({ name: 'f', filename: 'big.bin', type: 'application/octet-stream' }));
    const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
    const socket = await openSocket(port);
    socket.write(requestHead(head.length + data.length + tail.length));
    socket.write(head);
    socket.write(data.subarray(0, 2 * MB));
    await eventually(async () => (await tempFileSize(dir)) > 0, 'the temp file to start growing');
    socket.destroy();
    await eventually(isEmptyDir(dir), 'the temp file of the aborted upload to be deleted');

    const again = await post(app, multipart([{ name: 'f', filename: 'a.txt', data: 'ok' }]));
    expect(again.statusCode).toBe(200);
  });

  it('a client that goes away while the handler runs: the files are deleted when the response closes', async () => {
    let arrived!: () => void;
    const inHandler = new Promise<void>((r) => (arrived = r));
    let unblock!: () => void;
    const blocked = new Promise<void>((r) => (unblock = r));
    const { app, dir } = await appWith({
      inHandler: async () => {
        arrived();
        await blocked;
      },
    });
    const port = await listen(app);
    const body = multipart([{ name: 'f', filename: 'a.txt', data: 'abc' }]);
    const socket = await openSocket(port);
    socket.write(requestHead(body.payload.length));
    socket.write(body.payload);
    await inHandler;
    expect(await readdir(dir)).toHaveLength(1);
    socket.destroy();
    await eventually(isEmptyDir(dir), 'the temp file to be deleted once the response closed');
    unblock();
  });

  it('a 20 MB upload streams to disk while the request is still being sent', async () => {
    const { app, dir } = await appWith({ bodyLimit: 100 * MB });
    const port = await listen(app);
    const data = randomBytes(20 * MB);
    const head = Buffer.from(partHead({ name: 'f', filename: 'big.bin', type: 'application/octet-stream' }));
    const tail = Buffer.from(`\r\n${partHead({ name: 'after' })}done\r\n--${BOUNDARY}--\r\n`);
    const socket = await openSocket(port);
    const response: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => response.push(chunk));
    socket.write(requestHead(head.length + data.length + tail.length));
    socket.write(head);
    socket.write(data.subarray(0, 10 * MB));
    // Half the body is sent and the rest is held back: at least 8 MB must already be in the temp file.
    await eventually(async () => (await tempFileSize(dir)) >= 8 * MB, 'the temp file to hold most of the first half');
    expect(response).toHaveLength(0);
    socket.write(data.subarray(10 * MB));
    socket.write(tail);
    await once(socket, 'end');
    const text = Buffer.concat(response).toString('utf8');
    expect(text.startsWith('HTTP/1.1 200')).toBe(true);
    const seen = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as Seen;
    const file = (seen.uploads as { f: UploadedFile }).f;
    expect(file).toMatchObject({ name: 'big.bin', size: 20 * MB, error: 0 });
    expect(seen.onDisk[file.tmpName]).toEqual({ mode: 0o600, size: 20 * MB, sha256: sha256(data) });
    expect(seen.fields).toEqual({ after: 'done' });
    await eventually(isEmptyDir(dir), 'the temp file to be deleted after the response');
  });
});

describe('uploads: resolveUploadOptions', () => {
  it("defaults: the OS temp dir, RR forbid list, no allow list, no size limit, PHP's 20 files", () => {
    expect(resolveUploadOptions(undefined)).toEqual({
      dir: tmpdir(),
      forbid: new Set(DEFAULT_UPLOAD_FORBID),
      allow: null,
      maxFileBytes: null,
      maxFiles: 20,
      maxFields: 10_000,
      owner: null,
    });
    expect(resolveUploadOptions({ max_files: 0 }).maxFiles).toBeNull();
    expect(resolveUploadOptions({ forbid: [], allow: [], max_file_size: 0, max_files: 0 }).forbid).toEqual(
      new Set(['.php', '.exe', '.bat']),
    );
  });

  it('a dir that does not exist is refused at the start, naming uploads.dir', () => {
    expect(() => resolveUploadOptions({ dir: '/nonexistent/uploads' })).toThrow(
      /"uploads\.dir": "\/nonexistent\/uploads" does not exist or is not a folder; create it \(mkdir -p\) or fix the path/,
    );
  });

  it('resolves units once: MB → bytes, a relative dir → absolute, extensions lower-cased', async () => {
    const up = await mkdtemp(join(tmpdir(), 'wp-up-relative-'));
    const resolved = resolveUploadOptions({
      dir: relative(process.cwd(), up),
      forbid: ['.PHP', ''],
      allow: ['.Jpg'],
      max_file_size: 2.5,
      max_files: 3,
      max_fields: 50,
    });
    await rm(up, { recursive: true });
    expect(resolved).toEqual({
      dir: up,
      forbid: new Set(['.php', '']),
      allow: new Set(['.jpg']),
      maxFileBytes: 2.5 * MB,
      maxFiles: 3,
      maxFields: 50,
      owner: null,
    });
  });

  it.each([
    [{ dirr: '/tmp' }, 'uploads.dirr'],
    [{ dir: '' }, 'uploads.dir'],
    [{ forbid: '.php' }, 'uploads.forbid'],
    [{ forbid: ['.php', 'exe'] }, 'uploads.forbid[1]'],
    [{ allow: [1] }, 'uploads.allow[0]'],
    [{ max_file_size: -1 }, 'uploads.max_file_size'],
    [{ max_file_size: '10MB' }, 'uploads.max_file_size'],
    [{ max_files: 1.5 }, 'uploads.max_files'],
    [{ max_fields: -1 }, 'uploads.max_fields'],
    [[], 'uploads'],
  ])('%j is rejected naming %s', (raw, key) => {
    let error: unknown;
    try {
      resolveUploadOptions(raw as UploadOptions);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).details.key).toBe(key);
    expect((error as InvalidOptionError).message).toContain(`"${key}"`);
  });

  it('error classes carry their codes and statuses', () => {
    expect(new TooManyFilesError(2)).toMatchObject({
      code: 'WP_FASTIFY_TOO_MANY_FILES',
      statusCode: 413,
      details: { limit: 2 },
    });
    expect(new BodyTooLargeError('x', 5)).toMatchObject({
      code: 'WP_FASTIFY_BODY_TOO_LARGE',
      statusCode: 413,
      details: { limit: 5 },
    });
  });
});
