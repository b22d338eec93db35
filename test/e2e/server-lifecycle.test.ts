import { once } from 'node:events';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as connectHttp2, constants as http2Constants } from 'node:http2';
import { connect, type Server } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, listening } from '../helpers/free-port.js';
import { isAlive } from '../helpers/php.js';
import { until } from '../helpers/until.js';
import { selfSignedPair } from '../helpers/tls-pair.js';
import { FIXTURES, startServer, stopAllServers } from '../helpers/warmpool-server.js';

// Signals and sockets: the SIGTERM drain with a request in flight, the forced second SIGINT, and
// listening sockets handed over with LISTEN_FDS (systemd socket activation, warmpool-swap).
let dir: string;
const held: Server[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-life-'));
});
afterAll(async () => {
  await stopAllServers();
  await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

async function drainEnv(name: string) {
  return {
    HTTP_PORT: String(await freePort()),
    STATUS_PORT: String(await freePort()),
    ADMIN_SOCKET: join(dir, `${name}.sock`),
    FIXTURES,
  };
}

/** Waits until the status listener reports `working` busy workers. */
async function untilWorking(statusPort: string, working: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const res = await request(`http://127.0.0.1:${statusPort}/ready`);
    const body = (await res.body.json()) as { sites: { default: { workers: { working: number } } } };
    if (body.sites.default.workers.working === working) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no worker became busy`);
}

function connectError(port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(null);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

/**
 * One keep-alive HTTP/1.1 connection driven by hand, so the test decides when each request leaves
 * (a client library would open a new connection or retry on its own).
 */
function keepAliveConnection(port: number) {
  const socket = connect(port, '127.0.0.1');
  let buffer = '';
  let ended = false;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => (buffer += chunk));
  socket.on('end', () => (ended = true));
  socket.on('error', () => (ended = true));
  return {
    /** the server ended (or reset) the connection */
    get ended() {
      return ended;
    },
    /** POSTs `body` to sleep.php and reads one whole reply (it has a Content-Length). */
    async post(body: string): Promise<{ head: string; body: string }> {
      buffer = '';
      socket.write(`POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      for (;;) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end >= 0) {
          const head = buffer.slice(0, end);
          const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1]);
          if (buffer.length >= end + 4 + length) return { head, body: buffer.slice(end + 4, end + 4 + length) };
        }
        if (ended) throw new Error(`the connection ended before a whole reply: ${JSON.stringify(buffer)}`);
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    close: () => socket.destroy(),
  };
}

