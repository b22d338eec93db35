import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as connectH2 } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { rawRequest } from '../helpers/raw-http.js';
import { until } from '../helpers/until.js';
import { FIXTURES, runCli, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';

// HTTPS with a CA made here: HTTP/1.1 (undici) and HTTP/2 (node:http2, curl) by ALPN, the redirect
// listener, and certificate reload on SIGHUP that keeps open connections.
const exec = promisify(execFile);
let dir: string;
let ca: Buffer;
let server: RunningServer;
let httpPort: number;
let httpsPort: number;

async function openssl(...args: string[]): Promise<void> {
  await exec('openssl', args, { cwd: dir });
}

/** A leaf for localhost / 127.0.0.1 signed by the test CA, with a chosen serial. */
async function leaf(name: string, serial: string): Promise<void> {
  await openssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    '/CN=localhost',
  );
  await openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-set_serial',
    `0x${serial}`,
    '-days',
    '2',
    '-out',
    `${name}.pem`,
    '-extfile',
    'leaf.ext',
  );
}

function tlsConnect(): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connectTls(
      { host: '127.0.0.1', port: httpsPort, servername: 'localhost', ca, ALPNProtocols: ['http/1.1'] },
      () => resolve(socket),
    );
    socket.once('error', reject);
  });
}

/** One HTTP/1.1 request on an open TLS socket; resolves with the status line. */
async function rawGet(socket: TLSSocket, path: string): Promise<string> {
  socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  return chunk.toString('latin1').split('\r\n')[0]!;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-tls-'));
  await writeFile(join(dir, 'leaf.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await openssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=warmpool test CA',
  );
  await leaf('leaf1', '1001');
  await leaf('leaf2', '2002');
  await copyFile(join(dir, 'leaf1.pem'), join(dir, 'cert.pem'));
  await copyFile(join(dir, 'leaf1.key'), join(dir, 'key.pem'));
  ca = await readFile(join(dir, 'ca.pem'));
  httpPort = await freePort();
  httpsPort = await freePort();
  server = startServer(['serve', '-c', join(FIXTURES, 'server', 'tls.yaml')], {
    env: { HTTP_PORT: String(httpPort), HTTPS_PORT: String(httpsPort), CERT_DIR: dir, FIXTURES },
  });
  await server.ready();
});

