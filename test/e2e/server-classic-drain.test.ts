// Two `warmpool serve` processes passing PHP to one php-fpm, as the two colours of a blue-green swap
// do: php-fpm serves one connection per child, so a kept-alive idle connection pins a child. When one
// server drains, it lets go of its idle connections at once, and the other is served by those
// children while the draining server's last request still runs.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { startPhpFpm } from '../helpers/php-fpm.js';
import { phpFpmConnections, startPassServer } from '../helpers/pass-server.js';
import { stopAllServers } from '../helpers/warmpool-server.js';
import { until } from '../helpers/until.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-classic-drain-'));
afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

describe('classic PHP passed to php-fpm: a draining server lets go of its idle connections', () => {
  it("the other server is served by php-fpm's children while the draining one's last request runs", async () => {
    const fpm = await startPhpFpm({ maxChildren: 2 });
    try {
      // connections kept for the whole test: what lets blue's go is its drain, not their age
      const blue = await startPassServer(dir, 'blue', fpm.pass, ['keepalive_time: 0']);
      const green = await startPassServer(dir, 'green', fpm.pass, ['keepalive_time: 0']);
      const opened = join(dir, 'opened.flag');
      const slowFlag = join(dir, 'slow.flag');
      const slowDone = join(dir, 'slow.done');
      const blueConnections = () => phpFpmConnections(blue.socket);

      // blue opens two connections (two requests at once), which then sit idle, pinning both children
      const both = [1, 2].map(() => request(`${blue.url}/wait-for-flag.php?flag=${opened}`));
      await until(async () => (await blueConnections()).busy === 2, 'blue running a script on both children');
      writeFileSync(opened, '');
      for (const response of await Promise.all(both)) expect(await response.body.text()).toBe('started\nfinished\n');
      // one of them now runs blue's last request (its reply comes whole, at its end); the other stays idle
      const slow = request(`${blue.url}/wait-for-flag.php?flag=${slowFlag}&done=${slowDone}`);
      await until(async () => {
        const now = await blueConnections();
        return now.busy === 1 && now.idle === 1;
      }, "blue's last request on one connection, the other idle");

      const stopped = blue.server.stop('SIGTERM');
      await blue.server.waitFor('draining');
      // green gets the child blue's idle connection held, before blue's last request has ended
      const served = await request(`${green.url}/hello.php`);
      expect(served.statusCode).toBe(200);
      expect(await served.body.text()).toMatch(/^hello from fpm-fcgi pid \d+$/);
      expect(existsSync(slowDone)).toBe(false);

      writeFileSync(slowFlag, '');
      const last = await slow;
      expect([last.statusCode, await last.body.text()]).toEqual([200, 'started\nfinished\n']);
      expect((await stopped).code).toBe(0);
    } finally {
      await stopAllServers();
      await fpm.stop();
    }
  }, 60_000);
});
