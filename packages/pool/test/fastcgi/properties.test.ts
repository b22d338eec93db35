// Property-based checks (fast-check): whatever the records and however the bytes are cut (split
// inside a header, inside padding, many records per read), the decoder gives back exactly what was
// encoded; name-value pairs and PARAMS streams round-trip with every length encoding.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RecordDecoder } from '../../src/fastcgi/decoder.js';
import { buildFastCgiParams, encodeFastCgiParams, type FastCgiParamsInput } from '../../src/fastcgi/params.js';
import {
  decodeNameValuePairs,
  encodeNameValuePair,
  encodeParams,
  encodeRecord,
  encodeStreamRecords,
  type FastCgiRecord,
  MAX_WRITE_CONTENT_BYTES,
  RecordType,
} from '../../src/fastcgi/records.js';

const FIXED = new Set<number>([RecordType.BEGIN_REQUEST, RecordType.END_REQUEST, RecordType.UNKNOWN_TYPE]);

const recordArb = (maxLength = 65_535) =>
  fc
    .record({
      type: fc.integer({ min: 0, max: 255 }),
      requestId: fc.integer({ min: 0, max: 0xffff }),
      // mostly small, sometimes up to the 16-bit maximum
      content: fc.oneof(
        { weight: 6, arbitrary: fc.uint8Array({ maxLength: Math.min(300, maxLength) }) },
        { weight: 1, arbitrary: fc.uint8Array({ minLength: Math.min(60_000, maxLength), maxLength }) },
      ),
      padding: fc.integer({ min: 0, max: 255 }),
    })
    // the fixed-size bodies are 8 bytes, as the decoder requires
    .map((r) =>
      FIXED.has(r.type) ? { ...r, content: Uint8Array.from({ length: 8 }, (_, i) => r.content[i] ?? 0) } : r,
    );

/** A record's content is valid only during onRecord: a consumer that keeps it copies it. */
const copied = (r: FastCgiRecord): FastCgiRecord => ({ ...r, content: Buffer.from(r.content) });

/**
 * Feeds `wire` to `decoder` in pieces whose sizes cycle through `cuts`, each read into the same
 * buffer, as a socket with an `onread` buffer does; once push() returns the buffer is scribbled
 * over (unless the decoder is held, when the caller must leave it alone until resume()), so a
 * decoder that kept a view of a chunk would deliver the scribble.
 */
function feed(decoder: RecordDecoder, wire: Buffer, cuts: number[]): void {
  const read = Buffer.alloc(Math.max(...cuts));
  let offset = 0;
  for (let i = 0; offset < wire.length; i++) {
    while (decoder.held) decoder.resume();
    const size = Math.min(cuts[i % cuts.length]!, wire.length - offset);
    wire.copy(read, 0, offset, offset + size);
    decoder.push(read.subarray(0, size));
    if (!decoder.held) read.fill(0xee);
    offset += size;
  }
}

describe('RecordDecoder properties', () => {
  it('decodes any sequence of records cut at any points', () => {
    fc.assert(
      fc.property(
        fc.array(recordArb(), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 9000 }), { minLength: 1, maxLength: 40 }),
        (records, cuts) => {
          const wire = Buffer.concat(
            records.map((r) => encodeRecord(r.type, r.requestId, Buffer.from(r.content), r.padding)),
          );
          const got: FastCgiRecord[] = [];
          const decoder = new RecordDecoder((record) => void got.push(copied(record)));
          feed(decoder, wire, cuts);
          expect(got).toHaveLength(records.length);
          got.forEach((record, i) => {
            const r = records[i]!;
            expect(record.type).toBe(r.type);
            expect(record.requestId).toBe(r.requestId);
            expect(Buffer.compare(record.content, Buffer.from(r.content))).toBe(0);
          });
          expect(decoder.pendingBytes).toBe(0);
        },
      ),
      { numRuns: 120 },
    );
  });

  it('delivers the same records when the consumer pauses after any of them', () => {
    fc.assert(
      fc.property(
        fc.array(recordArb(300), { minLength: 1, maxLength: 8 }),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 10 }),
        (records, pauses, cuts) => {
          const wire = Buffer.concat(
            records.map((r) => encodeRecord(r.type, r.requestId, Buffer.from(r.content), r.padding)),
          );
          const got: FastCgiRecord[] = [];
          const decoder = new RecordDecoder((record) => {
            got.push(copied(record));
            return pauses[got.length % pauses.length];
          });
          feed(decoder, wire, cuts);
          while (decoder.held) decoder.resume();
          expect(got.map((r) => Buffer.from(r.content).toString('hex'))).toEqual(
            records.map((r) => Buffer.from(r.content).toString('hex')),
          );
        },
      ),
      { numRuns: 150 },
    );
  });

  it('reassembles a stream of any size sent as records, cut at any points', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200_000 }),
        fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 20 }),
        (data, cuts) => {
          const wire = Buffer.concat([
            ...encodeStreamRecords(RecordType.STDOUT, 1, Buffer.from(data)),
            encodeRecord(RecordType.STDOUT, 1),
          ]);
          const parts: Buffer[] = [];
          let ended = false;
          const decoder = new RecordDecoder((record) => {
            if (record.content.length === 0) ended = true;
            else parts.push(Buffer.from(record.content));
          });
          feed(decoder, wire, cuts);
          expect(ended).toBe(true);
          expect(Buffer.compare(Buffer.concat(parts), Buffer.from(data))).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('never throws anything but a typed FastCGI error on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 300 }), (bytes) => {
        const decoder = new RecordDecoder(() => {}, { maxContentBytes: 64 });
        try {
          decoder.push(Buffer.from(bytes));
        } catch (error) {
          expect((error as { code?: string }).code).toMatch(/^WP_FASTCGI_(MALFORMED_RECORD|RECORD_TOO_LARGE)$/);
        }
      }),
      { numRuns: 500 },
    );
  });
});

