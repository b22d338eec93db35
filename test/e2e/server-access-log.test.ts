import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { connect as http2Connect } from 'node:http2';
import { connect as netConnect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { selfSignedPair } from '../helpers/tls-pair.js';
import { waitForFile } from '../helpers/wait-for-file.js';
import { until } from '../helpers/until.js';
import { FIXTURES, SERVER_MAIN, startServer, stopAllServers } from '../helpers/warmpool-server.js';

// http.access_log as nginx users run it: combined lines in a file that logrotate moves away and
// SIGUSR1 reopens; JSON lines on stdout. Both carry the request id the client got.
let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-access-'));
});
afterAll(async () => {
  await stopAllServers();
  await rm(dir, { recursive: true, force: true });
});

const COMBINED = /^(\S+) - (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" "([^"]*)"$/;

describe('access log: combined, to a file', () => {
  it('writes one combined line per request, with the request id; SIGUSR1 reopens the file after logrotate', async () => {
    const env = {
      HTTP_PORT: String(await freePort()),
      FORMAT: 'combined',
      ACCESS_LOG: join(dir, 'log', 'access.log'),
      ADMIN_SOCKET: join(dir, 'combined.sock'),
      FIXTURES,
    };
    const base = `http://127.0.0.1:${env.HTTP_PORT}`;
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'access-log.yaml')], { env });
    await server.ready();
    expect(server.stdout).toContain(`access log: combined → ${env.ACCESS_LOG}`);

    const res = await request(`${base}/page?x=1`, {
      headers: {
        referer: 'https://ref.example/',
        'user-agent': 'test "agent"',
        authorization: `Basic ${Buffer.from('alice:pw').toString('base64')}`,
      },
    });
    const body = await res.body.text();
    const id = res.headers['x-request-id'] as string;
    const text = await waitForFile(env.ACCESS_LOG, id);
    const line = text
      .trim()
      .split('\n')
      .find((l) => l.includes(id))!;
    const m = COMBINED.exec(line);
    expect(m, line).not.toBeNull();
    const [, addr, user, , requestLine, status, bytes, referer, agent, requestId] = m!;
    expect([addr, user, requestLine, status, referer, agent, requestId]).toEqual([
      '127.0.0.1',
      'alice',
      'GET /page?x=1 HTTP/1.1',
      '200',
      'https://ref.example/',
      'test \\x22agent\\x22',
      id,
    ]);
    expect(Number(bytes)).toBe(Buffer.byteLength(body));

    // gzip: the bytes sent are the compressed ones; HEAD sends none
    const gz = await request(`${base}/big?pad=${'x'.repeat(4000)}`, { headers: { 'accept-encoding': 'gzip' } });
    const gzBytes = (await gz.body.arrayBuffer()).byteLength;
    expect(gz.headers['content-encoding']).toBe('gzip');
    const head = await request(`${base}/head`, { method: 'HEAD' });
    await head.body.dump();
    const after = await waitForFile(env.ACCESS_LOG, '"HEAD /head HTTP/1.1"');
    expect(after).toMatch(new RegExp(`"GET /big\\?pad=x+ HTTP/1.1" 200 ${gzBytes} `));
    expect(after).toMatch(/"HEAD \/head HTTP\/1.1" 200 0 /);

    // logrotate: move the file, then SIGUSR1 as its postrotate does
    await rename(env.ACCESS_LOG, `${env.ACCESS_LOG}.1`);
    server.child.kill('SIGUSR1');
    await server.waitFor(`SIGUSR1: reopened ${env.ACCESS_LOG}`);
    const next = await request(`${base}/after-rotate`);
    await next.body.dump();
    const fresh = await waitForFile(env.ACCESS_LOG, '/after-rotate');
    expect(fresh.trim().split('\n')).toHaveLength(1);

    // a rotation that leaves no way to open the file again (its folder moved, a file in its
    // place): before, SIGUSR1 ended the process and every site with it
    const folder = join(dir, 'log');
    await rename(folder, `${folder}.old`);
    await writeFile(folder, 'in the way\n');
    server.child.kill('SIGUSR1');
    await server.waitFor(`SIGUSR1: cannot reopen ${env.ACCESS_LOG} (`);
    expect(server.stderr).toContain('still writing to the file it had open');
    const kept = await request(`${base}/kept-old-file`);
    expect(kept.statusCode).toBe(200);
    await kept.body.dump();
    await waitForFile(join(`${folder}.old`, 'access.log'), '/kept-old-file');
    // fixed, the next SIGUSR1 opens the new file
    await rm(folder);
    server.child.kill('SIGUSR1');
    // stdout's second "reopened" (the first was the rotation above)
    await server.waitFor(/SIGUSR1: reopened [^\n]*\n[\s\S]*SIGUSR1: reopened /);
    await (await request(`${base}/after-fix`)).body.dump();
    expect((await waitForFile(env.ACCESS_LOG, '/after-fix')).trim().split('\n')).toHaveLength(1);
    expect(server.stderr).not.toContain('Debugger listening');
    expect((await server.stop()).code).toBe(0);
  });

  it('stdout and stderr on a full disk (/dev/full): the server boots, serves, reopens and stops, its lines dropped', async () => {
    const env = {
      HTTP_PORT: String(await freePort()),
      FORMAT: 'combined',
      // the access log and the server's own lines all go where nothing can be written
      ACCESS_LOG: 'stderr',
      ADMIN_SOCKET: join(dir, 'full-std.sock'),
      FIXTURES,
    };
    const full = openSync('/dev/full', 'w');
    const child = spawn(process.execPath, [SERVER_MAIN, 'serve', '-c', join(FIXTURES, 'server', 'access-log.yaml')], {
      env: { ...process.env, ...env },
      stdio: ['ignore', full, full],
    });
    closeSync(full);
    try {
      // no "ready" line to read: its /ready listener is not configured, so its page answers
      await until(async () => {
        const res = await request(`http://127.0.0.1:${env.HTTP_PORT}/up`).catch(() => null);
        await res?.body.dump();
        return res?.statusCode === 200;
      }, 'the server to answer');
      child.kill('SIGUSR1');
      for (const path of ['/one', '/two']) {
        const res = await request(`http://127.0.0.1:${env.HTTP_PORT}${path}`);
        expect(res.statusCode).toBe(200);
        await res.body.dump();
      }
      expect(child.exitCode).toBeNull();
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await once(child, 'exit');
    expect(code).toBe(0);
  });

  it('a log file that cannot be written (a full disk) is said once; the server boots and serves on', async () => {
    const env = {
      HTTP_PORT: String(await freePort()),
      FORMAT: 'combined',
      // writes to /dev/full fail with ENOSPC, as on a full /var/log
      ACCESS_LOG: '/dev/full',
      ADMIN_SOCKET: join(dir, 'full.sock'),
      FIXTURES,
    };
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'access-log.yaml')], { env });
    await server.ready();
    for (const path of ['/one', '/two']) {
      const res = await request(`http://127.0.0.1:${env.HTTP_PORT}${path}`);
      expect(res.statusCode).toBe(200);
      await res.body.dump();
    }
    await server.waitFor('warmpool: cannot write to /dev/full (ENOSPC)');
    expect(server.stderr.split('cannot write to /dev/full')).toHaveLength(2);
    expect((await server.stop()).code).toBe(0);
  });
});

