// Per-site traffic for /metrics that the PHP plugin's own counters cannot see. Proxy routes are
// registered beside the plugin, outside the encapsulated context its onResponse hook counts, so
// their requests (a dead upstream's 502s among them) were in the access log and nowhere in
// /metrics. They join the plugin's families (warmpool_requests_total, ..._duration_seconds) with an
// `upstream` label; and warmpool_response_bytes_total counts the body bytes each site sent, as the
// access log's body_bytes_sent (one counter per response, shared with the access log).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RequestCounters, renderRequestFamilies } from '@warmpool/fastify';
import { countBodyBytes } from './access-log.js';

/** Counts one proxied response of a route (its status and time from request start, in ms). */
export type RecordProxied = (status: number, elapsedMs: number) => void;

export class SiteTraffic {
  /** site → upstream → counters, filled as routes register */
  readonly #proxied = new Map<string, Map<string, RequestCounters>>();
  readonly #bytes = new Map<string, number>();

  constructor(sites: readonly string[]) {
    for (const site of sites) this.#bytes.set(site, 0);
  }

  /** The recorder of one proxy route: its site and upstream are labels of its samples. */
  proxyRoute(site: string, upstream: string): RecordProxied {
    let routes = this.#proxied.get(site);
    if (routes === undefined) {
      routes = new Map();
      this.#proxied.set(site, routes);
    }
    let counters = routes.get(upstream);
    if (counters === undefined) {
      counters = new RequestCounters();
      routes.set(upstream, counters);
    }
    const counted = counters;
    return (status, elapsedMs) => counted.record(status, elapsedMs);
  }

  /**
   * Counts the body bytes of every response of `app` (but the metrics scrape's) under its site,
   * when the response closes (finished, or cut by a client that left: what was written was sent).
   */
  countBodyBytes(app: FastifyInstance, siteOf: (request: FastifyRequest) => string, skip: string): void {
    app.addHook('onRequest', (request, reply, done) => {
      if (request.url !== skip) {
        const counter = countBodyBytes(reply.raw);
        reply.raw.once('close', () => this.#addBytes(siteOf(request), bodyBytes(request, reply, counter.bytes)));
      }
      done();
    });
  }

  #addBytes(site: string, bytes: number): void {
    const total = this.#bytes.get(site);
    // a request no site answers (an unknown host with no default site) is nobody's
    if (total !== undefined) this.#bytes.set(site, total + bytes);
  }

  /** One exposition per site, for mergeExpositions (which adds the site label). */
  expositions(): Array<{ site: string; text: string }> {
    return [...this.#bytes].map(([site, bytes]) => {
      const out: string[] = [];
      const routes = this.#proxied.get(site);
      if (routes !== undefined)
        renderRequestFamilies(
          out,
          [...routes].map(([upstream, counters]) => ({
            labels: `upstream="${upstream.replace(/["\\\n]/g, '_')}"`,
            counters,
          })),
        );
      out.push(
        '# HELP warmpool_response_bytes_total Body bytes sent to clients (after compression), as the access log body_bytes_sent.',
        '# TYPE warmpool_response_bytes_total counter',
        `warmpool_response_bytes_total ${bytes}`,
        '',
      );
      return { site, text: out.join('\n') };
    });
  }
}

/** As the access log: HEAD, 204 and 304 have no body, whatever was written. */
function bodyBytes(request: FastifyRequest, reply: FastifyReply, written: number): number {
  const status = reply.statusCode;
  return request.method === 'HEAD' || status === 204 || status === 304 ? 0 : written;
}
