// Sites by Host, like nginx server blocks: a request's Host picks the site whose `hosts` list it,
// exact names first, then the longest "*.suffix" wildcard; a Host no site lists goes to the
// default site (the top-level server/http sections), or gets 404 when there is none.
//
// The choice is made once per request by a Fastify router constraint ("site"): every route a site
// registers (the warmpool plugin's "/" and "/*", proxies, the micro-cache's hooks ride along) carries
// `constraints: { site: NAME }`, added by an onRoute hook of the site's encapsulated context. The
// default site's routes carry none. With mustMatchWhenDerived, a request derived to site A never
// falls into another site's routes, and find-my-way still backtracks to A's catch-all. Without any
// site listing hosts the constraint is not registered at all (find-my-way would derive it anyway).
import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';

export interface SiteHosts {
  name: string;
  /** lower-cased; "*.example.com" matches any subdomain of example.com (not example.com itself) */
  hosts: readonly string[];
}

export interface SiteRouter {
  /** the site answering `host` (a Host header, port and trailing dot allowed), or null */
  siteOf(host: string | undefined): string | null;
  /** no site lists hosts: every request is the default site's */
  readonly empty: boolean;
}

export function createSiteRouter(sites: readonly SiteHosts[]): SiteRouter {
  const exact = new Map<string, string>();
  const wildcard = new Map<string, string>();
  for (const site of sites) {
    for (const host of site.hosts) {
      if (host.startsWith('*.')) wildcard.set(host.slice(2), site.name);
      else exact.set(host, site.name);
    }
  }
  return {
    empty: sites.length === 0,
    siteOf(header) {
      const host = hostName(header);
      if (host === null) return null;
      const found = exact.get(host);
      if (found !== undefined) return found;
      if (wildcard.size === 0) return null;
      // "a.b.example.com" tries "b.example.com", then "example.com", then "com": longest suffix first
      for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
        const site = wildcard.get(host.slice(dot + 1));
        if (site !== undefined) return site;
      }
      return null;
    },
  };
}

/** "Example.COM.:8080" → "example.com"; "[::1]:80" → "[::1]"; null when empty. */
export function hostName(header: string | undefined): string | null {
  if (header === undefined || header === '') return null;
  let host = header.toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.lastIndexOf(':');
  if (colon !== -1) host = host.slice(0, colon);
  if (host.endsWith('.')) host = host.slice(0, -1);
  return host === '' ? null : host;
}

/** The header an in-process request (app.inject) sets to reach a given site: `<token> <site>` ('' = default). */
export const INTERNAL_SITE_HEADER = 'x-warmpool-internal-site';

/**
 * The router constraint strategy. `hostOf` is the request's one host (ClientInfo.hostname), the
 * same the micro-cache key and PHP use. `token` guards INTERNAL_SITE_HEADER so only the server itself
 * (the metrics listener's app.inject) can name a site directly; it is random per process.
 */
export function siteConstraint(
  router: SiteRouter,
  token: string,
  hostOf: (req: IncomingMessage | Http2ServerRequest) => string,
) {
  const prefix = `${token} `;
  return {
    name: 'site',
    storage() {
      const handlers = new Map<string, unknown>();
      return {
        get: (site: string) => handlers.get(site) ?? null,
        set: (site: string, store: unknown) => {
          handlers.set(site, store);
        },
      };
    },
    deriveConstraint(req: IncomingMessage | Http2ServerRequest): string | undefined {
      const internal = req.headers[INTERNAL_SITE_HEADER];
      if (typeof internal === 'string' && internal.startsWith(prefix)) {
        // an empty name is the default site, whose routes carry no constraint
        const name = internal.slice(prefix.length);
        return name === '' ? undefined : name;
      }
      return router.siteOf(hostOf(req)) ?? undefined;
    },
    mustMatchWhenDerived: true,
    validate(value: unknown) {
      if (typeof value !== 'string') throw new TypeError('the site constraint is a site name');
    },
  };
}
