// An existing Fastify app with its own TypeScript routes; the warmpool plugin adds a PHP app
// behind them. Everything no route below takes goes to worker.php.
import { fileURLToPath } from 'node:url';
import Fastify from 'fastify';
import { warmpool } from '@warmpool/fastify';

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'info' } });

app.get('/api/time', async () => ({ now: new Date().toISOString(), servedBy: 'typescript' }));
app.post('/api/echo', async (request) => ({ youSent: request.body }));

await app.register(warmpool, {
  command: ['php', fileURLToPath(new URL('../worker.php', import.meta.url))],
  pool: { num_workers: 2, max_jobs: 500, supervisor: { exec_ttl: '30s' } },
});

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 3000) });
