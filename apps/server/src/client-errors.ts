// What a client gets when Node's HTTP/1 parser refuses its request before any route runs, on
// every public listener. Fastify answered these with a JSON body ("Client Error"), and only on the
// one server it was given: the HTTPS listener's HTTP/1.1 connections and the redirect listener got
// Node's own bare 400. The commonest case is a query string holding raw bytes (`?q=é` from
// `curl -g`, a script building links by hand): llhttp refuses bytes >= 0x80 and control bytes
// there (HPE_INVALID_URL) even with insecureHTTPParser, so it can never reach PHP (nginx passes it
// on); the client is told how to send it instead, and the operator sees it in the log.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { lingerAndClose, plainAddress } from '@warmpool/fastify';
import { ThrottledCount } from '@warmpool/pool';
import { refusedHeadRecord, type AccessLog } from './access-log.js';

/** Why a request head was refused, as counted in metrics and logs. */
type Kind = 'raw_query' | 'raw_path' | 'malformed' | 'plain_http';

interface Answer {
  status: number;
  text: string;
  /** counted and logged; timeouts and oversized heads are not (limits.ts's own, already clear) */
  kind: Kind | null;
}

/** What Node says, as the status Node itself would send, with a body that says what was wrong. */
function answerFor(error: Error & { code?: string; reason?: string }): Answer {
  switch (error.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, text: 'Request Timeout\n', kind: null };
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, text: 'Request Header Fields Too Large\n', kind: null };
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return { status: 413, text: 'Content Too Large\n', kind: null };
  }
  const reason = typeof error.reason === 'string' ? error.reason : '';
  if (error.code === 'HPE_INVALID_URL' && reason.includes('query'))
    return {
      status: 400,
      text: 'Bad Request: the query string holds raw bytes: percent-encode them\n',
      kind: 'raw_query',
    };
  if (error.code === 'HPE_INVALID_URL' && reason.includes('path'))
    return { status: 400, text: 'Bad Request: the path holds raw bytes: percent-encode them\n', kind: 'raw_path' };
  // llhttp's reasons are fixed strings of its own ("Invalid method encountered"): safe to echo
  return {
    status: 400,
    text: `Bad Request: the request is not valid HTTP/1.1${reason ? ` (${reason})` : ''}\n`,
    kind: 'malformed',
  };
}

/** An error of Node's HTTP/1 parser (llhttp's HPE_*) or its request timeout: the head was refused. */
function isRefusedHead(error: Error & { code?: string }): boolean {
  return error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || error.code?.startsWith('HPE_') === true;
}

/**
 * What OpenSSL says of bytes that are no TLS record: GET, POST, HEAD and PUT it names as HTTP,
 * CONNECT as a proxy request, any other method (OPTIONS, DELETE, PROPFIND) as a wrong version. nginx
 * answers any of them with its 400.
 */
const PLAIN_HTTP_CODES = new Set([
  'ERR_SSL_HTTP_REQUEST',
  'ERR_SSL_HTTPS_PROXY_REQUEST',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

const PLAIN_HTTP_TEXT = 'Bad Request: a plain HTTP request was sent to the HTTPS port: use https://\n';

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  413: 'Content Too Large',
  431: 'Request Header Fields Too Large',
};

/**
 * A whole plain-text HTTP/1.1 answer that closes its connection, as bytes for a socket no response
 * object owns (a refused head, plain HTTP on the TLS port, CONNECT).
 */
export function rawPlainAnswer(status: number, text: string): Buffer {
  const body = Buffer.from(text);
  const head =
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? STATUS_CODES[status] ?? ''}\r\n` +
    `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), body]);
}

