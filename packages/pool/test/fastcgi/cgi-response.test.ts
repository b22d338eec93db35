// CGI response heads as php-cgi and php-fpm write them (the first cases are php-cgi's own bytes),
// RFC 3875 §6.2 redirects, the limits, and the head/body split however STDOUT is cut.
import { PassThrough, Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FastCgiBadHeaderError, FastCgiHeaderTooLargeError } from '../../src/errors.js';
import { CgiHeadParser, parseCgiHead, readCgiResponse } from '../../src/fastcgi/cgi-response.js';

const head = (raw: string) => {
  const { bodyStart, ...rest } = parseCgiHead(Buffer.from(raw, 'latin1'));
  return { ...rest, headers: { ...rest.headers }, body: bodyStart.toString('latin1') };
};

describe('CGI response head', () => {
  it('reads php-cgi output: Status, several Set-Cookie, Location, Content-type, then the body', () => {
    // `php-cgi` for setcookie('a','1'); setcookie('b','2'); header('Location: /x'); echo "hi";
    expect(
      head(
        'Status: 302 Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nLocation: /x\r\nContent-type: text/html; charset=UTF-8\r\n\r\nhi',
      ),
    ).toEqual({
      status: 302,
      statusText: 'Found',
      headers: { 'set-cookie': ['a=1', 'b=2'], location: ['/x'], 'content-type': ['text/html; charset=UTF-8'] },
      localRedirect: null,
      body: 'hi',
    });
  });

  it('defaults to 200 without Status, and keeps repeated fields in order', () => {
    expect(head('X-Multi: a\r\nx-multi: b\r\nContent-Type: text/plain\r\n\r\n')).toMatchObject({
      status: 200,
      statusText: null,
      headers: { 'x-multi': ['a', 'b'], 'content-type': ['text/plain'] },
      body: '',
    });
  });

  it('takes bare LF line ends, and a Status without a reason', () => {
    expect(head('Status: 404\nContent-Type: text/plain\n\nnope')).toMatchObject({
      status: 404,
      statusText: null,
      body: 'nope',
    });
  });

  it('a local Location without Status is a local redirect (RFC 3875 §6.2.2), answered 302 by default', () => {
    // php-cgi for header('Location: /x', true, 200): no Status line
    expect(head('Location: /login?next=%2F\r\nContent-type: text/html; charset=UTF-8\r\n\r\n')).toMatchObject({
      status: 302,
      localRedirect: '/login?next=%2F',
    });
  });

  it('an absolute Location without Status is a client redirect (§6.2.3): 302, no local redirect', () => {
    expect(head('Location: https://example.com/x\r\n\r\n')).toMatchObject({ status: 302, localRedirect: null });
    // "//host/x" is a network-path reference to another host, not a local path
    expect(head('Location: //evil.example/x\r\n\r\n')).toMatchObject({ status: 302, localRedirect: null });
  });

  it('a Location with a Status is passed through as is (§6.2.4)', () => {
    expect(head('Status: 301 Moved Permanently\r\nLocation: /new\r\n\r\n')).toMatchObject({
      status: 301,
      statusText: 'Moved Permanently',
      headers: { location: ['/new'] },
      localRedirect: null,
    });
    expect(head('Status: 201 Created\r\nLocation: /items/7\r\n\r\n')).toMatchObject({
      status: 201,
      localRedirect: null,
    });
  });

  it('the last of several Status lines counts (as in nginx)', () => {
    expect(head('Status: 500\r\nStatus: 404 Not Found\r\n\r\n')).toMatchObject({
      status: 404,
      statusText: 'Not Found',
    });
  });

  it('unfolds obs-fold continuation lines into one value', () => {
    expect(head('X-Long: a\r\n  b\r\n\tc\r\nContent-Type: text/plain\r\n\r\n').headers).toEqual({
      'x-long': ['a b c'],
      'content-type': ['text/plain'],
    });
  });

  it('trims whitespace around values, keeps bytes 0x80-0xff as latin1 chars', () => {
    expect(head('X-A: \t v \t\r\nX-B: caf\xe9\r\n\r\n').headers).toEqual({ 'x-a': ['v'], 'x-b': ['caf\xe9'] });
  });

  it('keeps names like __proto__ as plain keys', () => {
    const parsed = parseCgiHead(Buffer.from('__proto__: x\r\nconstructor: y\r\nconstructor: z\r\n\r\n'));
    expect(Object.getOwnPropertyDescriptor(parsed.headers, '__proto__')?.value).toEqual(['x']);
    expect(Object.keys(parsed.headers)).toEqual(['__proto__', 'constructor']);
    expect(parsed.headers.constructor).toEqual(['y', 'z']);
    // nothing is inherited: no Object.prototype members to mistake for fields
    for (const name of ['toString', 'hasOwnProperty', 'valueOf', 'location'])
      expect((parsed.headers as Record<string, unknown>)[name]).toBeUndefined();
  });

  it.each([
    ['a line without a colon', 'Content-Type text/plain\r\n\r\n', /without a colon/],
    ['an empty name', ': x\r\n\r\n', /without a name/],
    ['a space before the colon', 'Content-Type : text/plain\r\n\r\n', /invalid header name/],
    ['a name with a non-token char', 'X(y): 1\r\n\r\n', /invalid header name/],
    ['a bad Status', 'Status: abc\r\n\r\n', /invalid Status/],
    ['a Status out of range', 'Status: 600 Nope\r\n\r\n', /invalid Status/],
    ['a two-digit Status', 'Status: 20\r\n\r\n', /invalid Status/],
    ['an informational Status (100)', 'Status: 100 Continue\r\n\r\n', /informational status cannot end/],
    ['an informational Status (101)', 'Status: 101 Switching Protocols\r\n\r\n', /informational/],
    ['an informational Status (103)', 'Status: 103\r\n\r\n', /informational/],
    ['a NUL in a value', 'X: a\0b\r\n\r\n', /control byte 0x00/],
    ['a lone CR in a value (response splitting)', 'X: a\rSet-Cookie: evil\r\n\r\n', /control byte 0x0d/],
    ['a continuation first', ' folded\r\n\r\n', /continuation/],
    ['an empty header block', '\r\nbody', /empty header block/],
  ])('refuses %s', (_what, raw, message) => {
    expect(() => parseCgiHead(Buffer.from(raw, 'latin1'))).toThrow(FastCgiBadHeaderError);
    expect(() => parseCgiHead(Buffer.from(raw, 'latin1'))).toThrow(message);
  });

  it('refuses output that ends inside the header block, or no output at all', () => {
    expect(() => parseCgiHead(Buffer.from('Content-Type: text/plain\r\n'))).toThrow(/ended inside its header block/);
    const parser = new CgiHeadParser();
    expect(() => parser.end()).toThrow(/without any output/);
  });

  it('caps the header block size, also when it never ends', () => {
    const big = `X-Big: ${'a'.repeat(2000)}\r\n\r\n`;
    expect(() => parseCgiHead(Buffer.from(big), { maxHeaderBytes: 1000 })).toThrow(FastCgiHeaderTooLargeError);
    const parser = new CgiHeadParser({ maxHeaderBytes: 1000 });
    expect(parser.push(Buffer.alloc(999, 0x61))).toBeNull();
    expect(() => parser.push(Buffer.alloc(2, 0x61))).toThrow(FastCgiHeaderTooLargeError);
    // exactly at the limit, blank line included, is accepted
    const exact = `X: ${'a'.repeat(1000 - 7)}\r\n\r\n`;
    expect(Buffer.byteLength(exact)).toBe(1000);
    expect(parseCgiHead(Buffer.from(exact), { maxHeaderBytes: 1000 }).status).toBe(200);
  });

  it('caps the number of header lines', () => {
    const many = `${'X: 1\r\n'.repeat(11)}\r\n`;
    expect(() => parseCgiHead(Buffer.from(many), { maxHeaderCount: 10 })).toThrow(FastCgiHeaderTooLargeError);
    expect(parseCgiHead(Buffer.from(many), { maxHeaderCount: 11 }).headers.x).toHaveLength(11);
  });
});

