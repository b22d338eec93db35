// An HTTP/2 client's bytes, raw, for tests whose client must not be Node's (which keeps reading its
// connection and only sends well-formed frames) or must own its TCP socket.

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
export const FRAME = { HEADERS: 0x1, SETTINGS: 0x4, PING: 0x6, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9 } as const;
export const FLAG = { END_STREAM: 0x1, END_HEADERS: 0x4 } as const;

/** One frame: the 9-byte head, then `payload`. */
export function h2Frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

/** A GET's header block, HPACK literals without indexing (no table state to keep). */
export function getHeaderBlock(path: string, authority = 't'): Buffer {
  const literal = (name: string, value: string) =>
    Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
  return Buffer.concat([
    literal(':method', 'GET'),
    literal(':path', path),
    literal(':scheme', 'https'),
    literal(':authority', authority),
  ]);
}

/**
 * The client side of an HTTP/2 GET, raw: preface, SETTINGS with the largest stream window, a
 * connection WINDOW_UPDATE to match, and HEADERS ending the stream.
 */
export function http2Get(path: string, authority = 't'): Buffer {
  const settings = Buffer.from([0x00, 0x04, 0x7f, 0xff, 0xff, 0xff]); // INITIAL_WINDOW_SIZE 2^31 - 1
  const increment = Buffer.alloc(4);
  increment.writeUInt32BE(0x7fffffff - 65_535);
  return Buffer.concat([
    PREFACE,
    h2Frame(FRAME.SETTINGS, 0, 0, settings),
    h2Frame(FRAME.WINDOW_UPDATE, 0, 0, increment),
    h2Frame(FRAME.HEADERS, FLAG.END_STREAM | FLAG.END_HEADERS, 1, getHeaderBlock(path, authority)),
  ]);
}
