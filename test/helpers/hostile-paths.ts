// The hostile-path corpus (fixtures/sites/hostile-paths.txt) and a raw-socket client for it: each
// target is written byte for byte, since HTTP clients and inject normalise "/../".
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';

export const HOSTILE_PATHS: readonly string[] = readFileSync(
  fileURLToPath(new URL('../fixtures/sites/hostile-paths.txt', import.meta.url)),
  'utf8',
)
  .split('\n')
  .filter((line) => line !== '' && !line.startsWith('# '));

export interface RawResponse {
  status: number;
  head: string;
  body: string;
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

/** Writes one request line as is; reads until the server closes (Connection: close). */
export function rawGet(port: number, target: string, headers = '', host = 'localhost'): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    // write, not end: a half-closed client can lose its response while the server is still working.
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${headers}Connection: close\r\n\r\n`),
    );
    const chunks: Buffer[] = [];
    socket.setTimeout(5_000, () => socket.destroy(new Error(`no answer for ${target}`)));
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.length;
      // a body that never ends (a device file) is a failure to report, not a hang
      if (bytes > MAX_RESPONSE_BYTES) socket.destroy();
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const split = text.indexOf('\r\n\r\n');
      resolve({
        status: Number(text.slice(9, 12)),
        head: split < 0 ? text : text.slice(0, split),
        body: split < 0 ? '' : text.slice(split + 4),
      });
    });
  });
}

/** Sends every target of the corpus over 16 connections at a time (`host` picks the site). */
export async function sendCorpus(port: number, headers = '', host = 'localhost'): Promise<Map<string, RawResponse>> {
  const results = new Map<string, RawResponse>();
  const queue = [...HOSTILE_PATHS];
  const worker = async () => {
    for (let target = queue.shift(); target !== undefined; target = queue.shift()) {
      results.set(target, await rawGet(port, target, headers, host));
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return results;
}
