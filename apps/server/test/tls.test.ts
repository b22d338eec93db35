// TlsContexts on a real HTTPS server: certificates by SNI, swaps that leave open connections alone.
import { once } from 'node:events';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Http2SecureServer } from 'node:http2';
import { connect as connectHttp2, constants } from 'node:http2';
import { connect as connectTcp, type Socket } from 'node:net';
import { connect, type TLSSocket } from 'node:tls';
import { configureServerTimeouts, type LimitOptions, resolveLimits } from '@warmpool/fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { makeTlsPair } from '../../../test/helpers/tls-pair.js';
import { createTemporaryCertificate } from '../src/acme/temporary-certificate.js';
import {
  createHttpsServer,
  credentialsFromPem,
  DEFAULT_MAX_CONCURRENT_STREAMS,
  loadCredentials,
  loadMoreCertificates,
  TlsContexts,
  type Credentials,
  validityProblem,
} from '../src/tls.js';

const servers: Http2SecureServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function pair(...names: string[]): Promise<Credentials> {
  const { cert, key } = await createTemporaryCertificate(names);
  return credentialsFromPem(cert, key);
}

async function serve(contexts: TlsContexts): Promise<number> {
  const server = createHttpsServer(contexts, (_req, res) => res.end('ok'));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as { port: number }).port;
}

function open(port: number, servername: string | undefined, alpn = ['http/1.1']): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      {
        host: '127.0.0.1',
        port,
        rejectUnauthorized: false,
        ALPNProtocols: alpn,
        ...(servername ? { servername } : {}),
      },
      () => resolve(socket),
    );
    socket.once('error', reject);
  });
}

async function serialOf(port: number, servername: string | undefined): Promise<string> {
  const socket = await open(port, servername);
  const serial = socket.getPeerCertificate().serialNumber;
  socket.end();
  return serial;
}

async function requestOn(socket: TLSSocket): Promise<string> {
  socket.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  return chunk.toString('latin1').split('\r\n')[0]!;
}

describe('validityProblem', () => {
  it('says when a certificate expired or is not valid yet, with what to do; nothing within its dates', async () => {
    const { x509 } = await pair('a.test');
    const from = Date.parse(x509.validFrom);
    const to = Date.parse(x509.validTo);
    expect(validityProblem(x509, (from + to) / 2)).toBeNull();
    expect(validityProblem(x509, to + 1000)).toMatch(/^it expired on \d{4}-\d\d-\d\d: browsers refuse it\. Renew it/);
    expect(validityProblem(x509, from - 86_400_000)).toMatch(
      /^it is not valid before \d{4}-\d\d-\d\d: browsers refuse it until then/,
    );
  });
});

