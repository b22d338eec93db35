// One wrk run: fixed -t1 (the machine has 2 cores and the servers need the other one), the
// connection count and duration given, and report.lua's JSON line parsed into numbers.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { track } from './processes.mjs';

const REPORT_LUA = fileURLToPath(new URL('../wrk/report.lua', import.meta.url));

/**
 * @param {{ url: string, connections: number, seconds: number, request?: { method?: string, bodyBytes?: number, contentType?: string, acceptEncoding?: string } }} run
 * @returns {Promise<{ rps: number, p50Ms: number, p99Ms: number, requests: number, non2xx: number, socketErrors: number }>}
 */
export function runWrk({ url, connections, seconds, request = {} }) {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', '-s', REPORT_LUA, url];
  const env = {
    ...process.env,
    WRK_METHOD: request.method ?? 'GET',
    WRK_BODY_BYTES: String(request.bodyBytes ?? 0),
    WRK_CONTENT_TYPE: request.contentType ?? 'application/octet-stream',
    WRK_ACCEPT_ENCODING: request.acceptEncoding ?? '',
  };
  return new Promise((resolve, reject) => {
    // Same process group as the harness: Ctrl-C stops wrk too.
    const child = spawn('wrk', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
      if (code !== 0 || line === undefined) {
        reject(new Error(`wrk ${args.join(' ')} failed (exit ${code}):\n${out}`));
        return;
      }
      const r = JSON.parse(line.slice('BENCH_JSON '.length));
      resolve({
        rps: r.duration_us > 0 ? (r.requests * 1e6) / r.duration_us : 0,
        p50Ms: r.p50_us / 1000,
        p99Ms: r.p99_us / 1000,
        requests: r.requests,
        non2xx: r.non2xx,
        socketErrors: r.connect + r.read + r.write + r.timeout,
      });
    });
  });
}
