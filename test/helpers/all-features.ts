import { execFileSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import type { LookupFunction } from 'node:net';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { hasPebble, startPebble, type Pebble } from './pebble.js';
import { startPhpFpm } from './php-fpm.js';
import { selfSignedPair } from './tls-pair.js';
import { startUpstream, type Upstream } from './upstream.js';
import { FIXTURES } from './warmpool-server.js';

const ACME_EAB_KEY_ID = 'kid-all-features';
const ACME_EAB_MAC_KEY = 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W';

/** The users of the all-features htpasswd file (http.auth_basic): a SHA-512 crypt line, a bcrypt one. */
export const ALL_FEATURES_STAFF = { user: 'staff', password: 'let me in' };
export const ALL_FEATURES_OPS = { user: 'ops', password: 'bcrypt me' };

/** test/fixtures/server/all-features.yaml: every feature a config can turn on. */
export const ALL_FEATURES_CONFIG = join(FIXTURES, 'server', 'all-features.yaml');

/** The names http.ssl.acme.domains lists, by certificate (one per site; elsewhere.test is the default site's). */
export const ALL_FEATURES_CERTIFICATES: Record<string, string[]> = {
  'a.test': ['a.test', 'www.a.test'],
  'b.test': ['b.test'],
  'plain.test': ['plain.test'],
  'classic.test': ['classic.test'],
  'fpm.test': ['fpm.test'],
  'docs.test': ['docs.test'],
  'www.docs.test': ['www.docs.test'],
  'node.test': ['node.test'],
  'elsewhere.test': ['elsewhere.test'],
};

export interface AllFeaturesSetup {
  /** the config's variables: ports, the state folder (certs_dir, access log, uploads, admin socket), the CA */
  env: Record<string, string>;
  /** env, plus what only the server process gets: trust in pebble's own HTTPS certificate */
  serverEnv: Record<string, string>;
  /** pebble's root (PEM): the certificates the server gets chain to it; clients trust only this */
  root: string;
  /** the ACME CA the config's http.ssl.acme.directory points at */
  pebble: Pebble;
  /** the proxy routes' upstream (HTTP and WebSocket) */
  upstream: Upstream;
  /** node.test's second instance, beside upstream (proxy[].upstream as a list): a test stops it */
  upstream2: Upstream;
  /** https://127.0.0.1:PORT */
  https: string;
  /** http://127.0.0.1:PORT (it redirects to https, and answers the CA's HTTP-01 checks) */
  http: string;
  accessLog: string;
  close(): Promise<void>;
}

/**
 * Everything all-features.yaml needs from outside: free ports, an ACME CA (pebble) validating on
 * the HTTP and HTTPS ports, a real upstream, a php-fpm. Without pebble this throws rather than
 * letting the all-features tests skip: scripts/setup.sh installs it.
 */
export async function prepareAllFeatures(): Promise<AllFeaturesSetup> {
  if (!(await hasPebble()))
    throw new Error(
      'pebble is not installed: the all-features config gets its certificates from it (apt-get install pebble, or scripts/setup.sh)',
    );
  const dir = await mkdtemp(join(tmpdir(), 'wp-all-'));
  await mkdir(join(dir, 'uploads'));
  // docs.test's static files: a copy of the fixture, which a test changes while serving
  await cp(join(FIXTURES, 'server', 'files-site'), join(dir, 'docs'), { recursive: true });
  // http.ssl.certificates: a pair of its own for files.test and *.files.test, as certbot leaves one
  await selfSignedPair(dir, 'files.test', ['files.test', '*.files.test']);
  // http.auth_basic's user file: staff, with the SHA-512 crypt hash `openssl passwd -6` makes, and
  // ops with the bcrypt one of `htpasswd -B` (checked a slice at a time)
  const hash = execFileSync('openssl', ['passwd', '-6', ALL_FEATURES_STAFF.password]).toString().trim();
  const ops = execFileSync('htpasswd', ['-nbB', '-C', '10', ALL_FEATURES_OPS.user, ALL_FEATURES_OPS.password])
    .toString()
    .trim();
  await writeFile(
    join(dir, 'htpasswd'),
    `# who may see /staff and /b-api/private\n${ALL_FEATURES_STAFF.user}:${hash}\n${ops}\n`,
  );
  const [httpPort, httpsPort] = [await freePort(), await freePort()];
  // the CA requires External Account Binding, as ZeroSSL and Google do: the config gives it
  const pebble = await startPebble({ httpPort, tlsPort: httpsPort, eabKeys: { [ACME_EAB_KEY_ID]: ACME_EAB_MAC_KEY } });
  const upstream = await startUpstream();
  const upstream2 = await startUpstream();
  const fpm = await startPhpFpm({ maxChildren: 2 });
  const env = {
    FIXTURES,
    STATE_DIR: dir,
    HTTP_PORT: String(httpPort),
    HTTPS_PORT: String(httpsPort),
    STATUS_PORT: String(await freePort()),
    METRICS_PORT: String(await freePort()),
    RPC_PORT: String(await freePort()),
    UPSTREAM_PORT: String(upstream.port),
    UPSTREAM2_PORT: String(upstream2.port),
    FPM_PASS: fpm.pass,
    ACME_DIRECTORY: pebble.directory,
    ACME_EAB_KEY_ID,
    ACME_EAB_MAC_KEY,
  };
  return {
    env,
    serverEnv: { ...env, NODE_EXTRA_CA_CERTS: pebble.caFile },
    root: await pebble.root(),
    pebble,
    upstream,
    upstream2,
    https: `https://127.0.0.1:${env.HTTPS_PORT}`,
    http: `http://127.0.0.1:${env.HTTP_PORT}`,
    accessLog: join(dir, 'log', 'access.log'),
    close: async () => {
      await Promise.all([upstream.close(), upstream2.close(), fpm.stop(), pebble.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Resolves once the server printed "issued" for every certificate of the config: the CA's verdicts
 * are the events waited for. A failed order rejects at once, with the server's line saying why
 * (the server would retry only a minute later). `timeoutMs` only bounds a CA that never answers.
 */
export async function allCertificatesIssued(
  server: { waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>; stdout: string; stderr: string },
  timeoutMs = 90_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const name of Object.keys(ALL_FEATURES_CERTIFICATES)) {
    const escaped = name.replace(/\./g, '\\.');
    await server.waitFor(
      new RegExp(`certificate ${escaped} issued: |certificate ${escaped}: .*\\[WP_SERVER_ACME_\\w+\\]`),
      Math.max(1, deadline - Date.now()),
    );
    const failure = new RegExp(`certificate ${escaped}: .*\\[WP_SERVER_ACME_\\w+\\].*`).exec(
      server.stdout + server.stderr,
    );
    if (failure !== null) throw new Error(`the CA did not issue ${name}: ${failure[0]}`);
  }
}

/** A DNS lookup for clients (undici's connect.lookup): every name is 127.0.0.1, as pebble's DNS says. */
export const everyNameHere: LookupFunction = (_host, options, done) => {
  if (options.all === true)
    (done as (error: null, addresses: { address: string; family: number }[]) => void)(null, [
      { address: '127.0.0.1', family: 4 },
    ]);
  else done(null, '127.0.0.1', 4);
};
