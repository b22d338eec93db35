/** How many fields the server appended to a request's head (the request id, configured request headers). */
const ADDED_FIELDS = Symbol('warmpool.addedRequestFields');

type CountedRaw = { rawHeaders: string[]; [ADDED_FIELDS]?: number };

/**
 * Replaces a request header everywhere it is read: `headers` (Fastify, proxies) and `rawHeaders`
 * (the plugin builds PHP's header map from it, to keep repeated headers and their case). A field
 * the client did not send is counted, so that max_header_count judges the client's head alone.
 */
export function setRequestHeader(
  request: { headers: Record<string, unknown>; raw: object },
  name: string,
  value: string,
): void {
  request.headers[name] = value;
  const raw = request.raw as unknown as CountedRaw;
  const fields = raw.rawHeaders;
  const before = fields.length;
  // every request goes through here (the request id): compare lengths before lower-casing a name
  for (let i = fields.length - 2; i >= 0; i -= 2)
    if (fields[i]!.length === name.length && fields[i]!.toLowerCase() === name) fields.splice(i, 2);
  if (fields.length === before) raw[ADDED_FIELDS] = (raw[ADDED_FIELDS] ?? 0) + 1;
  fields.push(name, value);
}

/** The fields setRequestHeader appended to this request (0 for a head as the client sent it). */
export function addedRequestFields(raw: object): number {
  return (raw as CountedRaw)[ADDED_FIELDS] ?? 0;
}
