// Automatic HTTPS against a real ACME CA (pebble, on this machine): `warmpool serve` with
// http.ssl.acme gets one certificate per site by HTTP-01 on its redirect-only HTTP listener, serves
// them by SNI, keeps keys 0600, reuses them after a restart without ordering, reports a name the CA
// cannot reach while the other sites serve, and tells `warmpool cert status` and /metrics.
import { request as httpRequest } from 'node:http';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as connectTls, type PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { hasPebble, startPebble, type Pebble } from '../helpers/pebble.js';
import { FIXTURES, runCli, startServer, stopAllServers, type RunningServer } from '../helpers/warmpool-server.js';

const available = await hasPebble();
const DEADLINE_MS = 45_000;

let dir: string;
let pebble: Pebble;
let root: string;
let server: RunningServer;
let config: string;
let ports: { http: number; https: number; metrics: number };

/** The certificate served for `servername`, and whether it chains to `ca`. */
function handshake(
  port: number,
  servername: string,
  ca?: string,
): Promise<{ cert: PeerCertificate; authorized: boolean; error: Error | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = connectTls(
      {
        host: '127.0.0.1',
        port,
        servername,
        rejectUnauthorized: false,
        ALPNProtocols: ['http/1.1'],
        ...(ca ? { ca } : {}),
      },
      () => {
        resolve({ cert: socket.getPeerCertificate(), authorized: socket.authorized, error: socket.authorizationError });
        socket.end();
      },
    );
    socket.once('error', reject);
  });
}

/** One HTTPS request to `host` on 127.0.0.1, trusting only `ca`; the status and the body. */
function get(port: number, host: string, path: string, ca: string): Promise<{ status: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ host: '127.0.0.1', port, servername: host, ca, ALPNProtocols: ['http/1.1'] }, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('end', () => resolve({ status: text.split('\r\n')[0]!, body: text.split('\r\n\r\n')[1] ?? '' }));
    socket.once('error', reject);
  });
}

/** A plain HTTP GET with a Host header: the status, and where it redirects. */
function plainGet(
  port: number,
  host: string,
  path: string,
): Promise<{ status: number; location?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode!, body, ...(res.headers.location ? { location: res.headers.location } : {}) }),
      );
    });
    req.once('error', reject);
    req.end();
  });
}

function writeConfig(file: string, body: string): Promise<void> {
  return writeFile(file, body);
}

function siteYaml(hosts: string[]): string {
  return `  - hosts: [${hosts.join(', ')}]\n    server: { command: php ${FIXTURES}/php/echo.php }\n    http: { pool: { num_workers: 1 } }\n`;
}

beforeAll(async () => {
  if (!available) return;
  dir = await mkdtemp(join(tmpdir(), 'wp-acme-e2e-'));
  ports = { http: await freePort(), https: await freePort(), metrics: await freePort() };
  pebble = await startPebble({ httpPort: ports.http, tlsPort: ports.https });
  root = await pebble.root();
  // unreachable.test resolves to an address where nothing listens: the CA cannot connect; so does
  // broken.c.test, beside c.test which validates
  await pebble.addA('unreachable.test', '127.0.0.2');
  await pebble.addA('broken.c.test', '127.0.0.2');
  config = join(dir, 'warmpool.yaml');
  await writeConfig(
    config,
    `http:\n  address: 127.0.0.1:${ports.http}\n  ssl:\n    address: 127.0.0.1:${ports.https}\n    redirect: true\n` +
      `    acme:\n      certs_dir: ${join(dir, 'certs')}\n      email: ops@example.com\n      directory: ${pebble.directory}\n` +
      `metrics:\n  address: 127.0.0.1:${ports.metrics}\n` +
      `sites:\n${siteYaml(['a.test', 'www.a.test'])}${siteYaml(['b.test'])}${siteYaml(['unreachable.test'])}${siteYaml(['c.test', 'broken.c.test'])}` +
      `admin:\n  socket: ${join(dir, 'admin.sock')}\n`,
  );
  server = startServer(['serve', '-c', config], { env: { NODE_EXTRA_CA_CERTS: pebble.caFile } });
  await server.ready();
}, 60_000);

