import { statSync } from 'node:fs';
// multipart/form-data → text fields (a form tree) + uploaded files in temp files (PROTOCOL.md §5.3),
// streamed with @fastify/busboy: a file goes chunk by chunk to its temp file and is never held in
// memory whole. Temp files live until the request ends, whatever the ending (response sent, client
// gone, parse error, worker crash), as RR deletes them after the response (handler.go req.Close).
// RR's own flow is handler/uploads.go: the extension check first (forbid, then allow), then
// os.CreateTemp(dir, "upload") and a copy; errors are PHP UPLOAD_ERR_* codes in the leaf.
import { randomBytes } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { bodyWasCut } from './body-pace.js';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { Busboy, type BusboyFileStream, type BusboyInstance } from '@fastify/busboy';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import {
  BadFormError,
  BodyTooLargeError,
  InvalidOptionError,
  TooManyFieldsError,
  TooManyFilesError,
} from '../errors.js';
import { bodyTooLarge } from '../limits.js';
import {
  addFormValue,
  createFormTree,
  createParsedForm,
  type FormTree,
  UPLOAD_ERR_CANT_WRITE,
  UPLOAD_ERR_EXTENSION,
  UPLOAD_ERR_INI_SIZE,
  UPLOAD_ERR_NO_FILE,
  UPLOAD_ERR_NO_TMP_DIR,
  UPLOAD_ERR_OK,
  type UploadedFile,
  type UploadError,
} from './forms.js';

/** A leaf of the upload tree, exactly the JSON RR sends (`uploads` context field). */
export type { UploadedFile };

/** RR's default http.uploads.forbid (uploads config InitDefaults). */
export const DEFAULT_UPLOAD_FORBID: readonly string[] = ['.php', '.exe', '.bat'];
/** PHP's max_file_uploads default: files one request may carry unless uploads.max_files says otherwise. */
export const DEFAULT_MAX_FILES = 20;
/**
 * Fields one form may carry unless uploads.max_fields says otherwise: ten times PHP's max_input_vars
 * default (1000), which apps with large admin forms raise; parsing this many takes milliseconds.
 */
export const DEFAULT_MAX_FIELDS = 10_000;
/** Text fields of one multipart form are held in memory: at most this much in total (Go's 32 MB maxMemory). */
export const MAX_FORM_TEXT_BYTES = 32 * 1024 * 1024;
const MB = 1024 * 1024;

/** `http.uploads.*`; keys as in .rr.yaml. */
export interface UploadOptions {
  /** where temp files go; default os.tmpdir() (http.uploads.dir) */
  dir?: string;
  /** lower-case extensions with their dot that give error 8; default ['.php', '.exe', '.bat'] (http.uploads.forbid) */
  forbid?: readonly string[];
  /** when not empty, only these extensions are stored (http.uploads.allow); forbid still wins */
  allow?: readonly string[];
  /** warmpool extension (RR has none): MB per file, fractions allowed; 0 or absent = no limit; larger → error 1 */
  max_file_size?: number;
  /**
   * warmpool extension (PHP's max_file_uploads): files per request, default 20; 0 = no limit. One
   * more answers 413 before PHP runs, as a body over max_request_size does: it is the amount of the
   * request that is refused, not its syntax (400), and the client can retry with fewer files.
   */
  max_files?: number;
  /**
   * warmpool extension (PHP's max_input_vars): fields per form, urlencoded or multipart (files not
   * counted), default 10000; 0 = no limit. One more answers 413 before PHP runs, and Node stops
   * parsing there.
   */
  max_fields?: number;
}

export interface ResolvedUploadOptions {
  /** absolute */
  readonly dir: string;
  readonly forbid: ReadonlySet<string>;
  /** null: every extension not forbidden */
  readonly allow: ReadonlySet<string> | null;
  /** null: no per-file limit */
  readonly maxFileBytes: number | null;
  /** null: no limit (max_files: 0) */
  readonly maxFiles: number | null;
  /** null: no limit (max_fields: 0) */
  readonly maxFields: number | null;
  /**
   * Who the temp files are given to: the workers' user (server.user), who must read them (a file
   * of root's, 0600, it could not: move_uploaded_file failed); null: warmpool's own user.
   */
  readonly owner: { uid: number; gid: number } | null;
}

