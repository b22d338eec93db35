// SIGTERM under load: 64 keep-alive connections keep four sleeping workers busy (a queue of about
// 60 requests) when the server is told to stop. Every request sent before the signal must end in
// a whole 200; after it, a request either gets its 200 or is refused a new connection
// (ECONNREFUSED: nothing was accepted, so nothing was lost). A reset, a truncated body or any other
// status is a cut request, and fails the test.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { isAlive } from '../helpers/php.js';
import { FIXTURES, startServer, stopAllServers } from '../helpers/warmpool-server.js';

const CONNECTIONS = 64;
const SLEEP_MS = 30;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wp-drain-load-'));
});
afterAll(async () => {
  await stopAllServers();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

type Outcome = { sentBeforeSignal: boolean } & (
  | { kind: 'ok'; pid: number }
  | { kind: 'refused' }
  | { kind: 'cut'; reason: string }
);

describe(`SIGTERM under load (${CONNECTIONS} connections)`, () => {
  it('finishes every request in flight; after the signal, requests are served or refused, never cut', async () => {
    const env = {
      HTTP_PORT: String(await freePort()),
      STATUS_PORT: String(await freePort()),
      ADMIN_SOCKET: join(dir, 'admin.sock'),
      FIXTURES,
    };
    const server = startServer(['serve', '-c', join(FIXTURES, 'server', 'drain-load.yaml')], { env });
    await server.ready();
    const client = new Pool(`http://127.0.0.1:${env.HTTP_PORT}`, {
      connections: CONNECTIONS,
      pipelining: 1,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const outcomes: Outcome[] = [];
    let signalled = false;

    const once = async (): Promise<Outcome> => {
      const sentBeforeSignal = !signalled;
      try {
        const res = await client.request({ path: '/', method: 'POST', body: String(SLEEP_MS) });
        const body = await res.body.text();
        const pid = Number(body);
        if (res.statusCode !== 200 || !Number.isInteger(pid) || pid <= 0)
          return {
            sentBeforeSignal,
            kind: 'cut',
            reason: `status ${res.statusCode}, body ${JSON.stringify(body.slice(0, 80))}`,
          };
        return { sentBeforeSignal, kind: 'ok', pid };
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ECONNREFUSED' && !sentBeforeSignal) return { sentBeforeSignal, kind: 'refused' };
        return { sentBeforeSignal, kind: 'cut', reason: `${code ?? ''} ${(error as Error).message}` };
      }
    };
    // each connection's loop: requests back to back until the server refuses or cuts one
    const loop = async () => {
      for (;;) {
        const outcome = await once();
        outcomes.push(outcome);
        if (outcome.kind !== 'ok') return;
      }
    };
    const loops = Promise.all(Array.from({ length: CONNECTIONS }, loop));

    // let the queue fill: every connection has had several answers
    while (outcomes.length < CONNECTIONS * 3) await new Promise((r) => setTimeout(r, 20));
    signalled = true;
    server.child.kill('SIGTERM');
    await loops;
    await client.close();
    const { code } = await server.exited;

    const before = outcomes.filter((o) => o.sentBeforeSignal);
    const after = outcomes.filter((o) => !o.sentBeforeSignal);
    const cut = outcomes.filter((o): o is Extract<Outcome, { kind: 'cut' }> => o.kind === 'cut');
    const count = (list: Outcome[], kind: Outcome['kind']) => list.filter((o) => o.kind === kind).length;
    console.log(
      `SIGTERM under ${CONNECTIONS} connections: ${before.length} requests sent before the signal (${count(before, 'ok')} × 200), ` +
        `${after.length} after it (${count(after, 'ok')} × 200, ${count(after, 'refused')} refused a connection), ${cut.length} cut`,
    );
    expect(cut.map((o) => o.reason)).toEqual([]);
    // the 64 requests in flight at the signal were all among those sent before it, and all got 200
    expect(count(before, 'ok')).toBe(before.length);
    expect(before.length).toBeGreaterThanOrEqual(CONNECTIONS * 4);
    // every loop ended on a refused connection: the listener closed, and only then
    expect(count(after, 'refused')).toBe(CONNECTIONS);
    expect(code).toBe(0);
    expect(server.stdout).toMatch(/✓ stopped in/);
    // the workers went with the server
    const pids = new Set(outcomes.flatMap((o) => (o.kind === 'ok' ? [o.pid] : [])));
    expect(pids.size).toBe(4);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  }, 60_000);
});
