// One FastCGI connection against a real `php-cgi -b <socket>`: keep-alive, streamed bodies both
// ways with backpressure, STDERR lines, abort, the read timeout, a dying PHP process, connect errors.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FastCgiAbortedError,
  FastCgiConnectFailedError,
  FastCgiConnectionClosedError,
  FastCgiParamTooLargeError,
  FastCgiReadTimeoutError,
} from '../../src/errors.js';
import { CgiResponseReader, readCgiResponse } from '../../src/fastcgi/cgi-response.js';
import { connectFastCgi, getFastCgiValues } from '../../src/fastcgi/connect.js';
import type { FastCgiConnection } from '../../src/fastcgi/connection.js';
import { RecordDecoder } from '../../src/fastcgi/decoder.js';
import {
  encodeAbortRequest,
  encodeBeginRequest,
  encodeParams,
  encodeRecord,
  RecordType,
} from '../../src/fastcgi/records.js';
import { eventually } from '../php-fixtures.js';
import { type PhpServer, scriptParams, startPhpCgi } from './php-servers.js';

let php: PhpServer;

beforeAll(async () => {
  php = await startPhpCgi({ children: 2 });
});

afterAll(async () => {
  await php?.stop();
});

const closed = (connection: FastCgiConnection) =>
  new Promise<Error | null>((resolve) => connection.once('close', resolve));

async function get(connection: FastCgiConnection, script: string, query = '') {
  const call = connection.request({ params: scriptParams(script, { query }) });
  const response = await readCgiResponse(call.stdout);
  const body = await text(response.body);
  return { ...response, body, end: await call.done };
}

