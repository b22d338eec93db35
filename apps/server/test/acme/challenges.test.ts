// HTTP-01 answers on real HTTP listeners: in front of the sites (plain) and of the redirect-only
// listener, and on HTTPS (a check a CA followed a redirect with); shared through certs_dir with
// another server; a challenge path never reaches the site.
import { mkdtemp, rm } from 'node:fs/promises';
import { request, type Server } from 'node:http';
import { connect as connectHttp2, type Http2SecureServer } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChallengeResponder, createHttpChallengeServer, interceptHttpChallenges } from '../../src/acme/challenges.js';
import { CertificateStore } from '../../src/acme/store.js';
import { createTemporaryCertificate } from '../../src/acme/temporary-certificate.js';
import {
  createHttpsServer,
  createPlainServer,
  createRedirectServer,
  credentialsFromPem,
  TlsContexts,
} from '../../src/tls.js';

let dir: string;
let store: CertificateStore;
const servers: Array<Server | Http2SecureServer> = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-acme-challenges-'));
  store = new CertificateStore(dir);
  await store.prepare();
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  await rm(dir, { recursive: true, force: true });
});

async function listen(server: Server | Http2SecureServer): Promise<number> {
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; location?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers: { host: 'example.com' } }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, body, ...(res.headers.location ? { location: res.headers.location } : {}) }),
      );
    });
    req.once('error', reject);
    req.end();
  });
}

describe('HTTP-01 on the HTTP listener', () => {
  it('in front of the sites: the key authorization for its token, a 404 of its own for others, the site for the rest', async () => {
    const responder = new ChallengeResponder(store);
    const plain = createPlainServer((_req, res) => res.end('the site'), {});
    interceptHttpChallenges(plain, responder);
    const port = await listen(plain);
    await responder.addHttp('tok-1', 'tok-1.thumb');
    expect(await get(port, '/.well-known/acme-challenge/tok-1')).toMatchObject({ status: 200, body: 'tok-1.thumb' });
    expect(await get(port, '/.well-known/acme-challenge/tok-1', 'HEAD')).toMatchObject({ status: 200, body: '' });
    expect(await get(port, '/.well-known/acme-challenge/other')).toMatchObject({
      status: 404,
      body: 'no such ACME challenge\n',
    });
    expect(await get(port, '/.well-known/acme-challenge/../../etc/passwd')).toMatchObject({ status: 404 });
    expect(await get(port, '/index.php')).toMatchObject({ status: 200, body: 'the site' });
    await responder.removeHttp('tok-1');
    expect(await get(port, '/.well-known/acme-challenge/tok-1')).toMatchObject({ status: 404 });
  });

  it('on the redirect-only listener (http.ssl.redirect): challenges are answered, everything else still redirects', async () => {
    const responder = new ChallengeResponder(store);
    const redirect = createRedirectServer(8443, {});
    interceptHttpChallenges(redirect, responder);
    const port = await listen(redirect);
    await responder.addHttp('tok-2', 'tok-2.thumb');
    expect(await get(port, '/.well-known/acme-challenge/tok-2')).toMatchObject({ status: 200, body: 'tok-2.thumb' });
    expect(await get(port, '/page')).toMatchObject({ status: 308, location: 'https://example.com:8443/page' });
  });

  it('answers a challenge another server sharing certs_dir started (the other colour of a blue-green swap)', async () => {
    const other = new ChallengeResponder(new CertificateStore(dir));
    await other.addHttp('tok-3', 'tok-3.thumb');
    const port = await listen(createHttpChallengeServer(new ChallengeResponder(store)));
    expect(await get(port, '/.well-known/acme-challenge/tok-3')).toMatchObject({ status: 200, body: 'tok-3.thumb' });
    expect(await get(port, '/')).toMatchObject({ status: 404, body: 'this port answers ACME challenges only\n' });
    await other.removeHttp('tok-3');
    expect(await get(port, '/.well-known/acme-challenge/tok-3')).toMatchObject({ status: 404 });
  });

  it('on HTTPS too, HTTP/2 and HTTP/1.1: a check the CA followed a redirect with is answered, never passed to the site', async () => {
    const responder = new ChallengeResponder(store);
    const pair = await createTemporaryCertificate(['example.com']);
    const contexts = new TlsContexts();
    contexts.setDefault(credentialsFromPem(pair.cert, pair.key));
    const https = createHttpsServer(contexts, (_req, res) => res.end('the site'));
    interceptHttpChallenges(https, responder);
    const port = await listen(https);
    await responder.addHttp('tok-4', 'tok-4.thumb');

    const h1 = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpsRequest(
          { host: '127.0.0.1', port, path, ca: pair.cert, servername: 'example.com', headers: { host: 'example.com' } },
          (res) => {
            let body = '';
            res.on('data', (c: Buffer) => (body += c));
            res.on('end', () => resolve({ status: res.statusCode!, body }));
          },
        );
        req.once('error', reject);
        req.end();
      });
    expect(await h1('/.well-known/acme-challenge/tok-4')).toEqual({ status: 200, body: 'tok-4.thumb' });
    expect(await h1('/.well-known/acme-challenge/other')).toEqual({ status: 404, body: 'no such ACME challenge\n' });
    expect(await h1('/page')).toEqual({ status: 200, body: 'the site' });

    const session = connectHttp2(`https://example.com:${port}`, { ca: pair.cert, host: '127.0.0.1', port });
    try {
      const h2 = (path: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const stream = session.request({ ':path': path });
          let status = 0;
          let body = '';
          stream.on('response', (headers) => (status = Number(headers[':status'])));
          stream.on('data', (c: Buffer) => (body += c));
          stream.on('end', () => resolve({ status, body }));
          stream.once('error', reject);
        });
      expect(await h2('/.well-known/acme-challenge/tok-4')).toEqual({ status: 200, body: 'tok-4.thumb' });
      expect(await h2('/.well-known/acme-challenge/other')).toEqual({ status: 404, body: 'no such ACME challenge\n' });
      expect(await h2('/page')).toEqual({ status: 200, body: 'the site' });
    } finally {
      session.close();
    }
  });
});
