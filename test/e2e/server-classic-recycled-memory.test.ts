// `warmpool serve` reuses the memory of classic responses once they are sent (recycle_response_memory):
// a buffer handed to the next response too early would send one client's page to another. Many
// clients at once, over HTTP/1.1 and HTTP/2 (TLS), some gzip, some leaving mid-body, each ask for a
// body only its own request could have (a token of its own repeated to a size of its own); every
// byte each client gets is checked. The micro-cache's copy must survive the churn too.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { type ClientHttp2Session, connect as connectH2 } from 'node:http2';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { FIXTURES, type RunningServer, startServer, stopAllServers } from '../helpers/warmpool-server.js';

const exec = promisify(execFile);
let dir: string;
let server: RunningServer;
let httpPort: number;
let httpsPort: number;
let ca: Buffer;

/** What /pattern/TOKEN/SIZE answers (test/fixtures/sites/classic-app/index.php). */
function pattern(token: string, size: number): Buffer {
  const unit = `${token}|`;
  return Buffer.from(unit.repeat(Math.ceil(size / unit.length) + 1).slice(0, size));
}

/** Sizes around what matters: empty, one record, records cut by reads, buffer growth, streamed (> 1 MiB). */
function sizeFor(i: number): number {
  const sizes = [0, 1, 4000, 32 * 1024, 65_535, 65_536 + 17, 76_000, 140_000, 300_000, 1_300_000];
  return i % 7 === 0 ? sizes[i % sizes.length]! : Math.floor(Math.random() * 320_000);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-recycled-'));
  await exec(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1'],
      ...['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=app.test'],
      ...['-addext', 'subjectAltName=DNS:app.test'],
    ],
    { cwd: dir },
  );
  ca = await readFile(join(dir, 'cert.pem'));
  httpPort = await freePort();
  httpsPort = await freePort();
  const config = join(dir, 'warmpool.yaml');
  await writeFile(
    config,
    [
      'http:',
      `  address: 127.0.0.1:${httpPort}`,
      '  middleware: [gzip]',
      '  pool: { num_workers: 2 }',
      `  ssl: { address: 127.0.0.1:${httpsPort}, cert: ${join(dir, 'cert.pem')}, key: ${join(dir, 'key.pem')} }`,
      'cache: { enabled: true, max_bytes: 8m }',
      'logs: { mode: production, level: warn }',
      'fastcgi:',
      `  root: ${FIXTURES}/sites/classic-app`,
      '  command: php-cgi',
      '',
    ].join('\n'),
  );
  server = startServer(['serve', '-c', config]);
  await server.ready(30_000);
}, 60_000);

afterAll(async () => {
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

interface Outcome {
  checked: number;
  left: number;
}

/** HTTP/1.1 through undici, keep-alive; gzip on every third request. */
async function viaHttp1(agent: Agent, token: string, size: number, gzip: boolean): Promise<void> {
  const res = await request(`http://127.0.0.1:${httpPort}/pattern/${token}/${size}`, {
    dispatcher: agent,
    headers: { host: 'app.test', ...(gzip ? { 'accept-encoding': 'gzip' } : {}) },
  });
  const raw = Buffer.from(await res.body.arrayBuffer());
  expect(res.statusCode).toBe(200);
  const body = res.headers['content-encoding'] === 'gzip' ? gunzip(raw, `${token}/${size} (HTTP/1.1)`) : raw;
  expectPattern(body, token, size);
}

/** HTTP/2 over TLS, many streams on one session. */
function viaHttp2(session: ClientHttp2Session, token: string, size: number, gzip: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ':path': `/pattern/${token}/${size}`,
      ...(gzip ? { 'accept-encoding': 'gzip' } : {}),
    });
    const parts: Buffer[] = [];
    let encoding: string | undefined;
    stream.on('response', (headers) => {
      encoding = headers['content-encoding'] as string | undefined;
      if (headers[':status'] !== 200) reject(new Error(`status ${headers[':status']}`));
    });
    stream.on('data', (chunk: Buffer) => parts.push(chunk));
    stream.on('error', reject);
    stream.on('end', () => {
      try {
        const raw = Buffer.concat(parts);
        expectPattern(encoding === 'gzip' ? gunzip(raw, `${token}/${size} (HTTP/2)`) : raw, token, size);
        resolve();
      } catch (error) {
        reject(error);
      }
    });
  });
}

