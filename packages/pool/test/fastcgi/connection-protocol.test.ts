// What php never does but a FastCGI server may: END_REQUEST with OVERLOADED / CANT_MPX_CONN /
// UNKNOWN_ROLE, records for another request, bytes that are not FastCGI at all, STDERR cut across
// records. A small FastCGI peer on a real unix socket answers with exactly those bytes, and checks
// what the connection sends.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterEach, describe, expect, it } from 'vitest';
import {
  FastCgiAbortedError,
  FastCgiBadHeaderError,
  FastCgiConnectionClosedError,
  FastCgiMalformedRecordError,
  FastCgiOverloadedError,
  FastCgiRequestRejectedError,
  FastCgiUnexpectedRecordError,
} from '../../src/errors.js';
import type { FastCgiAddress } from '../../src/fastcgi/address.js';
import { CgiResponseReader } from '../../src/fastcgi/cgi-response.js';
import { connectFastCgi } from '../../src/fastcgi/connect.js';
import type { FastCgiConnection } from '../../src/fastcgi/connection.js';
import { MAX_STDERR_LINE_BYTES, MAX_STDERR_LINE_PIECES } from '../../src/fastcgi/stderr-lines.js';
import { CUT_MARK } from '../../src/worker/output.js';
import { RecordDecoder } from '../../src/fastcgi/decoder.js';
import { RecycledBuffers } from '../../src/recycled-buffers.js';
import { eventually } from '../php-fixtures.js';
import {
  decodeBeginRequest,
  decodeNameValuePairs,
  encodeEndRequest,
  encodeRecord,
  encodeStreamRecords,
  type FastCgiRecord,
  ProtocolStatus,
  RecordType,
} from '../../src/fastcgi/records.js';

interface Peer {
  address: FastCgiAddress;
  /** records received per connection, in order */
  received: FastCgiRecord[][];
  close(): Promise<void>;
}

const peers: Peer[] = [];
afterEach(async () => {
  for (const peer of peers.splice(0)) await peer.close();
});

