// The FastCGI client pool against a real php-fpm (pm static, its own config and socket in a temp
// dir): keep-alive reuse counted at a socket in between, streamed bodies, abort, and the 502 / 503 /
// 504 error classes for a php-fpm that is down, full, or hung.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FastCgiAbortedError,
  FastCgiClosedError,
  FastCgiConnectFailedError,
  FastCgiConnectTimeoutError,
  type FastCgiError,
  FastCgiNoFreeConnectionError,
  FastCgiOverloadedError,
  FastCgiQueueFullError,
  FastCgiReadTimeoutError,
  InvalidFastCgiOptionError,
} from '../../src/errors.js';
import type { FastCgiAddress } from '../../src/fastcgi/address.js';
import { createFastCgiClientPool, type FastCgiClientPool } from '../../src/fastcgi/client-pool.js';
import { connectFastCgi } from '../../src/fastcgi/connect.js';
import { eventually, recordingLogger } from '../php-fixtures.js';
import { appendedRuns, freePort, type PhpServer, scriptParams, startPhpFpm, streamed } from './php-servers.js';

/**
 * A unix socket in front of php-fpm that counts the connections it accepts and pipes each to
 * php-fpm: the proof of keep-alive, independent of the pool's own stats.
 */
async function countingProxy(
  target: FastCgiAddress,
): Promise<{ address: FastCgiAddress; accepted(): number; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'warmpool-fcgi-proxy-'));
  const path = join(dir, 'proxy.sock');
  let accepted = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    accepted++;
    const upstream = netConnect(target as { path: string });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    address: { kind: 'unix', path },
    accepted: () => accepted,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const body = async (pool: FastCgiClientPool, script: string, query = '') => {
  const response = await pool.request({ params: scriptParams(script, { query }) });
  const text_ = await text(streamed(response.body));
  await response.done;
  return { ...response, text: text_ };
};

let fpm: PhpServer;
beforeAll(async () => {
  fpm = await startPhpFpm({ maxChildren: 2 });
});
afterAll(async () => {
  await fpm?.stop();
});

