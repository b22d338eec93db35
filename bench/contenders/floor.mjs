// Contender "node:http floor": the least work a Node server can do around the same warm PHP worker
// loop — node:http, createPool, encodeRequestContext / decodeResponseContext, and nothing else
// (no routing, no header mapping, no cookies, no static files). Every request is still a real
// exec() on a PHP worker, so the gap between this and the plugin is what the plugin's own layers cost.
import http from 'node:http';
import { createPool } from '@warmpool/pool';
import { decodeResponseContext, encodeRequestContext } from '@warmpool/pool/protocol';
import { readConfig, stderrLogger, stopOn } from './resolve.mjs';

const config = readConfig();

const pool = createPool({
  command: config.command,
  relay: config.relay,
  num_workers: config.workers,
  logger: stderrLogger,
});
await pool.start();

function relay(req, res, body) {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const { flags, context } = encodeRequestContext(
    {
      remoteAddr: '127.0.0.1',
      protocol: 'HTTP/1.1',
      method: req.method ?? 'GET',
      uri: `http://127.0.0.1${url}`,
      headers: {},
      cookies: {},
      rawQuery: q < 0 ? '' : url.slice(q + 1),
      parsed: false,
      uploads: null,
      attributes: null,
    },
    'json',
  );
  pool.exec({ flags, context, body }).then(
    (reply) => {
      if (reply.stream !== null) {
        reply.stream.destroy(); // no scenario streams; the floor does not implement it
        res.writeHead(500).end();
        return;
      }
      const head = decodeResponseContext(reply.flags, reply.context);
      // writeHead(status, headers) freezes the header block, so end(body) could no longer add a
      // Content-Length and Node would answer chunked: give the length up front.
      const headers = head.headers;
      if (headers['Content-Length'] === undefined && headers['content-length'] === undefined)
        headers['Content-Length'] = [String(reply.body.length)];
      res.writeHead(head.status, headers).end(reply.body);
    },
    (error) => {
      stderrLogger.error({ code: error.code }, error.message);
      res.writeHead(502).end();
    },
  );
}

const server = http.createServer((req, res) => {
  if (req.method === 'GET' || req.method === 'HEAD') {
    req.resume();
    relay(req, res, null);
    return;
  }
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => relay(req, res, Buffer.concat(chunks)));
});
server.keepAliveTimeout = 60_000;
await new Promise((resolve) => server.listen(config.port, '127.0.0.1', resolve));
stopOn(async () => {
  await new Promise((resolve) => server.close(resolve));
  await pool.close();
});
process.stdout.write(`floor listening on 127.0.0.1:${config.port} (pid ${process.pid})\n`);