/** A FastCGI server whose answer to each request (once its STDIN ended) is `answer`. */
async function startPeer(answer: (socket: Socket, records: FastCgiRecord[]) => void): Promise<Peer> {
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-fcgi-peer-'));
  const path = join(dir, 'peer.sock');
  const received: FastCgiRecord[][] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const records: FastCgiRecord[] = [];
    received.push(records);
    const decoder = new RecordDecoder((record) => {
      records.push({ ...record, content: Buffer.from(record.content) });
      if (record.type === RecordType.STDIN && record.content.length === 0) answer(socket, records);
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const peer: Peer = {
    address: { kind: 'unix', path },
    received,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  peers.push(peer);
  return peer;
}

const stdout = (body: string, id = 1) => encodeRecord(RecordType.STDOUT, id, Buffer.from(body));
const end = (protocolStatus: number = ProtocolStatus.REQUEST_COMPLETE, appStatus = 0) =>
  encodeEndRequest(1, appStatus, protocolStatus);
const closed = (connection: FastCgiConnection) => new Promise((resolve) => connection.once('close', resolve));

describe('what the connection sends', () => {
  it('BEGIN_REQUEST (responder, FCGI_KEEP_CONN), PARAMS ending empty, STDIN ending empty', async () => {
    const peer = await startPeer((socket) => socket.write(Buffer.concat([stdout('Status: 204\r\n\r\n'), end()])));
    const connection = await connectFastCgi(peer.address);
    const call = connection.request({ params: { A: '1', LONG: 'x'.repeat(300) }, stdin: Buffer.from('body') });
    await text(call.stdout);
    expect(await call.done).toEqual({ appStatus: 0, protocolStatus: 0 });
    const records = peer.received[0]!;
    expect(records.map((r) => [r.type, r.requestId, r.content.length])).toEqual([
      [RecordType.BEGIN_REQUEST, 1, 8],
      [RecordType.PARAMS, 1, 2 + 1 + 1 + 1 + 4 + 4 + 300],
      [RecordType.PARAMS, 1, 0],
      [RecordType.STDIN, 1, 4],
      [RecordType.STDIN, 1, 0],
    ]);
    expect(decodeBeginRequest(records[0]!.content)).toEqual({ role: 1, keepConn: true });
    expect(decodeNameValuePairs(records[1]!.content).map(([n, v]) => [n.toString(), v.length])).toEqual([
      ['A', 1],
      ['LONG', 300],
    ]);
    connection.close();
  });

  it('reports a non-zero appStatus as it came', async () => {
    const peer = await startPeer((socket) => socket.write(Buffer.concat([stdout('X: 1\r\n\r\n'), end(0, 3)])));
    const connection = await connectFastCgi(peer.address);
    const call = connection.request({ params: {} });
    await text(call.stdout);
    expect(await call.done).toEqual({ appStatus: 3, protocolStatus: 0 });
    connection.close();
  });
});

describe('END_REQUEST protocol status', () => {
  it('OVERLOADED fails with the 503 error class', async () => {
    const peer = await startPeer((socket) => socket.write(end(ProtocolStatus.OVERLOADED)));
    const connection = await connectFastCgi(peer.address);
    const call = connection.request({ params: {} });
    const error = await call.done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FastCgiOverloadedError);
    expect((error as FastCgiOverloadedError).statusCode).toBe(503);
    await expect(text(call.stdout)).rejects.toBeInstanceOf(FastCgiOverloadedError);
  });

  it.each([
    ['CANT_MPX_CONN', ProtocolStatus.CANT_MPX_CONN],
    ['UNKNOWN_ROLE', ProtocolStatus.UNKNOWN_ROLE],
    ['an undefined status', 9],
  ])('%s fails with REQUEST_REJECTED (502), named in the message', async (name, status) => {
    const peer = await startPeer((socket) => socket.write(end(status)));
    const connection = await connectFastCgi(peer.address);
    const error = await connection.request({ params: {} }).done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FastCgiRequestRejectedError);
    expect((error as Error).message).toContain(name === 'an undefined status' ? 'protocol status 9' : name);
    expect((error as FastCgiRequestRejectedError).statusCode).toBe(502);
  });
});

describe('bytes that break the protocol close the connection', () => {
  it('an HTTP server at the address: MALFORMED_RECORD, naming the likely cause', async () => {
    const peer = await startPeer((socket) => socket.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n'));
    const connection = await connectFastCgi(peer.address);
    const closing = closed(connection);
    const error = await connection.request({ params: {} }).done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FastCgiMalformedRecordError);
    expect((error as Error).message).toMatch(/HTTP\/1\.1 400.*web server, not a FastCGI server/);
    await closing;
  });

  it('a record for another request id: UNEXPECTED_RECORD', async () => {
    const peer = await startPeer((socket) => socket.write(stdout('Status: 200\r\n\r\n', 2)));
    const connection = await connectFastCgi(peer.address);
    const error = await connection.request({ params: {} }).done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FastCgiUnexpectedRecordError);
    expect((error as Error).message).toContain('request id 2');
  });

  it('a record type a responder does not send: UNEXPECTED_RECORD', async () => {
    const peer = await startPeer((socket) => socket.write(encodeRecord(RecordType.PARAMS, 1, Buffer.alloc(0))));
    const connection = await connectFastCgi(peer.address);
    const error = await connection.request({ params: {} }).done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FastCgiUnexpectedRecordError);
    expect((error as Error).message).toContain('PARAMS');
  });

  it('output after END_REQUEST, while idle: the connection closes instead of serving a desynced stream', async () => {
    const peer = await startPeer((socket) =>
      socket.write(Buffer.concat([stdout('Status: 200\r\n\r\nok'), end(), stdout('stray')])),
    );
    const connection = await connectFastCgi(peer.address);
    const closing = new Promise<Error | null>((resolve) => connection.once('close', resolve));
    const call = connection.request({ params: {} });
    expect(await text(call.stdout)).toBe('Status: 200\r\n\r\nok');
    await call.done;
    expect(await closing).toBeInstanceOf(FastCgiUnexpectedRecordError);
  });

  it('a connection closed after some output: CONNECTION_CLOSED with the bytes received', async () => {
    const peer = await startPeer((socket) => socket.end(stdout('Status: 200\r\n\r\npartial')));
    const connection = await connectFastCgi(peer.address);
    const error = await connection.request({ params: {} }).done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FastCgiConnectionClosedError);
    expect((error as FastCgiConnectionClosedError).details.bytesReceived).toBeGreaterThan(0);
  });
});