describe('FastCGI client pool to php-fpm', () => {
  it('reuses kept-alive connections: many requests, as many connections as run at once', async () => {
    const proxy = await countingProxy(fpm.address);
    const pool = createFastCgiClientPool({ maxConnectionAgeMs: 0, address: proxy.address, maxConnections: 2 });
    try {
      for (let i = 0; i < 10; i++)
        expect((await body(pool, 'hello.php')).text).toMatch(/^hello from fpm-fcgi pid \d+$/);
      expect(proxy.accepted()).toBe(1);
      // Two at once (each answers its head, then waits for a flag), ten more waiting behind them.
      // Both connections have had an answer before any request ends: a second connection still
      // waiting for its first byte (a php-fpm child slow to get a CPU on a busy machine) would be
      // taken for one in php-fpm's accept queue, and the pool would close the first to make way.
      const flag = join(fpm.dir, `kept-${process.pid}.flag`);
      const held = await Promise.all(
        [1, 2].map(() => pool.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }) })),
      );
      const pids = new Set<string>();
      const waiting = Array.from({ length: 10 }, async () =>
        pids.add((await body(pool, 'hello.php')).text.split(' pid ')[1]!),
      );
      writeFileSync(flag, '');
      for (const response of held) await text(streamed(response.body));
      await Promise.all(waiting);
      rmSync(flag, { force: true });
      expect(proxy.accepted()).toBe(2);
      expect(pids.size).toBeLessThanOrEqual(2);
      expect(pool.stats()).toMatchObject({ opened: 2, busy: 0, requests: 22, queued: 0 });
    } finally {
      await pool.close();
      await proxy.close();
    }
  });

  it('streams a large response and a large request body through', async () => {
    const pool = createFastCgiClientPool({ address: fpm.address, maxConnections: 2 });
    try {
      const big = await pool.request({ params: scriptParams('big-response.php', { query: 'mb=6' }) });
      const hash = createHash('sha256');
      for await (const chunk of streamed(big.body)) hash.update(chunk as Buffer);
      expect(hash.digest('hex')).toBe(big.headers['x-body-sha256']![0]);

      const payload = randomBytes(5 * 1024 * 1024);
      async function* upload() {
        for (let offset = 0; offset < payload.length; offset += 65536) yield payload.subarray(offset, offset + 65536);
      }
      const posted = await pool.request({
        params: scriptParams('post-sha256.php', { method: 'POST', contentLength: payload.length }),
        stdin: upload(),
      });
      expect(JSON.parse(await text(streamed(posted.body)))).toEqual({
        sha256: createHash('sha256').update(payload).digest('hex'),
        bytes: payload.length,
        method: 'POST',
      });
    } finally {
      await pool.close();
    }
  });

  it('passes Set-Cookie lines, a 404 and redirects; logs STDERR with the address', async () => {
    const logger = recordingLogger();
    const pool = createFastCgiClientPool({ address: fpm.address, logger });
    try {
      expect((await body(pool, 'cookies.php')).headers['set-cookie']).toHaveLength(3);
      expect((await body(pool, 'not-found.php')).status).toBe(404);
      expect((await body(pool, 'redirect.php', 'to=/elsewhere')).headers.location).toEqual(['/elsewhere']);
      await body(pool, 'stderr.php');
      // php-fpm sends a request's messages as one line; they arrive as one log line each
      expect(logger.lines.filter((l) => l.msg === 'php stderr').map((l) => l.obj.line)).toEqual([
        'PHP message: first line to stderr',
        'PHP message: second line to stderr',
        expect.stringMatching(/^PHP message: PHP Warning: {2}a user warning/),
      ]);
      expect(logger.lines[0]!.obj.address).toBe(`unix:${(fpm.address as { path: string }).path}`);
    } finally {
      await pool.close();
    }
  });

  it('an aborted request retires its connection; the next request is not sent on it', async () => {
    const proxy = await countingProxy(fpm.address);
    const pool = createFastCgiClientPool({ maxConnectionAgeMs: 0, address: proxy.address, maxConnections: 1 });
    const flag = join(fpm.dir, 'pool-abort.flag');
    try {
      await body(pool, 'hello.php');
      const controller = new AbortController();
      const slow = await pool.request({
        params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }),
        signal: controller.signal,
      });
      const closed = new Promise((resolve) => pool.once('connection:close', resolve));
      controller.abort();
      await expect(slow.done).rejects.toBeInstanceOf(FastCgiAbortedError);
      // the next request waits: the aborted request still holds the php-fpm child and the connection
      const next = body(pool, 'hello.php');
      expect(pool.stats().queued).toBe(1);
      writeFileSync(flag, '');
      await closed;
      expect((await next).status).toBe(200);
      expect(proxy.accepted()).toBe(2); // a new connection, not the aborted one
    } finally {
      await pool.close();
      await proxy.close();
    }
  });

  it('closes an idle connection when another one waits in the accept queue (more connections than children)', async () => {
    const one = await startPhpFpm({ maxChildren: 1 });
    const flag = join(one.dir, 'stall.flag');
    // maxConnections 2 > pm.max_children 1; a stalled request would otherwise wait for readTimeoutMs
    const pool = createFastCgiClientPool({ address: one.address, maxConnections: 2, readTimeoutMs: 5_000 });
    try {
      await body(pool, 'hello.php'); // the only child is now bound to kept connection 1
      const slow = pool.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }) });
      const slowResponse = await slow; // connection 1, head received
      const stalled = body(pool, 'hello.php'); // connection 2: php-fpm's accept queue
      await eventually(() => pool.stats().connections === 2, 'the second connection');
      writeFileSync(flag, '');
      await text(streamed(slowResponse.body));
      expect((await stalled).status).toBe(200);
      expect(pool.stats().stalls).toBe(1);
    } finally {
      await pool.close();
      await one.stop();
    }
  });
});

