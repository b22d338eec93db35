// The params a request gets, as nginx's fastcgi_params sends them, and what a real php-cgi makes of
// them in $_SERVER / $_GET.
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readCgiResponse } from '../../src/fastcgi/cgi-response.js';
import { connectFastCgi } from '../../src/fastcgi/connect.js';
import { buildFastCgiParams, type FastCgiParamsInput } from '../../src/fastcgi/params.js';
import { FIXTURES, fixturePath, type PhpServer, startPhpCgi } from './php-servers.js';

const base: FastCgiParamsInput = {
  method: 'GET',
  scheme: 'https',
  requestUri: '/index.php/foo/bar?x=1&y=%20z',
  protocol: 'HTTP/1.1',
  headers: {
    host: 'example.com:8443',
    'user-agent': 'curl/8',
    accept: ['text/html', 'application/json'],
    cookie: ['a=1', 'b=2'],
    'x-forwarded-for': '10.0.0.1',
  },
  clientAddress: '::ffff:192.0.2.7',
  clientPort: 51000,
  serverAddress: '192.0.2.1',
  serverPort: 8443,
  documentRoot: FIXTURES,
  scriptName: '/server-vars.php',
  scriptFilename: fixturePath('server-vars.php'),
  pathInfo: '/foo/bar',
};

const asObject = (input: FastCgiParamsInput) =>
  Object.fromEntries(buildFastCgiParams(input).map(([n, v]) => [n, typeof v === 'string' ? v : v.toString('latin1')]));

