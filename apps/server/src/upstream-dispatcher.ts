// A proxied request's upstream request ends when its client goes: reply-from hands undici no signal,
// so an upstream went on computing a reply nobody would read (a slow report, a long poll) and held
// one of its connections meanwhile, once for every reload of an impatient client. nginx closes the
// upstream connection when its client closes (proxy_ignore_client_abort off): so does this.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Dispatcher } from 'undici';

type Headers = Record<string, string | string[] | undefined>;

/** The key under which the signal rides in the upstream request's headers (reply-from passes them whole). */
const CLIENT_GONE = Symbol('warmpool.clientGone');

const signals = new WeakMap<object, AbortSignal>();

/** The reason of every such abort: undici ends the request with it, and nothing more is said of it. */
const CLIENT_LEFT = new Error('the client closed the connection before the upstream answered');

/** Arms the request's signal: aborted when its response closes before it finished (the client left). */
export function watchClientGone(
  request: IncomingMessage | Http2ServerRequest,
  response: ServerResponse | Http2ServerResponse,
): void {
  const controller = new AbortController();
  // an HTTP/2 stream the client reset can close looking finished: its request says it was aborted
  response.once('close', () => {
    if (!response.writableFinished || request.aborted) controller.abort(CLIENT_LEFT);
  });
  signals.set(request, controller.signal);
}

/** `headers` with the request's signal along (under a symbol: no header is added). */
export function withClientGone(request: IncomingMessage | Http2ServerRequest, headers: Headers): Headers {
  const signal = signals.get(request);
  if (signal !== undefined) (headers as Record<symbol, AbortSignal>)[CLIENT_GONE] = signal;
  return headers;
}

/** What reply-from calls: request(options, callback), with its options' headers as withClientGone left them. */
export type UpstreamDispatcher = Pick<Dispatcher, 'request'>;

/**
 * An undici Agent with reply-from's own defaults (one request a connection, 128 connections an
 * origin, an https upstream's certificate not verified, as nginx's proxy_ssl_verify off), that
 * takes each request's signal out of its headers and gives it to undici. A request ended so is
 * not reported back: there is no one left to answer.
 */
export async function createUpstreamDispatcher(): Promise<UpstreamDispatcher> {
  const { Agent } = await import('undici');
  const agent = new Agent({ pipelining: 1, connections: 128, connect: { rejectUnauthorized: false } });
  const request = (
    options: Dispatcher.RequestOptions,
    callback: (error: Error | null, data: Dispatcher.ResponseData) => void,
  ): void => {
    const { [CLIENT_GONE]: signal, ...headers } = options.headers as Headers & Record<symbol, AbortSignal | undefined>;
    agent.request({ ...options, headers, signal }, (error, data) => {
      // not to reply-from: it would log a warning and answer a 502 to nobody (the access log has the 499)
      if (error !== CLIENT_LEFT) callback(error, data);
    });
  };
  return { request: request as Dispatcher['request'] };
}