describe('php-fpm with fewer children than maxConnections', () => {
  const round = (pool: FastCgiClientPool, concurrent: number) =>
    Promise.all(Array.from({ length: concurrent }, () => body(pool, 'hello.php')));

  it('keeps to the connections php-fpm serves at once (capacity), so keep-alive holds; says so once', async () => {
    const logger = recordingLogger();
    // pm.max_children 2 (the shared php-fpm), maxConnections 6: four connections would sit in its
    // accept queue, and each request would open one and close another
    const pool = createFastCgiClientPool({ maxConnectionAgeMs: 0, address: fpm.address, maxConnections: 6, logger });
    try {
      for (let i = 0; i < 20; i++) await round(pool, 6);
      await eventually(async () => {
        await round(pool, 6);
        return logger.lines.some((line) => line.level === 'warn');
      }, 'a probe finding no free php-fpm child');
      expect(pool.stats().capacity).toBe(2);
      const opened = pool.stats().opened;
      const stalls = pool.stats().stalls;
      for (let i = 0; i < 30; i++) {
        const texts = (await round(pool, 6)).map((r) => r.text);
        for (const t of texts) expect(t).toMatch(/^hello from fpm-fcgi pid \d+$/);
      }
      // 180 requests on the two kept connections (before, about one new connection per request)
      expect(pool.stats().opened - opened).toBe(0);
      expect(pool.stats().stalls - stalls).toBe(0);
      expect(pool.stats()).toMatchObject({ capacity: 2, connections: 2, maxConnections: 6 });
      const warnings = logger.lines.filter((line) => line.level === 'warn');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.obj).toMatchObject({ capacity: 2, maxConnections: 6 });
      expect(warnings[0]!.msg).toMatch(
        /had no child free for another connection while warmpool held 2 of max_connections \(6\): php-fpm has fewer children \(pm\.max_children\) than that, or clients outside warmpool .* hold some.*Set fastcgi.max_connections to php-fpm's pm.max_children/,
      );
    } finally {
      await pool.close();
    }
  });

  it('names the other sites of this server as the cause when they hold the children, not max_connections', async () => {
    // two sites passing to one pool of 2 children, each with max_connections 2 = pm.max_children (it
    // said "php-fpm has fewer children than max_connections (2) ... set max_connections to pm.max_children")
    const two = await startPhpFpm({ maxChildren: 2 });
    const flag = join(two.dir, 'held.flag');
    const logger = recordingLogger();
    const busy = createFastCgiClientPool({ maxConnectionAgeMs: 0, address: two.address, maxConnections: 2 });
    const waiting = createFastCgiClientPool({ maxConnectionAgeMs: 0, address: two.address, maxConnections: 2, logger });
    try {
      // the other site runs a script on one child the whole time; this one gets the other child,
      // and its second connection waits in php-fpm's accept queue
      const held = body(busy, 'wait-for-flag.php', `flag=${flag}`);
      await eventually(() => busy.stats().busy === 1, 'the other site running a script on a child');
      await eventually(async () => {
        for (const answer of await round(waiting, 2)) expect(answer.text).toMatch(/^hello from fpm-fcgi pid \d+$/);
        return logger.lines.some((line) => line.level === 'warn');
      }, 'a probe finding no free php-fpm child');
      writeFileSync(flag, '');
      await held;
      const warnings = logger.lines.filter((line) => line.level === 'warn');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]!.obj).toMatchObject({ otherSites: 1, otherConnections: 1, maxConnections: 2 });
      expect(warnings[0]!.msg).toMatch(
        /had no child free for another connection while this site held \d: 1 other site of this server passes to the same php-fpm and held 1 connection to it, and their max_connections and this site's add up to 4; .*pm\.max_children = 4, or each site a php-fpm pool of its own/,
      );
      expect(warnings[0]!.msg).not.toMatch(/set fastcgi\.max_connections/i);
    } finally {
      await busy.close();
      await waiting.close();
      await two.stop();
    }
  });

  it('learns the capacity again after a quiet spell (pm = ondemand spawns children again under load)', async () => {
    const pool = createFastCgiClientPool({
      maxConnectionAgeMs: 0,
      address: fpm.address,
      maxConnections: 6,
      relearnAfterIdleMs: 200,
    });
    try {
      await eventually(async () => {
        await round(pool, 6);
        return pool.stats().capacity === 2;
      }, "the capacity learnt: 2, php-fpm's children");
      // busy again at once: still 2
      await round(pool, 1);
      expect(pool.stats().capacity).toBe(2);
      // nothing ran for longer than relearnAfterIdleMs: the next burst may open maxConnections again
      const quietSince = Date.now();
      await eventually(() => Date.now() - quietSince > 250, 'a quiet spell');
      // what `warmpool workers` shows after it, before any request comes
      expect(pool.stats().capacity).toBe(6);
      const answers = await round(pool, 1);
      expect(answers[0]!.text).toMatch(/^hello from fpm-fcgi/);
      expect(pool.stats().capacity).toBe(6);
    } finally {
      await pool.close();
    }
  });

  it('grows again when php-fpm has a free child (a probe answered): children another client held', async () => {
    const three = await startPhpFpm({ maxChildren: 3 });
    const flag = join(three.dir, 'held.flag');
    const other = createFastCgiClientPool({ maxConnectionAgeMs: 0, address: three.address, maxConnections: 2 });
    const pool = createFastCgiClientPool({
      maxConnectionAgeMs: 0,
      address: three.address,
      maxConnections: 3,
      logger: recordingLogger(),
    });
    try {
      // another client holds two of the three children
      const held = await Promise.all(
        [1, 2].map(() => other.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }) })),
      );
      for (let i = 0; i < 5; i++) await round(pool, 3);
      await eventually(async () => {
        await round(pool, 3);
        return pool.stats().capacity === 1;
      }, 'the capacity to come down to the one free child');
      writeFileSync(flag, '');
      for (const response of held) await text(streamed(response.body));
      await other.close(); // its connections close: php-fpm's two children are free again
      await eventually(
        async () => {
          await round(pool, 3);
          return pool.stats().capacity === 3;
        },
        'probes to find the freed children',
        20_000,
      );
      // the probe a held child never answered is answered now; then the three kept connections do
      await eventually(async () => {
        const opened = pool.stats().opened;
        for (let i = 0; i < 10; i++) await round(pool, 3);
        return pool.stats().opened === opened;
      }, 'a batch of requests on the kept connections alone');
      expect(pool.stats()).toMatchObject({ capacity: 3, connections: 3 });
    } finally {
      await other.close();
      await pool.close();
      await three.stop();
    }
  });
});

