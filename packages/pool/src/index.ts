// @warmpool/pool: a warm pool of PHP workers speaking the RoadRunner worker protocol.
export { createPool, Pool, type AnyPool, type PoolExecOptions } from './pool/pool.js';
export { createCgiPool, CgiDriver, type CgiDriverOptions } from './worker/cgi-driver.js';
export { commandProblem } from './worker/command-check.js';
export { parseCommand, buildCgiEnv } from './worker/command.js';
export type { CgiReply, CgiRequest } from './worker/cgi-worker.js';
export type { ExecOptions, PoolWorker, WorkerDriver, WorkerHooks } from './worker/pool-worker.js';
export { Chunks, JOIN_MAX_BYTES, partsLength } from './chunks.js';
export { FileBody, FILE_BODY_READ_BYTES } from './file-body.js';
export { Cancellation, type CancelSignal } from './cancel.js';
export type { Codec } from './protocol/http-context.js';
export type {
  Exchange,
  ExchangeOptions,
  ExchangeRequest,
  ExchangeResponse,
  ExchangeScript,
  HeaderMap,
  ParsedForm,
} from './exchange/exchange.js';
export {
  FastCgiExchange,
  DEFAULT_BUFFER_BYTES,
  toParams as toFastCgiParams,
  type FastCgiBackend,
  type FastCgiExchangeOptions,
} from './exchange/fastcgi-exchange.js';
export { WorkerExchange, parseCookies, toExecRequest, toRequestContext } from './exchange/worker-exchange.js';
export {
  resolvePoolOptions,
  parseDuration,
  DEFAULT_ALLOCATE_TIMEOUT_MS,
  DEFAULT_DESTROY_TIMEOUT_MS,
  DEFAULT_RESET_TIMEOUT_MS,
  DEFAULT_STREAM_TIMEOUT_MS,
  DEFAULT_WATCH_TICK_MS,
  DEFAULT_SLOWLOG_TIMEOUT_MS,
  QUEUE_PER_WORKER,
  DEFAULT_HEADROOM,
  DEFAULT_SEND_TIMEOUT_MS,
  POOL_OPTION_RANGES,
  type Duration,
  type PoolOptions,
  type ResolvedPoolOptions,
  type SupervisorOptions,
} from './options.js';
export * from './errors.js';
export type { Logger } from './logger.js';
export { SILENT_LOGGER, ThrottledCount } from './logger.js';
export { isEventStream, isUnbuffered, streamsOnPurpose } from './streamed-on-purpose.js';
export { headerTextFromBytes, headerWireValue, markKeptBytes } from './protocol/header-fields.js';
export type { PoolStats, PoolEvents, WorkerInfo } from './stats.js';
export type { WorkerState, RecycleReason } from './worker/state.js';
export { WORKER_STATES, RECYCLE_REASONS } from './worker/state.js';
export type { ExecReply, ExecRequest, ReplyStream } from './worker/worker.js';
export type { RelaySpec } from './relay/relay.js';
export { readRss } from './supervisor/rss.js';
export { DEFAULT_WORKER_NICE } from './worker/priority.js';
export {
  passengerMax,
  nowLmsWorkers,
  readMachineLimits,
  readWorkerMemory,
  readCpuSample,
  diffCpuSamples,
  ioWaitShare,
  measureWorkload,
  recommendWorkers,
  describeSizing,
  describeTuning,
  formatBytes,
  type MachineLimits,
  type WorkerMemory,
  type CpuSample,
  type WorkerSnapshot,
  type WorkloadShape,
  type SizingInput,
  type SizingResult,
} from './sizing/index.js';
// whether a user may enter, read or write a file of a given owner and mode (server.user checks)
export { userMay } from './worker/temp-dir.js';
