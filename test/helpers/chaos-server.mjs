// The server under test in chaos.test.ts, in its own process so its RSS can be measured:
// Fastify + the warmpool plugin on the chaos worker, /ready for pool state, uploads to UPLOADS_DIR;
// HTTPS with HTTP/2 and HTTP/1.1 (TLS_CERT, TLS_KEY) so clients can also reset HTTP/2 streams.
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { warmpool } from '@warmpool/fastify';

const app = Fastify({
  logger: false,
  http2: true,
  https: { allowHTTP1: true, cert: readFileSync(process.env.TLS_CERT), key: readFileSync(process.env.TLS_KEY) },
});
await app.register(warmpool, {
  command: ['php', process.env.CHAOS_WORKER],
  env: { CHAOS_RATE: process.env.CHAOS_RATE ?? '0.02' },
  pool: {
    num_workers: Number(process.env.WORKERS ?? 4),
    allocate_timeout: '5s',
    max_queue_size: 256,
    send_timeout: '1s',
    supervisor: { exec_ttl: 1000, max_worker_memory: 64, watch_tick: 100 },
  },
  uploads: { dir: process.env.UPLOADS_DIR },
  ready_path: '/ready',
  max_request_size: 2,
  logger: { debug() {}, info() {}, warn() {}, error() {} },
});
await app.listen({ port: 0, host: '127.0.0.1' });
process.stdout.write(`listening ${app.server.address().port}\n`);
process.on('SIGUSR2', () => {
  void app.warmpool.reset().then(() => process.stdout.write('reset done\n'));
});
process.on('SIGTERM', async () => {
  await app.close();
  process.exit(0);
});
