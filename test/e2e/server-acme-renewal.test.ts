// Automatic HTTPS over time and between servers, against pebble:
// - TLS-ALPN-01 on the HTTPS listener, with certificates pebble issues for 20 seconds: the renewal
//   (at two thirds) swaps the certificate while connections opened before it keep working;
// - two servers sharing certs_dir (a blue-green pair) order a certificate once, and both serve it.
import { connect as connectH2, type ClientHttp2Session } from 'node:http2';
import { mkdir, mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { hasPebble, startPebble, type Pebble } from '../helpers/pebble.js';
import { FIXTURES, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';

const available = await hasPebble();
const DEADLINE_MS = 45_000;
const pebbles: Pebble[] = [];
let dir: string;

function siteYaml(hosts: string[]): string {
  return `  - hosts: [${hosts.join(', ')}]\n    server: { command: php ${FIXTURES}/php/echo.php }\n    http: { pool: { num_workers: 1 } }\n`;
}

async function serverConfig(
  name: string,
  ports: { http: number; https: number },
  acme: string,
  hosts: string[],
): Promise<string> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    `http:\n  address: 127.0.0.1:${ports.http}\n  ssl:\n    address: 127.0.0.1:${ports.https}\n    acme:\n${acme}` +
      `sites:\n${siteYaml(hosts)}admin:\n  socket: ${join(dir, `${name}.sock`)}\n`,
  );
  return file;
}

function tlsOpen(port: number, servername: string, ca: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: '127.0.0.1', port, servername, ca, ALPNProtocols: ['http/1.1'] }, () =>
      resolve(socket),
    );
    socket.once('error', reject);
  });
}

async function servedSerial(port: number, servername: string, ca: string): Promise<string> {
  const socket = await tlsOpen(port, servername, ca);
  const serial = socket.getPeerCertificate().serialNumber;
  socket.end();
  return serial;
}

/** One request on an open HTTP/1.1 TLS socket (keep-alive); resolves with the status line. */
function requestOn(socket: TLSSocket, host: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const onData = (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const head = text.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(text)?.[1];
      if (head >= 0 && length !== undefined && text.length >= head + 4 + Number(length)) {
        socket.off('data', onData);
        resolve(text.split('\r\n')[0]!);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(`GET /keep-alive HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  });
}

function h2Get(session: ClientHttp2Session, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path });
    stream.once('response', (headers) => {
      stream.resume();
      stream.once('end', () => resolve(Number(headers[':status'])));
    });
    stream.once('error', reject);
  });
}

beforeAll(async () => {
  if (available) dir = await mkdtemp(join(tmpdir(), 'wp-acme-renewal-'));
});
afterAll(async () => {
  if (!available) return;
  await stopAllServers();
  await Promise.all(pebbles.map((p) => p.stop()));
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!available)('automatic HTTPS: TLS-ALPN-01 and renewal', () => {
  it('gets a certificate by TLS-ALPN-01 on the HTTPS listener, renews it at two thirds of its life, and swaps it under live connections', async () => {
    const ports = { http: await freePort(), https: await freePort() };
    // nothing answers HTTP-01 for pebble: only TLS-ALPN-01 on the HTTPS listener can succeed
    const pebble = await startPebble({
      httpPort: await freePort(),
      tlsPort: ports.https,
      certificateValidityPeriod: 20,
    });
    pebbles.push(pebble);
    const root = await pebble.root();
    const config = await serverConfig(
      'alpn',
      ports,
      `      certs_dir: ${join(dir, 'alpn-certs')}\n      challenge_type: tlsalpn-01\n      directory: ${pebble.directory}\n`,
      ['r.test'],
    );
    const server = startServer(['serve', '-c', config], { env: { NODE_EXTRA_CA_CERTS: pebble.caFile } });
    await server.ready();
    await server.waitFor(/certificate r\.test issued: /, DEADLINE_MS);
    expect(server.stdout).toMatch(/ordering for r\.test from \S+ \(TLS-ALPN-01\)/);
    const first = await servedSerial(ports.https, 'r.test', root);

    // connections opened on the first certificate: HTTP/1.1 keep-alive and an HTTP/2 session
    const h1 = await tlsOpen(ports.https, 'r.test', root);
    expect(await requestOn(h1, 'r.test')).toBe('HTTP/1.1 200 OK');
    const h2 = connectH2(`https://r.test:${ports.https}`, {
      ca: root,
      lookup: (_host, _options, callback) => callback(null, [{ address: '127.0.0.1', family: 4 }] as never, 4),
    });
    expect(await h2Get(h2, '/before')).toBe(200);

    await server.waitFor(/certificate r\.test renewed: /, DEADLINE_MS);
    const second = await servedSerial(ports.https, 'r.test', root);
    expect(second).not.toBe(first);
    // the connections from before the swap were not dropped, and still hold the first certificate
    expect(await requestOn(h1, 'r.test')).toBe('HTTP/1.1 200 OK');
    expect(h1.getPeerCertificate().serialNumber).toBe(first);
    expect(await h2Get(h2, '/after')).toBe(200);
    expect((h2.socket as TLSSocket).getPeerCertificate().serialNumber).toBe(first);
    h1.end();
    h2.close();
    expect(pebble.issued()).toBeGreaterThanOrEqual(2);
    await server.stop();
  }, 60_000);
});

