/**
 * IP addresses and CIDR sets, small enough to own (no ipaddr dependency).
 *
 * An address is parsed into 32-bit words: IPv4 into one word, IPv6 into four. An IPv4-mapped IPv6
 * address (::ffff:10.0.0.1, or ::ffff:a00:1) IS an IPv4 address here, so it matches IPv4 CIDRs and
 * prints as 10.0.0.1. Other IPv6 CIDRs never match IPv4 addresses (Go's net.IPNet.Contains, which
 * RoadRunner uses, behaves the same: ::/0 does not trust 1.2.3.4).
 */

/** 4 or 6 when `text` is an address (its words written to `out`), 0 when it is not. */
export type AddressFamily = 0 | 4 | 6;

/**
 * Parses an IPv4 or IPv6 address without brackets or port; a zone (`fe80::1%eth0`) is ignored.
 * IPv4: exactly four decimal octets without leading zeros (010.0.0.1 is ambiguous, so rejected).
 * The words go to `out` (length >= 4): out[0] for IPv4, out[0..3] for IPv6. Allocates nothing.
 */
export function parseAddress(text: string, out: Uint32Array): AddressFamily {
  const length = text.length;
  if (length === 0 || length > 64) return 0;
  if (text.indexOf(':') < 0) {
    const v4 = parseIPv4(text, 0, length);
    if (v4 < 0) return 0;
    out[0] = v4;
    return 4;
  }
  if (!parseIPv6(text, out)) return 0;
  // ::ffff:0:0/96 is IPv4 carried in IPv6 (a dual-stack socket reports IPv4 peers this way)
  if (out[0] === 0 && out[1] === 0 && out[2] === 0xffff) {
    out[0] = out[3]!;
    return 4;
  }
  return 6;
}

