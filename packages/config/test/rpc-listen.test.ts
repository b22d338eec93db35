// rpc.listen: RoadRunner's RPC address, checked by the key table and read by parseRpcListen.
import { describe, expect, it } from 'vitest';
import { type ConfigError, isExposedRpc, parseConfig, parseRpcListen } from '../src/index.js';

const BASE = 'http:\n  address: ":8080"\nserver:\n  command: php worker.php\n';

describe('rpc.listen', () => {
  it('is a supported key: tcp://host:port or unix:///path, from the file or -o', () => {
    expect(parseConfig(`${BASE}rpc:\n  listen: tcp://127.0.0.1:6001\n`, { env: {} }).config.rpc).toEqual({
      listen: 'tcp://127.0.0.1:6001',
    });
    const loaded = parseConfig(BASE, { env: {}, overrides: ['rpc.listen=unix:///run/app/rpc.sock'] });
    expect(loaded.config.rpc).toEqual({ listen: 'unix:///run/app/rpc.sock' });
    expect(loaded.warnings).toEqual([]);
  });

  it.each(['http://127.0.0.1:6001', 'tcp://127.0.0.1', 'tcp://127.0.0.1:99999', '127.0.0.1:6001', 'unix://'])(
    'refuses %s, naming the key and what to write',
    (value) => {
      try {
        parseConfig(BASE, { env: {}, overrides: [`rpc.listen=${value}`] });
        expect.unreachable();
      } catch (error) {
        expect((error as ConfigError).errors[0]!.message).toBe(
          `-o rpc.listen=${value}: must be "tcp://127.0.0.1:6001" or "unix:///run/app/rpc.sock", got ${JSON.stringify(value)}`,
        );
      }
    },
  );

  it('needs listen when the section is there', () => {
    expect(() => parseConfig(`${BASE}rpc: {}\n`, { env: {} })).toThrow(/rpc\.listen: is required/);
  });

  it('reads a host-less tcp address as 127.0.0.1 and a relative unix path from the config folder', () => {
    expect(parseRpcListen('tcp://:6001')).toEqual({
      kind: 'tcp',
      host: '127.0.0.1',
      port: 6001,
      url: 'tcp://127.0.0.1:6001',
      explicitHost: false,
    });
    expect(parseRpcListen('tcp://[::1]:6001')).toMatchObject({ host: '::1', url: 'tcp://[::1]:6001' });
    expect(parseRpcListen('unix://rr.sock', '/srv/app')).toEqual({
      kind: 'unix',
      path: '/srv/app/rr.sock',
      url: 'unix:///srv/app/rr.sock',
    });
  });

  it('is exposed when other machines can reach it', () => {
    for (const url of ['tcp://0.0.0.0:6001', 'tcp://[::]:6001', 'tcp://192.168.1.5:6001'])
      expect(isExposedRpc(parseRpcListen(url)), url).toBe(true);
    for (const url of ['tcp://127.0.0.1:6001', 'tcp://:6001', 'tcp://localhost:6001', 'tcp://[::1]:1', 'unix:///x'])
      expect(isExposedRpc(parseRpcListen(url)), url).toBe(false);
  });
});