afterAll(async () => {
  if (!available) return;
  await stopAllServers();
  await pebble?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!available)('automatic HTTPS (http.ssl.acme) against pebble', () => {
  it('listens at once with temporary certificates, then gets one certificate per site by HTTP-01 on the redirect-only listener', async () => {
    expect(server.stdout).toMatch(/certificate a\.test: none stored yet; a temporary self-signed one is served/);
    await server.waitFor(/certificate a\.test issued: /, DEADLINE_MS);
    await server.waitFor(/certificate b\.test issued: /, DEADLINE_MS);
    await server.waitFor(/certificate c\.test issued for c\.test only: /, DEADLINE_MS);
    expect(pebble.issued()).toBe(3);

    const a = await handshake(ports.https, 'a.test', root);
    expect(a.authorized).toBe(true);
    expect(a.cert.subjectaltname).toBe('DNS:a.test, DNS:www.a.test');
    const www = await handshake(ports.https, 'www.a.test', root);
    expect(www.authorized).toBe(true);
    expect(www.cert.serialNumber).toBe(a.cert.serialNumber);
    const b = await handshake(ports.https, 'b.test', root);
    expect(b.authorized).toBe(true);
    expect(b.cert.subjectaltname).toBe('DNS:b.test');
    expect(b.cert.serialNumber).not.toBe(a.cert.serialNumber);

    // the sites serve through them, trusting pebble's root only
    const reply = await get(ports.https, 'www.a.test', '/hello', root);
    expect(reply.status).toBe('HTTP/1.1 200 OK');
    // the HTTP listener still only redirects
    const plain = await plainGet(ports.http, 'b.test', '/x');
    expect(plain.status).toBe(308);
    expect(plain.location).toBe(`https://b.test:${ports.https}/x`);
  });

  it('a name the CA cannot reach: a clear error naming it and what to do; its site keeps the temporary certificate; the others serve', async () => {
    await server.waitFor(/certificate unreachable\.test: the CA could not connect/, DEADLINE_MS);
    const line = (server.stdout + server.stderr).split('\n').find((l) => l.includes('the CA could not connect'))!;
    expect(line).toContain('Open port 80 to the internet');
    expect(line).toContain('check that the DNS of unreachable.test points at this server');
    expect(line).toContain('[WP_SERVER_ACME_UNREACHABLE]');
    expect(line).toMatch(/127\.0\.0\.2:\d+: connect: connection refused/);
    expect(line).toMatch(/next attempt at \d{4}-\d\d-\d\dT/);

    const temporary = await handshake(ports.https, 'unreachable.test', root);
    expect(temporary.authorized).toBe(false);
    expect(temporary.cert.subject.O).toBe('warmpool temporary certificate (waiting for the CA)');
    expect(temporary.cert.subjectaltname).toBe('DNS:unreachable.test');
    expect((await get(ports.https, 'a.test', '/still', root)).status).toBe('HTTP/1.1 200 OK');
  });

  it("`warmpool cert status` lists each certificate through the admin socket; /metrics has each name's expiry and state, the temporary one included", async () => {
    const socket = join(dir, 'admin.sock');
    const text = await runCli(['cert', 'status', '--socket', socket]);
    // one name still fails: exit 1, so a cron job or a health check notices
    expect(text.code).toBe(1);
    const rows = text.stdout.split('\n');
    expect(rows.find((r) => r.includes('a.test, www.a.test'))).toMatch(
      /a\.test, www\.a\.test\s+valid\s+CN=Pebble Intermediate CA \w+\s+\d{4}-\d\d-\d\d \d\d:\d\dZ\s+\d{4}-\d\d-\d\d \d\d:\d\dZ/,
    );
    // the temporary certificate's end too (what browsers are served); no issuer
    expect(rows.find((r) => r.includes('unreachable.test'))).toMatch(
      /unreachable\.test\s+temporary\s+-\s+\d{4}-\d\d-\d\d \d\d:\d\dZ\s+\d{4}-/,
    );
    expect(text.stdout + text.stderr).toMatch(
      /unreachable\.test: the CA could not connect.*\[WP_SERVER_ACME_UNREACHABLE\]/,
    );

    const json = await runCli(['cert', 'status', '--socket', socket, '--json']);
    const data = JSON.parse(json.stdout) as { automatic: boolean; certificates: Array<Record<string, unknown>> };
    expect(data.automatic).toBe(true);
    const a = data.certificates.find((c) => c.name === 'a.test')!;
    expect(a).toMatchObject({ domains: ['a.test', 'www.a.test'], state: 'valid', lastError: null });
    expect(Date.parse(a.nextRenewal as string)).toBeLessThan(Date.parse(a.notAfter as string));
    expect(Date.parse(a.nextRenewal as string)).toBeGreaterThan(Date.now());

    const metrics = await plainGet(ports.metrics, 'localhost', '/metrics');
    expect(metrics.body).toContain('# TYPE warmpool_cert_expiry_seconds gauge');
    const expiry = Number(/^warmpool_cert_expiry_seconds\{domain="www\.a\.test"\} (\d+)$/m.exec(metrics.body)?.[1]);
    expect(expiry).toBeGreaterThan(0);
    expect(expiry).toBeLessThanOrEqual((Date.parse(a.notAfter as string) - Date.now()) / 1000 + 60);
    // the name still served the temporary certificate has the expiry of that one (7 days) and says so
    expect(metrics.body).toContain('# TYPE warmpool_cert_state gauge');
    const samples = await certMetrics(ports.metrics);
    const temporary = await handshake(ports.https, 'unreachable.test');
    const temporaryExpiry = samples.get('warmpool_cert_expiry_seconds{domain="unreachable.test"}')!;
    expect(Math.abs(temporaryExpiry - (Date.parse(temporary.cert.valid_to) - Date.now()) / 1000)).toBeLessThan(60);
    expect(stateOf(samples, 'unreachable.test').state).toEqual(['temporary']);
    expect(stateOf(samples, 'www.a.test')).toEqual({
      state: ['valid'],
      states: ['valid', 'partial', 'expired', 'temporary'],
    });
  });

  it('one name that fails validation does not hold back the others of its site: they get a certificate, it keeps the temporary one', async () => {
    const line = server.stdout.split('\n').find((l) => l.includes('certificate c.test issued for c.test only'))!;
    expect(line).toContain('broken.c.test keeps what it had until the whole set is issued');
    expect(server.stdout + server.stderr).toMatch(
      /certificate c\.test: broken\.c\.test: the CA could not connect.*\[WP_SERVER_ACME_UNREACHABLE\]; next attempt at/,
    );
    expect(server.stdout).toContain(
      'certificate c.test: ordering for c.test without broken.c.test (failed validation)',
    );
    // the failing name is served the temporary certificate, and the line says so (not "the current one stays")
    expect(server.stdout + server.stderr).toMatch(
      /\[WP_SERVER_ACME_UNREACHABLE\]; next attempt at \S+, c\.test keeps the current certificate \(it expires \S+\); broken\.c\.test is served the temporary self-signed one until then/,
    );
    const c = await handshake(ports.https, 'c.test', root);
    expect(c.authorized).toBe(true);
    expect(c.cert.subjectaltname).toBe('DNS:c.test');
    const broken = await handshake(ports.https, 'broken.c.test', root);
    expect(broken.authorized).toBe(false);
    expect(broken.cert.subject.O).toBe('warmpool temporary certificate (waiting for the CA)');

    const json = await runCli(['cert', 'status', '--socket', join(dir, 'admin.sock'), '--json']);
    const status = (JSON.parse(json.stdout) as { certificates: Array<Record<string, unknown>> }).certificates.find(
      (entry) => entry.name === 'c.test',
    );
    expect(status).toMatchObject({
      domains: ['c.test', 'broken.c.test'],
      state: 'partial',
      lastError: { code: 'WP_SERVER_ACME_UNREACHABLE' },
    });
    const metrics = await plainGet(ports.metrics, 'localhost', '/metrics');
    expect(metrics.body).toMatch(/^warmpool_cert_expiry_seconds\{domain="c\.test"\} \d+$/m);
    // the name left out keeps the temporary certificate, and its series say so
    const samples = await certMetrics(ports.metrics);
    expect(samples.get('warmpool_cert_expiry_seconds{domain="broken.c.test"}')).toBeLessThanOrEqual(7 * 86_400);
    expect(stateOf(samples, 'c.test').state).toEqual(['partial']);
    expect(stateOf(samples, 'broken.c.test').state).toEqual(['temporary']);
  });

  it('`warmpool config check` shows the CA, certs_dir and the certificates it will ask for (one per site)', async () => {
    const result = await runCli(['config', 'check', '-c', config, '--json']);
    expect(result.code).toBe(0);
    const https = (JSON.parse(result.stdout) as { listeners: { https: Record<string, unknown> } }).listeners.https;
    expect(https.tls12_ciphers).toMatch(/^ECDHE-ECDSA-AES128-GCM-SHA256:/);
    expect(https.acme).toEqual({
      directory: pebble.directory,
      staging: false,
      certs_dir: join(dir, 'certs'),
      email: 'ops@example.com',
      challenge_type: 'http-01',
      certificates: [
        { name: 'a.test', domains: ['a.test', 'www.a.test'] },
        { name: 'b.test', domains: ['b.test'] },
        { name: 'unreachable.test', domains: ['unreachable.test'] },
        { name: 'c.test', domains: ['c.test', 'broken.c.test'] },
      ],
    });
  });

  it('keeps the keys 0600 in certs_dir', async () => {
    const certificates = join(dir, 'certs', 'certificates');
    expect((await readdir(certificates)).sort()).toEqual(['a.test', 'b.test', 'c.test', 'unreachable.test']);
    for (const name of ['a.test', 'b.test']) {
      expect((await stat(join(certificates, name, 'current', 'key.pem'))).mode & 0o777).toBe(0o600);
    }
    const [account] = await readdir(join(dir, 'certs', 'accounts'));
    expect((await stat(join(dir, 'certs', 'accounts', account!, 'account.key'))).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, 'certs'))).mode & 0o777).toBe(0o700);
  });

  it('a restart serves the stored certificates at once and orders nothing for them', async () => {
    const before = {
      a: (await handshake(ports.https, 'a.test', root)).cert.serialNumber,
      b: (await handshake(ports.https, 'b.test', root)).cert.serialNumber,
    };
    const issued = pebble.issued();
    expect((await server.stop()).code).toBe(0);
    server = startServer(['serve', '-c', config], { env: { NODE_EXTRA_CA_CERTS: pebble.caFile } });
    await server.ready();
    expect(server.stdout).toMatch(/certificate a\.test: stored one in use \(a\.test, www\.a\.test; expires /);
    expect(server.stdout).toMatch(/certificate b\.test: stored one in use/);
    // the partial one serves its names again
    expect(server.stdout).toMatch(
      /certificate c\.test: stored one in use \(c\.test; expires [^)]+\); broken\.c\.test waits for one/,
    );
    expect((await handshake(ports.https, 'c.test', root)).authorized).toBe(true);
    // failing ones keep their backoff over the restart: no new failed validation at the CA per start
    // (a restart loop would run into Let's Encrypt's limit of failed validations)
    expect(server.stdout).toMatch(
      /certificate unreachable\.test: none stored yet; .*; its attempts failed before this start \[WP_SERVER_ACME_UNREACHABLE\]: the next one at \d{4}-/,
    );
    expect(server.stdout).toMatch(
      /certificate c\.test: .*its attempts failed before this start \[WP_SERVER_ACME_UNREACHABLE\]/,
    );
    expect((await handshake(ports.https, 'a.test', root)).cert.serialNumber).toBe(before.a);
    expect((await handshake(ports.https, 'b.test', root)).cert.serialNumber).toBe(before.b);
    const json = await runCli(['cert', 'status', '--socket', join(dir, 'admin.sock'), '--json']);
    const unreachable = (JSON.parse(json.stdout) as { certificates: Array<Record<string, unknown>> }).certificates.find(
      (entry) => entry.name === 'unreachable.test',
    )!;
    expect(unreachable).toMatchObject({ lastError: { code: 'WP_SERVER_ACME_UNREACHABLE' } });
    expect(Date.parse(unreachable.nextAttempt as string)).toBeGreaterThan(Date.now());
    expect(server.stdout).not.toMatch(/certificate (a|b|c|unreachable)\.test: (ordering|renewing)/);
    expect(pebble.issued()).toBe(issued);
  });

  it('another CA configured (directory changed, the new one down): the stored certificates serve until it issues', async () => {
    const serial = (await handshake(ports.https, 'a.test', root)).cert.serialNumber;
    expect((await server.stop()).code).toBe(0);
    const elsewhere = `https://127.0.0.1:${await freePort()}/dir`;
    const moved = join(dir, 'moved.yaml');
    await writeConfig(moved, (await readFile(config, 'utf8')).replace(pebble.directory, elsewhere));
    server = startServer(['serve', '-c', moved], { env: { NODE_EXTRA_CA_CERTS: pebble.caFile } });
    await server.ready();
    expect(server.stdout).toContain(`certificate a.test: stored one in use (a.test, www.a.test; expires `);
    expect(server.stdout).toContain(
      `it is from ${pebble.directory}, the CA configured before: served until ${elsewhere} issues one`,
    );
    const served = await handshake(ports.https, 'a.test', root);
    expect([served.authorized, served.cert.serialNumber]).toEqual([true, serial]);
    // the new CA is asked at once, and its being down is said
    await server.waitFor(/certificate a\.test: cannot reach the CA at https:\/\/127\.0\.0\.1:\d+\/dir/, DEADLINE_MS);
    expect((await handshake(ports.https, 'a.test', root)).cert.serialNumber).toBe(serial);
    // the failed attempt leaves the series of the certificate still served: its expiry, valid
    const samples = await certMetrics(ports.metrics);
    const expiresIn = (Date.parse(served.cert.valid_to) - Date.now()) / 1000;
    for (const domain of ['a.test', 'www.a.test']) {
      expect(
        Math.abs(samples.get(`warmpool_cert_expiry_seconds{domain="${domain}"}`)! - expiresIn),
        domain,
      ).toBeLessThan(60);
      expect(stateOf(samples, domain).state, domain).toEqual(['valid']);
    }
  });
});

