import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ProcessMetrics } from '../src/process-metrics.js';

describe('ProcessMetrics', () => {
  it('counts the open connections of the listeners it watches, and names the build', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const metrics = new ProcessMetrics('9.9.9');
    try {
      metrics.watch([server]);
      const open = (text: string) => Number(/^warmpool_connections_open (\d+)$/m.exec(text)?.[1]);
      expect(open(metrics.metrics())).toBe(0);
      const client = createConnection((server.address() as AddressInfo).port, '127.0.0.1');
      const [accepted] = (await once(server, 'connection')) as [import('node:net').Socket];
      expect(open(metrics.metrics())).toBe(1);
      client.destroy();
      await once(accepted, 'close');
      expect(open(metrics.metrics())).toBe(0);
      expect(metrics.metrics()).toContain(`warmpool_build_info{version="9.9.9",node="${process.version}"} 1`);
    } finally {
      metrics.close();
      server.close();
    }
  });
});