export class ClientErrors {
  readonly #logger: Logger;
  readonly #counts: Record<Kind, number> = { raw_query: 0, raw_path: 0, malformed: 0, plain_http: 0 };
  /** a scanner sends garbage in floods: one line at most every 10 s per kind, with the count since */
  readonly #lines: Record<Kind, ThrottledCount> = {
    raw_query: new ThrottledCount((since) => this.#write('raw_query', since)),
    raw_path: new ThrottledCount((since) => this.#write('raw_path', since)),
    malformed: new ThrottledCount((since) => this.#write('malformed', since)),
    plain_http: new ThrottledCount((since) => this.#write('plain_http', since)),
  };
  /** the last refusal of each kind (its text and client), for its summary line */
  readonly #last: Record<Kind, { text: string; remoteAddr: string | undefined }> = {
    raw_query: { text: '', remoteAddr: undefined },
    raw_path: { text: '', remoteAddr: undefined },
    malformed: { text: '', remoteAddr: undefined },
    plain_http: { text: '', remoteAddr: undefined },
  };

  /** http.access_log, once made: each refused head gets its line there too, as nginx logs its 400s */
  #accessLog: AccessLog | null = null;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  logTo(accessLog: AccessLog): void {
    this.#accessLog = accessLog;
  }

  /** Node's 'clientError' listener (and Fastify's clientErrorHandler option, for the server it is given). */
  readonly handle = (error: Error & { code?: string; reason?: string }, socket: Socket): void => {
    // Only a refused head is answered. Anything else (a reset; a TLS handshake that failed or timed
    // out, which an HTTP/2 server passes on as a clientError) is cut, as Node cuts it without a
    // listener: nothing can be written on a handshake that never ended.
    if (socket.destroyed || !isRefusedHead(error)) {
      socket.destroy();
      return;
    }
    const answer = answerFor(error);
    if (answer.kind !== null) this.#count(answer.kind, answer.text, socket);
    // as Node: nothing is written into a response already on its way (a bad request pipelined behind it)
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
    if (!socket.writable || inFlight?.headersSent === true) {
      socket.destroy();
      return;
    }
    const answerBytes = rawPlainAnswer(answer.status, answer.text);
    const received = (error as { rawPacket?: unknown }).rawPacket;
    this.#accessLog?.write(
      refusedHeadRecord(
        Buffer.isBuffer(received) ? received : undefined,
        socket.remoteAddress,
        answer.status,
        Buffer.byteLength(answer.text),
      ),
    );
    // ended, then destroyed once flushed: a TLS socket destroyed at once could drop the answer. A
    // client too slow to send its head in time gets no more time
    if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      socket.end(answerBytes, () => socket.destroy());
      return;
    }
    // the client may be sending on (a body after a head over max_header_size): closing with its
    // bytes unread would reset the connection and lose the answer, so they are read and dropped
    socket.write(answerBytes);
    lingerAndClose(socket);
  };

  /**
   * The HTTPS listener's 'tlsClientError': a plain HTTP request sent to it (http://host:443/, a
   * health check without TLS) is answered in plain HTTP with a 400 that says so, as nginx does;
   * before, the client got an empty reply. OpenSSL tells it by the first bytes (PLAIN_HTTP_CODES)
   * before anything was written, so the raw connection under the TLS socket can still answer.
   */
  watchTls(server: {
    on(event: 'tlsClientError', listener: (error: Error & { code?: string }, socket: Socket) => void): unknown;
  }): void {
    server.on('tlsClientError', (error, tlsSocket) => {
      const raw = (tlsSocket as Socket & { _parent?: Socket | null })._parent;
      if (!PLAIN_HTTP_CODES.has(error.code ?? '') || raw == null || !raw.writable) {
        tlsSocket.destroy();
        return;
      }
      this.#count('plain_http', PLAIN_HTTP_TEXT, raw);
      this.#accessLog?.write(refusedHeadRecord(undefined, raw.remoteAddress, 400, Buffer.byteLength(PLAIN_HTTP_TEXT)));
      raw.end(rawPlainAnswer(400, PLAIN_HTTP_TEXT), () => tlsSocket.destroy());
    });
  }

  /** The listeners not given to Fastify (the HTTPS one beside a plain one, the redirect one). */
  watch(server: { on(event: 'clientError', listener: (error: Error, socket: Socket) => void): unknown }): void {
    server.on('clientError', this.handle);
  }

  /** Prometheus lines: request heads refused before any route, by why. */
  metrics(): string {
    return [
      '# HELP warmpool_bad_requests_total Request heads refused with 400 before any route ran, by why (raw bytes in the query or path, plain HTTP sent to the HTTPS port, anything else malformed).',
      '# TYPE warmpool_bad_requests_total counter',
      ...(Object.keys(this.#counts) as Kind[]).map(
        (kind) => `warmpool_bad_requests_total{reason="${kind}"} ${this.#counts[kind]}`,
      ),
      '',
    ].join('\n');
  }

  #count(kind: Kind, text: string, socket: Socket): void {
    this.#counts[kind]++;
    this.#last[kind] = { text, remoteAddr: plainAddress(socket.remoteAddress) };
    this.#lines[kind].add();
  }

  #write(kind: Kind, since: number): void {
    const { text, remoteAddr } = this.#last[kind];
    const why = text.slice('Bad Request: '.length).trimEnd();
    this.#logger.info(
      { remoteAddr, reason: kind, count: since },
      `bad request: ${why} (400 before any route; ${since} since the last such line)`,
    );
  }
}
