// A backend's connection headers (Keep-Alive, Proxy-Connection, TE, ...) never reach the client:
// over HTTP/2 Node throws on a response that carries one, and before, one such reply (PHP's, or a
// hand-over's) ended the process. Worker and classic PHP, plain replies and hand-overs, over h2c.
import { connect, type ClientHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hintHeaders } from '../src/http/send-response.js';
import { warmpool, type WarmpoolOptions } from '../src/index.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures', import.meta.url));
/** As a backend spells them: each one Node refuses on an HTTP/2 response. */
const NAMES = ['Connection', 'Keep-Alive', 'Proxy-Connection', 'TE', 'HTTP2-Settings', 'Upgrade', 'Transfer-Encoding'];

const modes: Array<[string, WarmpoolOptions, string, string]> = [
  [
    'worker mode',
    {
      command: ['php', join(FIXTURES, 'php', 'hands-over-file.php')],
      pool: { num_workers: 1 },
      internal_files: { root: join(FIXTURES, 'sites', 'classic-private'), prefix: '/protected/' },
    },
    '/download',
    'PHP body (the server sends the file instead)',
  ],
  [
    'classic mode',
    {
      fastcgi: { root: join(FIXTURES, 'sites', 'classic-app') },
      pool: { num_workers: 1 },
      internal_files: { root: join(FIXTURES, 'sites', 'classic-private'), prefix: '/protected/' },
    },
    '/download.php',
    'PHP body (the server sends the file instead)',
  ],
];

describe.each(modes)('connection headers from PHP over HTTP/2 (%s)', (_mode, options, path, phpBody) => {
  let app: FastifyInstance;
  let session: ClientHttp2Session;
  beforeAll(async () => {
    app = Fastify({ http2: true }) as unknown as FastifyInstance;
    await app.register(warmpool, options);
    await app.listen({ port: 0, host: '127.0.0.1' });
    session = connect(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`);
  });
  afterAll(async () => {
    session?.close();
    await app?.close();
  });

  async function get(query: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
    const stream = session.request({ ':path': `${path}?${query}` });
    const [headers] = (await new Promise((resolve, reject) => {
      stream.once('response', (h) => resolve([h]));
      stream.once('error', reject);
    })) as [Record<string, unknown>];
    let body = '';
    stream.setEncoding('utf8');
    for await (const chunk of stream) body += chunk;
    return { status: Number(headers[':status']), headers, body };
  }

  it.each(NAMES)('a plain reply with %s: answered, without it', async (name) => {
    const res = await get(`name=${name}`);
    expect(res).toMatchObject({ status: 200, body: phpBody });
    expect(res.headers[name.toLowerCase()]).toBeUndefined();
  });

  it.each(NAMES)('a hand-over (X-Accel-Redirect) with %s: the file, without it', async (name) => {
    const res = await get(`accel=/protected/report.txt&name=${name}`);
    expect(res).toMatchObject({ status: 200, body: 'quarterly report: all good\n' });
    expect(res.headers[name.toLowerCase()]).toBeUndefined();
  });
});

describe('hintHeaders (103 Early Hints)', () => {
  it("keeps PHP's Link, drops the connection's headers and a body's framing", () => {
    expect(
      hintHeaders({
        Link: ['</style.css>; rel=preload'],
        'Keep-Alive': ['timeout=5'],
        TE: ['gzip'],
        'Content-Length': ['5'],
        'Transfer-Encoding': ['chunked'],
      }),
    ).toEqual({ link: ['</style.css>; rel=preload'] });
  });
});
