// Property-based checks (fast-check): whatever the frames and however the bytes are cut, the
// decoder gives back exactly what was encoded; HTTP contexts survive a protobuf (and JSON) round trip,
// names such as __proto__ included.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FrameDecoder } from '../../src/protocol/decoder.js';
import {
  encodeDataFrame,
  encodeFrame,
  FLAG_CODEC_JSON,
  FLAG_CODEC_PROTO,
  type Frame,
} from '../../src/protocol/frame.js';
import {
  decodeProtoRequest,
  decodeResponseContext,
  encodeProtoRequest,
  encodeProtoResponse,
  type HttpRequestContext,
} from '../../src/protocol/http-context.js';

const frameArb = fc.record({
  flags: fc.integer({ min: 0, max: 255 }),
  control: fc.integer({ min: 0, max: 15 }),
  data: fc.boolean(),
  context: fc.uint8Array({ maxLength: 300 }),
  body: fc.uint8Array({ maxLength: 70_000 }),
});

describe('FrameDecoder properties', () => {
  it('decodes any sequence of frames cut at any points', () => {
    fc.assert(
      fc.property(
        fc.array(frameArb, { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 40 }),
        (frames, cuts) => {
          const wire = Buffer.concat(
            frames.flatMap((f) =>
              f.data
                ? encodeDataFrame(f.flags, Buffer.from(f.context), Buffer.from(f.body), f.control)
                : [encodeFrame(f.flags, Buffer.from(f.body), f.control)],
            ),
          );
          const got: Frame[] = [];
          const decoder = new FrameDecoder((frame) => void got.push(frame));
          let offset = 0;
          for (let i = 0; offset < wire.length; i++) {
            const size = cuts[i % cuts.length]!;
            decoder.push(wire.subarray(offset, offset + size));
            offset += size;
          }
          expect(got).toHaveLength(frames.length);
          got.forEach((frame, i) => {
            const f = frames[i]!;
            expect(frame.flags).toBe(f.flags);
            expect(frame.control).toBe(f.control);
            if (f.data) {
              expect(frame.options).toEqual([f.context.length]);
              expect(Buffer.compare(frame.payload, Buffer.concat([Buffer.from(f.context), Buffer.from(f.body)]))).toBe(
                0,
              );
            } else {
              expect(frame.options).toEqual([]);
              expect(Buffer.compare(frame.payload, Buffer.from(f.body))).toBe(0);
            }
          });
          expect(decoder.pendingBytes).toBe(0);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('never throws anything but a typed ProtocolError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 200 }), (bytes) => {
        const decoder = new FrameDecoder(() => {}, { maxFrameBytes: 1024 });
        try {
          decoder.push(Buffer.from(bytes));
        } catch (error) {
          expect((error as { code?: string }).code).toMatch(/^WP_PROTOCOL_/);
        }
      }),
      { numRuns: 500 },
    );
  });
});

const text = fc.string({ unit: 'grapheme', maxLength: 40 });
// Names that are also Object.prototype members: in a map that is not null-prototype, "__proto__"
// would replace the map's prototype instead of being a key, and the round trips below would lose it.
const hostileName = fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty');
const headerName = fc.oneof(fc.stringMatching(/^[A-Z][a-z]{0,8}(-[A-Z][a-z]{0,8}){0,2}$/), hostileName);
const headerMap = fc.dictionary(headerName, fc.array(text, { minLength: 1, maxLength: 3 }), { maxKeys: 8 });

describe('HTTP request context properties', () => {
  it('round-trips through protobuf http.v1 (headers, cookies, query, unicode, uploads, attributes)', () => {
    fc.assert(
      fc.property(
        fc.record({
          remoteAddr: fc.oneof(fc.ipV4(), fc.ipV6()),
          protocol: fc.constantFrom('HTTP/1.0', 'HTTP/1.1', 'HTTP/2.0'),
          method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH'),
          uri: fc.webUrl({ withQueryParameters: true }),
          headers: headerMap,
          cookies: fc.dictionary(fc.oneof(fc.stringMatching(/^[a-z_]{1,10}$/), hostileName), text, { maxKeys: 5 }),
          rawQuery: fc.string({ maxLength: 60 }),
          parsed: fc.boolean(),
          uploads: fc.option(
            fc.dictionary(
              fc.stringMatching(/^[a-z]{1,6}$/),
              fc.record({ name: text, size: fc.nat(), error: fc.nat(8) }),
            ),
            { nil: null },
          ),
          attributes: fc.option(headerMap, { nil: null }),
        }),
        (ctx: HttpRequestContext) => {
          const back = decodeProtoRequest(encodeProtoRequest(ctx));
          expect(back.remoteAddr).toBe(ctx.remoteAddr);
          expect(back.uri).toBe(ctx.uri);
          expect(back.rawQuery).toBe(ctx.rawQuery);
          expect(back.headers).toEqual(ctx.headers);
          expect(back.cookies).toEqual(ctx.cookies);
          expect(back.parsed).toBe(ctx.parsed);
          // proto3 omits empty maps: an empty upload tree or attribute map comes back absent
          expect(back.uploads).toEqual(
            ctx.uploads === null || Object.keys(ctx.uploads as object).length === 0
              ? ctx.uploads === null
                ? null
                : {}
              : ctx.uploads,
          );
          expect(back.attributes ?? {}).toEqual(ctx.attributes ?? {});
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('HTTP response context properties', () => {
  it('round-trips through protobuf http.v1 and JSON (any status, any headers, __proto__ included)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 100, max: 599 }), headerMap, (status, headers) => {
        expect(decodeResponseContext(FLAG_CODEC_PROTO, encodeProtoResponse({ status, headers }))).toEqual({
          status,
          headers,
        });
        expect(decodeResponseContext(FLAG_CODEC_JSON, Buffer.from(JSON.stringify({ status, headers })))).toEqual({
          status,
          headers,
        });
      }),
      { numRuns: 300 },
    );
  });
});
