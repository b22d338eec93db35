// A reply PHP streams on purpose (X-Accel-Buffering: no) with compression on (`middleware: [gzip]`)
// through `warmpool serve`, both ways PHP runs (an HttpWorker, php-cgi), and from a proxied upstream
// (a site of no PHP, whose app sets the header, hidden from the client as nginx hides it): each piece PHP flushes
// reaches the client compressed at once, as behind nginx's gzip, over HTTP/1.1 (gzip) and HTTP/2
// (br). Server-sent events go uncompressed (nginx's default gzip_types), as they come.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { once } from 'node:events';
import {
  type ClientHttp2Session,
  connect as connectH2,
  type IncomingHttpHeaders,
  type IncomingHttpStatusHeader,
} from 'node:http2';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip } from 'node:zlib';
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
let upstream: Server;
/** the proxied app's streams waiting for their second piece, by flag */
const waiting = new Map<string, () => void>();

beforeAll(async () => {
  // the app behind proxied.test: its first piece, then the second once the test has read the first
  upstream = createServer((req, res) => {
    const flag = new URL(req.url!, 'http://x').searchParams.get('flag') ?? '';
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-accel-buffering': 'no' });
    res.write('first\n');
    waiting.set(flag, () => res.end('second\n'));
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  dir = await mkdtemp(join(tmpdir(), 'wp-compressed-streams-'));
  const tls = await makeTlsPair(dir);
  ca = await readFile(tls.ca);
  [httpPort, httpsPort] = [await freePort(), await freePort()];
  const config = [
    'version: "3"',
    'server:',
    `  command: php ${FIXTURES}/php/sdk-http-progress.php`,
    'http:',
    `  address: 127.0.0.1:${httpPort}`,
    '  middleware: [gzip]',
    `  ssl: { address: "127.0.0.1:${httpsPort}", cert: ${tls.cert}, key: ${tls.key} }`,
    '  pool: { num_workers: 2 }',
    'logs: { mode: production, level: warn }',
    'sites:',
    '  - hosts: [classic.test]',
    '    fastcgi:',
    `      root: ${FIXTURES}/php/fastcgi`,
    '      command: php-cgi',
    '    http: { pool: { num_workers: 2 } }',
    '  - hosts: [proxied.test]',
    '    php: false',
    `    proxy: [{ prefix: /, upstream: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" }]`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'warmpool.yaml'), config);
  server = startServer(['serve', '-c', join(dir, 'warmpool.yaml')]);
  await server.ready(30_000);
  h2 = connectH2(`https://localhost:${httpsPort}`, { ca });
}, 60_000);

afterAll(async () => {
  h2?.close();
  await stopAllServers();
  await new Promise((resolve) => upstream?.close(resolve));
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const sites = [
  { mode: 'worker', host: 'localhost', path: '/' },
  { mode: 'classic', host: 'classic.test', path: '/streams.php' },
  { mode: 'proxied', host: 'proxied.test', path: '/stream' },
] as const;

/** A flag file the script waits for before its second piece. */
const newFlag = () => join(dir, `flag-${randomBytes(4).toString('hex')}`);

/**
 * Decodes `body`: the first decoded piece must arrive while PHP still waits for `flag`; then the
 * flag is created and the rest is read to the end.
 */
async function firstThenRest(body: Readable, encoding: string, flag: string): Promise<[string, string]> {
  const decoder = encoding === 'br' ? createBrotliDecompress() : createGunzip();
  const pieces = body.pipe(decoder)[Symbol.asyncIterator]();
  const first = String((await pieces.next()).value);
  writeFileSync(flag, '');
  waiting.get(flag)?.();
  let rest = '';
  for (let next = await pieces.next(); !next.done; next = await pieces.next()) rest += String(next.value);
  return [first, rest];
}

describe.each(sites)('a reply streamed on purpose, compressed ($mode)', ({ host, path }) => {
  it('HTTP/1.1, gzip: each piece PHP flushes arrives compressed before the script ends', async () => {
    const flag = newFlag();
    const res = await request(`http://127.0.0.1:${httpPort}${path}?flag=${flag}`, {
      headers: { host, 'accept-encoding': 'gzip' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(res.headers.vary).toMatch(/accept-encoding/i);
    expect(res.headers['content-length']).toBeUndefined();
    // the backend's X-Accel-Buffering is for the server, as nginx drops it (before: PHP's reached the client)
    expect(res.headers['x-accel-buffering']).toBeUndefined();
    expect(await firstThenRest(res.body, 'gzip', flag)).toEqual(['first\n', 'second\n']);
  });

  it('HTTP/2, br: each piece PHP flushes arrives compressed before the script ends', async () => {
    const flag = newFlag();
    const stream = h2.request({ ':path': `${path}?flag=${flag}`, ':authority': host, 'accept-encoding': 'br' });
    const [headers] = (await once(stream, 'response')) as [IncomingHttpHeaders & IncomingHttpStatusHeader];
    expect(headers[':status']).toBe(200);
    expect(headers['content-encoding']).toBe('br');
    expect(headers['x-accel-buffering']).toBeUndefined();
    expect(await firstThenRest(stream, 'br', flag)).toEqual(['first\n', 'second\n']);
  });
});

it('server-sent events are sent uncompressed, as PHP flushes them (worker)', async () => {
  const flag = newFlag();
  const res = await request(`http://127.0.0.1:${httpPort}/?events&flag=${flag}`, {
    headers: { 'accept-encoding': 'gzip, br' },
  });
  expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
  expect(res.headers['content-encoding']).toBeUndefined();
  const pieces = res.body[Symbol.asyncIterator]();
  expect(String((await pieces.next()).value)).toBe('data: first\n\n');
  writeFileSync(flag, '');
  let rest = '';
  for (let next = await pieces.next(); !next.done; next = await pieces.next()) rest += String(next.value);
  expect(rest).toBe('data: second\n\n');
});
