// The FastCGI exchange (classic mode) against both backends it runs on: php-cgi workers the pool
// manages, and an external php-fpm the test starts with its own config and socket. The same
// requests, the same answers.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Chunks } from '../../src/chunks.js';
import { FastCgiConnectFailedError, StreamStalledError } from '../../src/errors.js';
import type { ExchangeRequest, ExchangeResponse } from '../../src/exchange/exchange.js';
import { FastCgiExchange, type FastCgiBackend } from '../../src/exchange/fastcgi-exchange.js';
import { createFastCgiClientPool } from '../../src/fastcgi/client-pool.js';
import { createCgiPool } from '../../src/worker/cgi-driver.js';
import { FIXTURES, fixturePath, type PhpServer, startPhpFpm } from '../fastcgi/php-servers.js';
import { eventually, recordingLogger } from '../php-fixtures.js';

const flags = mkdtempSync(join(tmpdir(), 'warmpool-exchange-flags-'));
let flagCount = 0;
const newFlag = () => join(flags, `flag-${++flagCount}`);

function exchangeRequest(
  script: string,
  options: { pathInfo?: string; query?: string } & Partial<ExchangeRequest> = {},
): ExchangeRequest {
  const { pathInfo = '', query = '', ...rest } = options;
  return {
    method: 'GET',
    scheme: 'http',
    host: 'localhost',
    target: `/${script}${pathInfo}${query === '' ? '' : `?${query}`}`,
    protocol: 'HTTP/1.1',
    headers: { 'User-Agent': ['vitest'] },
    remoteAddr: '127.0.0.1',
    remotePort: 50000,
    serverAddr: '127.0.0.1',
    serverPort: 80,
    body: null,
    form: null,
    script: {
      scriptName: `/${script}`,
      scriptFilename: fixturePath(script),
      pathInfo,
      documentRoot: FIXTURES,
      documentUri: `/${script}${pathInfo}`,
      queryString: query,
    },
    ...rest,
  };
}

async function bodyText(response: ExchangeResponse): Promise<string> {
  const { body } = response;
  if (Buffer.isBuffer(body)) return body.toString();
  if (body instanceof Chunks) return body.join().toString();
  return text(body);
}

let fpm: PhpServer;

const managed = createCgiPool({ command: 'php-cgi', num_workers: 1, logger: recordingLogger() });
beforeAll(async () => {
  fpm = await startPhpFpm({ maxChildren: 2 });
  await managed.start();
});
afterAll(async () => {
  await managed.close();
  await fpm?.stop();
  rmSync(flags, { recursive: true, force: true });
});

const cases = [
  { name: 'managed php-cgi', make: () => managed },
  // one connection: the queue is easy to fill
  { name: 'pass to php-fpm', make: () => createFastCgiClientPool({ address: fpm.address, maxConnections: 1 }) },
] as const;

