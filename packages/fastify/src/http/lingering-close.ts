// Lingering close for HTTP/1.1, as nginx's lingering_close. Answered before its body was all read
// (413 past max_request_size, any early answer with Connection: close), a connection used to be
// closed by Node as soon as the answer was handed to the kernel, while the client was still
// sending: closing a socket with unread bytes in its receive buffer sends a RST, which throws away
// the answer still in flight (the client's kernel drops what it has not read yet, and a client
// writing its body gets EPIPE / ECONNRESET before it reads what came). Measured with a 1 MB limit:
// Node's fetch threw EPIPE on 10 of 10 uploads of a 37 MB form and on 10 of 20 20 MB bodies, and a
// raw client writing a 50 MB body got EPIPE 10 times in 10 (8 of them without even the status
// line); nginx answers each with its 413, as warmpool now does (40 of 40).
//
// Instead, after the answer: our side is ended (FIN after the answer), the HTTP parser is taken off
// the connection (nothing that follows is parsed: no request pipelined behind the body runs), and
// every byte that still comes is read and dropped, never kept. The socket is destroyed once the
// client has ended its side (its receive buffer is then empty: the close is a clean FIN), after
// LINGERING_TIMEOUT_MS without a byte from it, or LINGERING_TIME_MS after the answer, whichever
// comes first (nginx's lingering_timeout 5 s and lingering_time 30 s). There is no byte cap, as in
// nginx: a cap low enough to matter resets the uploads it is meant to answer (a 37 MB one), and the
// time bound already bounds what is read, at no more cost than an upload under the limit. The
// socket stays counted (connection limits, the drain) until it closes; a drain cuts it once its
// side has ended (lifecycle.ts).
//
// HTTP/2 needs none of this: the stream, not the connection, is reset (http2-bodies.ts).
import { subscribe } from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** nginx's lingering_timeout: the client's silence that ends the wait. */
export const LINGERING_TIMEOUT_MS = 5_000;
/** nginx's lingering_time: the longest wait after the answer. */
export const LINGERING_TIME_MS = 30_000;

/** What Node publishes on 'http.server.response.finish', just before it closes or keeps the connection. */
interface ResponseFinish {
  request: IncomingMessage;
  response: ServerResponse & { _last?: boolean };
  socket: Socket;
  server: object;
}

const servers = new WeakSet<object>();
const lingering = new WeakSet<Socket>();
let subscribed = false;

/**
 * Makes `server` (an HTTP/1 server, or an HTTP/2 one taking HTTP/1.1) close a connection whose
 * last answer went out before its request body was all received with a lingering close instead of
 * at once. Idempotent; costs one check per HTTP/1 response.
 */
export function installLingeringClose(server: object): void {
  servers.add(server);
  if (subscribed) return;
  subscribed = true;
  // published by Node's own 'finish' listener, right before it calls socket.destroySoon() for a
  // response that closes the connection (res._last), or keeps it and reads the rest of the body
  subscribe('http.server.response.finish', (message) => {
    const { request, response, socket, server: from } = message as ResponseFinish;
    if (!servers.has(from) || request.complete || response._last !== true) return;
    (socket as Socket & { destroySoon: () => void }).destroySoon = lingerThenClose;
  });
}

function lingerThenClose(this: Socket): void {
  lingerAndClose(this);
}

/**
 * Ends `socket` (after what was written to it) and reads and drops what the client still sends,
 * then destroys it: once the client ends its side, after LINGERING_TIMEOUT_MS without a byte, or
 * after LINGERING_TIME_MS. For an HTTP/1 server's socket: its parser reads nothing more.
 */
export function lingerAndClose(socket: Socket): void {
  delete (socket as Partial<Pick<Socket, 'destroySoon'>>).destroySoon;
  if (socket.destroyed || lingering.has(socket)) return;
  lingering.add(socket);
  // Node's HTTP parser reads through the only 'data' listener of the connection (the socket's
  // handle goes back to JS when a listener is added) and parser.finish()es on 'end', which on a
  // body cut short is a parse error, a 'clientError': both are taken off
  socket.removeAllListeners('data');
  for (const listener of socket.listeners('end'))
    if (listener.name === 'bound socketOnEnd') socket.off('end', listener as () => void);
  const cut = () => socket.destroy();
  const idle = setTimeout(cut, LINGERING_TIMEOUT_MS).unref();
  const total = setTimeout(cut, LINGERING_TIME_MS).unref();
  socket.on('data', () => idle.refresh());
  socket.once('end', () => {
    // all the client sent is read: the close sends a FIN, not a reset (what we wrote goes out first)
    if (socket.writableFinished) cut();
    else socket.once('finish', cut);
  });
  socket.once('close', () => {
    clearTimeout(idle);
    clearTimeout(total);
  });
  socket.end();
  socket.resume();
  readOn(socket);
}

/**
 * Starts the socket's handle reading again if the HTTP parser had stopped it (it does when the
 * request's buffer fills before anything reads the body: a body never read is where this module
 * starts). Once the handle was the parser's, resume() alone does not: the stream still waits for a
 * read it asked for before the parser took the handle. The same as Node's own resume listener of
 * an HTTP connection (onSocketResume), which taking the parser off removed.
 */
function readOn(socket: Socket): void {
  const handle = (socket as Socket & { _handle?: { reading?: boolean; readStart?: () => number } | null })._handle;
  if (handle?.reading !== false || typeof handle.readStart !== 'function') return;
  handle.reading = true;
  handle.readStart();
}

/** Whether `socket` is being closed by lingerAndClose (its answer sent, the client's bytes dropped). */
export function isLingering(socket: Socket): boolean {
  return lingering.has(socket);
}