describe('scripts that run a while before their first byte', () => {
  it('are not taken for connections in the accept queue: every child is used', async () => {
    const three = await startPhpFpm({ maxChildren: 3 });
    // maxConnectionAgeMs 1: each request on a new connection, as happens after keepalive_time
    const pool = createFastCgiClientPool({ address: three.address, maxConnections: 3, maxConnectionAgeMs: 1 });
    try {
      for (let round = 0; round < 3; round++) {
        const dir = mkdtempSync(join(three.dir, 'barrier-'));
        const barrier = () => body(pool, 'barrier.php', `dir=${dir}&n=3`);
        const first = [barrier(), barrier()];
        await eventually(() => readdirSync(dir).length === 2, 'two requests running, silent');
        // a quick request ends meanwhile: the two silent connections hold children, not queue for them
        expect((await body(pool, 'hello.php')).status).toBe(200);
        const texts = (await Promise.all([...first, barrier()])).map((response) => response.text);
        expect(texts).toEqual(['met', 'met', 'met']);
      }
    } finally {
      await pool.close();
      await three.stop();
    }
  });
});

describe('two pools of one process to the same php-fpm (two sites on one pool file)', () => {
  // a site's pool; its connections are kept however long the test takes (maxConnectionAgeMs: 0)
  const sitePool = () =>
    createFastCgiClientPool({ maxConnectionAgeMs: 0, address: fpm.address, maxConnections: 2, readTimeoutMs: 5_000 });
  // a script on each of php-fpm's two children, running until `flag` exists
  const holdBothChildren = (pool: FastCgiClientPool, flag: string) =>
    Promise.all(
      [1, 2].map(() => pool.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }) })),
    );

  it("one pool's idle kept connections do not hold the children the other waits for", async () => {
    // pm.max_children 2: after a script on each child, pool a keeps both children on idle connections
    const [a, b] = [sitePool(), sitePool()];
    try {
      const flag = join(fpm.dir, 'two-pools.flag');
      const held = await holdBothChildren(a, flag);
      writeFileSync(flag, '');
      for (const response of held) await text(streamed(response.body));
      await eventually(() => a.stats().idle === 2, "pool a's two connections to idle");
      expect(a.stats().connections).toBe(2);
      // before: b's connection waited in php-fpm's accept queue until a's idled out (60 s)
      expect((await body(b, 'hello.php')).text).toMatch(/^hello from fpm-fcgi pid \d+$/);
      expect(a.stats().stalls).toBe(1); // it closed one idle connection for b
      await eventually(() => a.stats().connections === 1, "pool a's closed connection to be gone");
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a request of one waits while the other's requests run; their connections are not kept for idling", async () => {
    const [a, b] = [sitePool(), sitePool()];
    const flag = join(fpm.dir, 'two-pools-busy.flag');
    try {
      // both children run pool a's requests: nothing is idle when b's connection starts waiting
      const held = await holdBothChildren(a, flag);
      const waiting = body(b, 'hello.php');
      await eventually(() => b.stats().connections === 1, "b's connection in php-fpm's accept queue");
      writeFileSync(flag, '');
      for (const response of held) await text(streamed(response.body));
      // before: a kept both connections idle, and b waited for them to idle out (60 s)
      expect((await waiting).text).toMatch(/^hello from fpm-fcgi pid \d+$/);
      expect(a.stats().stalls).toBeGreaterThanOrEqual(1);
    } finally {
      rmSync(flag, { force: true });
      await a.close();
      await b.close();
    }
  });
});

