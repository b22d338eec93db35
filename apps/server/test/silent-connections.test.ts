// A connection that never sends a byte is closed at headers_timeout (Node counts that timeout from
// a head's first byte, so such a connection was kept for good), over plain TCP and after a TLS
// handshake; a connection that spoke is left to the other timeouts.
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, createServer, request, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { closeSilentConnections } from '../src/silent-connections.js';
import { makeTlsPair } from '../../../test/helpers/tls-pair.js';

const servers: (Server | HttpsServer)[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

describe('closeSilentConnections', () => {
  it('closes a plain connection that sends nothing; one that asked something is kept alive', async () => {
    const server = createServer((_req, res) => res.end('hello'));
    servers.push(server);
    closeSilentConnections(server, 300, false);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    const agent = new Agent({ keepAlive: true });
    const talking = await new Promise<Socket>((resolve, reject) => {
      const req = request({ port, host: '127.0.0.1', agent, path: '/' }, (res) => {
        res.resume();
        res.on('end', () => resolve(req.socket!));
      });
      req.on('error', reject);
      req.end();
    });
    const silent = connect(port, '127.0.0.1');
    silent.on('error', () => {});
    await once(silent, 'close');
    expect(talking.destroyed).toBe(false);
    agent.destroy();
  });

  it('closes a TLS connection that sends nothing after its handshake', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wp-silent-tls-'));
    try {
      const { cert, key } = await makeTlsPair(dir);
      const server = createHttpsServer({ cert: await readFile(cert), key: await readFile(key) }, (_req, res) =>
        res.end('hello'),
      );
      servers.push(server);
      closeSilentConnections(server, 300, true);
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      const { port } = server.address() as AddressInfo;
      const ca = await readFile(join(dir, 'ca.pem'));
      const silent = connectTls({ port, host: '127.0.0.1', ca, servername: 'localhost' });
      silent.on('error', () => {});
      await once(silent, 'secureConnect');
      const talking = connectTls({ port, host: '127.0.0.1', ca, servername: 'localhost' });
      await once(talking, 'secureConnect');
      talking.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
      await once(talking, 'data');
      await once(silent, 'close');
      expect(talking.destroyed).toBe(false);
      talking.destroy();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
