// The access log as nginx users expect it (`http.access_log`): one line per request in nginx's
// `combined` format or as JSON, written to stdout, stderr or a file that SIGUSR1 reopens (so
// logrotate can move it away, as with nginx). Both carry the request id, the same one the client
// gets as X-Request-Id and PHP sees.
//
// combined (nginx's, plus the request id as the last quoted field):
//   203.0.113.7 - alice [04/Dec/2026:18:00:01 +0000] "GET /a?b=1 HTTP/1.1" 200 1234 "https://ref/" "curl/8.5" "9f0c…"
// json (nginx variable names):
//   {"time":"2026-12-04T18:00:01.123Z","remote_addr":"203.0.113.7","remote_user":"alice",
//    "request":"GET /a?b=1 HTTP/1.1","method":"GET","uri":"/a?b=1","protocol":"HTTP/1.1","host":"example.com",
//    "status":200,"body_bytes_sent":1234,"http_referer":"https://ref/","http_user_agent":"curl/8.5",
//    "request_time":0.012,"request_id":"9f0c…","site":"default","cache":"HIT"}
//
// remote_addr is the client: the connection's peer, or behind a proxy in trusted_subnets the address
// it forwarded (nginx's $remote_addr with the realip module: fail2ban bans the client, not the
// balancer); JSON has the peer too, as realip_remote_addr;
// body_bytes_sent counts the body bytes written (after compression), 0 for HEAD, 204 and 304.
// Each line is one write (sonic-boom, as pino's destinations), as nginx's access_log without buffer=.
import { logFile, type Reopened, type ReopenableSink, reopenLogFile, standardStream } from './log-sinks.js';
import { tunnelledBytes } from './websocket-tunnel.js';
import { onRequestEnd } from './request-end.js';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import { resolve } from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { DestinationStream } from 'pino';
import { CLIENT_CLOSED_REQUEST, isPastPipeliningBound, plainAddress, resolvedClientAddr } from '@warmpool/fastify';

export type AccessLogFormat = 'combined' | 'json';

export interface AccessLogOptions {
  format: AccessLogFormat;
  /** "stdout", "stderr" or a file path (relative to `baseDir`) */
  output: string;
}

/** One finished request, as the log line needs it. */
export interface AccessRecord {
  /** when the reply was done (ms since the epoch) */
  time: number;
  /** the client: the peer, or behind a trusted proxy the address it forwarded (nginx's realip $remote_addr) */
  remoteAddr: string;
  /** the connection's peer (nginx's $realip_remote_addr) */
  peerAddr: string;
  /** the Basic auth user name, or null */
  remoteUser: string | null;
  method: string;
  /** the request target as sent: path and query */
  uri: string;
  /** "HTTP/1.1", "HTTP/2.0" */
  protocol: string;
  host: string | null;
  status: number;
  bodyBytes: number;
  referer: string | null;
  userAgent: string | null;
  durationMs: number;
  requestId: string;
  site: string;
  /** X-Cache of the reply (micro-cache), or null */
  cache: string | null;
}

export interface AccessLog {
  write(record: AccessRecord): void;
  /** Reopens the files (SIGUSR1, after logrotate moved them); one that cannot be opened stays the old one. */
  reopen(): Reopened[];
  /** Closes the file. */
  close(): void;
  /** "combined → /var/log/warmpool/access.log" */
  describe(): string;
  /** where lines go: file paths, "stdout", "stderr" */
  outputs(): string[];
}

/** Where lines go: a destination stream (tests give their own for stdout/stderr). */
export interface AccessLogStreams {
  stdout?: NodeJS.WritableStream;
  stderr?: NodeJS.WritableStream;
}

export function createAccessLog(options: AccessLogOptions, baseDir: string, streams: AccessLogStreams = {}): AccessLog {
  const format = options.format === 'json' ? formatJson : formatCombined;
  const isFile = options.output !== 'stdout' && options.output !== 'stderr';
  const path = isFile ? resolve(baseDir, options.output) : options.output;
  let sink: DestinationStream & ReopenableSink & { end?: () => void };
  if (!isFile && streams[options.output as 'stdout' | 'stderr'] !== undefined)
    sink = streams[options.output as 'stdout' | 'stderr']! as unknown as typeof sink;
  // one write per line, as nginx's access_log without buffer=: no line is lost when the process
  // exits, and a rotated file gets no line after its reopen
  else if (isFile) sink = logFile(path);
  else sink = standardStream(options.output === 'stdout' ? 1 : 2);
  return {
    write: (record) => {
      sink.write(format(record));
    },
    reopen: () => (isFile ? [reopenLogFile(sink, path)] : []),
    close: () => {
      if (isFile) sink.end?.();
    },
    describe: () => `${options.format} → ${path}`,
    outputs: () => [path],
  };
}

