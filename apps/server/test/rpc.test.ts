import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRpcListen } from '@warmpool/config';
import { createPool, SILENT_LOGGER, type Pool } from '@warmpool/pool';
import { FrameDecoder, type Frame } from '@warmpool/pool/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { adminRequest } from '../src/admin/client.js';
import { createPoolHandlers } from '../src/admin/server.js';
import { FLAG_CODEC_JSON, FLAG_CODEC_RAW, FLAG_ERROR, encodeRpcFrame, readRpcCall } from '../src/rpc/protocol.js';
import { startRpcServer, type RpcServer } from '../src/rpc/server.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/php/${name}`, import.meta.url));

let dir: string;
let pool: Pool;
let server: RpcServer;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-rpc-'));
  pool = createPool({ command: ['php', fixture('echo.php')], num_workers: 2, logger: SILENT_LOGGER });
  await pool.start();
  server = await startRpcServer(
    parseRpcListen('tcp://127.0.0.1:0'),
    createPoolHandlers(() => new Map([['default', pool]])),
    SILENT_LOGGER,
  );
});
afterEach(async () => {
  await server.close();
  await pool.close();
  await rm(dir, { recursive: true, force: true });
});

/** A raw goridge RPC connection: send frames, await the answer of a sequence number. */
class RawClient {
  readonly socket: Socket;
  readonly #answers = new Map<number, (frame: Frame) => void>();
  readonly #early = new Map<number, Frame>();
  readonly closed: Promise<unknown>;
  constructor(url: string) {
    const address = parseRpcListen(url);
    this.socket =
      address.kind === 'tcp' ? createConnection(address.port, address.host) : createConnection(address.path);
    const decoder = new FrameDecoder((frame) => {
      const seq = frame.options[0]!;
      const waiting = this.#answers.get(seq);
      if (waiting === undefined) this.#early.set(seq, frame);
      else waiting(frame);
    });
    this.socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    this.closed = once(this.socket, 'close');
  }
  send(seq: number, method: string, body: string, flags = FLAG_CODEC_JSON): void {
    this.socket.write(encodeRpcFrame(flags, seq, method, body));
  }
  answer(seq: number): Promise<{ flags: number; method: string; body: string }> {
    return new Promise((resolve) => {
      const done = (frame: Frame) => {
        const call = readRpcCall(frame);
        if (typeof call === 'string') throw new Error(call);
        resolve({ flags: frame.flags, method: call.method, body: call.body.toString() });
      };
      const early = this.#early.get(seq);
      if (early !== undefined) done(early);
      else this.#answers.set(seq, done);
    });
  }
  async call(seq: number, method: string, argument: unknown) {
    this.send(seq, method, JSON.stringify(argument));
    return this.answer(seq);
  }
  close() {
    this.socket.destroy();
  }
}

describe('goridge RPC frames', () => {
  it("are byte for byte what roadrunner-php/goridge's Frame::packFrame writes", () => {
    const php = `
      $method = 'resetter.Reset'; $payload = $method . json_encode('http');
      $header = pack('CCL', 1 << 4 | (2 + 3), 0x08, strlen($payload));
      $header .= pack('LCCL*', crc32($header), 0, 0, 7, strlen($method));
      echo bin2hex($header . $payload);`;
    const fromPhp = execFileSync('php', ['-r', php], { encoding: 'utf8' });
    expect(encodeRpcFrame(FLAG_CODEC_JSON, 7, 'resetter.Reset', '"http"').toString('hex')).toBe(fromPhp);
  });
});