const UPLOAD_KEYS = ['dir', 'forbid', 'allow', 'max_file_size', 'max_files', 'max_fields'];

/** Validates and resolves `uploads` once, at register time; every error names the option. */
export function resolveUploadOptions(
  raw: UploadOptions | undefined,
  owner: ResolvedUploadOptions['owner'] = null,
): ResolvedUploadOptions {
  const options = raw ?? {};
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidOptionError('uploads', 'must be an object, e.g. { dir: "/var/tmp/uploads", forbid: [".php"] }');
  }
  for (const key of Object.keys(options)) {
    if (!UPLOAD_KEYS.includes(key))
      throw new InvalidOptionError(`uploads.${key}`, `is not an option; known options: ${UPLOAD_KEYS.join(', ')}`);
  }
  let dir = tmpdir();
  if (options.dir !== undefined) {
    if (typeof options.dir !== 'string' || options.dir === '')
      throw new InvalidOptionError('uploads.dir', `must be a directory path, got ${JSON.stringify(options.dir)}`);
    dir = options.dir;
    // a folder that is not there fails every upload (PHP sees UPLOAD_ERR_NO_TMP_DIR), with no log line
    let isFolder = false;
    try {
      isFolder = statSync(resolve(dir)).isDirectory();
    } catch {
      // not there
    }
    if (!isFolder)
      throw new InvalidOptionError(
        'uploads.dir',
        `"${resolve(dir)}" does not exist or is not a folder; create it (mkdir -p) or fix the path`,
      );
  }
  // RR: an empty forbid list means the default list (InitDefaults checks len == 0).
  const forbid = extensionSet('uploads.forbid', options.forbid);
  const allow = extensionSet('uploads.allow', options.allow);
  return {
    dir: resolve(dir),
    forbid: forbid.size === 0 ? new Set(DEFAULT_UPLOAD_FORBID) : forbid,
    allow: allow.size === 0 ? null : allow,
    maxFileBytes: fileSizeLimit(options.max_file_size),
    maxFiles: countLimit('uploads.max_files', options.max_files, DEFAULT_MAX_FILES, 'files'),
    maxFields: countLimit('uploads.max_fields', options.max_fields, DEFAULT_MAX_FIELDS, 'fields'),
    owner,
  };
}

function extensionSet(key: string, value: unknown): Set<string> {
  const set = new Set<string>();
  if (value === undefined) return set;
  if (!Array.isArray(value))
    throw new InvalidOptionError(
      key,
      `must be a list of extensions like [".php", ".exe"], got ${JSON.stringify(value)}`,
    );
  value.forEach((ext: unknown, i) => {
    // '' is allowed: it stands for "no extension", which RR's path.Ext returns for `README`.
    if (typeof ext !== 'string' || (ext !== '' && (!ext.startsWith('.') || ext.includes('/')))) {
      throw new InvalidOptionError(
        `${key}[${i}]`,
        `must be an extension with its dot, like ".php", got ${JSON.stringify(ext)}`,
      );
    }
    // RR compares the lower-cased client extension with the list as written; we lower-case the list
    // too, so ".PHP" in a config cannot silently never match.
    set.add(ext.toLowerCase());
  });
  return set;
}

function fileSizeLimit(value: unknown): number | null {
  if (value === undefined || value === 0) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new InvalidOptionError(
      'uploads.max_file_size',
      `must be a number of MB (0 = no limit), got ${JSON.stringify(value)}`,
    );
  }
  return Math.max(1, Math.floor(value * MB));
}

function countLimit(key: string, value: unknown, fallback: number, what: string): number | null {
  if (value === undefined) return fallback;
  if (value === 0) return null;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new InvalidOptionError(key, `must be a whole number of ${what} (0 = no limit), got ${JSON.stringify(value)}`);
  }
  return value;
}

