import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { kClientInfo, kClientInfoResolver } from '../symbols.js';
import {
  compileTrustedSubnets,
  resolveClient,
  resolveRealIpHeader,
  type RealIpHeader,
  type TrustedSubnets,
} from './trusted-subnets.js';

/**
 * Who a request is from and what it asked for, decided ONCE per request and cached on the raw
 * request, so site selection, the micro-cache key, proxy headers and the PHP context cannot
 * disagree (one of them reading the first Host header and another the last is how a page built for
 * evil.example ends up cached under the real host).
 *
 * The authority, as nginx decides it (RFC 9112 §3.2 and §3.2.2, RFC 9113 §8.3.1):
 *   - more than one Host header: 400; an HTTP/1.1 request without one: 400; a Host (or :authority)
 *     that is not host[:port] (empty, spaces, "/", "..", userinfo): 400;
 *   - an absolute-form target (`GET http://other/x`) names the host; the Host header is then ignored
 *     (it must still be valid), and the target becomes its origin form (`/x`), as nginx's
 *     $request_uri; only http and https targets, without userinfo, are taken; anything else that is
 *     not a path (`*`) is 400, as nginx answers;
 *   - HTTP/2: `:authority`, else `host`; both present and naming different hosts: 400.
 * Then, behind a trusted proxy only, what the one configured header (`real_ip_header`) forwards: the
 * client address and port, the scheme, and (Forwarded host= only) the host (trusted-subnets.ts).
 */
export interface ClientInfo {
  /** the scheme the client used: the socket's, or what a trusted proxy forwarded */
  scheme: 'http' | 'https';
  /** host[:port] as the client sent it (or a trusted proxy forwarded it); '' for HTTP/1.0 without Host */
  host: string;
  /** lower-cased, without port and trailing dot ("[::1]" keeps its brackets); '' when there is no host */
  hostname: string;
  /** the port in `host`, or the scheme's default */
  port: number;
  /** the request target in origin form: path and query */
  target: string;
  /** the client's address: the peer's, or the right-most untrusted hop a trusted proxy forwarded; '' when unknown */
  remoteAddr: string;
  /** the client's port when known (the peer's, when the client is the peer), else null */
  remotePort: number | null;
  /** the peer is a trusted proxy (trusted_subnets): its forwarding headers are believed and passed on */
  peerTrusted: boolean;
  /** why the request is answered 400, or null */
  problem: string | null;
}

/** The plugin options (and YAML keys) that decide how a ClientInfo is computed. */
export interface ClientInfoOptions {
  trusted_subnets?: readonly string[] | undefined;
  /** "X-Forwarded-For" (default), "Forwarded" or "X-Real-IP", any case */
  real_ip_header?: string | undefined;
}

export interface ClientInfoResolver {
  /** the request's ClientInfo, computed on first use and cached on the raw request */
  of(req: RawRequest): ClientInfo;
}

export type RawRequest = IncomingMessage | Http2ServerRequest;

interface Cached {
  [kClientInfo]?: ClientInfo;
  [kClientInfoResolver]?: ClientInfoResolver;
}

// Resolvers are shared by equal options, so the server's hook and each site's plugin (compiled from
// the same listener-wide keys) reuse one computation per request instead of redoing it.
const resolvers = new Map<string, ClientInfoResolver>();

/** Compiles the options once (errors name the option) and returns the resolver for them. */
export function createClientInfoResolver(options: ClientInfoOptions = {}): ClientInfoResolver {
  const subnets = options.trusted_subnets ?? [];
  const header = resolveRealIpHeader(options.real_ip_header);
  const key = JSON.stringify([subnets, header]);
  let resolver = resolvers.get(key);
  if (resolver !== undefined) return resolver;
  const trusted = Array.isArray(subnets) && subnets.length === 0 ? null : compileTrustedSubnets(subnets);
  resolver = {
    of(req) {
      const cached = req as RawRequest & Cached;
      if (cached[kClientInfoResolver] === resolver) return cached[kClientInfo]!;
      const info = computeClientInfo(req, trusted, header);
      cached[kClientInfo] = info;
      cached[kClientInfoResolver] = resolver;
      return info;
    },
  };
  if (resolvers.size < 64) resolvers.set(key, resolver);
  return resolver;
}

const DIRECT = createClientInfoResolver();

/**
 * The ClientInfo an earlier hook computed for this request; computed with no trusted proxy (the
 * socket's own view) when none did. For hooks that run after the server's or the plugin's.
 */
export function clientInfoOf(req: RawRequest): ClientInfo {
  return (req as RawRequest & Cached)[kClientInfo] ?? DIRECT.of(req);
}

/** The client's address as a site resolved it (trusted_subnets), or null before (or without) that. */
export function resolvedClientAddr(req: RawRequest): string | null {
  const address = (req as RawRequest & Cached)[kClientInfo]?.remoteAddr;
  return address === undefined || address === '' ? null : address;
}

