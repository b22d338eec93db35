import { describe, expect, it } from 'vitest';
import { BadContextError } from '../../src/errors.js';
import { FLAG_CODEC_JSON, FLAG_CODEC_PROTO } from '../../src/protocol/frame.js';
import {
  decodeProtoRequest,
  decodeProtoResponse,
  decodeResponseContext,
  encodeProtoRequest,
  encodeProtoResponse,
  encodeRequestContext,
  type HttpRequestContext,
} from '../../src/protocol/http-context.js';

function hex(dump: string): Buffer {
  return Buffer.from(dump.replace(/\s+/g, ''), 'hex');
}

// PROTOCOL.md §10.2: the context part of the request frame.
const REQUEST_CONTEXT_10_2 = hex(`
  0a 09 31 32 37 2e 30 2e 30 2e 31 12 08 48 54 54
  50 2f 31 2e 31 1a 03 47 45 54 22 1f 68 74 74 70
  3a 2f 2f 6c 6f 63 61 6c 68 6f 73 74 3a 38 30 38
  30 2f 68 65 6c 6c 6f 3f 78 3d 31 2a 16 0a 0a 55
  73 65 72 2d 41 67 65 6e 74 12 08 0a 06 63 75 72
  6c 2f 38 3a 03 78 3d 31`);
// PROTOCOL.md §10.3: the context part of the response frame.
const RESPONSE_CONTEXT_10_3 = hex(`
  08 c8 01 12 1c 0a 0c 43 6f 6e 74 65 6e 74 2d 54
  79 70 65 12 0c 0a 0a 74 65 78 74 2f 70 6c 61 69
  6e`);

function requestContext(overrides: Partial<HttpRequestContext> = {}): HttpRequestContext {
  return {
    remoteAddr: '127.0.0.1',
    protocol: 'HTTP/1.1',
    method: 'GET',
    uri: 'http://localhost:8080/hello?x=1',
    headers: { 'User-Agent': ['curl/8'] },
    cookies: {},
    rawQuery: 'x=1',
    parsed: false,
    uploads: null,
    attributes: null,
    ...overrides,
  };
}

function asBuffer(context: Buffer | string): Buffer {
  return typeof context === 'string' ? Buffer.from(context) : context;
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw');
}