describe('STDERR lines', () => {
  it('joins a line cut across records, cuts a runaway line, splits php-fpm joined messages', async () => {
    const stderr = (s: string) => encodeRecord(RecordType.STDERR, 1, Buffer.from(s));
    const long = 'y'.repeat(MAX_STDERR_LINE_BYTES + 10);
    const peer = await startPeer((socket) =>
      socket.write(
        Buffer.concat([
          stderr('first li'),
          stderr('ne\r\nsecond line\n'),
          stderr(long),
          stderr('\nPHP message: a; PHP message: b'),
          stdout('Status: 200\r\n\r\n'),
          end(),
        ]),
      ),
    );
    const connection = await connectFastCgi(peer.address);
    const lines: string[] = [];
    const call = connection.request({ params: {}, onStderr: (line) => lines.push(line) });
    await text(call.stdout);
    await call.done;
    expect(lines).toEqual([
      'first line',
      'second line',
      'y'.repeat(MAX_STDERR_LINE_BYTES),
      'y'.repeat(10),
      'PHP message: a',
      'PHP message: b',
    ]);
    connection.close();
  });

  it('logs a line of megabytes as 16 pieces at most, the last saying it was cut, then the next line', async () => {
    // before: a 4 MB error_log() was logged whole, in 8 KiB pieces (php-fpm cuts at its log_limit)
    const stderr = (s: string) => encodeRecord(RecordType.STDERR, 1, Buffer.from(s));
    const records: Buffer[] = [];
    for (let i = 0; i < 64; i++) records.push(stderr('z'.repeat(60_000)));
    const peer = await startPeer((socket) =>
      socket.write(Buffer.concat([...records, stderr('\nthe next line\n'), stdout('Status: 200\r\n\r\n'), end()])),
    );
    const connection = await connectFastCgi(peer.address);
    const lines: string[] = [];
    const call = connection.request({ params: {}, onStderr: (line) => lines.push(line) });
    await text(call.stdout);
    await call.done;
    expect(lines).toHaveLength(MAX_STDERR_LINE_PIECES + 1);
    expect(lines.slice(0, -2).every((line) => line === 'z'.repeat(MAX_STDERR_LINE_BYTES))).toBe(true);
    expect(lines.at(-2)).toBe(`${'z'.repeat(MAX_STDERR_LINE_BYTES)}${CUT_MARK}`);
    expect(lines.at(-1)).toBe('the next line');
    connection.close();
  });
});

