// HTTP/1.1 pipelining: a client may send its next requests before the first is answered. Node
// starts them all at once and writes their responses in order, so one connection could hold every
// PHP process and fill the queue (200 slow requests pipelined on one connection filled a
// one-process pool's queue: everybody else got 503), and a later request that reached a process
// first could deadlock with the one before it: its streamed response waits for the earlier
// response, which waits for the process the later one holds. As nginx does, a request goes to PHP
// once every response before it on its connection is done.
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply } from 'fastify';

/**
 * Requests one connection may have waiting behind its unfinished response; past it the connection
 * is closed. No browser or client library pipelines this deep; waiting requests hold memory and
 * Node reads on, since they write nothing that would make it pause.
 */
export const MAX_PIPELINED = 32;

/** The requests waiting on one connection; one close listener for all of them. */
const waiting = new WeakMap<Socket, Set<(turn: boolean) => void>>();

/**
 * null when the request may go on now (HTTP/2, or no response before it on its connection);
 * otherwise a promise of true once it may, or false if the connection closed first.
 */
export function pipelinedTurn(reply: FastifyReply): Promise<boolean> | null {
  // Node gives a response its socket once every response before it on the connection is finished
  const res = reply.raw as ServerResponse;
  if (res.socket !== null || reply.request.raw.httpVersionMajor !== 1) return null;
  const socket = reply.request.raw.socket;
  if (socket.destroyed) return Promise.resolve(false);
  const waiters = waitersOn(socket);
  if (waiters.size >= MAX_PIPELINED) {
    reply.log.warn(`a client pipelined more than ${MAX_PIPELINED} requests on one connection; it was closed`);
    socket.destroy();
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const settle = (turn: boolean) => {
      waiters.delete(settle);
      res.off('socket', onTurn);
      resolve(turn);
    };
    const onTurn = () => settle(true);
    waiters.add(settle);
    res.once('socket', onTurn);
  });
}

/** The requests waiting on `socket`, all told false when it closes. */
function waitersOn(socket: Socket): Set<(turn: boolean) => void> {
  const known = waiting.get(socket);
  if (known !== undefined) return known;
  const waiters = new Set<(turn: boolean) => void>();
  waiting.set(socket, waiters);
  socket.once('close', () => {
    for (const settle of waiters) settle(false);
  });
  return waiters;
}
