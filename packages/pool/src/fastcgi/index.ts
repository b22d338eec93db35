// The `@warmpool/pool/fastcgi` subpath: classic mode's FastCGI client (records, CGI responses,
// connections, a connection pool to php-fpm, request params). Error classes are in the main entry.
export * from './records.js';
export { RecordDecoder, type RecordDecoderOptions } from './decoder.js';
export {
  CgiHeadParser,
  parseCgiHead,
  readCgiResponse,
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_HEADER_COUNT,
  type CgiHeadLimits,
  type CgiResponseHead,
  type ParsedCgiHead,
  type CgiResponse,
} from './cgi-response.js';