describe('FastCGI connection to php-cgi', () => {
  it('runs a script, then the next ones on the same connection (FCGI_KEEP_CONN)', async () => {
    const connection = await connectFastCgi(php.address);
    const bodies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await get(connection, 'hello.php');
      expect(response.status).toBe(200);
      expect(response.headers['content-type']).toEqual(['text/plain;charset=UTF-8']);
      expect(response.end).toEqual({ appStatus: 0, protocolStatus: 0 });
      expect(connection.state).toBe('idle');
      bodies.push(response.body);
    }
    expect(connection.requests).toBe(3);
    // one php-cgi child served the kept connection
    expect(new Set(bodies).size).toBe(1);
    expect(bodies[0]).toMatch(/^hello from cgi-fcgi pid \d+$/);
    connection.close();
  });

  it('streams a large response, pausing the socket while the reader is behind', async () => {
    const connection = await connectFastCgi(php.address);
    const call = connection.request({ params: scriptParams('big-response.php', { query: 'mb=8' }) });
    const response = await readCgiResponse(call.stdout);
    // Nobody reads the body: STDOUT fills to its high-water mark and the socket stops reading.
    await eventually(() => !connection.reading, 'the socket to pause for the slow reader');
    expect(response.body.readableLength).toBeGreaterThanOrEqual(response.body.readableHighWaterMark);
    expect(connection.bytesRead).toBeLessThan(2 * 1024 * 1024);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of response.body) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    expect(bytes).toBe(Number(response.headers['x-body-length']![0]));
    expect(bytes).toBe(8 * 1024 * 1024);
    expect(hash.digest('hex')).toBe(response.headers['x-body-sha256']![0]);
    await call.done;
    expect(connection.state).toBe('idle');
    connection.close();
  });

  it('a response over bufferBytes (CgiResponseReader) streams from there, with the same backpressure', async () => {
    const connection = await connectFastCgi(php.address);
    const reader = new CgiResponseReader({ bufferBytes: 1024 * 1024 });
    const run = connection.start({ params: scriptParams('big-response.php', { query: 'mb=8' }) }, reader);
    const response = await reader.response;
    expect(response.body).toBeInstanceOf(Readable);
    const body = response.body as Readable;
    // the first MiB was kept, then the rest streams to a reader that reads nothing yet: the socket stops
    await eventually(() => !connection.reading, 'the socket to pause for the slow reader');
    expect(connection.bytesRead).toBeLessThan(3 * 1024 * 1024);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of body) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    expect(bytes).toBe(8 * 1024 * 1024);
    expect(hash.digest('hex')).toBe(response.headers['x-body-sha256']![0]);
    await run.done;
    // and a small one on the same connection is whole
    const small = new CgiResponseReader({ bufferBytes: 1024 * 1024 });
    connection.start({ params: scriptParams('hello.php') }, small);
    expect(String((await small.response).body)).toMatch(/^hello from cgi-fcgi pid \d+$/);
    connection.close();
  });

  it('streams a large request body from a generator, pulled only as fast as php reads it', async () => {
    const connection = await connectFastCgi(php.address);
    const chunk = randomBytes(64 * 1024);
    const chunks = 96; // 6 MiB
    const expected = createHash('sha256');
    for (let i = 0; i < chunks; i++) expected.update(chunk);
    let maxQueued = 0;
    async function* body() {
      for (let i = 0; i < chunks; i++) {
        maxQueued = Math.max(maxQueued, connection.bufferedBytes);
        yield chunk;
      }
    }
    const call = connection.request({
      params: scriptParams('post-sha256.php', {
        method: 'POST',
        contentLength: chunk.length * chunks,
        contentType: 'application/octet-stream',
      }),
      stdin: body(),
    });
    const response = await readCgiResponse(call.stdout);
    expect(JSON.parse(await text(response.body))).toEqual({
      sha256: expected.digest('hex'),
      bytes: chunk.length * chunks,
      method: 'POST',
    });
    // never more than a couple of chunks queued on the socket: the body was not buffered whole
    expect(maxQueued).toBeLessThan(256 * 1024);
    await call.done;
    expect(connection.state).toBe('idle');
    connection.close();
  });

  it('takes a Readable, a Buffer or a list of Buffers as the body', async () => {
    const connection = await connectFastCgi(php.address);
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    const sha = createHash('sha256').update(payload).digest('hex');
    const params = scriptParams('post-sha256.php', { method: 'PUT', contentLength: payload.length });

    const stream = new PassThrough({ highWaterMark: 64 * 1024 });
    const call = connection.request({ params, stdin: stream });
    // the test writes with the stream's own backpressure
    for (let offset = 0; offset < payload.length; offset += 100_000) {
      if (!stream.write(payload.subarray(offset, offset + 100_000))) {
        await new Promise((resolve) => stream.once('drain', resolve));
      }
    }
    stream.end();
    expect(JSON.parse(await text((await readCgiResponse(call.stdout)).body)).sha256).toBe(sha);
    await call.done;

    for (const stdin of [payload, [payload.subarray(0, 1000), payload.subarray(1000)]]) {
      const next = connection.request({ params, stdin });
      expect(JSON.parse(await text((await readCgiResponse(next.stdout)).body)).sha256).toBe(sha);
      await next.done;
    }
    expect(connection.requests).toBe(3);
    connection.close();
  });

  it('stays reusable when the script answers without reading the body', async () => {
    const connection = await connectFastCgi(php.address);
    const body = Buffer.alloc(512 * 1024, 1);
    const call = connection.request({
      params: scriptParams('ignores-body.php', { method: 'POST', contentLength: body.length }),
      stdin: body,
    });
    expect(await text((await readCgiResponse(call.stdout)).body)).toBe('did not read the body');
    await call.done;
    expect(connection.state).toBe('idle');
    expect((await get(connection, 'hello.php')).status).toBe(200);
    connection.close();
  });

  it('passes several Set-Cookie lines, a script 404, and client and local redirects', async () => {
    const connection = await connectFastCgi(php.address);
    const cookies = await get(connection, 'cookies.php');
    expect(cookies.headers['set-cookie']).toEqual([
      'first=one',
      'second=two; path=/app; HttpOnly',
      'third=three; SameSite=Strict',
    ]);
    const missing = await get(connection, 'not-found.php');
    expect([missing.status, missing.statusText, missing.body]).toEqual([404, 'Not Found', 'no such page']);
    const client = await get(connection, 'redirect.php', 'to=/elsewhere');
    expect([client.status, client.headers.location, client.localRedirect]).toEqual([302, ['/elsewhere'], null]);
    const local = await get(connection, 'redirect.php', 'to=/login&local=1');
    expect([local.status, local.localRedirect]).toEqual([302, '/login']);
    const absolute = await get(connection, 'redirect.php', `to=${encodeURIComponent('https://example.com/')}&local=1`);
    expect([absolute.status, absolute.localRedirect]).toEqual([302, null]);
    connection.close();
  });

  it('hands each STDERR line to onStderr', async () => {
    const connection = await connectFastCgi(php.address);
    const lines: string[] = [];
    const call = connection.request({ params: scriptParams('stderr.php'), onStderr: (line) => lines.push(line) });
    expect(await text((await readCgiResponse(call.stdout)).body)).toBe('logged');
    await call.done;
    expect(lines).toEqual([
      'first line to stderr',
      'second line to stderr',
      expect.stringMatching(/^PHP Warning: {2}a user warning in .*stderr\.php on line \d+$/),
    ]);
    connection.close();
  });

  it('refuses a param too large for a record before sending anything, and stays idle', async () => {
    const connection = await connectFastCgi(php.address);
    expect(() =>
      connection.request({ params: scriptParams('hello.php', { extra: { HTTP_COOKIE: 'c'.repeat(70_000) } }) }),
    ).toThrow(FastCgiParamTooLargeError);
    expect(connection.state).toBe('idle');
    expect((await get(connection, 'hello.php')).status).toBe(200);
    connection.close();
  });
});