const nameArb = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.string({ minLength: 120, maxLength: 400 }), // around and over the 128-byte switch to 4-byte lengths
);

describe('name-value pair properties', () => {
  it('round-trips any pairs, with 1- and 4-byte lengths', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(nameArb, nameArb), { maxLength: 20 }), (pairs) => {
        const content = Buffer.concat(pairs.map(([n, v]) => encodeNameValuePair(n, v)));
        const back = decodeNameValuePairs(content).map(([n, v]) => [n.toString('utf8'), v.toString('utf8')]);
        expect(back).toEqual(pairs);
      }),
      { numRuns: 300 },
    );
  });

  it('a PARAMS stream of any pairs decodes to the same pairs, each record within php limits', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.stringMatching(/^[A-Z_]{1,30}$/), fc.string({ maxLength: 20_000 })), { maxLength: 30 }),
        fc.array(fc.integer({ min: 1, max: 5000 }), { minLength: 1, maxLength: 10 }),
        (pairs, cuts) => {
          const wire = Buffer.concat(encodeParams(1, pairs));
          const back: [string, string][] = [];
          let ended = 0;
          const decoder = new RecordDecoder((record) => {
            expect(record.type).toBe(RecordType.PARAMS);
            expect(record.content.length).toBeLessThanOrEqual(MAX_WRITE_CONTENT_BYTES);
            if (record.content.length === 0) ended++;
            for (const [n, v] of decodeNameValuePairs(record.content)) back.push([n.toString(), v.toString()]);
          });
          feed(decoder, wire, cuts);
          expect(ended).toBe(1);
          expect(back).toEqual(pairs);
        },
      ),
      { numRuns: 100 },
    );
  });
});

// Header names as clients send them: valid ones in any case (two that differ only by case make the
// same HTTP_* name), with "_", invalid bytes, pseudo-headers, and Proxy (httpoxy).
const headerNameArb = fc.oneof(
  fc.constantFrom(
    'Host',
    'host',
    'Cookie',
    'cookie',
    'Content-Type',
    'Content-Length',
    'Proxy',
    'X-A',
    'x-a',
    ':authority',
  ),
  fc.stringMatching(/^[A-Za-z0-9-]{1,12}$/),
  fc.stringMatching(/^[A-Za-z_]{1,6}$/),
  fc.string({ maxLength: 8 }),
);
// Values: ASCII, latin1 bytes (Node's header strings), any Unicode, and long ones (4-byte lengths,
// records over 64 KiB).
const textArb = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 140 }) },
  { weight: 1, arbitrary: fc.string({ minLength: 100, maxLength: 300 }).map((s) => `é${s}`) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom('a', 'b', 'é'), minLength: 5_000, maxLength: 40_000 }) },
);
const inputArb: fc.Arbitrary<FastCgiParamsInput> = fc.record(
  {
    method: fc.constantFrom('GET', 'POST', 'PÜT'),
    scheme: fc.constantFrom('http' as const, 'https' as const),
    requestUri: fc.oneof(textArb, fc.constant('http://example.com/a?b=c'), fc.constant('/x.php?q=1')),
    protocol: fc.constantFrom('HTTP/1.1', 'HTTP/2.0'),
    headers: fc.dictionary(headerNameArb, fc.oneof(textArb, fc.array(textArb, { maxLength: 3 })), { maxKeys: 12 }),
    host: textArb,
    clientAddress: fc.constantFrom('::ffff:127.0.0.1', '::1', '192.0.2.7'),
    clientPort: fc.option(fc.integer({ min: 0, max: 65535 })),
    serverAddress: fc.option(fc.constantFrom('127.0.0.1', '::ffff:10.0.0.1')),
    serverPort: fc.option(fc.integer({ min: 0, max: 65535 })),
    serverName: textArb,
    documentRoot: textArb,
    scriptName: textArb,
    scriptFilename: textArb,
    pathInfo: fc.oneof(fc.constant(''), textArb),
    documentUri: textArb,
    queryString: textArb,
    contentType: textArb,
    contentLength: fc.integer({ min: 0, max: 1e9 }),
    serverSoftware: textArb,
    extra: fc.dictionary(
      fc.oneof(
        fc.constantFrom('SERVER_NAME', 'APP_ENV', 'HTTP_HOST', 'PATH_INFO', 'HTTP_X_A'),
        fc.stringMatching(/^[A-Z_]{1,10}$/),
      ),
      textArb,
      { maxKeys: 4 },
    ),
    headerText: fc.constantFrom('latin1' as const, 'utf8' as const),
  },
  {
    requiredKeys: [
      'method',
      'scheme',
      'requestUri',
      'protocol',
      'headers',
      'clientAddress',
      'clientPort',
      'serverAddress',
      'serverPort',
      'documentRoot',
      'scriptName',
      'scriptFilename',
    ],
  },
);

describe('params encoded in one pass', () => {
  it('encodeFastCgiParams gives the bytes of buildFastCgiParams + encodeParams, for any request', () => {
    fc.assert(
      fc.property(inputArb, (input) => {
        const expected = Buffer.concat(encodeParams(1, buildFastCgiParams(input)));
        expect(Buffer.concat(encodeParams(1, encodeFastCgiParams(input)))).toEqual(expected);
      }),
      { numRuns: 150 },
    );
  });
});