describe('maxConnectionAgeMs: php-fpm children taking turns with other clients', () => {
  it('a client outside the pool gets a child while the pool stays busy: kept connections retire at their age', async () => {
    const one = await startPhpFpm({ maxChildren: 1 });
    const pool = createFastCgiClientPool({ address: one.address, maxConnections: 1, maxConnectionAgeMs: 200 });
    let busy = true;
    const loop = (async () => {
      while (busy) await body(pool, 'hello.php');
    })();
    try {
      await eventually(() => pool.stats().requests > 10, 'the pool to keep the only child busy');
      // another client of the same php-fpm (nginx serving another site, a monitoring check):
      // before, it waited in the accept queue for as long as the pool stayed busy
      const outside = await connectFastCgi(one.address);
      const call = outside.request({ params: scriptParams('hello.php'), readTimeoutMs: 10_000 });
      expect(await text(call.stdout)).toMatch(/hello from fpm-fcgi pid \d+$/);
      await call.done;
      outside.close();
      expect(pool.stats().recycled).toBeGreaterThanOrEqual(1);
    } finally {
      busy = false;
      await loop;
      await pool.close();
      await one.stop();
    }
  });
});

describe('503: overloaded', () => {
  it('pm.max_children=1 with a bounded queue: one runs, one waits, the next gets QUEUE_FULL', async () => {
    const one = await startPhpFpm({ maxChildren: 1 });
    const flag = join(one.dir, 'queue.flag');
    const pool = createFastCgiClientPool({ address: one.address, maxConnections: 1, maxQueue: 1 });
    try {
      const running = await pool.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }) });
      const waiting = body(pool, 'hello.php');
      expect(pool.stats().queued).toBe(1);
      const error = await pool.request({ params: scriptParams('hello.php') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FastCgiQueueFullError);
      expect((error as FastCgiError).statusCode).toBe(503);
      writeFileSync(flag, '');
      expect(await text(streamed(running.body))).toBe('started\nfinished\n');
      expect((await waiting).status).toBe(200);
      expect(pool.stats().errors).toEqual({ WP_FASTCGI_QUEUE_FULL: 1 });
    } finally {
      await pool.close();
      await one.stop();
    }
  });

  it('a request that waits longer than queueTimeoutMs gets NO_FREE_CONNECTION; an aborted wait leaves the queue', async () => {
    const one = await startPhpFpm({ maxChildren: 1 });
    const flag = join(one.dir, 'wait.flag');
    const pool = createFastCgiClientPool({ address: one.address, maxConnections: 1, queueTimeoutMs: 200 });
    try {
      const running = await pool.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }) });
      const error = await pool.request({ params: scriptParams('hello.php') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FastCgiNoFreeConnectionError);
      expect((error as FastCgiError).statusCode).toBe(503);
      const controller = new AbortController();
      const waiting = pool.request({ params: scriptParams('hello.php'), signal: controller.signal });
      expect(pool.stats().queued).toBe(1);
      controller.abort();
      await expect(waiting).rejects.toBeInstanceOf(FastCgiAbortedError);
      expect(pool.stats().queued).toBe(0);
      writeFileSync(flag, '');
      await text(streamed(running.body));
      await running.done;
    } finally {
      await pool.close();
      await one.stop();
    }
  });

  it("a full accept queue on php-fpm's unix socket (EAGAIN) is OVERLOADED", async () => {
    // listen.backlog 0: with the only child busy, one connection waits in the queue, the next is refused
    const one = await startPhpFpm({ maxChildren: 1, backlog: 0 });
    const flag = join(one.dir, 'backlog.flag');
    const pool = createFastCgiClientPool({ address: one.address, maxConnections: 4 });
    try {
      const running = await pool.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }) });
      const queued = body(pool, 'hello.php');
      await eventually(() => pool.stats().connections === 2, 'the queued connection');
      const error = await pool.request({ params: scriptParams('hello.php') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FastCgiOverloadedError);
      expect((error as FastCgiError).statusCode).toBe(503);
      writeFileSync(flag, '');
      await text(streamed(running.body));
      expect((await queued).status).toBe(200);
    } finally {
      await pool.close();
      await one.stop();
    }
  });
});

