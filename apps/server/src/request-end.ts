// The one moment a request's line is written, for every log that has one (the access log, the
// http.access_logs line, RoadRunner's "http log"): Fastify's onResponse alone misses a request
// whose client left first, an HTTP/1.1 client that hung up before its answer, a stream cut mid-way,
// an HTTP/2 stream reset; such requests, nginx's 499s, were in none of those logs.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';

/**
 * Calls `end` once for each request, when it is over: its answer went out (onResponse), or its
 * client left first (its response closed unfinished, or an HTTP/2 stream reset: onRequestAbort).
 * `gone`: the answer was not delivered whole.
 */
export function onRequestEnd(
  app: FastifyInstance,
  end: (request: FastifyRequest, reply: FastifyReply, gone: boolean) => void,
): void {
  const ended = new WeakSet<FastifyRequest>();
  const replies = new WeakMap<FastifyRequest, FastifyReply>();
  const once = (request: FastifyRequest, reply: FastifyReply, gone: boolean): void => {
    if (ended.has(request)) return;
    ended.add(request);
    end(request, reply, gone);
  };
  app.addHook('onRequest', (request, reply, done) => {
    replies.set(request, reply);
    // a client that leaves after sending its whole request aborts nothing Fastify sees (no
    // onRequestAbort, and no onResponse once the answer meets a closed socket): the response's
    // close before its finish tells
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) once(request, reply, true);
    });
    done();
  });
  app.addHook('onResponse', (request, reply, done) => {
    // a response that did not finish (a reset HTTP/2 stream, a socket gone) was not delivered
    once(request, reply, !reply.raw.writableFinished);
    done();
  });
  // an HTTP/2 stream the client reset: Fastify aborts the request, and its response can still look
  // finished. Fastify says so too of a body destroyed by its reader (undici, an upstream refusing
  // the connection): the client is still there for its 502, which is the line
  app.addHook('onRequestAbort', (request, done) => {
    const reply = replies.get(request);
    if (reply !== undefined && clientGone(reply)) once(request, reply, true);
    done();
  });
}

/** The client's side is closed: its HTTP/2 stream, or its connection. */
function clientGone(reply: FastifyReply): boolean {
  const raw = reply.raw as FastifyReply['raw'] & { stream?: { destroyed: boolean } };
  if (raw.stream !== undefined) return raw.stream.destroyed;
  return raw.socket === null || raw.socket.destroyed;
}
