// Every shipped example, started by its own command, against the hostile-path corpus over a raw
// socket, with PHP source and symlinks to /etc planted where its files are served from (and removed
// after). What people copy must not serve PHP source or follow a link out of its root.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/free-port.js';
import { sendCorpus, type RawResponse } from '../helpers/hostile-paths.js';
import { SERVER_MAIN } from '../helpers/warmpool-server.js';

const EXAMPLES = fileURLToPath(new URL('../../examples/', import.meta.url));
const HELLO_PUBLIC = join(EXAMPLES, 'hello', 'public');
const EXISTING_APP = join(EXAMPLES, 'existing-app');
const PHP_MARKER = 'PLANTED-PHP-SOURCE';
// Nothing of these may ever be in a response body: the planted PHP source, /etc/passwd.
const NEVER = [PHP_MARKER, '<?php', 'root:x:0:0'];
// (no link to / : a bare @fastify/static with wildcard: false would glob the whole disk at boot)
const PLANTED = ['secret.php', 'etc', 'passwd.txt'];

/** What a hostile operator or a careless deploy may leave in a served folder. */
function plant(dir: string): void {
  unplant(dir);
  writeFileSync(join(dir, 'secret.php'), `<?php // ${PHP_MARKER}\necho 'hi';\n`);
  symlinkSync('/etc', join(dir, 'etc'));
  symlinkSync('/etc/passwd', join(dir, 'passwd.txt'));
}

function unplant(dir: string): void {
  for (const name of PLANTED) rmSync(join(dir, name), { force: true });
}

/** The example's public files: the only bodies a 200 may carry besides PHP's page. */
function publicBodies(dir: string): Set<string> {
  return new Set(
    readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isFile() && !PLANTED.includes(e.name))
      .map((e) => readFileSync(join(dir, e.name)).toString('latin1')),
  );
}

interface Started {
  child: ChildProcess;
  output: () => string;
}

/** Spawns a command and resolves once its output says it listens; rejects if it exits first. */
async function start(args: string[], env: NodeJS.ProcessEnv, ready: string): Promise<Started> {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, NO_COLOR: '1', LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk;
      if (output.includes(ready)) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited (${code}) before "${ready}":\n${output}`)));
  });
  return { child, output: () => output };
}

async function stop(started: Started | undefined): Promise<void> {
  if (started === undefined || started.child.exitCode !== null || started.child.signalCode !== null) return;
  started.child.kill('SIGTERM');
  await once(started.child, 'exit');
}

function leaksOf(results: Map<string, RawResponse>): string[] {
  const leaks: string[] = [];
  for (const [target, res] of results) {
    for (const secret of NEVER) if (res.body.includes(secret)) leaks.push(`${target} leaked ${secret}`);
  }
  return leaks;
}

function assertSafe(results: Map<string, RawResponse>, isPhpPage: (body: string) => boolean, legit: Set<string>): void {
  expect(leaksOf(results)).toEqual([]);
  for (const [target, res] of results) {
    expect([200, 301, 302, 304, 400, 403, 404], `${target} answered ${res.status}`).toContain(res.status);
    if (res.status === 200)
      expect(isPhpPage(res.body) || legit.has(res.body), `${target}: a 200 is PHP's page or a public file`).toBe(true);
  }
}

describe('shipped examples against the hostile-path corpus', () => {
  let running: Started | undefined;
  let adminDir: string;

  beforeAll(() => {
    plant(HELLO_PUBLIC);
    plant(EXISTING_APP);
    adminDir = mkdtempSync(join(tmpdir(), 'warmpool-example-admin-'));
  });

  afterAll(async () => {
    await stop(running);
    unplant(HELLO_PUBLIC);
    unplant(EXISTING_APP);
    rmSync(adminDir, { recursive: true, force: true });
  });

  const helloPage = (body: string) => body.includes('Hello from a warm PHP worker');

  it('examples/hello as `npm start` runs it (node examples/hello/server.mjs)', async () => {
    const port = await freePort();
    running = await start(
      [join(EXAMPLES, 'hello', 'server.mjs')],
      { PORT: String(port), WORKERS: '2' },
      'listening on',
    );
    const results = await sendCorpus(port);
    assertSafe(results, helloPage, publicBodies(HELLO_PUBLIC));
    // the static layer served the plain file, and the planted source went to PHP as a path
    expect(results.get('/secret.php')!.body).toContain('Hello from a warm PHP worker');
    await stop(running);
  });

  it('examples/hello as its warmpool.yaml runs it (warmpool serve -c examples/hello/warmpool.yaml)', async () => {
    const [port, statusPort] = [await freePort(), await freePort()];
    running = await start(
      [SERVER_MAIN, 'serve', '-c', join(EXAMPLES, 'hello', 'warmpool.yaml')],
      { PORT: String(port), STATUS_PORT: String(statusPort), ADMIN_DIR: adminDir },
      'warmpool ready',
    );
    const results = await sendCorpus(port);
    assertSafe(results, helloPage, publicBodies(HELLO_PUBLIC));
    expect(results.get('/passwd.txt')!.body).toContain('Hello from a warm PHP worker');
    await stop(running);
  });

  it('examples/existing-app as its README runs it (node examples/existing-app/dist/app.js)', async () => {
    const port = await freePort();
    running = await start(
      [join(EXISTING_APP, 'dist', 'app.js')],
      { PORT: String(port), LOG_LEVEL: 'info' },
      'Server listening',
    );
    const results = await sendCorpus(port);
    assertSafe(results, (body) => body.startsWith('{"servedBy":"php"'), new Set());
    await stop(running);
  });
});
