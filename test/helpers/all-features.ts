import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { startPhpFpm } from './php-fpm.js';
import { makeTlsPair } from './tls-pair.js';
import { startUpstream, type Upstream } from './upstream.js';
import { FIXTURES } from './warmpool-server.js';

/** test/fixtures/server/all-features.yaml: every feature a config can turn on. */
export const ALL_FEATURES_CONFIG = join(FIXTURES, 'server', 'all-features.yaml');

export interface AllFeaturesSetup {
  /** the config's variables: ports, the state folder (TLS pair, access log, uploads, admin socket) */
  env: Record<string, string>;
  /** the test CA, for clients */
  ca: Buffer;
  /** the proxy routes' upstream (HTTP and WebSocket) */
  upstream: Upstream;
  /** https://127.0.0.1:PORT */
  https: string;
  /** http://127.0.0.1:PORT (it redirects to https) */
  http: string;
  accessLog: string;
  close(): Promise<void>;
}

/** Everything all-features.yaml needs from outside: free ports, a TLS pair, a real upstream, a php-fpm. */
export async function prepareAllFeatures(): Promise<AllFeaturesSetup> {
  const dir = await mkdtemp(join(tmpdir(), 'wp-all-'));
  await mkdir(join(dir, 'uploads'));
  const pair = await makeTlsPair(dir, [
    'a.test',
    '*.a.test',
    'b.test',
    'plain.test',
    'classic.test',
    'fpm.test',
    'elsewhere.test',
  ]);
  const upstream = await startUpstream();
  const fpm = await startPhpFpm({ maxChildren: 2 });
  const env = {
    FIXTURES,
    STATE_DIR: dir,
    HTTP_PORT: String(await freePort()),
    HTTPS_PORT: String(await freePort()),
    STATUS_PORT: String(await freePort()),
    METRICS_PORT: String(await freePort()),
    RPC_PORT: String(await freePort()),
    UPSTREAM_PORT: String(upstream.port),
    FPM_PASS: fpm.pass,
  };
  return {
    env,
    ca: await readFile(pair.ca),
    upstream,
    https: `https://127.0.0.1:${env.HTTPS_PORT}`,
    http: `http://127.0.0.1:${env.HTTP_PORT}`,
    accessLog: join(dir, 'log', 'access.log'),
    close: async () => {
      await Promise.all([upstream.close(), fpm.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
