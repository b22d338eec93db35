import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseRelay, relayDsn, writeFrame, type RelaySpec } from '../../src/relay/relay.js';

describe('parseRelay', () => {
  it.each<[string, RelaySpec]>([
    ['pipes', { kind: 'pipes' }],
    ['', { kind: 'pipes' }],
    ['fds', { kind: 'fds' }],
    ['pipes://3:4', { kind: 'fds' }],
    ['unix:///tmp/x.sock', { kind: 'unix', path: '/tmp/x.sock' }],
    ['unix://relative/rr.sock', { kind: 'unix', path: 'relative/rr.sock' }],
    ['tcp://127.0.0.1:7000', { kind: 'tcp', host: '127.0.0.1', port: 7000 }],
    ['tcp://localhost:65535', { kind: 'tcp', host: 'localhost', port: 65535 }],
    ['tcp://[::1]:0', { kind: 'tcp', host: '::1', port: 0 }],
    ['tcp://[fe80::1]:6001', { kind: 'tcp', host: 'fe80::1', port: 6001 }],
  ])('parses %j', (value, spec) => {
    expect(parseRelay(value)).toEqual(spec);
  });

  it.each([
    ['unix://', /no socket path/],
    ['tcp://127.0.0.1', /tcp:\/\/host:port/],
    ['tcp://:7000', /tcp:\/\/host:port/],
    ['tcp://host:70000', /tcp:\/\/host:port/],
    ['tcp://host:-1', /tcp:\/\/host:port/],
    ['tcp://host:http', /tcp:\/\/host:port/],
    ['tcp://host:1.5', /tcp:\/\/host:port/],
    ['tcp://[::1]', /tcp:\/\/host:port/],
    ['ftp://x', /pipes, fds, unix/],
    ['pipes://0:1', /pipes, fds, unix/],
    ['PIPES', /pipes, fds, unix/],
    ['/tmp/x.sock', /pipes, fds, unix/],
  ])('rejects %j, quoting it', (value, message) => {
    let error: unknown;
    try {
      parseRelay(value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain(`"${value}"`);
  });
});

describe('relayDsn', () => {
  it('gives "pipes" for pipes and for the fds extension (RoadRunner workers keep pipes)', () => {
    expect(relayDsn({ kind: 'pipes' })).toBe('pipes');
    expect(relayDsn({ kind: 'fds' })).toBe('pipes');
  });

  it('gives socket DSNs the PHP library reads from RR_RELAY', () => {
    expect(relayDsn({ kind: 'unix', path: '/tmp/x.sock' })).toBe('unix:///tmp/x.sock');
    expect(relayDsn({ kind: 'tcp', host: '127.0.0.1', port: 7000 })).toBe('tcp://127.0.0.1:7000');
  });

  it('brackets IPv6 hosts', () => {
    expect(relayDsn({ kind: 'tcp', host: '::1', port: 0 })).toBe('tcp://[::1]:0');
  });

  it('uses the bound port when the configured port is 0', () => {
    expect(relayDsn({ kind: 'tcp', host: '::1', port: 0 }, 41234)).toBe('tcp://[::1]:41234');
    expect(relayDsn({ kind: 'tcp', host: '127.0.0.1', port: 0 }, 5000)).toBe('tcp://127.0.0.1:5000');
  });

  it.each(['unix:///tmp/x.sock', 'tcp://127.0.0.1:7000', 'tcp://[::1]:9000', 'pipes'])(
    'round-trips %j through parseRelay',
    (value) => {
      expect(relayDsn(parseRelay(value))).toBe(value);
    },
  );
});

describe('writeFrame', () => {
  /** A writable that records each write call: one entry per _write or _writev. */
  function recorder(): { stream: Writable; calls: Buffer[][] } {
    const calls: Buffer[][] = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        calls.push([chunk]);
        callback();
      },
      writev(chunks, callback) {
        calls.push(chunks.map((c) => c.chunk as Buffer));
        callback();
      },
    });
    return { stream, calls };
  }

  it('writes one part as one write', () => {
    const { stream, calls } = recorder();
    expect(writeFrame(stream, [Buffer.from('abc')])).toBe(true);
    expect(calls).toEqual([[Buffer.from('abc')]]);
  });

  it('writes several parts in one writev, in order', () => {
    const { stream, calls } = recorder();
    const head = Buffer.from('head');
    const body = Buffer.alloc(100_000, 1);
    writeFrame(stream, [head, body]);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toHaveLength(2);
    expect(calls[0]![0]).toBe(head);
    expect(calls[0]![1]).toBe(body);
  });
});
