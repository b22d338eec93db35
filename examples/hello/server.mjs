// The bundled example: a Fastify app serving public/ and sending everything else to worker.php.
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { warmpool } from '@warmpool/fastify';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const host = process.env.HOST ?? '127.0.0.1';
const port = Number(process.env.PORT ?? 8080);
const numWorkers = Number(process.env.WORKERS ?? 2);

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } });
console.log(`booting ${numWorkers} PHP workers: php worker.php`);
await app.register(warmpool, {
  command: ['php', here('./worker.php')],
  pool: { num_workers: numWorkers },
  // The plugin's static layer, not a bare @fastify/static: an existing file in public/ is sent, but
  // never PHP source, a dotfile or anything a symlink reaches outside public/; the rest goes to PHP.
  static: { dir: here('./public') },
});
await app.listen({ host, port });
console.log(`warmpool example listening on http://${host}:${port}/ (Ctrl-C to stop)`);

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, async () => {
    console.log(`${signal}: draining requests and stopping workers`);
    await app.close();
    process.exit(0);
  });
}
