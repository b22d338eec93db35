// certs_dir on a real filesystem: modes, the atomic `current` switch, one account key when two
// servers race, and challenge tokens that can never name a path.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { chmod, lstat, mkdtemp, readdir, readlink, rm, stat, utimes, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CertificateStore, slugOf } from '../../src/acme/store.js';
import { AcmeStoreError } from '../../src/errors.js';

let dir: string;
let store: CertificateStore;
const meta = (domains: string[]) => ({ directory: 'https://ca.test/dir', domains, storedAt: new Date().toISOString() });
const mode = async (path: string) => (await stat(path)).mode & 0o777;

/** Whether this machine lets the test mount a read-only tmpfs (root, with the capability). */
const canMountReadOnly = (() => {
  if (process.getuid?.() !== 0) return false;
  const probe = mkdtempSync(join(tmpdir(), 'wp-ro-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', probe], { stdio: 'ignore' });
    execFileSync('umount', [probe]);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
})();

beforeEach(async () => {
  dir = join(await mkdtemp(join(tmpdir(), 'wp-acme-store-')), 'certs');
  store = new CertificateStore(dir);
  await store.prepare();
});
afterEach(async () => {
  await rm(join(dir, '..'), { recursive: true, force: true });
});

describe('CertificateStore', () => {
  it('prepare() makes the folders 0700, and says what to do when certs_dir cannot be a folder', async () => {
    for (const sub of ['', 'accounts', 'certificates', 'http-01']) expect(await mode(join(dir, sub))).toBe(0o700);
    const file = join(dir, '..', 'a-file');
    await writeFile(file, 'x');
    const error = await new CertificateStore(join(file, 'certs')).prepare().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AcmeStoreError);
    expect((error as AcmeStoreError).code).toBe('WP_SERVER_ACME_STORE');
    expect((error as Error).message).toContain(`cannot create ${join(file, 'certs')}`);
  });

  it("prepare() warns of a certs_dir others may write, and keeps its mode (the folder is the operator's)", async () => {
    const open = join(dir, '..', 'open-certs');
    await mkdir(open);
    await chmod(open, 0o777);
    const warnings = await new CertificateStore(open).prepare();
    expect(warnings).toEqual([
      `http.ssl.acme.certs_dir ${open} is mode 777: other users may write in it (and so swap a certificate and its key); chmod 700 ${open}`,
    ]);
    expect(await new CertificateStore(dir).prepare()).toEqual([]);
  });

  it.skipIf(!canMountReadOnly)(
    'prepare() on a read-only filesystem says so, not ENOENT (recursive mkdir hides it)',
    async () => {
      const mountpoint = join(dir, '..', 'ro');
      await mkdir(mountpoint);
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', mountpoint]);
      try {
        const error = await new CertificateStore(join(mountpoint, 'certs')).prepare().catch((e: unknown) => e);
        expect((error as Error).message).toContain(
          'read-only filesystem: point http.ssl.acme.certs_dir at a writable folder',
        );
      } finally {
        execFileSync('umount', [mountpoint]);
      }
    },
  );

  it('stores a certificate as a set: key.pem 0600, cert.pem, meta.json, behind a `current` symlink', async () => {
    expect(await store.readCertificate('example.com')).toBeNull();
    const path = await store.writeCertificate('example.com', 'CERT 1', 'KEY 1', meta(['example.com']));
    expect(await mode(join(path, 'key.pem'))).toBe(0o600);
    expect(await mode(join(path, 'cert.pem'))).toBe(0o644);
    const folder = join(dir, 'certificates', 'example.com');
    expect((await lstat(join(folder, 'current'))).isSymbolicLink()).toBe(true);
    const read = await store.readCertificate('example.com');
    expect(read).toMatchObject({ cert: 'CERT 1', key: 'KEY 1', path, meta: { domains: ['example.com'] } });
  });

  it('a new version replaces `current`; the previous one is kept, older ones pruned; a crashed write is ignored', async () => {
    const first = await store.writeCertificate('example.com', 'CERT 1', 'KEY 1', meta(['example.com']));
    const second = await store.writeCertificate('example.com', 'CERT 2', 'KEY 2', meta(['example.com']));
    const folder = join(dir, 'certificates', 'example.com');
    // what a crash between step 1 and 2 leaves behind
    await mkdir(join(folder, '.20990101T000000Z-dead.tmp'));
    await writeFile(join(folder, '.20990101T000000Z-dead.tmp', 'key.pem'), 'HALF');
    const third = await store.writeCertificate('example.com', 'CERT 3', 'KEY 3', meta(['example.com']));
    expect(await readlink(join(folder, 'current'))).toBe(third.split('/').at(-1));
    const versions = (await readdir(folder)).filter((e) => !e.startsWith('.') && e !== 'current');
    expect(versions.sort()).toEqual([second, third].map((p) => p.split('/').at(-1)).sort());
    expect(versions).not.toContain(first.split('/').at(-1));
    expect(await store.readCertificate('example.com')).toMatchObject({ cert: 'CERT 3', key: 'KEY 3' });
  });

  it('prepare() sweeps what a crash left behind, an hour old and more: half-written files, stale answers; not fresh ones', async () => {
    const crashed = new CertificateStore(await mkdtemp(join(tmpdir(), 'wp-sweep-')));
    await crashed.prepare();
    const folder = join(crashed.dir, 'certificates', 'a.test');
    await mkdir(join(folder, '.20260101T000000Z-abcdef.tmp'), { recursive: true });
    const old = new Date(Date.now() - 2 * 60 * 60_000);
    const files = [
      join(folder, '.order.lock.0123456789abcdef'),
      join(folder, '.failures.json.abc123'),
      join(crashed.dir, 'http-01', '.tok.abc123'),
      join(crashed.dir, 'http-01', 'tok'),
    ];
    for (const file of files) await writeFile(file, 'x');
    for (const path of [...files, join(folder, '.20260101T000000Z-abcdef.tmp')]) await utimes(path, old, old);
    const fresh = join(crashed.dir, 'http-01', 'fresh-token');
    await writeFile(fresh, 'x');
    await crashed.prepare();
    // before: each crash left its files for good
    expect((await readdir(folder)).sort()).toEqual([]);
    expect(await readdir(join(crashed.dir, 'http-01'))).toEqual(['fresh-token']);
    await rm(crashed.dir, { recursive: true, force: true });
  });

  it('names that could escape the folder are refused', async () => {
    await expect(store.writeCertificate('../etc', 'C', 'K', meta(['x.test']))).rejects.toBeInstanceOf(AcmeStoreError);
  });

  it('one account key per CA, 0600; two servers racing to create it end up with the same key', async () => {
    const other = new CertificateStore(dir);
    const [a, b] = await Promise.all([
      store.accountKey('https://ca.test/dir', () => 'KEY A'),
      other.accountKey('https://ca.test/dir', () => 'KEY B'),
    ]);
    expect(a).toBe(b);
    expect(['KEY A', 'KEY B']).toContain(a);
    const file = join(dir, 'accounts', 'ca.test-dir', 'account.key');
    expect(await mode(file)).toBe(0o600);
    expect(await store.accountKey('https://ca.test/dir', () => 'KEY C')).toBe(a);
    expect(await store.accountKey('https://other.test/directory', () => 'KEY D')).toBe('KEY D');
    // no temp files left next to it
    expect(await readdir(join(dir, 'accounts', 'ca.test-dir'))).toEqual(['account.key']);
  });

  it('HTTP-01 key authorizations: written, read back, removed; a token that is not base64url is never a path', async () => {
    await store.writeHttpChallenge('tok_EN-1', 'tok_EN-1.thumbprint');
    expect(await new CertificateStore(dir).readHttpChallenge('tok_EN-1')).toBe('tok_EN-1.thumbprint');
    await writeFile(join(dir, 'secret'), 'do not serve');
    expect(await store.readHttpChallenge('../secret')).toBeNull();
    expect(await store.readHttpChallenge('..')).toBeNull();
    await expect(store.writeHttpChallenge('../x', 'y')).rejects.toBeInstanceOf(AcmeStoreError);
    await store.removeHttpChallenge('tok_EN-1');
    expect(await store.readHttpChallenge('tok_EN-1')).toBeNull();
  });

  it('slugOf: a CA directory URL as one folder name', () => {
    expect(slugOf('https://acme-v02.api.letsencrypt.org/directory')).toBe('acme-v02.api.letsencrypt.org-directory');
    expect(slugOf('https://127.0.0.1:14000/dir')).toBe('127.0.0.1-14000-dir');
  });
});
