import type { IncomingHttpHeaders } from 'node:http';
import { InvalidOptionError } from '../errors.js';
import {
  createCidrSet,
  formatIPv4,
  formatIPv6,
  parseAddress,
  plainAddress,
  type AddressFamily,
  type CidrSet,
} from './cidr.js';

/**
 * `trusted_subnets` + `real_ip_header`: which peers may tell us who the client is, and in which header.
 *
 * Only when the socket peer is inside the trusted CIDRs is a forwarding header read, and only the
 * ONE configured header (nginx's real_ip_header; RoadRunner reads whichever is present, so a client
 * could pick one its proxy does not control):
 *   - `X-Forwarded-For` (the default): the address; the scheme from `X-Forwarded-Proto`;
 *   - `Forwarded` (RFC 7239): for=, and proto= / host= of the trusted elements;
 *   - `X-Real-IP`: the address only.
 * `X-Forwarded-Host` is never read: nginx's usual `proxy_set_header` lines do not set it, so a
 * client's own value would pass through the proxy untouched and nothing tells the two apart; a proxy
 * sends the host in `Host` (nginx: `proxy_set_header Host $host`) or in Forwarded's host=.
 *
 * The client is the RIGHT-MOST hop that is not itself trusted: walk the list from the right (the
 * entry our peer wrote), skip trusted hops, stop at the first untrusted one. Every hop must be an IP
 * (an optional port is kept as the client's port); an invalid hop ("unknown", an obfuscated "_hidden",
 * garbage) stops the walk and the peer stays the client. When every hop is trusted, the left-most one
 * is the client. RoadRunner takes the LEFT-most X-Forwarded-For entry, which any client can forge.
 *
 * Proto and host (behind a trusted peer, from the configured header's family only): Forwarded's
 * proto=/host= from the chosen element, or the nearest element to its right that states them (every
 * element from the chosen one rightwards was written by a trusted proxy); the right-most
 * `X-Forwarded-Proto` value with X-Forwarded-For. Proto must be http or https; host must look like an
 * authority (no spaces, slashes or control bytes), or it is ignored.
 */

/** The header `real_ip_header` names, lower-cased. */
export type RealIpHeader = 'x-forwarded-for' | 'forwarded' | 'x-real-ip';

const REAL_IP_HEADERS: readonly RealIpHeader[] = ['x-forwarded-for', 'forwarded', 'x-real-ip'];

/** `real_ip_header` → its lower-cased name; errors name the option. Default: X-Forwarded-For. */
export function resolveRealIpHeader(value: unknown, key = 'real_ip_header'): RealIpHeader {
  if (value === undefined) return 'x-forwarded-for';
  const name = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if ((REAL_IP_HEADERS as readonly string[]).includes(name)) return name as RealIpHeader;
  throw new InvalidOptionError(
    key,
    `must be "X-Forwarded-For" (the default), "Forwarded" or "X-Real-IP": the one header your proxy sets, got ${JSON.stringify(value)}`,
  );
}

/** What a trusted proxy may say about the client: RoadRunner's remoteAddr, plus its port, scheme and host. */
export interface ForwardedClient {
  /** no port, no brackets, IPv4-mapped prefix stripped; '' when the peer is unknown (socket gone, unix socket) */
  remoteAddr: string;
  /** the client's port: the peer's when the client is the peer, a forwarded hop's when it carried one, else null */
  remotePort: number | null;
  proto: 'http' | 'https';
  /** the forwarded host[:port] when a trusted proxy sent one (Forwarded host=); null: keep the request's own */
  host: string | null;
  /** the peer is in trusted_subnets: the forwarding headers it sent are believed (and passed on) */
  peerTrusted: boolean;
}

export interface TrustedSubnets {
  /** whether the address (no brackets, no port; IPv4-mapped accepted) is trusted */
  contains(address: string): boolean;
}

interface CompiledTrustedSubnets extends TrustedSubnets {
  readonly set: CidrSet;
}

/** RoadRunner's default `trusted_subnets` (private and loopback ranges), for the config layer to mirror if it wants. */
export const RR_DEFAULT_TRUSTED_SUBNETS: readonly string[] = [
  '10.0.0.0/8',
  '127.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
];

/** Compiles the CIDR list once, at registration. Errors name the bad entry: `trusted_subnets[2]`. */
export function compileTrustedSubnets(cidrs: readonly string[], key?: string): TrustedSubnets {
  const name = key ?? 'trusted_subnets';
  if (!Array.isArray(cidrs))
    throw new InvalidOptionError(
      name,
      `must be a list of CIDRs like ["10.0.0.0/8", "::1/128"], got ${JSON.stringify(cidrs)}`,
    );
  const set = createCidrSet(cidrs, (index, message) => new InvalidOptionError(`${name}[${index}]`, message));
  const compiled: CompiledTrustedSubnets = { set, contains: (address) => set.contains(address) };
  return compiled;
}

