// A site that only redirects (sites[].redirect), as nginx's `server { server_name www.example.com;
// return 301 https://example.com$request_uri; }`: every method and path, path and query kept.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { clientInfoOf, REQUEST_METHODS } from '@warmpool/fastify';

export interface SiteRedirect {
  /** scheme, host and a path prefix, no trailing slash */
  to: string;
  status: number;
}

/** Routes every path of the site's context to `redirect.to` + the request's path and query. */
export function registerSiteRedirect(app: FastifyInstance, redirect: SiteRedirect): void {
  // answered at onRequest, before a body is parsed (a POST's form has no parser here: 415) or read
  const answer = (request: FastifyRequest, reply: FastifyReply): void => {
    // the origin form: an absolute-form target (GET http://x/y HTTP/1.1) is its path here, so the
    // Location always starts with `to`, never with what the client wrote
    const target = clientInfoOf(request.raw).target;
    // a HEAD gets the GET's headers, its Content-Length: 0 too (Fastify leaves it out of an empty HEAD reply)
    if (request.method === 'HEAD') reply.header('content-length', '0');
    reply.redirect(`${redirect.to}${target}`, redirect.status);
  };
  for (const url of ['/', '/*'])
    app.route({
      method: [...REQUEST_METHODS],
      url,
      exposeHeadRoute: false,
      onRequest: answer,
      // never reached: onRequest answered and did not go on
      handler: async () => undefined,
    });
}