/**
 * The server's access log with the sites' own (sites[].http.access_log, nginx's access_log in a
 * server block): a site's lines go to its own log only, every other line (other sites, refused
 * heads) to the top level's, or nowhere when it has none. Sites naming the same output and format
 * share one writer.
 */
export function createSiteAccessLogs(
  top: AccessLog | null,
  sites: ReadonlyArray<{ name: string; access_log: AccessLogOptions | null }>,
  baseDir: string,
  streams: AccessLogStreams = {},
): AccessLog {
  const bySite = new Map<string, AccessLog>();
  const byOutput = new Map<string, AccessLog>();
  for (const site of sites) {
    if (site.access_log === null) continue;
    const key = `${site.access_log.format} ${resolve(baseDir, site.access_log.output)}`;
    let log = byOutput.get(key);
    if (log === undefined) {
      log = createAccessLog(site.access_log, baseDir, streams);
      byOutput.set(key, log);
    }
    bySite.set(site.name, log);
  }
  const all = [...(top === null ? [] : [top]), ...byOutput.values()];
  return {
    write: (record) => (bySite.get(record.site) ?? top)?.write(record),
    reopen: () => all.flatMap((log) => log.reopen()),
    close: () => {
      for (const log of all) log.close();
    },
    describe: () =>
      [
        ...(top === null ? [] : [top.describe()]),
        ...[...bySite].map(([site, log]) => `site ${site}: ${log.describe()}`),
      ].join('; '),
    outputs: () => [...new Set(all.flatMap((log) => log.outputs()))],
  };
}

/**
 * Adds the hooks that write one line per request: the body byte counter when a request starts, the
 * line when its reply is done. `skip` is a path never logged (the metrics listener's scrape).
 */
export function registerAccessLog(
  app: FastifyInstance,
  log: AccessLog,
  options: { siteOf(request: FastifyRequest): string; skip: string | null },
): void {
  const seen = new WeakMap<FastifyRequest, { counter: { readonly bytes: number }; remoteAddr: string }>();
  // a request the client gave up on is logged once, as nginx's 499 (client closed request): an
  // HTTP/1.1 client that hung up before its answer had no line at all, an HTTP/2 stream it reset
  // was "200 0", so scanners that hang up and reset floods were invisible to fail2ban or goaccess
  const write = (request: FastifyRequest, reply: FastifyReply, gone: boolean): void => {
    // past the pipelining bound: never run, the server closed the connection (not a 499)
    if (request.url === options.skip || isPastPipeliningBound(request.raw)) return;
    // a proxied WebSocket is logged when it closes, as nginx logs it: 101 and the bytes sent through it
    const tunnelled = tunnelledBytes(request.raw);
    // 499 (nginx's): the client left before the head of the answer went out; once it was out, a cut
    // download is logged with the status sent and the bytes that left, as nginx logs it
    const status = tunnelled !== undefined ? 101 : endStatus(reply, gone);
    const headers = request.headers;
    const cache = reply.getHeader('x-cache');
    const start = seen.get(request);
    const peer = start?.remoteAddr ?? '-';
    log.write({
      time: Date.now(),
      // as the site's client-info hook resolved it (trusted_subnets); the peer when it did not run
      remoteAddr: resolvedClientAddr(request.raw) ?? peer,
      peerAddr: peer,
      remoteUser: basicAuthUser(headers.authorization),
      method: request.method,
      uri: request.url,
      protocol: `HTTP/${request.raw.httpVersion}`,
      host: request.host || null,
      status,
      bodyBytes:
        tunnelled ?? (request.method === 'HEAD' || status === 204 || status === 304 ? 0 : (start?.counter.bytes ?? 0)),
      referer: typeof headers.referer === 'string' ? headers.referer : null,
      userAgent: typeof headers['user-agent'] === 'string' ? headers['user-agent'] : null,
      durationMs: reply.elapsedTime,
      requestId: request.id,
      site: options.siteOf(request),
      cache: typeof cache === 'string' ? cache : null,
    });
  };
  app.addHook('onRequest', (request, reply, done) => {
    // the peer is read now: an HTTP/2 stream's socket is gone once its reply is done
    seen.set(request, {
      counter: countBodyBytes(reply.raw),
      remoteAddr: peerOf(request.socket?.remoteAddress),
    });
    done();
  });
  onRequestEnd(app, write);
}

