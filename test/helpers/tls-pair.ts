import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';

const exec = promisify(execFile);

/**
 * A throwaway CA and a leaf for localhost / 127.0.0.1 (and `hosts`) signed by it, made with openssl in `dir`:
 * ca.pem (trust it in the client), cert.pem and key.pem (give them to the server).
 */
export async function makeTlsPair(
  dir: string,
  hosts: readonly string[] = [],
): Promise<{ ca: string; cert: string; key: string }> {
  const openssl = (...args: string[]) => exec('openssl', args, { cwd: dir });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const names = ['DNS:localhost', 'IP:127.0.0.1', ...hosts.map((host) => `DNS:${host}`)].join(',');
  await writeFile(join(dir, 'leaf.ext'), `subjectAltName=${names}\nextendedKeyUsage=serverAuth\n`);
  await openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=test CA');
  await openssl('req', ...ec, '-keyout', 'key.pem', '-out', 'leaf.csr', '-subj', '/CN=localhost');
  await openssl(
    'x509',
    '-req',
    '-in',
    'leaf.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-set_serial',
    '0x1001',
    '-days',
    '2',
    '-out',
    'cert.pem',
    '-extfile',
    'leaf.ext',
  );
  return { ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
}

/**
 * A self-signed pair for `names` (the first is its CN) in `dir`: NAME.pem and NAME.key, as certbot
 * leaves one per domain. Returns their paths.
 */
export async function selfSignedPair(
  dir: string,
  name: string,
  names: readonly string[] = [name],
): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  await exec('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    `/CN=${names[0] ?? name}`,
    '-addext',
    `subjectAltName=${names.map((host) => `DNS:${host}`).join(',')}`,
  ]);
  return { cert, key };
}

/**
 * For a test file: a pair made once before its tests and its folder removed after them. The
 * object is filled by beforeAll: read `cert` and `key` inside tests (createSecureServer(pair, ...)).
 */
export function useTlsPair(prefix: string): { cert: Buffer; key: Buffer } {
  const pair = { cert: Buffer.alloc(0), key: Buffer.alloc(0) };
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), prefix));
    const files = await makeTlsPair(dir);
    pair.cert = await readFile(files.cert);
    pair.key = await readFile(files.key);
  });
  afterAll(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });
  return pair;
}
