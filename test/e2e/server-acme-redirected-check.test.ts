// The CA's HTTP-01 check arriving at the HTTPS listener: something in front of port 80 (a CDN's
// "always use HTTPS", a load balancer) redirects it to https://<name>/..., and CAs follow that
// redirect (Let's Encrypt: to port 80 or 443, without checking the certificate). The HTTPS
// listener must answer it as the HTTP one does, never pass it to the site (PHP here answers every
// path with 200, so a passed-on check fails).
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { hasPebble, startPebble, type Pebble } from '../helpers/pebble.js';
import { FIXTURES, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';

const available = await hasPebble();

let dir: string;
let pebble: Pebble;
let front: Server;
let server: RunningServer;

beforeAll(async () => {
  if (!available) return;
  dir = await mkdtemp(join(tmpdir(), 'wp-acme-front-'));
  const ports = { front: await freePort(), http: await freePort(), https: await freePort() };
  // "port 80": not warmpool, a front that redirects every request to HTTPS
  front = createServer((req, res) => {
    res.writeHead(301, { location: `https://${req.headers.host?.replace(/:\d+$/, '')}:${ports.https}${req.url}` });
    res.end();
  });
  front.listen(ports.front, '127.0.0.1');
  await once(front, 'listening');
  pebble = await startPebble({ httpPort: ports.front, tlsPort: ports.https });
  const config = join(dir, 'warmpool.yaml');
  await writeFile(
    config,
    `server:\n  command: php ${FIXTURES}/php/echo.php\n` +
      `http:\n  address: 127.0.0.1:${ports.http}\n  pool: { num_workers: 1 }\n  ssl:\n    address: 127.0.0.1:${ports.https}\n` +
      `    acme:\n      certs_dir: ${join(dir, 'certs')}\n      directory: ${pebble.directory}\n      domains: [front.test]\n` +
      `admin:\n  socket: ${join(dir, 'admin.sock')}\n`,
  );
  server = startServer(['serve', '-c', config], { env: { NODE_EXTRA_CA_CERTS: pebble.caFile } });
  await server.ready();
}, 60_000);

afterAll(async () => {
  if (!available) return;
  await stopAllServers();
  await pebble?.stop();
  await new Promise((resolve) => front?.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!available)('automatic HTTPS behind something that redirects port 80 to HTTPS', () => {
  it('the HTTPS listener answers the redirected HTTP-01 check: the certificate is issued', async () => {
    await server.waitFor(/certificate front\.test( issued: |: .*\[WP_SERVER_ACME_\w+\])/, 45_000);
    expect(server.stderr).not.toMatch(/WP_SERVER_ACME_/);
    expect(server.stdout).toMatch(/certificate front\.test issued: /);
    expect(pebble.issued()).toBe(1);
  }, 60_000);
});
