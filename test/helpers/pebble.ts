// Pebble, the ACME test CA (Debian package `pebble`), for whole-system tests of http.ssl.acme:
// - a throwaway CA (openssl) signs pebble's own HTTPS certificate; the warmpool server under test
//   trusts it through NODE_EXTRA_CA_CERTS (set on that child only);
// - pebble-challtestsrv answers pebble's DNS: every name is 127.0.0.1 (IPv4 only) unless addA says
//   otherwise, so test names resolve without touching /etc/hosts;
// - pebble validates HTTP-01 on `httpPort` and TLS-ALPN-01 on `tlsPort`: the server's listeners.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { freePort } from './free-port.js';

const exec = promisify(execFile);

export interface PebbleOptions {
  /** where pebble sends HTTP-01 validation requests (the server's HTTP listener) */
  httpPort: number;
  /** where pebble connects for TLS-ALPN-01 (the server's HTTPS listener) */
  tlsPort: number;
  /** seconds; pebble's default is five years */
  certificateValidityPeriod?: number;
  /** External Account Binding required, with these key IDs and their base64url MAC keys */
  eabKeys?: Record<string, string>;
}

export interface Pebble {
  /** the ACME directory URL */
  directory: string;
  /** the CA that signed pebble's HTTPS certificate: NODE_EXTRA_CA_CERTS for the server */
  caFile: string;
  /** pebble's root, which issued certificates chain to (fetched from its management API) */
  root(): Promise<string>;
  /** answer A queries for `host` with `address` (e.g. 127.0.0.2, where nothing listens) */
  addA(host: string, address: string): Promise<void>;
  /** certificates issued so far (pebble logs one line each) */
  issued(): number;
  log(): string;
  stop(): Promise<void>;
}

export async function hasPebble(): Promise<boolean> {
  try {
    await exec('pebble', ['-h']).catch((error: { code?: string | number }) => {
      // `-h` exits 2 after printing usage: installed
      if (error.code === 'ENOENT') throw error;
    });
    return true;
  } catch {
    return false;
  }
}

export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const dir = await mkdtemp(join(tmpdir(), 'wp-pebble-'));
  const openssl = (...args: string[]) => exec('openssl', args, { cwd: dir });
  await openssl(
    ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
    ...['-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=warmpool test CA for pebble'],
  );
  await openssl(
    ...['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'],
    ...['-keyout', 'pebble.key', '-out', 'pebble.csr', '-subj', '/CN=localhost'],
  );
  await writeFile(join(dir, 'pebble.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  await openssl(
    ...['x509', '-req', '-in', 'pebble.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial'],
    ...['-days', '2', '-out', 'pebble.pem', '-extfile', 'pebble.ext'],
  );
  const [acmePort, managementPort, dnsPort, challtestPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  await writeFile(
    join(dir, 'pebble.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: join(dir, 'pebble.pem'),
        privateKey: join(dir, 'pebble.key'),
        httpPort: options.httpPort,
        tlsPort: options.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: options.eabKeys !== undefined,
        ...(options.eabKeys === undefined ? {} : { externalAccountMACKeys: options.eabKeys }),
        ...(options.certificateValidityPeriod === undefined
          ? {}
          : { certificateValidityPeriod: options.certificateValidityPeriod }),
      },
    }),
  );

  const dns = spawn(
    'pebble-challtestsrv',
    [
      ...['-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''],
      ...['-dns01', `127.0.0.1:${dnsPort}`, '-management', `127.0.0.1:${challtestPort}`],
      ...['-http01', '', '-https01', '', '-tlsalpn01', ''],
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  await waitForLine(dns, /Starting management server/);
  const pebble = spawn('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`], {
    // no random sleeps before validating; no rejected nonces (acme-client retries them, slowly)
    env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  pebble.stdout!.on('data', (chunk: Buffer) => (log += chunk));
  pebble.stderr!.on('data', (chunk: Buffer) => (log += chunk));
  try {
    await waitForLine(pebble, /ACME directory available at/);
    // pebble prints its addresses just before binding them: wait until both accept connections
    await Promise.all([acmePort, managementPort].map((port) => waitForListener(port)));
  } catch (error) {
    pebble.kill();
    dns.kill();
    throw error;
  }
  const ca = await readFile(join(dir, 'ca.pem'));
  const dispatcher = new Agent({ connect: { ca } });

  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    caFile: join(dir, 'ca.pem'),
    async root() {
      const response = await request(`https://127.0.0.1:${managementPort}/roots/0`, { dispatcher });
      return response.body.text();
    },
    async addA(host, address) {
      const response = await request(`http://127.0.0.1:${challtestPort}/add-a`, {
        method: 'POST',
        body: JSON.stringify({ host, addresses: [address] }),
      });
      await response.body.text();
      if (response.statusCode !== 200) throw new Error(`challtestsrv add-a answered ${response.statusCode}`);
    },
    issued: () => log.match(/Issued certificate serial/g)?.length ?? 0,
    log: () => log,
    async stop() {
      await dispatcher.close();
      for (const child of [pebble, dns]) {
        if (child.exitCode === null && child.signalCode === null) {
          child.kill();
          await once(child, 'exit');
        }
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once 127.0.0.1:port accepts a connection (retrying refusals for up to ten seconds). */
async function waitForListener(port: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const error = await new Promise<Error | null>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(null);
      });
      socket.once('error', resolve);
    });
    if (error === null) return;
    if (Date.now() > deadline) throw new Error(`pebble never listened on port ${port}: ${error.message}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Resolves when the child prints a line matching `pattern`; rejects if it exits first. */
function waitForLine(child: ChildProcess, pattern: RegExp): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk;
      if (pattern.test(seen)) {
        cleanup();
        resolve();
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`${child.spawnfile} exited (${code}) before printing ${pattern}:\n${seen}`));
    };
    const cleanup = () => {
      child.stdout!.off('data', onData);
      child.stderr!.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', onExit);
  });
}