describe('buildFastCgiParams', () => {
  it('writes the CGI variables as nginx fastcgi_params + SCRIPT_FILENAME do', () => {
    expect(asObject(base)).toEqual({
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_SOFTWARE: 'warmpool (nginx-compatible)',
      REQUEST_METHOD: 'GET',
      REQUEST_SCHEME: 'https',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REQUEST_URI: '/index.php/foo/bar?x=1&y=%20z',
      DOCUMENT_URI: '/server-vars.php/foo/bar',
      QUERY_STRING: 'x=1&y=%20z',
      DOCUMENT_ROOT: FIXTURES,
      SCRIPT_NAME: '/server-vars.php',
      SCRIPT_FILENAME: fixturePath('server-vars.php'),
      CONTENT_TYPE: '',
      CONTENT_LENGTH: '',
      SERVER_NAME: 'example.com',
      SERVER_ADDR: '192.0.2.1',
      SERVER_PORT: '8443',
      REMOTE_ADDR: '192.0.2.7',
      REMOTE_PORT: '51000',
      REMOTE_USER: '',
      REDIRECT_STATUS: '200',
      PATH_INFO: '/foo/bar',
      PATH_TRANSLATED: `${FIXTURES}/foo/bar`,
      HTTPS: 'on',
      HTTP_HOST: 'example.com:8443',
      HTTP_USER_AGENT: 'curl/8',
      HTTP_ACCEPT: 'text/html, application/json',
      HTTP_COOKIE: 'a=1; b=2',
      HTTP_X_FORWARDED_FOR: '10.0.0.1',
    });
  });

  it('sends an empty PATH_INFO (as Debian fastcgi-php.conf does), and no PATH_TRANSLATED or HTTPS, when there are none', () => {
    const params = asObject({ ...base, scheme: 'http', pathInfo: '', requestUri: '/' });
    // apps read it without isset(): a warning there is a 500 under Laravel's or Symfony's handler
    expect(params.PATH_INFO).toBe('');
    expect(params).not.toHaveProperty('PATH_TRANSLATED');
    expect(params).not.toHaveProperty('HTTPS');
    expect(params.QUERY_STRING).toBe('');
    expect(params.DOCUMENT_URI).toBe('/server-vars.php');
  });

  it('never sends HTTP_PROXY (httpoxy), nor headers with "_" or invalid names, nor pseudo-headers', () => {
    const params = asObject({
      ...base,
      headers: {
        proxy: 'http://evil.example:8080',
        x_forwarded_for: 'spoofed',
        'x-a.b': '1',
        ':authority': 'example.com',
        'x-ok-1': 'yes',
      },
    });
    expect(Object.keys(params).filter((n) => n.startsWith('HTTP_'))).toEqual(['HTTP_X_OK_1']);
  });

  it('takes content type and length from the headers, or from the input', () => {
    const fromHeaders = asObject({
      ...base,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': '12' },
    });
    expect([fromHeaders.CONTENT_TYPE, fromHeaders.CONTENT_LENGTH]).toEqual(['application/json', '12']);
    expect(fromHeaders.HTTP_CONTENT_TYPE).toBe('application/json'); // as nginx, both
    const given = asObject({ ...base, contentType: 'text/plain', contentLength: 0 });
    expect([given.CONTENT_TYPE, given.CONTENT_LENGTH]).toEqual(['text/plain', '0']);
  });

  it('uses the HTTP/2 :authority as Host when there is no Host header; keeps IPv6 brackets in SERVER_NAME', () => {
    const h2 = asObject({ ...base, protocol: 'HTTP/2.0', headers: {}, host: '[2001:db8::1]:8443' });
    expect([h2.HTTP_HOST, h2.SERVER_NAME]).toEqual(['[2001:db8::1]:8443', '[2001:db8::1]']);
    expect(asObject({ ...base, serverName: 'configured.example' }).SERVER_NAME).toBe('configured.example');
  });

  it("SERVER_NAME is the host as a site's hosts spell it: lower case, no trailing dot; HTTP_HOST stays as sent", () => {
    const odd = asObject({ ...base, headers: { host: 'Blog.Example.COM.:8080' } });
    expect([odd.SERVER_NAME, odd.HTTP_HOST]).toEqual(['blog.example.com', 'Blog.Example.COM.:8080']);
  });

  it('turns an absolute-form target into origin-form, and keeps the original query for a fallback script', () => {
    expect(asObject({ ...base, requestUri: 'http://example.com/a/b?c=d' }).REQUEST_URI).toBe('/a/b?c=d');
    const fallback = asObject({
      ...base,
      requestUri: '/blog/hello-world/?utm=x',
      scriptName: '/index.php',
      pathInfo: '',
      documentUri: '/index.php',
    });
    expect([fallback.REQUEST_URI, fallback.QUERY_STRING, fallback.DOCUMENT_URI]).toEqual([
      '/blog/hello-world/?utm=x',
      'utm=x',
      '/index.php',
    ]);
  });

  it('gives header bytes above 0x7f back as the bytes that came (Node hands them over as latin1)', () => {
    const params = buildFastCgiParams({ ...base, headers: { 'x-name': 'caf\u00e9' } });
    expect(params.find(([n]) => n === 'HTTP_X_NAME')![1]).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9]));
  });

  it('adds extra params last, replacing ours of the same name, each name once', () => {
    const params = buildFastCgiParams({ ...base, extra: { APP_ENV: 'prod', SERVER_NAME: 'override.example' } });
    const names = params.map(([n]) => n);
    expect(new Set(names).size).toBe(names.length);
    expect(Object.fromEntries(params)).toMatchObject({ APP_ENV: 'prod', SERVER_NAME: 'override.example' });
  });
});

describe('params as php-cgi reads them', () => {
  let php: PhpServer;
  beforeAll(async () => {
    php = await startPhpCgi({ children: 1 });
  });
  afterAll(async () => {
    await php?.stop();
  });

  it('gives PHP the $_SERVER and $_GET it expects behind nginx', async () => {
    const connection = await connectFastCgi(php.address);
    const call = connection.request({
      params: buildFastCgiParams({ ...base, headers: { ...base.headers, proxy: 'http://evil.example' } }),
    });
    const server = JSON.parse(await text((await readCgiResponse(call.stdout)).body));
    expect(server).toMatchObject({
      SCRIPT_NAME: '/server-vars.php',
      SCRIPT_FILENAME: fixturePath('server-vars.php'),
      PATH_INFO: '/foo/bar',
      PHP_SELF: '/server-vars.php/foo/bar',
      REQUEST_URI: '/index.php/foo/bar?x=1&y=%20z',
      QUERY_STRING: 'x=1&y=%20z',
      HTTPS: 'on',
      SERVER_NAME: 'example.com',
      SERVER_PORT: '8443',
      REMOTE_ADDR: '192.0.2.7',
      HTTP_HOST: 'example.com:8443',
      HTTP_COOKIE: 'a=1; b=2',
    });
    expect(server).not.toHaveProperty('HTTP_PROXY');
    connection.close();
  });
});