describe('credentialsFromPem: what is wrong with a pair, and what to do', () => {
  it('names a key with a passphrase as such, and a chain that begins with its CA', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wp-tls-pairs-'));
    try {
      const { ca, cert, key } = await makeTlsPair(dir);
      execFileSync('openssl', ['pkey', '-in', key, '-aes256', '-passout', 'pass:secret', '-out', join(dir, 'enc.pem')]);
      const encrypted = readFileSync(join(dir, 'enc.pem'));
      // before: OpenSSL's "error:1C800064:Provider routines::bad decrypt", nothing more
      expect(() => credentialsFromPem(readFileSync(cert), encrypted)).toThrow(
        /the key is encrypted with a passphrase.*openssl pkey -in/,
      );
      // intermediate (here the CA) first, then the leaf: before, "the key does not belong to the certificate"
      const reversed = Buffer.concat([readFileSync(ca), readFileSync(cert)]);
      expect(() => credentialsFromPem(reversed, readFileSync(key))).toThrow(
        /begins with another certificate than the key's .*the site's own certificate must come first/,
      );
      expect(
        credentialsFromPem(Buffer.concat([readFileSync(cert), readFileSync(ca)]), readFileSync(key)).serial,
      ).not.toBe('');
      // the two files the other way round: before, OpenSSL's "no start line" alone
      expect(() => credentialsFromPem(readFileSync(key), readFileSync(cert))).toThrow(
        /it holds a private key; are cert and key swapped\?/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('TlsContexts', () => {
  it('serves each name its own certificate, and the default to unknown names and clients without SNI', async () => {
    const contexts = new TlsContexts();
    const fallback = await pair('fallback.test');
    const a = await pair('a.test', 'www.a.test');
    contexts.setDefault(fallback);
    contexts.setNames(['a.test', 'www.a.test'], a);
    const port = await serve(contexts);
    expect(await serialOf(port, 'a.test')).toBe(a.serial);
    expect(await serialOf(port, 'WWW.A.TEST')).toBe(a.serial);
    expect(await serialOf(port, 'other.test')).toBe(fallback.serial);
    expect(await serialOf(port, undefined)).toBe(fallback.serial);
  });

  it('a new pair reaches new handshakes only: an open connection keeps its certificate and keeps serving', async () => {
    const contexts = new TlsContexts();
    const first = await pair('a.test');
    contexts.setDefault(await pair('fallback.test'));
    contexts.setNames(['a.test'], first);
    const port = await serve(contexts);
    const open1 = await open(port, 'a.test');
    expect(await requestOn(open1)).toBe('HTTP/1.1 200 OK');

    const second = await pair('a.test');
    contexts.setNames(['a.test'], second);
    const newDefault = await pair('fallback.test');
    contexts.setDefault(newDefault);
    expect(await serialOf(port, 'a.test')).toBe(second.serial);
    expect(await serialOf(port, undefined)).toBe(newDefault.serial);
    expect(await requestOn(open1)).toBe('HTTP/1.1 200 OK');
    expect(open1.getPeerCertificate().serialNumber).toBe(first.serial);
    open1.end();
  });
});

describe('http.ssl.certificates', () => {
  it('serves each pair to the names its certificate holds, a wildcard one label deep; a bad pair changes nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wp-more-certs-'));
    try {
      const write = async (name: string, ...names: string[]) => {
        const { cert, key } = await createTemporaryCertificate(names);
        writeFileSync(join(dir, `${name}.pem`), cert);
        writeFileSync(join(dir, `${name}.key`), key);
        return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
      };
      const shop = await write('shop', 'shop.test', 'www.shop.test');
      const blog = await write('blog', '*.blog.test');
      const contexts = new TlsContexts();
      const fallback = await pair('fallback.test');
      contexts.setDefault(fallback);
      expect(loadMoreCertificates(contexts, [shop, blog])).toEqual([
        expect.stringMatching(/ for shop\.test, www\.shop\.test$/),
        expect.stringMatching(/ for \*\.blog\.test$/),
      ]);
      const port = await serve(contexts);
      const shopSerial = contexts.filePairs[0]!.credentials.serial;
      const blogSerial = contexts.filePairs[1]!.credentials.serial;
      expect(await serialOf(port, 'www.shop.test')).toBe(shopSerial);
      expect(await serialOf(port, 'news.blog.test')).toBe(blogSerial);
      expect(await serialOf(port, 'a.news.blog.test')).toBe(fallback.serial);
      expect(await serialOf(port, 'blog.test')).toBe(fallback.serial);
      // a pair that does not load names its key, and the pairs in place stay
      const broken = { cert: shop.cert, key: blog.key };
      expect(() => loadMoreCertificates(contexts, [shop, broken])).toThrow(
        expect.objectContaining({
          details: { key: 'http.ssl.certificates[1].key' },
          message: expect.stringMatching(/the key does not belong to the certificate/),
        }),
      );
      expect(await serialOf(port, 'www.shop.test')).toBe(shopSerial);
      expect(contexts.overlaps).toEqual([]);
      // two pairs for one name (nginx's RSA + ECDSA): one is served, and that is said
      const other = await write('shop2', 'shop.test');
      const main = await write('main', 'fallback.test');
      contexts.setDefault(await pair('fallback.test'));
      loadMoreCertificates(contexts, [shop, other, main]);
      expect(contexts.overlaps).toEqual([
        'http.ssl.certificates[1] names shop.test, as http.ssl.certificates[0] does: clients asking for shop.test get certificates[1] only (one certificate per name; an ECDSA one serves every current client)',
        'http.ssl.certificates[2] names fallback.test, as http.ssl.cert does: clients asking for fallback.test get certificates[2] (http.ssl.cert is for the others)',
      ]);
      expect(await serialOf(port, 'shop.test')).toBe(contexts.filePairs[1]!.credentials.serial);
      // the pair http.ssl.cert serves, listed again: nothing to say
      const defaultPair = await write('default', 'main.test');
      contexts.setDefault(loadCredentials(defaultPair));
      loadMoreCertificates(contexts, [defaultPair, shop]);
      expect(contexts.overlaps).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('createHttpsServer: session resumption', () => {
  it('resumes a TLS 1.2 session by its id for a client without tickets (nginx ssl_session_cache), and by ticket', async () => {
    const contexts = new TlsContexts();
    contexts.setDefault(await pair('a.test'));
    const port = await serve(contexts);
    const dir = mkdtempSync(join(tmpdir(), 'wp-tls-sessions-'));
    try {
      // openssl in a child process, not execFileSync: the server answers from this process
      const handshake = async (flags: string[], session: string) => {
        const child = spawn(
          'openssl',
          ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'a.test', ...flags, ...session.split(' ')],
          { stdio: ['pipe', 'pipe', 'ignore'] },
        );
        child.stdin.end();
        let out = '';
        child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
        await once(child, 'close');
        return /^(New|Reused), TLSv1\.2/m.exec(out)?.[1];
      };
      for (const flags of [['-tls1_2', '-no_ticket'], ['-tls1_2']]) {
        const file = join(dir, `${flags.length}.pem`);
        expect(await handshake(flags, `-sess_out ${file}`)).toBe('New');
        // before: New again without tickets, a full handshake each connection
        expect(await handshake(flags, `-sess_in ${file}`), flags.join(' ')).toBe('Reused');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('createHttpsServer: the TCP connection under TLS', () => {
  it("has Nagle's algorithm off, as plain HTTP's and HTTP/2's connections have", async () => {
    // on, an HTTP/1.1 reply in two writes (a compressed body) waited 40 ms for the client's delayed ACK
    const contexts = new TlsContexts();
    contexts.setDefault(await pair('a.test'));
    const server = createHttpsServer(contexts, (_req, res) => res.end('ok'));
    servers.push(server);
    const calls: boolean[] = [];
    // first in line, so it sees what the server's own listener does with the socket
    server.prependListener('connection', (socket: Socket) => {
      const setNoDelay = socket.setNoDelay.bind(socket);
      socket.setNoDelay = (noDelay?: boolean) => {
        calls.push(noDelay ?? true);
        return setNoDelay(noDelay);
      };
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = await open((server.address() as { port: number }).port, 'a.test');
    socket.write('GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    await once(socket, 'close');
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(calls).toContain(true);
  });
});

describe('createHttpsServer: HTTP/1.1 over TLS keeps the listener-wide limits', () => {
  /** As app.ts builds it: the plugin's timeouts and head size (configureServerTimeouts) on the HTTPS server. */
  async function listen(options: Parameters<typeof createHttpsServer>[2], limits: LimitOptions): Promise<number> {
    const contexts = new TlsContexts();
    contexts.setDefault(await pair('a.test'));
    const server = createHttpsServer(contexts, (_req, res) => res.end('ok'), options);
    configureServerTimeouts(server, resolveLimits(limits), null);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as { port: number }).port;
  }

  /** What the server sends until it closes the connection. */
  async function answer(socket: TLSSocket): Promise<string> {
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
    });
    await once(socket, 'close');
    return text;
  }

  it('headers_timeout (408), max_header_size, and a keep-alive timeout for idle connections', async () => {
    const port = await listen({ keepAliveTimeoutMs: 200 }, { headers_timeout: '300ms', max_header_size: 65_536 });
    // a head that never ends: 408 and closed (Node's own would wait 60 s and more)
    const slow = await open(port, 'a.test');
    slow.write('GET / HTTP/1.1\r\nHost: a.test\r\n');
    expect((await answer(slow)).split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    // a 30 KB header (Node's own limit is 16 KB: 431)
    const big = await open(port, 'a.test');
    big.write(`GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: ${'a'.repeat(30_000)}\r\n\r\n`);
    // served, then closed by the keep-alive timeout once idle (without it, it stays open for good)
    const text = await answer(big);
    expect(text.split('\r\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(text).toMatch(/\r\n\r\nok$/);
  });
});

describe('createHttpsServer: HTTP/2', () => {
  it("announces at most 128 concurrent streams per connection unless told otherwise (Node's own is 2^32 - 1)", async () => {
    for (const [option, expected] of [
      [undefined, DEFAULT_MAX_CONCURRENT_STREAMS],
      [16, 16],
    ] as const) {
      const contexts = new TlsContexts();
      contexts.setDefault(await pair('a.test'));
      const server = createHttpsServer(
        contexts,
        (_req, res) => res.end('ok'),
        option === undefined ? {} : { maxConcurrentStreams: option },
      );
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as { port: number };
      const session = connectHttp2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, servername: 'a.test' });
      const [settings] = (await once(session, 'remoteSettings')) as [{ maxConcurrentStreams?: number }];
      session.close();
      expect(settings.maxConcurrentStreams).toBe(expected);
    }
  });

  it('an idle session resets the streams the client stopped granting window to, then closes; a stream waiting for its answer finishes', async () => {
    const contexts = new TlsContexts();
    contexts.setDefault(await pair('a.test'));
    const big = Buffer.alloc(1024 * 1024, 7);
    const server = createHttpsServer(
      contexts,
      (req, res) => {
        // /slow answers after the session has been idle past its timeout; the rest is 1 MiB
        if (req.url === '/slow') setTimeout(() => res.end('late'), 1500);
        else res.end(big);
      },
      { sessionTimeoutMs: 300 },
    );
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const session = connectHttp2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, servername: 'a.test' });
    const sessionClosed = once(session, 'close');
    // paused: the client reads the connection but grants the stream no window past the first 64 KiB
    const stalled = session.request({ ':path': '/big' });
    stalled.on('error', () => {});
    stalled.pause();
    const slow = session.request({ ':path': '/slow' });
    slow.setEncoding('utf8');
    let late = '';
    slow.on('data', (text: string) => {
      late += text;
    });
    const slowEnded = once(slow, 'end');
    await once(stalled, 'close');
    expect(stalled.rstCode).toBe(constants.NGHTTP2_CANCEL);
    await slowEnded;
    expect(late).toBe('late');
    await sessionClosed;
  });

  it('cuts a TLS handshake that does not finish within handshakeTimeoutMs (Node: 120 s)', async () => {
    const contexts = new TlsContexts();
    contexts.setDefault(await pair('a.test'));
    const server = createHttpsServer(contexts, (_req, res) => res.end('ok'), { handshakeTimeoutMs: 300 });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const silent = connectTcp(port, '127.0.0.1');
    const partial = connectTcp(port, '127.0.0.1');
    for (const socket of [silent, partial]) socket.on('error', () => {});
    await once(partial, 'connect');
    partial.write(Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00])); // a ClientHello's record header, nothing more
    await Promise.all([once(silent, 'close'), once(partial, 'close')]);
    // a client that does finish is served
    const session = connectHttp2(`https://127.0.0.1:${port}`, { rejectUnauthorized: false, servername: 'a.test' });
    const stream = session.request({ ':path': '/' });
    stream.setEncoding('utf8');
    let body = '';
    for await (const chunk of stream) body += chunk;
    session.close();
    expect(body).toBe('ok');
  });
});
