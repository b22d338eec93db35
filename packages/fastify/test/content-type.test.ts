import { once } from 'node:events';
import { connect as connectHttp2 } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectContentType, forbidsContent, impliedContentType } from '../src/http/content-type.js';
import { warmpool } from '../src/index.js';

const fixture = fileURLToPath(new URL('../../../test/fixtures/php/untyped-reply.php', import.meta.url));

describe('detectContentType (Go net/http DetectContentType)', () => {
  // Go's own sniff_test.go cases
  const cases: Array<[string, string, string]> = [
    ['binary', '\x01\x02\x03', 'application/octet-stream'],
    ['HTML, mixed case', '<HtMl><bOdY>blah blah blah</body></html>', 'text/html; charset=utf-8'],
    ['HTML', '<HTML></HTML>', 'text/html; charset=utf-8'],
    ['HTML after whitespace', '   <!DOCTYPE HTML>...', 'text/html; charset=utf-8'],
    ['HTML after CRLF', '\r\n<html>...', 'text/html; charset=utf-8'],
    ['a tag needs a space or > after it', '<htmlx>', 'text/plain; charset=utf-8'],
    ['comment', '<!-- x -->', 'text/html; charset=utf-8'],
    ['plain text', 'This is not HTML. It has \xe2\x98\x83 (a snowman, UTF-8) though.', 'text/plain; charset=utf-8'],
    ['XML', '\n<?xml!', 'text/xml; charset=utf-8'],
    ['icon', '\x00\x00\x01\x00', 'image/x-icon'],
    ['cursor', '\x00\x00\x02\x00', 'image/x-icon'],
    ['BMP', 'BM...', 'image/bmp'],
    ['GIF87a', 'GIF87a', 'image/gif'],
    ['GIF89a', 'GIF89a...', 'image/gif'],
    ['WebP', 'RIFF\x00\x00\x00\x00WEBPVP', 'image/webp'],
    ['PNG', '\x89PNG\x0D\x0A\x1A\x0A', 'image/png'],
    ['JPEG', '\xFF\xD8\xFF', 'image/jpeg'],
    ['MIDI', 'MThd\x00\x00\x00\x06\x00\x01', 'audio/midi'],
    ['MP3', 'ID3\x03\x00\x00\x00\x00\x0f', 'audio/mpeg'],
    ['WAV', 'RIFFb\xb8\x00\x00WAVEfmt \x12\x00\x00\x00\x06', 'audio/wave'],
    ['AIFF', 'FORM\x00\x00\x00\x00AIFFCOMM\x00\x00\x00\x12\x00\x01', 'audio/aiff'],
    ['Ogg', 'OggS\x00\x02\x00\x00', 'application/ogg'],
    ['not Ogg', 'oggS\x00', 'application/octet-stream'],
    ['MP4', '\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom<\x06t\xbfmdat', 'video/mp4'],
    ['AVI', 'RIFF,O\n\x00AVI LIST\xc0', 'video/avi'],
    ['WebM', '\x1A\x45\xDF\xA3', 'video/webm'],
    ['TTF', '\x00\x01\x00\x00\x00\x17\x01\x00\x00\x04\x01\x60\x4f', 'font/ttf'],
    ['OTF', 'OTTO\x00\x0e\x00\x80', 'font/otf'],
    ['WOFF', 'wOFF\x00\x01\x00\x00', 'font/woff'],
    ['WOFF2', 'wOF2\x00\x01\x00\x00\x00', 'font/woff2'],
    ['EOT', `${'\x00'.repeat(34)}LP`, 'application/vnd.ms-fontobject'],
    ['wasm', '\x00\x61\x73\x6d\x01\x00', 'application/wasm'],
    ['RAR 1.5', 'Rar!\x1A\x07\x00', 'application/x-rar-compressed'],
    ['RAR 5', 'Rar!\x1A\x07\x01\x00', 'application/x-rar-compressed'],
    ['not RAR', 'Rar \x1A\x07\x00', 'application/octet-stream'],
    ['gzip', '\x1f\x8b\x08\x00', 'application/x-gzip'],
    ['zip', 'PK\x03\x04', 'application/zip'],
    ['PDF', '%PDF-1.7', 'application/pdf'],
    ['UTF-8 BOM', '\xef\xbb\xbfhello', 'text/plain; charset=utf-8'],
    ['UTF-16LE BOM', '\xff\xfeh\x00', 'text/plain; charset=utf-16le'],
  ];
  for (const [name, data, type] of cases) {
    it(name, () => expect(detectContentType(Buffer.from(data, 'latin1'))).toBe(type));
  }

  it('looks at the first 512 bytes only', () => {
    const text = Buffer.concat([Buffer.alloc(512, 'a'), Buffer.from([0x01])]);
    expect(detectContentType(text)).toBe('text/plain; charset=utf-8');
  });
});

