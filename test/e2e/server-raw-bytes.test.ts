// Request targets nginx takes and Node's parser or Fastify's router do not, sent byte for byte to
// `warmpool serve`'s plain and HTTPS listeners: raw (unencoded) bytes in the query string, and
// paths whose bytes are not UTF-8 once decoded (a worker app and a classic front controller).
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as connectH2 } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { makeTlsPair } from '../helpers/tls-pair.js';
import { FIXTURES, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';

let dir: string;
let server: RunningServer;
let httpPort: number;
let httpsPort: number;
let metricsPort: number;
let ca: Buffer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wp-raw-bytes-'));
  const pair = await makeTlsPair(dir);
  ca = await readFile(pair.ca);
  [httpPort, httpsPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  // files named as the text "%FF" would decode to if its byte were read as U+FFFD: never served
  mkdirSync(join(dir, 'public'));
  writeFileSync(join(dir, 'public', '\uFFFD'), 'STATIC FILE');
  mkdirSync(join(dir, 'classic'));
  writeFileSync(join(dir, 'classic', '\uFFFD'), 'STATIC FILE');
  writeFileSync(
    join(dir, 'classic', 'index.php'),
    "<?php echo 'FRONT:', $_SERVER['REQUEST_URI'], '|', $_SERVER['SCRIPT_NAME'], '|', $_SERVER['QUERY_STRING'], '|', $_SERVER['PATH_INFO'] ?? 'unset';",
  );
  const config = [
    'version: "3"',
    'server:',
    `  command: php ${FIXTURES}/php/target-echo.php`,
    'http:',
    `  address: 127.0.0.1:${httpPort}`,
    '  pool: { num_workers: 1 }',
    '  middleware: [static]',
    `  static: { dir: ${join(dir, 'public')} }`,
    '  access: [{ prefix: /admin, deny: [all] }]',
    `  ssl: { address: "127.0.0.1:${httpsPort}", cert: ${pair.cert}, key: ${pair.key} }`,
    `metrics: { address: "127.0.0.1:${metricsPort}" }`,
    'sites:',
    '  - hosts: [classic.test]',
    `    fastcgi: { root: ${join(dir, 'classic')}, command: php-cgi }`,
    '    http: { pool: { num_workers: 1 } }',
    'logs: { mode: production, level: info }',
    `admin: { socket: ${join(dir, 'admin.sock')} }`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'warmpool.yaml'), config);
  server = startServer(['serve', '-c', join(dir, 'warmpool.yaml')]);
  await server.ready(30_000);
}, 60_000);

afterAll(async () => {
  await stopAllServers();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  head: string;
  body: string;
}

/** `head` (request line and headers, CRLF-terminated lines) written as latin1 bytes; read until close. */
function exchange(listener: 'http' | 'https', head: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const bytes = Buffer.from(`${head}Connection: close\r\n\r\n`, 'latin1');
    const socket: Socket =
      listener === 'http'
        ? connectTcp(httpPort, '127.0.0.1', () => socket.write(bytes))
        : connectTls(
            { host: '127.0.0.1', port: httpsPort, servername: 'localhost', ca, ALPNProtocols: ['http/1.1'] },
            () => socket.write(bytes),
          );
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${head.split('\r\n')[0]}`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      resolve({ status: Number(text.slice(9, 12)), head: text.slice(0, split), body: text.slice(split + 4) });
    });
  });
}

describe.each(['http', 'https'] as const)('raw bytes in the query string (%s listener, HTTP/1.1)', (listener) => {
  it('a raw "é" in the query is a plain-text 400 that says to percent-encode it; encoded, PHP gets it', async () => {
    const raw = await exchange(listener, 'GET /env.php?q=\xc3\xa9 HTTP/1.1\r\nHost: localhost\r\n');
    expect(raw.status).toBe(400);
    expect(raw.head).toMatch(/^content-type: text\/plain; charset=utf-8$/im);
    expect(raw.head).toMatch(/^connection: close$/im);
    expect(raw.body).toBe('Bad Request: the query string holds raw bytes: percent-encode them\n');
    const encoded = await exchange(listener, 'GET /env.php?q=%C3%A9 HTTP/1.1\r\nHost: localhost\r\n');
    expect([encoded.status, encoded.body]).toEqual([200, 'PHP:/env.php?q=%C3%A9']);
  });

  it('the answers Node already gave keep their status: a bad request line 400, a head over 16 KB 431, HTTP/2.0 505', async () => {
    const garbage = await exchange(listener, 'GARBAGE\r\n');
    expect(garbage.status).toBe(400);
    expect(garbage.body).toMatch(/^Bad Request: the request is not valid HTTP\/1\.1/);
    const big = await exchange(listener, `GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(20_000)}\r\n`);
    expect(big.status).toBe(431);
    const version = await exchange(listener, 'GET / HTTP/2.0\r\nHost: localhost\r\n');
    expect(version.status).toBe(505);
  });
});

it('a plain HTTP request to the HTTPS port gets a plain-text 400 that says to use https, and nothing runs', async () => {
  for (const method of ['GET', 'POST', 'HEAD', 'OPTIONS', 'DELETE']) {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connectTcp(httpsPort, '127.0.0.1', () =>
        socket.write(`${method} /env.php HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n`),
      );
      let text = '';
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(text));
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
    expect(
      answer.endsWith('\r\n\r\nBad Request: a plain HTTP request was sent to the HTTPS port: use https://\n'),
    ).toBe(true);
  }
  await server.waitFor('bad request: a plain HTTP request was sent to the HTTPS port');
  const res = await request(`http://127.0.0.1:${metricsPort}/metrics`);
  expect(await res.body.text()).toMatch(/^warmpool_bad_requests_total\{reason="plain_http"\} 5$/m);
  // the listener still speaks TLS
  expect((await exchange('https', 'GET /env.php HTTP/1.1\r\nHost: localhost\r\n')).status).toBe(200);
});

