import { once } from 'node:events';
import { connect as connectH2, createSecureServer, type Http2ServerResponse } from 'node:http2';
import { connect, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { unsentBytes } from '@warmpool/fastify';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { http2Get } from '../../../test/helpers/http2-raw.js';
import { useTlsPair } from '../../../test/helpers/tls-pair.js';
import { listenUntilClosed, pacedBody, useClosers } from '../../../test/helpers/closers.js';
import { until } from '../../../test/helpers/until.js';
import { DeadSessions } from '../src/dead-sessions.js';

const PING_TIMEOUT_MS = 300;
/** far more than loopback's buffers hold */
const BIG = 64 * 1024 * 1024;

const closers = useClosers();

const tlsPair = useTlsPair('wp-dead-sessions-');

/**
 * An HTTPS listener serving `pacedBody(BIG)` with DeadSessions on it; `responses` are its responses (in
 * order), `sockets` its TCP connections.
 */
async function listen(): Promise<{
  port: number;
  dead: DeadSessions;
  responses: Http2ServerResponse[];
  sockets: Socket[];
}> {
  const responses: Http2ServerResponse[] = [];
  const server = createSecureServer(tlsPair, (_req, res) => {
    responses.push(res);
    pacedBody(BIG).pipe(res);
  });
  const dead = new DeadSessions(pino({ level: 'silent' }), PING_TIMEOUT_MS);
  dead.watch(server);
  const { port, sockets } = await listenUntilClosed(server, closers);
  return { port, dead, responses, sockets };
}

describe('HTTP/2 sessions whose client is gone (DeadSessions)', () => {
  it('destroys a session whose client reset the connection while a response waited, which Node never reports', async () => {
    const { port, dead, responses, sockets } = await listen();
    const tcp = connect(port, '127.0.0.1');
    tcp.on('error', () => {});
    const tls = connectTls({ socket: tcp, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    tls.on('error', () => {});
    await once(tls, 'secureConnect');
    tls.write(http2Get('/big'));
    // the client reads nothing: the server's writes wait for the kernel, which holds what it can
    tls.pause();
    await until(
      () => sockets.length === 1 && unsentBytes(sockets[0]!) > 0,
      'the server to have bytes the kernel cannot take',
    );
    const closed = once(responses[0]!, 'close');
    // the client dies with unread bytes: the kernel answers with a reset, and the server's pending write fails
    tcp.resetAndDestroy();
    await closed;
    // Node 20-24 never report that reset, and only the PING tells (without it this test timed out
    // on Node 20); Node 26 notices it itself, and the watch then has nothing to do
    expect(dead.closed).toBeLessThanOrEqual(1);
    expect(dead.metrics()).toContain(`warmpool_http2_dead_sessions_total ${dead.closed}\n`);
    await until(() => sockets[0]!.destroyed, 'the TCP socket to be closed');
  });

  it('leaves alone a live client at a zero window: it answers the PINGs, its download stays open', async () => {
    const { port, dead, responses } = await listen();
    const session = connectH2(`https://127.0.0.1:${port}`, {
      rejectUnauthorized: false,
      settings: { initialWindowSize: 0 },
    });
    session.on('error', () => {});
    closers.push(() => session.destroy());
    let pings = 0;
    session.on('ping', () => pings++);
    const paused = session.request({ ':path': '/big' });
    paused.on('error', () => {});
    await once(paused, 'response');
    // two PINGs are two stalls seen, the second one a PING timeout after the first was answered
    await until(() => pings >= 2, 'two PINGs from the server');
    expect(dead.closed).toBe(0);
    expect(responses[0]!.writableFinished).toBe(false);
    expect(paused.closed).toBe(false);
    expect(session.destroyed).toBe(false);
  });
});
