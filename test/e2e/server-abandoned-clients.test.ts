// Clients that go away must never hold a PHP worker (docs/SECURITY.md, "Workers are never held by a
// client that is gone"). Against `warmpool serve` over real sockets: HTTP/1.1 clients that leave
// while queued, the HTTP/2 "rapid reset" pattern over TLS, and readers that stop reading a stream.
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { type ClientHttp2Session, connect as connectH2, constants } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { makeTlsPair } from '../helpers/tls-pair.js';
import { FIXTURES, runCli, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';
import { until } from '../helpers/until.js';

let dir: string;
let ca: Buffer;
let server: RunningServer;
let httpPort: number;
let httpsPort: number;
let statusPort: number;

interface WorkerRow {
  pid: number;
  state: string;
  jobs: number;
}

async function workers(): Promise<WorkerRow[]> {
  const result = await runCli(['workers', '--socket', join(dir, 'admin.sock'), '--json']);
  expect(result.code, result.stderr).toBe(0);
  const sites = JSON.parse(result.stdout) as { workers: WorkerRow[] }[];
  return sites.flatMap((site) => site.workers);
}

/** A gauge's value from /metrics; `label` picks one series (`state="working"`). */
async function gauge(name: string, label = ''): Promise<number> {
  const res = await request(`http://127.0.0.1:${statusPort}/metrics`);
  const text = await res.body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label));
  return line === undefined ? Number.NaN : Number(line.slice(line.lastIndexOf(' ') + 1));
}

const working = () => gauge('warmpool_workers', 'state="working"');
const queueLength = () => gauge('warmpool_queue_length');

const allReady = async () => (await workers()).every((w) => w.state === 'ready');

/**
 * A raw HTTP/1.1 request for a 50 MiB stream from a client that reads nothing. The stream is sent
 * at the client's pace on purpose (X-Accel-Buffering: no), so it holds its worker.
 */
async function nonReader(path = '/?mb=50&unbuffered=1'): Promise<Socket> {
  const socket = connect(httpPort, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  socket.pause();
  socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  return socket;
}

/** The body length of a chunked HTTP/1.1 response (head included in `raw`). */
function chunkedBodyLength(raw: Buffer): number {
  let at = raw.indexOf('\r\n\r\n') + 4;
  let length = 0;
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at);
    const size = Number.parseInt(raw.toString('latin1', at, lineEnd), 16);
    if (size === 0) return length;
    length += size;
    at = lineEnd + 2 + size + 2;
  }
}

/** The server is healthy again: a full 1 MiB reply, then every worker idle. */
async function servesNormally(): Promise<void> {
  const res = await request(`http://127.0.0.1:${httpPort}/?mb=1`);
  expect(res.statusCode).toBe(200);
  expect((await res.body.arrayBuffer()).byteLength).toBe(1024 * 1024);
  await until(allReady, 'every worker ready after a normal request');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-abandon-'));
  ca = await readFile((await makeTlsPair(dir)).ca);
  [httpPort, httpsPort, statusPort] = [await freePort(), await freePort(), await freePort()];
  server = startServer(['serve', '-c', join(FIXTURES, 'server', 'abandoned.yaml')], {
    env: {
      HTTP_PORT: String(httpPort),
      HTTPS_PORT: String(httpsPort),
      STATUS_PORT: String(statusPort),
      CERT_DIR: dir,
      FIXTURES,
    },
  });
  await server.ready();
});

