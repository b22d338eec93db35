// TLS-ALPN-01 on a real HTTPS listener: the validation handshake (TLS 1.2 and 1.3, where Node picks
// the certificate before and after it sees ALPN) gets the challenge certificate; browsers, other
// names, and every connection when no validation is pending get the site's.
import { once } from 'node:events';
import type { Http2SecureServer } from 'node:http2';
import { createConnection, createServer, type Socket } from 'node:net';
import { connect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { createTemporaryCertificate } from '../../src/acme/temporary-certificate.js';
import { ACME_TLS_ALPN, parseClientHello, routeTlsAlpnChallenges } from '../../src/acme/tls-alpn.js';
import { createHttpsServer, credentialsFromPem, TlsContexts, type Credentials } from '../../src/tls.js';
import { requireProxyProtocol } from '../../src/proxy-protocol.js';
import { compileTrustedSubnets } from '@warmpool/fastify';
import type { Logger } from 'pino';

const servers: Http2SecureServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function pair(...names: string[]): Promise<Credentials> {
  const { cert, key } = await createTemporaryCertificate(names);
  return credentialsFromPem(cert, key);
}

function open(
  port: number,
  servername: string,
  alpn: string[],
  maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3',
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: alpn, maxVersion },
      () => resolve(socket),
    );
    socket.once('error', reject);
  });
}

/** The first bytes a Node TLS client sends: a real ClientHello. */
async function captureClientHello(options: { servername?: string; alpn?: string[] }): Promise<Buffer> {
  const sink = createServer();
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve));
  const received = once(sink, 'connection').then(async ([socket]) => {
    const [chunk] = (await once(socket as Socket, 'data')) as [Buffer];
    (socket as Socket).destroy();
    return chunk;
  });
  const client = connect({
    host: '127.0.0.1',
    port: (sink.address() as { port: number }).port,
    rejectUnauthorized: false,
    ...(options.servername ? { servername: options.servername } : {}),
    ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
  });
  client.on('error', () => {});
  const hello = await received;
  client.destroy();
  sink.close();
  return hello;
}

describe('parseClientHello', () => {
  it('reads SNI and ALPN from a real ClientHello', async () => {
    expect(parseClientHello(await captureClientHello({ servername: 'A.Test', alpn: ['h2', 'http/1.1'] }))).toEqual({
      servername: 'a.test',
      alpn: ['h2', 'http/1.1'],
    });
    expect(parseClientHello(await captureClientHello({ alpn: [ACME_TLS_ALPN] }))).toEqual({
      servername: null,
      alpn: [ACME_TLS_ALPN],
    });
  });

  it('is null for what is not a whole ClientHello (plain HTTP, truncated bytes)', async () => {
    expect(parseClientHello(Buffer.from('GET / HTTP/1.1\r\n\r\n'))).toBeNull();
    const hello = await captureClientHello({ servername: 'a.test', alpn: ['h2'] });
    for (const cut of [3, 20, 60]) expect(parseClientHello(hello.subarray(0, cut))).toBeNull();
  });
});

describe('routeTlsAlpnChallenges', () => {
  async function setup(): Promise<{
    port: number;
    site: Credentials;
    challenge: Credentials;
    pending: { value: boolean };
  }> {
    const contexts = new TlsContexts();
    const site = await pair('a.test');
    contexts.setDefault(site);
    const challenge = await pair('a.test');
    const challengeContext: SecureContext = createSecureContext({ cert: challenge.cert, key: challenge.key });
    const pending = { value: true };
    const server = createHttpsServer(contexts, (_req, res) => res.end('ok'));
    routeTlsAlpnChallenges(server, {
      pending: () => pending.value,
      challengeContext: (name) => (pending.value && name === 'a.test' ? challengeContext : null),
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as { port: number }).port, site, challenge, pending };
  }

  it.each(['TLSv1.2', 'TLSv1.3'] as const)(
    '%s: the validation handshake gets the challenge certificate and is closed; browsers get the site',
    async (version) => {
      const { port, site, challenge } = await setup();
      const validator = await open(port, 'a.test', [ACME_TLS_ALPN], version);
      expect(validator.alpnProtocol).toBe(ACME_TLS_ALPN);
      expect(validator.getPeerCertificate().serialNumber).toBe(challenge.serial);
      await once(validator, 'end'); // the handshake was the whole validation
      validator.destroy();

      const browser = await open(port, 'a.test', ['h2', 'http/1.1'], version);
      expect(browser.alpnProtocol).toBe('h2');
      expect(browser.getPeerCertificate().serialNumber).toBe(site.serial);
      browser.destroy();
    },
  );

  it('no challenge for that name, or none pending: acme-tls/1 is not spoken', async () => {
    const { port, pending } = await setup();
    await expect(open(port, 'b.test', [ACME_TLS_ALPN])).rejects.toThrow(/no application protocol/i);
    pending.value = false;
    await expect(open(port, 'a.test', [ACME_TLS_ALPN], 'TLSv1.2')).rejects.toThrow(/no application protocol/i);
  });

  it('behind http.ssl.proxy_protocol, the header alone or with the ClientHello: the validation still gets the challenge certificate', async () => {
    const contexts = new TlsContexts();
    contexts.setDefault(await pair('a.test'));
    const challenge = await pair('a.test');
    const challengeContext = createSecureContext({ cert: challenge.cert, key: challenge.key });
    const server = createHttpsServer(contexts, (_req, res) => res.end('ok'));
    routeTlsAlpnChallenges(server, {
      pending: () => true,
      challengeContext: (name) => (name === 'a.test' ? challengeContext : null),
    });
    const logger = { warn: () => {} } as unknown as Logger;
    requireProxyProtocol(server, compileTrustedSubnets(['127.0.0.1/32']), logger);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    for (const together of [false, true]) {
      const raw = createConnection(port, '127.0.0.1');
      if (together) raw.cork();
      raw.write('PROXY TCP4 203.0.113.5 127.0.0.1 5555 443\r\n');
      const validator = connect({
        socket: raw,
        servername: 'a.test',
        rejectUnauthorized: false,
        ALPNProtocols: [ACME_TLS_ALPN],
      });
      if (together) raw.once('connect', () => setImmediate(() => raw.uncork()));
      // before: the router waited out its 10 s for a hello that sat paused, then gave up on it
      await once(validator, 'secureConnect');
      expect(validator.alpnProtocol).toBe(ACME_TLS_ALPN);
      expect(validator.getPeerCertificate().serialNumber).toBe(challenge.serial);
      validator.destroy();
    }
  });
});
