import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { uploadRefused } from '../helpers/raw-upload.js';
import { FIXTURES, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';

// An upload over http.max_request_size, through `warmpool serve`, for a worker site and a classic
// one (managed php-cgi): the client gets the 413 even while it is still sending (a browser shows
// it, or the site's error page, rather than "connection reset"). warmpool answered and closed the
// connection with the body unread, and the close was a RST: the answer was lost (Node's fetch
// threw EPIPE on a 37 MB form 3 times in 3). It now lingers as nginx does: our side ends after the
// answer, what the client still sends is read and dropped, the socket closes once the client ends
// (or after 5 s of silence, 30 s in all).
const MB = 1024 * 1024;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-linger-'));
});
afterAll(async () => {
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

const WORKER = ['server:', `  command: php ${FIXTURES}/php/echo.php`];
const CLASSIC = ['fastcgi:', `  root: ${FIXTURES}/sites/classic-app`];

/** `backend`: the config's server: (a worker site) or fastcgi: (a classic one) section. */
async function serve(name: string, backend: string[]): Promise<{ server: RunningServer; port: number }> {
  const port = await freePort();
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    [
      'version: "3"',
      ...backend,
      'http:',
      `  address: 127.0.0.1:${port}`,
      '  max_request_size: 1',
      '  pool: { num_workers: 1 }',
      'logs: { mode: production, level: warn }',
      `admin: { socket: ${join(dir, `${name}.sock`)} }`,
      '',
    ].join('\n'),
  );
  const server = startServer(['serve', '-c', file]);
  await server.ready(30_000);
  return { server, port };
}

describe.each([
  ['worker', WORKER],
  ['classic', CLASSIC],
])('a %s site: a body over max_request_size', (name, backend) => {
  let port: number;

  beforeAll(async () => {
    ({ port } = await serve(name, backend));
  });

  it('a raw client writing 50 MB as fast as it can reads the whole 413, with no reset', async () => {
    for (let i = 0; i < 3; i++) {
      const outcome = await uploadRefused(
        port,
        `POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Type: application/octet-stream\r\nContent-Length: ${50 * MB}\r\n\r\n`,
        { bodyBytes: 50 * MB, untilEnd: true },
      );
      expect([outcome.error, outcome.status, outcome.sent]).toEqual([null, 413, 50 * MB]);
      expect(outcome.body).toBe('Payload Too Large\n');
    }
  });

  it('Node fetch gets the 413 response for a 37 MB form upload and a 20 MB body, not a thrown error', async () => {
    const url = `http://127.0.0.1:${port}/upload`;
    for (let i = 0; i < 3; i++) {
      const form = new FormData();
      form.append('title', 'holiday');
      form.append('file', new Blob([Buffer.alloc(37 * MB, 'f')]), 'video.mp4');
      const upload = await fetch(url, { method: 'POST', body: form });
      expect(upload.status).toBe(413);
      expect(await upload.text()).toBe('Payload Too Large\n');
      const plain = await fetch(url, { method: 'POST', body: Buffer.alloc(20 * MB, 'p') });
      expect(plain.status).toBe(413);
      await plain.arrayBuffer();
    }
  });

  it('a head over 16 KB followed by a body: the whole 431, with no reset', async () => {
    const outcome = await uploadRefused(
      port,
      `POST /upload HTTP/1.1\r\nHost: a.test\r\nX-Big: ${'b'.repeat(20_000)}\r\nContent-Length: ${20 * MB}\r\n\r\n`,
      { bodyBytes: 20 * MB, untilEnd: true },
    );
    expect([outcome.error, outcome.status, outcome.body]).toEqual([null, 431, 'Request Header Fields Too Large\n']);
  });
});

describe('a drain with a client still connected after its 413', () => {
  it('ends: a client that never closes its side is cut once the server has ended its own', async () => {
    const { server, port } = await serve('drain', WORKER);
    // answered, then silent with its side open: the server lingers, waiting for the rest or its end
    const socket: Socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.write(`POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: ${50 * MB}\r\n\r\n`);
    socket.write(Buffer.alloc(MB, 'x'));
    socket.setEncoding('latin1');
    let text = '';
    socket.on('data', (chunk: string) => (text += chunk));
    await once(socket, 'end');
    expect(text).toMatch(/^HTTP\/1\.1 413 /);
    // the drain cuts it (the client, half-open, learns of it only when it writes again)
    expect(await server.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    socket.destroy();
  });
});
