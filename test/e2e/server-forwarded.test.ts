import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { FIXTURES, startServer, stopAllServers } from '../helpers/warmpool-server.js';

// Forwarded headers only from trusted hops, through a REAL nginx in front of `warmpool serve`
// (trusted_subnets: [127.0.0.1/32]). The client connects to nginx from 127.0.0.3, an untrusted
// address; nginx connects to warmpool from 127.0.0.1. A PHP fixture echoes what PHP was told:
// REMOTE_ADDR, scheme, host. Whatever forwarding headers the client adds, PHP must see 127.0.0.3,
// the Host it sent, and the scheme nginx vouches for.
const NGINX = ['/usr/sbin/nginx', '/usr/local/sbin/nginx'].find((path) => existsSync(path)) ?? 'nginx';
const CLIENT_ADDR = '127.0.0.3';

let dir: string;
let nginx: ChildProcess;
/** nginx listeners by what they do with the forwarding headers */
const ports: Record<'append' | 'overwrite' | 'forwarded' | 'realIp', number> = {
  append: 0,
  overwrite: 0,
  forwarded: 0,
  realIp: 0,
};

/** A `warmpool serve` behind nginx, trusting nginx's address and reading `header`. */
async function serveBehindNginx(name: string, header: string | null): Promise<number> {
  const port = await freePort();
  const config = join(dir, `${name}.yaml`);
  await writeFile(
    config,
    [
      'version: "3"',
      'server:',
      `  command: php ${join(FIXTURES, 'php', 'client-info.php')}`,
      'http:',
      `  address: 127.0.0.1:${port}`,
      '  trusted_subnets: [127.0.0.1/32]',
      ...(header === null ? [] : [`  real_ip_header: ${header}`]),
      '  pool:',
      '    num_workers: 1',
      'admin:',
      `  socket: ${join(dir, `${name}.sock`)}`,
      '',
    ].join('\n'),
  );
  const server = startServer(['serve', '-c', config]);
  await server.ready();
  return port;
}

function server(listen: number, upstream: number, headers: string[]): string {
  return [
    '  server {',
    `    listen 127.0.0.1:${listen};`,
    '    location / {',
    `      proxy_pass http://127.0.0.1:${upstream};`,
    ...headers.map((h) => `      proxy_set_header ${h};`),
    '    }',
    '  }',
  ].join('\n');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-forwarded-'));
  const xff = await serveBehindNginx('xff', null); // the default: X-Forwarded-For
  const fwd = await serveBehindNginx('forwarded', 'Forwarded');
  const realIp = await serveBehindNginx('real-ip', 'X-Real-IP');
  for (const key of Object.keys(ports) as (keyof typeof ports)[]) ports[key] = await freePort();
  const conf = join(dir, 'nginx.conf');
  await writeFile(
    conf,
    [
      'daemon off;',
      'master_process off;',
      `pid ${join(dir, 'nginx.pid')};`,
      `error_log ${join(dir, 'nginx-error.log')} info;`,
      'events { worker_connections 64; }',
      'http {',
      '  access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${join(dir, t)};`),
      // the usual snippet: Host, X-Real-IP, X-Forwarded-For APPENDED, X-Forwarded-Proto (a TLS
      // terminator's "https", fixed here); nothing sets X-Forwarded-Host or Forwarded
      server(ports.append, xff, [
        'Host $host',
        'X-Real-IP $remote_addr',
        'X-Forwarded-For $proxy_add_x_forwarded_for',
        'X-Forwarded-Proto https',
      ]),
      // X-Forwarded-For OVERWRITTEN with the peer
      server(ports.overwrite, xff, ['Host $host', 'X-Forwarded-For $remote_addr', 'X-Forwarded-Proto $scheme']),
      // real_ip_header: Forwarded; nginx writes the whole element
      server(ports.forwarded, fwd, ['Host $host', 'Forwarded "for=$remote_addr;proto=https;host=$host"']),
      // real_ip_header: X-Real-IP
      server(ports.realIp, realIp, ['Host $host', 'X-Real-IP $remote_addr']),
      '}',
      '',
    ].join('\n'),
  );
  nginx = spawn(NGINX, ['-e', join(dir, 'nginx-error.log'), '-p', dir, '-c', conf], { stdio: 'ignore' });
  const exited = once(nginx, 'exit').then(async ([code]) => {
    throw new Error(`nginx exited (${code}): ${await readFile(join(dir, 'nginx-error.log'), 'utf8').catch(() => '')}`);
  });
  // nginx prints nothing when it is up: its listeners accepting a connection is the event
  await Promise.race([exited, Promise.all(Object.values(ports).map(accepting))]);
});