export interface ParsedMultipart {
  fields: FormTree;
  /** always a tree for multipart (`{}` without files), as RR sends it */
  uploads: FormTree;
  /** every temp file written (including ones already deleted after a per-file error) */
  tempFiles: string[];
  /** deletes every temp file; idempotent; ENOENT is fine (PHP moved it); rejects with the first other unlink error */
  cleanup(): Promise<void>;
}

const MULTIPART = /^multipart\/form-data/i;
// biome-ignore lint/suspicious/noControlCharactersInRegex: the range is the point
const CONTROL_BYTE = /[\x00-\x1f\x7f]/;
const noop = (): void => {};

/**
 * Streams `body` (the raw request, an IncomingMessage or any Readable) with the given content-type
 * header. Resolves once every file is on disk. Rejects, after deleting every temp file already
 * written, with BadFormError (400) on malformed multipart, a body that ends early or a client that
 * goes away, a leaf/branch name conflict; with BodyTooLargeError (413) past `maxBytes` (checked
 * against Content-Length up front, then counted) or past MAX_FORM_TEXT_BYTES of text fields; with
 * TooManyFilesError (413) past uploads.max_files, TooManyFieldsError (413) past uploads.max_fields.
 * `maxBytes` may be Infinity.
 */
export function parseMultipart(
  body: Readable,
  contentType: string,
  options: ResolvedUploadOptions,
  maxBytes: number,
  /** a temp file that could not be opened or written (a full or unwritable uploads.dir), with what PHP is told */
  onWriteFailed: (dir: string, error: unknown, phpError: string) => void = noop,
): Promise<ParsedMultipart> {
  return new Promise<ParsedMultipart>((resolvePromise, reject) => {
    const declared = Number((body as Partial<IncomingMessage>).headers?.['content-length']);
    if (declared > maxBytes) {
      reject(bodyTooLarge(maxBytes));
      return;
    }
    if (!MULTIPART.test(contentType)) {
      reject(new BadFormError(`not a multipart/form-data request: content-type ${JSON.stringify(contentType)}`));
      return;
    }
    let bb: BusboyInstance;
    try {
      bb = Busboy({
        headers: { 'content-type': contentType },
        // Go's rule: a part is a file when it has a filename parameter (busboy also counts octet-stream).
        isPartAFile: (_name, _type, fileName) => fileName !== undefined,
        limits: {
          fieldSize: MAX_FORM_TEXT_BYTES,
          ...(options.maxFileBytes === null ? {} : { fileSize: options.maxFileBytes }),
        },
      });
    } catch (cause) {
      reject(new BadFormError(`malformed multipart/form-data request: ${(cause as Error).message}`, { cause }));
      return;
    }

    const fields = createFormTree();
    const uploads = createFormTree();
    const tempFiles: string[] = [];
    const tasks: Promise<void>[] = [];
    const fileStreams: BusboyFileStream[] = [];
    const cleanup = createCleanup(tempFiles);
    let settled = false;
    let bodyEnded = false;
    let received = 0;
    let textBytes = 0;
    let fileCount = 0;
    let fieldCount = 0;

    const detach = (): void => {
      body.off('data', onData);
      body.off('end', onEnd);
      body.off('error', onError);
      body.off('close', onClose);
      bb.off('drain', onDrain);
      // Busboy may still emit for bytes it already holds; keep a listener so nothing throws.
      bb.on('error', noop);
    };

    // 1. stop feeding busboy (the rest of the body is read and discarded; Fastify answers with
    // Connection: close after a parser error), 2. end every file stream so its writer closes its
    // handle, 3. wait for the writers, 4. delete what they wrote, 5. reject.
    const fail = (error: Error): void => {
      if (settled) return;
      settled = true;
      detach();
      if (!bodyEnded) body.resume();
      for (const stream of fileStreams) stream.destroy();
      void Promise.allSettled(tasks)
        .then(cleanup)
        .then(
          () => reject(error),
          () => reject(error),
        );
    };

    const place = (tree: FormTree, name: string, value: string | UploadedFile): boolean => {
      try {
        return addFormValue(tree, name, value);
      } catch (error) {
        fail(error as Error);
        return false;
      }
    };

    function onData(chunk: Buffer | string): void {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      received += bytes.length;
      if (received > maxBytes) {
        fail(bodyTooLarge(maxBytes));
        return;
      }
      // A handler inside write() may have failed the parse; then the body must keep flowing.
      if (!bb.write(bytes) && !settled) body.pause();
    }
    function onDrain(): void {
      if (!settled) body.resume();
    }
    function onEnd(): void {
      bodyEnded = true;
      bb.end();
    }
    function onError(cause: Error): void {
      fail(
        new BadFormError(`the request body failed before the multipart form was complete: ${cause.message}`, { cause }),
      );
    }
    function onClose(): void {
      if (!bodyEnded) fail(new BadFormError('the client closed the connection before the multipart form was complete'));
    }

    bb.on('field', (name: string | undefined, value: string, _nameTruncated: boolean, valueTruncated: boolean) => {
      if (settled || name === undefined) return; // Go skips parts without a name
      if (options.maxFields !== null && ++fieldCount > options.maxFields) {
        fail(new TooManyFieldsError(options.maxFields));
        return;
      }
      textBytes += valueTruncated ? MAX_FORM_TEXT_BYTES + 1 : Buffer.byteLength(value);
      if (textBytes > MAX_FORM_TEXT_BYTES) {
        fail(
          new BodyTooLargeError(
            `the text fields of the form are larger than ${MAX_FORM_TEXT_BYTES} bytes in total; send large data as a file`,
            MAX_FORM_TEXT_BYTES,
          ),
        );
        return;
      }
      place(fields, name, value);
    });

    bb.on(
      'file',
      (name: string | undefined, stream: BusboyFileStream, fileName: string, _encoding: string, mime: string) => {
        // Errors reach the writer through its iterator, or do not matter after fail(); never let one throw.
        stream.on('error', noop);
        if (settled || name === undefined) {
          stream.resume();
          return;
        }
        // A NUL (or any control byte) in a file name has no honest use: C code and PHP's own file
        // functions stop at a NUL, so "shell.php\0.jpg" would pass the extension check here as .jpg
        // and be a .php elsewhere. The whole request is refused (400), before any byte is written.
        if (CONTROL_BYTE.test(fileName)) {
          stream.resume();
          fail(
            new BadFormError(
              `the file name ${JSON.stringify(fileName)} of form field ${JSON.stringify(name)} contains a control character (NUL, CR, LF…)`,
            ),
          );
          return;
        }
        if (fileName === '') {
          // An empty file input. RR turns it into a text field ''; PHP (and we) report "no file".
          stream.resume();
          place(uploads, name, failedUpload(fileName, mime, UPLOAD_ERR_NO_FILE));
          return;
        }
        fileCount++;
        if (options.maxFiles !== null && fileCount > options.maxFiles) {
          stream.resume();
          fail(new TooManyFilesError(options.maxFiles));
          return;
        }
        if (!isExtensionAllowed(fileName, options)) {
          stream.resume();
          place(uploads, name, failedUpload(fileName, mime, UPLOAD_ERR_EXTENSION));
          return;
        }
        const file: UploadedFile = { name: fileName, mime, size: 0, error: UPLOAD_ERR_OK, tmpName: '' };
        // A file the tree drops (a second file under a plain name) is not written at all.
        if (!place(uploads, name, file)) {
          stream.resume();
          return;
        }
        fileStreams.push(stream);
        tasks.push(writeTempFile(stream, file, options, tempFiles, onWriteFailed));
      },
    );

    bb.on('error', (cause: unknown) => {
      fail(new BadFormError(`malformed multipart/form-data body: ${(cause as Error).message}`, { cause }));
    });

    // busboy finishes once every part was read; the writers may still be closing their files.
    bb.on('finish', () => {
      void Promise.allSettled(tasks).then(() => {
        if (settled) return;
        settled = true;
        detach();
        resolvePromise({ fields, uploads, tempFiles, cleanup });
      });
    });

    bb.on('drain', onDrain);
    body.on('data', onData);
    body.on('end', onEnd);
    body.on('error', onError);
    body.on('close', onClose);
    if (body.readableEnded) onEnd();
    else body.resume(); // a 'data' listener alone does not restart a body someone paused
  });
}