describe('access log: json, to stdout', () => {
  it('writes one JSON object per request with nginx names and the request id', async () => {
    const env = {
      HTTP_PORT: String(await freePort()),
      FORMAT: 'json',
      ACCESS_LOG: 'stdout',
      ADMIN_SOCKET: join(dir, 'json.sock'),
      FIXTURES,
    };
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'access-log.yaml')], { env });
    await server.ready();
    const res = await request(`http://127.0.0.1:${env.HTTP_PORT}/json?y=2`);
    const body = await res.body.text();
    const id = res.headers['x-request-id'] as string;
    await server.waitFor(`"request_id":"${id}"`);
    const line = server.stdout.split('\n').find((l) => l.includes(id))!;
    expect(JSON.parse(line)).toMatchObject({
      remote_addr: '127.0.0.1',
      request: 'GET /json?y=2 HTTP/1.1',
      status: 200,
      body_bytes_sent: Buffer.byteLength(body),
      request_id: id,
      site: 'default',
    });
    expect((await server.stop()).code).toBe(0);
  });
});

describe('access log: a proxied upstream that is down', () => {
  it('a request with a body gets its 502 line, not a 499 (undici destroying the body read as the client leaving)', async () => {
    const port = await freePort();
    const dead = await freePort(); // nothing listens there
    const file = join(dir, 'proxy-down.yaml');
    await writeFile(
      file,
      [
        'version: "3"',
        'http:',
        `  address: 127.0.0.1:${port}`,
        '  access_log: { format: json, output: stdout }',
        `admin: { socket: ${join(dir, 'proxy-down.sock')} }`,
        `proxy: [{ prefix: /, upstream: "http://127.0.0.1:${dead}" }]`,
        '',
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', file]);
    await server.ready();
    const res = await request(`http://127.0.0.1:${port}/api/orders`, {
      method: 'POST',
      body: 'item=1',
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.statusCode).toBe(502);
    const id = res.headers['x-request-id'] as string;
    await res.body.dump();
    await server.waitFor(`"request_id":"${id}"`);
    const line = JSON.parse(server.stdout.split('\n').find((l) => l.includes(`"request_id":"${id}"`))!);
    expect([line.request, line.status]).toEqual(['POST /api/orders HTTP/1.1', 502]);
    expect(line.body_bytes_sent).toBeGreaterThan(0);
    expect((await server.stop()).code).toBe(0);
  });
});

describe("http.access_logs (RoadRunner's key): requests whose client left have their line too", () => {
  it.each([
    { logs: 'mode: production', name: 'the server log line' },
    { logs: 'encoding: json', name: "RoadRunner's http access log" },
  ])('$name: a 499 for an HTTP/1.1 client that hung up (before: no line)', async ({ logs }) => {
    const port = await freePort();
    const file = join(dir, `rr-gone-${logs.split(':')[0]}.yaml`);
    await writeFile(
      file,
      [
        'version: "3"',
        `server: { command: "php ${FIXTURES}/php/marks-then-sleeps.php" }`,
        'http:',
        `  address: 127.0.0.1:${port}`,
        '  access_logs: true',
        '  pool: { num_workers: 1 }',
        `logs: { ${logs}, level: info }`,
        `admin: { socket: ${join(dir, `rr-gone-${logs.split(':')[0]}.sock`)} }`,
        '',
      ].join('\n'),
    );
    const server = startServer(['serve', '-c', file]);
    await server.ready();
    const mark = join(dir, `rr-gone-${logs.split(':')[0]}.mark`);
    const socket = netConnect(port, '127.0.0.1');
    socket.write(
      `POST /rr-gone HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(mark)}\r\n\r\n${mark}`,
    );
    await waitForFile(mark, 'got it');
    socket.destroy();
    await server.waitFor(/rr-gone.*499|499.*rr-gone/);
    const line = `${server.stdout}\n${server.stderr}`
      .split('\n')
      .find((l) => l.includes('/rr-gone') && l.includes('499'))!;
    expect(JSON.parse(line)).toMatchObject(
      logs.startsWith('encoding') ? { status: 499, URI: '/rr-gone' } : { status: 499, url: '/rr-gone' },
    );
    expect((await server.stop()).code).toBe(0);
  });
});

describe('access log: clients that leave before their answer', () => {
  it("logs each once as nginx's 499: an HTTP/1.1 client that hangs up, an HTTP/2 stream reset", async () => {
    const pair = await selfSignedPair(dir, 'gone', ['localhost']);
    const env = {
      HTTP_PORT: String(await freePort()),
      HTTPS_PORT: String(await freePort()),
      CERT: pair.cert,
      KEY: pair.key,
      ADMIN_SOCKET: join(dir, 'gone.sock'),
      FIXTURES,
    };
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'access-log-gone.yaml')], { env });
    await server.ready();

    // HTTP/1.1: the request reaches PHP (it makes the mark file), then the client hangs up
    const mark1 = join(dir, 'gone-h1.mark');
    const socket = netConnect(Number(env.HTTP_PORT), '127.0.0.1');
    socket.write(
      `POST /h1-gone HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(mark1)}\r\n\r\n${mark1}`,
    );
    await waitForFile(mark1, 'got it');
    socket.destroy();
    await server.waitFor('"request":"POST /h1-gone HTTP/1.1"');

    // HTTP/2: the stream is reset once PHP has it; the connection stays
    const mark2 = join(dir, 'gone-h2.mark');
    const session = http2Connect(`https://localhost:${env.HTTPS_PORT}`, { rejectUnauthorized: false });
    const stream = session.request({ ':method': 'POST', ':path': '/h2-gone', 'content-type': 'text/plain' });
    stream.on('error', () => {});
    stream.end(mark2);
    await waitForFile(mark2, 'got it');
    stream.close(0x8); // CANCEL
    await server.waitFor('"request":"POST /h2-gone HTTP/2.0"');
    session.close();

    const lines = server.stdout
      .split('\n')
      .filter((l) => l.includes('-gone HTTP/'))
      .map((l) => JSON.parse(l) as { request: string; status: number });
    expect(lines.map((l) => [l.request, l.status])).toEqual([
      ['POST /h1-gone HTTP/1.1', 499],
      ['POST /h2-gone HTTP/2.0', 499],
    ]);
    expect((await server.stop()).code).toBe(0);
  });
});

