// The keys a config sets that this server does not use, each at its file:line, for `serve` and
// `config check` alike: what one prints, the other prints the same way.
import { formatPosition, type LoadedConfig, type ServerOptions } from '@warmpool/config';
import { H2C_UNSUPPORTED } from './tls.js';

/** One line per ignored key: `warmpool.yaml:12:5 sites[0].http.pool.num_workers: ignored: why`. */
export function ignoredKeyWarnings(server: ServerOptions, loaded: LoadedConfig): string[] {
  const lines: string[] = [];
  const at = (key: string, fallback: string = key): string => {
    const position = loaded.positionOf(key) ?? loaded.positionOf(fallback);
    return position === null ? loaded.file : formatPosition(position);
  };
  for (const site of server.sites) {
    for (const { key, reason } of site.ignored) {
      // a site's key inherited from the top level is at the top level's line
      lines.push(`${at(key, key.replace(/^sites\[\d+\]\./, ''))} ${key}: ignored: ${reason}`);
    }
  }
  for (const { key, reason } of server.http.ssl?.ignored ?? []) lines.push(`${at(key)} ${key}: ignored: ${reason}`);
  // one line per request is written once: http.access_log's, in its format (logs.encoding: json
  // keeps RoadRunner's "http access log" line, which Octane reads). Only a file that sets
  // access_logs is told: an access_log section turns access_logs on by itself
  const setsAccessLogs = loaded.positionOf('http.access_logs') !== null;
  if (setsAccessLogs && server.http.access_logs && server.http.access_log !== null && server.logs.encoding !== 'json')
    lines.push(
      `${at('http.access_logs')} http.access_logs: ignored: http.access_log writes the line of each request (in its format, to its output)`,
    );
  if (server.http.http2?.h2c === true)
    lines.push(`${at('http.http2.h2c')} http.http2.h2c: ignored: ${H2C_UNSUPPORTED}`);
  return lines;
}