const PEER = new Uint32Array(4);
const HOP = new Uint32Array(4);

/**
 * The client behind the socket `peer`, reading the configured forwarding header only when the peer
 * is trusted. `peer` is the raw socket remoteAddress and `peerPort` its remotePort; `scheme` is
 * 'https' on a TLS socket.
 */
export function resolveClient(
  trusted: TrustedSubnets | null,
  header: RealIpHeader,
  peer: string | undefined,
  scheme: 'http' | 'https',
  headers: IncomingHttpHeaders,
  peerPort: number | null = null,
): ForwardedClient {
  if (peer === undefined || peer === '')
    return { remoteAddr: '', remotePort: null, proto: scheme, host: null, peerTrusted: false };
  if (trusted === null)
    return { remoteAddr: plainAddress(peer), remotePort: peerPort, proto: scheme, host: null, peerTrusted: false };
  const family = parseAddress(peer, PEER);
  const peerAddr = family === 4 ? formatIPv4(PEER[0]!) : family === 6 ? formatIPv6(PEER) : peer;
  const direct: ForwardedClient = {
    remoteAddr: peerAddr,
    remotePort: peerPort,
    proto: scheme,
    host: null,
    peerTrusted: false,
  };
  if (!isTrusted(trusted, family, PEER, peer)) return direct;
  direct.peerTrusted = true;

  if (header === 'forwarded') return fromForwarded(trusted, headers, direct);
  const list = headerText(headers[header]);
  if (list !== null && walkList(trusted, list)) {
    direct.remoteAddr = lastHop;
    direct.remotePort = lastPort;
  }
  if (header === 'x-forwarded-for') {
    const proto = headerText(headers['x-forwarded-proto']);
    direct.proto = (proto === null ? null : validProto(lastItem(proto))) ?? scheme;
  }
  return direct;
}

/** `Forwarded`: the client from for=, proto= and host= from the elements trusted proxies wrote. */
function fromForwarded(
  trusted: TrustedSubnets,
  headers: IncomingHttpHeaders,
  client: ForwardedClient,
): ForwardedClient {
  const text = headerText(headers.forwarded);
  const elements = text === null ? null : parseForwarded(text);
  // absent, or present but broken: no hop is believed
  if (elements === null || elements.length === 0) return client;
  // the element proto=/host= are read from: the chosen hop's, else the peer's own (the right-most)
  let from = elements.length - 1;
  const chosen = walkForwarded(trusted, elements);
  if (chosen >= 0) {
    client.remoteAddr = lastHop;
    client.remotePort = lastPort;
    from = chosen;
  }
  let proto: 'http' | 'https' | null = null;
  let host: string | null = null;
  // the nearest element to the client that states them (hops to the right saw the request later)
  for (let i = from; i < elements.length && (proto === null || host === null); i++) {
    const element = elements[i]!;
    if (proto === null && element.proto !== null) proto = validProto(element.proto);
    if (host === null && element.host !== null) host = validHost(element.host);
  }
  if (proto !== null) client.proto = proto;
  client.host = host;
  return client;
}

function isTrusted(trusted: TrustedSubnets, family: AddressFamily, words: Uint32Array, text: string): boolean {
  const set = (trusted as Partial<CompiledTrustedSubnets>).set;
  return set !== undefined ? set.containsParsed(family, words) : trusted.contains(text);
}

/** A header value as one string (repeated headers joined by commas); null when absent or blank. */
function headerText(value: string | string[] | undefined): string | null {
  if (value === undefined) return null;
  const text = typeof value === 'string' ? value : value.join(',');
  return text.trim() === '' ? null : text;
}

/** Text and port of the last hop `parseHop` accepted (its words are in HOP). */
let lastHop = '';
let lastPort: number | null = null;

/**
 * One hop ("1.2.3.4", "1.2.3.4:80", "[2001:db8::1]:443", "2001:db8::1") → its family, with the
 * normalized address in `lastHop` and the words in HOP; 0 when it is not an IP.
 */