describe('protobuf request (§5.2)', () => {
  it('encodes the request of §10.2 byte for byte', () => {
    expect(encodeProtoRequest(requestContext()).toString('hex')).toBe(REQUEST_CONTEXT_10_2.toString('hex'));
  });

  it('encodeRequestContext(proto) gives flag 0x80 and the same bytes', () => {
    const encoded = encodeRequestContext(requestContext(), 'proto');
    expect(encoded.flags).toBe(FLAG_CODEC_PROTO);
    expect(asBuffer(encoded.context).toString('hex')).toBe(REQUEST_CONTEXT_10_2.toString('hex'));
  });

  it('decodes the request of §10.2', () => {
    expect(decodeProtoRequest(REQUEST_CONTEXT_10_2)).toEqual(requestContext());
  });

  it('omits defaults (proto3): an empty request is zero bytes', () => {
    const empty = requestContext({ remoteAddr: '', protocol: '', method: '', uri: '', headers: {}, rawQuery: '' });
    expect(encodeProtoRequest(empty).length).toBe(0);
    expect(decodeProtoRequest(Buffer.alloc(0))).toEqual(empty);
  });

  it('writes parsed=true as 40 01 and uses the field tags of §5.2', () => {
    const ctx = requestContext({
      remoteAddr: 'a',
      protocol: 'b',
      method: 'c',
      uri: 'd',
      headers: { h: ['1'] },
      cookies: { k: 'v' },
      rawQuery: 'q',
      parsed: true,
      uploads: {},
      attributes: { t: ['2'] },
    });
    expect(encodeProtoRequest(ctx).toString('hex')).toBe(
      [
        '0a0161', // remote_addr
        '120162', // protocol
        '1a0163', // method
        '220164', // uri
        '2a08' + '0a0168' + '1203' + '0a0131', // header { h: [1] }
        '3208' + '0a016b' + '1203' + '0a0176', // cookies { k: [v] }
        '3a0171', // raw_query
        '4001', // parsed
        '4a027b7d', // uploads "{}"
        '5208' + '0a0174' + '1203' + '0a0132', // attributes { t: [2] }
      ].join(''),
    );
  });

  it('round-trips a full request: multi-value headers, cookies, parsed, uploads, attributes, unicode', () => {
    const ctx = requestContext({
      remoteAddr: '::1',
      protocol: 'HTTP/2.0',
      method: 'POST',
      uri: 'https://example.test/ünïcode/路径?q=%E2%9C%93',
      headers: {
        Accept: ['text/html', 'application/json'],
        'Set-Cookie-Like': ['a=1', 'b=2', 'c=3'],
        'X-Unicode': ['héllo wörld 😀'],
        'X-Empty': [''],
        'Content-Type': ['multipart/form-data; boundary=xyz'],
      },
      cookies: { session: 'abc123', ünï: 'ç😀', empty: '' },
      rawQuery: 'q=%E2%9C%93&a[]=1&a[]=2',
      parsed: true,
      uploads: {
        f: { name: 'x.txt', mime: 'text/plain', size: 3, error: 0, tmpName: '/tmp/upload123' },
        many: [
          { name: 'a.png', mime: 'image/png', size: 10, error: 0, tmpName: '/tmp/upload1' },
          { name: 'b.php', mime: 'text/x-php', size: 0, error: 8, tmpName: '' },
        ],
        nested: { deep: { ü: { name: 'ü.txt', mime: 'text/plain', size: 1, error: 0, tmpName: '/tmp/u' } } },
      },
      attributes: { 'otel.trace': ['t1', 't2'], user: ['ñ'] },
    });
    expect(decodeProtoRequest(encodeProtoRequest(ctx))).toEqual(ctx);
  });

  it('round-trips header values whose lengths need 2- and 3-byte varints', () => {
    const ctx = requestContext({
      headers: {
        'X-200': ['a'.repeat(200)],
        'X-20000': ['b'.repeat(20_000)],
        'X-Many': Array.from({ length: 300 }, (_, i) => `v${i}`),
      },
      uri: `http://localhost/${'p'.repeat(16_500)}`,
    });
    const encoded = encodeProtoRequest(ctx);
    expect(decodeProtoRequest(encoded)).toEqual(ctx);
    // uri: tag 22, length 17 + 16500 = 16517 = 1·128² + 1·128 + 5, a 3-byte varint: 85 81 01
    expect(encoded.indexOf(Buffer.from('22858101', 'hex'))).toBeGreaterThan(0);
  });

  it('encodes the JSON request context as the §5.4 object with flag 0x08', () => {
    const ctx = requestContext({ cookies: { a: 'b' }, parsed: true, uploads: { f: { name: 'x' } } });
    const encoded = encodeRequestContext(ctx, 'json');
    expect(encoded.flags).toBe(FLAG_CODEC_JSON);
    const parsed = JSON.parse(asBuffer(encoded.context).toString()) as Record<string, unknown>;
    expect(parsed).toEqual(ctx);
    expect(Object.keys(parsed).sort()).toEqual([
      'attributes',
      'cookies',
      'headers',
      'method',
      'parsed',
      'protocol',
      'rawQuery',
      'remoteAddr',
      'uploads',
      'uri',
    ]);
  });

  it('skips unknown fields', () => {
    const withExtra = Buffer.concat([encodeProtoRequest(requestContext()), hex('78 05 82 01 02 68 69')]);
    expect(decodeProtoRequest(withExtra)).toEqual(requestContext());
  });
});

describe('protobuf response (§6)', () => {
  it('decodes the response of §10.3: status 200, Content-Type text/plain', () => {
    expect(decodeProtoResponse(RESPONSE_CONTEXT_10_3)).toEqual({
      status: 200,
      headers: { 'Content-Type': ['text/plain'] },
    });
  });

  it('encodes the response of §10.3 byte for byte', () => {
    const encoded = encodeProtoResponse({ status: 200, headers: { 'Content-Type': ['text/plain'] } });
    expect(encoded.toString('hex')).toBe(RESPONSE_CONTEXT_10_3.toString('hex'));
  });

  it('encodes status 103 as 08 67 and omits empty headers', () => {
    expect(encodeProtoResponse({ status: 103, headers: {} }).toString('hex')).toBe('0867');
  });

  it('writes 2-byte length varints for a 200-byte header value', () => {
    const encoded = encodeProtoResponse({ status: 200, headers: { X: ['a'.repeat(200)] } });
    // entry = key (0a 01 58) + value list (12 cb01 { 0a c801 a×200 }) = 3 + 206 = 209 (d1 01)
    expect(encoded.subarray(0, 15).toString('hex')).toBe('08c80112d1010a015812cb010ac801');
    expect(encoded.length).toBe(15 + 200);
  });

  it('round-trips long and multi-value headers (varints > 127 and > 16383)', () => {
    const res = {
      status: 599,
      headers: {
        'Set-Cookie': ['a=1; Path=/', 'b=2; HttpOnly'],
        'X-Long': ['x'.repeat(128), 'y'.repeat(16_384), 'z'.repeat(100_000)],
        'X-Ünicode': ['😀'],
      },
    };
    expect(decodeProtoResponse(encodeProtoResponse(res))).toEqual(res);
  });

  it('merges repeated map entries for the same name and skips unknown fields', () => {
    const entry = (name: string, value: string): Buffer => {
      const inner = Buffer.concat([
        Buffer.from([0x0a, name.length]),
        Buffer.from(name),
        Buffer.from([0x12, value.length + 2, 0x0a, value.length]),
        Buffer.from(value),
      ]);
      return Buffer.concat([Buffer.from([0x12, inner.length]), inner]);
    };
    const context = Buffer.concat([hex('08 c8 01'), entry('A', '1'), hex('18 07'), entry('A', '2')]);
    expect(decodeProtoResponse(context)).toEqual({ status: 200, headers: { A: ['1', '2'] } });
  });

  it('rejects a truncated context with BadContextError', () => {
    for (const cut of [2, 5, 20]) {
      const error = caught(() => decodeProtoResponse(RESPONSE_CONTEXT_10_3.subarray(0, cut)));
      expect(error, `cut at ${cut}`).toBeInstanceOf(BadContextError);
      expect((error as BadContextError).code).toBe('WP_PROTOCOL_BAD_CONTEXT');
    }
  });
});

