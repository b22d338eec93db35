// TLS 1.2 suites of `warmpool serve`: forward-secret only by default (Mozilla "intermediate"), so a
// client that offers only RSA key exchange is refused; http.ssl.ciphers replaces the list. An RSA
// certificate is used: with an ECDSA one, RSA key exchange could never be chosen anyway.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { FIXTURES, runCli, startServer, stopAllServers } from '../helpers/warmpool-server.js';

const exec = promisify(execFile);
let dir: string;
let cert: string;

/** Handshakes offering only `ciphers` (TLS 1.2 only): the suite the server chose, or the error. */
function handshake(port: number, ciphers: string, maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.2'): Promise<string> {
  return new Promise((resolve) => {
    const socket = connectTls(
      { host: '127.0.0.1', port, servername: 'localhost', ca: cert, ciphers, maxVersion },
      () => {
        resolve(socket.getCipher().standardName);
        socket.end();
      },
    );
    socket.once('error', (error) => resolve(`refused: ${error.message}`));
  });
}

async function serve(name: string, extra = ''): Promise<number> {
  const https = await freePort();
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    `server:\n  command: php ${FIXTURES}/php/echo.php\nhttp:\n  address: 127.0.0.1:${await freePort()}\n  pool: { num_workers: 1 }\n` +
      `  ssl:\n    address: 127.0.0.1:${https}\n    cert: ${join(dir, 'cert.pem')}\n    key: ${join(dir, 'key.pem')}\n${extra}` +
      `admin:\n  socket: ${join(dir, `${name}.sock`)}\n`,
  );
  await startServer(['serve', '-c', file]).ready();
  return https;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-ciphers-'));
  await exec(
    'openssl',
    [
      ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2'],
      ...['-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'],
    ],
    { cwd: dir },
  );
  cert = await readFile(join(dir, 'cert.pem'), 'utf8');
});
afterAll(async () => {
  await stopAllServers();
  await rm(dir, { recursive: true, force: true });
});

describe('TLS 1.2 cipher suites', () => {
  it('by default refuses a client offering only RSA key exchange (no forward secrecy); ECDHE and TLS 1.3 work', async () => {
    const port = await serve('default');
    expect(await handshake(port, 'AES128-GCM-SHA256')).toMatch(/^refused: .*(handshake failure|no shared cipher)/i);
    expect(await handshake(port, 'AES256-SHA256')).toMatch(/^refused: /);
    expect(await handshake(port, 'ECDHE-RSA-AES128-GCM-SHA256')).toBe('TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256');
    expect(await handshake(port, 'ECDHE-RSA-CHACHA20-POLY1305')).toBe('TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256');
    expect(await handshake(port, 'ECDHE-RSA-AES128-SHA')).toMatch(/^refused: /); // CBC: not in "intermediate"
    expect(await handshake(port, 'DEFAULT', 'TLSv1.3')).toMatch(/^TLS_(AES|CHACHA20)/);
  });

  it('the openssl client is refused the same way', async () => {
    const port = await serve('openssl');
    const run = (cipher: string) => {
      const client = exec('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_2', '-cipher', cipher], {
        timeout: 20_000,
      });
      client.child.stdin?.end(); // nothing to send: s_client quits after the handshake
      return client.then(
        ({ stdout }) => stdout,
        (error: { stdout?: string; stderr?: string }) => `failed: ${error.stderr ?? ''}${error.stdout ?? ''}`,
      );
    };
    expect(await run('AES128-GCM-SHA256')).toMatch(/^failed: .*(handshake failure|no shared cipher|alert)/is);
    expect(await run('ECDHE-RSA-AES128-GCM-SHA256')).toMatch(/Cipher is ECDHE-RSA-AES128-GCM-SHA256/);
  });

  it('http.ssl.ciphers replaces the list (here allowing RSA key exchange again)', async () => {
    const port = await serve('custom', '    ciphers: "ECDHE-RSA-AES128-GCM-SHA256:AES128-GCM-SHA256"\n');
    expect(await handshake(port, 'AES128-GCM-SHA256')).toBe('TLS_RSA_WITH_AES_128_GCM_SHA256');
    expect(await handshake(port, 'ECDHE-RSA-CHACHA20-POLY1305')).toMatch(/^refused: /);
  });

  it('a cipher list OpenSSL does not know is a config error at its line', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      `server:\n  command: php ${FIXTURES}/php/echo.php\nhttp:\n  address: 127.0.0.1:${await freePort()}\n` +
        `  ssl:\n    address: 127.0.0.1:${await freePort()}\n    cert: ${join(dir, 'cert.pem')}\n    key: ${join(dir, 'key.pem')}\n` +
        `    ciphers: "NOT-A-CIPHER"\n`,
    );
    const result = await runCli(['serve', '-c', file]);
    expect(result.code).toBe(2);
    expect(result.stderr + result.stdout).toMatch(
      new RegExp(
        `${file.replace(/[.]/g, '\\.')}:9:\\d+ http\\.ssl\\.ciphers: http\\.ssl\\.ciphers "NOT-A-CIPHER" is not an OpenSSL cipher list`,
      ),
    );
  });
});