function parseHop(hop: string): AddressFamily {
  let text = hop.trim();
  let port: number | null = null;
  const bracketed = text.charCodeAt(0) === 91; /* [ */
  if (bracketed) {
    const close = text.indexOf(']');
    if (close < 0) return 0;
    const rest = text.slice(close + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return 0;
    if (rest !== '') port = Number(rest.slice(1));
    text = text.slice(1, close);
    if (text.indexOf(':') < 0) return 0; // brackets only around IPv6
  } else {
    const colon = text.indexOf(':');
    if (colon >= 0 && colon === text.lastIndexOf(':') && text.includes('.')) {
      // IPv4 with a port
      if (!/^\d{1,5}$/.test(text.slice(colon + 1))) return 0;
      port = Number(text.slice(colon + 1));
      text = text.slice(0, colon);
    }
  }
  const family = parseAddress(text, HOP);
  if (family !== 0) {
    // RFC 5952 text, no zone: a hop's own spelling (a zone's text, upper-case hex) reached PHP and the log line
    lastHop = family === 4 ? formatIPv4(HOP[0]!) : formatIPv6(HOP);
    lastPort = port !== null && port <= 65535 ? port : null;
  }
  return family;
}

/** Whether a comma list names a client: then the right-most untrusted hop is in lastHop/lastPort; false when a hop is invalid. */
function walkList(trusted: TrustedSubnets, list: string): boolean {
  let end = list.length;
  for (;;) {
    const comma = end === 0 ? -1 : list.lastIndexOf(',', end - 1);
    const family = parseHop(list.slice(comma + 1, end));
    if (family === 0) return false;
    if (!isTrusted(trusted, family, HOP, lastHop)) return true;
    if (comma < 0) return true; // every hop trusted: the left-most is the client
    end = comma;
  }
}

/** Index of the element whose for= is the client (address in `lastHop`, port in `lastPort`); -1 when a hop is invalid. */
function walkForwarded(trusted: TrustedSubnets, elements: readonly ForwardedElement[]): number {
  for (let i = elements.length - 1; i >= 0; i--) {
    const value = elements[i]!.for;
    const family = value === null ? 0 : parseHop(value);
    if (family === 0) return -1;
    if (!isTrusted(trusted, family, HOP, lastHop) || i === 0) return i;
  }
  return -1;
}

/** One RFC 7239 element: the parameters we read (others, like by=, are skipped). */
export interface ForwardedElement {
  for: string | null;
  proto: string | null;
  host: string | null;
}

function lastItem(list: string): string {
  return list.slice(list.lastIndexOf(',') + 1).trim();
}

function validProto(value: string): 'http' | 'https' | null {
  const proto = value.trim().toLowerCase();
  return proto === 'https' ? 'https' : proto === 'http' ? 'http' : null;
}

// host[:port] or [v6][:port]: RFC 3986 reg-name characters only; nothing that could split a URI
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+)(?::\d{1,5})?$/;

function validHost(value: string): string | null {
  const host = value.trim();
  return host.length > 0 && host.length <= 255 && HOST.test(host) ? host : null;
}

/**
 * RFC 7239 `Forwarded`: elements split by commas, pairs by semicolons, values tokens or quoted
 * strings (with backslash escapes). Returns null on a syntax error (then no hop is believed).
 */
export function parseForwarded(header: string): ForwardedElement[] | null {
  const elements: ForwardedElement[] = [];
  let element: ForwardedElement = { for: null, proto: null, host: null };
  let pairs = 0;
  let i = 0;
  const n = header.length;
  for (;;) {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
    if (i < n && header[i] !== ',' && header[i] !== ';') {
      // name = value
      const eq = header.indexOf('=', i);
      if (eq < 0) return null;
      const name = header.slice(i, eq).trim().toLowerCase();
      if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(name)) return null;
      i = eq + 1;
      let value: string;
      if (header[i] === '"') {
        let text = '';
        i++;
        for (;;) {
          if (i >= n) return null; // unterminated quote
          const c = header[i]!;
          if (c === '\\') {
            if (i + 1 >= n) return null;
            text += header[i + 1];
            i += 2;
          } else if (c === '"') {
            i++;
            break;
          } else {
            text += c;
            i++;
          }
        }
        value = text;
      } else {
        const start = i;
        while (i < n && header[i] !== ',' && header[i] !== ';' && header[i] !== ' ' && header[i] !== '\t') i++;
        value = header.slice(start, i);
        if (value === '') return null;
      }
      pairs++;
      if (name === 'for') element.for = value;
      else if (name === 'proto') element.proto = value;
      else if (name === 'host') element.host = value;
      while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
    }
    // RFC 7230 #rule: empty list elements ("a,,b", a trailing comma) are skipped
    if (i >= n) {
      if (pairs > 0) elements.push(element);
      return elements;
    }
    const separator = header[i];
    i++;
    if (separator === ',') {
      if (pairs > 0) elements.push(element);
      element = { for: null, proto: null, host: null };
      pairs = 0;
    } else if (separator !== ';') {
      return null;
    }
  }
}
