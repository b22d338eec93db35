// An HTTP/2 client's first bytes, raw, for tests whose client must not be Node's (which keeps
// reading its connection) or must own its TCP socket.

/**
 * The client side of an HTTP/2 GET, raw: preface, SETTINGS with the largest stream window, a
 * connection WINDOW_UPDATE to match, and HEADERS (HPACK literals) ending the stream. Node's own
 * client would keep reading the connection.
 */
export function http2Get(path: string, authority = 't'): Buffer {
  const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
    const head = Buffer.alloc(9);
    head.writeUIntBE(payload.length, 0, 3);
    head[3] = type;
    head[4] = flags;
    head.writeUInt32BE(stream, 5);
    return Buffer.concat([head, payload]);
  };
  const literal = (name: string, value: string) =>
    Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
  const settings = Buffer.from([0x00, 0x04, 0x7f, 0xff, 0xff, 0xff]); // INITIAL_WINDOW_SIZE 2^31 - 1
  const increment = Buffer.alloc(4);
  increment.writeUInt32BE(0x7fffffff - 65_535);
  const headers = Buffer.concat([
    literal(':method', 'GET'),
    literal(':path', path),
    literal(':scheme', 'https'),
    literal(':authority', authority),
  ]);
  return Buffer.concat([
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
    frame(0x4, 0, 0, settings),
    frame(0x8, 0, 0, increment),
    frame(0x1, 0x5, 1, headers), // END_STREAM | END_HEADERS
  ]);
}
