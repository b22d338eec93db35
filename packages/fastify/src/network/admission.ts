// http.access, http.limit_req and http.auth_basic, applied before anything else answers: 403 for a
// client a rule refuses, 429 (with Retry-After) for one over its rate, 401 for one without the
// user and password a protected prefix asks (after the rate: guesses are counted by limit_req). The plugin's routes run it first; serve's
// proxy routes run the same one (its rate counters shared), so an nginx-style `deny` in front of a
// proxied backend holds there too.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ResolvedOptions } from '../options.js';
import { multisiteAlias } from '../static/script-resolver.js';
import { requestPath } from './access.js';
import { type BasicAuthAnswer, basicChallenge } from './basic-auth.js';

/** The user auth_basic let in, per request (REMOTE_USER). */
const authenticated = new WeakMap<object, string>();

/** The user auth_basic let this request in as; undefined when no rule asked for one. */
export function authenticatedUser(raw: object): string | undefined {
  return authenticated.get(raw);
}

/**
 * True when the request may go on; false when it was answered here (403, 429 or 401). A promise
 * of the same while a slow password hash (bcrypt) is checked.
 */
export type Admission = (
  request: FastifyRequest,
  reply: FastifyReply,
  remoteAddr: string,
) => boolean | Promise<boolean>;

/** The site's admission, or null when it has no access or rate rule. */
export function createAdmission(options: ResolvedOptions): Admission | null {
  const { access, requestRate, basicAuth } = options;
  if (access === null && requestRate === null && basicAuth === null) return null;
  /** fastcgi.multisite: the resolver's options, to name a network's shared path */
  const multisite = options.classic?.resolver.options.multisite ? options.classic.resolver.options : null;
  return (request, reply, remoteAddr) => {
    const path = requestPath(request.url);
    // a WordPress network's "/site2/wp-admin/" is "/wp-admin/" too: the rules for it apply to both
    // spellings, as behind nginx, whose server-level rewrite comes before its locations
    const shared = multisite === null ? null : multisiteAlias(multisite, path);
    return admitPath(options, request, reply, remoteAddr, path, shared, undefined);
  };
}

/** The rules for the script a classic request runs, given the path it asked for. */
export type ScriptAdmission = (
  request: FastifyRequest,
  reply: FastifyReply,
  remoteAddr: string,
  script: string,
) => boolean | Promise<boolean>;

/**
 * The same rules for the script a classic request was resolved to when it is not the path asked
 * (the `index` of "/", a try_files fallback, a rewrite), as nginx's internal redirect runs the
 * rules of the location it lands in: `deny` and `auth_basic` on /conf.php (Adminer's, which is its
 * index) held for /conf.php and not for "/". A limit_req rule counts a request once: the script's
 * rule counts it too only when it is another rule than the path asked met (nginx counts only the
 * first; a site-wide rule on "/" then switched off a stricter one on the script). Null when the
 * site has no rule.
 */
export function createScriptAdmission(options: ResolvedOptions): ScriptAdmission | null {
  const { access, requestRate, basicAuth } = options;
  if (access === null && requestRate === null && basicAuth === null) return null;
  return (request, reply, remoteAddr, script) => {
    const asked = requestPath(request.url);
    if (script === asked) return true;
    return admitPath(options, request, reply, remoteAddr, script, null, asked);
  };
}

/** access, then limit_req, then auth_basic for `path` (and a multisite network's `shared` spelling). */
function admitPath(
  { access, requestRate, basicAuth }: ResolvedOptions,
  request: FastifyRequest,
  reply: FastifyReply,
  remoteAddr: string,
  path: string,
  shared: string | null,
  counted: string | undefined,
): boolean | Promise<boolean> {
  if (access !== null && (!access(path, remoteAddr) || (shared !== null && !access(shared, remoteAddr)))) {
    reply.code(403).type('text/plain; charset=utf-8').send('Forbidden\n');
    return false;
  }
  // limit_req: a client over its rate waits, and the backend never sees the request
  const wait = requestRate === null ? 0 : requestRate(shared ?? path, remoteAddr, request.method, counted);
  if (wait > 0) {
    reply.code(429).header('Retry-After', String(wait)).type('text/plain; charset=utf-8').send('Too Many Requests\n');
    return false;
  }
  if (basicAuth === null) return true;
  const authorization = request.headers.authorization;
  let answer = basicAuth(path, authorization);
  if (answer === null && shared !== null) answer = basicAuth(shared, authorization);
  return answer instanceof Promise
    ? answer.then((settled) => applyBasicAuth(settled, request, reply))
    : applyBasicAuth(answer, request, reply);
}

/** Lets the request on as its user, or answers it 429 or 401. */
function applyBasicAuth(answer: BasicAuthAnswer, request: FastifyRequest, reply: FastifyReply): boolean {
  if (answer === null) return true;
  if ('user' in answer) {
    authenticated.set(request.raw, answer.user);
    return true;
  }
  if (answer.busy) {
    // the process's budget for password checks is spent: guesses wait, the other sites do not
    reply.code(429).header('Retry-After', '1').type('text/plain; charset=utf-8').send('Too Many Requests\n');
    return false;
  }
  reply
    .code(401)
    .header('WWW-Authenticate', basicChallenge(answer.realm))
    .type('text/plain; charset=utf-8')
    .send('Unauthorized\n');
  return false;
}

/** Calls `done` once the admission lets the request on: at once, or when its password is checked. */
export function whenAdmitted(admitted: boolean | Promise<boolean>, done: (error?: Error) => void): void {
  if (admitted === true) done();
  else if (admitted !== false) admitted.then((on) => on && done(), done);
}