describe('504: timed out', () => {
  it('a hung script gets READ_TIMEOUT; the pool replaces the connection', async () => {
    const pool = createFastCgiClientPool({ address: fpm.address, readTimeoutMs: 300, maxConnections: 2 });
    try {
      const error = await pool.request({ params: scriptParams('hangs.php') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FastCgiReadTimeoutError);
      expect((error as FastCgiError).statusCode).toBe(504);
      // the log line names the setting to raise
      expect((error as Error).message).toMatch(
        /sent nothing for 300 ms \(exec_ttl: raise http\.pool\.supervisor\.exec_ttl/,
      );
      await eventually(() => pool.stats().connections === 0, 'the timed-out connection to close');
      expect((await body(pool, 'hello.php')).status).toBe(200);
    } finally {
      await pool.close();
    }
  });

  it('php-fpm over TCP with a full accept queue: CONNECT_TIMEOUT', async () => {
    const tcp = await startPhpFpm({ maxChildren: 1, backlog: 0, tcpPort: await freePort() });
    const flag = join(tcp.dir, 'tcp.flag');
    const pool = createFastCgiClientPool({ address: tcp.address, maxConnections: 4, connectTimeoutMs: 300 });
    try {
      const running = await pool.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }) });
      const queued = body(pool, 'hello.php');
      await eventually(() => pool.stats().connections === 2, 'the queued connection');
      // the kernel drops the SYN of a listener whose accept queue is full: the connect hangs
      const error = await pool.request({ params: scriptParams('hello.php') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FastCgiConnectTimeoutError);
      expect((error as FastCgiError).statusCode).toBe(504);
      writeFileSync(flag, '');
      await text(streamed(running.body));
      expect((await queued).status).toBe(200);
    } finally {
      await pool.close();
      await tcp.stop();
    }
  });
});

