// A client uploading a body the server refuses, the way browsers and HTTP libraries do: it sends the
// head, then writes the body as fast as the connection takes it, reading whatever comes meanwhile.
// It stops writing only when the server's answer is complete (or, with `untilEnd`, when the body is
// all sent), then ends its side and waits for the server to close. What it got and how the
// connection ended are the caller's to assert: a connection reset shows as `error`.
import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';

export interface UploadOutcome {
  /** every byte the server sent, as latin1 text */
  text: string;
  /** the status of the first answer (0: none came) */
  status: number;
  /** the first answer's body, when its Content-Length worth came; null otherwise */
  body: string | null;
  /** body bytes written before the client stopped */
  sent: number;
  /** the socket's error (ECONNRESET, EPIPE), if any */
  error: string | null;
}

export interface UploadOptions {
  /** bytes of body to write at most (the head's Content-Length, say) */
  bodyBytes: number;
  /** chunked: each write is a chunk (the head must say Transfer-Encoding: chunked) */
  chunked?: boolean;
  /** keep writing the whole body even once the answer came (a client that does not read meanwhile) */
  untilEnd?: boolean;
  /** written once the answer is complete, before ending (a request pipelined behind the body) */
  after?: string;
  /** connect over TLS (HTTP/1.1) */
  tls?: ConnectionOptions;
}

const CHUNK = Buffer.alloc(64 * 1024, 'u');

/** Sends `head` (request line and headers, ending with the blank line) and uploads. */
export function uploadRefused(port: number, head: string, options: UploadOptions): Promise<UploadOutcome> {
  return new Promise((resolve) => {
    // half-open: the server's FIN after its answer does not stop the upload (what a browser does);
    // tls.connect passes allowHalfOpen on to its socket, @types/node leaves it out
    const halfOpen = { allowHalfOpen: true } as ConnectionOptions;
    const socket: Socket =
      options.tls === undefined
        ? connectTcp({ port, host: '127.0.0.1', allowHalfOpen: true })
        : connectTls({ port, host: '127.0.0.1', ALPNProtocols: ['http/1.1'], ...options.tls, ...halfOpen });
    let text = '';
    let sent = 0;
    let error: string | null = null;
    let stopped = false;
    const answered = () => answerOf(text).body !== null;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      if (options.after !== undefined && !socket.destroyed) socket.write(options.after);
      if (options.chunked === true) socket.end('0\r\n\r\n');
      else socket.end();
    };
    const pump = () => {
      while (!stopped && !socket.destroyed) {
        if (sent >= options.bodyBytes || (options.untilEnd !== true && answered())) return stop();
        const piece = CHUNK.subarray(0, Math.min(CHUNK.length, options.bodyBytes - sent));
        sent += piece.length;
        const room =
          options.chunked === true
            ? socket.write(`${piece.length.toString(16)}\r\n`) && socket.write(piece) && socket.write('\r\n')
            : socket.write(piece);
        if (!room) return;
      }
    };
    socket.once(options.tls === undefined ? 'connect' : 'secureConnect', () => {
      socket.write(head);
      pump();
    });
    socket.on('drain', pump);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (options.untilEnd !== true && answered()) stop();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => (error ??= err.code ?? err.message));
    socket.on('close', () => resolve({ text, ...answerOf(text), sent, error }));
  });
}

function answerOf(text: string): { status: number; body: string | null } {
  const split = text.indexOf('\r\n\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  if (split < 0) return { status, body: null };
  const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, split))?.[1] ?? Number.NaN);
  const body = text.slice(split + 4);
  return { status, body: Number.isNaN(length) || body.length < length ? null : body.slice(0, length) };
}