afterAll(async () => {
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('HTTPS', () => {
  it('prints the HTTPS listener, the redirecting plain one and the certificate', () => {
    expect(server.stdout).toContain(`listening on https://127.0.0.1:${httpsPort} (HTTP/2 + HTTP/1.1)`);
    expect(server.stdout).toContain(`listening on http://127.0.0.1:${httpPort} (redirects to https)`);
    expect(server.stdout).toMatch(/TLS: CN=localhost \(localhost, 127\.0\.0\.1\), serial 1001/);
  });

  it('serves HTTP/1.1 over TLS to undici trusting the test CA', async () => {
    const dispatcher = new Agent({ connect: { ca } });
    try {
      const res = await request(`https://127.0.0.1:${httpsPort}/h1?x=1`, { dispatcher });
      expect(res.statusCode).toBe(200);
      const body = (await res.body.json()) as { context: { protocol: string; uri: string } };
      expect(body.context.protocol).toBe('HTTP/1.1');
      expect(body.context.uri).toBe(`https://127.0.0.1:${httpsPort}/h1?x=1`);
    } finally {
      await dispatcher.close();
    }
  });

  it('serves HTTP/2 to node:http2 (ALPN h2)', async () => {
    const session = connectH2(`https://localhost:${httpsPort}`, { ca });
    try {
      await once(session, 'connect');
      expect(session.alpnProtocol).toBe('h2');
      const stream = session.request({ ':path': '/h2', ':method': 'GET' });
      const [headers] = (await once(stream, 'response')) as [Record<string, string | number>];
      let body = '';
      stream.setEncoding('utf8');
      stream.on('data', (c: string) => (body += c));
      await once(stream, 'end');
      expect(headers[':status']).toBe(200);
      expect((JSON.parse(body) as { context: { protocol: string } }).context.protocol).toBe('HTTP/2.0');
    } finally {
      session.close();
    }
  });

  it('serves HTTP/2 to curl', async () => {
    const { stdout } = await exec('curl', [
      '-sS',
      '--http2',
      '--cacert',
      join(dir, 'ca.pem'),
      '-o',
      '/dev/null',
      '-w',
      '%{http_code} %{http_version}',
      `https://localhost:${httpsPort}/curl`,
    ]);
    expect(stdout).toBe('200 2');
  });

  it('redirects plain HTTP to https: same host without its port, the HTTPS port, path and query kept', async () => {
    const res = await request(`http://127.0.0.1:${httpPort}/a/b?c=1&d=2`, { headers: { host: 'example.test:8080' } });
    expect(res.statusCode).toBe(308);
    expect(res.headers.location).toBe(`https://example.test:${httpsPort}/a/b?c=1&d=2`);
    await res.body.dump();
    const bad = await request(`http://127.0.0.1:${httpPort}/`, { headers: { host: 'evil.test\\@x' } });
    expect(bad.statusCode).toBe(400);
    await bad.body.dump();
  });

  it('the redirect listener decides the host once too: two Host headers are 400, an absolute-form target keeps its path', async () => {
    const twice = await rawRequest(httpPort, 'GET /a HTTP/1.1\nHost: example.test\nHost: evil.test');
    expect(twice.status).toBe(400);
    const absolute = await rawRequest(httpPort, 'GET http://example.test/a?b=1 HTTP/1.1\nHost: evil.test');
    expect(absolute.status).toBe(308);
    expect(absolute.headers.location).toBe(`https://example.test:${httpsPort}/a?b=1`);
  });

  it('HTTP/2: :authority and host naming different hosts is 400 (RFC 9113 §8.3.1)', async () => {
    const session = connectH2(`https://localhost:${httpsPort}`, { ca });
    try {
      await once(session, 'connect');
      const stream = session.request({
        ':path': '/h2',
        ':method': 'GET',
        ':authority': 'localhost',
        host: 'evil.test',
      });
      const [headers] = (await once(stream, 'response')) as [Record<string, string | number>];
      stream.resume();
      await once(stream, 'end');
      expect(headers[':status']).toBe(400);
    } finally {
      session.close();
    }
  });
});

describe('certificate reload on SIGHUP', () => {
  it('new connections get the new certificate; a connection opened before stays open and works', async () => {
    const before = await tlsConnect();
    expect(before.getPeerCertificate().serialNumber).toBe('1001');
    expect(await rawGet(before, '/before')).toBe('HTTP/1.1 200 OK');

    await copyFile(join(dir, 'leaf2.pem'), join(dir, 'cert.pem'));
    await copyFile(join(dir, 'leaf2.key'), join(dir, 'key.pem'));
    server.child.kill('SIGHUP');
    await server.waitFor(/TLS certificate reloaded: CN=localhost .*serial 2002/);
    expect(server.stdout).toContain('SIGHUP: reloading TLS certificate files, log levels and checking the config');

    const after = await tlsConnect();
    expect(after.getPeerCertificate().serialNumber).toBe('2002');
    after.destroy();
    // the old connection: same socket, still served
    expect(before.destroyed).toBe(false);
    expect(await rawGet(before, '/still-open')).toBe('HTTP/1.1 200 OK');
    before.destroy();
  });

  it('a broken new pair keeps the current certificate and says why', async () => {
    await writeFile(join(dir, 'cert.pem'), 'not a certificate\n');
    server.child.kill('SIGHUP');
    await server.waitFor('TLS certificate NOT reloaded, the previous one stays');
    const socket = await tlsConnect();
    expect(socket.getPeerCertificate().serialNumber).toBe('2002');
    socket.destroy();
  });

  it('an expired pair is said, with what to do, on reload and by `cert status` (exit 1 for a monitoring check)', async () => {
    // a leaf of the test CA that was valid in the first months of 2024 (openssl ca sets its dates)
    await writeFile(join(dir, 'index.txt'), '');
    await writeFile(join(dir, 'serial'), '3003\n');
    await writeFile(
      join(dir, 'ca.cnf'),
      '[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n',
    );
    await openssl(
      'ca',
      '-batch',
      '-config',
      'ca.cnf',
      '-cert',
      'ca.pem',
      '-keyfile',
      'ca.key',
      '-notext',
      '-startdate',
      '20240101000000Z',
      '-enddate',
      '20240401000000Z',
      '-in',
      'leaf1.csr',
      '-out',
      'old.pem',
      '-extfile',
      'leaf.ext',
    );
    const before = await runCli(['cert', 'status', '--socket', join(dir, 'admin.sock')]);
    expect(before.code).toBe(0);
    await copyFile(join(dir, 'old.pem'), join(dir, 'cert.pem'));
    await copyFile(join(dir, 'leaf1.key'), join(dir, 'key.pem'));
    server.child.kill('SIGHUP');
    // before: "✓ TLS certificate reloaded", nothing more
    await server.waitFor(
      /TLS certificate reloaded: CN=localhost .*serial 3003, expires 2024-04-01, but it expired on 2024-04-01: browsers refuse it\. Renew it/,
    );
    const after = await runCli(['cert', 'status', '--socket', join(dir, 'admin.sock')]);
    expect(after.code).toBe(1);
    expect(after.stdout + after.stderr).toMatch(/cert\.pem: expired on 2024-04-01 00:00Z: browsers refuse it/);
    // a valid pair again, for what follows
    await copyFile(join(dir, 'leaf2.pem'), join(dir, 'cert.pem'));
    await copyFile(join(dir, 'leaf2.key'), join(dir, 'key.pem'));
    server.child.kill('SIGHUP');
    await until(
      () => (server.stdout.match(/TLS certificate reloaded: CN=localhost .*serial 2002/g) ?? []).length === 2,
      'the valid pair reloaded again',
    );
  });

  it('stops cleanly: an open HTTP/2 session is sent GOAWAY, so the drain does not wait for it', async () => {
    // Without GOAWAY an idle h2 client keeps its session, and the drain would hang until its bound.
    const session = connectH2(`https://localhost:${httpsPort}`, { ca });
    session.on('error', () => {});
    try {
      const stream = session.request({ ':path': '/before-drain', ':method': 'GET' });
      await once(stream.resume(), 'end');
      const goaway = new Promise<string>((resolve) => {
        session.once('goaway', () => resolve('goaway'));
        setTimeout(() => resolve('no GOAWAY within 5 s'), 5000).unref();
      });
      const started = Date.now();
      const stopped = server.stop('SIGTERM');
      expect(await goaway).toBe('goaway');
      expect((await stopped).code).toBe(0);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      session.destroy();
    }
  });
});