describe('aborting a request', () => {
  const flags = (name: string) => ({ flag: join(php.dir, `${name}.flag`), done: join(php.dir, `${name}.done`) });

  it('sends ABORT_REQUEST, fails the call, and retires the connection once END_REQUEST arrives', async () => {
    const connection = await connectFastCgi(php.address);
    const { flag, done } = flags('abort');
    const call = connection.request({
      params: scriptParams('wait-for-flag.php', { query: `flag=${flag}&done=${done}` }),
    });
    const response = await readCgiResponse(call.stdout);
    expect(response.status).toBe(200);
    const closing = closed(connection);
    let handedOut = false;
    connection.on('idle', () => {
      handedOut = true;
    });
    call.abort();
    await expect(call.done).rejects.toBeInstanceOf(FastCgiAbortedError);
    expect(response.body.destroyed).toBe(true);
    // php does not read ABORT_REQUEST while the script runs: the script goes on, its END_REQUEST
    // comes when it ends, and only then is the connection closed (never handed out again)
    expect(connection.state).toBe('busy');
    writeFileSync(flag, '');
    expect(await closing).toBeNull();
    expect(readFileSync(done, 'utf8')).toBe('finished');
    expect(connection.state).toBe('closed');
    expect(handedOut).toBe(false);
  });

  it('aborts when the reader destroys STDOUT (the client left) or the signal fires', async () => {
    for (const how of ['destroy', 'signal'] as const) {
      const connection = await connectFastCgi(php.address);
      const { flag } = flags(`abort-${how}`);
      const controller = new AbortController();
      const call = connection.request({
        params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }),
        signal: controller.signal,
      });
      const response = await readCgiResponse(call.stdout);
      const closing = closed(connection);
      if (how === 'destroy') response.body.destroy();
      else controller.abort(new Error('client went away'));
      await expect(call.done).rejects.toBeInstanceOf(FastCgiAbortedError);
      writeFileSync(flag, '');
      await closing;
    }
  });

  it('closes the connection when END_REQUEST does not come within abortTimeoutMs', async () => {
    const connection = await connectFastCgi(php.address);
    const { flag } = flags('abort-timeout');
    const call = connection.request({
      params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }),
      abortTimeoutMs: 100,
    });
    await readCgiResponse(call.stdout);
    const closing = closed(connection);
    call.abort();
    await closing; // the script still waits for its flag
    expect(connection.state).toBe('closed');
    writeFileSync(flag, ''); // let the php child go back to accepting
  });

  it('is why an aborted connection is never reused: php drops it at the unread ABORT_REQUEST', async () => {
    // Raw records on a socket: a request, its ABORT_REQUEST while the script runs, then the next
    // request on the same connection. php answers the first and closes instead of running the second.
    const { flag } = flags('raw-abort');
    const socket = netConnect({ path: (php.address as { path: string }).path });
    await new Promise((resolve) => socket.once('connect', resolve));
    const types: number[] = [];
    const decoder = new RecordDecoder((record) => void types.push(record.type));
    socket.on('error', () => {}); // php resets the connection it drops
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    const ended = new Promise((resolve) => socket.once('close', resolve));
    const request = (script: string, query = '') => [
      encodeBeginRequest(1),
      ...encodeParams(1, scriptParams(script, { query })),
      encodeRecord(RecordType.STDIN, 1),
    ];
    socket.write(Buffer.concat(request('wait-for-flag.php', `flag=${flag}`)));
    await eventually(() => types.includes(RecordType.STDOUT), 'the script to start');
    socket.write(encodeAbortRequest(1));
    writeFileSync(flag, '');
    await eventually(() => types.includes(RecordType.END_REQUEST), 'END_REQUEST of the aborted request');
    socket.write(Buffer.concat(request('hello.php')));
    await ended;
    expect(types.filter((t) => t === RecordType.END_REQUEST)).toHaveLength(1);
  });
});

