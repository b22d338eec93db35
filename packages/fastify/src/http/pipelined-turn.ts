// HTTP/1.1 pipelining: a client may send its next requests before the first is answered. Node
// starts them all at once and writes their responses in order, so one connection could hold every
// PHP process and fill the queue (200 slow requests pipelined on one connection filled a
// one-process pool's queue: everybody else got 503), and a later request that reached a process
// first could deadlock with the one before it: its streamed response waits for the earlier
// response, which waits for the process the later one holds. As nginx does, a request goes to PHP
// once every response before it on its connection is done.
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ThrottledCount } from '@warmpool/pool';
import type { FastifyBaseLogger, FastifyReply } from 'fastify';
import { lingerAndClose } from './lingering-close.js';

/**
 * Requests one connection may have waiting behind its unfinished response. Past it, the ones
 * within it are still answered, the last with `Connection: close`; the ones after never run, and
 * the connection is no longer read (Node parses on otherwise: waiting requests write nothing that
 * would make it pause, and each one it parses holds memory). Counted in the order Node parses the
 * requests, so which ones are answered does not depend on how long each took to route.
 */
export const MAX_PIPELINED = 32;

/** One connection's requests waiting behind its unfinished response. */
interface Waiting {
  /** the turns pipelinedTurn promised, all told false when the connection closes */
  turns: Set<(turn: boolean) => void>;
  /** requests parsed behind an unfinished response that have not had their turn yet */
  count: number;
  /** the response of the request that began waiting last */
  last: ServerResponse | null;
  /** past MAX_PIPELINED: `last` closes the connection, no request after it runs */
  full: boolean;
}

const waiting = new WeakMap<Socket, Waiting>();
/** requests parsed past MAX_PIPELINED: never run */
const overTheBound = new WeakSet<IncomingMessage>();
/** the servers bounded, each with its warning line */
const servers = new WeakMap<object, ThrottledCount>();
let subscribed = false;

/** What Node publishes for each request it parses, before it queues the response or gives it the socket. */
interface RequestStart {
  request: IncomingMessage;
  response: ServerResponse;
  socket: Socket & { _httpMessage?: ServerResponse | null };
  server: object;
}

/** What Node publishes when a response is finished, just before it closes or keeps the connection. */
interface ResponseFinish {
  response: ServerResponse & { _last?: boolean };
  socket: Socket & { destroySoon?: () => void };
  server: object;
}

/**
 * Bounds the requests one connection of `server` (HTTP/1, or HTTP/2 taking HTTP/1.1) may pipeline
 * behind an unfinished response to MAX_PIPELINED. Idempotent; one check per HTTP/1 request.
 */
export function boundPipelining(server: object, log: FastifyBaseLogger): void {
  if (servers.has(server)) return;
  servers.set(
    server,
    new ThrottledCount((connections) =>
      log.warn(
        `${connections} connection(s) pipelined more than ${MAX_PIPELINED} requests behind an unfinished one: those were answered, the last with Connection: close, and the rest never ran`,
      ),
    ),
  );
  if (subscribed) return;
  subscribed = true;
  subscribe('http.server.request.start', (message) => onRequestStart(message as RequestStart));
  subscribe('http.server.response.finish', (message) => onResponseFinish(message as ResponseFinish));
}

function onRequestStart({ request, response, socket, server }: RequestStart): void {
  const warnings = servers.get(server);
  // a response before it on the connection is unfinished: Node queues this one
  if (warnings === undefined || socket._httpMessage == null) return;
  const state = waitingOn(socket);
  if (state.full) {
    overTheBound.add(request);
    return;
  }
  if (state.count >= MAX_PIPELINED) {
    state.full = true;
    overTheBound.add(request);
    // a head not written yet says the connection ends; once `last` is finished it ends anyway
    if (state.last !== null && !state.last.headersSent) state.last.shouldKeepAlive = false;
    stopReading(socket);
    warnings.add();
    return;
  }
  state.count++;
  state.last = response;
  let counted = true;
  const done = () => {
    if (counted) state.count--;
    counted = false;
  };
  response.once('socket', done);
  response.once('close', done);
}

function onResponseFinish({ response, socket, server }: ResponseFinish): void {
  if (!servers.has(server)) return;
  const state = waiting.get(socket);
  if (state === undefined || !state.full || state.last !== response) return;
  // Node closes the connection after a `_last` response (calling destroySoon) and gives the
  // socket to no response queued after it
  response._last = true;
  socket.destroySoon = lingerThenClose;
}

function lingerThenClose(this: Socket): void {
  lingerAndClose(this);
}

/** Whether `request` came past MAX_PIPELINED on its connection: it never runs, and is not logged or counted. */
export function isPastPipeliningBound(request: IncomingMessage): boolean {
  return overTheBound.has(request);
}

/**
 * null when the request may go on now (HTTP/2, or no response before it on its connection);
 * otherwise a promise of true once it may, or false if the connection closed first or the request
 * came past MAX_PIPELINED.
 */
export function pipelinedTurn(reply: FastifyReply): Promise<boolean> | null {
  // Node gives a response its socket once every response before it on the connection is finished
  const res = reply.raw as ServerResponse;
  if (res.socket !== null || reply.request.raw.httpVersionMajor !== 1) return null;
  const socket = reply.request.raw.socket;
  if (socket.destroyed || overTheBound.has(reply.request.raw)) return Promise.resolve(false);
  const { turns } = waitingOn(socket);
  return new Promise((resolve) => {
    const settle = (turn: boolean) => {
      turns.delete(settle);
      res.off('socket', onTurn);
      resolve(turn);
    };
    const onTurn = () => settle(true);
    turns.add(settle);
    res.once('socket', onTurn);
  });
}

/**
 * Stops reading `socket`: Node's parser is taken off (requests it parsed already go on) and the
 * socket paused; once the last answer is out, the lingering close reads and drops what the client
 * still sends (unread bytes would make the close a reset that loses the answers in flight).
 */
function stopReading(socket: Socket): void {
  // a 'data' listener gives the socket's handle back to JS, if the parser was reading it directly
  const drop = () => {};
  socket.on('data', drop);
  for (const listener of socket.listeners('data')) if (listener !== drop) socket.off('data', listener as () => void);
  socket.pause();
}

/** The state of `socket`'s waiting requests, made with one close listener for them all. */
function waitingOn(socket: Socket): Waiting {
  const known = waiting.get(socket);
  if (known !== undefined) return known;
  const state: Waiting = { turns: new Set(), count: 0, last: null, full: false };
  waiting.set(socket, state);
  socket.once('close', () => {
    for (const settle of state.turns) settle(false);
  });
  return state;
}
