import { describe, expect, it } from 'vitest';
import { isAllInterfaces } from '../src/status.js';

describe('isAllInterfaces', () => {
  it('is true for the wildcard addresses, false for a named one', () => {
    // "0" is no address: Node resolves it to 0.0.0.0 (both missed by the warning before)
    for (const address of [
      ':9090',
      '0.0.0.0:9090',
      '[::]:9090',
      '[0:0:0:0:0:0:0:0]:9090',
      '0:9090',
      '[::FFFF:0:0]:9090',
    ])
      expect(isAllInterfaces(address), address).toBe(true);
    for (const address of ['127.0.0.1:9090', '[::1]:9090', '10.0.0.5:9090', 'localhost:9090', '[fd00::1]:9090'])
      expect(isAllInterfaces(address), address).toBe(false);
  });
});