describe('access log: the client behind a proxy, and a download cut halfway', () => {
  it("logs the forwarded client as remote_addr (nginx's realip), the proxy as realip_remote_addr; a cut download as its 200 and the bytes sent", async () => {
    const folder = join(dir, 'client-static');
    await mkdir(folder);
    const size = 32 * 1024 * 1024;
    await writeFile(join(folder, 'video.bin'), Buffer.alloc(size, 1));
    const env = {
      HTTP_PORT: String(await freePort()),
      STATIC: folder,
      ADMIN_SOCKET: join(dir, 'client.sock'),
      FIXTURES,
    };
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'access-log-client.yaml')], { env });
    await server.ready();
    const base = `http://127.0.0.1:${env.HTTP_PORT}`;
    // before: the proxy's address, so fail2ban would ban the balancer
    const proxied = await request(`${base}/page`, { headers: { 'x-forwarded-for': '203.0.113.9' } });
    await proxied.body.dump();
    const id = proxied.headers['x-request-id'] as string;
    await server.waitFor(`"request_id":"${id}"`);
    const line = JSON.parse(server.stdout.split('\n').find((l) => l.includes(id))!);
    expect([line.remote_addr, line.realip_remote_addr]).toEqual(['203.0.113.9', '127.0.0.1']);

    // a download stopped after its head and some of its body: nginx logs 200 and the bytes sent
    const socket = netConnect(Number(env.HTTP_PORT), '127.0.0.1');
    socket.write('GET /video.bin HTTP/1.1\r\nHost: localhost\r\n\r\n');
    let received = 0;
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > 1024 * 1024) {
          socket.destroy();
          resolve();
        }
      });
      socket.on('close', () => resolve());
    });
    expect(received).toBeGreaterThan(1024 * 1024);
    await server.waitFor('"request":"GET /video.bin HTTP/1.1"');
    const cut = JSON.parse(server.stdout.split('\n').find((l) => l.includes('GET /video.bin'))!);
    expect(cut.status).toBe(200);
    expect(cut.body_bytes_sent).toBeGreaterThan(0);
    expect(cut.body_bytes_sent).toBeLessThan(size);
    expect((await server.stop()).code).toBe(0);
  });
});

