// A proxied request's upstream request ends when its client goes: reply-from hands undici no signal,
// so an upstream went on computing a reply nobody would read (a slow report, a long poll) and held
// one of its connections meanwhile, once for every reload of an impatient client. nginx closes the
// upstream connection when its client closes (proxy_ignore_client_abort off): so does this.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import { isConnectFailure, type UpstreamBalancer } from './upstream-balancer.js';

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

/** Whether the request's client left (its response closed unfinished), as watchClientGone saw it. */
export function clientLeft(request: IncomingMessage | Http2ServerRequest): boolean {
  return signals.get(request)?.aborted === true;
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
 * An undici Agent (one request a connection, an https upstream's certificate not verified, as
 * nginx's proxy_ssl_verify off) with no cap on connections to an origin, as nginx has none: with
 * reply-from's 128, the 129th request behind 128 open event streams or long polls waited in
 * undici's queue for ever (no timeout runs before a request is sent), and the app was off the air
 * for every other client. The client connections bound them (http.max_connections). It
 * takes each request's signal out of its headers and gives it to undici. A request ended so is
 * not reported back: there is no one left to answer.
 *
 * With a balancer (a route of several upstreams), each request goes to the origin it picks, with
 * that origin's Host unless `ownHost` is false (preserve_host); one refused a connection goes to
 * the next, each tried once, as nginx's proxy_next_upstream error: its body was never read.
 */
export async function createUpstreamDispatcher(
  balancer: UpstreamBalancer | null = null,
  ownHost = true,
): Promise<UpstreamDispatcher> {
  const { Agent } = await import('undici');
  const agent = new Agent({ pipelining: 1, connections: null, connect: { rejectUnauthorized: false } });
  const request = (
    options: Dispatcher.RequestOptions,
    callback: (error: Error | null, data: Dispatcher.ResponseData) => void,
  ): void => {
    const { [CLIENT_GONE]: signal, ...headers } = options.headers as Headers & Record<symbol, AbortSignal | undefined>;
    if (balancer === null) {
      agent.request({ ...options, headers, signal }, (error, data) => {
        // not to reply-from: it would log a warning and answer a 502 to nobody (the access log has the 499)
        if (error !== CLIENT_LEFT) callback(error, data);
      });
      return;
    }
    const tried = new Set<string>();
    const attempt = (): void => {
      const origin = balancer.pick(tried)!;
      tried.add(origin);
      const last = tried.size === balancer.origins.length;
      const body = !last && isStream(options.body) ? new UntilRead(options.body) : options.body;
      const sent = ownHost ? { ...headers, host: hostOf(origin) } : headers;
      agent.request({ ...options, origin, headers: sent, body, signal }, (error, data) => {
        if (error === CLIENT_LEFT) return;
        if (error === null) balancer.answered(origin);
        else if (isConnectFailure(error)) {
          balancer.failed(origin);
          const unread = !(body instanceof UntilRead) || !body.started;
          if (!last && unread && signal?.aborted !== true) return attempt();
        }
        callback(error, data);
      });
    };
    attempt();
  };
  return { request: request as Dispatcher['request'] };
}

const hosts = new Map<string, string>();

/** `host:port` of an origin (the Host header an upstream of its own gets), parsed once. */
function hostOf(origin: string): string {
  let host = hosts.get(origin);
  if (host === undefined) {
    host = new URL(origin).host;
    hosts.set(origin, host);
  }
  return host;
}

function isStream(body: unknown): body is Readable {
  return body instanceof Readable;
}

/**
 * A request body that reads its source only once undici starts sending it: undici destroys the
 * body of a request whose connection was refused, and this one's source is then still whole, to
 * send to the next upstream.
 */
class UntilRead extends Readable {
  started = false;
  readonly #source: Readable;

  constructor(source: Readable) {
    super();
    this.#source = source;
  }

  override _read(): void {
    if (this.started) {
      this.#source.resume();
      return;
    }
    this.started = true;
    const source = this.#source;
    source.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) source.pause();
    });
    source.once('end', () => this.push(null));
    source.once('error', (error) => this.destroy(error));
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    if (this.started) this.#source.destroy(error ?? undefined);
    done(error);
  }
}
