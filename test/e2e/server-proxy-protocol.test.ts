import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as connectH2 } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { rawRequest } from '../helpers/raw-http.js';
import { makeTlsPair } from '../helpers/tls-pair.js';
import { FIXTURES, runCli, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';

// http.proxy_protocol and http.ssl.proxy_protocol, as a TCP load balancer uses them: its PROXY
// header (v1 text, v2 binary) names the client before the HTTP request or the TLS handshake, and
// that client is the one PHP, the access rules and the access log see. The all-features config
// cannot carry it: every client of its listeners would have to send the header.
let dir: string;
let ca: Buffer;
let server: RunningServer;
const env: Record<string, string> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-proxy-protocol-'));
  ca = await readFile((await makeTlsPair(dir)).ca);
  Object.assign(env, {
    HTTP_PORT: String(await freePort()),
    HTTPS_PORT: String(await freePort()),
    CERT_DIR: dir,
    FIXTURES,
  });
  server = startServer(['serve', '-c', join(FIXTURES, 'server', 'proxy-protocol.yaml')], { env });
  await server.ready();
});
afterAll(async () => {
  await stopAllServers();
  await rm(dir, { recursive: true, force: true });
});

/** A v2 PROXY header for a TCP over IPv4 client. */
function v2Header(client: string, port: number): Buffer {
  const head = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0, 12]);
  const body = Buffer.alloc(12);
  body.set(client.split('.').map(Number), 0);
  body.set([127, 0, 0, 1], 4);
  body.writeUInt16BE(port, 8);
  body.writeUInt16BE(443, 10);
  return Buffer.concat([head, body]);
}

/** The access log's JSON line of the request with this id. */
async function accessLine(id: string): Promise<{ remote_addr: string; status: number }> {
  await server.waitFor(`"request_id":"${id}"`);
  return JSON.parse(server.stdout.split('\n').find((line) => line.includes(`"request_id":"${id}"`))!);
}

describe('PROXY protocol', () => {
  it('says it at start: each listener takes the PROXY protocol', () => {
    expect(server.stdout).toContain(`listening on http://127.0.0.1:${env.HTTP_PORT} (HTTP/1.1, PROXY protocol)`);
    expect(server.stdout).toContain(
      `listening on https://127.0.0.1:${env.HTTPS_PORT} (HTTP/2 + HTTP/1.1, PROXY protocol)`,
    );
  });

  it('HTTP, v1: PHP, the access rules and the access log see the client the header names', async () => {
    /** GET /who on a connection that starts with `header`, as a balancer's would */
    const who = (header: string) => rawRequest(Number(env.HTTP_PORT), 'GET /who HTTP/1.1\nHost: localhost', '', header);
    const res = await who('PROXY TCP4 203.0.113.5 127.0.0.1 5555 80\r\n');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).context).toMatchObject({ remoteAddr: '203.0.113.5' });
    expect((await accessLine(res.headers['x-request-id']!)).remote_addr).toBe('203.0.113.5');
    // http.access denies this one client, not the balancer it comes through
    expect((await who('PROXY TCP4 203.0.113.66 127.0.0.1 5556 80\r\n')).status).toBe(403);
    // an IPv6 client, and the balancer's own health check (UNKNOWN): the peer itself
    const v6 = await who('PROXY TCP6 2001:db8::7 ::1 5557 80\r\n');
    expect(JSON.parse(v6.body).context.remoteAddr).toBe('2001:db8::7');
    const check = await who('PROXY UNKNOWN\r\n');
    expect(JSON.parse(check.body).context.remoteAddr).toBe('127.0.0.1');
  });

  it('HTTPS, v2 before the TLS handshake, alone or with the ClientHello: HTTP/2 and HTTP/1.1 by ALPN see the client', async () => {
    const port = Number(env.HTTPS_PORT);
    /** `together`: the header and the TLS ClientHello in one segment, as a balancer under load sends them */
    const overTls = (client: string, alpn: string, together = false) => {
      const raw = netConnect(port, '127.0.0.1');
      if (together) raw.cork();
      raw.write(v2Header(client, 6000));
      const tls = connectTls({ socket: raw, ca, servername: 'localhost', ALPNProtocols: [alpn] });
      // the ClientHello is written once the connection is up: uncorked then, both go out as one
      if (together) raw.once('connect', () => setImmediate(() => raw.uncork()));
      return tls;
    };
    const session = connectH2(`https://localhost:${port}`, { createConnection: () => overTls('198.51.100.9', 'h2') });
    const stream = session.request({ ':path': '/h2' });
    let body = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => (body += chunk));
    await once(stream, 'end');
    session.close();
    expect(JSON.parse(body).context.remoteAddr).toBe('198.51.100.9');

    // before: a ClientHello read with the header was lost, and the handshake hung
    const tls = overTls('198.51.100.10', 'http/1.1', true);
    await once(tls, 'secureConnect');
    tls.write('GET /h1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    let answer = '';
    tls.setEncoding('utf8');
    tls.on('data', (chunk: string) => (answer += chunk));
    await once(tls, 'end');
    expect(answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(answer).toContain('"remoteAddr":"198.51.100.10"');
  });

  it('a connection without the header is closed unanswered, and the log says what to do', async () => {
    const res = await new Promise<string>((resolve) => {
      const socket = netConnect(Number(env.HTTP_PORT), '127.0.0.1', () =>
        socket.write('GET /direct HTTP/1.1\r\nHost: localhost\r\n\r\n'),
      );
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => resolve(text));
      socket.on('error', () => resolve(text));
    });
    expect(res).toBe('');
    await server.waitFor('proxy_protocol: closed a connection from 127.0.0.1: no PROXY header');
    expect(server.stdout + server.stderr).toContain('turn it on at the load balancer, or proxy_protocol off here');
  });

  it('config check: proxy_protocol without trusted_subnets names the key and its line', async () => {
    const file = join(dir, 'untrusted.yaml');
    await writeFile(
      file,
      'version: "3"\nserver:\n  command: php worker.php\nhttp:\n  address: 127.0.0.1:8080\n  proxy_protocol: true\n',
    );
    const check = await runCli(['config', 'check', '-c', file]);
    expect(check.code).toBe(2);
    expect(check.stderr).toContain(`${file}:6:`);
    expect(check.stderr).toContain("http.proxy_protocol: needs http.trusted_subnets: the load balancers' addresses");
  });
});
