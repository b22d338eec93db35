import { describe, expect, it } from 'vitest';
import { FastCgiMalformedRecordError, FastCgiRecordTooLargeError } from '../../src/errors.js';
import { RecordDecoder } from '../../src/fastcgi/decoder.js';
import {
  encodeEndRequest,
  encodeRecord,
  encodeRecordHeader,
  type FastCgiRecord,
  RecordType,
} from '../../src/fastcgi/records.js';

function collect(options?: { maxContentBytes?: number }) {
  const records: FastCgiRecord[] = [];
  // a record's content is valid only during onRecord (it may be a view of the decoder's own buffer)
  const decoder = new RecordDecoder((record) => void records.push(copied(record)), options);
  return { decoder, records };
}

const copied = (r: FastCgiRecord): FastCgiRecord => ({ ...r, content: Buffer.from(r.content) });

const plain = (r: FastCgiRecord) => ({ type: r.type, requestId: r.requestId, content: r.content.toString('latin1') });

describe('RecordDecoder', () => {
  it('decodes a record in one chunk as a view of it, padding dropped', () => {
    const { decoder, records } = collect();
    const wire = encodeRecord(RecordType.STDOUT, 1, Buffer.from('hello'));
    decoder.push(wire);
    expect(records.map(plain)).toEqual([{ type: RecordType.STDOUT, requestId: 1, content: 'hello' }]);
    const views: Buffer[] = [];
    new RecordDecoder((record) => void views.push(record.content)).push(wire);
    expect(views[0]!.buffer).toBe(wire.buffer);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('decodes a record delivered one byte at a time', () => {
    const { decoder, records } = collect();
    const wire = Buffer.concat([encodeRecord(RecordType.STDOUT, 1, Buffer.from('abc')), encodeEndRequest(1, 0, 0)]);
    for (const byte of wire) decoder.push(Buffer.from([byte]));
    expect(records.map(plain)).toEqual([
      { type: RecordType.STDOUT, requestId: 1, content: 'abc' },
      { type: RecordType.END_REQUEST, requestId: 1, content: '\0\0\0\0\0\0\0\0' },
    ]);
  });

  it('decodes content length 0 and records made only of padding', () => {
    const { decoder, records } = collect();
    decoder.push(encodeRecord(RecordType.STDOUT, 1));
    decoder.push(encodeRecord(RecordType.STDERR, 1, Buffer.alloc(0), 255));
    expect(records.map(plain)).toEqual([
      { type: RecordType.STDOUT, requestId: 1, content: '' },
      { type: RecordType.STDERR, requestId: 1, content: '' },
    ]);
    expect(decoder.pendingBytes).toBe(0);
  });

  it('decodes a full 65535-byte record with 255 bytes of padding, split across chunks', () => {
    const { decoder, records } = collect();
    const content = Buffer.alloc(65535, 0x61);
    const wire = encodeRecord(RecordType.STDOUT, 9, content, 255);
    decoder.push(wire.subarray(0, 3));
    decoder.push(wire.subarray(3, 40_000));
    expect(records).toHaveLength(0);
    decoder.push(wire.subarray(40_000, wire.length - 1));
    expect(records).toHaveLength(0); // one padding byte still missing
    decoder.push(wire.subarray(wire.length - 1));
    expect(records).toHaveLength(1);
    expect(records[0]!.content.equals(content)).toBe(true);
  });

  it('passes unknown types on (the caller decides), with their request id', () => {
    const { decoder, records } = collect();
    decoder.push(encodeRecord(200, 0, Buffer.from('x')));
    expect(records.map(plain)).toEqual([{ type: 200, requestId: 0, content: 'x' }]);
  });

  it('refuses a record over maxContentBytes before buffering its content', () => {
    const { decoder, records } = collect({ maxContentBytes: 1024 });
    expect(() => decoder.push(encodeRecordHeader(RecordType.STDOUT, 1, 1025))).toThrow(FastCgiRecordTooLargeError);
    expect(records).toHaveLength(0);
    // and stays failed: the stream cannot be resynchronised
    expect(() => decoder.push(encodeRecord(RecordType.STDOUT, 1))).toThrow(FastCgiRecordTooLargeError);
    expect(() => new RecordDecoder(() => {}, { maxContentBytes: 65536 })).toThrow(RangeError);
  });

  it('refuses a wrong version, naming HTTP when a web server answered', () => {
    const { decoder } = collect();
    expect(() => decoder.push(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'))).toThrow(FastCgiMalformedRecordError);
    const again = collect();
    try {
      again.decoder.push(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
    } catch (error) {
      expect((error as Error).message).toMatch(/"HTTP\/1\.1 400 Bad Request\\r\\n\\r\\n".*web server/);
    }
    expect(() => collect().decoder.push(Buffer.from([2, 6, 0, 1, 0, 0, 0, 0]))).toThrow(/not a FastCGI record/);
  });

  it('refuses END_REQUEST, BEGIN_REQUEST and UNKNOWN_TYPE bodies that are not 8 bytes', () => {
    for (const type of [RecordType.END_REQUEST, RecordType.BEGIN_REQUEST, RecordType.UNKNOWN_TYPE]) {
      expect(() => collect().decoder.push(encodeRecord(type, 1, Buffer.alloc(4)))).toThrow(FastCgiMalformedRecordError);
    }
  });

  it('holds records while onRecord returns false, and delivers them on resume()', () => {
    const records: FastCgiRecord[] = [];
    let open = false;
    const decoder = new RecordDecoder((record) => {
      records.push(copied(record));
      return open;
    });
    const wire = Buffer.concat([1, 2, 3].map((n) => encodeRecord(RecordType.STDOUT, 1, Buffer.from(String(n)))));
    decoder.push(wire);
    expect(records.map((r) => r.content.toString())).toEqual(['1']);
    expect(decoder.held).toBe(true);
    decoder.push(encodeRecord(RecordType.STDOUT, 1, Buffer.from('4')));
    expect(records).toHaveLength(1);
    open = true;
    decoder.resume();
    expect(records.map((r) => r.content.toString())).toEqual(['1', '2', '3', '4']);
    expect(decoder.pendingBytes).toBe(0);
    expect(decoder.recordsSeen).toBe(4);
  });
});