/** The server of access-log-client.yaml (JSON lines on stdout, 127.0.0.1 trusted) with `overrides` (-o KEY=VALUE). */
async function startClientLogServer(name: string, overrides: (port: number) => string[]) {
  const folder = join(dir, `${name}-static`);
  await mkdir(folder, { recursive: true });
  const env = {
    HTTP_PORT: String(await freePort()),
    STATIC: folder,
    ADMIN_SOCKET: join(dir, `${name}.sock`),
    FIXTURES,
  };
  const options = overrides(Number(env.HTTP_PORT)).flatMap((o) => ['-o', o]);
  const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'access-log-client.yaml'), ...options], { env });
  await server.ready();
  return { server, port: Number(env.HTTP_PORT), env };
}

/** Whether this machine has IPv6 (a container may have none): the dual-stack test needs `[::]`. */
async function canListenDualStack(): Promise<boolean> {
  const server = createNetServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(0, '::', () => server.close(() => resolve(true)));
  });
}

const dualStack = await canListenDualStack();

describe('access log: a dual-stack listener', () => {
  it.skipIf(!dualStack)(
    "an IPv4 client of [::]:PORT is 127.0.0.1 in every line: remote_addr, realip_remote_addr, a refused head, RoadRunner's remote_address",
    async () => {
      const { server, env } = await startClientLogServer('dual', (port) => [
        `http.address=[::]:${port}`,
        'http.access_logs=true',
        'logs.encoding=json',
      ]);
      // an IPv4 client: the socket says ::ffff:127.0.0.1 (before, the JSON line's realip_remote_addr did)
      const res = await request(`http://127.0.0.1:${env.HTTP_PORT}/dual`);
      await res.body.dump();
      const id = res.headers['x-request-id'] as string;
      await server.waitFor(`"request_id":"${id}"`);
      const line = JSON.parse(server.stdout.split('\n').find((l) => l.includes(`"request_id":"${id}"`))!);
      expect([line.remote_addr, line.realip_remote_addr]).toEqual(['127.0.0.1', '127.0.0.1']);
      // RoadRunner's http log: Go's RemoteAddr, host:port
      await server.waitFor('"URI":"/dual"');
      const rrLine = (uri: string) =>
        JSON.parse(`${server.stdout}\n${server.stderr}`.split('\n').find((l) => l.includes(`"URI":"${uri}"`))!);
      const rr = rrLine('/dual');
      expect(rr.remote_address).toMatch(/^127\.0\.0\.1:\d+$/);
      // a head refused before any request existed (before: ::ffff:127.0.0.1, what fail2ban keys on)
      const socket = netConnect(Number(env.HTTP_PORT), '127.0.0.1');
      socket.write('GARBAGE\r\n\r\n');
      socket.resume();
      await once(socket, 'close');
      await server.waitFor('"request":"GARBAGE"');
      const refused = JSON.parse(server.stdout.split('\n').find((l) => l.includes('"request":"GARBAGE"'))!);
      expect([refused.remote_addr, refused.realip_remote_addr]).toEqual(['127.0.0.1', '127.0.0.1']);
      // an IPv6 client as Go prints it: [::1]:port
      const v6 = await request(`http://[::1]:${env.HTTP_PORT}/dual6`);
      await v6.body.dump();
      await server.waitFor('"URI":"/dual6"');
      const rr6 = rrLine('/dual6');
      expect(rr6.remote_address).toMatch(/^\[::1\]:\d+$/);
      expect((await server.stop()).code).toBe(0);
    },
  );
});