/** The warmpool_cert_* samples of /metrics, by series ("warmpool_cert_state{domain=\"a.test\",state=\"valid\"}"). */
async function certMetrics(port: number): Promise<Map<string, number>> {
  const body = (await plainGet(port, 'localhost', '/metrics')).body;
  const samples = new Map<string, number>();
  for (const [, series, value] of body.matchAll(/^(warmpool_cert_\w+\{[^}]*\}) (-?\d+)$/gm))
    samples.set(series!, Number(value));
  return samples;
}

/** warmpool_cert_state of `domain`: the state whose sample is 1, and every state it has a sample for. */
function stateOf(samples: Map<string, number>, domain: string): { state: string[]; states: string[] } {
  const entries = [...samples].flatMap(([series, value]) => {
    const match = new RegExp(
      `^warmpool_cert_state\\{domain="${domain.replaceAll('.', '\\.')}",state="(\\w+)"\\}$`,
    ).exec(series);
    return match === null ? [] : [{ state: match[1]!, value }];
  });
  return { state: entries.filter((e) => e.value === 1).map((e) => e.state), states: entries.map((e) => e.state) };
}

describe('automatic HTTPS: a CA that cannot be reached (first deploy)', () => {
  it('every name served the temporary certificate has its expiry and state temporary in /metrics; a name gone from the config has none after the restart', async () => {
    const work = await mkdtemp(join(tmpdir(), 'wp-acme-down-'));
    let running: RunningServer | null = null;
    try {
      const port = { http: await freePort(), https: await freePort(), metrics: await freePort() };
      const file = join(work, 'warmpool.yaml');
      const head =
        `http:\n  address: 127.0.0.1:${port.http}\n  ssl:\n    address: 127.0.0.1:${port.https}\n    redirect: true\n` +
        `    acme:\n      certs_dir: ${join(work, 'certs')}\n      directory: http://127.0.0.1:${await freePort()}/directory\n` +
        `metrics:\n  address: 127.0.0.1:${port.metrics}\nadmin:\n  socket: ${join(work, 'admin.sock')}\n`;
      await writeFile(file, `${head}sites:\n${siteYaml(['a.test', 'www.a.test'])}${siteYaml(['b.test'])}`);
      running = startServer(['serve', '-c', file]);
      await running.ready();
      await running.waitFor(/certificate a\.test: cannot reach the CA at http:\/\/127\.0\.0\.1:\d+\/directory/);
      await running.waitFor(/certificate b\.test: cannot reach the CA/);

      const served = await handshake(port.https, 'www.a.test');
      expect(served.cert.subject.O).toBe('warmpool temporary certificate (waiting for the CA)');
      const samples = await certMetrics(port.metrics);
      const expiresIn = (Date.parse(served.cert.valid_to) - Date.now()) / 1000;
      for (const domain of ['a.test', 'www.a.test', 'b.test']) {
        const seconds = samples.get(`warmpool_cert_expiry_seconds{domain="${domain}"}`);
        expect(seconds, domain).toBeGreaterThan(expiresIn - 60);
        expect(seconds, domain).toBeLessThanOrEqual(expiresIn + 60);
        expect(stateOf(samples, domain), domain).toEqual({
          state: ['temporary'],
          states: ['valid', 'partial', 'expired', 'temporary'],
        });
      }
      // the documented alerts fire
      expect(samples.get('warmpool_cert_expiry_seconds{domain="b.test"}')).toBeLessThan(14 * 86_400);
      // what `cert status` says of them
      const status = await runCli(['cert', 'status', '--socket', join(work, 'admin.sock')]);
      expect(status.code).toBe(1);
      expect(status.stdout).toMatch(/a\.test, www\.a\.test\s+temporary\s/);
      expect(status.stdout).toMatch(/b\.test\s+temporary\s/);

      // b.test taken out of the file: after the restart it has no sample (its failures stay in certs_dir)
      expect((await running.stop()).code).toBe(0);
      await writeFile(file, `${head}sites:\n${siteYaml(['a.test', 'www.a.test'])}`);
      running = startServer(['serve', '-c', file]);
      await running.ready();
      const after = await certMetrics(port.metrics);
      expect([...after.keys()].filter((series) => series.includes('b.test'))).toEqual([]);
      expect(stateOf(after, 'a.test').state).toEqual(['temporary']);
    } finally {
      await running?.stop();
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe('automatic HTTPS: a certs_dir that cannot be written', () => {
  it('stops the start with exit 2 at the line of certs_dir, saying what to do', async () => {
    const work = await mkdtemp(join(tmpdir(), 'wp-acme-store-'));
    try {
      const blocker = join(work, 'not-a-folder');
      await writeFile(blocker, 'a file where certs_dir wants a folder');
      const file = join(work, 'warmpool.yaml');
      await writeFile(
        file,
        `http:\n  address: 127.0.0.1:${await freePort()}\n  ssl:\n    address: 127.0.0.1:${await freePort()}\n` +
          `    acme:\n      certs_dir: ${join(blocker, 'acme')}\n      domains: [x.test]\n` +
          `server:\n  command: php ${FIXTURES}/php/echo.php\nadmin:\n  socket: ${join(work, 'admin.sock')}\n`,
      );
      const result = await runCli(['serve', '-c', file]);
      expect(result.code).toBe(2);
      expect(result.stderr + result.stdout).toMatch(
        /warmpool\.yaml:6:\d+ http\.ssl\.acme\.certs_dir: cannot create .*not-a-folder\/acme: a file is in the way of a folder/,
      );
      // config check says it too (it passed the file, then told serve's user to check again with it)
      const check = await runCli(['config', 'check', '-c', file]);
      expect(check.code).toBe(2);
      expect(check.stderr).toMatch(
        /warmpool\.yaml:6:\d+ http\.ssl\.acme\.certs_dir: cannot create .*not-a-folder\/acme: a file is in the way/,
      );
      expect(await readdir(work)).toEqual(['not-a-folder', 'warmpool.yaml']);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
