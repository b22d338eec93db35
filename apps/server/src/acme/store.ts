// http.ssl.acme.certs_dir: what survives a restart, and what two servers sharing the folder (a
// blue-green swap) share.
//
//   certs_dir/                               0700
//     accounts/<ca>/account.key              0600, one account key per CA directory
//     certificates/<name>/current            symlink to the version in use
//     certificates/<name>/<version>/cert.pem the chain, leaf first (0644)
//     certificates/<name>/<version>/key.pem  its private key (0600)
//     certificates/<name>/<version>/meta.json the CA directory and the names asked for
//     certificates/<name>/order.lock         held while one server orders (lock.ts)
//     http-01/<token>                        key authorizations being validated, so either server answers
//
// Every write is atomic: a certificate's files are written into a fresh version folder (fsynced),
// then the `current` symlink is replaced by rename, so a reader (or a crash) sees the old set or the
// new one, never a key with another certificate. The account key is created with link(), which
// never replaces: two servers racing keep one key.
import { randomBytes } from 'node:crypto';
import {
  chmod,
  link,
  mkdir,
  open,
  readFile,
  readdir,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  unlink,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { AcmeStoreError } from '../errors.js';

export interface CertificateMeta {
  /** the CA's directory URL */
  directory: string;
  /** the names ordered (the certificate's SANs) */
  domains: string[];
  /** ISO time it was stored */
  storedAt: string;
}

export interface StoredCertificate {
  /** PEM chain, leaf first */
  cert: string;
  key: string;
  meta: CertificateMeta;
  /** the version folder */
  path: string;
  /** a file of the version that cannot be read (its meta.json is not JSON): why it cannot be used */
  damaged?: string;
}

const TOKEN = /^[A-Za-z0-9_-]{1,256}$/;
const NAME = /^[a-z0-9][a-z0-9._-]{0,252}$/;

export class CertificateStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /**
   * Creates the folders (0700); AcmeStoreError says what to fix when it cannot. Returns warnings:
   * a certs_dir that already existed open to other users (its keys are 0600, but whoever may write
   * the folder may swap a certificate and its key).
   */
  async prepare(): Promise<string[]> {
    const warnings: string[] = [];
    const before = await stat(this.dir).catch(() => null);
    if (before?.isDirectory() && (before.mode & 0o022) !== 0)
      warnings.push(
        `http.ssl.acme.certs_dir ${this.dir} is mode ${(before.mode & 0o777).toString(8)}: other users may write in it (and so swap a certificate and its key); chmod 700 ${this.dir}`,
      );
    for (const sub of ['', 'accounts', 'certificates', 'http-01']) {
      const folder = join(this.dir, sub);
      try {
        await mkdir(folder, { recursive: true, mode: 0o700 });
      } catch (error) {
        throw storeError(`create ${folder}`, await mkdirCause(folder, error));
      }
    }
    await this.#sweepLeftovers();
    // a probe write: a read-only folder fails here, at boot, not at the first order
    const probe = join(this.dir, `.probe-${process.pid}`);
    try {
      await (await open(probe, 'w', 0o600)).close();
      await unlink(probe);
    } catch (error) {
      throw storeError(`write in ${this.dir}`, error);
    }
    return warnings;
  }

  /**
   * The account key for this CA, created by `create` the first time (one key per CA directory). One
   * that is not `usable` (damaged: truncated, edited) is moved aside and a new one made, as when it
   * is missing: a new account, where a damaged key failed every order until someone found the file;
   * `moved` says where it went.
   */
  async accountKey(
    directory: string,
    create: () => string,
    damaged?: { usable(pem: string): boolean; moved(file: string, aside: string): void },
  ): Promise<string> {
    const folder = join(this.dir, 'accounts', slugOf(directory));
    const file = join(folder, 'account.key');
    const existing = await readOptional(file);
    if (existing !== null) {
      if (damaged === undefined || damaged.usable(existing)) return existing;
      const aside = `${file}.damaged-${new Date()
        .toISOString()
        .replace(/[-:]/g, '')
        .replace(/\.\d+Z$/, 'Z')}`;
      try {
        await rename(file, aside);
      } catch (error) {
        // another server sharing the folder moved it first: it made the new one, or will
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
          throw storeError(`move the damaged ${file} aside`, error);
      }
      damaged.moved(file, aside);
    }
    try {
      await mkdir(folder, { recursive: true, mode: 0o700 });
      const temp = join(folder, `.account.key.${process.pid}.${randomBytes(4).toString('hex')}`);
      await writeDurable(temp, create(), 0o600);
      try {
        await link(temp, file); // never replaces: a racing server's key wins if it was first
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      } finally {
        await unlink(temp).catch(() => {});
      }
      return await readFile(file, 'utf8');
    } catch (error) {
      throw storeError(`write the account key ${file}`, error);
    }
  }

  /** The stored certificate `name`, or null when there is none; a damaged one comes back marked `damaged`. */
  async readCertificate(name: string): Promise<StoredCertificate | null> {
    const folder = this.#folder(name);
    let version: string;
    try {
      version = await readlink(join(folder, 'current'));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw storeError(`read ${join(folder, 'current')}`, error);
    }
    return readVersion(join(folder, version));
  }

  /**
   * The versions of `name` other than `current`, newest first (the store keeps the one before the
   * current: a fallback when the current one is damaged).
   */
  async readOlderVersions(name: string): Promise<StoredCertificate[]> {
    const folder = this.#folder(name);
    const current = await readlink(join(folder, 'current')).catch(() => null);
    const entries = await readdir(folder).catch(() => [] as string[]);
    const versions = entries
      .filter((entry) => /^\d{8}T\d{6}Z-[0-9a-f]+$/.test(entry) && entry !== current)
      .sort()
      .reverse();
    const out: StoredCertificate[] = [];
    for (const version of versions) {
      const stored = await readVersion(join(folder, version)).catch(() => null);
      // damaged too, or unreadable: the next one
      if (stored !== null && stored.damaged === undefined) out.push(stored);
    }
    return out;
  }

  /**
   * Stores a new certificate for `name` and makes it current:
   * 1. write cert.pem, key.pem (0600) and meta.json into a new hidden folder, each fsynced;
   * 2. rename the folder to its version name;
   * 3. point a new symlink at it and rename it over `current` (atomic);
   * 4. remove versions older than the previous one (kept for a manual rollback).
   */
  async writeCertificate(name: string, cert: string, key: string, meta: CertificateMeta): Promise<string> {
    const folder = this.#folder(name);
    const version = `${new Date()
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
    const staging = join(folder, `.${version}.tmp`);
    try {
      await mkdir(staging, { recursive: true, mode: 0o700 });
      await writeDurable(join(staging, 'key.pem'), key, 0o600);
      await writeDurable(join(staging, 'cert.pem'), cert, 0o644);
      await writeDurable(join(staging, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`, 0o644);
      await chmod(staging, 0o755);
      await rename(staging, join(folder, version));
      const previous = await readlink(join(folder, 'current')).catch(() => null);
      const link = join(folder, `.current.${randomBytes(3).toString('hex')}`);
      await symlink(version, link);
      await rename(link, join(folder, 'current'));
      await syncFolder(folder);
      await this.#prune(folder, [version, previous]);
      return join(folder, version);
    } catch (error) {
      await rm(staging, { recursive: true, force: true }).catch(() => {});
      throw storeError(`store the certificate ${name} in ${folder}`, error);
    }
  }

  /**
   * The failed attempts of `name` so far, kept across restarts (a restart loop must not turn into
   * one failed validation at the CA per start); null when the last attempt succeeded, or none ran.
   */
  async readFailures(name: string): Promise<FailureRecord | null> {
    const text = await readOptional(join(this.#folder(name), FAILURES_FILE)).catch(() => null);
    if (text === null) return null;
    try {
      return JSON.parse(text) as FailureRecord;
    } catch {
      return null;
    }
  }

  /** Records the failed attempts of `name` (null: an attempt succeeded, the record goes). */
  async writeFailures(name: string, record: FailureRecord | null): Promise<void> {
    const folder = this.#folder(name);
    const file = join(folder, FAILURES_FILE);
    if (record === null) {
      await unlink(file).catch(() => {});
      return;
    }
    await mkdir(folder, { recursive: true, mode: 0o755 });
    const temp = join(folder, `.${FAILURES_FILE}.${randomBytes(3).toString('hex')}`);
    try {
      await writeDurable(temp, `${JSON.stringify(record, null, 2)}\n`, 0o644);
      await rename(temp, file);
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw error;
    }
  }

  /** Where the order lock of `name` lives (its folder is created). */
  async lockPath(name: string): Promise<string> {
    const folder = this.#folder(name);
    try {
      await mkdir(folder, { recursive: true, mode: 0o755 });
    } catch (error) {
      throw storeError(`create ${folder}`, await mkdirCause(folder, error));
    }
    return join(folder, 'order.lock');
  }

  // ---- HTTP-01 key authorizations, shared with another server on the same folder ----

  async writeHttpChallenge(token: string, keyAuthorization: string): Promise<void> {
    if (!TOKEN.test(token)) throw new AcmeStoreError(`the CA sent a challenge token that is not base64url: ${token}`);
    const temp = join(this.dir, 'http-01', `.${token}.${randomBytes(3).toString('hex')}`);
    try {
      await writeDurable(temp, keyAuthorization, 0o644);
      await rename(temp, join(this.dir, 'http-01', token));
    } catch (error) {
      await unlink(temp).catch(() => {});
      throw storeError(`write the HTTP-01 answer in ${join(this.dir, 'http-01')}`, error);
    }
  }

  /** null when no such token is being validated (or the token is not base64url: never a path). */
  async readHttpChallenge(token: string): Promise<string | null> {
    if (!TOKEN.test(token)) return null;
    return readOptional(join(this.dir, 'http-01', token)).catch(() => null);
  }

  async removeHttpChallenge(token: string): Promise<void> {
    if (!TOKEN.test(token)) return;
    await unlink(join(this.dir, 'http-01', token)).catch(() => {});
  }

  /**
   * What a crash (kill -9 mid-order, a full disk) left behind: half-written dot files beside the
   * certificates and the answers, and answers to checks long over. Only old ones: another server
   * sharing the folder may be writing or validating now (an order takes seconds to two minutes).
   */
  async #sweepLeftovers(): Promise<void> {
    const now = Date.now();
    const sweep = async (folder: string, stale: (entry: string) => boolean): Promise<void> => {
      for (const entry of await readdir(folder).catch(() => [] as string[])) {
        if (!stale(entry)) continue;
        const file = join(folder, entry);
        const info = await stat(file).catch(() => null);
        // a version folder a crash left half-written (".<version>.tmp") goes too
        if (info !== null && now - info.mtimeMs > LEFTOVER_AGE_MS)
          await rm(file, { recursive: true, force: true }).catch(() => {});
      }
    };
    await sweep(join(this.dir, 'http-01'), (entry) => !entry.includes('/'));
    for (const name of await readdir(join(this.dir, 'certificates')).catch(() => [] as string[]))
      await sweep(join(this.dir, 'certificates', name), (entry) => entry.startsWith('.'));
  }

  #folder(name: string): string {
    if (!NAME.test(name)) throw new AcmeStoreError(`"${name}" cannot name a certificate folder`);
    return join(this.dir, 'certificates', name);
  }

  async #prune(folder: string, keep: Array<string | null>): Promise<void> {
    for (const entry of await readdir(folder)) {
      if (keep.includes(entry) || entry === 'current' || entry === 'order.lock' || entry === FAILURES_FILE) continue;
      if (entry.startsWith('.')) continue; // another server's write in progress
      await rm(join(folder, entry), { recursive: true, force: true }).catch(() => {});
    }
  }
}

