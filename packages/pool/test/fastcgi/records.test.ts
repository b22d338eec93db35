// The record encoders, byte for byte against the FastCGI 1.0 specification (§3.3, §3.4, §5.1, §5.5,
// §8), and the limits php's fastcgi.c puts on what it reads.
import { describe, expect, it } from 'vitest';
import { FastCgiMalformedRecordError, FastCgiParamTooLargeError } from '../../src/errors.js';
import {
  decodeBeginRequest,
  decodeEndRequest,
  decodeGetValuesResult,
  decodeNameValuePairs,
  decodeUnknownType,
  encodeAbortRequest,
  encodeBeginRequest,
  encodeEndRequest,
  encodeGetValues,
  encodeNameValuePair,
  encodeParams,
  encodeRecord,
  encodeRecordHeader,
  encodeStreamRecords,
  encodeUnknownType,
  MAX_WRITE_CONTENT_BYTES,
  paddingFor,
  ProtocolStatus,
  RecordType,
  recordTypeName,
  Role,
} from '../../src/fastcgi/records.js';

const hex = (b: Buffer | Buffer[]) => (Array.isArray(b) ? Buffer.concat(b) : b).toString('hex');

describe('record header', () => {
  it('is version 1, type, big-endian request id and content length, padding, reserved', () => {
    expect(hex(encodeRecordHeader(RecordType.STDIN, 0x0102, 0x0304, 4))).toBe('0105010203040400');
  });

  it('pads content to a multiple of 8 by default', () => {
    expect([0, 1, 7, 8, 9, 65528].map(paddingFor)).toEqual([0, 7, 1, 0, 7, 0]);
    const record = encodeRecord(RecordType.STDOUT, 1, Buffer.from('abc'));
    expect(hex(record)).toBe(`0106000100030500${Buffer.from('abc').toString('hex')}0000000000`);
  });

  it('refuses a content length the 16-bit field cannot hold', () => {
    expect(() => encodeRecordHeader(RecordType.STDIN, 1, 65536)).toThrow(RangeError);
    expect(() => encodeRecordHeader(RecordType.STDIN, 1, -1)).toThrow(RangeError);
  });

  it('names types, known or not', () => {
    expect(recordTypeName(6)).toBe('STDOUT');
    expect(recordTypeName(42)).toBe('type 42');
  });
});

describe('fixed-size bodies', () => {
  it('BEGIN_REQUEST: role, FCGI_KEEP_CONN, five reserved bytes', () => {
    expect(hex(encodeBeginRequest(1))).toBe('0101000100080000' + '0001010000000000');
    expect(hex(encodeBeginRequest(7, { keepConn: false, role: Role.AUTHORIZER }))).toBe(
      '0101000700080000' + '0002000000000000',
    );
    expect(decodeBeginRequest(encodeBeginRequest(1).subarray(8))).toEqual({ role: 1, keepConn: true });
  });

  it('ABORT_REQUEST has no content', () => {
    expect(hex(encodeAbortRequest(1))).toBe('0102000100000000');
  });

  it('END_REQUEST: big-endian appStatus, protocolStatus, three reserved bytes', () => {
    const record = encodeEndRequest(1, 0xfffffffe, ProtocolStatus.OVERLOADED);
    expect(hex(record)).toBe('0103000100080000' + 'fffffffe02000000');
    expect(decodeEndRequest(record.subarray(8))).toEqual({ appStatus: 0xfffffffe, protocolStatus: 2 });
  });

  it('UNKNOWN_TYPE names the type it did not know, on request id 0', () => {
    const record = encodeUnknownType(42);
    expect(hex(record)).toBe('010b000000080000' + '2a00000000000000');
    expect(decodeUnknownType(record.subarray(8))).toBe(42);
  });

  it('refuses a fixed-size body of another length with a typed error', () => {
    expect(() => decodeEndRequest(Buffer.alloc(7))).toThrow(FastCgiMalformedRecordError);
    expect(() => decodeBeginRequest(Buffer.alloc(9))).toThrow(FastCgiMalformedRecordError);
  });
});

describe('name-value pairs', () => {
  it('uses one length byte below 128 and four (high bit set) from 128', () => {
    expect(hex(encodeNameValuePair('A', 'bc'))).toBe(`0102${Buffer.from('Abc').toString('hex')}`);
    const long = 'x'.repeat(128);
    const pair = encodeNameValuePair('N', long);
    expect(pair.subarray(0, 5).toString('hex')).toBe('0180000080');
    expect(pair.length).toBe(1 + 4 + 1 + 128);
    const longName = encodeNameValuePair('y'.repeat(300), '');
    expect(longName.subarray(0, 5).toString('hex')).toBe('800001' + '2c00');
  });

  it('127 still fits one byte, 128 does not', () => {
    expect(encodeNameValuePair('n', 'v'.repeat(127))[1]).toBe(127);
    expect(encodeNameValuePair('n', 'v'.repeat(128))[1]).toBe(0x80);
  });

  it('encodes strings as UTF-8 and bytes as they are', () => {
    const pair = encodeNameValuePair('SCRIPT_NAME', '/café.php');
    expect(decodeNameValuePairs(pair)[0]![1].toString('utf8')).toBe('/café.php');
    const raw = Buffer.from([0xe9, 0x00, 0xff]);
    expect(decodeNameValuePairs(encodeNameValuePair('HTTP_X', raw))[0]![1]).toEqual(raw);
  });

  it('refuses pairs whose lengths run past the content', () => {
    expect(() => decodeNameValuePairs(Buffer.from([5, 0, 0x41]))).toThrow(FastCgiMalformedRecordError);
    expect(() => decodeNameValuePairs(Buffer.from([0x80, 0, 0]))).toThrow(FastCgiMalformedRecordError);
    expect(() => decodeNameValuePairs(Buffer.from([1]))).toThrow(FastCgiMalformedRecordError);
  });
});

