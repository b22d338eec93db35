// The `@warmpool/pool/protocol` subpath: the wire codec, for tests, benchmarks and the plugin.
export * from './frame.js';
export { FrameDecoder, DEFAULT_MAX_FRAME_BYTES, type FrameDecoderOptions } from './decoder.js';
export * from './control.js';
export * from './http-context.js';