describe.each(cases)('FastCgiExchange over $name', ({ make }) => {
  let backend: FastCgiBackend;
  beforeAll(() => {
    backend = make();
  });
  afterAll(async () => {
    if (backend !== managed) await backend.close();
  });

  it('sends the params nginx users rely on; PHP sees them in $_SERVER', async () => {
    const exchange = new FastCgiExchange(backend, { params: { APP_ENV: 'production' } });
    const response = await exchange.exchange(
      exchangeRequest('server-vars.php', {
        method: 'POST',
        scheme: 'https',
        host: 'example.com:8443',
        protocol: 'HTTP/2.0',
        pathInfo: '/extra/path',
        query: 'x=1&y=%20z',
        headers: {
          'Content-Type': ['application/x-www-form-urlencoded'],
          'X-Custom': ['élan'],
          Proxy: ['http://evil.example:8080'],
          Cookie: ['a=1', 'b=2'],
        },
        remoteAddr: '192.0.2.7',
        remotePort: 51000,
        serverAddr: '192.0.2.1',
        serverPort: 8443,
        body: Buffer.from('a=1&b=2'),
      }),
    );
    expect(response.status).toBe(200);
    const server = JSON.parse(await bodyText(response));
    expect(server).toMatchObject({
      SCRIPT_FILENAME: fixturePath('server-vars.php'),
      SCRIPT_NAME: '/server-vars.php',
      PATH_INFO: '/extra/path',
      PATH_TRANSLATED: `${FIXTURES}/extra/path`,
      DOCUMENT_ROOT: FIXTURES,
      REQUEST_URI: '/server-vars.php/extra/path?x=1&y=%20z',
      DOCUMENT_URI: '/server-vars.php/extra/path',
      QUERY_STRING: 'x=1&y=%20z',
      REQUEST_METHOD: 'POST',
      CONTENT_TYPE: 'application/x-www-form-urlencoded',
      CONTENT_LENGTH: '7',
      SERVER_NAME: 'example.com',
      SERVER_PORT: '8443',
      SERVER_ADDR: '192.0.2.1',
      REMOTE_ADDR: '192.0.2.7',
      REMOTE_PORT: '51000',
      REMOTE_USER: '',
      HTTPS: 'on',
      REQUEST_SCHEME: 'https',
      SERVER_PROTOCOL: 'HTTP/2.0',
      GATEWAY_INTERFACE: 'CGI/1.1',
      REDIRECT_STATUS: '200',
      HTTP_HOST: 'example.com:8443',
      HTTP_X_CUSTOM: 'élan',
      HTTP_COOKIE: 'a=1; b=2',
      APP_ENV: 'production',
    });
    // httpoxy: a Proxy header never becomes HTTP_PROXY
    expect(server).not.toHaveProperty('HTTP_PROXY');
  });

  it('a POST with Content-Length: 0 and no body gets CONTENT_LENGTH "0", as nginx; a GET with no length ""', async () => {
    const exchange = new FastCgiExchange(backend);
    const empty = await exchange.exchange(
      exchangeRequest('server-vars.php', { method: 'POST', headers: { 'Content-Length': ['0'] }, body: null }),
    );
    expect(JSON.parse(await bodyText(empty))).toMatchObject({ CONTENT_LENGTH: '0', HTTP_CONTENT_LENGTH: '0' });
    const get = await exchange.exchange(exchangeRequest('server-vars.php'));
    expect(JSON.parse(await bodyText(get))).toMatchObject({ CONTENT_LENGTH: '' });
  });

  it('answers a small response whole (a Buffer); a large one streams, every byte in order', async () => {
    const exchange = new FastCgiExchange(backend);
    const hello = await exchange.exchange(exchangeRequest('hello.php'));
    expect(Buffer.isBuffer(hello.body)).toBe(true);
    expect(hello.headers['content-type']).toEqual(['text/plain;charset=UTF-8']);
    expect(String(hello.body)).toMatch(/^hello from (cgi-fcgi|fpm-fcgi) pid \d+$/);

    const big = await exchange.exchange(exchangeRequest('big-response.php', { query: 'mb=4' }));
    expect(big.body).toBeInstanceOf(Readable);
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of big.body as Readable) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    expect(bytes).toBe(4 * 1024 * 1024);
    expect(hash.digest('hex')).toBe(big.headers['x-body-sha256']![0]);
  });

  it('streams at once a response marked X-Accel-Buffering: no', async () => {
    const exchange = new FastCgiExchange(backend);
    const flag = newFlag();
    // the head arrives while the script still waits for the flag: nothing was held back
    const response = await exchange.exchange(exchangeRequest('streams.php', { query: `flag=${flag}` }));
    expect(response.body).toBeInstanceOf(Readable);
    writeFileSync(flag, '');
    expect(await bodyText(response)).toBe('first\nsecond\n');
  });

  it('streams a request body to STDIN from a Readable, with its Content-Length', async () => {
    const exchange = new FastCgiExchange(backend);
    const payload = randomBytes(2 * 1024 * 1024 + 3);
    const stream = new PassThrough();
    const response = exchange.exchange(
      exchangeRequest('post-sha256.php', {
        method: 'PUT',
        headers: { 'Content-Length': [String(payload.length)] },
        body: stream,
      }),
    );
    stream.end(payload);
    expect(JSON.parse(await bodyText(await response))).toEqual({
      sha256: createHash('sha256').update(payload).digest('hex'),
      bytes: payload.length,
      method: 'PUT',
    });
  });

  it('passes several Set-Cookie lines and a 404 from PHP', async () => {
    const exchange = new FastCgiExchange(backend);
    const cookies = await exchange.exchange(exchangeRequest('cookies.php'));
    expect(cookies.headers['set-cookie']).toEqual([
      'first=one',
      'second=two; path=/app; HttpOnly',
      'third=three; SameSite=Strict',
    ]);
    const missing = await exchange.exchange(exchangeRequest('not-found.php'));
    expect([missing.status, await bodyText(missing)]).toEqual([404, 'no such page']);
  });

  it('logs STDERR lines with the script that wrote them', async () => {
    const logger = recordingLogger();
    const exchange = new FastCgiExchange(backend, { logger });
    expect(await bodyText(await exchange.exchange(exchangeRequest('stderr.php')))).toBe('logged');
    await eventually(() => logger.lines.length >= 3, 'three stderr lines');
    expect(logger.lines[0]).toMatchObject({
      level: 'warn',
      // the request too, so the line can be matched to its access-log line (nginx names it)
      obj: { script: '/stderr.php', request: 'GET /stderr.php' },
      // php-fpm prefixes "PHP message: "; php-cgi does not
      msg: expect.stringMatching(/^\/stderr\.php: (PHP message: )?first line to stderr$/),
    });
  });

  it('logs at most 1000 STDERR lines a second, then one line counting the dropped ones, once the second is over', async () => {
    const logger = recordingLogger();
    const exchange = new FastCgiExchange(backend, { logger });
    expect(await bodyText(await exchange.exchange(exchangeRequest('stderr-flood.php', { query: 'lines=3000' })))).toBe(
      'flooded',
    );
    // no further request: the count is written by itself
    await eventually(() => logger.lines.some((line) => /dropped/.test(line.msg)), 'the dropped lines counted');
    const logged = logger.lines.filter((line) => /flood line/.test(line.msg));
    const summary = logger.lines.filter((line) => /dropped/.test(line.msg));
    // the 3000 lines come within a second on an idle machine; a loaded one may spread them over two
    const dropped = summary.reduce((sum, line) => sum + (line.obj.suppressed as number), 0);
    expect(logged.length).toBeLessThanOrEqual(1000 * summary.length);
    expect(dropped).toBeGreaterThanOrEqual(1000);
    // php-fpm joins messages into lines cut at 8 KiB: a message cut in two counts twice
    expect(logged.length + dropped).toBeGreaterThanOrEqual(3000);
    expect(logged.length + dropped).toBeLessThan(3100);
    expect(summary[0]).toMatchObject({
      level: 'warn',
      msg: `PHP wrote ${summary[0]!.obj.suppressed as number} more stderr lines than the 1000/s log limit (the last from /stderr-flood.php); they were dropped`,
    });
  });

  it("a PHP Fatal error is logged past the flood of warnings that spent the second's limit (its own bound)", async () => {
    const logger = recordingLogger();
    const exchange = new FastCgiExchange(backend, { logger });
    const response = await exchange.exchange(exchangeRequest('stderr-flood.php', { query: 'lines=3000&fatal=1' }));
    await bodyText(response);
    await eventually(
      () => logger.lines.some((line) => line.level === 'error' && /Fatal error: +the end of the flood/.test(line.msg)),
      'the fatal error logged',
    );
  });

  it('a request cancelled while it waits for PHP leaves the queue and never runs', async () => {
    const exchange = new FastCgiExchange(backend);
    const flag = newFlag();
    const busy = await exchange.exchange(exchangeRequest('streams.php', { query: `flag=${flag}` }));
    const done = newFlag();
    const controller = new AbortController();
    // a POST with a body: a php-cgi worker never queues it behind its running request, where PHP
    // would have it already (a GET may be; cgi-pipelining.test.ts)
    const post = { method: 'POST', body: Buffer.from('x'), headers: { 'Content-Length': ['1'] } };
    const queued = exchange.exchange(
      exchangeRequest('wait-for-flag.php', { query: `flag=${flag}&done=${done}`, ...post }),
      { signal: controller.signal },
    );
    controller.abort();
    await expect(queued).rejects.toMatchObject({ code: expect.stringMatching(/ABORTED$/) });
    writeFileSync(flag, '');
    expect(await bodyText(busy)).toBe('first\nsecond\n');
    // the next request runs: the aborted one would have run before it and written its done file
    expect(String((await exchange.exchange(exchangeRequest('hello.php'))).body)).toMatch(/^hello/);
    expect(existsSync(done)).toBe(false);
  });

  it('needs the resolved script, and a Content-Length for a streamed body', async () => {
    const exchange = new FastCgiExchange(backend);
    await expect(exchange.exchange({ ...exchangeRequest('hello.php'), script: null })).rejects.toThrow(/script/);
    await expect(
      exchange.exchange(exchangeRequest('post-sha256.php', { method: 'POST', body: new PassThrough() })),
    ).rejects.toThrow(/Content-Length/);
  });
});