describe('PARAMS stream', () => {
  it('packs pairs into records and ends with an empty PARAMS record', () => {
    const wire = Buffer.concat(encodeParams(1, { A: '1', B: '2' }));
    // one record with both pairs (8 bytes of content, no padding), then the empty one
    expect(hex(wire)).toBe('0104000100080000' + '0101' + '4131' + '0101' + '4232' + '0104000100000000');
  });

  it('takes ordered pairs, and keeps repeated names in order', () => {
    const wire = Buffer.concat(
      encodeParams(1, [
        ['X', '1'],
        ['X', '2'],
      ]),
    );
    const pairs = decodeNameValuePairs(wire.subarray(8, 8 + wire.readUInt16BE(4)));
    expect(pairs.map(([n, v]) => `${n}=${v}`)).toEqual(['X=1', 'X=2']);
  });

  it('never splits a pair across records, and keeps each record within 65535 bytes with padding', () => {
    // php parses each PARAMS record on its own and refuses content + padding over 65535
    const params: [string, string][] = [];
    for (let i = 0; i < 40; i++) params.push([`HTTP_X_${i}`, 'v'.repeat(5000 + i)]);
    const wire = Buffer.concat(encodeParams(3, params));
    const seen: string[] = [];
    let offset = 0;
    let records = 0;
    while (offset < wire.length) {
      const length = wire.readUInt16BE(offset + 4);
      const padding = wire[offset + 6]!;
      expect(wire[offset + 1]).toBe(RecordType.PARAMS);
      expect(wire.readUInt16BE(offset + 2)).toBe(3);
      expect(length + padding).toBeLessThanOrEqual(65535);
      for (const [name] of decodeNameValuePairs(wire.subarray(offset + 8, offset + 8 + length))) {
        seen.push(name.toString());
      }
      offset += 8 + length + padding;
      records++;
    }
    expect(records).toBeGreaterThan(3);
    expect(seen).toEqual(params.map(([n]) => n));
  });

  it('refuses a pair that cannot fit one record, naming it', () => {
    expect(() => encodeParams(1, { HTTP_COOKIE: 'c'.repeat(MAX_WRITE_CONTENT_BYTES) })).toThrow(
      FastCgiParamTooLargeError,
    );
    expect(() => encodeParams(1, { HTTP_COOKIE: 'c'.repeat(MAX_WRITE_CONTENT_BYTES) })).toThrow(/HTTP_COOKIE/);
    // the largest pair that fits: 1 + 4 length bytes + name + value = 65528
    expect(() => encodeParams(1, { N: 'v'.repeat(MAX_WRITE_CONTENT_BYTES - 6) })).not.toThrow();
  });
});

describe('stream records', () => {
  it('slices data into 65528-byte records without copying it, padded to 8', () => {
    const data = Buffer.alloc(65528 * 2 + 3, 7);
    const parts = encodeStreamRecords(RecordType.STDIN, 1, data);
    // header, content, header, content, header, content, padding
    expect(parts).toHaveLength(7);
    expect(parts[1]!.buffer).toBe(data.buffer);
    expect(parts[0]!.readUInt16BE(4)).toBe(65528);
    expect(parts[4]!.readUInt16BE(4)).toBe(3);
    expect(parts[4]![6]).toBe(5);
    expect(parts[6]!.length).toBe(5);
  });

  it('gives no records for empty data (the end of a stream is an explicit empty record)', () => {
    expect(encodeStreamRecords(RecordType.STDIN, 1, Buffer.alloc(0))).toEqual([]);
    expect(hex(encodeRecord(RecordType.STDIN, 1))).toBe('0105000100000000');
  });
});

describe('GET_VALUES', () => {
  it('asks for the three management variables with empty values, on request id 0', () => {
    const record = encodeGetValues();
    expect(record[1]).toBe(RecordType.GET_VALUES);
    expect(record.readUInt16BE(2)).toBe(0);
    const pairs = decodeNameValuePairs(record.subarray(8, 8 + record.readUInt16BE(4)));
    expect(pairs.map(([n, v]) => [n.toString(), v.length])).toEqual([
      ['FCGI_MAX_CONNS', 0],
      ['FCGI_MAX_REQS', 0],
      ['FCGI_MPXS_CONNS', 0],
    ]);
  });

  it('reads a GET_VALUES_RESULT into a map', () => {
    const content = Buffer.concat([
      encodeNameValuePair('FCGI_MAX_CONNS', '5'),
      encodeNameValuePair('FCGI_MPXS_CONNS', '0'),
    ]);
    expect({ ...decodeGetValuesResult(content) }).toEqual({ FCGI_MAX_CONNS: '5', FCGI_MPXS_CONNS: '0' });
  });
});
