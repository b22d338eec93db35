// Ranges and validators with compression on, through `warmpool serve`: static files of a worker
// site (`middleware: [static, gzip]`) and of a classic site (fastcgi.root), and a classic script
// that answers 206 itself, over HTTP/1.1 and HTTP/2. As nginx does: a 206 is never compressed (its
// Content-Range counts bytes of the plain file, so a compressed one is a corrupt piece to whoever
// stitches ranges: a download resumer, a cache, a CDN); a body compressed on the fly carries the
// weak form of the file's ETag (a strong tag names one exact byte sequence), which revalidates
// (If-None-Match: 304) but never satisfies an If-Range (the whole body is sent instead).
// Precompressed siblings (x.css.gz, sent as they are) are a representation of their own: their
// ranges count the .gz file's bytes, under that file's own strong tag.
import { readFile, mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import {
  type ClientHttp2Session,
  connect as connectH2,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
} from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { makeTlsPair } from '../helpers/tls-pair.js';
import { FIXTURES, type RunningServer, startServer, stopAllServers } from '../helpers/warmpool-server.js';

let dir: string;
let ca: Buffer;
let httpPort: number;
let httpsPort: number;
let server: RunningServer;
let h2: ClientHttp2Session;

/** A stylesheet of some 60 KB, well over the compression threshold, as WordPress's dashicons.min.css. */
const CSS = Buffer.from(
  Array.from(
    { length: 2000 },
    (_, i) => `.c${i}{color:#${((i * 2654435761) >>> 8).toString(16)};margin:${i % 50}px}\n`,
  ).join(''),
);
/** What the classic script answers: part of a larger text, with the Content-Range PHP set. */
const PART = 'partial content line\n'.repeat(300);

// A script that serves ranges itself (a download script, a media endpoint): its 206 goes as PHP made it.
const PARTIAL_PHP = `<?php
$body = ${JSON.stringify(PART)};
http_response_code(206);
header('Content-Type: text/plain');
header('Content-Range: bytes 1000-' . (999 + strlen($body)) . '/100000');
header('ETag: "php-v1"');
echo $body;
`;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-compressed-ranges-'));
  const tls = await makeTlsPair(dir);
  ca = await readFile(tls.ca);
  for (const root of ['public', 'classic']) {
    await mkdir(join(dir, root));
    await writeFile(join(dir, root, 'style.css'), CSS);
    await writeFile(join(dir, root, 'pre.css'), CSS);
    await writeFile(join(dir, root, 'pre.css.gz'), gzipSync(CSS));
  }
  await writeFile(join(dir, 'classic', 'partial.php'), PARTIAL_PHP);
  [httpPort, httpsPort] = [await freePort(), await freePort()];
  const config = [
    'version: "3"',
    // the default site (worker.test reaches it): a worker, with static files PHP is never asked for
    'server:',
    `  command: php ${FIXTURES}/php/cacheable.php`,
    'http:',
    `  address: 127.0.0.1:${httpPort}`,
    '  middleware: [static, gzip]',
    `  static: { dir: ${join(dir, 'public')}, calculate_etag: true }`,
    `  ssl: { address: "127.0.0.1:${httpsPort}", cert: ${tls.cert}, key: ${tls.key} }`,
    '  pool: { num_workers: 1 }',
    'logs: { mode: production, level: warn }',
    'sites:',
    '  - hosts: [classic.test]',
    '    fastcgi:',
    `      root: ${join(dir, 'classic')}`,
    '      command: php-cgi',
    '',
  ].join('\n');
  await writeFile(join(dir, 'warmpool.yaml'), config);
  server = startServer(['serve', '-c', join(dir, 'warmpool.yaml')]);
  await server.ready(30_000);
  h2 = connectH2(`https://localhost:${httpsPort}`, { ca });
}, 60_000);