const FAILURES_FILE = 'failures.json';

/** A leftover older than this is nobody's work in progress (lock.ts refreshes a held lock every minute). */
const LEFTOVER_AGE_MS = 60 * 60_000;

/** One version folder's certificate, key and meta; a damaged one says which file is wrong. */
async function readVersion(path: string): Promise<StoredCertificate> {
  const [cert, key, meta] = await Promise.all([
    readOptional(join(path, 'cert.pem')),
    readOptional(join(path, 'key.pem')),
    readOptional(join(path, 'meta.json')),
  ]);
  if (cert === null || key === null || meta === null) {
    const missing = ['cert.pem', 'key.pem', 'meta.json'].filter((_, i) => [cert, key, meta][i] === null);
    return damagedVersion(
      path,
      `${missing.map((file) => join(path, file)).join(' and ')} ${missing.length === 1 ? 'is' : 'are'} missing`,
    );
  }
  try {
    return { cert, key, meta: JSON.parse(meta) as CertificateMeta, path };
  } catch {
    return damagedVersion(path, `${join(path, 'meta.json')} is not JSON`);
  }
}

/** A version whose files cannot be used as they are: said at load (which file), never served. */
function damagedVersion(path: string, why: string): StoredCertificate {
  return { cert: '', key: '', meta: { directory: '', domains: [], storedAt: '' }, path, damaged: why };
}

