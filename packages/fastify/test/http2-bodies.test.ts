import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { connect as connectHttp2 } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { applyLimits, resolveLimits } from '../src/limits.js';
import { makeTlsPair } from '../../../test/helpers/tls-pair.js';
import { serverReset } from '../../../test/helpers/http2-reset.js';
import { until } from '../../../test/helpers/until.js';

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

describe('HTTP/2 request bodies', () => {
  it('cuts an HTTP/2 stream whose body is still arriving at request_timeout with 408, resets a stream answered 413 mid-body; the session and a prompt stream are served, a body without Content-Type or length too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wp-limits-h2-'));
    try {
      const { cert, key } = await makeTlsPair(dir);
      const app = Fastify({ http2: true, https: { cert: await readFile(cert), key: await readFile(key) } });
      apps.push(app as unknown as FastifyInstance);
      const handled: number[] = [];
      await app.register(async (child) => {
        const limits = resolveLimits({ request_timeout: '500ms', max_request_size: 0.01 }); // 10485 bytes
        child.removeAllContentTypeParsers();
        child.addContentTypeParser(
          '*',
          { parseAs: 'buffer', bodyLimit: limits.maxRequestBytes },
          (_request, body, done) => done(null, body),
        );
        applyLimits(child as unknown as FastifyInstance, limits);
        child.post('/*', async (request) => {
          handled.push((request.body as Buffer).length);
          return { length: (request.body as Buffer).length };
        });
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      // curl streams its stdin as the body (-T -) and stops once the server has answered and reset
      // the stream; without the reset it would send for as long as stdin stays open
      const curl = spawn(
        'curl',
        [
          '-sk',
          '--http2',
          '-X',
          'POST',
          '-H',
          'content-type: text/plain',
          '-T',
          '-',
          '-w',
          '\n%{http_code}',
          `https://127.0.0.1:${port}/slow`,
        ],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      let output = '';
      curl.stdout.setEncoding('utf8').on('data', (text: string) => {
        output += text;
      });
      curl.stdin.on('error', () => {});
      const exited = once(curl, 'exit');
      let sent = 0;
      const trickle = setInterval(() => {
        curl.stdin.write('b');
        sent++;
      }, 50);
      try {
        await exited;
      } finally {
        clearInterval(trickle);
      }
      expect(output.trim().split('\n').at(-1)).toBe('408');
      expect(JSON.parse(output.trim().split('\n')[0]!)).toMatchObject({ code: 'WP_FASTIFY_REQUEST_TIMEOUT' });
      expect(handled).toEqual([]);
      expect(sent).toBeGreaterThan(0);

      // a body sent at once, on a session that also holds a stalled stream past the limit
      const session = connectHttp2(`https://127.0.0.1:${port}`, { ca: await readFile(join(dir, 'ca.pem')) });
      try {
        const stalled = session.request({ ':method': 'POST', ':path': '/stalled', 'content-type': 'text/plain' });
        stalled.write('partial');
        const [stalledHead] = (await once(stalled, 'response')) as [Record<string, unknown>];
        expect(stalledHead[':status']).toBe(408);
        stalled.resume();
        // reset by the server: the client never ends its side, so only RST_STREAM closes it
        expect(await serverReset(stalled)).toBe(0);
        // over max_request_size with no Content-Length: 413 once the limit is crossed, then reset
        // (Node would read on for as long as the client sent)
        const oversized = session.request({ ':method': 'POST', ':path': '/big', 'content-type': 'text/plain' });
        oversized.on('error', () => {});
        const flood = setInterval(() => oversized.write(Buffer.alloc(4096)), 5);
        try {
          const [oversizedHead] = (await once(oversized, 'response')) as [Record<string, unknown>];
          expect(oversizedHead[':status']).toBe(413);
          oversized.resume();
          expect(await serverReset(oversized)).toBe(0);
        } finally {
          clearInterval(flood);
        }
        const prompt = session.request({ ':method': 'POST', ':path': '/prompt', 'content-type': 'text/plain' });
        prompt.end('abc');
        const [promptHead] = (await once(prompt, 'response')) as [Record<string, unknown>];
        prompt.setEncoding('utf8');
        let body = '';
        for await (const chunk of prompt) body += chunk;
        expect(promptHead[':status']).toBe(200);
        expect(JSON.parse(body)).toEqual({ length: 3 });
        expect(handled).toEqual([3]);

        // neither Content-Type nor Content-Length (HTTP/2 needs no length): the body is read all the same
        const bare = session.request({ ':method': 'POST', ':path': '/bare' });
        bare.end('abcd');
        bare.setEncoding('utf8');
        let bareBody = '';
        for await (const chunk of bare) bareBody += chunk;
        expect(JSON.parse(bareBody)).toEqual({ length: 4 });
        expect(handled).toEqual([3, 4]);
      } finally {
        session.destroy();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
  it('body_timeout does not cut an HTTP/2 body nobody reads yet (a request queued for a busy PHP): the client is held by our flow control, not silent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wp-body-pace-h2-wait-'));
    try {
      const { cert, key } = await makeTlsPair(dir);
      const app = Fastify({ http2: true, https: { cert: await readFile(cert), key: await readFile(key) } });
      apps.push(app as unknown as FastifyInstance);
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      let reading = false;
      await app.register(async (child) => {
        const limits = resolveLimits({ body_timeout: '200ms', request_timeout: '10m' });
        child.removeAllContentTypeParsers();
        // a reader that starts late, as a request queued for a busy PHP pool
        child.addContentTypeParser('*', { bodyLimit: limits.maxRequestBytes }, (_request, payload, done) => {
          reading = true;
          void released
            .then(async () => {
              let length = 0;
              for await (const chunk of payload) length += (chunk as Buffer).length;
              done(null, length);
            })
            .catch((error: Error) => done(error, undefined));
        });
        applyLimits(child as unknown as FastifyInstance, limits);
        child.post('/*', async (request) => ({ length: request.body }));
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      const session = connectHttp2(`https://127.0.0.1:${port}`, { ca: await readFile(join(dir, 'ca.pem')) });
      try {
        // over the stream's 64 KiB window: the client's writes wait for us
        const body = Buffer.alloc(200_000, 'b');
        const stream = session.request({ ':method': 'POST', ':path': '/queued', 'content-type': 'text/plain' });
        stream.end(body);
        let answered = false;
        stream.once('response', () => (answered = true));
        await until(() => reading, 'the body read');
        // five times the timeout with the body waiting on us: not cut (before: 408)
        await new Promise((resolve) => setTimeout(resolve, 1000));
        expect(answered).toBe(false);
        release();
        const [head] = (await once(stream, 'response')) as [Record<string, unknown>];
        stream.setEncoding('utf8');
        let text = '';
        for await (const chunk of stream) text += chunk;
        expect([head[':status'], JSON.parse(text)]).toEqual([200, { length: body.length }]);
      } finally {
        session.destroy();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('body_timeout cuts an HTTP/2 stream whose client stops sending its body (408, reset); a steady slow stream on the same session is served', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'wp-body-pace-h2-'));
    try {
      const { cert, key } = await makeTlsPair(dir);
      const app = Fastify({ http2: true, https: { cert: await readFile(cert), key: await readFile(key) } });
      apps.push(app as unknown as FastifyInstance);
      await app.register(async (child) => {
        const limits = resolveLimits({ body_timeout: '300ms', request_timeout: '10m' });
        child.removeAllContentTypeParsers();
        child.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
        applyLimits(child as unknown as FastifyInstance, limits);
        child.post('/*', async (request) => ({ length: (request.body as Buffer).length }));
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      const { port } = app.server.address() as AddressInfo;
      const session = connectHttp2(`https://127.0.0.1:${port}`, { ca: await readFile(join(dir, 'ca.pem')) });
      try {
        const stalled = session.request({ ':method': 'POST', ':path': '/stalled', 'content-type': 'text/plain' });
        stalled.write('partial');
        // 20 bytes 50 ms apart: over three times the timeout in all, never silent for it
        const steady = session.request({ ':method': 'POST', ':path': '/steady', 'content-type': 'text/plain' });
        let sent = 0;
        const pace = setInterval(() => {
          if (++sent === 20) {
            clearInterval(pace);
            steady.end('b');
          } else steady.write('b');
        }, 50);
        const [stalledHead] = (await once(stalled, 'response')) as [Record<string, unknown>];
        expect(stalledHead[':status']).toBe(408);
        stalled.setEncoding('utf8');
        let stalledBody = '';
        stalled.on('data', (text: string) => (stalledBody += text));
        expect(await serverReset(stalled)).toBe(0);
        expect(JSON.parse(stalledBody)).toMatchObject({ code: 'WP_FASTIFY_BODY_TIMEOUT' });
        const [steadyHead] = (await once(steady, 'response')) as [Record<string, unknown>];
        steady.setEncoding('utf8');
        let steadyBody = '';
        for await (const chunk of steady) steadyBody += chunk;
        expect(steadyHead[':status']).toBe(200);
        expect(JSON.parse(steadyBody)).toEqual({ length: 20 });
      } finally {
        session.destroy();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
