import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLoggers, logCliLines } from '../src/logging.js';
import { formatGoDuration, toZapLine } from '../src/zap-log.js';

/** A stream collecting whole lines. */
function lines(): { stream: Writable; lines: string[] } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      out.push(...chunk.toString().split('\n').filter(Boolean));
      done();
    },
  });
  return { stream, lines: out };
}

describe('formatGoDuration: Go time.Duration.String()', () => {
  // cases from Go's time_test.go durationTests
  it.each([
    [0, '0s'],
    [1, '1ns'],
    [1100, '1.1µs'],
    [850_000, '850µs'],
    [1_234_567, '1.234567ms'],
    [2_200_000, '2.2ms'],
    [3_300_000_000, '3.3s'],
    [4 * 60e9 + 5e9, '4m5s'],
    [4 * 60e9 + 5.001e9, '4m5.001s'],
    [5 * 3600e9 + 6 * 60e9 + 7.001e9, '5h6m7.001s'],
    [8 * 3600e9 + 1, '8h0m0.000000001s'],
    [-1_500_000, '-1.5ms'],
  ])('%d ns → %s', (ns, text) => {
    expect(formatGoDuration(ns)).toBe(text);
  });
});

describe('toZapLine', () => {
  it('rewrites a pino line into zap keys and order: level word, ts in ns, logger, msg, then the fields', () => {
    const line = toZapLine(
      '{"level":30,"time":1733300000123,"channel":"server","site":"default","pid":7,"msg":"hello"}\n',
    );
    expect(line).toBe(
      '{"level":"info","ts":1733300000123000000,"logger":"server","msg":"hello","site":"default","pid":7}\n',
    );
  });

  it("names a worker's pid as RoadRunner does: workerPid becomes pid", () => {
    const line = toZapLine('{"level":50,"time":1,"channel":"server","workerPid":7,"reason":"crashed","msg":"x"}');
    expect(line).toBe('{"level":"error","ts":1000000,"logger":"server","msg":"x","pid":7,"reason":"crashed"}\n');
  });

  it('gives every line msg, logger and level, whatever it lacked', () => {
    for (const input of ['{"level":10,"time":1}', '{"level":"warn"}', 'not json at all\n']) {
      const record = JSON.parse(toZapLine(input)) as Record<string, unknown>;
      expect(typeof record.msg).toBe('string');
      expect(typeof record.logger).toBe('string');
      expect(['debug', 'info', 'warn', 'error', 'fatal']).toContain(record.level);
    }
    expect(JSON.parse(toZapLine('{"level":10,"time":1}'))).toMatchObject({
      level: 'debug',
      msg: '',
      logger: 'warmpool',
    });
    expect(JSON.parse(toZapLine('not json at all\n'))).toMatchObject({ msg: 'not json at all', level: 'info' });
  });
});

describe('createLoggers with logs.encoding: json', () => {
  it('writes every channel in the zap shape, filtered by level', () => {
    const stdout = lines();
    const loggers = createLoggers(
      { mode: 'production', encoding: 'json', level: 'info', output: 'stdout' },
      { stdout: stdout.stream as never },
    );
    expect(loggers.zap).toBe(true);
    expect(loggers.toStdout).toBe(true);
    expect(loggers.describe()).toBe("stdout (JSON in RoadRunner's shape, level info)");
    loggers.server.child({ site: 'default' }).info({ workerPid: 42, stream: 'stderr' }, '{"type":"request"}');
    loggers.http.warn('slow');
    loggers.root.debug('hidden below info');
    const records = stdout.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(records).toEqual([
      {
        level: 'info',
        ts: expect.any(Number),
        logger: 'server',
        msg: '{"type":"request"}',
        site: 'default',
        pid: 42,
        stream: 'stderr',
      },
      { level: 'warn', ts: expect.any(Number), logger: 'http', msg: 'slow' },
    ]);
    expect(Object.keys(records[0]!).slice(0, 4)).toEqual(['level', 'ts', 'logger', 'msg']);
  });

  it('production mode without logs.encoding keeps pino JSON (its own default)', () => {
    const stdout = lines();
    const loggers = createLoggers({ mode: 'production', output: 'stdout' }, { stdout: stdout.stream as never });
    loggers.root.info('x');
    expect(loggers.zap).toBe(false);
    expect(JSON.parse(stdout.lines[0]!)).toMatchObject({ level: 30, channel: 'warmpool', msg: 'x' });
  });

  it('logCliLines turns the CLI stdout lines and warnings into log records only when the zap log goes to stdout', () => {
    const stdout = lines();
    const loggers = createLoggers({ encoding: 'json', output: 'stdout' }, { stdout: stdout.stream as never });
    const written: string[] = [];
    const out = {
      success: (m: string) => written.push(m),
      info: (m: string) => written.push(m),
      detail: (m: string) => written.push(m),
      raw: (m: string) => written.push(m),
      table: () => written.push('table'),
      warn: (m: string) => written.push(`warn ${m}`),
      error: (m: string) => written.push(`error ${m}`),
    };
    const logged = logCliLines(out, loggers);
    logged.info('listening on http://127.0.0.1:1');
    logged.warn('careful');
    logged.error('broken');
    // errors stay on stderr; warnings are log records, as RoadRunner's own (Octane shows stderr as errors)
    expect(written).toEqual(['error broken']);
    expect(JSON.parse(stdout.lines[0]!)).toMatchObject({
      logger: 'warmpool',
      level: 'info',
      msg: 'listening on http://127.0.0.1:1',
    });
    expect(JSON.parse(stdout.lines[1]!)).toMatchObject({ logger: 'warmpool', level: 'warn', msg: 'careful' });
    const toStderr = createLoggers({ encoding: 'json', output: 'stderr' }, { stderr: lines().stream as never });
    expect(logCliLines(out, toStderr)).toBe(out);
  });
});