describe('CgiResponseReader: STDOUT read whole up to bufferBytes, without a stream', () => {
  /** One request whose STDOUT is `records` (then END_REQUEST), read by a CgiResponseReader. */
  async function read(records: Buffer[], bufferBytes: number) {
    const peer = await startPeer((socket) => socket.write(Buffer.concat([...records, end()])));
    const connection = await connectFastCgi(peer.address);
    const reader = new CgiResponseReader({ bufferBytes });
    const run = connection.start({ params: {} }, reader);
    const response = await reader.response;
    const body = response.body instanceof Readable ? await collect(response.body) : response.body;
    await run.done;
    expect(connection.state).toBe('idle');
    connection.close();
    return { response, body };
  }
  const collect = async (stream: Readable) => {
    const parts: Buffer[] = [];
    for await (const part of stream) parts.push(part as Buffer);
    return Buffer.concat(parts);
  };

  it('a head cut across records, the body starting in the same record as its blank line', async () => {
    const { response, body } = await read(
      [stdout('Status: 404 Not Found\r\nX-A: '), stdout('1\r\n'), stdout('\r\nhello '), stdout('world')],
      1024,
    );
    expect(response.status).toBe(404);
    expect(response.statusText).toBe('Not Found');
    expect(response.headers['x-a']).toEqual(['1']);
    expect(Buffer.isBuffer(response.body)).toBe(true);
    expect(String(body)).toBe('hello world');
  });

  it('a body of exactly bufferBytes is whole; one byte more streams, every byte in order', async () => {
    const payload = randomBytes(3000);
    const exact = await read([stdout('X: 1\r\n\r\n'), ...encodeStreamRecords(RecordType.STDOUT, 1, payload)], 3000);
    expect(Buffer.isBuffer(exact.response.body)).toBe(true);
    expect(exact.body).toEqual(payload);
    const over = await read([stdout('X: 1\r\n\r\n'), ...encodeStreamRecords(RecordType.STDOUT, 1, payload)], 2999);
    expect(over.response.body).toBeInstanceOf(Readable);
    expect(over.body).toEqual(payload);
  });

  it('a body over 64 KiB in several records comes whole in one buffer; an empty body as an empty Buffer', async () => {
    const payload = randomBytes(200 * 1024);
    const big = await read(
      [stdout('X: 1\r\n\r\n'), ...encodeStreamRecords(RecordType.STDOUT, 1, payload)],
      1024 * 1024,
    );
    expect(Buffer.isBuffer(big.response.body)).toBe(true);
    expect(big.body).toEqual(payload);
    const empty = await read([stdout('Status: 204\r\n\r\n')], 1024);
    expect(empty.body).toEqual(Buffer.alloc(0));
    expect(empty.response.release).toBeUndefined();
  });

  it("a whole body's memory is reused by a later response only after release(), never before", async () => {
    const buffers = new RecycledBuffers();
    const respond = async (payload: Buffer, recycle = true) => {
      const peer = await startPeer((socket) =>
        socket.write(
          Buffer.concat([stdout('X: 1\r\n\r\n'), ...encodeStreamRecords(RecordType.STDOUT, 1, payload), end()]),
        ),
      );
      const connection = await connectFastCgi(peer.address);
      const reader = new CgiResponseReader({ bufferBytes: 1024 * 1024, buffers, recycle });
      const run = connection.start({ params: {} }, reader);
      const response = await reader.response;
      await run.done;
      connection.close();
      return response;
    };
    const first = await respond(Buffer.alloc(70_000, 'a'));
    const second = await respond(Buffer.alloc(70_000, 'b'));
    // not released: the second response has memory of its own, the first is intact
    expect((first.body as Buffer).buffer).not.toBe((second.body as Buffer).buffer);
    expect((first.body as Buffer).equals(Buffer.alloc(70_000, 'a'))).toBe(true);
    first.release!();
    first.release!(); // twice is harmless: the memory is not handed out twice
    const third = await respond(Buffer.alloc(70_000, 'c'));
    const fourth = await respond(Buffer.alloc(70_000, 'd'));
    expect((third.body as Buffer).buffer).toBe((first.body as Buffer).buffer);
    expect((fourth.body as Buffer).buffer).not.toBe((third.body as Buffer).buffer);
    expect((third.body as Buffer).equals(Buffer.alloc(70_000, 'c'))).toBe(true);
    // without recycle (the plugin's default): memory of its own, sized to the body, no release();
    // the buffer it was assembled in serves the next response at once
    const own = await respond(Buffer.alloc(70_000, 'e'), false);
    expect(own.release).toBeUndefined();
    expect((own.body as Buffer).buffer.byteLength).toBe(70_000);
    const after = await respond(Buffer.alloc(70_000, 'f'), false);
    expect((own.body as Buffer).equals(Buffer.alloc(70_000, 'e'))).toBe(true);
    expect((after.body as Buffer).equals(Buffer.alloc(70_000, 'f'))).toBe(true);
  });

  it('X-Accel-Buffering: no, server-sent events, or bufferBytes 0, stream a body however small', async () => {
    for (const [head, bufferBytes] of [
      ['X-Accel-Buffering: no\r\n\r\n', 1024],
      ['Content-Type: text/event-stream; charset=utf-8\r\n\r\n', 1024],
      ['X: 1\r\n\r\n', 0],
    ] as const) {
      const { response, body } = await read([stdout(`${head}tiny`)], bufferBytes);
      expect(response.body).toBeInstanceOf(Readable);
      expect(String(body)).toBe('tiny');
    }
  });

  it('a bad head rejects the response and aborts the request; no output at all is a bad head too', async () => {
    const peer = await startPeer((socket) => socket.write(stdout('no colon here\r\n\r\nbody')));
    const connection = await connectFastCgi(peer.address);
    const reader = new CgiResponseReader({ bufferBytes: 1024 });
    const run = connection.start({ params: {} }, reader);
    await expect(reader.response).rejects.toBeInstanceOf(FastCgiBadHeaderError);
    const error = await run.done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FastCgiAbortedError);
    expect((error as FastCgiAbortedError).cause).toBeInstanceOf(FastCgiBadHeaderError);
    // the request is aborted: ABORT_REQUEST follows the request's records
    await eventually(() => peer.received[0]!.some((r) => r.type === RecordType.ABORT_REQUEST), 'ABORT_REQUEST');

    const silent = await startPeer((socket) => socket.write(end()));
    const second = await connectFastCgi(silent.address);
    const empty = new CgiResponseReader({ bufferBytes: 1024 });
    second.start({ params: {} }, empty);
    await expect(empty.response).rejects.toThrow(/ended without any output/);
    second.close();
  });
});
