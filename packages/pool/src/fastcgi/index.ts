// The `@warmpool/pool/fastcgi` subpath: classic mode's FastCGI client (records, CGI responses,
// connections, a connection pool to php-fpm, request params). Error classes are in the main entry.
export * from './records.js';
export { RecordDecoder, type RecordDecoderOptions } from './decoder.js';
export {
  CgiHeadParser,
  parseCgiHead,
  readCgiResponse,
  CgiResponseReader,
  DEFAULT_MAX_HEADER_BYTES,
  DEFAULT_MAX_HEADER_COUNT,
  type CgiHeadLimits,
  type CgiResponseHead,
  type ParsedCgiHead,
  type CgiResponse,
  type CgiReadOptions,
  type CgiResult,
} from './cgi-response.js';
export { parseFastCgiAddress, formatFastCgiAddress, type FastCgiAddress } from './address.js';
export { connectFastCgi, getFastCgiValues, DEFAULT_CONNECT_TIMEOUT_MS, type FastCgiConnectOptions } from './connect.js';
export { MAX_STDERR_LINE_BYTES } from './stderr-lines.js';
export {
  FastCgiConnection,
  DEFAULT_READ_TIMEOUT_MS,
  DEFAULT_ABORT_TIMEOUT_MS,
  DEFAULT_STDOUT_HIGH_WATER_MARK,
  type FastCgiBody,
  type FastCgiCall,
  type FastCgiRun,
  type StdoutSink,
  type StdoutControl,
  type FastCgiConnectionEvents,
  type FastCgiConnectionState,
  type FastCgiRequestOptions,
} from './connection.js';
export {
  createFastCgiClientPool,
  FastCgiClientPool,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_MAX_QUEUE,
  DEFAULT_QUEUE_TIMEOUT_MS,
  DEFAULT_IDLE_TIMEOUT_MS,
  type FastCgiClientPoolOptions,
  type FastCgiClientPoolEvents,
  type FastCgiPoolRequest,
  type FastCgiPoolStats,
  type FastCgiResponse,
} from './client-pool.js';
export {
  buildFastCgiParams,
  encodeFastCgiParams,
  EncodedParams,
  type FastCgiParamsInput,
  type FastCgiParamList,
} from './params.js';
