// `warmpool serve` with one classic site passing PHP to a php-fpm the test started (the scripts of
// test/fixtures/php/fastcgi), and its connections to php-fpm as `warmpool workers` lists them.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from './free-port.js';
import { FIXTURES, runCli, startServer, type RunningServer } from './warmpool-server.js';

export interface PassServer {
  url: string;
  server: RunningServer;
  /** its admin socket */
  socket: string;
}

/** Writes `dir/NAME.yaml` (max_connections 2, then the `fastcgi` lines of `extra`), starts it, waits for ready. */
export async function startPassServer(
  dir: string,
  name: string,
  pass: string,
  extra: readonly string[] = [],
): Promise<PassServer> {
  const port = await freePort();
  const config = join(dir, `${name}.yaml`);
  const socket = join(dir, `${name}.sock`);
  writeFileSync(
    config,
    [
      'version: "3"',
      'http:',
      `  address: 127.0.0.1:${port}`,
      'logs: { mode: production, level: warn }',
      `admin: { socket: ${socket} }`,
      'fastcgi:',
      `  root: ${join(FIXTURES, 'php', 'fastcgi')}`,
      `  pass: ${pass}`,
      '  max_connections: 2',
      ...extra.map((line) => `  ${line}`),
      '',
    ].join('\n'),
  );
  const server = startServer(['serve', '-c', config]);
  await server.ready(30_000);
  return { url: `http://127.0.0.1:${port}`, server, socket };
}

/** A site's connections to php-fpm, from `warmpool workers --json` on the admin socket (default: the first site). */
export async function phpFpmConnections(socket: string, site?: string): Promise<{ busy: number; idle: number }> {
  const listed = await runCli(['workers', '--json', '--socket', socket]);
  const sites = JSON.parse(listed.stdout) as Array<{ site: string; phpFpm: { busy: number; idle: number } }>;
  return (site === undefined ? sites[0] : sites.find((s) => s.site === site))!.phpFpm;
}
