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
import { lingerAndClose } from './lingering-close.js';

/**
 * Requests one connection may have waiting behind its unfinished response. Past it, the requests
 * within it are still answered, the last with `Connection: close`; the rest are never run, and the
 * connection's bytes are no longer read (Node parses on otherwise: waiting requests write nothing
 * that would make it pause, and each one it parses holds memory). Load testers pipeline deeper
 * than browsers do; closing at once used to leave even the first 32 unanswered.
 */
export const MAX_PIPELINED = 32;

/** The requests waiting on one connection; one close listener for all of them. */
interface Waiting {
  waiters: Set<(turn: boolean) => void>;
  /** the response of the request that began waiting last */
  last: ServerResponse | null;
  /** over MAX_PIPELINED: no request after `last` runs */
  full: boolean;
}

const waiting = new WeakMap<Socket, Waiting>();

/**
 * null when the request may go on now (HTTP/2, or no response before it on its connection);
 * otherwise a promise of true once it may, or false if the connection closed first (or the request
 * came past MAX_PIPELINED).
 */
export function pipelinedTurn(reply: FastifyReply): Promise<boolean> | null {
  // Node gives a response its socket once every response before it on the connection is finished
  const res = reply.raw as ServerResponse;
  if (res.socket !== null || reply.request.raw.httpVersionMajor !== 1) return null;
  const socket = reply.request.raw.socket;
  if (socket.destroyed) return Promise.resolve(false);
  const state = waitingOn(socket);
  if (state.full) return Promise.resolve(false);
  const { waiters } = state;
  if (waiters.size >= MAX_PIPELINED) {
    state.full = true;
    // Node ends the connection after that response (its `_last`), and writes none queued after it
    if (state.last !== null) state.last.shouldKeepAlive = false;
    stopReading(socket);
    reply.log.warn(
      `a client pipelined more than ${MAX_PIPELINED} requests behind an unfinished one on a connection; those are answered, the last with Connection: close, and the rest never run`,
    );
    return Promise.resolve(false);
  }
  state.last = res;
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

/**
 * Takes Node's parser off `socket` (requests it parsed already go on) and stops reading it; once
 * the last answer is out, the close reads and drops what the client still sends (a lingering
 * close: unread bytes would make it a reset that loses the answers in flight).
 */
function stopReading(socket: Socket): void {
  // a 'data' listener gives the socket's handle back to JS, if the parser was reading it directly
  const drop = () => {};
  socket.on('data', drop);
  for (const listener of socket.listeners('data')) if (listener !== drop) socket.off('data', listener as () => void);
  socket.pause();
  (socket as Socket & { destroySoon: () => void }).destroySoon = function (this: Socket) {
    lingerAndClose(this);
  };
}

/** The requests waiting on `socket`, all told false when it closes. */
function waitingOn(socket: Socket): Waiting {
  const known = waiting.get(socket);
  if (known !== undefined) return known;
  const state: Waiting = { waiters: new Set(), last: null, full: false };
  waiting.set(socket, state);
  socket.once('close', () => {
    for (const settle of state.waiters) settle(false);
  });
  return state;
}