describe('FastCgiExchange to php-fpm: send_timeout', () => {
  it('aborts a response whose reader stopped reading (WP_WORKER_STREAM_STALLED); the connection pool goes on', async () => {
    const pool = createFastCgiClientPool({ address: fpm.address, maxConnections: 1, stallTimeoutMs: 200 });
    const exchange = new FastCgiExchange(pool);
    const big = await exchange.exchange(exchangeRequest('big-response.php', { query: 'mb=8' }));
    const body = big.body as Readable;
    const failed = new Promise<unknown>((resolve) => body.once('error', resolve));
    body.read(0);
    expect(await failed).toBeInstanceOf(StreamStalledError);
    expect(String((await exchange.exchange(exchangeRequest('hello.php'))).body)).toMatch(/^hello from fpm-fcgi/);
    await pool.close();
  });
});

describe('FastCgiExchange to a php-fpm that is not there', () => {
  it('fails with WP_FASTCGI_CONNECT_FAILED (502), as nginx answers for a php-fpm that is down', async () => {
    const pool = createFastCgiClientPool({ address: `unix:${join(flags, 'no-such.sock')}` });
    const error = await new FastCgiExchange(pool).exchange(exchangeRequest('hello.php')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(FastCgiConnectFailedError);
    expect((error as FastCgiConnectFailedError).statusCode).toBe(502);
    await pool.close();
  });
});
