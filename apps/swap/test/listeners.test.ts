// The public sockets: addresses parsed once, bound without listening (a child's listen({ fd }) makes
// them listen), a taken address refused at bind time; and the line-based reader of warmpool.yaml.
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ListenFailedError, UsageError } from '../src/errors.js';
import { addressesFromYaml, bindSocket, parseAddress } from '../src/listeners.js';

const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const close of cleanup.splice(0)) close();
});

describe('parseAddress', () => {
  it.each([
    ['127.0.0.1:8080', { host: '127.0.0.1', port: 8080 }],
    [':8080', { host: '0.0.0.0', port: 8080 }],
    ['[::1]:8443', { host: '::1', port: 8443 }],
    ['localhost:0', { host: 'localhost', port: 0 }],
  ])('%s', (address, expected) => {
    expect(parseAddress(address)).toEqual(expected);
  });

  it.each([
    ['8080', 'listen address "8080" needs host:port, e.g. 127.0.0.1:8080'],
    ['127.0.0.1:http', 'listen address "127.0.0.1:http": bad port'],
    ['127.0.0.1:65536', 'listen address "127.0.0.1:65536": bad port'],
  ])('%s is a UsageError', (address, message) => {
    expect(() => parseAddress(address)).toThrow(new UsageError(message));
  });
});

describe('bindSocket', () => {
  it('binds without listening: nothing accepts until someone listens on the fd', async () => {
    const socket = bindSocket('http', '127.0.0.1:0');
    cleanup.push(() => socket.close());
    expect(socket).toMatchObject({ name: 'http', address: '127.0.0.1:0', host: '127.0.0.1' });
    expect(socket.port).toBeGreaterThan(0);
    const refused = connect(socket.port, '127.0.0.1');
    const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
    expect(error.code).toBe('ECONNREFUSED');

    // a server (here in this process, as a child would) listens on the fd and accepts on the port
    const server = createServer((c) => c.end('hello'));
    cleanup.push(() => server.close());
    server.listen({ fd: socket.fd });
    await once(server, 'listening');
    const client = connect(socket.port, '127.0.0.1');
    let text = '';
    for await (const chunk of client) text += chunk;
    expect(text).toBe('hello');
  });

  it('an address in use is ListenFailedError (EADDRINUSE) at once, not a random port later', async () => {
    const holder = createServer().listen(0, '127.0.0.1');
    cleanup.push(() => holder.close());
    await once(holder, 'listening');
    const address = `127.0.0.1:${(holder.address() as { port: number }).port}`;
    expect(() => bindSocket('https', address)).toThrow(new ListenFailedError('https', address, 'EADDRINUSE'));
  });
});

describe('addressesFromYaml', () => {
  let dir: string;
  const yaml = (text: string): string => {
    dir = mkdtempSync(join(tmpdir(), 'wp-swap-yaml-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'warmpool.yaml');
    writeFileSync(file, text);
    return file;
  };

  it('reads http, http.ssl, status and metrics addresses, comments and ${VAR:-default} included', () => {
    const file = yaml(
      [
        '# warmpool.yaml',
        'server:',
        '  command: php worker.php',
        'http:',
        '  address: "127.0.0.1:${HTTP_PORT:-8080}" # public',
        '  pool:',
        '    num_workers: 2',
        '  ssl:',
        "    address: '0.0.0.0:8443'",
        'status:',
        '  address: 127.0.0.1:${STATUS_PORT}',
        'metrics:',
        '  address: 127.0.0.1:2112',
        '',
      ].join('\n'),
    );
    expect(Object.fromEntries(addressesFromYaml(file, { STATUS_PORT: '2114' }))).toEqual({
      http: '127.0.0.1:8080',
      https: '0.0.0.0:8443',
      status: '127.0.0.1:2114',
      metrics: '127.0.0.1:2112',
    });
  });

  it('reads one-line flow maps too, as the READMEs write them', () => {
    const file = yaml(
      [
        'http:',
        '  address: 127.0.0.1:8080',
        '  ssl: { address: "127.0.0.1:${TLS_PORT:-8443}", cert: a.pem, key: b.pem }',
        'status: { address: 127.0.0.1:32542 }',
        "metrics: { enabled: true, address: '127.0.0.1:2112' }",
        'rpc: { listen: tcp://127.0.0.1:6001, address: 127.0.0.1:9 }',
        '',
      ].join('\n'),
    );
    expect(Object.fromEntries(addressesFromYaml(file, {}))).toEqual({
      http: '127.0.0.1:8080',
      https: '127.0.0.1:8443',
      status: '127.0.0.1:32542',
      metrics: '127.0.0.1:2112',
    });
    expect(Object.fromEntries(addressesFromYaml(yaml('http: { address: ":8080" }\n'), {}))).toEqual({ http: ':8080' });
  });

  it('ignores addresses that belong to other sections', () => {
    const file = yaml('rpc:\n  address: 127.0.0.1:6001\nhttp:\n  address: 127.0.0.1:8080\n');
    expect(Object.fromEntries(addressesFromYaml(file, {}))).toEqual({ http: '127.0.0.1:8080' });
  });
});
