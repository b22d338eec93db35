// One request written byte for byte on a fresh connection (duplicate headers, absolute-form
// targets, bytes an HTTP client would refuse or normalise), read until the server closes.
import { connect } from 'node:net';

export interface RawAnswer {
  status: number;
  /** header names lower-cased; repeated headers joined with ", " */
  headers: Record<string, string>;
  body: string;
}

/** `head` is the request line and headers without the final blank line; Connection: close is added. */
export function rawRequest(port: number, head: string, body = ''): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`${head.replace(/\r?\n/g, '\r\n')}\r\nConnection: close\r\n\r\n${body}`),
    );
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
