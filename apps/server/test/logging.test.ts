import { Writable } from 'node:stream';
import Fastify, { LogController } from 'fastify';
import { pino, type Logger } from 'pino';
import { describe, expect, it } from 'vitest';
import { createRequestLogger } from '../src/logging.js';

/** A pino logger writing JSON lines into an array. */
function capture(level: string): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level, base: null, timestamp: false }, stream), lines };
}

describe('createRequestLogger', () => {
  it('writes the same lines as an eager pino child, reqId included', async () => {
    const eager = capture('info');
    const lazy = capture('info');
    const write = (log: Logger | ReturnType<typeof createRequestLogger>) => {
      log.error({ err: { message: 'boom', code: 'E' }, status: 502 }, 'PHP request failed: %s', 'E');
      log.warn('careful');
      log.info({ a: 1 }, 'hello');
      log.debug('hidden');
      log.child({ site: 'a' }).info('from a grandchild');
    };
    write(eager.logger.child({ reqId: 'r-1' }, {}));
    write(createRequestLogger(lazy.logger, { reqId: 'r-1' }, {}));
    await new Promise((r) => setImmediate(r));
    expect(lazy.lines).toEqual(eager.lines);
    expect(lazy.lines.map((l) => l.reqId)).toEqual(['r-1', 'r-1', 'r-1', 'r-1']);
    expect(lazy.lines[0]).toMatchObject({ level: 50, reqId: 'r-1', status: 502, msg: 'PHP request failed: E' });
  });

  it('makes no pino child until a line at an enabled level is written', () => {
    const { logger } = capture('warn');
    let children = 0;
    const parent = Object.assign(Object.create(logger) as Logger, {
      child: (...args: Parameters<Logger['child']>) => {
        children++;
        return logger.child(...args);
      },
    });
    const log = createRequestLogger(parent, { reqId: 'r-2' }, {});
    log.info('below the level');
    log.debug('below the level');
    expect(log.level).toBe('warn');
    expect(children).toBe(0);
    log.warn('written');
    log.error('written');
    expect(children).toBe(1);
  });

  it('follows a level set on it, like a child would', async () => {
    const { logger, lines } = capture('info');
    const log = createRequestLogger(logger, { reqId: 'r-3' }, {});
    log.level = 'debug';
    log.debug('now shown');
    expect(log.level).toBe('debug');
    expect(logger.level).toBe('info');
    await new Promise((r) => setImmediate(r));
    expect(lines).toEqual([{ level: 20, reqId: 'r-3', msg: 'now shown' }]);
  });

  it('is accepted by Fastify as childLoggerFactory: request.log lines carry the reqId', async () => {
    const { logger, lines } = capture('info');
    const app = Fastify({
      loggerInstance: logger,
      logController: new LogController({ disableRequestLogging: true }),
      childLoggerFactory: createRequestLogger,
      genReqId: () => 'req-42',
    });
    app.get('/', async (request) => {
      request.log.error({ status: 502 }, 'failed');
      return 'ok';
    });
    const res = await app.inject('/');
    expect(res.statusCode).toBe(200);
    await app.close();
    expect(lines.filter((l) => l.msg === 'failed')).toEqual([
      { level: 50, reqId: 'req-42', status: 502, msg: 'failed' },
    ]);
  });
});
