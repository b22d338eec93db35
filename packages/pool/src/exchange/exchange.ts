// The exchange: the one seam between HTTP and a PHP backend (docs/EXCHANGE.md). The HTTP side maps
// a request to an ExchangeRequest and an ExchangeResponse back to a reply, and knows no wire
// protocol; goridge frames (worker mode) and FastCGI records (classic mode) stay behind it.
import type { CancelSignal } from '../cancel.js';
import type { Readable } from 'node:stream';
import type { Chunks } from '../chunks.js';
import type { FileBody } from '../file-body.js';
import type { HeaderMap } from '../protocol/http-context.js';

export type { HeaderMap };

/** A form the HTTP side already parsed into RoadRunner's trees (worker mode only, PROTOCOL.md §5.3). */
export interface ParsedForm {
  /** the field tree, encoded as RR's JSON body */
  fields: Buffer;
  /** the upload tree (temp files on disk) */
  uploads: unknown;
}

/**
 * Classic mode: the script the HTTP side decided to run (its script resolver; PHP never decides).
 * The names are the CGI params of the same name.
 */
export interface ExchangeScript {
  /** URL path of the script: "/index.php" */
  scriptName: string;
  /** its real path (symlinks resolved): the file that runs */
  scriptFilename: string;
  /** "" or "/foo/bar" (after a script segment: "/index.php/foo/bar") */
  pathInfo: string;
  /** the document root's real path */
  documentRoot: string;
  /** the path after try_files (nginx $document_uri): "/index.php" for the fallback */
  documentUri: string;
  /** QUERY_STRING: the request's query, or the try_files fallback's ("/index.php?$args") */
  queryString: string;
}

export interface ExchangeRequest {
  method: string;
  /** the scheme the client used (after trusted-proxy rules) */
  scheme: 'http' | 'https';
  /** the effective host, decided once per request (with the port when the client gave one) */
  host: string;
  /** the request target as sent: origin-form path and query (an absolute-form URL is kept as is) */
  target: string;
  /** HTTP/1.0 | HTTP/1.1 | HTTP/2.0 */
  protocol: string;
  /** canonical names (Go's CanonicalMIMEHeaderKey: `X-Custom-Id`), values in order; Host excluded */
  headers: HeaderMap;
  /** the client address after trusted-subnet rules */
  remoteAddr: string;
  remotePort: number | null;
  /** the user auth_basic let in (REMOTE_USER, nginx's $remote_user); absent: none */
  remoteUser?: string;
  /** the listener's own address and port (SERVER_ADDR, SERVER_PORT) */
  serverAddr: string | null;
  serverPort: number | null;
  /**
   * The body: bytes (one buffer, or Chunks for a large one), a FileBody (a large one kept in a temp
   * file: sent in pieces, never read back whole), a stream for a backend that streams request
   * bodies (`streamsRequestBody`), or null. A parsed form travels in `form` instead.
   */
  body: Buffer | Chunks | FileBody | Readable | null;
  form: ParsedForm | null;
  /** classic mode: the script to run; absent for worker mode (the worker's loop is the only code) */
  script?: ExchangeScript | null;
}

export interface ExchangeResponse {
  /** the final status (200-599); 1xx responses went to `onInformational` */
  status: number;
  /** the reason phrase the backend gave (`Status: 404 Gone Fishing` from a CGI script); absent: the standard one */
  statusText?: string;
  /** names as the backend sent them; values in order (several Set-Cookie) */
  headers: HeaderMap;
  /**
   * The body: whole (a Buffer, or Chunks for a large one that arrived in pieces) or a byte stream.
   * A stream applies backpressure to PHP; destroying it cancels the backend's work (the worker
   * gets STOP, FastCGI gets ABORT_REQUEST) and frees the process.
   */
  body: Buffer | Chunks | Readable;
  /**
   * Present when a whole body's memory is reused by later responses (FastCgiExchange with
   * `recycleBodies`): call it once nothing will read the body again (the HTTP response closed;
   * sendResponse does). Whoever keeps the bytes longer (a cache) copies them.
   */
  release?: () => void;
}

export interface ExchangeOptions {
  /**
   * Aborted when nobody wants the response any more (the client went away). A request still
   * waiting for a process leaves the queue and never runs; a response stream is cancelled.
   */
  signal?: CancelSignal;
  /** 1xx responses before the final one (103 Early Hints); their headers never reach the final one */
  onInformational?: (status: number, headers: HeaderMap) => void;
}

/** What the HTTP side talks to. Errors are the pool's typed errors (`WP_*`, mapped to a status once). */
export interface Exchange {
  /** false: the backend needs the whole body as bytes first (goridge frames carry a length) */
  readonly streamsRequestBody: boolean;
  /** true: the backend takes forms parsed by Node (`form`), as RoadRunner workers do */
  readonly takesParsedForms: boolean;
  exchange(request: ExchangeRequest, options?: ExchangeOptions): Promise<ExchangeResponse>;
}

/** "GET /path?query" for logs and `warmpool workers` (a very long target is cut). */
export function labelOf(request: Pick<ExchangeRequest, 'method' | 'target'>): string {
  const { method, target } = request;
  return `${method} ${target.length > 200 ? `${target.slice(0, 200)}…` : target}`;
}
