// Replies held in memory for clients that read nothing are bounded over the whole process
// (http.max_response_memory, response-memory.ts in the plugin). Before, each such client held its
// reply (a classic page up to 1 MiB, a worker's whole reply) in Node until send_timeout: 24 HTTP/2
// connections with their windows at zero took the server from 85 MB to 3 GB in 25 s. Against
// `warmpool serve` with a 4 MiB bound over real sockets: past it, replies go to temp files, the
// held bytes (/metrics) stay within it, and every client still gets its whole, correct reply.
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, readlink, rm } from 'node:fs/promises';
import { type ClientHttp2Session, type ClientHttp2Stream, connect as connectH2 } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { http2Get } from '../helpers/http2-raw.js';
import { makeTlsPair } from '../helpers/tls-pair.js';
import { FIXTURES, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';
import { until } from '../helpers/until.js';

const BOUND = 4 * 1024 * 1024;
const PAGE = Buffer.alloc(900 * 1024, 'p');

let dir: string;
let ca: Buffer;
let server: RunningServer;
let httpPort: number;
let httpsPort: number;
let statusPort: number;

/** A counter or gauge of /metrics (no labels); NaN when it is not there. */
async function metric(name: string): Promise<number> {
  const text = await (await request(`http://127.0.0.1:${statusPort}/metrics`)).body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.slice(name.length + 1));
}

const held = () => metric('warmpool_response_memory_bytes');

/** How many reply temp files (a whole reply's, a streamed one's) the server holds open; each is unlinked once open. */
async function openReplyFiles(): Promise<number> {
  const fds = await readdir(`/proc/${server.pid}/fd`);
  const links = await Promise.all(fds.map((fd) => readlink(`/proc/${server.pid}/fd/${fd}`).catch(() => '')));
  return links.filter((link) => /warmpool-(body|reply)-/.test(link)).length;
}
const filed = () => metric('warmpool_responses_filed_total');

/** The expected body of big-reply.php for `kb` kilobytes. */
function bigReply(kb: number): Buffer {
  return Buffer.alloc(kb * 1024, '0123456789abcdef');
}

/** `count` streams on one connection whose client grants no window: each has its head, and waits. */
async function stalledStreams(
  host: string,
  path: string,
  count: number,
): Promise<{ session: ClientHttp2Session; streams: ClientHttp2Stream[] }> {
  const session = connectH2(`https://localhost:${httpsPort}`, { ca, settings: { initialWindowSize: 0 } });
  session.on('error', () => {});
  await once(session, 'connect');
  const streams: ClientHttp2Stream[] = [];
  // one at a time: each reply arrives, and is held or filed, before the next is asked for
  for (let i = 0; i < count; i++) {
    const stream = session.request({ ':path': path, ':authority': host }, { endStream: true });
    stream.on('error', () => {});
    const [headers] = (await once(stream, 'response')) as [Record<string, string>];
    expect(headers[':status']).toBe(200);
    streams.push(stream);
  }
  return { session, streams };
}

/** Opens the window and reads every stream to its end. */
async function readAll(session: ClientHttp2Session, streams: ClientHttp2Stream[]): Promise<Buffer[]> {
  const bodies = streams.map(async (stream) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    await once(stream, 'end');
    return Buffer.concat(chunks);
  });
  session.settings({ initialWindowSize: 65_535 });
  return Promise.all(bodies);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-response-memory-'));
  ca = await readFile((await makeTlsPair(dir)).ca);
  [httpPort, httpsPort, statusPort] = [await freePort(), await freePort(), await freePort()];
  server = startServer(['serve', '-c', join(FIXTURES, 'server', 'response-memory.yaml')], {
    env: {
      HTTP_PORT: String(httpPort),
      HTTPS_PORT: String(httpsPort),
      STATUS_PORT: String(statusPort),
      CERT_DIR: dir,
      FIXTURES,
    },
  });
  await server.ready(30_000);
});

