// One request written byte for byte on a fresh connection (duplicate headers, absolute-form
// targets, bytes an HTTP client would refuse or normalise), read until the server closes.
import { connect } from 'node:net';

export interface RawAnswer {
  status: number;
  /** header names lower-cased; repeated headers joined with ", " */
  headers: Record<string, string>;
  body: string;
}

/**
 * `head` is the request line and headers without the final blank line; Connection: close is added.
 * `before`: bytes the connection starts with (a load balancer's PROXY header).
 */
export function rawRequest(port: number, head: string, body = '', before: string | Buffer = ''): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      if (before.length > 0) socket.write(before);
      socket.write(`${head.replace(/\r?\n/g, '\r\n')}\r\nConnection: close\r\n\r\n${body}`);
    });
    const chunks: Buffer[] = [];
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to ${head.split('\n')[0]}`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const lines = text.slice(0, split < 0 ? text.length : split).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(':');
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      }
      let payload = split < 0 ? '' : text.slice(split + 4);
      if (headers['transfer-encoding'] === 'chunked') payload = unchunk(payload);
      resolve({ status: Number(lines[0]!.slice(9, 12)), headers, body: payload });
    });
  });
}

function unchunk(text: string): string {
  let out = '';
  let i = 0;
  for (;;) {
    const eol = text.indexOf('\r\n', i);
    if (eol < 0) return out;
    const size = Number.parseInt(text.slice(i, eol), 16);
    if (!(size > 0)) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    i = eol + 2 + size + 2;
  }
}

import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';

export interface RawExchange {
  /** every byte the server sent, as latin1 text */
  text: string;
  /** the status lines in the order they came ("HTTP/1.1 200 OK") */
  statusLines: string[];
  /** the server closed the connection (or reset it) */
  closed: boolean;
}

/**
 * Writes `request` (raw bytes, several pipelined requests allowed) on a new connection and reads
 * until `expectedReplies` status lines and their bodies (by Content-Length) have come, or the
 * server closes. An array is written in turns: its first part at once, part k once k replies have
 * come (requests one after another on a kept connection, none pipelined). Resolves either way:
 * the caller asserts on what came. `tls` connects over TLS (HTTP/1.1 by ALPN). A connection that
 * neither answers nor closes is what the caller's test timeout catches.
 */
export function rawExchange(
  port: number,
  request: string | Buffer | ReadonlyArray<string | Buffer>,
  expectedReplies: number,
  /** TLS options; localAddress (which net.connect honours under tls.connect) picks the client address */
  tls?: ConnectionOptions & { localAddress?: string },
): Promise<RawExchange> {
  const turns: ReadonlyArray<string | Buffer> =
    typeof request === 'string' || Buffer.isBuffer(request) ? [request] : request;
  return new Promise((resolve, reject) => {
    let written = 0;
    const writeDue = (replies: number) => {
      while (written < turns.length && written <= replies) socket.write(turns[written++]!);
    };
    const socket: Socket =
      tls === undefined
        ? connectTcp(port, '127.0.0.1', () => writeDue(0))
        : connectTls({ host: '127.0.0.1', port, ALPNProtocols: ['http/1.1'], ...tls }, () => writeDue(0));
    let text = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      resolve({ text, statusLines: text.match(/HTTP\/1\.[01] \d{3}[^\r\n]*/g) ?? [], closed });
      socket.destroy();
    };
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      const replies = completeReplies(text);
      if (replies >= expectedReplies) finish(false);
      else writeDue(replies);
    });
    socket.on('close', () => finish(true));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET') finish(true);
      else if (!done) reject(error);
    });
  });
}

/**
 * How many whole replies `text` holds: heads plus their bodies, by Content-Length or chunked
 * transfer coding (a 101 or a bodiless reply counts at its head).
 */
function completeReplies(text: string): number {
  let count = 0;
  let at = 0;
  for (;;) {
    const end = text.indexOf('\r\n\r\n', at);
    if (end === -1) return count;
    const head = text.slice(at, end);
    let bodyEnd = end + 4;
    if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      // chunk-size CRLF data CRLF ... 0 CRLF CRLF (no trailers)
      for (;;) {
        const lineEnd = text.indexOf('\r\n', bodyEnd);
        if (lineEnd === -1) return count;
        const size = Number.parseInt(text.slice(bodyEnd, lineEnd), 16);
        if (size === 0) {
          if (text.length < lineEnd + 4) return count;
          bodyEnd = lineEnd + 4;
          break;
        }
        bodyEnd = lineEnd + 2 + size + 2;
        if (bodyEnd > text.length) return count;
      }
    } else {
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      bodyEnd += length === null ? 0 : Number(length[1]);
      if (bodyEnd > text.length) return count;
    }
    count++;
    at = bodyEnd;
  }
}
