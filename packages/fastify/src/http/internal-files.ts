// Downloads PHP hands over instead of streaming them itself, in both modes: a response carrying
// `X-Accel-Redirect: /protected/report.pdf` (nginx) or `X-Sendfile: /srv/files/report.pdf`
// (Apache's mod_xsendfile, lighttpd) makes warmpool send that file from the configured internal
// folder, with Range, ETag and 304 as for static files, while PHP is already free. Only files inside
// that folder (symlinks resolved), never a dotfile; PHP's other headers (Content-Type,
// Content-Disposition, Cache-Control, Set-Cookie) are kept. Off unless `internal_files` is set: a
// feature that is off costs one null check.
import { ReadStream, realpathSync, statSync, type Stats } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { isAbsolute, resolve, sep } from 'node:path';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type HeaderMap, headerWireValue } from '@warmpool/pool';
import { InvalidOptionError } from '../errors.js';
import { checkPath, createFilePolicy, decodeRequestPath } from '../static/file-policy.js';
import { REPLY_HOP_HEADERS } from './connection-headers.js';
import { loadSend } from './load-send.js';
import { holdsFile, openedPath, whenOpened } from '../static/opened-file.js';

/** The `internal_files` option. */
export interface InternalFilesOptions {
  /** the internal folder: the only place handed-over files come from */
  root: string;
  /**
   * the URI prefix X-Accel-Redirect values start with, mapped onto root (nginx:
   * `location /protected/ { internal; alias /srv/files/; }`); default "/"
   */
  prefix?: string;
}

export interface ResolvedInternalFiles {
  root: string;
  /** the root's real path: a file must resolve inside it */
  realRoot: string;
  /** starts and ends with "/" */
  prefix: string;
}

/**
 * Only traversal and dotfiles are refused: the folder holds downloads on purpose, whatever their kind.
 * Not even a "/.well-known/" there: PHP names these files, no client asks for them by their path.
 */
const POLICY = createFilePolicy({ forbid: [], allow: null, well_known: false });

export function resolveInternalFiles(raw: InternalFilesOptions | undefined): ResolvedInternalFiles | null {
  if (raw === undefined) return null;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidOptionError(
      'internal_files',
      'must be an object such as { root: "/srv/downloads", prefix: "/protected/" }',
    );
  }
  for (const key of Object.keys(raw)) {
    if (key !== 'root' && key !== 'prefix')
      throw new InvalidOptionError(
        `internal_files.${key}`,
        'is not an internal_files option; known options: root, prefix',
      );
  }
  if (typeof raw.root !== 'string' || raw.root === '') {
    throw new InvalidOptionError('internal_files.root', 'is required: the folder PHP hands files over from');
  }
  const root = resolve(raw.root);
  let isDirectory = false;
  try {
    isDirectory = statSync(root).isDirectory();
  } catch {
    throw new InvalidOptionError('internal_files.root', `"${root}" does not exist; create it or fix the path`);
  }
  if (!isDirectory) throw new InvalidOptionError('internal_files.root', `"${root}" is not a directory`);
  const prefix = raw.prefix ?? '/';
  if (typeof prefix !== 'string' || !prefix.startsWith('/') || prefix.includes('..') || /[?#\s]/.test(prefix)) {
    throw new InvalidOptionError(
      'internal_files.prefix',
      `must be a URI path such as "/protected/", got ${JSON.stringify(prefix)}`,
    );
  }
  return { root, realRoot: realpathSync(root), prefix: prefix.endsWith('/') ? prefix : `${prefix}/` };
}

/** A hand-over in a response: which header, and its value. */
export interface Handoff {
  header: 'x-accel-redirect' | 'x-sendfile';
  value: string;
}

/** The X-Accel-Redirect or X-Sendfile of a response (names in any case), or null. */
export function handoffOf(headers: HeaderMap): Handoff | null {
  for (const name in headers) {
    const length = name.length;
    if (length !== 16 && length !== 10) continue;
    const lower = name.toLowerCase();
    if (lower === 'x-accel-redirect' || lower === 'x-sendfile') {
      const value = headers[name]![0];
      if (value !== undefined && value !== '') return { header: lower, value };
    }
  }
  return null;
}

/** The backend's instructions to the server in front (nginx's X-Accel-*): never the client's to see. */
export const SERVER_INSTRUCTION_HEADERS: readonly string[] = [
  'x-accel-redirect',
  'x-sendfile',
  'x-accel-buffering',
  'x-accel-charset',
  'x-accel-expires',
  'x-accel-limit-rate',
];

/**
 * The backend's headers that describe its own (empty) body, the hand-over or its connection (an
 * upstream's Keep-Alive: REPLY_HOP_HEADERS), never the file sent instead.
 */
const DROPPED = new Set([
  ...SERVER_INSTRUCTION_HEADERS,
  ...REPLY_HOP_HEADERS,
  'content-length',
  'content-range',
  'content-encoding',
  'accept-ranges',
  'etag',
  'last-modified',
]);