describe('SIGTERM drain', () => {
  it('finishes the request in flight, refuses new connections, says draining on /ready, stops PHP and exits 0', async () => {
    const env = await drainEnv('drain');
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'drain.yaml')], { env });
    await server.ready();
    const slow = request(`http://127.0.0.1:${env.HTTP_PORT}/slow`, { method: 'POST', body: '1500' });
    await untilWorking(env.STATUS_PORT, 1);

    server.child.kill('SIGTERM');
    await server.waitFor('SIGTERM: draining');
    expect(server.stdout).toContain('1 request in flight');
    const ready = await request(`http://127.0.0.1:${env.STATUS_PORT}/ready`);
    expect(ready.statusCode).toBe(503);
    expect(((await ready.body.json()) as { status: string }).status).toBe('draining');
    expect(await connectError(Number(env.HTTP_PORT))).toBe('ECONNREFUSED');

    const res = await slow;
    expect(res.statusCode).toBe(200);
    // its connection is told not to send more (a keep-alive reply would invite a request into a closing socket)
    expect(res.headers.connection).toBe('close');
    const pid = Number(await res.body.text());
    expect(pid).toBeGreaterThan(0);
    const { code } = await server.exited;
    expect(code).toBe(0);
    expect(server.stdout).toMatch(/✓ stopped in/);
    expect(isAlive(pid)).toBe(false);
  });

  it('an idle keep-alive connection may still bring a request during the grace: it is served, with Connection: close', async () => {
    // A client's next request can already be on the wire when the drain starts; ending (or
    // destroying) idle connections at once would reset it. They get DRAIN_IDLE_GRACE_MS (500 ms).
    const env = await drainEnv('grace');
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'drain.yaml')], { env });
    await server.ready();
    const connection = keepAliveConnection(Number(env.HTTP_PORT));
    try {
      const first = await connection.post('0');
      expect(first.head).toMatch(/^HTTP\/1\.1 200/);
      expect(first.head).not.toMatch(/\r\nconnection: close/i);

      server.child.kill('SIGTERM');
      await server.waitFor('SIGTERM: draining');
      await new Promise((r) => setTimeout(r, 100)); // the drain has started; the grace has not ended
      expect(connection.ended).toBe(false);
      const second = await connection.post('0');
      expect(second.head).toMatch(/^HTTP\/1\.1 200/);
      expect(second.head).toMatch(/\r\nconnection: close/i);
      expect(Number(second.body)).toBeGreaterThan(0);
    } finally {
      connection.close();
    }
    const { code } = await server.exited;
    expect(code).toBe(0);
  });

  it('a keep-alive reply still being sent at SIGTERM: the request sent right after it is served with Connection: close', async () => {
    // Its head went out before the drain, saying keep-alive, so the client reuses the connection
    // the moment the reply ends; the connection was ended right after the reply, and that request
    // was reset (a few per swap under any load with downloads or streams).
    const env = await drainEnv('streamed');
    const gate = join(dir, 'streamed.gate');
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'drain-stream.yaml')], { env });
    await server.ready();
    const post = (body: string) =>
      `POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const socket = connect(Number(env.HTTP_PORT), '127.0.0.1');
    let text = '';
    let sentNext = false;
    socket.setEncoding('latin1');
    socket.on('error', () => {});
    socket.on('data', (chunk: string) => {
      text += chunk;
      // as a keep-alive client does: the next request leaves as soon as the streamed reply is whole
      if (!sentNext && text.includes('\r\n0\r\n\r\n')) {
        sentNext = true;
        socket.write(post('next'));
      }
    });
    const closed = once(socket, 'close');
    try {
      socket.write(post(`gate:${gate}`));
      await until(() => text.includes('first'), 'the head and first chunk of the streamed reply');
      expect(text).toMatch(/\r\nconnection: keep-alive/i);
      server.child.kill('SIGTERM');
      await server.waitFor('SIGTERM: draining');
      await writeFile(gate, '');
      await closed; // then the server ends the connection: one more answer at most
    } finally {
      socket.destroy();
    }
    const [streamed = '', next = '', ...more] = text.split(/(?=HTTP\/1\.1 )/);
    expect(more).toEqual([]);
    expect(streamed).toContain('last');
    expect(next).toMatch(/^HTTP\/1\.1 200 /);
    expect(next).toMatch(/\r\nconnection: close/i);
    expect(Number(next.slice(next.indexOf('\r\n\r\n') + 4))).toBeGreaterThan(0); // its worker's pid
    const { code } = await server.exited;
    expect(code).toBe(0);
  });

  it('HTTPS: a connection whose TLS handshake ends during the drain is served, not closed unanswered', async () => {
    // A connection accepted just before SIGTERM finishes its handshake after the drain began; it
    // was ended at once, so its request got no answer at all (one per swap: curl's "Empty reply").
    const pair = await selfSignedPair(dir, 'drain', ['localhost']);
    const env = { ...(await drainEnv('tls')), HTTPS_PORT: String(await freePort()), CERT: pair.cert, KEY: pair.key };
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'drain-tls.yaml')], { env });
    await server.ready();
    // the TCP connection is accepted now; its handshake waits until the drain has begun
    const tcp = connect(Number(env.HTTPS_PORT), '127.0.0.1');
    await new Promise((resolve) => tcp.once('connect', resolve));
    server.child.kill('SIGTERM');
    await server.waitFor('SIGTERM: draining');
    const answer = await new Promise<string>((resolve, reject) => {
      const tls = connectTls({
        socket: tcp,
        servername: 'localhost',
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'],
      });
      let text = '';
      tls.once('secureConnect', () => tls.write('POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\n\r\n0'));
      tls.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
      tls.once('end', () => resolve(text));
      tls.once('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toMatch(/\r\nconnection: close/i);
    const { code } = await server.exited;
    expect(code).toBe(0);
  });

  it('HTTP/2: a static download the client cancelled does not hold the drain for destroy_timeout', async () => {
    // The plugin's drain waits for requests that began and have not reached PHP; a cancelled
    // HTTP/2 stream was never seen as gone, so every stop after one waited the whole
    // destroy_timeout (60 s here, past this test's timeout).
    const pair = await selfSignedPair(dir, 'cancel', ['localhost']);
    const staticDir = join(dir, 'cancel-static');
    await mkdir(staticDir);
    await writeFile(join(staticDir, 'big.bin'), Buffer.alloc(8 * 1024 * 1024, 'x'));
    const env = {
      ...(await drainEnv('cancel')),
      HTTPS_PORT: String(await freePort()),
      CERT: pair.cert,
      KEY: pair.key,
      STATIC_DIR: staticDir,
    };
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'drain-static-tls.yaml')], { env });
    await server.ready();
    const session = connectHttp2(`https://localhost:${env.HTTPS_PORT}`, { rejectUnauthorized: false });
    session.on('error', () => {});
    try {
      // not read: the server has sent its head and what flow control lets it, and waits
      const stream = session.request({ ':path': '/big.bin' });
      stream.on('error', () => {});
      const [headers] = (await once(stream, 'response')) as [Record<string, unknown>];
      expect(headers[':status']).toBe(200);
      stream.close(http2Constants.NGHTTP2_CANCEL);
      await once(stream, 'close');
      server.child.kill('SIGTERM');
      await server.waitFor('SIGTERM: draining');
    } finally {
      session.close();
    }
    const { code } = await server.exited;
    expect(code).toBe(0);
    expect(server.stdout).toMatch(/✓ stopped in/);
  });

  it('a second SIGINT exits at once with 1 and kills the workers', async () => {
    const env = await drainEnv('force');
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'drain.yaml')], { env });
    await server.ready();
    const slow = request(`http://127.0.0.1:${env.HTTP_PORT}/slow`, { method: 'POST', body: '8000' }).then(
      (r) => r.body.text(),
      (error: Error) => error,
    );
    await untilWorking(env.STATUS_PORT, 1);
    const status = (await (await request(`http://127.0.0.1:${env.STATUS_PORT}/ready`)).body.json()) as object;
    expect(status).toBeDefined();
    server.child.kill('SIGINT');
    await server.waitFor('SIGINT: draining');
    server.child.kill('SIGINT');
    const { code } = await server.exited;
    expect(code).toBe(1);
    expect(server.stderr).toContain('SIGINT again: exiting now');
    await slow;
  });
});