afterAll(async () => {
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('replies held for clients that read nothing are bounded', () => {
  it('HTTP/2, classic: past the bound the 900 KB pages go to temp files; each stream then gets its whole page', async () => {
    expect(await metric('warmpool_response_memory_max_bytes')).toBe(BOUND);
    const filedBefore = await filed();
    const { session, streams } = await stalledStreams('classic.test', '/page.php', 12);
    // four pages fit the bound (held until their streams close); the eight after them were filed
    const fit = Math.floor(BOUND / PAGE.length);
    expect(await held()).toBe(fit * PAGE.length);
    expect((await filed()) - filedBefore).toBe(12 - fit);
    const bodies = await readAll(session, streams);
    for (const body of bodies) expect(body.equals(PAGE)).toBe(true);
    session.close();
    await until(async () => (await held()) === 0, 'nothing held once every stream closed');
  });

  it('HTTP/2, worker: whole worker replies are bounded the same way, and arrive whole', async () => {
    const filedBefore = await filed();
    const { session, streams } = await stalledStreams('worker.test', '/?kb=900', 10);
    const fit = Math.floor(BOUND / PAGE.length);
    expect(await held()).toBe(fit * PAGE.length);
    expect((await filed()) - filedBefore).toBe(10 - fit);
    const expected = bigReply(900);
    for (const body of await readAll(session, streams)) expect(body.equals(expected)).toBe(true);
    session.close();
    await until(async () => (await held()) === 0, 'nothing held once every stream closed');
  });

  it('HTTP/1.1: a reply over the bound to a client that reads nothing goes to a temp file, and arrives whole', async () => {
    const filedBefore = await filed();
    // 6 MiB each: more than the bound, so each is filed before anything is written
    const sockets: Socket[] = [];
    const received = sockets.map(() => [] as Buffer[]);
    for (let i = 0; i < 3; i++) {
      const socket = connect(httpPort, '127.0.0.1');
      socket.on('error', () => {});
      await once(socket, 'connect');
      socket.pause();
      socket.write('GET /?mb=6 HTTP/1.1\r\nHost: worker.test\r\nConnection: close\r\n\r\n');
      sockets.push(socket);
      received.push([]);
    }
    await until(async () => (await filed()) - filedBefore === 3, 'the three replies filed');
    expect(await held()).toBe(0);
    const replies = await Promise.all(
      sockets.map(async (socket, i) => {
        socket.on('data', (chunk: Buffer) => received[i]!.push(chunk));
        socket.resume();
        await once(socket, 'end');
        return Buffer.concat(received[i]!);
      }),
    );
    const expected = bigReply(6 * 1024);
    for (const reply of replies) {
      const head = reply.indexOf('\r\n\r\n');
      expect(reply.subarray(0, head).toString('latin1').toLowerCase()).toContain('\r\ncontent-length: 6291456');
      expect(reply.subarray(head + 4).equals(expected)).toBe(true);
    }
  });

  it('HTTP/2: a client that resets its connection while its filed reply waits frees the file (Node never reports that reset)', async () => {
    const filedBefore = await filed();
    const deadBefore = await metric('warmpool_http2_dead_sessions_total');
    const tcp = connect(httpsPort, '127.0.0.1');
    tcp.on('error', () => {});
    const tls = connectTls({ socket: tcp, ca, servername: 'localhost', ALPNProtocols: ['h2'] });
    tls.on('error', () => {});
    await once(tls, 'secureConnect');
    tls.write(http2Get('/?mb=6', 'worker.test'));
    // the client reads nothing: the reply is filed and the server's writes wait for the kernel
    tls.pause();
    await until(async () => (await filed()) - filedBefore === 1, 'the reply filed');
    await until(async () => (await openReplyFiles()) === 1, 'the temp file open in the server');
    // the client dies with unread bytes: its kernel resets the connection under the server's pending write
    tcp.resetAndDestroy();
    await until(async () => (await openReplyFiles()) === 0, 'the temp file released', 30_000);
    // Node 20-24 never report that reset: the PING watch closed it; Node 26 notices it itself
    const closedByWatch = (await metric('warmpool_http2_dead_sessions_total')) - deadBefore;
    expect(closedByWatch).toBeLessThanOrEqual(1);
    if (closedByWatch === 1) await server.waitFor(/closed 1 HTTP\/2 connection\(s\) whose client was gone/);
  }, 45_000);
});
