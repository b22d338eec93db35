// One client, as limits count it: an IPv4 address, or an IPv6 address's /64.

/**
 * Whom a client is counted as (connection limits, limit_req): an IPv4 address (written plain or
 * IPv4-mapped), or an IPv6 address's /64, since one IPv6 client (a home, a VPS) is usually given a
 * whole /64 and could otherwise open each connection from another address of it.
 */
export function clientKey(address: string): string {
  const plain = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  if (!plain.includes(':')) return plain;
  const bare = plain.replace(/%.*$/, '').toLowerCase();
  const [head = '', tail] = bare.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  return `${groups
    .slice(0, 4)
    .map((group) => group.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
