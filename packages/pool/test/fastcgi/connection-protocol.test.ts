// What php never does but a FastCGI server may: END_REQUEST with OVERLOADED / CANT_MPX_CONN /
// UNKNOWN_ROLE, records for another request, bytes that are not FastCGI at all, STDERR cut across
// records. A small FastCGI peer on a real unix socket answers with exactly those bytes, and checks
// what the connection sends.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { afterEach, describe, expect, it } from 'vitest';
import {
  FastCgiConnectionClosedError,
  FastCgiMalformedRecordError,
  FastCgiOverloadedError,
  FastCgiRequestRejectedError,
  FastCgiUnexpectedRecordError,
} from '../../src/errors.js';
import type { FastCgiAddress } from '../../src/fastcgi/address.js';
import { connectFastCgi, type FastCgiConnection, MAX_STDERR_LINE_BYTES } from '../../src/fastcgi/connection.js';
import { RecordDecoder } from '../../src/fastcgi/decoder.js';
import {
  decodeBeginRequest,
  decodeNameValuePairs,
  encodeEndRequest,
  encodeRecord,
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
});