/** A client that reads the start of its page and leaves (its response closes early). */
function leaveEarly(token: string, size: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(httpPort, '127.0.0.1', () =>
      socket.write(`GET /pattern/${token}/${size} HTTP/1.1\r\nHost: app.test\r\n\r\n`),
    );
    socket.once('data', () => {
      socket.destroy();
      resolve();
    });
    socket.once('error', reject);
  });
}

function gunzip(raw: Buffer, what: string): Buffer {
  try {
    return gunzipSync(raw);
  } catch (error) {
    throw new Error(
      `page ${what}: ${(error as Error).message}: ${raw.length} bytes, starting ${JSON.stringify(raw.subarray(0, 40).toString('latin1'))}`,
    );
  }
}

function expectPattern(body: Buffer, token: string, size: number): void {
  if (body.length !== size || !body.equals(pattern(token, size))) {
    // name the first foreign bytes: whose page they came from is the bug
    const expected = pattern(token, size);
    let at = 0;
    while (at < Math.min(body.length, size) && body[at] === expected[at]) at++;
    throw new Error(
      `page ${token}/${size}: got ${body.length} bytes, first difference at ${at}: ${JSON.stringify(body.subarray(at, at + 40).toString('latin1'))}`,
    );
  }
}

describe('classic responses in reused memory, under concurrent clients', () => {
  it('every client gets exactly its own page: HTTP/1.1 and HTTP/2, gzip, clients leaving mid-body', async () => {
    const agent = new Agent({ connections: 8 });
    const h2 = connectH2(`https://app.test:${httpsPort}`, {
      ca,
      lookup: (_host, _options, callback) => callback(null, [{ address: '127.0.0.1', family: 4 }] as never, 4),
    });
    const outcome: Outcome = { checked: 0, left: 0 };
    const TOTAL = 360;
    let next = 0;
    const client = async () => {
      while (next < TOTAL) {
        const i = next++;
        const token = randomBytes(6).toString('hex');
        const size = sizeFor(i);
        const gzip = i % 3 === 0;
        if (i % 10 === 9) {
          await leaveEarly(token, Math.max(size, 200_000));
          outcome.left++;
          continue;
        }
        await (i % 2 === 0 ? viaHttp1(agent, token, size, gzip) : viaHttp2(h2, token, size, gzip));
        outcome.checked++;
      }
    };
    await Promise.all(Array.from({ length: 16 }, client));
    h2.close();
    await agent.close();
    expect(outcome).toEqual({ checked: 324, left: 36 });
  }, 120_000);

  it('the micro-cache keeps its own copy: a page cached before the churn is served intact after it', async () => {
    const agent = new Agent({ connections: 4 });
    const get = async (path: string) => {
      const res = await request(`http://127.0.0.1:${httpPort}${path}`, {
        dispatcher: agent,
        headers: { host: 'app.test' },
      });
      return { cache: res.headers['x-cache'], body: Buffer.from(await res.body.arrayBuffer()) };
    };
    const first = await get('/pattern/kept/70000?cache=1');
    expect(first.cache).toBe('MISS');
    expectPattern(first.body, 'kept', 70_000);
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          const token = `churn${round}x${i}`;
          expectPattern((await get(`/pattern/${token}/70000`)).body, token, 70_000);
        }),
      );
    }
    const again = await get('/pattern/kept/70000?cache=1');
    expect(again.cache).toBe('HIT');
    expectPattern(again.body, 'kept', 70_000);
    await agent.close();
  }, 60_000);
});