describe('access log: request heads refused before any route', () => {
  it('logs each with its status and what of its first line came, as nginx logs its 400s: 431, 400 (garbage, %zz), 408', async () => {
    const { server, env } = await startClientLogServer('refused', () => [
      'http.max_header_size=4096',
      'http.headers_timeout=1s',
    ]);
    /** What the server answers to `bytes`, once it closes the connection. */
    const raw = (bytes: string) =>
      new Promise<string>((resolve) => {
        const socket = netConnect(Number(env.HTTP_PORT), '127.0.0.1');
        let answer = '';
        socket.setEncoding('latin1');
        socket.on('data', (chunk: string) => (answer += chunk));
        socket.on('close', () => resolve(answer));
        socket.on('error', () => resolve(answer));
        socket.write(bytes);
      });
    // before: none of these had a line (nor a metric, for 431 and 408)
    expect(await raw(`GET /too-big HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(6000)}\r\n\r\n`)).toMatch(
      /^HTTP\/1.1 431 /,
    );
    expect(await raw('GARBAGE\r\n\r\n')).toMatch(/^HTTP\/1.1 400 /);
    expect(await raw('GET /p/%zz HTTP/1.1\r\nHost: localhost\r\n\r\n')).toMatch(/^HTTP\/1.1 400 /);
    // a head never finished: the server answers 408 once headers_timeout is over
    expect(await raw('GET /slow-head HTTP/1.1\r\nHost: localhost\r\n')).toMatch(/^HTTP\/1.1 408 /);
    await server.waitFor('"status":408');
    const lines = server.stdout
      .split('\n')
      .filter((l) => l.startsWith('{"time"'))
      .map((l) => JSON.parse(l) as { request: string; status: number; remote_addr: string });
    expect(lines.map((l) => [l.request, l.status])).toEqual([
      ['GET /too-big HTTP/1.1', 431],
      ['GARBAGE', 400],
      ['GET /p/%zz HTTP/1.1', 400],
      // Node's timeout keeps none of the head it had: nginx logs what came
      ['-', 408],
    ]);
    expect(lines.every((l) => l.remote_addr === '127.0.0.1')).toBe(true);
    expect((await server.stop()).code).toBe(0);
  });
});