describe('the RPC listener', () => {
  it("answers RoadRunner's resetter and informer calls for the HTTP workers", async () => {
    const client = new RawClient(server.url);
    expect(await client.call(1, 'resetter.List', true)).toEqual({
      flags: FLAG_CODEC_JSON,
      method: 'resetter.List',
      body: '["http"]',
    });
    expect((await client.call(2, 'informer.List', true)).body).toBe('["http"]');
    const { workers } = JSON.parse((await client.call(3, 'informer.Workers', 'http')).body) as {
      workers: Record<string, unknown>[];
    };
    const before = (await pool.workers()).map((w) => w.pid).sort();
    expect(workers.map((w) => w.pid).sort()).toEqual(before);
    for (const worker of workers) {
      expect(worker).toEqual({
        pid: expect.any(Number),
        status: 1,
        numExecs: 0,
        created: expect.any(Number),
        memoryUsage: expect.any(Number),
        CPUPercent: expect.any(Number),
        command: '',
        statusStr: 'ready',
      });
      expect(worker.memoryUsage as number).toBeGreaterThan(1024 * 1024);
    }
    expect(JSON.parse((await client.call(4, 'informer.Workers', 'jobs')).body)).toEqual({ workers: null });
    // a reset replaces every worker before it answers true
    expect(await client.call(5, 'resetter.Reset', 'http')).toMatchObject({ flags: FLAG_CODEC_JSON, body: 'true' });
    const after = (await pool.workers()).map((w) => w.pid);
    expect(after.filter((pid) => before.includes(pid))).toEqual([]);
    client.close();
  });

  it('answers errors with the ERROR flag and the text, as net/rpc and the resetter do', async () => {
    const client = new RawClient(server.url);
    expect(await client.call(1, 'resetter.Reset', 'jobs')).toEqual({
      flags: FLAG_ERROR,
      method: 'resetter.Reset',
      body: 'no such plugin: jobs',
    });
    expect((await client.call(2, 'nope.Method', true)).body).toBe("rpc: can't find method nope.Method");
    client.send(3, 'resetter.List', 'gob bytes', 0x20);
    expect((await client.answer(3)).body).toMatch(/gob codec is not supported/);
    client.send(4, 'informer.List', '{not json');
    expect(await client.answer(4)).toMatchObject({ flags: FLAG_ERROR, body: expect.stringMatching(/not JSON/) });
    // the connection stays usable after each of them
    expect((await client.call(5, 'resetter.List', true)).body).toBe('["http"]');
    client.close();
  });

  it('answers concurrent calls on one connection by their sequence numbers, a raw body as text', async () => {
    const client = new RawClient(server.url);
    client.send(10, 'warmpool.Command', JSON.stringify({ cmd: 'reset' }));
    client.send(11, 'informer.List', 'true', FLAG_CODEC_RAW);
    const [reset, list] = await Promise.all([client.answer(10), client.answer(11)]);
    expect(list).toEqual({ flags: FLAG_CODEC_RAW, method: 'informer.List', body: '["http"]' });
    const answer = JSON.parse(reset.body) as { ok: boolean; data: { replaced: number }; progress: unknown[] };
    expect(answer.ok).toBe(true);
    expect(answer.data.replaced).toBe(2);
    expect(answer.progress).toEqual([
      { site: 'default', replaced: 1, total: 2 },
      { site: 'default', replaced: 2, total: 2 },
    ]);
    client.close();
  });

  it('closes a connection that does not speak goridge', async () => {
    const client = new RawClient(server.url);
    client.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await client.closed;
  });

  it('carries the admin commands: the CLI reaches it with an rpc.listen address', async () => {
    const progress: unknown[] = [];
    const result = await adminRequest(server.url, { cmd: 'reset', site: 'default' }, (p) => progress.push(p));
    expect(result).toEqual({ replaced: 2, sites: ['default'] });
    expect(progress).toHaveLength(2);
    await expect(adminRequest(server.url, { cmd: 'workers', site: 'shop' })).rejects.toMatchObject({
      code: 'WP_SERVER_UNKNOWN_SITE',
    });
    const closed = server.url.replace(/:\d+$/, ':1');
    await expect(adminRequest(closed, { cmd: 'ping' })).rejects.toMatchObject({ code: 'WP_SERVER_ADMIN_UNREACHABLE' });
  });

  it('listens on a unix socket made 0600, removed again on close', async () => {
    const path = join(dir, 'rpc.sock');
    const unix = await startRpcServer(
      parseRpcListen(`unix://${path}`),
      createPoolHandlers(() => new Map([['default', pool]])),
      SILENT_LOGGER,
    );
    expect(unix.url).toBe(`unix://${path}`);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await adminRequest(unix.url, { cmd: 'ping' })).toMatchObject({ sites: ['default'] });
    await unix.close();
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});