describe('502: down', () => {
  it('php-fpm stopped: its kept connection closes, the next request gets CONNECT_FAILED naming the address', async () => {
    const server = await startPhpFpm({ maxChildren: 1 });
    const pool = createFastCgiClientPool({ address: server.address });
    try {
      await body(pool, 'hello.php');
      const closed = new Promise((resolve) => pool.once('connection:close', resolve));
      await server.stop();
      await closed; // the kept connection went with php-fpm
      const error = await pool.request({ params: scriptParams('hello.php') }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(FastCgiConnectFailedError);
      expect((error as FastCgiError).statusCode).toBe(502);
      expect((error as Error).message).toContain((server.address as { path: string }).path);
    } finally {
      await pool.close();
    }
  });

  it('a kept connection that php-fpm closed after pm.max_requests is retried on a new one, not failed', async () => {
    const recycling = await startPhpFpm({ maxChildren: 1, maxRequests: 2 });
    const pool = createFastCgiClientPool({ address: recycling.address, maxConnections: 1 });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 9; i++) statuses.push((await body(pool, 'hello.php')).status);
      const posted = await pool.request({
        params: scriptParams('post-sha256.php', { method: 'POST', contentLength: 3 }),
        stdin: Buffer.from('abc'),
      });
      expect(JSON.parse(await text(streamed(posted.body))).bytes).toBe(3);
      expect(statuses).toEqual(Array(9).fill(200));
      expect(pool.stats().opened).toBeGreaterThanOrEqual(5);
      expect(pool.stats().errors).toEqual({});
    } finally {
      await pool.close();
      await recycling.stop();
    }
  });

  it('pm.max_requests under concurrent traffic, GETs pipelined and POSTs: none fails, each runs once', async () => {
    // every other request is some child's last: a retry on another kept connection would often
    // meet a closing child again, so retries go to new connections
    const recycling = await startPhpFpm({ maxChildren: 2, maxRequests: 2 });
    const pool = createFastCgiClientPool({ address: recycling.address, maxConnections: 2, queueBehindMs: 3_600_000 });
    const log = join(mkdtempSync(join(tmpdir(), 'warmpool-fpm-recycling-')), 'runs');
    try {
      const failures: string[] = [];
      const tags: string[] = [];
      await Promise.all(
        Array.from({ length: 8 }, async (_, client) => {
          for (let i = 0; i < 20; i++) {
            const tag = `${client}-${i}`;
            tags.push(tag);
            const post = i % 2 === 1;
            const params = scriptParams('append.php', { query: `log=${log}&tag=${tag}` });
            try {
              const response = await pool.request(
                post
                  ? {
                      params: { ...params, REQUEST_METHOD: 'POST', CONTENT_LENGTH: '3' },
                      stdin: Buffer.from('abc'),
                    }
                  : { params, replayable: true, script: 'append.php' },
              );
              expect(await text(streamed(response.body))).toMatch(new RegExp(`^appended ${tag} pid`));
            } catch (error) {
              failures.push(`${tag}: ${(error as Error).message}`);
            }
          }
        }),
      );
      expect(failures).toEqual([]);
      const ran = appendedRuns(log).map((line) => line.split(' ')[1]);
      expect(ran.sort()).toEqual(tags.sort());
      expect(pool.stats().retries).toBeGreaterThan(0);
    } finally {
      await pool.close();
      await recycling.stop();
    }
  });
});