describe('decodeResponseContext', () => {
  it('decodes 0x80 as protobuf', () => {
    expect(decodeResponseContext(FLAG_CODEC_PROTO, RESPONSE_CONTEXT_10_3)).toEqual({
      status: 200,
      headers: { 'Content-Type': ['text/plain'] },
    });
  });

  it("decodes 0x08 (PHP 3.5 JSON) and 0x00 (PHP <= 3.4) as JSON, with PHP's escaped slashes", () => {
    const json = Buffer.from('{"status":200,"headers":{"Content-Type":["text\\/plain"]}}');
    const expected = { status: 200, headers: { 'Content-Type': ['text/plain'] } };
    expect(decodeResponseContext(FLAG_CODEC_JSON, json)).toEqual(expected);
    expect(decodeResponseContext(0x00, json)).toEqual(expected);
  });

  it('does not read protobuf bytes as JSON, nor JSON as protobuf', () => {
    expect(() => decodeResponseContext(FLAG_CODEC_JSON, RESPONSE_CONTEXT_10_3)).toThrow(BadContextError);
    expect(() => decodeResponseContext(FLAG_CODEC_PROTO, Buffer.from('{"status":200}'))).toThrow(BadContextError);
  });

  it('normalises "headers":[] (an empty PHP array) to {}', () => {
    expect(decodeResponseContext(FLAG_CODEC_JSON, Buffer.from('{"status":204,"headers":[]}'))).toEqual({
      status: 204,
      headers: {},
    });
  });

  it('gives {} for missing or null headers', () => {
    expect(decodeResponseContext(0, Buffer.from('{"status":200}'))).toEqual({ status: 200, headers: {} });
    expect(decodeResponseContext(0, Buffer.from('{"status":200,"headers":null}'))).toEqual({
      status: 200,
      headers: {},
    });
  });

  it('turns scalar header values into lists of strings', () => {
    const context = Buffer.from(
      '{"status":200,"headers":{"X-A":"one","X-N":5,"X-B":true,"X-L":[1,"two"],"X-Null":null}}',
    );
    expect(decodeResponseContext(FLAG_CODEC_JSON, context)).toEqual({
      status: 200,
      headers: { 'X-A': ['one'], 'X-N': ['5'], 'X-B': ['true'], 'X-L': ['1', 'two'] },
    });
  });

  it.each([
    ['not JSON', 'Fatal error: oops'],
    ['empty', ''],
    ['truncated JSON', '{"status":200,'],
  ])('rejects %s with BadContextError naming JSON', (_name, text) => {
    const error = caught(() => decodeResponseContext(FLAG_CODEC_JSON, Buffer.from(text)));
    expect(error).toBeInstanceOf(BadContextError);
    expect((error as BadContextError).code).toBe('WP_PROTOCOL_BAD_CONTEXT');
    expect((error as Error).message).toMatch(/JSON/);
  });

  it.each([
    ['no status', '{"headers":{}}'],
    ['string status', '{"status":"200"}'],
    ['fractional status', '{"status":200.5}'],
    ['null status', '{"status":null}'],
    ['JSON array', '[200]'],
    ['JSON null', 'null'],
    ['JSON number', '200'],
  ])('rejects %s with BadContextError', (_name, text) => {
    expect(() => decodeResponseContext(0, Buffer.from(text))).toThrow(BadContextError);
  });
});
