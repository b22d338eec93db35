// The admin commands with -c FILE reach FILE's server or say why not. A config without
// admin.socket is reached on the default socket (/run/warmpool.sock), which the first server
// started took: `reset -c second.yaml` used to recycle the first server's workers, and a
// mistyped -c path did the same.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli, startServer, stopAllServers, writeEchoConfig } from '../helpers/warmpool-server.js';

const dir = mkdtempSync(join(tmpdir(), 'warmpool-default-socket-'));
afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

/** a config without admin.socket: the default socket */
function configWithoutAdmin(name: string): Promise<string> {
  return writeEchoConfig(join(dir, name));
}

describe('admin commands and the default admin socket', () => {
  it('a -c FILE that cannot be read is a usage error (exit 2), not the default socket', async () => {
    const result = await runCli(['reset', '-c', join(dir, 'shop.yamll')]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/cannot read config file .*shop\.yamll \(ENOENT\): fix the path .*--socket PATH/);
  });

  it('with no config file here, says in one line that it asks the server on the default socket', async () => {
    const empty = mkdtempSync(join(dir, 'empty-'));
    const workers = await runCli(['workers'], { cwd: empty });
    expect(workers.stdout.split('\n')[0]).toBe(
      '• no warmpool.yaml or .rr.yaml here; asking the server on /run/warmpool.sock (-c FILE or --socket PATH for another)',
    );
    // --json output stays JSON (or nothing, when no server answers)
    const json = await runCli(['workers', '--json'], { cwd: empty });
    expect(json.stdout).not.toContain('no warmpool.yaml');
  });

  it('-c FILE of a server that has no socket of its own does not act on the server holding the default one', async () => {
    const first = await configWithoutAdmin('first.yaml');
    const server = startServer(['serve', '-c', first]);
    await server.ready(30_000);
    // it holds the default socket unless another server on this machine does: either way, that
    // server was not started from second.yaml
    const second = await configWithoutAdmin('second.yaml');
    const reset = await runCli(['reset', '-c', second]);
    // another test file's server holding the default socket may stop meanwhile (files run side by
    // side): then no server answers there (3), and still nothing was reset; ours holding it, never
    const holdsIt = !server.stderr.includes('no admin socket');
    if (!holdsIt && reset.code === 3) expect(reset.stdout).not.toMatch(/reset done/);
    else {
      expect(reset.code).toBe(2);
      expect(reset.stderr).toMatch(
        /the server on \/run\/warmpool\.sock \(pid \d+\) was started from .*, not .*second\.yaml: .*set admin\.socket in .*second\.yaml and restart its server/,
      );
    }
    if (!server.stderr.includes('no admin socket')) {
      // it holds the default socket: its own file reaches it
      const workers = await runCli(['workers', '-c', first]);
      expect(workers.code, workers.stderr).toBe(0);
      expect(workers.stdout).toMatch(/ready/);
    }
    await server.stop();
  });
});
