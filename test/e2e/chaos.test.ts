// Chaos under load: workers crash, hang past exec_ttl, leak past max_worker_memory, exit on their
// own and write garbage, while 64 connections hammer the server for CHAOS_SECONDS (10 in CI,
// 60 with `pnpm test:soak`), and hostile clients do their worst beside them: clients that give up
// while queued, readers that stop reading a stream, HTTP/2 streams opened and reset at once. Every
// request must get a response with a documented status, the pool must come back to size, and
// nothing may be left behind: php processes, temp uploads, memory.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect as connectH2, constants } from 'node:http2';
import { connect as connectTls } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormData, Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, phpPidsStamped } from '../helpers/php.js';
import { makeTlsPair } from '../helpers/tls-pair.js';

const SECONDS = Number(process.env.CHAOS_SECONDS ?? 10);
const CONNECTIONS = 64;
const WORKERS = 4;

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

// Each server stamps its environment (its workers inherit it), so "no php left" counts this
// server's workers only: not another run's on the same machine, nor an earlier test's.
const STAMP = 'CHAOS_SERVER_ID';
function chaosWorkers(id: string): number[] {
  return phpPidsStamped(STAMP, id);
}

describe(`chaos under load (${SECONDS}s, ${CONNECTIONS} connections)`, () => {
  const uploads = mkdtempSync(join(tmpdir(), 'warmpool-chaos-'));
  const tlsDir = mkdtempSync(join(tmpdir(), 'warmpool-chaos-tls-'));
  let tls: { ca: string; cert: string; key: string };
  beforeAll(async () => {
    tls = await makeTlsPair(tlsDir);
  });
  const tlsOptions = () => ({ ca: readFileSync(tls.ca), servername: 'localhost' });
  // every server started, so a failed test cannot leave one (and its workers) running
  const servers: ChildProcess[] = [];
  const id = randomUUID();
  const startServer = (env: Record<string, string>) => {
    const child = spawn(process.execPath, [fileURLToPath(new URL('../helpers/chaos-server.mjs', import.meta.url))], {
      env: {
        ...process.env,
        CHAOS_WORKER: fixture('chaos.php'),
        UPLOADS_DIR: uploads,
        WORKERS: String(WORKERS),
        TLS_CERT: tls.cert,
        TLS_KEY: tls.key,
        [STAMP]: id,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    servers.push(child);
    return child;
  };
  afterAll(() => {
    for (const s of servers) if (s.exitCode === null && s.signalCode === null) s.kill('SIGKILL');
    rmSync(uploads, { recursive: true, force: true });
    rmSync(tlsDir, { recursive: true, force: true });
  });

  it(
    'answers every request with 200/502/503/504, recovers, and leaks nothing',
    async () => {
      const server = startServer({});
      const [line] = (await once(server.stdout!, 'data')) as [Buffer];
      const port = Number(/listening (\d+)/.exec(line.toString())![1]);
      const client = new Pool(`https://127.0.0.1:${port}`, {
        connections: CONNECTIONS,
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
        connect: tlsOptions(),
      });
      const statuses = new Map<number, number>();
      let networkErrors = 0;
      const deadline = Date.now() + SECONDS * 1000;
      const rss: number[] = [];
      const sampler = setInterval(() => rss.push(rssMiB(server.pid!)), 500);
      const upload = Buffer.alloc(64 * 1024, 9);
      const loop = async (n: number) => {
        for (let i = 0; Date.now() < deadline; i++) {
          let body: FormData | undefined;
          if ((n + i) % 5 === 0) {
            body = new FormData();
            body.append('file', new Blob([upload]), 'chaos.bin');
          }
          try {
            const res = await client.request({ path: `/?n=${n}&i=${i}`, method: body ? 'POST' : 'GET', body });
            await res.body.dump();
            statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          } catch {
            networkErrors++;
          }
        }
      };
      // hostile clients beside the load, until the same deadline
      const hostile = { abandoned: 0, stalled: 0, resetStreams: 0 };
      // their own connections: each request reaches the server, then its client gives up
      const quitters = new Pool(`https://127.0.0.1:${port}`, { connections: 4, connect: tlsOptions() });
      const abandon = async () => {
        while (Date.now() < deadline) {
          try {
            const signal = AbortSignal.timeout(5 + Math.floor(Math.random() * 100));
            const res = await quitters.request({ path: '/?abandon', method: 'GET', signal });
            await res.body.dump({ signal, limit: Number.MAX_SAFE_INTEGER });
          } catch {
            hostile.abandoned++;
          }
        }
      };
      const stall = async () => {
        while (Date.now() < deadline) {
          const socket = connectTls({ host: '127.0.0.1', port, ...tlsOptions(), ALPNProtocols: ['http/1.1'] });
          socket.on('error', () => {});
          await once(socket, 'secureConnect').catch(() => {});
          socket.pause();
          socket.write('GET /?stream=1 HTTP/1.1\r\nHost: localhost\r\n\r\n');
          await new Promise((r) => setTimeout(r, 1500));
          socket.destroy();
          hostile.stalled++;
        }
      };
      const reset = async () => {
        while (Date.now() < deadline) {
          const session = connectH2(`https://localhost:${port}`, tlsOptions());
          session.on('error', () => {});
          await once(session, 'connect').catch(() => {});
          const closed: Promise<unknown>[] = [];
          for (let i = 0; i < 100; i++) {
            const stream = session.request({ ':path': '/?stream=1' }, { endStream: true });
            stream.on('error', () => {});
            stream.close(constants.NGHTTP2_CANCEL);
            closed.push(once(stream, 'close'));
          }
          await Promise.all(closed);
          hostile.resetStreams += 100;
          session.destroy();
          await new Promise((r) => setTimeout(r, 200));
        }
      };
      await Promise.all([
        ...Array.from({ length: CONNECTIONS }, (_, n) => loop(n)),
        ...Array.from({ length: 4 }, abandon),
        ...Array.from({ length: 4 }, stall),
        reset(),
      ]);
      clearInterval(sampler);
      await quitters.destroy();

      const total = [...statuses.values()].reduce((a, b) => a + b, 0);
      const summary = Object.fromEntries([...statuses].sort(([a], [b]) => a - b));
      // the pool comes back to num_workers
      let ready: { workers: { ready: number; working: number } } | null = null;
      for (let i = 0; i < 100; i++) {
        const res = await client.request({ path: '/ready', method: 'GET' });
        ready = (await res.body.json()) as typeof ready;
        if (ready!.workers.ready === WORKERS) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await client.close();
      const early = rss[Math.floor(rss.length / 4)] ?? rss[0]!;
      const late = rss.at(-1)!;
      console.log(
        `chaos ${SECONDS}s: ${total} requests ${JSON.stringify(summary)}, network errors ${networkErrors}; ` +
          `server RSS ${early.toFixed(1)} MiB at 25% → ${late.toFixed(1)} MiB at the end (max ${Math.max(...rss).toFixed(1)} MiB); ` +
          `hostile: ${hostile.abandoned} abandoned requests, ${hostile.stalled} stalled readers, ${hostile.resetStreams} reset HTTP/2 streams`,
      );
      expect(networkErrors).toBe(0);
      expect(total).toBeGreaterThan(100);
      for (const status of statuses.keys()) expect([200, 502, 503, 504]).toContain(status);
      expect(statuses.get(200)! / total).toBeGreaterThan(0.5);
      expect(ready!.workers.ready).toBe(WORKERS);
      // flat memory: no growth beyond noise over the run
      expect(late).toBeLessThan(early * 1.5 + 30);

      // shutdown: no php left, no temp upload left
      server.kill('SIGTERM');
      const [code] = await once(server, 'exit');
      expect(code).toBe(0);
      for (let i = 0; i < 50 && chaosWorkers(id).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
      expect(chaosWorkers(id)).toEqual([]);
      expect(readdirSync(uploads)).toEqual([]);
    },
    (SECONDS + 60) * 1000,
  );

  it('a rolling reset under the same load cuts nothing: every request gets a 200', async () => {
    const server = startServer({ CHAOS_RATE: '0' });
    let out = '';
    server.stdout!.on('data', (c: Buffer) => (out += c));
    while (!/listening \d+/.test(out)) await new Promise((r) => setTimeout(r, 20));
    const port = Number(/listening (\d+)/.exec(out)![1]);
    const client = new Pool(`https://127.0.0.1:${port}`, { connections: CONNECTIONS, connect: tlsOptions() });
    const statuses = new Map<number, number>();
    let failures = 0;
    let resetSent = false;
    const loop = async () => {
      while (!out.includes('reset done')) {
        try {
          const res = await client.request({ path: '/', method: 'GET' });
          await res.body.dump();
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        } catch {
          failures++;
        }
        if (!resetSent && [...statuses.values()].reduce((a, b) => a + b, 0) > 200) {
          resetSent = true;
          server.kill('SIGUSR2');
        }
      }
    };
    await Promise.all(Array.from({ length: CONNECTIONS }, loop));
    await client.close();
    console.log(`reset under load: ${JSON.stringify(Object.fromEntries(statuses))}, failures ${failures}`);
    expect(failures).toBe(0);
    expect([...statuses.keys()]).toEqual([200]);
    server.kill('SIGTERM');
    await once(server, 'exit');
  }, 60_000);
});