/** The file's path under the internal root ("/a/b.zip"), or null when the hand-over names none there. */
export async function internalPathOf(files: ResolvedInternalFiles, handoff: Handoff): Promise<string | null> {
  let candidate: string;
  if (handoff.header === 'x-accel-redirect') {
    const uri = handoff.value.split('?')[0]!;
    if (!uri.startsWith(files.prefix)) return null;
    const decoded = decodeRequestPath(`/${uri.slice(files.prefix.length)}`);
    if (decoded === null) return null;
    const verdict = checkPath(POLICY, decoded);
    if (verdict.kind !== 'file') return null;
    candidate = files.root + verdict.path;
  } else {
    if (!isAbsolute(handoff.value)) return null;
    candidate = handoff.value;
  }
  let real: string;
  try {
    real = await realpath(candidate);
    if (!(await stat(real)).isFile()) return null;
  } catch {
    return null;
  }
  return sendableUnder(files, real);
}

/** `real` as "/a/b" under the internal folder when it is a file that may be sent there; else null. */
function sendableUnder(files: ResolvedInternalFiles, real: string): string | null {
  const prefix = files.realRoot.endsWith(sep) ? files.realRoot : files.realRoot + sep;
  if (!real.startsWith(prefix)) return null;
  const relative = `/${real.slice(prefix.length).split(sep).join('/')}`;
  // what really gets sent must pass too (a link named "report.pdf" to ".env")
  return checkPath(POLICY, relative).kind === 'file' ? relative : null;
}

/**
 * Whether the stream send opened holds a file of the internal folder, and the one its headers were
 * made from (`stat`): a name checked, then swapped for a link to /etc/shadow before send opened it,
 * sent the link's target (static/opened-file.ts). True where the system cannot say (no /proc).
 */
async function openedSendable(files: ResolvedInternalFiles, stream: ReadStream, stat: Stats): Promise<boolean> {
  const fd = await whenOpened(stream);
  if (fd === null) return true; // its open failed: the stream errors, and nothing is sent
  const real = openedPath(fd);
  if (real === undefined) return true;
  return real !== null && sendableUnder(files, real) !== null && holdsFile(fd, stat);
}

/**
 * Answers the request with the handed-over file instead of PHP's body (already destroyed or
 * empty): 200, 206 or 304 as for a static file, PHP's own headers kept; 404 when the hand-over
 * names nothing sendable in the internal folder (logged: it is PHP's mistake, not the client's).
 */
export async function sendInternalFile(
  request: FastifyRequest,
  reply: FastifyReply,
  files: ResolvedInternalFiles,
  handoff: Handoff,
  phpHeaders: HeaderMap,
): Promise<FastifyReply> {
  // what a caller already set from the backend's reply (serve's proxy copies it) goes as PHP's does
  for (const name of DROPPED) reply.removeHeader(name);
  const path = await internalPathOf(files, handoff);
  if (path === null) {
    request.log.warn(
      { header: handoff.header, value: handoff.value, root: files.root },
      `PHP handed over a file outside the internal folder or missing (${handoff.header}: ${handoff.value}); answered 404`,
    );
    return reply.code(404).type('text/plain; charset=utf-8').send('Not Found\n');
  }
  const send = await loadSend();
  // send decodes the path it is given: encode each segment, so a "%" in a file name stays one
  const encoded = path.split('/').map(encodeURIComponent).join('/');
  const result = await send(request.raw, encoded, {
    root: files.realRoot,
    dotfiles: 'deny',
    index: false,
    cacheControl: false,
    etag: true,
    lastModified: true,
    acceptRanges: true,
  });
  if (result.type !== 'file') {
    result.stream.destroy();
    return reply.code(result.statusCode === 304 ? 304 : 404).send();
  }
  const { stream, metadata } = result as unknown as { stream: unknown; metadata: { stat: Stats } };
  if (stream instanceof ReadStream && !(await openedSendable(files, stream, metadata.stat))) {
    stream.destroy();
    request.log.error(
      { header: handoff.header, value: handoff.value, root: files.root },
      `the file PHP handed over was another one when opened (a name switched to a link: someone with write access to ${files.root} may be trying to read files outside it); answered 404`,
    );
    return reply.code(404).type('text/plain; charset=utf-8').send('Not Found\n');
  }
  let phpContentType = false;
  for (const name in phpHeaders) {
    const lower = name.toLowerCase();
    if (DROPPED.has(lower)) continue;
    if (lower === 'content-type') phpContentType = true;
    const values = phpHeaders[name]!;
    reply.header(name, values.length === 1 ? headerWireValue(values[0]!) : values.map(headerWireValue));
  }
  for (const [name, value] of Object.entries(result.headers)) {
    if (name.toLowerCase() === 'content-type' && phpContentType) continue;
    reply.header(name, value);
  }
  return reply.code(result.statusCode).send(result.stream);
}
