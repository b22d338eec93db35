// Contender "warmpool plugin": @warmpool/fastify registered in a bare Fastify app, logger off.
// Started by bench/run.mjs with BENCH_CONFIG = { port, command, workers, staticRoot, relay }.
import { warmpool } from '@warmpool/fastify';
import Fastify from 'fastify';
import { readConfig, stderrLogger, stopOn } from './resolve.mjs';

const config = readConfig();

const app = Fastify({ logger: false });
await app.register(warmpool, {
  command: config.command,
  relay: config.relay,
  pool: { num_workers: config.workers },
  logger: stderrLogger,
  // Only the static scenarios serve files first (as nginx's try_files does there); elsewhere every
  // request goes straight to PHP, like nginx's plain fastcgi_pass location.
  ...(config.staticRoot ? { static: { dir: config.staticRoot } } : {}),
});
await app.listen({ host: '127.0.0.1', port: config.port });
stopOn(() => app.close());
process.stdout.write(`plugin listening on 127.0.0.1:${config.port} (pid ${process.pid})\n`);