/**
 * What the onRequest hook does: answers 400 (and closes an HTTP/1 connection, as nginx does after a
 * bad request) when the authority is ambiguous or malformed, and puts an absolute-form target in
 * origin form so every later reader of request.url (static files, access rules, PHP) sees the path.
 * Returns the ClientInfo, or null when the request was answered.
 */
export function applyClientInfo(
  request: FastifyRequest,
  reply: FastifyReply,
  resolver: ClientInfoResolver,
): ClientInfo | null {
  const info = resolver.of(request.raw);
  if (info.problem !== null) {
    request.log.info({ reason: info.problem }, `bad request: ${info.problem}`);
    if (request.raw.httpVersionMajor === 1) reply.header('connection', 'close');
    reply.code(400).type('text/plain; charset=utf-8').send(`Bad Request: ${info.problem}\n`);
    return null;
  }
  if (request.raw.url !== info.target) request.raw.url = info.target;
  return info;
}

/** The same as an onRequest hook, for an app (the server) whose own routes run before the plugin's. */
export function createClientInfoHook(resolver: ClientInfoResolver): onRequestHookHandler {
  return function clientInfoHook(request, reply, done) {
    if (applyClientInfo(request, reply, resolver) !== null) done();
  };
}

const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(.*)$/;
// host[:port]: an IP literal or RFC 3986 reg-name characters; nothing that could split a URI or a path
const AUTHORITY = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::(\d{0,5}))?$/;

function computeClientInfo(req: RawRequest, trusted: TrustedSubnets | null, header: RealIpHeader): ClientInfo {
  const socket = req.socket as TLSSocket | undefined;
  const socketScheme = socket?.encrypted === true ? 'https' : 'http';
  let problem: string | null = null;

  // 1. the Host header(s) and HTTP/2's :authority
  const rawHeaders = req.rawHeaders;
  let hostHeader: string | undefined;
  let hosts = 0;
  let authority: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      hosts++;
      hostHeader ??= rawHeaders[i + 1];
    } else if (name === ':authority') authority = rawHeaders[i + 1];
  }
  let host = authority ?? hostHeader;
  if (hosts > 1) problem = 'more than one Host header';
  else if (authority !== undefined && hostHeader !== undefined && authority.toLowerCase() !== hostHeader.toLowerCase())
    problem = `:authority "${authority}" and Host "${hostHeader}" name different hosts`;
  else if (host === undefined) {
    if (req.httpVersion === '1.1') problem = 'an HTTP/1.1 request without a Host header';
  } else if (!isAuthority(host)) problem = `invalid host ${JSON.stringify(host)}`;

  // 2. the target: a path, or an absolute URL whose authority wins over Host
  const url = req.url ?? '/';
  let target = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    const absolute = ABSOLUTE_FORM.exec(url);
    const scheme = absolute?.[1]?.toLowerCase();
    if (absolute === null || (scheme !== 'http' && scheme !== 'https'))
      problem ??= `the request target ${JSON.stringify(url.slice(0, 64))} is neither a path nor an http(s) URL`;
    else if (!isAuthority(absolute[2]!))
      problem ??= `invalid host ${JSON.stringify(absolute[2])} in the request target`;
    else {
      host = absolute[2]!;
      const rest = absolute[3]!;
      target = rest.charCodeAt(0) === 47 ? rest : `/${rest}`;
    }
  }

  // 3. behind a trusted proxy: the forwarded client, scheme and host
  const peer = socket?.remoteAddress;
  const forwarded = resolveClient(trusted, header, peer, socketScheme, req.headers, socket?.remotePort ?? null);
  const scheme = forwarded.proto;
  if (forwarded.host !== null) host = forwarded.host;
  const effectiveHost = problem === null ? (host ?? '') : '';
  return {
    scheme,
    host: effectiveHost,
    hostname: hostnameOf(effectiveHost),
    port: portOf(effectiveHost, scheme),
    target,
    remoteAddr: forwarded.remoteAddr,
    remotePort: forwarded.remotePort,
    peerTrusted: forwarded.peerTrusted,
    problem,
  };
}

/** host[:port] without userinfo, spaces, slashes, or an empty or ".." name (as nginx's ngx_http_validate_host). */
function isAuthority(value: string): boolean {
  return value.length > 0 && value.length <= 255 && AUTHORITY.test(value) && !value.includes('..');
}

/** "Example.COM.:8080" → "example.com"; "[::1]:80" → "[::1]". */
function hostnameOf(host: string): string {
  if (host === '') return '';
  let name = host.toLowerCase();
  if (name.charCodeAt(0) === 91 /* [ */) return name.slice(0, name.indexOf(']') + 1);
  const colon = name.lastIndexOf(':');
  if (colon >= 0) name = name.slice(0, colon);
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

function portOf(host: string, scheme: 'http' | 'https'): number {
  const close = host.lastIndexOf(']');
  const colon = host.lastIndexOf(':');
  if (colon > close && colon < host.length - 1) return Number(host.slice(colon + 1));
  return scheme === 'https' ? 443 : 80;
}