describe.skipIf(!available)('automatic HTTPS: two servers sharing certs_dir (blue-green)', () => {
  it('order the certificate once between them and both serve it', async () => {
    const blue = { http: await freePort(), https: await freePort() };
    const green = { http: await freePort(), https: await freePort() };
    // the CA reaches blue's HTTP listener only: if green orders, blue answers from certs_dir
    const pebble = await startPebble({ httpPort: blue.http, tlsPort: blue.https });
    pebbles.push(pebble);
    const root = await pebble.root();
    const certs = join(dir, 'shared-certs');
    // The test holds the order lock (as a live process would) until both servers listen, so neither
    // can order before the other one could answer the CA; then both race for it.
    const lock = join(certs, 'certificates', 'd.test', 'order.lock');
    await mkdir(dirname(lock), { recursive: true });
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() }));
    const acme = `      certs_dir: ${certs}\n      directory: ${pebble.directory}\n`;
    const servers: RunningServer[] = [
      startServer(['serve', '-c', await serverConfig('blue', blue, acme, ['d.test'])], {
        env: { NODE_EXTRA_CA_CERTS: pebble.caFile },
      }),
      startServer(['serve', '-c', await serverConfig('green', green, acme, ['d.test'])], {
        env: { NODE_EXTRA_CA_CERTS: pebble.caFile },
      }),
    ];
    await Promise.all(
      servers.map((s) => s.waitFor(/certificate d\.test: warmpool pid \d+ on .* is ordering it/, DEADLINE_MS)),
    );
    // seeing the lock comes before listening: both must listen before either can order or serve
    await Promise.all(servers.map((s) => s.ready(DEADLINE_MS)));
    await unlink(lock);
    await Promise.all(servers.map((s) => s.waitFor(/certificate d\.test (issued|taken from certs_dir)/, DEADLINE_MS)));
    const output = servers.map((s) => s.stdout).join('\n');
    expect(output.match(/certificate d\.test: ordering for/g)).toHaveLength(1);
    expect(output.match(/certificate d\.test taken from certs_dir/g)).toHaveLength(1);
    expect(pebble.issued()).toBe(1);
    const serials = await Promise.all([blue, green].map((ports) => servedSerial(ports.https, 'd.test', root)));
    expect(serials[0]).toBe(serials[1]);
    await Promise.all(servers.map((s) => s.stop()));
  }, 90_000);
});

describe.skipIf(!available)('automatic HTTPS: a RoadRunner-style config', () => {
  it('answers HTTP-01 on alt_http_port (a port forward from 80) and ignores cert/key with acme, as RoadRunner', async () => {
    const ports = { http: await freePort(), https: await freePort(), alt: await freePort() };
    const pebble = await startPebble({ httpPort: ports.alt, tlsPort: await freePort() });
    pebbles.push(pebble);
    const acme =
      `      certs_dir: ${join(dir, 'rr-certs')}\n      email: you@example.com\n      alt_http_port: ${ports.alt}\n` +
      `      challenge_type: http-01\n      directory: ${pebble.directory}\n      domains: [rr.test]\n` +
      `    cert: /ssl/server.crt\n    key: /ssl/server.key\n`;
    const server = startServer(['serve', '-c', await serverConfig('rr', ports, acme, ['rr.test'])], {
      env: { NODE_EXTRA_CA_CERTS: pebble.caFile },
    });
    await server.ready();
    expect(server.stderr).toMatch(/http\.ssl\.cert: ignored: http\.ssl\.acme provides the certificates/);
    expect(server.stdout).toContain(`ACME challenges also answered on port ${ports.alt} (alt port)`);
    await server.waitFor(/certificate rr\.test issued: /, DEADLINE_MS);
    expect(await servedSerial(ports.https, 'rr.test', await pebble.root())).toMatch(/^[0-9A-F]+$/);
    await server.stop();
  }, 60_000);
});
