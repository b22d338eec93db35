// The bundled example: a Fastify app serving public/ and sending everything else to worker.php.
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import fastifyStatic from '@fastify/static';
import { warmpool } from '@warmpool/fastify';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 8080);
const numWorkers = Number(process.env.WORKERS ?? 2);

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } });
// Each file in public/ gets its own route, so it wins over the PHP catch-all.
await app.register(fastifyStatic, { root: here('./public'), wildcard: false });
console.log(`booting ${numWorkers} PHP workers: php worker.php`);
await app.register(warmpool, { command: ['php', here('./worker.php')], pool: { num_workers: numWorkers } });
await app.listen({ host, port });
console.log(`warmpool example listening on http://${host}:${port}/ (Ctrl-C to stop)`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    console.log(`${signal}: draining requests and stopping workers`);
    await app.close();
    process.exit(0);
  });
}