function failedUpload(name: string, mime: string, error: UploadError): UploadedFile {
  return { name, mime, size: 0, error, tmpName: '' };
}

const TRAILING_DOTS_AND_SPACES = /[. ]+$/;

/** Go's path.Ext: from the last dot of the last path element; '.htaccess' → '.htaccess', 'README' → ''. */
export function fileExtension(fileName: string): string {
  for (let i = fileName.length - 1; i >= 0 && fileName[i] !== '/'; i--) {
    if (fileName[i] === '.') return fileName.slice(i);
  }
  return '';
}

/**
 * RR's check: the lower-cased client extension, forbid first, then allow when it is not empty.
 * Trailing dots and spaces are dropped first: Windows (and a PHP app that saves under the client's
 * name there) drops them too, so "shell.php." and "shell.php " are ".php", not "." or ".php ".
 */
export function isExtensionAllowed(
  fileName: string,
  options: Pick<ResolvedUploadOptions, 'forbid' | 'allow'>,
): boolean {
  const ext = fileExtension(fileName.replace(TRAILING_DOTS_AND_SPACES, '')).toLowerCase();
  if (options.forbid.has(ext)) return false;
  return options.allow === null || options.allow.has(ext);
}

/**
 * One file → one temp file `upload<16 hex>` in `dir`, mode 0600, created exclusively. Never rejects:
 * a failure becomes the leaf's error code, and a failed file leaves no temp file behind. The stream
 * is always read to its end (busboy finishes only when every file stream ended).
 */
