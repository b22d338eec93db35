// Two configs giving one admin.socket: the second `serve` used to warn and serve anyway, and
// `workers -c second.yaml` / `reset -c second.yaml` then acted on the first server without a word.
// Now the second server refuses to start (exit 5, the code of an address in use), and the admin
// commands given the second file refuse to act on the server that was started from the first.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, startServer, stopAllServers, writeEchoConfig } from '../helpers/warmpool-server.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-shared-admin-'));
const socket = join(dir, 'admin.sock');
afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

/** a config on the shared admin socket */
function configOnSocket(name: string): Promise<string> {
  return writeEchoConfig(join(dir, name), socket);
}

describe('two configs with one admin.socket', () => {
  it('the second serve refuses to start, naming the socket, the server holding it and the line to change', async () => {
    const first = await configOnSocket('first.yaml');
    const second = await configOnSocket('second.yaml');
    const server = startServer(['serve', '-c', first]);
    await server.ready(30_000);

    const refused = startServer(['serve', '-c', second]);
    const { code } = await refused.exited;
    expect(code, refused.stderr).toBe(5);
    expect(refused.stderr).toContain(
      `✗ ${second}:6:3 admin.socket: another warmpool (pid ${server.pid}, started from ${first}) answers on the admin socket ${socket}: stop it first, or give this server its own admin.socket`,
    );
    // refused before any worker booted or any port was taken
    expect(refused.stdout).not.toContain('listening on');

    // the admin commands given the second file do not act on the first server
    for (const command of ['workers', 'reset']) {
      const result = await runCli([command, '-c', second]);
      expect({ command, code: result.code, stdout: result.stdout }).toEqual({ command, code: 2, stdout: '' });
      expect(result.stderr).toContain(
        `the server on ${socket} (pid ${server.pid}) was started from ${first}, not ${second}: both files give this admin.socket (${second}:6:3)`,
      );
      expect(result.stderr).toContain(`give ${second} its own admin.socket and restart its server`);
    }
    // its own file, and the socket named outright, still reach it
    const own = await runCli(['workers', '-c', first]);
    expect(own.code, own.stderr).toBe(0);
    const named = await runCli(['workers', '-c', second, '--socket', socket]);
    expect(named.code, named.stderr).toBe(0);
    expect(server.child.exitCode).toBe(null);
    await server.stop();
  });
});