describe('access log: each site its own (sites[].http.access_log)', () => {
  it("writes a site's lines to its own file only, the rest to the top level's; SIGUSR1 reopens them all", async () => {
    const logDir = join(dir, 'sites');
    await mkdir(logDir);
    const env = {
      HTTP_PORT: String(await freePort()),
      LOG_DIR: logDir,
      ADMIN_SOCKET: join(dir, 'sites.sock'),
      FIXTURES,
    };
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'access-log-sites.yaml')], { env });
    await server.ready();
    const [top, a, c] = [join(logDir, 'access.log'), join(logDir, 'a', 'access.log'), join(logDir, 'c.log')];
    expect(server.stdout).toContain(
      `access log: combined → ${top}; site a.test: json → ${a}; site c.test: combined → ${c}`,
    );
    const ids: Record<string, string> = {};
    for (const [host, path] of [
      ['a.test', '/from-a'],
      ['b.test', '/from-b'],
      ['c.test', '/style.css'],
      ['other.test', '/from-default'],
    ] as const) {
      const res = await request(`http://127.0.0.1:${env.HTTP_PORT}${path}`, { headers: { host } });
      await res.body.dump();
      ids[host] = res.headers['x-request-id'] as string;
    }
    const aText = await waitForFile(a, ids['a.test']!);
    const topText = await waitForFile(top, ids['other.test']!);
    const cText = await waitForFile(c, ids['c.test']!);
    await waitForFile(top, ids['b.test']!);
    expect(
      aText
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { uri: string; site: string }).uri),
    ).toEqual(['/from-a']);
    expect(
      topText
        .trim()
        .split('\n')
        .map((line) => line.split('"')[1]),
    ).toEqual(['GET /from-b HTTP/1.1', 'GET /from-default HTTP/1.1']);
    expect(
      cText
        .trim()
        .split('\n')
        .map((line) => line.split('"')[1]),
    ).toEqual(['GET /style.css HTTP/1.1']);

    // logrotate moved every file away: SIGUSR1 reopens each, and each site keeps its own
    for (const file of [top, a, c]) await rename(file, `${file}.1`);
    server.child.kill('SIGUSR1');
    await server.waitFor(`SIGUSR1: reopened ${top}, ${a}, ${c}`);
    const res = await request(`http://127.0.0.1:${env.HTTP_PORT}/again`, { headers: { host: 'a.test' } });
    await res.body.dump();
    const again = await waitForFile(a, res.headers['x-request-id'] as string);
    expect(again.trim().split('\n')).toHaveLength(1);
    await server.stop();
  });
});