afterAll(async () => {
  h2?.close();
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

const over = {
  'HTTP/1.1': async (host: string, path: string, headers: Record<string, string>): Promise<Reply> => {
    const res = await request(`http://127.0.0.1:${httpPort}${path}`, { headers: { host, ...headers } });
    return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
  },
  'HTTP/2': async (host: string, path: string, headers: Record<string, string>): Promise<Reply> => {
    const stream = h2.request({ ':path': path, ':authority': host, ...headers });
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    const [response] = (await once(stream, 'response')) as [IncomingHttpHeaders & IncomingHttpStatusHeader];
    if (!stream.readableEnded) await once(stream, 'end');
    const { ':status': status, ...rest } = response;
    return { status: status!, headers: rest, body: Buffer.concat(chunks) };
  },
};

const decode = (reply: Reply): Buffer =>
  reply.headers['content-encoding'] === 'gzip'
    ? gunzipSync(reply.body)
    : reply.headers['content-encoding'] === 'br'
      ? brotliDecompressSync(reply.body)
      : reply.body;

const cases = (['HTTP/1.1', 'HTTP/2'] as const).flatMap((protocol) =>
  (['worker.test', 'classic.test'] as const).map((host) => ({ protocol, host, get: over[protocol] })),
);

describe.each(cases)('static files with compression on, $host over $protocol', ({ host, get }) => {
  it('a Range gets the plain bytes it names (206, no Content-Encoding), whatever the client accepts; a precompressed sibling, the bytes of its .gz', async () => {
    const plain = await get(host, '/style.css', {});
    const etag = plain.headers.etag as string;
    expect(etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    for (const accept of ['gzip', 'br', 'gzip, deflate, br']) {
      const part = await get(host, '/style.css', { range: 'bytes=100-199', 'accept-encoding': accept });
      expect([accept, part.status, part.headers['content-encoding']]).toEqual([accept, 206, undefined]);
      expect(part.headers['content-range']).toBe(`bytes 100-199/${CSS.length}`);
      expect(part.headers['content-length']).toBe('100');
      expect(part.body.equals(CSS.subarray(100, 200))).toBe(true);
      // the plain file's own tag: these are its bytes
      expect(part.headers.etag).toBe(etag);
    }
    // a range to the end, and a suffix, as a download resumer asks
    const rest = await get(host, '/style.css', { range: `bytes=${CSS.length - 5000}-`, 'accept-encoding': 'gzip' });
    expect([rest.status, rest.headers['content-encoding']]).toEqual([206, undefined]);
    expect(rest.body.equals(CSS.subarray(CSS.length - 5000))).toBe(true);
    const suffix = await get(host, '/style.css', { range: 'bytes=-10', 'accept-encoding': 'br' });
    expect(suffix.body.equals(CSS.subarray(CSS.length - 10))).toBe(true);
    // a precompressed sibling is its own representation (unchanged): its ranges count the .gz
    // file's bytes, under that file's own strong tag
    const gz = await readFile(join(dir, host === 'worker.test' ? 'public' : 'classic', 'pre.css.gz'));
    const plainTag = (await get(host, '/pre.css', {})).headers.etag as string;
    const whole = await get(host, '/pre.css', { 'accept-encoding': 'gzip' });
    expect([whole.status, whole.headers['content-encoding']]).toEqual([200, 'gzip']);
    expect(whole.body.equals(gz)).toBe(true);
    const tag = whole.headers.etag as string;
    expect(tag).toMatch(/^"/);
    expect(tag).not.toBe(plainTag);
    const part = await get(host, '/pre.css', { 'accept-encoding': 'gzip', range: 'bytes=0-99', 'if-range': tag });
    expect([part.status, part.headers['content-encoding'], part.headers['content-range']]).toEqual([
      206,
      'gzip',
      `bytes 0-99/${gz.length}`,
    ]);
    expect(part.body.equals(gz.subarray(0, 100))).toBe(true);
  });

  it('a body compressed on the fly carries the weak tag; If-None-Match with it is 304 (with it), If-Range with it gets the whole body', async () => {
    const etag = (await get(host, '/style.css', {})).headers.etag as string;
    for (const accept of ['gzip', 'br']) {
      const whole = await get(host, '/style.css', { 'accept-encoding': accept });
      expect([whole.status, whole.headers['content-encoding'], whole.headers.etag]).toEqual([200, accept, `W/${etag}`]);
      expect(decode(whole).equals(CSS)).toBe(true);
      // revalidating the compressed copy: 304, with the tag the client holds (RFC 9110 15.4.5)
      const revalidated = await get(host, '/style.css', { 'accept-encoding': accept, 'if-none-match': `W/${etag}` });
      expect([revalidated.status, revalidated.headers.etag]).toEqual([304, `W/${etag}`]);
      // resuming the compressed copy: If-Range needs a strong match, so the whole body comes again
      const resumed = await get(host, '/style.css', {
        'accept-encoding': accept,
        range: 'bytes=100-',
        'if-range': `W/${etag}`,
      });
      expect([resumed.status, resumed.headers['content-range'], resumed.headers.etag]).toEqual([
        200,
        undefined,
        `W/${etag}`,
      ]);
      expect(decode(resumed).equals(CSS)).toBe(true);
    }
    // the plain file's strong tag revalidates and resumes as before
    const revalidated = await get(host, '/style.css', { 'if-none-match': etag });
    expect([revalidated.status, revalidated.headers.etag]).toEqual([304, etag]);
    const resumed = await get(host, '/style.css', { 'accept-encoding': 'gzip', range: 'bytes=100-', 'if-range': etag });
    expect([resumed.status, resumed.headers['content-encoding'], resumed.headers.etag]).toEqual([206, undefined, etag]);
    expect(resumed.body.equals(CSS.subarray(100))).toBe(true);
  });
});

describe.each(['HTTP/1.1', 'HTTP/2'] as const)('a script that answers 206 itself, over %s', (protocol) => {
  it('is sent as PHP made it, uncompressed', async () => {
    const part = await over[protocol]('classic.test', '/partial.php', { 'accept-encoding': 'gzip, br' });
    expect([part.status, part.headers['content-encoding'], part.headers['content-range']]).toEqual([
      206,
      undefined,
      `bytes 1000-${999 + PART.length}/100000`,
    ]);
    expect(part.headers.etag).toBe('"php-v1"');
    expect(part.body.toString()).toBe(PART);
  });
});
