// Contender "node:http floor" in the classic scenarios: the least work a Node server can do in front
// of the same php-fpm with warmpool's FastCGI client — node:http, the client pool (keep-alive
// connections, one write per request), params encoded from the request, and nothing else (no
// routing, no script resolution beyond docroot + path, no header mapping, no static files). The gap
// between this and `warmpool → php-fpm` is what the server's own layers cost; the gap between this
// and nginx is what Node costs.
import http from 'node:http';
import { Chunks } from '@warmpool/pool';
import { createFastCgiClientPool, encodeFastCgiParams } from '@warmpool/pool/fastcgi';
import { readConfig, stderrLogger, stopOn } from './resolve.mjs';

const config = readConfig();
const fpm = createFastCgiClientPool({
  address: `unix:${config.fpmSocket}`,
  maxConnections: config.workers,
  logger: stderrLogger,
});
const BUFFER_BYTES = 1024 * 1024;

function relay(req, res) {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const params = encodeFastCgiParams({
    method: req.method ?? 'GET',
    scheme: 'http',
    requestUri: url,
    protocol: 'HTTP/1.1',
    headers: req.headers,
    clientAddress: req.socket.remoteAddress ?? '',
    clientPort: req.socket.remotePort ?? null,
    serverAddress: '127.0.0.1',
    serverPort: config.port,
    documentRoot: config.docroot,
    scriptName: path,
    scriptFilename: config.docroot + path,
  });
  fpm.request({ params, bufferBytes: BUFFER_BYTES }).then(
    (reply) => {
      const body = reply.body;
      const headers = reply.headers;
      if (Buffer.isBuffer(body)) {
        headers['content-length'] = [String(body.length)];
        res.writeHead(reply.status, headers).end(body);
      } else if (body instanceof Chunks) {
        // a page that came in several reads (DokuWiki's): its parts in one writev
        headers['content-length'] = [String(body.length)];
        res.writeHead(reply.status, headers);
        res.cork();
        for (const part of body.parts) res.write(part);
        res.end();
      } else {
        // no classic scenario answers over 1 MiB; the floor does not implement streaming
        body.destroy();
        res.writeHead(500).end();
      }
    },
    (error) => {
      stderrLogger.error({ code: error.code }, error.message);
      res.writeHead(502).end();
    },
  );
}

const server = http.createServer((req, res) => {
  req.resume(); // the classic scenarios send no body
  relay(req, res);
});
server.keepAliveTimeout = 60_000;
await new Promise((resolve) => server.listen(config.port, '127.0.0.1', resolve));
stopOn(async () => {
  await new Promise((resolve) => server.close(resolve));
  await fpm.close();
});
process.stdout.write(`classic floor listening on 127.0.0.1:${config.port} (pid ${process.pid})\n`);
