// @warmpool/config: warmpool.yaml / .rr.yaml → a checked, typed config, with every key's place in the file.
export {
  loadConfigFile,
  loadConfigSections,
  parseConfig,
  type LoadedConfig,
  type LoadedSections,
  type ParseOptions,
} from './load.js';
export type { ConfigWarning } from './validate.js';
export type { Env } from './env-expansion.js';
export { CONFIG_KEYS, SITE_HTTP_KEYS, findKey, type KeySpec, type ValueType } from './keys.js';
export * from './errors.js';
export { parseOverride, overridePosition, type Override } from './overrides.js';
export { parseRpcListen, isExposedRpc, type RpcAddress } from './rpc-listen.js';
export { hostAndPort, isWildcard, listenerAddresses, parseAddress, type ListenerAddress } from './listener-ports.js';
export type * from './warmpool-config.js';
export {
  toServerOptions,
  locateOptionError,
  yamlKeysOf,
  DEFAULT_SITE_NAME,
  DEFAULT_ADMIN_SOCKET,
  DEFAULT_ACME_CERTS_DIR,
  LETS_ENCRYPT_PRODUCTION,
  LETS_ENCRYPT_STAGING,
  type AcmeOptions,
  type SslOptions,
  type ServerOptions,
  type SiteOptions,
  type ToOptionsOptions,
} from './to-options.js';
