// HTTP/1.1 pipelining over a real connection, against one php-cgi process: a request sent behind
// an unfinished response waits for it without reaching PHP (as nginx serves a connection's
// requests one at a time), so one connection cannot hold the pool or fill its queue.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { MAX_PIPELINED } from '../src/http/pipelined-turn.js';
import { warmpool } from '../src/index.js';

const ROOT = fileURLToPath(new URL('../../../test/fixtures/sites/classic-app', import.meta.url));
const flags = mkdtempSync(join(tmpdir(), 'warmpool-pipelining-'));
let flagCount = 0;
const newFlag = () => join(flags, `flag-${++flagCount}`);
afterAll(() => rmSync(flags, { recursive: true, force: true }));

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function listen(logged: string[] = []): Promise<{ app: FastifyInstance; port: number }> {
  const stream = { write: (line: string) => void logged.push((JSON.parse(line) as { msg: string }).msg) };
  const app = Fastify({ logger: { level: 'warn', stream } });
  apps.push(app);
  // fastcgi.pipelining off: another client's request waits in the pool's queue, never behind a
  // running script on php-cgi's connection (what it does when that script has only just begun)
  await app.register(warmpool, { fastcgi: { root: ROOT, pipelining: false }, pool: { num_workers: 1 } });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, port: (app.server.address() as { port: number }).port };
}

async function eventually(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
}

const get = (path: string, close = false) =>
  `GET ${path} HTTP/1.1\r\nHost: localhost\r\n${close ? 'Connection: close\r\n' : ''}\r\n`;

/** A connection with `text` written at once; `closed` is everything read until the server closed it. */
function pipeline(port: number, text: string): { socket: Socket; closed: Promise<string> } {
  const socket = connect(port, '127.0.0.1', () => socket.write(text));
  let read = '';
  socket.on('data', (chunk: Buffer) => {
    read += chunk.toString('latin1');
  });
  const closed = new Promise<string>((resolve, reject) => {
    socket.on('error', reject);
    socket.on('close', () => resolve(read));
  });
  return { socket, closed };
}

const statuses = (text: string) => [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));

describe('HTTP/1.1 pipelining (classic mode, one php-cgi process)', () => {
  it("a connection's requests reach PHP one at a time: the pool queue stays free for other clients", async () => {
    const { app, port } = await listen();
    const flag = newFlag();
    const posts = Array.from({ length: 5 }, (_, i) => get(`/post/p${i}`, i === 4));
    const client = pipeline(port, get(`/wait.php?flag=${flag}`) + posts.join(''));
    await eventually(() => app.warmpool.stats().workers.working === 1, 'wait.php to hold the process');
    // the five pipelined behind it wait for its response, not in the pool's queue (they were all
    // queued there before: 5)
    const before = app.warmpool.stats();
    expect([before.queued, before.requests]).toEqual([0, 1]);
    // another client is queued alone, next in line for the process
    const other = request(`http://127.0.0.1:${port}/post/other`);
    await eventually(() => app.warmpool.stats().queued === 1, 'the other client to be queued');
    writeFileSync(flag, '');
    const answer = await other;
    expect([answer.statusCode, await answer.body.text()]).toEqual([200, expect.stringContaining('Post: other')]);
    const text = await client.closed;
    expect(statuses(text)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(text.indexOf('released')).toBeLessThan(text.indexOf('Post: p0'));
    for (let i = 1; i < 5; i++) expect(text.indexOf(`Post: p${i - 1}`)).toBeLessThan(text.indexOf(`Post: p${i}`));
  });

  it('requests waiting on a connection that closes never reach PHP', async () => {
    const { app, port } = await listen();
    const flag = newFlag();
    const client = pipeline(port, get(`/wait.php?flag=${flag}`) + get('/post/a') + get('/post/b'));
    await eventually(() => app.warmpool.stats().workers.working === 1, 'wait.php to hold the process');
    client.socket.destroy();
    await client.closed;
    writeFileSync(flag, '');
    await eventually(() => app.warmpool.stats().workers.ready === 1, 'the process to be free');
    expect(app.warmpool.stats().requests).toBe(1);
    const after = await request(`http://127.0.0.1:${port}/post/after`);
    expect(after.statusCode).toBe(200);
    await after.body.dump();
  });

  it(`a connection pipelining more than ${MAX_PIPELINED} requests behind an unfinished one gets those answered, then is closed`, async () => {
    const logged: string[] = [];
    const { app, port } = await listen(logged);
    const flag = newFlag();
    // a static file among them is answered at once; the rest take the resolver's slower misses
    const behind = Array.from({ length: 1000 }, (_, i) => get(i === 10 ? '/style.css' : `/post/q${i}`)).join('');
    const client = pipeline(port, get(`/wait.php?flag=${flag}`) + behind);
    await eventually(() => logged.some((msg) => msg.includes(`pipelined more than ${MAX_PIPELINED}`)), 'the bound');
    await eventually(() => app.warmpool.stats().workers.working === 1, 'wait.php to hold the process');
    writeFileSync(flag, '');
    const text = await client.closed;
    // wait.php and the MAX_PIPELINED parsed right behind it, in order; none of the rest ran
    expect(statuses(text)).toEqual(Array.from({ length: MAX_PIPELINED + 1 }, () => 200));
    const posts = Array.from({ length: MAX_PIPELINED }, (_, i) => i).filter((i) => i !== 10);
    for (let k = 1; k < posts.length; k++)
      expect(text.indexOf(`Post: q${posts[k - 1]}<`)).toBeLessThan(text.indexOf(`Post: q${posts[k]}<`));
    expect(text.indexOf('Post: q9<')).toBeLessThan(text.indexOf('text/css'));
    expect(text.indexOf('text/css')).toBeLessThan(text.indexOf('Post: q11<'));
    expect(text).not.toContain(`Post: q${MAX_PIPELINED}<`);
    const heads = text.split('\r\n\r\n').filter((part) => part.includes('HTTP/1.1 200'));
    expect(heads.at(-1)).toMatch(/\r\nconnection: close/i);
    expect(heads.slice(0, -1).every((head) => !/connection: close/i.test(head))).toBe(true);
    expect(app.warmpool.stats().requests).toBe(MAX_PIPELINED);
  });
});
