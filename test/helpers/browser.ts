// A browser's part of a session, for driving real PHP apps through real sockets: a cookie jar, the
// Host header that picks the site, and the hidden inputs of an HTML form (CSRF tokens and the like).
import { type FormData, request } from 'undici';

export interface Page {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
}

export class Browser {
  readonly #origin: string;
  readonly #host: string;
  readonly #cookies = new Map<string, string>();

  /** `origin`: http://127.0.0.1:PORT; `host`: the site's name. */
  constructor(origin: string, host: string) {
    this.#origin = origin;
    this.#host = host;
  }

  cookie(name: string): string | undefined {
    return this.#cookies.get(name);
  }

  get cookies(): ReadonlyMap<string, string> {
    return this.#cookies;
  }

  async get(path: string, headers: Record<string, string> = {}): Promise<Page> {
    return this.#send('GET', path, headers, undefined);
  }

  /** POSTs a urlencoded form. */
  async post(path: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Page> {
    return this.#send(
      'POST',
      path,
      { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      new URLSearchParams(fields).toString(),
    );
  }

  /** Any request, with the jar's cookies: a JSON or multipart body too (undici's FormData, not Node's). */
  async send(
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: string | Buffer | FormData,
  ): Promise<Page> {
    return this.#send(method, path, headers, body);
  }

  async #send(
    method: string,
    path: string,
    headers: Record<string, string>,
    body: string | Buffer | FormData | undefined,
  ): Promise<Page> {
    const cookie = [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    const res = await request(`${this.#origin}${path}`, {
      method: method as 'GET',
      headers: { host: this.#host, ...(cookie === '' ? {} : { cookie }), ...headers },
      ...(body === undefined ? {} : { body }),
    });
    const bytes = Buffer.from(await res.body.arrayBuffer());
    for (const line of [res.headers['set-cookie'] ?? []].flat()) {
      const [pair] = line.split(';');
      const eq = pair!.indexOf('=');
      const name = pair!.slice(0, eq).trim();
      const value = pair!.slice(eq + 1).trim();
      if (value === '' || value === 'deleted' || /max-age=0|expires=thu, 01 jan 1970/i.test(line))
        this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    return { status: res.statusCode, headers: res.headers, body: bytes, text: bytes.toString('utf8') };
  }
}

/** The `action` and the named inputs (hidden and filled-in) of the form whose id is `id`. */
export function formOf(html: string, id: string): { action: string; fields: Record<string, string> } {
  const start = html.search(new RegExp(`<form[^>]*id="${id}"`));
  if (start < 0) throw new Error(`no form #${id} in the page:\n${html.slice(0, 2000)}`);
  const end = html.indexOf('</form>', start);
  const form = html.slice(start, end);
  const action = decodeEntities(/action="([^"]*)"/.exec(form)?.[1] ?? '');
  const fields: Record<string, string> = {};
  for (const input of form.matchAll(/<input\b[^>]*>/g)) {
    const tag = input[0];
    const name = /\bname="([^"]*)"/.exec(tag)?.[1];
    if (name === undefined || /type="(submit|checkbox)"/.test(tag)) continue;
    fields[decodeEntities(name)] = decodeEntities(/\bvalue="([^"]*)"/.exec(tag)?.[1] ?? '');
  }
  for (const area of form.matchAll(/<textarea\b[^>]*\bname="([^"]*)"[^>]*>([\s\S]*?)<\/textarea>/g)) {
    fields[decodeEntities(area[1]!)] = decodeEntities(area[2]!);
  }
  return { action, fields };
}

function decodeEntities(text: string): string {
  return text
    .replaceAll('&quot;', '"')
    .replaceAll('&#039;', "'")
    .replaceAll('&lt;', '<')
    .replaceAll('&gt;', '>')
    .replaceAll('&amp;', '&');
}