/** The IPv4 address in text[start, end) as an unsigned 32-bit number, or -1. */
function parseIPv4(text: string, start: number, end: number): number {
  let value = 0;
  let octets = 0;
  let i = start;
  while (i < end) {
    let octet = 0;
    const first = i;
    while (i < end) {
      const c = text.charCodeAt(i);
      if (c < 48 || c > 57) break;
      octet = octet * 10 + (c - 48);
      i++;
    }
    const digits = i - first;
    if (digits === 0 || digits > 3 || octet > 255 || (digits > 1 && text.charCodeAt(first) === 48)) return -1;
    value = value * 256 + octet;
    octets++;
    if (i === end) break;
    if (text.charCodeAt(i) !== 46 /* . */ || octets === 4) return -1;
    i++;
    if (i === end) return -1; // trailing dot
  }
  return octets === 4 ? value >>> 0 : -1;
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

// Scratch for the 16-bit groups of one IPv6 parse (the request path runs to completion: no sharing).
const GROUPS = new Uint16Array(8);

function parseIPv6(text: string, out: Uint32Array): boolean {
  let end = text.indexOf('%');
  if (end === 0 || end === text.length - 1) return false;
  if (end < 0) end = text.length;
  let count = 0; // groups written
  let gap = -1; // index in GROUPS where "::" stands
  let i = 0;
  if (text.charCodeAt(0) === 58 /* : */) {
    if (text.charCodeAt(1) !== 58) return false;
    gap = 0;
    i = 2;
    if (i === end) return fillIPv6(out, count, gap);
  }
  while (i < end) {
    const start = i;
    let group = 0;
    while (i < end) {
      const h = hexValue(text.charCodeAt(i));
      if (h < 0) break;
      group = group * 16 + h;
      i++;
    }
    const digits = i - start;
    if (i < end && text.charCodeAt(i) === 46 /* . */) {
      // embedded IPv4 in the last 32 bits
      if (count > 6) return false;
      const v4 = parseIPv4(text, start, end);
      if (v4 < 0) return false;
      GROUPS[count++] = v4 >>> 16;
      GROUPS[count++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (digits === 0 || digits > 4 || count === 8) return false;
    GROUPS[count++] = group;
    if (i === end) break;
    if (text.charCodeAt(i) !== 58) return false;
    i++;
    if (text.charCodeAt(i) === 58) {
      if (gap >= 0) return false; // a second "::"
      gap = count;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return false; // trailing single ":"
    }
  }
  return fillIPv6(out, count, gap);
}

function fillIPv6(out: Uint32Array, count: number, gap: number): boolean {
  if (gap < 0 ? count !== 8 : count > 7) return false;
  const zeros = 8 - count;
  let g = 0;
  for (let w = 0; w < 4; w++) {
    const hi = groupAt(g++, count, gap, zeros);
    const lo = groupAt(g++, count, gap, zeros);
    out[w] = ((hi << 16) | lo) >>> 0;
  }
  return true;
}

/** The group at position `p` of the expanded address (the "::" gap expands to `zeros` zero groups). */
function groupAt(p: number, count: number, gap: number, zeros: number): number {
  if (gap < 0 || p < gap) return GROUPS[p]!;
  if (p < gap + zeros) return 0;
  const source = p - zeros;
  return source < count ? GROUPS[source]! : 0;
}

/** Dotted text of an IPv4 word. */
export function formatIPv4(value: number): string {
  return `${value >>> 24}.${(value >>> 16) & 255}.${(value >>> 8) & 255}.${value & 255}`;
}

/**
 * RFC 5952 text of IPv6 words (as parseAddress wrote them): lower-case hex, no leading zeros, the
 * longest run of two or more zero groups (the first of equals) as "::", no zone.
 */
export function formatIPv6(words: Uint32Array): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let g = 0; g < 8; ) {
    if (groupOf(words, g) !== 0) {
      g++;
      continue;
    }
    let end = g;
    while (end < 8 && groupOf(words, end) === 0) end++;
    if (end - g > bestLength) {
      bestStart = g;
      bestLength = end - g;
    }
    g = end;
  }
  let text = '';
  for (let g = 0; g < 8; g++) {
    if (g === bestStart) {
      text += '::';
      g += bestLength - 1;
      continue;
    }
    if (text !== '' && !text.endsWith(':')) text += ':';
    text += groupOf(words, g).toString(16);
  }
  return text;
}

function groupOf(words: Uint32Array, g: number): number {
  const word = words[g >> 1]!;
  return g % 2 === 0 ? word >>> 16 : word & 0xffff;
}

const PLAIN = new Uint32Array(4);

/**
 * A socket's peer address as logs, PHP and upstreams are given it: an IPv4 client of a dual-stack
 * listener without its ::ffff: form, an IPv6 one in RFC 5952 form without its zone (nginx prints
 * none); anything that is no address is returned as it is.
 */
export function plainAddress(address: string): string;
/** (A socket's remoteAddress is undefined once it closed: so is its plain form.) */
export function plainAddress(address: string | undefined): string | undefined;
export function plainAddress(address: string | undefined): string | undefined {
  if (address === undefined || address.indexOf(':') < 0) return address;
  const family = parseAddress(address, PLAIN);
  return family === 4 ? formatIPv4(PLAIN[0]!) : family === 6 ? formatIPv6(PLAIN) : address;
}

/** A set of CIDRs compiled once; `contains` allocates nothing. */
export interface CidrSet {
  /** whether the address text (no brackets, no port) is inside one of the CIDRs; false when it is not an address */
  contains(address: string): boolean;
  /** the same test on words already parsed by `parseAddress` */
  containsParsed(family: AddressFamily, words: Uint32Array): boolean;
  readonly size: number;
}

/** `text` as a CIDR: network words, prefix length, family; null when malformed. Host bits are masked off, as Go does. */
export function parseCidr(text: string): { family: 4 | 6; words: Uint32Array; prefix: number } | null {
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  const words = new Uint32Array(4);
  // parse first without the v4-mapped folding so "::ffff:10.0.0.0/104" keeps its 128-bit prefix
  const isV6Text = addressText.indexOf(':') >= 0;
  let family: AddressFamily;
  if (isV6Text) family = parseIPv6(addressText, words) && addressText.indexOf('%') < 0 ? 6 : 0;
  else family = parseAddress(addressText, words);
  if (family === 0) return null;
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const digits = text.slice(slash + 1);
    if (!/^(?:0|[1-9]\d{0,2})$/.test(digits)) return null;
    prefix = Number(digits);
    if (prefix > max) return null;
  }
  // a v4-mapped IPv6 CIDR covering only mapped space is an IPv4 CIDR (10.0.0.0/8 == ::ffff:10.0.0.0/104)
  if (family === 6 && prefix >= 96 && words[0] === 0 && words[1] === 0 && words[2] === 0xffff) {
    words[0] = words[3]!;
    words[1] = words[2] = words[3] = 0;
    family = 4;
    prefix -= 96;
  }
  const wordCount = family === 4 ? 1 : 4;
  for (let w = 0; w < wordCount; w++) words[w] = words[w]! & maskWord(prefix, w);
  return { family, words, prefix };
}