/** A certificate's failed attempts, as readFailures/writeFailures keep them. */
export interface FailureRecord {
  /** the CA they were made at: another CA's failures do not count */
  directory: string;
  attempts: number;
  /** ISO */
  nextAttempt: string;
  /** ISO: the CA's Retry-After (a rate limit, a CA answering 503), which a restart never shortens */
  notBefore?: string;
  lastError: { code: string; message: string; at: string };
}

/** "https://acme-v02.api.letsencrypt.org/directory" → "acme-v02.api.letsencrypt.org-directory". */
export function slugOf(directory: string): string {
  let url: URL;
  try {
    url = new URL(directory);
  } catch {
    return directory.replace(/[^A-Za-z0-9.-]+/g, '-');
  }
  return `${url.host}${url.pathname}`
    .replace(/[^A-Za-z0-9.-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .toLowerCase();
}

async function readOptional(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw storeError(`read ${file}`, error);
  }
}

/** Writes a new file with `mode` from its creation (never wider, whatever the umask) and fsyncs it. */
async function writeDurable(file: string, text: string, mode: number): Promise<void> {
  const handle = await open(file, 'wx', mode);
  try {
    await handle.writeFile(text);
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncFolder(folder: string): Promise<void> {
  const handle = await open(folder, 'r');
  try {
    await handle.sync();
  } catch {
    // some filesystems refuse fsync on a directory; the rename is still atomic
  } finally {
    await handle.close();
  }
}

/**
 * Node's recursive mkdir says ENOENT when a folder cannot be made for another reason (a read-only
 * filesystem, a parent it may not write): the real error is the plain mkdir of the first missing one.
 */
async function mkdirCause(folder: string, error: unknown): Promise<unknown> {
  if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return error;
  let missing = folder;
  while (dirname(missing) !== missing && (await stat(dirname(missing)).catch(() => null)) === null)
    missing = dirname(missing);
  try {
    await mkdir(missing, { mode: 0o700 });
  } catch (cause) {
    return cause;
  }
  return error;
}

/** A Node errno error about a file (it names its path): a socket's (the CA unreachable) names none. */
export function isFileSystemError(error: unknown): boolean {
  const { code, path } = (error ?? {}) as NodeJS.ErrnoException;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code) && typeof path === 'string';
}

/** A filesystem error (a Node errno error with its path) as the AcmeStoreError that says what to fix. */
export function storeError(what: string, error: unknown): AcmeStoreError {
  if (error instanceof AcmeStoreError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const why =
    code === 'EACCES' || code === 'EPERM'
      ? `permission denied: make http.ssl.acme.certs_dir writable by the user warmpool runs as (e.g. chown -R that user)`
      : code === 'EROFS'
        ? 'read-only filesystem: point http.ssl.acme.certs_dir at a writable folder (e.g. /var/lib/warmpool/acme)'
        : code === 'ENOSPC'
          ? 'no space left on the device'
          : code === 'ENOTDIR' || code === 'EEXIST'
            ? 'a file is in the way of a folder: point http.ssl.acme.certs_dir at a folder (e.g. /var/lib/warmpool/acme)'
            : (error as Error).message;
  return new AcmeStoreError(`cannot ${what}: ${why}`, error);
}
