// External Account Binding (http.ssl.acme.eab) against a real CA that requires it: pebble with
// externalAccountBindingRequired, as ZeroSSL, Google Trust Services and Sectigo are. Without the
// binding, or with a MAC key the CA does not know, the error says what to set; with it, the
// account is made and the certificate issued.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { hasPebble, startPebble, type Pebble } from '../helpers/pebble.js';
import { FIXTURES, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';

const available = await hasPebble();
const DEADLINE_MS = 45_000;
// pebble's MAC keys are base64url HMAC keys, as a CA's dashboard shows them
const KEY_ID = 'kid-warmpool';
const MAC_KEY = 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W';

let dir: string;
let pebble: Pebble;
let root: string;
let ports: { http: number; https: number };

beforeAll(async () => {
  if (!available) return;
  dir = await mkdtemp(join(tmpdir(), 'wp-acme-eab-'));
  ports = { http: await freePort(), https: await freePort() };
  pebble = await startPebble({ httpPort: ports.http, tlsPort: ports.https, eabKeys: { [KEY_ID]: MAC_KEY } });
  root = await pebble.root();
}, 60_000);

afterAll(async () => {
  if (!available) return;
  await stopAllServers();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** `warmpool serve` for eab.test with its own certs_dir (a new account each time), given `eab` lines. */
async function serve(name: string, eab: string, env: NodeJS.ProcessEnv = {}): Promise<RunningServer> {
  const config = join(dir, `${name}.yaml`);
  await writeFile(
    config,
    `http:\n  address: 127.0.0.1:${ports.http}\n  ssl:\n    address: 127.0.0.1:${ports.https}\n    redirect: true\n` +
      `    acme:\n      certs_dir: ${join(dir, name)}\n      directory: ${pebble.directory}\n${eab}` +
      `sites:\n  - hosts: [eab.test]\n    server: { command: php ${FIXTURES}/php/echo.php }\n    http: { pool: { num_workers: 1 } }\n`,
  );
  const server = startServer(['serve', '-c', config], { env: { NODE_EXTRA_CA_CERTS: pebble.caFile, ...env } });
  await server.ready();
  return server;
}

/** Whether the certificate served for eab.test chains to pebble's root. */
function trusted(): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connectTls(
      { host: '127.0.0.1', port: ports.https, servername: 'eab.test', ca: root, rejectUnauthorized: false },
      () => {
        resolve(socket.authorized);
        socket.end();
      },
    );
    socket.once('error', reject);
  });
}

describe.skipIf(!available)('automatic HTTPS with External Account Binding (pebble requiring it)', () => {
  it('without http.ssl.acme.eab the error says to set it, and the site serves its temporary certificate', async () => {
    const server = await serve('none', '');
    await server.waitFor(
      /requires External Account Binding .*set http\.ssl\.acme\.eab's key_id and mac_key/,
      DEADLINE_MS,
    );
    expect(await trusted()).toBe(false);
    expect(pebble.issued()).toBe(0);
    await server.stop('SIGTERM');
  });

  it('a MAC key the CA does not know is refused with what to check', async () => {
    const wrong = MAC_KEY.replace(/^.{8}/, 'AAAAAAAA');
    const server = await serve('wrong', `      eab:\n        key_id: ${KEY_ID}\n        mac_key: ${wrong}\n`);
    await server.waitFor(
      /refused the account.s External Account Binding .*check http\.ssl\.acme\.eab.s key_id and mac_key/,
      DEADLINE_MS,
    );
    expect(pebble.issued()).toBe(0);
    await server.stop('SIGTERM');
  });

  it('with the key ID and the MAC key (from the environment), the account is made and the certificate issued', async () => {
    // the secret from the environment, as the docs advise
    const server = await serve(
      'right',
      `      eab:\n        key_id: ${KEY_ID}\n        mac_key: \${ACME_EAB_MAC_KEY}\n`,
      {
        ACME_EAB_MAC_KEY: MAC_KEY,
      },
    );
    await server.waitFor(/certificate eab\.test issued: /, DEADLINE_MS);
    expect(pebble.issued()).toBe(1);
    expect(await trusted()).toBe(true);
    await server.stop('SIGTERM');
  });
});