/** The mask of 32-bit word `w` for a prefix length. */
function maskWord(prefix: number, w: number): number {
  const bits = prefix - w * 32;
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffff;
  return (0xffffffff << (32 - bits)) >>> 0;
}

const SCRATCH = new Uint32Array(4);

/**
 * Why `entry` is not a CIDR `createCidrSet` accepts ("10.0.0.0/8", "2001:db8::/32", a bare address),
 * or null when it is one. The config layer checks YAML entries with it, so `warmpool config check`
 * and `serve` reject what the plugin would, with the same words, before anything boots.
 */
export function cidrProblem(entry: unknown): string | null {
  if (typeof entry !== 'string') return `must be a CIDR string like "10.0.0.0/8", got ${JSON.stringify(entry)}`;
  const text = entry.trim();
  if (parseCidr(text) !== null) return null;
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  if (slash >= 0 && parseCidr(address) !== null) {
    const family = address.includes(':') ? 6 : 4;
    const max = family === 4 ? 32 : 128;
    return `"${entry}" has a bad prefix length "/${text.slice(slash + 1)}": IPv${family} takes /0 to /${max}`;
  }
  return `"${entry}" is not a CIDR; write e.g. "10.0.0.0/8", "192.168.1.10" or "2001:db8::/32"`;
}

/**
 * Compiles CIDR strings ("10.0.0.0/8", "2001:db8::/32", a bare address = one host) into a set.
 * Throws `onError(index, message)`'s result for the first bad entry.
 */
export function createCidrSet(cidrs: readonly string[], onError: (index: number, message: string) => Error): CidrSet {
  const v4Nets: number[] = [];
  const v4Masks: number[] = [];
  const v6Nets: number[] = [];
  const v6Masks: number[] = [];
  cidrs.forEach((entry, index) => {
    const problem = cidrProblem(entry);
    if (problem !== null) throw onError(index, problem);
    const cidr = parseCidr((entry as string).trim())!;
    if (cidr.family === 4) {
      v4Nets.push(cidr.words[0]!);
      v4Masks.push(maskWord(cidr.prefix, 0));
    } else {
      for (let w = 0; w < 4; w++) {
        v6Nets.push(cidr.words[w]!);
        v6Masks.push(maskWord(cidr.prefix, w));
      }
    }
  });
  const n4 = Uint32Array.from(v4Nets);
  const m4 = Uint32Array.from(v4Masks);
  const n6 = Uint32Array.from(v6Nets);
  const m6 = Uint32Array.from(v6Masks);
  const containsParsed = (family: AddressFamily, words: Uint32Array): boolean => {
    if (family === 4) {
      const a = words[0]!;
      for (let i = 0; i < n4.length; i++) if ((a & m4[i]!) >>> 0 === n4[i]) return true;
      return false;
    }
    if (family === 6) {
      const a0 = words[0]!;
      const a1 = words[1]!;
      const a2 = words[2]!;
      const a3 = words[3]!;
      for (let i = 0; i < n6.length; i += 4) {
        if (
          (a0 & m6[i]!) >>> 0 === n6[i] &&
          (a1 & m6[i + 1]!) >>> 0 === n6[i + 1] &&
          (a2 & m6[i + 2]!) >>> 0 === n6[i + 2] &&
          (a3 & m6[i + 3]!) >>> 0 === n6[i + 3]
        ) {
          return true;
        }
      }
    }
    return false;
  };
  return {
    size: cidrs.length,
    containsParsed,
    contains: (address: string) => containsParsed(parseAddress(address, SCRATCH), SCRATCH),
  };
}