afterAll(async () => {
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('clients that go away never hold a worker', () => {
  it('HTTP/1.1: requests whose clients left while queued leave the queue and never reach PHP', async () => {
    const jobsBefore = (await workers()).reduce((n, w) => n + w.jobs, 0);
    // two clients take both workers with streams they do not read; four more queue behind them
    const holders = [await nonReader(), await nonReader()];
    await until(async () => (await working()) === 2, 'both workers busy');
    const queued = await Promise.all([1, 2, 3, 4].map(() => nonReader()));
    await until(async () => (await queueLength()) === 4, 'four requests queued');
    for (const socket of queued) socket.destroy();
    // they leave the queue while both workers are still held
    await until(async () => (await queueLength()) === 0, 'the queue to empty');
    expect(await working()).toBe(2);
    for (const socket of holders) socket.destroy();
    // the holders' streams are cancelled: both workers come back
    await until(allReady, 'both workers ready');
    const jobs = (await workers()).reduce((n, w) => n + w.jobs, 0) - jobsBefore;
    expect(jobs).toBe(2);
    await servesNormally();
  });

  it('HTTP/2 over TLS: 1,000 streams opened and reset at once ("rapid reset") leave no worker working', async () => {
    const jobsBefore = (await workers()).reduce((n, w) => n + w.jobs, 0);
    const session: ClientHttp2Session = connectH2(`https://localhost:${httpsPort}`, { ca });
    session.on('error', () => {});
    await once(session, 'connect');
    const closed: Promise<unknown>[] = [];
    for (let i = 0; i < 1000; i++) {
      // HEADERS (the stream gets its id at once on a connected session), then RST_STREAM(CANCEL)
      const stream = session.request({ ':path': '/?mb=50' }, { endStream: true });
      stream.on('error', () => {});
      stream.close(constants.NGHTTP2_CANCEL);
      closed.push(once(stream, 'close'));
    }
    await Promise.all(closed);
    await until(async () => (await queueLength()) === 0, 'the queue to empty');
    await until(allReady, 'every worker ready');
    session.destroy();
    const jobs = (await workers()).reduce((n, w) => n + w.jobs, 0) - jobsBefore;
    console.log(`rapid reset: 1000 streams reset, ${jobs} reached a worker`);
    // only streams a free worker took before their reset was read can run (2 here; 101 without the
    // cancellation: every stream up to max_concurrent_streams ran)
    expect(jobs).toBeLessThan(50);
    await servesNormally();
  });

  it('HTTP/1.1: a client that stops reading a stream is cut after send_timeout and its worker freed', async () => {
    const socket = await nonReader();
    await until(async () => (await working()) === 1, 'the stream to start');
    // the client keeps its connection open and reads nothing: send_timeout (2s) ends the stream
    await until(allReady, 'the stalled worker to be freed', 30_000);
    // the server closed the connection: reading now drains what was sent, then the end, well short of 50 MiB
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    socket.resume();
    await once(socket, 'close');
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThan(50 * 1024 * 1024);
    await servesNormally();
    expect(server.stdout + server.stderr).toMatch(/send_timeout/);
  });

  it('HTTP/2: a stream whose reader stops reading is reset after send_timeout and its worker freed', async () => {
    const session = connectH2(`https://localhost:${httpsPort}`, { ca });
    session.on('error', () => {});
    await once(session, 'connect');
    const stream = session.request({ ':path': '/?mb=50&unbuffered=1' }, { endStream: true });
    stream.on('error', () => {});
    const closed = new Promise<number>((resolve) => stream.on('close', () => resolve(stream.rstCode ?? 0)));
    stream.pause();
    await once(stream, 'response');
    await until(allReady, 'the stalled worker to be freed', 30_000);
    stream.resume();
    // reset as broken (INTERNAL_ERROR): a NO_ERROR reset would pass the cut body for a whole one
    expect(await closed).toBe(constants.NGHTTP2_INTERNAL_ERROR);
    session.destroy();
    await servesNormally();
  });

  it('a stream the server may buffer (the default) frees its worker at once: clients that read nothing hold none', async () => {
    // more of them than workers: two HTTP/1.1 clients that read nothing, and one HTTP/2 connection
    // whose window is zero for all its streams (it reads the connection, not the streams)
    const sockets = [await nonReader('/?mb=20'), await nonReader('/?mb=20')];
    const session = connectH2(`https://localhost:${httpsPort}`, { ca, settings: { initialWindowSize: 0 } });
    session.on('error', () => {});
    await once(session, 'connect');
    const streams = [1, 2, 3].map(() => {
      const stream = session.request({ ':path': '/?mb=20' }, { endStream: true });
      stream.on('error', () => {});
      return stream;
    });
    await Promise.all(streams.map((stream) => once(stream, 'response')));
    // every reply was read from its worker into the server: the workers are free, the clients still there
    await until(async () => (await workers()).every((w) => w.state === 'ready' && w.jobs > 0), 'every worker free');
    await until(allReady, 'every worker ready');
    await servesNormally();
    for (const socket of sockets) expect(socket.destroyed).toBe(false);
    for (const stream of streams) expect(stream.closed).toBe(false);
    // and each client then gets its whole reply
    session.settings({ initialWindowSize: 65_535 });
    const sizes = await Promise.all([
      ...sockets.map(async (socket) => {
        const chunks: Buffer[] = [];
        let tail = '';
        socket.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          tail = (tail + chunk.toString('latin1')).slice(-5);
        });
        socket.resume();
        await until(() => tail === '0\r\n\r\n', 'the last chunk of the HTTP/1.1 reply');
        socket.destroy();
        return chunkedBodyLength(Buffer.concat(chunks));
      }),
      ...streams.map(async (stream) => {
        let bytes = 0;
        stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
        await once(stream, 'end');
        return bytes;
      }),
    ]);
    expect(sizes).toEqual(Array(5).fill(20 * 1024 * 1024));
    session.destroy();
  });
});