describe('impliedContentType and forbidsContent', () => {
  const none = () => false;
  it('sniffs a non-empty body of a reply without Content-Type or Content-Encoding; chunks are joined', () => {
    expect(impliedContentType(200, none, [Buffer.from('<ht'), Buffer.from('ml>')])).toBe('text/html; charset=utf-8');
    expect(impliedContentType(200, none, Buffer.alloc(0))).toBeNull();
    expect(impliedContentType(200, (n) => n === 'content-type', Buffer.from('<html>'))).toBeNull();
    expect(impliedContentType(200, (n) => n === 'content-encoding', Buffer.from('<html>'))).toBeNull();
    expect(impliedContentType(304, none, Buffer.from('<html>'))).toBeNull();
  });
  it('1xx, 204, 205 and 304 carry no content', () => {
    expect([100, 103, 204, 205, 304].map(forbidsContent)).toEqual([true, true, true, true, true]);
    expect([200, 201, 206, 301, 404].map(forbidsContent)).toEqual([false, false, false, false, false]);
  });
});

describe('PHP replies without Content-Type, on the wire', () => {
  let app: FastifyInstance;
  let base: string;
  beforeAll(async () => {
    app = Fastify();
    await app.register(warmpool, { command: ['php', fixture], pool: { num_workers: 1 } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  afterAll(() => app.close());

  async function get(query: string) {
    const res = await request(`${base}/?${query}`);
    return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
  }

  it('an HTML page is text/html, as RoadRunner sends it (not a download)', async () => {
    const res = await get('kind=html');
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.body).toContain('<title>hi</title>');
  });

  it('text, PNG and JSON bodies get what Go sniffs', async () => {
    expect((await get('kind=text')).headers['content-type']).toBe('text/plain; charset=utf-8');
    expect((await get('kind=png')).headers['content-type']).toBe('image/png');
    expect((await get('kind=json')).headers['content-type']).toBe('text/plain; charset=utf-8');
  });

  it('a streamed reply is not sniffed (its first bytes come after the headers) and is not called octet-stream', async () => {
    const res = await get('kind=html&stream=1');
    expect(res.headers['content-type']).toBeUndefined();
    expect(res.body).toContain('</html>');
  });

  it('an empty body gets no Content-Type', async () => {
    const res = await get('kind=empty');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBeUndefined();
    expect(res.headers['content-length']).toBe('0');
  });

  it('a 304 carries neither Content-Type nor Content-Length, even when PHP set a length and a body', async () => {
    const res = await get('kind=html&status=304&length=1&etag=%22v1%22');
    expect(res.status).toBe(304);
    expect(res.headers['content-type']).toBeUndefined();
    expect(res.headers['content-length']).toBeUndefined();
    expect(res.headers.etag).toBe('"v1"');
    expect(res.body).toBe('');
  });

  it('a 204 carries neither Content-Type nor Content-Length', async () => {
    const res = await get('kind=text&status=204&length=1');
    expect(res.status).toBe(204);
    expect(res.headers['content-type']).toBeUndefined();
    expect(res.headers['content-length']).toBeUndefined();
  });

  it('a 205 with a body: no content, "Content-Length: 0" on HTTP/1.1, and an answer on HTTP/2 (before: its stream reset)', async () => {
    const res = await get('kind=text&status=205');
    expect([res.status, res.headers['content-length'], res.headers['content-type'], res.body]).toEqual([
      205,
      '0',
      undefined,
      '',
    ]);
    const h2 = Fastify({ http2: true });
    try {
      await h2.register(warmpool, { command: ['php', fixture], pool: { num_workers: 1 } });
      await h2.listen({ port: 0, host: '127.0.0.1' });
      const session = connectHttp2(`http://127.0.0.1:${(h2.server.address() as AddressInfo).port}`);
      try {
        for (const query of ['kind=text&status=205', 'kind=html&status=205&stream=1', 'kind=text']) {
          const stream = session.request({ ':path': `/?${query}` });
          const [headers] = (await once(stream, 'response')) as [Record<string, string | number>];
          let body = '';
          for await (const chunk of stream) body += chunk;
          expect([headers[':status'], body === '' ? '' : 'a body'], query).toEqual(
            query === 'kind=text' ? [200, 'a body'] : [205, ''],
          );
        }
      } finally {
        session.close();
      }
    } finally {
      await h2.close();
    }
  });

  it('a 304 from a streamed reply ends the stream and sends no content headers', async () => {
    const res = await get('kind=html&status=304&stream=1');
    expect(res.status).toBe(304);
    expect(res.headers['content-type']).toBeUndefined();
    // the worker is free again
    expect((await get('kind=text')).status).toBe(200);
  });
});
