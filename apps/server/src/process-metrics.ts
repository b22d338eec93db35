// What /metrics says of the server process itself, under the names Prometheus' Node.js client
// (prom-client) uses, so existing dashboards and alerts fit: memory, start time, open files, the
// event loop's delay, open client connections, and which build runs. An operator could graph PHP's
// workers but not the server in front of them (its RSS under load, a stalled loop).
import { readdirSync } from 'node:fs';
import type { Server as NetServer } from 'node:net';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export class ProcessMetrics {
  readonly #startSeconds = Math.round(Date.now() / 1000 - process.uptime());
  readonly #version: string;
  /** sampled every 20 ms; read and reset by each scrape: its p99 is the loop's since the last one */
  readonly #delay: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  /** open client connections, when nothing else counts them (http.max_connections does) */
  #open: number | null = null;

  constructor(version: string) {
    this.#version = version;
    this.#delay.enable();
  }

  /** Counts the public listeners' connections (when the connection limits do not already). */
  watch(servers: readonly NetServer[]): void {
    this.#open = 0;
    for (const server of servers)
      server.on('connection', (socket) => {
        this.#open!++;
        socket.once('close', () => this.#open!--);
      });
  }

  metrics(): string {
    const memory = process.memoryUsage();
    const p99 = this.#delay.count > 0 ? this.#delay.percentile(99) / 1e9 : 0;
    this.#delay.reset();
    const lines = [
      '# HELP process_resident_memory_bytes Resident memory of the server process (its PHP workers are counted apart).',
      '# TYPE process_resident_memory_bytes gauge',
      `process_resident_memory_bytes ${memory.rss}`,
      '# HELP nodejs_heap_size_used_bytes V8 heap in use.',
      '# TYPE nodejs_heap_size_used_bytes gauge',
      `nodejs_heap_size_used_bytes ${memory.heapUsed}`,
      '# HELP process_start_time_seconds When the server process started (Unix time).',
      '# TYPE process_start_time_seconds gauge',
      `process_start_time_seconds ${this.#startSeconds}`,
      '# HELP nodejs_eventloop_lag_p99_seconds 99th percentile of the event loop delay since the last scrape.',
      '# TYPE nodejs_eventloop_lag_p99_seconds gauge',
      `nodejs_eventloop_lag_p99_seconds ${p99.toFixed(6)}`,
    ];
    const fds = openFiles();
    if (fds !== null)
      lines.push(
        '# HELP process_open_fds Open file descriptors of the server process.',
        '# TYPE process_open_fds gauge',
        `process_open_fds ${fds}`,
      );
    if (this.#open !== null)
      lines.push(
        '# HELP warmpool_connections_open Client connections the public listeners hold now.',
        '# TYPE warmpool_connections_open gauge',
        `warmpool_connections_open ${this.#open}`,
      );
    lines.push(
      '# HELP warmpool_build_info The warmpool and Node.js versions running.',
      '# TYPE warmpool_build_info gauge',
      `warmpool_build_info{version="${this.#version}",node="${process.version}"} 1`,
      '',
    );
    return lines.join('\n');
  }

  close(): void {
    this.#delay.disable();
  }
}

function openFiles(): number | null {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return null;
  }
}