/**
 * A request's status in a log line: nginx's 499 when its client left before the head of the
 * answer went out; once it was out, a cut download keeps the status sent, as nginx logs it.
 */
export function endStatus(reply: FastifyReply, gone: boolean): number {
  return gone && !reply.raw.headersSent ? CLIENT_CLOSED_REQUEST : reply.statusCode;
}

/**
 * One line per request of a listener outside Fastify (the port-80 listener that only redirects to
 * https): nginx logs its redirects, which had no line here. The CA's HTTP-01 checks it also answers
 * are taken before any listener of it (acme/automatic-https.ts) and have none.
 */
export function logPlainListener(
  server: {
    prependListener(event: 'request', listener: (req: IncomingMessage, res: ServerResponse) => void): unknown;
  },
  log: AccessLog,
  siteOfHost: (host: string | undefined) => string,
  clientOf?: (req: IncomingMessage) => string,
): void {
  // before the listener that answers: the body it writes is counted
  server.prependListener('request', (req, res) =>
    logRawExchange(log, req, res, siteOfHost(req.headers.host), clientOf),
  );
}

/**
 * The line of one request answered outside Fastify's hooks (the redirect listener; the router's
 * 400 for a target it cannot route, "%zz"), written when its response closes.
 */
export function logRawExchange(
  log: AccessLog,
  req: IncomingMessage,
  res: ServerResponse,
  site: string,
  /** the client as trusted_subnets decide it (a load balancer's forwarded one); the peer without */
  clientOf?: (req: IncomingMessage) => string,
): void {
  const peer = peerOf(req.socket.remoteAddress);
  const client = clientOf?.(req) || peer;
  const startedAt = performance.now();
  const counter = countBodyBytes(res);
  res.once('close', () => {
    const status = res.writableEnded || res.headersSent ? res.statusCode : CLIENT_CLOSED_REQUEST;
    const headers = req.headers;
    log.write({
      time: Date.now(),
      remoteAddr: client,
      peerAddr: peer,
      remoteUser: basicAuthUser(headers.authorization),
      method: req.method ?? '-',
      uri: req.url ?? '-',
      protocol: `HTTP/${req.httpVersion}`,
      host: headers.host ?? null,
      status,
      bodyBytes: req.method === 'HEAD' ? 0 : counter.bytes,
      referer: typeof headers.referer === 'string' ? headers.referer : null,
      userAgent: typeof headers['user-agent'] === 'string' ? headers['user-agent'] : null,
      durationMs: performance.now() - startedAt,
      requestId: '-',
      site,
      cache: null,
    });
  });
}

/** At most this much of a refused head's first line is logged. */
const REFUSED_LINE_BYTES = 2048;

/**
 * The line of a request head Node's parser refused (400, 408, 431) before any request existed: its
 * first line as received, when it came (nginx's $request: `"GARBAGE" 400`, `"-" 408`), and the
 * bytes of the answer. Scanners and oversized cookies were in no log at all.
 */
