// Pipelining on one FastCGI connection against a real `php-cgi -b <socket>`: a request written
// behind the running one (queue()) is the next one PHP reads, so it begins the moment the running
// one ends. What may be queued, what an abort of the running one does then (no ABORT_REQUEST: it
// would cost the connection after PHP ran the queued one), and a close before the queued one began.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FastCgiAbortedError, QueuedRequestNotRunError } from '../../src/errors.js';
import { CgiResponseReader, readCgiResponse } from '../../src/fastcgi/cgi-response.js';
import { connectFastCgi } from '../../src/fastcgi/connect.js';
import type { FastCgiConnection } from '../../src/fastcgi/connection.js';
import { eventually } from '../php-fixtures.js';
import { appendedRuns as runs, type PhpServer, scriptParams, startPhpCgi } from './php-servers.js';

let php: PhpServer;
const dir = mkdtempSync(join(tmpdir(), 'warmpool-fastcgi-queue-'));
let files = 0;
const newFile = () => join(dir, `file-${++files}`);

beforeAll(async () => {
  php = await startPhpCgi({ children: 2 });
});

afterAll(async () => {
  await php?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A running request that waits for `flag`: its head is in once this resolves. */
async function startWaiting(connection: FastCgiConnection, flag: string, extra = '') {
  const call = connection.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${flag}${extra}` }) });
  const response = await readCgiResponse(call.stdout);
  return { call, response };
}

/** Queues append.php (it logs each run to `log`); its whole body is read into memory. */
function queueAppend(connection: FastCgiConnection, log: string, tag: string, signal?: AbortSignal) {
  const reader = new CgiResponseReader({}, 1024 * 1024, false);
  const run = connection.queue(
    { params: scriptParams('append.php', { query: `log=${log}&tag=${tag}` }), signal: signal ?? null },
    reader,
  );
  return { run, response: reader.response };
}

describe('FastCGI connection: a request queued behind the running one (php-cgi)', () => {
  it('PHP runs it right after the running one, on the same connection and process', async () => {
    const connection = await connectFastCgi(php.address);
    const flag = newFile();
    const log = newFile();
    const { call, response } = await startWaiting(connection, flag);
    expect(connection.canQueue(null)).toBe(true);
    const queued = queueAppend(connection, log, 'q');
    expect(connection.hasQueued).toBe(true);
    expect([queued.run.begun, connection.canQueue(null)]).toEqual([false, false]); // one deep
    writeFileSync(flag, '');
    expect(await text(response.body)).toBe('started\nfinished\n');
    await call.done;
    const result = await queued.response;
    await queued.run.done;
    expect(queued.run.begun && queued.run.ended).toBe(true);
    const pid = String(response.headers['x-pid']);
    expect(String(result.body)).toBe(`appended q pid ${pid}`);
    expect(runs(log)).toEqual([`${pid} q`]);
    expect([connection.state, connection.requests, connection.hasQueued]).toEqual(['idle', 2, false]);
    connection.close();
  });

  it('queues only behind a running request whose body was sent, and only a small body in memory', async () => {
    const connection = await connectFastCgi(php.address);
    expect(connection.canQueue(null)).toBe(false); // nothing runs: start() it instead
    const body = new PassThrough();
    const call = connection.request({
      params: scriptParams('post-sha256.php', { method: 'POST', contentLength: 4 }),
      stdin: body,
    });
    expect(connection.canQueue(null)).toBe(false); // its body is still being sent
    expect(() => queueAppend(connection, newFile(), 'x')).toThrow(/cannot queue/);
    body.end('abcd');
    const response = await readCgiResponse(call.stdout);
    await text(response.body);
    await call.done;
    const flag = newFile();
    const waiting = await startWaiting(connection, flag);
    expect(connection.canQueue(null)).toBe(true);
    expect(connection.canQueue(Buffer.alloc(1024))).toBe(true);
    expect(connection.canQueue(Buffer.alloc(64 * 1024))).toBe(false);
    expect(connection.canQueue(new PassThrough())).toBe(false);
    expect(connection.canQueue([Buffer.alloc(1)])).toBe(false);
    writeFileSync(flag, '');
    await text(waiting.response.body);
    await waiting.call.done;
    connection.close();
  });

  it('an abort of the running request sends no ABORT_REQUEST: PHP ends it, the queued one follows, the connection stays', async () => {
    const connection = await connectFastCgi(php.address);
    const flag = newFile();
    const done = newFile();
    const log = newFile();
    const { call, response } = await startWaiting(connection, flag, `&done=${done}`);
    const queued = queueAppend(connection, log, 'after-abort');
    const controller = new AbortController();
    call.abort(controller.signal.reason);
    await expect(call.done).rejects.toBeInstanceOf(FastCgiAbortedError);
    expect(response.body.destroyed).toBe(true);
    expect(queued.run.begun).toBe(false);
    writeFileSync(flag, '');
    const result = await queued.response;
    expect(String(result.body)).toBe(`appended after-abort pid ${response.headers['x-pid']}`);
    // the aborted script ran to its end; the connection was kept and takes the next request
    expect(readFileSync(done, 'utf8')).toBe('finished');
    await queued.run.done;
    expect(connection.state).toBe('idle');
    const next = connection.request({ params: scriptParams('hello.php') });
    expect(await text((await readCgiResponse(next.stdout)).body)).toMatch(/^hello from cgi-fcgi/);
    expect(runs(log)).toHaveLength(1);
    connection.close();
  });

  it('a queued request listens to its signal once it begins: aborted before, it runs but its output is dropped', async () => {
    const connection = await connectFastCgi(php.address);
    const flag = newFile();
    const log = newFile();
    const { call, response } = await startWaiting(connection, flag);
    const controller = new AbortController();
    const queued = queueAppend(connection, log, 'cancelled', controller.signal);
    controller.abort();
    writeFileSync(flag, '');
    expect(await text(response.body)).toBe('started\nfinished\n');
    await call.done;
    await expect(queued.response).rejects.toBeInstanceOf(FastCgiAbortedError);
    await expect(queued.run.done).rejects.toBeInstanceOf(FastCgiAbortedError);
    expect(queued.run.keptAfterAbort).toBe(true);
    // PHP had it before the client left: it ran once, and the connection is kept after it
    await eventually(() => connection.state === 'idle', 'the cancelled request to end');
    expect(runs(log)).toHaveLength(1);
    const next = connection.request({ params: scriptParams('hello.php') });
    expect(await text((await readCgiResponse(next.stdout)).body)).toMatch(/^hello from cgi-fcgi/);
    connection.close();
  });

  it('fails the queued request with QueuedRequestNotRunError when the connection closes before it began', async () => {
    const connection = await connectFastCgi(php.address);
    const flag = newFile();
    const log = newFile();
    const { call } = await startWaiting(connection, flag);
    const queued = queueAppend(connection, log, 'never');
    const closed = new Promise((resolve) => connection.once('close', resolve));
    connection.destroy();
    await closed;
    await expect(queued.response).rejects.toBeInstanceOf(QueuedRequestNotRunError);
    await expect(queued.run.done).rejects.toMatchObject({ code: 'WP_FASTCGI_QUEUED_NOT_RUN' });
    expect([queued.run.begun, queued.run.ended]).toEqual([false, true]);
    await expect(call.done).rejects.toBeTruthy();
    writeFileSync(flag, '');
  });
});
