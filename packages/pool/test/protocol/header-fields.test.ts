import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  controlByteIn,
  headerMapProblem,
  headerTextFromBytes,
  headerWireValue,
  isFieldName,
} from '../../src/protocol/header-fields.js';

describe('header fields a response may carry (RFC 9110 §5)', () => {
  it('a name is one or more token characters', () => {
    for (const name of ['x-a', 'Set-Cookie', "!#$%&'*+-.^_`|~09AZaz"]) expect(isFieldName(name), name).toBe(true);
    for (const name of ['', 'a b', 'a:b', 'a\tb', 'ä', 'a\u0001', 'a"b', '(x)', 'a/b']) {
      expect(isFieldName(name), JSON.stringify(name)).toBe(false);
    }
  });

  it('a value may hold tabs and any text but control bytes', () => {
    expect(controlByteIn('a\tb grüße ~')).toBe(-1);
    expect([controlByteIn('a\rb'), controlByteIn('a\nb'), controlByteIn('\u0000'), controlByteIn('x\u007f')]).toEqual([
      0x0d, 0x0a, 0x00, 0x7f,
    ]);
  });

  it('names the first problem of a header map, or none', () => {
    expect(headerMapProblem({ 'x-a': ['1', '2\t3'], b: [] })).toBeNull();
    expect(headerMapProblem({ ok: ['1'], 'bad name': ['v'] })).toBe('invalid header name "bad name"');
    expect(headerMapProblem({ 'x-split': ['ok', 'a\r\nSet-Cookie: x=1'] })).toBe(
      'header x-split has a control byte 0x0d in its value',
    );
    // every value counts, Set-Cookie lines too
    expect(headerMapProblem({ a: ['1', '2'], b: ['3'] }, 3)).toBeNull();
    expect(headerMapProblem({ a: ['1', '2'], b: ['3', '4'] }, 3)).toMatch(/^more than 3 header fields/);
  });
});

describe('header values as bytes: what PHP sent is what the client gets', () => {
  const latin1 = (bytes: number[]) => Buffer.from(bytes).toString('latin1');

  it('UTF-8 is read as text, other bytes are kept as they are', () => {
    expect(headerTextFromBytes(latin1([0x63, 0xc3, 0xa9, 0xf0, 0x9f, 0x98, 0x80]))).toBe('c\u00e9\u{1f600}');
    expect(headerWireValue(headerTextFromBytes(latin1([0x63, 0x61, 0x66, 0xe9])))).toBe('caf\xe9');
    // text from a worker (JSON) goes out as its UTF-8 bytes, as before
    expect(headerWireValue('caf\u00e9 \u20ac')).toBe(Buffer.from('caf\u00e9 \u20ac').toString('latin1'));
  });

  it('any bytes a CGI head may hold come back the same', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const value = latin1([...bytes]);
        expect(headerWireValue(headerTextFromBytes(value))).toBe(value);
      }),
    );
  });
});