it('logs the refusals (one line per 10 s, with the count) and counts them in /metrics', async () => {
  await server.waitFor('bad request: the query string holds raw bytes: percent-encode them');
  const res = await request(`http://127.0.0.1:${metricsPort}/metrics`);
  const text = await res.body.text();
  expect(text).toMatch(/^warmpool_bad_requests_total\{reason="raw_query"\} 2$/m);
  expect(text).toMatch(/^warmpool_bad_requests_total\{reason="malformed"\} 2$/m);
});

describe.each(['http', 'https'] as const)('paths whose bytes are not UTF-8 (%s listener, HTTP/1.1)', (listener) => {
  const get = (target: string, host = 'localhost') => exchange(listener, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n`);

  it('a worker app gets them with the target exactly as sent; no static file is picked by them', async () => {
    for (const target of ['/p/%FF', '/%E9t%E9?q=%E9', '/%c0%ae/x', '/%FF', '/a%C3%A9/%FF/%2F?x=1']) {
      const res = await get(target);
      expect([target, res.status, res.body]).toEqual([target, 200, `PHP:${target}`]);
    }
    // access rules read the decoded path: /%61dmin is /admin whatever follows
    expect((await get('/%61dmin/%FF')).status).toBe(403);
  });

  it('a classic front controller gets them (REQUEST_URI as sent); a script name, ".." or a control byte is refused as before', async () => {
    for (const target of ['/p/%FF', '/%E9t%E9?q=1', '/%c0%ae', '/%FF']) {
      const res = await get(target, 'classic.test');
      const query = target.includes('?') ? target.slice(target.indexOf('?') + 1) : '';
      expect([target, res.status, res.body]).toEqual([target, 200, `FRONT:${target}|/index.php|${query}|`]);
    }
    // a script before them runs with them in PATH_INFO, as nginx runs it (each such byte U+FFFD there)
    for (const [target, pathInfo] of [
      ['/index.php/Caf%E9', '/Caf\uFFFD'],
      ['/index.php/%FF/x?q=1', '/\uFFFD/x'],
    ] as const) {
      const res = await get(target, 'classic.test');
      const query = target.includes('?') ? target.slice(target.indexOf('?') + 1) : '';
      expect([target, res.status, res.body]).toEqual([target, 200, `FRONT:${target}|/index.php|${query}|${pathInfo}`]);
    }
    for (const [target, status] of [
      ['/%FF.php', 404],
      ['/.git/%FF', 403],
      ['/%FF/%2e%2e/x', 400],
      ['/%FF%00', 400],
    ] as const) {
      const res = await get(target, 'classic.test');
      expect([target, res.status]).toEqual([target, status]);
      expect(res.body).not.toContain('FRONT:');
    }
  });

  it('a broken escape ("%zz") is a plain-text 400 that says so, not Fastify\'s JSON, in both modes', async () => {
    for (const host of ['localhost', 'classic.test']) {
      const res = await get('/p/%zz', host);
      expect(res.status).toBe(400);
      expect(res.head).toMatch(/^content-type: text\/plain; charset=utf-8$/im);
      expect(res.body).toBe(
        'Bad Request: the path holds a malformed percent-encoding (a "%" not followed by two hex digits)\n',
      );
    }
  });
});

it('over HTTP/2 too: a worker app gets "/p/%FF" as sent', async () => {
  const session = connectH2(`https://localhost:${httpsPort}`, { ca });
  try {
    const stream = session.request({ ':path': '/p/%FF?q=%E9', ':method': 'GET' });
    const [headers] = (await once(stream, 'response')) as [Record<string, string | number>];
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (body += chunk));
    await once(stream, 'end');
    expect([headers[':status'], body]).toEqual([200, 'PHP:/p/%FF?q=%E9']);
  } finally {
    session.close();
  }
});
