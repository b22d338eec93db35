// PHP's own reason phrase (`header('HTTP/1.1 200 Fine Thanks')`, `Status: 404 Gone Fishing`) on the
// HTTP/1.1 status line, as nginx passes it. HTTP/2 has no reason phrase.
import type { ServerResponse } from 'node:http';
import type { FastifyReply } from 'fastify';

/** What Node's writeHead takes in a reason phrase: HTAB, SP, visible ASCII and obs-text. */
const REASON_PHRASE = /^[\t\x20-\x7e\x80-\xff]+$/;

/**
 * Sends `text` with `status` when the head is written. Only for that status: a reply that became an
 * error before its head went out (a 502 from a failed body) keeps the standard phrase, which a
 * statusMessage set on the response would have overwritten.
 */
export function keepReasonPhrase(reply: FastifyReply, status: number, text: string): void {
  if (reply.request.raw.httpVersionMajor !== 1 || !REASON_PHRASE.test(text)) return;
  const raw = reply.raw as ServerResponse;
  const writeHead = raw.writeHead;
  raw.writeHead = function (this: ServerResponse, code: number, ...rest: unknown[]) {
    if (code === status && typeof rest[0] !== 'string') this.statusMessage = text;
    return (writeHead as (...args: unknown[]) => ServerResponse).call(this, code, ...rest);
  } as ServerResponse['writeHead'];
}