afterAll(async () => {
  if (nginx !== undefined && nginx.exitCode === null) {
    nginx.kill('SIGQUIT');
    await once(nginx, 'exit');
  }
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Resolves once the port accepts a connection (retrying while it refuses: nginx is starting). */
async function accepting(port: number): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nothing accepts on ${port}`);
}

interface Seen {
  remoteAddr: string;
  scheme: string;
  host: string;
}

/** GET / through nginx from 127.0.0.3 with extra header lines, byte for byte. */
function viaNginx(port: number, extra: string[]): Promise<Seen> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: CLIENT_ADDR }, () => {
      socket.write(['GET /who HTTP/1.1', 'Host: real.example', ...extra, 'Connection: close', '', ''].join('\r\n'));
    });
    let text = '';
    socket.on('data', (chunk: Buffer) => {
      text += chunk;
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const body = text.slice(text.indexOf('\r\n\r\n') + 4);
      if (!text.startsWith('HTTP/1.1 200')) reject(new Error(`not 200: ${text.slice(0, 200)}`));
      else resolve(JSON.parse(body) as Seen);
    });
  });
}

// Every forwarding header a client can send to impersonate another address, host or scheme.
const SPOOFS: [string, string[]][] = [
  ['X-Forwarded-For', ['X-Forwarded-For: 6.6.6.6']],
  ['X-Forwarded-For with a trusted-looking hop', ['X-Forwarded-For: 6.6.6.6, 127.0.0.1']],
  ['X-Forwarded-For: unknown', ['X-Forwarded-For: unknown']],
  ['X-Real-IP', ['X-Real-IP: 6.6.6.6']],
  ['Forwarded for=', ['Forwarded: for=6.6.6.6']],
  ['Forwarded for= quoted IPv6', ['Forwarded: for="[2001:db8::66]:4711"']],
  ['Forwarded host=', ['Forwarded: host=evil.example']],
  ['Forwarded proto=http', ['Forwarded: proto=http']],
  ['Forwarded proto=https', ['Forwarded: proto=https']],
  ['Forwarded for=;host=;proto=', ['Forwarded: for=6.6.6.6;host=evil.example;proto=http']],
  ['X-Forwarded-Host', ['X-Forwarded-Host: evil.example']],
  ['X-Forwarded-Proto: http', ['X-Forwarded-Proto: http']],
  ['X-Forwarded-Proto: https', ['X-Forwarded-Proto: https']],
  ['True-Client-IP and CF-Connecting-IP', ['True-Client-IP: 6.6.6.6', 'CF-Connecting-IP: 6.6.6.6']],
  [
    'all of them at once',
    [
      'X-Forwarded-For: 6.6.6.6',
      'X-Real-IP: 6.6.6.6',
      'Forwarded: for=6.6.6.6;host=evil.example;proto=http',
      'X-Forwarded-Host: evil.example',
      'X-Forwarded-Proto: http',
    ],
  ],
];

describe('forwarded headers through a real nginx in front of warmpool serve', () => {
  it('nginx appending X-Forwarded-For (the usual snippet): without spoofing, PHP sees the client and the scheme nginx vouches for', async () => {
    expect(await viaNginx(ports.append, [])).toEqual({
      site: 'default',
      remoteAddr: CLIENT_ADDR,
      scheme: 'https',
      host: 'real.example',
      path: '/who',
    });
  });

  it.each(SPOOFS)('nginx appending X-Forwarded-For: a client-sent %s changes nothing', async (_name, headers) => {
    expect(await viaNginx(ports.append, headers)).toMatchObject({
      remoteAddr: CLIENT_ADDR,
      scheme: 'https',
      host: 'real.example',
    });
  });

  it.each(SPOOFS)('nginx overwriting X-Forwarded-For: a client-sent %s changes nothing', async (_name, headers) => {
    expect(await viaNginx(ports.overwrite, headers)).toMatchObject({
      remoteAddr: CLIENT_ADDR,
      scheme: 'http',
      host: 'real.example',
    });
  });

  it.each(SPOOFS)(
    'real_ip_header: Forwarded (nginx writes the element): a client-sent %s changes nothing',
    async (_name, headers) => {
      expect(await viaNginx(ports.forwarded, headers)).toMatchObject({
        remoteAddr: CLIENT_ADDR,
        scheme: 'https',
        host: 'real.example',
      });
    },
  );

  it.each(SPOOFS)('real_ip_header: X-Real-IP: a client-sent %s changes nothing', async (_name, headers) => {
    expect(await viaNginx(ports.realIp, headers)).toMatchObject({
      remoteAddr: CLIENT_ADDR,
      scheme: 'http',
      host: 'real.example',
    });
  });
});