async function writeTempFile(
  stream: BusboyFileStream,
  file: UploadedFile,
  { dir, owner }: Pick<ResolvedUploadOptions, 'dir' | 'owner'>,
  tempFiles: string[],
  onWriteFailed: (dir: string, error: unknown, phpError: string) => void,
): Promise<void> {
  let handle: FileHandle | undefined;
  let path = '';
  for (let attempt = 0; handle === undefined; attempt++) {
    path = join(dir, `upload${randomBytes(8).toString('hex')}`);
    try {
      handle = await open(path, 'wx', 0o600);
      if (owner !== null) await handle.chown(owner.uid, owner.gid).catch(noop);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST' && attempt < 3) continue;
      onWriteFailed(dir, error, 'error 6 (UPLOAD_ERR_NO_TMP_DIR)');
      file.error = UPLOAD_ERR_NO_TMP_DIR;
      stream.resume();
      return;
    }
  }
  // Registered before the first write: a failing parse deletes it once this writer has settled.
  tempFiles.push(path);
  let size = 0;
  let writeFailed = false;
  let readFailed = false;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      // Keep reading after a write error or the size limit, so busboy can go on to the next part.
      if (writeFailed || stream.truncated) continue;
      try {
        await writeAll(handle, chunk);
        size += chunk.length;
      } catch (error) {
        writeFailed = true;
        // PHP sees error 7, as it would; the operator is told why (before: nothing)
        onWriteFailed(dir, error, 'error 7 (UPLOAD_ERR_CANT_WRITE)');
      }
    }
  } catch {
    readFailed = true;
  } finally {
    await handle.close().catch(noop);
  }
  // readFailed: the body failed or the parse was abandoned; the parse rejects anyway.
  if (stream.truncated && !readFailed) file.error = UPLOAD_ERR_INI_SIZE;
  else if (writeFailed || readFailed) file.error = UPLOAD_ERR_CANT_WRITE;
  else {
    file.size = size;
    file.tmpName = path;
    return;
  }
  await unlink(path).catch(noop);
}

async function writeAll(handle: FileHandle, chunk: Buffer): Promise<void> {
  let offset = 0;
  while (offset < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, offset, chunk.length - offset);
    offset += bytesWritten;
  }
}