describe('failures', () => {
  it('fails with READ_TIMEOUT (504) when the script sends nothing, and closes the connection', async () => {
    const connection = await connectFastCgi(php.address);
    const call = connection.request({ params: scriptParams('hangs.php'), readTimeoutMs: 300 });
    const closing = closed(connection);
    const error = await readCgiResponse(call.stdout).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FastCgiReadTimeoutError);
    expect((error as FastCgiReadTimeoutError).statusCode).toBe(504);
    await expect(call.done).rejects.toBeInstanceOf(FastCgiReadTimeoutError);
    await closing;
    expect(connection.state).toBe('closed');
  });

  it("counts only the backend's silence: not a slow client body, not a slow reader", async () => {
    // Proving a timeout does not fire needs time to pass: each pause is many times the timeout.
    const readTimeoutMs = 100;
    const pause = () => new Promise((resolve) => setTimeout(resolve, readTimeoutMs * 5));
    const connection = await connectFastCgi(php.address);
    async function* slowClient() {
      yield Buffer.from('first half, ');
      await pause();
      yield Buffer.from('second half');
    }
    const call = connection.request({
      params: scriptParams('post-sha256.php', { method: 'POST', contentLength: 23 }),
      stdin: slowClient(),
      readTimeoutMs,
    });
    const posted = JSON.parse(await text((await readCgiResponse(call.stdout)).body));
    expect(posted.sha256).toBe(createHash('sha256').update('first half, second half').digest('hex'));

    const big = connection.request({ params: scriptParams('big-response.php', { query: 'mb=2' }), readTimeoutMs });
    const response = await readCgiResponse(big.stdout);
    await eventually(() => !connection.reading, 'the socket to pause for the slow reader');
    await pause();
    let bytes = 0;
    for await (const chunk of response.body) bytes += (chunk as Buffer).length;
    expect(bytes).toBe(2 * 1024 * 1024);
    await big.done;
    connection.close();
  });

  it('fails with CONNECTION_CLOSED (502) when the PHP process dies mid-request', async () => {
    const connection = await connectFastCgi(php.address);
    const flag = join(php.dir, 'never.flag');
    const call = connection.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }) });
    const response = await readCgiResponse(call.stdout);
    process.kill(Number(response.headers['x-pid']![0]), 'SIGKILL');
    const error = await call.done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FastCgiConnectionClosedError);
    expect((error as FastCgiConnectionClosedError).statusCode).toBe(502);
    expect((error as FastCgiConnectionClosedError).details).toMatchObject({ reused: false });
    expect(((error as FastCgiConnectionClosedError).details.bytesReceived as number) > 0).toBe(true);
    await expect(text(response.body)).rejects.toBeInstanceOf(FastCgiConnectionClosedError);
  });

  it('sees a kept connection closed by the server while idle as a quiet close, and takes no request on it', async () => {
    const connection = await connectFastCgi(php.address);
    const closing = closed(connection);
    const pid = Number((await get(connection, 'hello.php')).body.split(' pid ')[1]);
    // the php-cgi child holding the kept connection goes away (as after PHP_FCGI_MAX_REQUESTS)
    process.kill(pid, 'SIGKILL');
    expect(await closing).toBeNull();
    expect(connection.state).toBe('closed');
    expect(() => connection.request({ params: scriptParams('hello.php') })).toThrow(/closed/);
  });

  it('fails to connect with CONNECT_FAILED (502) naming the address: no socket file, or a dead server', async () => {
    const missing = join(php.dir, 'missing.sock');
    const error = await connectFastCgi({ kind: 'unix', path: missing }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FastCgiConnectFailedError);
    expect((error as Error).message).toContain(`unix:${missing}`);
    expect((error as Error).message).toContain('ENOENT');
    expect((error as FastCgiConnectFailedError).statusCode).toBe(502);

    // a server killed without cleanup leaves its socket file behind: connection refused
    const dead = await startPhpCgi({ children: 0 });
    process.kill(-dead.pid, 'SIGKILL');
    await eventually(() => existsSync((dead.address as { path: string }).path), 'the socket file');
    await eventually(
      async () => (await connectFastCgi(dead.address).catch((e: unknown) => e)) instanceof FastCgiConnectFailedError,
      'connection refused',
    );
    const refused = await connectFastCgi(dead.address).catch((e: unknown) => e);
    expect((refused as Error).message).toContain('ECONNREFUSED');
    await dead.stop();

    const tcp = await connectFastCgi({ kind: 'tcp', host: '127.0.0.1', port: 1 }).catch((e: unknown) => e);
    expect(tcp).toBeInstanceOf(FastCgiConnectFailedError);
    expect((tcp as Error).message).toContain('127.0.0.1:1');
  });

  it('fails to connect with ABORTED when the signal fires first', async () => {
    const controller = new AbortController();
    controller.abort();
    await expect(connectFastCgi(php.address, { signal: controller.signal })).rejects.toBeInstanceOf(
      FastCgiAbortedError,
    );
  });
});

describe('GET_VALUES', () => {
  it('reads FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS from php-cgi', async () => {
    const values = await getFastCgiValues(php.address);
    expect({ ...values }).toEqual({ FCGI_MAX_CONNS: '2', FCGI_MAX_REQS: '2', FCGI_MPXS_CONNS: '0' });
  });
});
