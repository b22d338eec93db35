// Two listeners of one file on one port are an error of the file, at the later key's line, naming
// the other's: `config check` passed them, and `serve` blamed "another warmpool, nginx".
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, toServerOptions } from '../src/index.js';
import { portClashes } from '../src/listener-ports.js';

const parse = (text: string) => parseConfig(text, { file: '/srv/app/warmpool.yaml', env: {} });

function errorsOf(text: string): string[] {
  try {
    toServerOptions(parse(text));
  } catch (error) {
    if (error instanceof ConfigError) return error.errors.map((e) => `${e.line}:${e.col} ${e.key}: ${e.reason}`);
    throw error;
  }
  return [];
}

describe('listeners on one port', () => {
  it('names both keys and the line of the first, for http, https, status and rpc', () => {
    const base = ['version: "3"', 'server: { command: php worker.php }', 'http:', '  address: 127.0.0.1:30001'];
    expect(errorsOf([...base, 'status:', '  address: 0.0.0.0:30001'].join('\n'))).toEqual([
      '6:3 status.address: 0.0.0.0:30001 takes the port of http.address (warmpool.yaml:4:3) too: two listeners cannot share a port; give one of them another',
    ]);
    expect(errorsOf([...base, 'rpc:', '  listen: tcp://127.0.0.1:30001'].join('\n'))).toEqual([
      expect.stringMatching(
        /^6:3 rpc\.listen: tcp:\/\/127\.0\.0\.1:30001 takes the port of http\.address \(warmpool\.yaml:4:3\)/,
      ),
    ]);
    // another host on the same port, or another port: fine
    expect(errorsOf([...base, 'status:', '  address: 127.0.0.2:30001'].join('\n'))).toEqual([]);
    expect(errorsOf([...base, 'status:', '  address: 127.0.0.1:30002'].join('\n'))).toEqual([]);
  });

  it('lets status and metrics share one address (one listener serves both), and compares wildcards and IPv6', () => {
    expect(
      portClashes([
        { key: 'status.address', address: '127.0.0.1:2114' },
        { key: 'metrics.address', address: '127.0.0.1:2114' },
      ]),
    ).toEqual([]);
    expect(
      portClashes([
        { key: 'http.address', address: ':8080' },
        { key: 'http.ssl.address', address: '[::1]:8080' },
        { key: 'status.address', address: '[::1]:9000' },
        { key: 'metrics.address', address: '[::]:9000' },
      ]).map((clash) => [clash.key, clash.with]),
    ).toEqual([
      ['http.ssl.address', 'http.address'],
      ['metrics.address', 'status.address'],
    ]);
  });
});