export function refusedHeadRecord(
  received: Buffer | undefined,
  remoteAddr: string | undefined,
  status: number,
  bodyBytes: number,
): AccessRecord {
  const head = received === undefined ? '' : received.subarray(0, REFUSED_LINE_BYTES).toString('latin1');
  const end = head.search(/\r?\n/);
  const line = end === -1 ? head : head.slice(0, end);
  const [method, uri, protocol, ...rest] = line.split(' ');
  const parsed = rest.length === 0 && uri !== undefined && protocol?.startsWith('HTTP/') === true;
  const header = (name: string): string | null =>
    new RegExp(`\\r?\\n${name}:[ \\t]*([^\\r\\n]*)`, 'i').exec(head)?.[1] ?? null;
  const address = peerOf(remoteAddr);
  return {
    time: Date.now(),
    remoteAddr: address,
    peerAddr: address,
    remoteUser: null,
    // as received when it is no request line: it is logged whole, as nginx does
    method: parsed ? method! : line === '' ? '-' : line,
    uri: parsed ? uri! : '',
    protocol: parsed ? protocol! : '',
    host: header('host'),
    status,
    bodyBytes,
    referer: header('referer'),
    userAgent: header('user-agent'),
    durationMs: 0,
    requestId: '-',
    site: '-',
    cache: null,
  };
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** nginx's $time_local: "04/Dec/2026:18:00:01 +0000" in the server's time zone. */
export function formatTimeLocal(time: number): string {
  const d = new Date(time);
  const pad = (n: number) => String(n).padStart(2, '0');
  const offset = -d.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  const abs = Math.abs(offset);
  return `${pad(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`;
}

/** nginx's escaping of logged strings: `"`, `\` and bytes outside printable ASCII as \xHH. */
export function escapeNginx(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control bytes are what is escaped
  return text.replace(/[\x00-\x1f"\\\x7f-\uffff]/g, (c) => {
    const code = c.charCodeAt(0);
    // header values are latin1 (one char per byte); anything wider is written as its UTF-8 bytes
    const bytes = code <= 0xff ? [code] : [...Buffer.from(c, 'utf8')];
    return bytes.map((b) => `\\x${b.toString(16).toUpperCase().padStart(2, '0')}`).join('');
  });
}

const dash = (value: string | null) => (value === null || value === '' ? '-' : escapeNginx(value));

/** nginx's $request: "GET /a HTTP/1.1", or a refused head's first line as it came ("-" for none). */
function requestLine(r: AccessRecord): string {
  return r.uri === '' && r.protocol === '' ? r.method : `${r.method} ${r.uri} ${r.protocol}`;
}

export function formatCombined(r: AccessRecord): string {
  return `${r.remoteAddr} - ${dash(r.remoteUser)} [${formatTimeLocal(r.time)}] "${escapeNginx(requestLine(r))}" ${r.status} ${r.bodyBytes} "${dash(r.referer)}" "${dash(r.userAgent)}" "${escapeNginx(r.requestId)}"\n`;
}

export function formatJson(r: AccessRecord): string {
  return `${JSON.stringify({
    time: new Date(r.time).toISOString(),
    remote_addr: r.remoteAddr,
    realip_remote_addr: r.peerAddr,
    remote_user: r.remoteUser,
    request: requestLine(r),
    method: r.method,
    uri: r.uri,
    protocol: r.protocol,
    host: r.host,
    status: r.status,
    body_bytes_sent: r.bodyBytes,
    http_referer: r.referer,
    http_user_agent: r.userAgent,
    request_time: Math.round(r.durationMs) / 1000,
    request_id: r.requestId,
    site: r.site,
    cache: r.cache,
  })}\n`;
}

/** The user name of `Authorization: Basic …` (nginx's $remote_user), or null. */
export function basicAuthUser(header: string | undefined): string | null {
  if (header === undefined || !/^basic /i.test(header)) return null;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('latin1');
  const colon = decoded.indexOf(':');
  return colon <= 0 ? null : decoded.slice(0, colon);
}

type WriteFn = (this: unknown, chunk?: unknown, ...rest: unknown[]) => unknown;

/** one counter per response, whoever asks (the access log, /metrics' body bytes) */
const bodyCounters = new WeakMap<object, { readonly bytes: number }>();

/**
 * Counts the body bytes a response writes: every body goes through res.write / res.end (Fastify's
 * end with a buffer, a piped stream's writes, compression's output), so wrapping the two on this
 * one response sees them all. Only done when the access log or /metrics is on, once per response.
 */
export function countBodyBytes(res: ServerResponse | Http2ServerResponse): { readonly bytes: number } {
  const known = bodyCounters.get(res);
  if (known !== undefined) return known;
  const counter = { bytes: 0 };
  bodyCounters.set(res, counter);
  const counted = res as unknown as { write: WriteFn; end: WriteFn };
  const write = counted.write;
  const end = counted.end;
  // HTTP/2's response.end(chunk) writes the chunk through this.write: counted once, in end
  let ending = false;
  counted.write = function (chunk, ...rest) {
    if (!ending) counter.bytes += byteLength(chunk, rest[0]);
    return write.call(this, chunk, ...rest);
  };
  counted.end = function (chunk, ...rest) {
    if (typeof chunk !== 'function') counter.bytes += byteLength(chunk, rest[0]);
    ending = true;
    try {
      return end.call(this, chunk, ...rest);
    } finally {
      ending = false;
    }
  };
  return counter;
}

function byteLength(chunk: unknown, encoding: unknown): number {
  if (chunk === undefined || chunk === null) return 0;
  if (typeof chunk === 'string')
    return Buffer.byteLength(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (ArrayBuffer.isView(chunk)) return chunk.byteLength;
  return 0;
}

/** A socket's peer for a log line: plain (no ::ffff: form, no zone), '-' when it is gone. */
function peerOf(address: string | undefined): string {
  return plainAddress(address) ?? '-';
}