describe('options and closing', () => {
  it('refuses bad options, naming them', () => {
    expect(() => createFastCgiClientPool({ address: 'php-fpm' })).toThrow(InvalidFastCgiOptionError);
    expect(() => createFastCgiClientPool({ address: 'unix:relative.sock' })).toThrow(/absolute socket path/);
    expect(() => createFastCgiClientPool({ address: '127.0.0.1:0' })).toThrow(/port from 1 to 65535/);
    expect(() => createFastCgiClientPool({ address: '127.0.0.1:9000', maxConnections: 0 })).toThrow(
      /"maxConnections": must be an integer ≥ 1/,
    );
    expect(() => createFastCgiClientPool({ address: '127.0.0.1:9000', max_connections: 2 } as never)).toThrow(
      /"max_connections": is not a FastCGI client option/,
    );
    expect(createFastCgiClientPool({ address: '[::1]:9000' }).address).toEqual({
      kind: 'tcp',
      host: '::1',
      port: 9000,
    });
  });

  it("releaseIdle() gives php-fpm's children back at once to another client, while a request still runs", async () => {
    // php-fpm serves one connection per child: an idle kept-alive connection pins a child. A draining
    // server (one colour of a blue-green swap) lets go of its idle ones so the other colour is served.
    const two = await startPhpFpm({ maxChildren: 2 });
    const opened = join(two.dir, 'opened.flag');
    const slowFlag = join(two.dir, 'slow.flag');
    const slowDone = join(two.dir, 'slow.done');
    const draining = createFastCgiClientPool({ address: two.address, maxConnections: 2 });
    const other = createFastCgiClientPool({ address: two.address, maxConnections: 2 });
    try {
      // two requests at once open two connections, which then sit idle, pinning both children
      const first = await Promise.all(
        [1, 2].map(() => draining.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${opened}` }) })),
      );
      writeFileSync(opened, '');
      for (const response of first) await text(streamed(response.body));
      await eventually(() => draining.stats().idle === 2, 'two idle connections');
      const slow = await draining.request({
        params: scriptParams('wait-for-flag.php', { query: `flag=${slowFlag}&done=${slowDone}` }),
      });
      expect(draining.stats()).toMatchObject({ busy: 1, idle: 1 });

      draining.releaseIdle();
      expect(draining.stats().idle).toBe(0);
      await eventually(() => draining.stats().connections === 1, 'the idle connection closed');
      // the other client is served by the child that was pinned, before the slow request ends
      expect((await body(other, 'hello.php')).status).toBe(200);
      expect(existsSync(slowDone)).toBe(false);

      writeFileSync(slowFlag, '');
      expect(await text(streamed(slow.body))).toBe('started\nfinished\n');
      await slow.done;
      // its connection closed after its request instead of waiting idle
      await eventually(() => draining.stats().connections === 0, 'the last connection closed');
    } finally {
      await draining.close();
      await other.close();
      await two.stop();
    }
  }, 40_000);

  it('knows when php-fpm does not answer, and notices it coming back with no traffic (probe, unreachable)', async () => {
    const port = await freePort();
    const pool = createFastCgiClientPool({ address: `127.0.0.1:${port}`, maxConnections: 1 });
    let late: PhpServer | null = null;
    try {
      const refused = await pool.probe();
      expect(refused).toBeInstanceOf(FastCgiConnectFailedError);
      expect(pool.stats().unreachable).toMatch(/ECONNREFUSED/);
      await expect(body(pool, 'hello.php')).rejects.toBeInstanceOf(FastCgiConnectFailedError);
      // php-fpm starts later: the pool's background check sees it, without any request
      late = await startPhpFpm({ tcpPort: port, maxChildren: 1 });
      await eventually(() => pool.stats().unreachable === null, 'php-fpm seen answering');
      expect((await body(pool, 'hello.php')).status).toBe(200);
      expect(await pool.probe()).toBeNull();
    } finally {
      await pool.close();
      await late?.stop();
    }
  });

  it('two pools to one address (two sites, one php-fpm) learn together that it is down, and back', async () => {
    const port = await freePort();
    const site = createFastCgiClientPool({ address: `127.0.0.1:${port}`, maxConnections: 1 });
    const other = createFastCgiClientPool({ address: `127.0.0.1:${port}`, maxConnections: 1 });
    let late: PhpServer | null = null;
    try {
      expect(await site.probe()).toBeInstanceOf(FastCgiConnectFailedError);
      // the other site's health says so at once, not after its own first request fails
      expect(other.stats().unreachable).toMatch(/ECONNREFUSED/);
      late = await startPhpFpm({ tcpPort: port, maxChildren: 1 });
      await eventually(
        () => site.stats().unreachable === null && other.stats().unreachable === null,
        'both to see php-fpm answering',
      );
      expect((await body(other, 'hello.php')).status).toBe(200);
    } finally {
      await site.close();
      await other.close();
      await late?.stop();
    }
  });

  it('close() fails waiting requests, lets the running one finish, then later requests get CLOSED', async () => {
    const one = await startPhpFpm({ maxChildren: 1 });
    const flag = join(one.dir, 'close.flag');
    const pool = createFastCgiClientPool({ address: one.address, maxConnections: 1 });
    try {
      const running = await pool.request({ params: scriptParams('wait-for-flag.php', { query: `flag=${flag}` }) });
      const waiting = pool.request({ params: scriptParams('hello.php') });
      const closing = pool.close();
      await expect(waiting).rejects.toBeInstanceOf(FastCgiClosedError);
      await expect(pool.request({ params: scriptParams('hello.php') })).rejects.toBeInstanceOf(FastCgiClosedError);
      writeFileSync(flag, '');
      expect(await text(streamed(running.body))).toBe('started\nfinished\n');
      await closing;
      expect(pool.stats()).toMatchObject({ connections: 0, closing: true });
    } finally {
      await one.stop();
    }
  });
});