describe('CGI head split across STDOUT records', () => {
  it('gives the same head and body wherever the bytes are cut', () => {
    const raw = Buffer.from(
      'Status: 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\nX-Fold: a\r\n b\r\nContent-Type: text/html\r\n\r\n\r\nbody\r\n\r\nmore',
    );
    const whole = parseCgiHead(raw);
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }), (cuts) => {
        const parser = new CgiHeadParser();
        let offset = 0;
        let got = null;
        const rest: Buffer[] = [];
        for (let i = 0; offset < raw.length; i++) {
          const piece = raw.subarray(offset, offset + cuts[i % cuts.length]!);
          offset += piece.length;
          if (got === null) {
            got = parser.push(piece);
            if (got !== null) rest.push(got.bodyStart);
          } else {
            rest.push(piece);
          }
        }
        expect(got).not.toBeNull();
        expect({ ...got!, bodyStart: null, headers: { ...got!.headers } }).toEqual({
          ...whole,
          bodyStart: null,
          headers: { ...whole.headers },
        });
        expect(Buffer.concat(rest).toString()).toBe('\r\nbody\r\n\r\nmore');
      }),
      { numRuns: 300 },
    );
  });
});

describe('readCgiResponse', () => {
  it('resolves with the head and the rest of the stream as the body, body start first', async () => {
    const stdout = new PassThrough();
    const pending = readCgiResponse(stdout);
    stdout.write('Status: 200 OK\r\nContent-Type: text/plain\r\n');
    stdout.write('\r\nfirst ');
    stdout.end('second');
    const response = await pending;
    expect(response.status).toBe(200);
    expect(response.body).toBe(stdout);
    expect(await text(response.body)).toBe('first second');
  });

  it('keeps the body paused until it is read (backpressure reaches the source)', async () => {
    const stdout = new PassThrough({ highWaterMark: 16 });
    const pending = readCgiResponse(stdout);
    stdout.write('Content-Type: text/plain\r\n\r\nxx');
    const response = await pending;
    expect(response.body.isPaused()).toBe(true);
    // nobody reads: the stream fills up and write() asks the writer to wait
    let accepted = true;
    for (let i = 0; i < 10 && accepted; i++) accepted = stdout.write(Buffer.alloc(16));
    expect(accepted).toBe(false);
    stdout.end();
    expect((await text(response.body)).length).toBeGreaterThan(2);
  });

  it('rejects and destroys the stream on a bad head', async () => {
    const stdout = Readable.from([Buffer.from('not a header\r\n\r\n')]);
    await expect(readCgiResponse(stdout)).rejects.toThrow(FastCgiBadHeaderError);
    expect(stdout.destroyed).toBe(true);
  });

  it('rejects when the output ends before the blank line, or the stream fails', async () => {
    await expect(readCgiResponse(Readable.from([Buffer.from('X: 1\r\n')]))).rejects.toThrow(/inside its header block/);
    const failing = new PassThrough();
    const pending = readCgiResponse(failing);
    failing.destroy(new Error('socket reset'));
    await expect(pending).rejects.toThrow('socket reset');
  });
});