/** A port held by this process, so a server that tried to bind it itself would fail (EADDRINUSE). */
async function blockedPort(): Promise<number> {
  const { server, port } = await listening();
  held.push(server);
  return port;
}

function config(name: string, body: string): Promise<string> {
  const file = join(dir, `${name}.yaml`);
  return writeFile(file, body).then(() => file);
}

describe('LISTEN_FDS', () => {
  it('adopts a socket passed as fd 3 instead of binding http.address', async () => {
    const socket = await listening();
    const file = await config(
      'fds-one',
      `server:\n  command: php ${FIXTURES}/php/echo.php\nhttp:\n  address: 127.0.0.1:${await blockedPort()}\n  pool: { num_workers: 1 }\nadmin:\n  socket: ${join(dir, 'fds1.sock')}\n`,
    );
    const server = startServer(['serve', '-c', file], {
      env: { LISTEN_FDS: '1' },
      stdio: ['ignore', 'pipe', 'pipe', socket.fd],
    });
    socket.server.close(); // only the child accepts from now on
    await server.ready();
    expect(server.stdout).toContain(
      `listening on http://127.0.0.1:${socket.port} (HTTP/1.1, socket fd 3 from LISTEN_FDS)`,
    );
    const res = await request(`http://127.0.0.1:${socket.port}/adopted`);
    expect(res.statusCode).toBe(200);
    const body = (await res.body.json()) as { pid: number; context: { uri: string } };
    expect(body.context.uri).toBe(`http://127.0.0.1:${socket.port}/adopted`);
    expect((await server.stop()).code).toBe(0);
  });

  it('matches LISTEN_FDNAMES to listeners ("status:http" → fd 3 status, fd 4 http)', async () => {
    const status = await listening();
    const http = await listening();
    const file = await config(
      'fds-named',
      `server:\n  command: php ${FIXTURES}/php/echo.php\nhttp:\n  address: 127.0.0.1:${await blockedPort()}\n  pool: { num_workers: 1 }\nstatus:\n  address: 127.0.0.1:${await blockedPort()}\nadmin:\n  socket: ${join(dir, 'fds2.sock')}\n`,
    );
    const server = startServer(['serve', '-c', file], {
      env: { LISTEN_FDS: '2', LISTEN_FDNAMES: 'status:http' },
      stdio: ['ignore', 'pipe', 'pipe', status.fd, http.fd],
    });
    status.server.close();
    http.server.close();
    await server.ready();
    const ready = await request(`http://127.0.0.1:${status.port}/ready`);
    expect(ready.statusCode).toBe(200);
    expect(((await ready.body.json()) as { status: string }).status).toBe('ready');
    const page = await request(`http://127.0.0.1:${http.port}/named`);
    expect(((await page.body.json()) as { context: { uri: string } }).context.uri).toBe(
      `http://127.0.0.1:${http.port}/named`,
    );
    expect((await server.stop()).code).toBe(0);
  });

  it('ignores LISTEN_FDS meant for another pid (LISTEN_PID) and binds itself: a busy address exits 5', async () => {
    const socket = await listening();
    held.push(socket.server);
    const busy = await blockedPort();
    const file = await config(
      'fds-other',
      `server:\n  command: php ${FIXTURES}/php/echo.php\nhttp:\n  address: 127.0.0.1:${busy}\n  pool: { num_workers: 1 }\nadmin:\n  socket: ${join(dir, 'fds3.sock')}\n`,
    );
    const server = startServer(['serve', '-c', file], {
      env: { LISTEN_FDS: '1', LISTEN_PID: '1' },
      stdio: ['ignore', 'pipe', 'pipe', socket.fd],
    });
    const { code } = await server.exited;
    expect(code).toBe(5);
    // at the line that names the address, before any worker booted (nginx binds first too)
    expect(server.stderr).toMatch(
      new RegExp(
        `fds-other\\.yaml:4:\\d+ http\\.address: cannot listen on 127\\.0\\.0\\.1:${busy} \\(http\\): the address is already in use`,
      ),
    );
    expect(server.stdout).not.toMatch(/booting \d+ worker|workers? ready|warmpool ready/);
  });
});
