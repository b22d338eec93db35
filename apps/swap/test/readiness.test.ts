// waitReady and probe against real local HTTP servers: one that answers 503 until it is told to be
// ready, one that answers 503 for ever, one that accepts and never answers, and a closed port.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { NotReadyError } from '../src/errors.js';
import { probe, waitReady } from '../src/readiness.js';

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/** An HTTP server on 127.0.0.1:0; `handler` answers each request. Returns its /ready URL. */
async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server: Server = createServer(handler);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push({
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  });
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/ready`;
}

/** A TCP server that accepts and never writes a byte. */
async function silentServer(): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  servers.push({
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  });
  return `http://127.0.0.1:${(server.address() as { port: number }).port}/ready`;
}

/** A port nothing listens on (bound, read, closed). */
async function closedUrl(): Promise<string> {
  const server = createTcpServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}/ready`;
}

const never = new Promise<never>(() => {});

describe('waitReady', () => {
  it('keeps polling through 503s and returns on the first 200', async () => {
    const paths: string[] = [];
    const url = await httpServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(paths.length <= 3 ? 503 : 200).end();
    });
    await waitReady({ url, timeoutMs: 20_000, exited: never, intervalMs: 10 });
    expect(paths).toEqual(['/ready', '/ready', '/ready', '/ready']);
  });

  it('gives up with NotReadyError naming the url, the timeout and the last answer (503)', async () => {
    const url = await httpServer((_req, res) => res.writeHead(503).end('starting'));
    const error = await waitReady({ url, timeoutMs: 300, exited: never, intervalMs: 10 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotReadyError);
    expect((error as NotReadyError).code).toBe('WP_SWAP_NOT_READY');
    expect((error as Error).message).toBe(`${url} not ready within 300 ms: last answered 503`);
  });

  it('gives up on a server that accepts and never answers: "last no answer"', async () => {
    const url = await silentServer();
    const error = await waitReady({ url, timeoutMs: 300, exited: never }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NotReadyError);
    expect((error as Error).message).toMatch(new RegExp(`^${url} not ready within 300 ms: last no answer \\(.+\\)$`));
  });

  it('says why nothing answered on a closed port (connection refused)', async () => {
    const url = await closedUrl();
    const error = await waitReady({ url, timeoutMs: 300, exited: never, intervalMs: 10 }).catch((e: unknown) => e);
    expect((error as Error).message).toMatch(/last no answer \(.*ECONNREFUSED.*\)$/);
  });

  it('stops polling, without an error, once the child has exited (the caller reports the exit)', async () => {
    let answered!: () => void;
    const firstAnswer = new Promise<void>((resolve) => {
      answered = resolve;
    });
    const url = await httpServer((_req, res) => {
      res.writeHead(503).end();
      answered();
    });
    let exit!: () => void;
    const exited = new Promise<void>((resolve) => {
      exit = resolve;
    });
    const wait = waitReady({ url, timeoutMs: 60_000, exited, intervalMs: 10 });
    // it polls a 503 first, then the child exits: waitReady returns long before its 60 s deadline
    await firstAnswer;
    exit();
    await expect(wait).resolves.toBeUndefined();
  });
});

describe('probe', () => {
  it('returns the status code of one GET', async () => {
    let status = 200;
    const url = await httpServer((_req, res) => res.writeHead(status).end());
    expect(await probe(url)).toBe(200);
    status = 503;
    expect(await probe(url)).toBe(503);
  });

  it('returns 0 when nothing answers: silent within the timeout, or a closed port', async () => {
    expect(await probe(await silentServer(), 200)).toBe(0);
    expect(await probe(await closedUrl(), 200)).toBe(0);
  });
});