function createCleanup(paths: readonly string[]): () => Promise<void> {
  let done: Promise<void> | null = null;
  return () => (done ??= removeFiles(paths));
}

async function removeFiles(paths: readonly string[]): Promise<void> {
  const results = await Promise.allSettled(paths.map((path) => unlink(path)));
  for (const result of results) {
    if (result.status === 'rejected' && (result.reason as NodeJS.ErrnoException).code !== 'ENOENT') throw result.reason;
  }
}

// ---- Fastify glue: the two content-type parsers and the temp files' lifetime ----

/** Per multipart request: deletes the temp files once the response closed and no holder remains. */
class UploadLifetime {
  #closed = false;
  #holds = 0;
  #parsed: ParsedMultipart | null = null;
  readonly #log: FastifyBaseLogger;

  constructor(log: FastifyBaseLogger) {
    this.#log = log;
  }

  adopt(parsed: ParsedMultipart): void {
    this.#parsed = parsed;
    this.#settle();
  }

  close(): void {
    this.#closed = true;
    this.#settle();
  }

  hold(): () => void {
    this.#holds++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#holds--;
      this.#settle();
    };
  }

  #settle(): void {
    if (!this.#closed || this.#holds > 0 || this.#parsed === null) return;
    const parsed = this.#parsed;
    this.#parsed = null;
    parsed.cleanup().catch((error: unknown) => {
      this.#log.warn({ err: error, files: parsed.tempFiles }, 'could not delete upload temp files');
    });
  }
}

const lifetimes = new WeakMap<object, UploadLifetime>();

/**
 * Keeps the request's temp files past the response's close until the returned release() is called,
 * so a client that goes away does not delete files a PHP worker is still reading. Call it before
 * pool.exec and release when the worker's reply (including a streamed body) is finished. A no-op for
 * requests without uploads; release() is idempotent.
 */
export function holdUploads(request: FastifyRequest): () => void {
  return lifetimes.get(request.raw)?.hold() ?? noop;
}

/**
 * The multipart parser and the hook that deletes temp files when the response closes, on `app`
 * (the plugin's encapsulated child; form-parsers.ts registers it with the urlencoded one).
 */
export function registerMultipartParser(
  app: FastifyInstance,
  uploadOptions: ResolvedUploadOptions,
  bodyLimit: number,
): void {
  // Before parsing, so the response's 'close' is never missed: it fires on a sent response, an
  // aborted client and an error reply alike.
  app.addHook('onRequest', (request, reply, done) => {
    const type = request.headers['content-type'];
    if (type !== undefined && /multipart/i.test(type)) {
      const lifetime = new UploadLifetime(request.log);
      lifetimes.set(request.raw, lifetime);
      reply.raw.once('close', () => lifetime.close());
    }
    done();
  });

  app.addContentTypeParser('multipart/form-data', (request, payload, done) => {
    const lifetime = lifetimes.get(request.raw);
    if (lifetime === undefined) {
      done(
        new Error(
          'warmpool: the multipart parser ran without its onRequest hook; register parsers and routes in the same context',
        ),
        undefined,
      );
      return;
    }
    const onWriteFailed = (dir: string, error: unknown, phpError: string) => {
      const reason = (error as NodeJS.ErrnoException).code ?? String((error as Error).message ?? error);
      request.log.warn(
        { dir, reason },
        `an uploaded file could not be written to ${dir} (${reason}): PHP gets it with ${phpError}, as PHP reports it; free space there, or point uploads.dir (http.uploads.dir) at a larger disk`,
      );
    };
    parseMultipart(payload, request.headers['content-type'] ?? '', uploadOptions, bodyLimit, onWriteFailed).then(
      (parsed) => {
        lifetime.adopt(parsed);
        done(null, createParsedForm('multipart', parsed.fields, parsed.uploads));
      },
      (error: Error) => {
        if (!bodyWasCut(request.raw)) done(error, undefined); // else answered 408 already
      },
    );
  });
}
