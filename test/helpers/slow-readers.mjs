// Started by test/e2e/plugin-slow-readers.test.ts with --expose-gc: a Fastify app with the plugin
// and a worker answering 10 MB replies whole; N clients ask for one and read nothing. Prints, as
// JSON lines, the bytes Node holds in ArrayBuffers (after a full GC) before, while they wait, and
// after they left, plus how many reply bodies went to temp files (deleted files still open).
import { readdirSync, readlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { warmpool } from '@warmpool/fastify';
import Fastify from 'fastify';

const clients = Number(process.env.CLIENTS ?? 20);
const worker = fileURLToPath(new URL('../fixtures/php/big-reply.php', import.meta.url));
/** ArrayBuffer bytes still reachable: V8 frees dead backing stores on a background thread after a GC. */
const held = async () => {
  let least = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 10; i++) {
    globalThis.gc();
    await new Promise((r) => setTimeout(r, 10));
    least = Math.min(least, process.memoryUsage().arrayBuffers);
  }
  return least;
};
const spilled = () =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).includes('warmpool-body');
    } catch {
      return false;
    }
  }).length;

const app = Fastify();
let spills = 0;
app.addHook('onSend', async (_request, _reply, payload) => {
  payload?.once?.('spill', () => spills++);
  return payload;
});
await app.register(warmpool, { command: ['php', worker], pool: { num_workers: 2 } });
const port = (await app.listen({ port: 0, host: '127.0.0.1' })) && app.server.address().port;
const report = async (phase) => console.log(JSON.stringify({ phase, arrayBuffers: await held(), spilled: spilled() }));
await report('before');
const sockets = [];
let answered = 0;
for (let i = 0; i < clients; i++) {
  const socket = connect(port, '127.0.0.1', () => socket.write('GET /?mb=10 HTTP/1.1\r\nHost: x\r\n\r\n'));
  socket.on('error', () => {});
  // the first bytes of the reply mean it was sent; then the client stops reading
  socket.once('data', () => {
    socket.pause();
    answered++;
  });
  sockets.push(socket);
}
// the event: every client got its reply started and every body the clients hold back is on disk
while (answered < clients || spills < clients) await new Promise((r) => setTimeout(r, 50));
await report('waiting');
for (const socket of sockets) socket.destroy();
while (spilled() > 0) await new Promise((r) => setTimeout(r, 50));
await report('after');
await app.close();
