// A GET / whose header lines go out exactly as listed (repeats and order kept; node:http's array
// form), for tests of what a server makes of repeated or odd header lines.
import { once } from 'node:events';
import { type IncomingMessage, request } from 'node:http';

/** Sends `lines` ([name, value] pairs, Host included) to 127.0.0.1:port; the status and body. */
export async function getWithHeaderLines(
  port: number,
  lines: ReadonlyArray<readonly [string, string]>,
): Promise<{ status: number; text: string }> {
  const req = request({ port, host: '127.0.0.1', path: '/', headers: lines.flat() });
  req.end();
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  let text = '';
  for await (const chunk of res) text += chunk;
  return { status: res.statusCode ?? 0, text };
}
