import type { FastifyInstance } from 'fastify';
import type { Chunks } from '@warmpool/pool';
import { createParsedForm, parseUrlencoded } from './forms.js';
import { bodyWasCut } from './body-pace.js';
import { readRawBody } from './raw-body.js';
import { BodyTooLargeError } from '../errors.js';
import { registerMultipartParser, type ResolvedUploadOptions } from './uploads.js';

/**
 * The largest urlencoded body parsed into a form: Go's maxFormSize (10 MB), so RoadRunner's too.
 * Parsing is synchronous (about 50 ms for 20 MB of one value); files and large data go multipart,
 * or with another Content-Type (passed through unparsed).
 */
export const MAX_URLENCODED_BYTES = 10 * 1024 * 1024;

export interface FormParserOptions {
  uploads: ResolvedUploadOptions;
  /** bytes; default: the Fastify instance's bodyLimit. Pass the resolved max_request_size. */
  bodyLimit?: number;
}

/**
 * Registers, on `app` (the plugin's encapsulated child, AFTER removeAllContentTypeParsers and the '*'
 * parser), the urlencoded and multipart parsers and the hook that deletes temp files when the
 * response closes. request.body is then a ParsedForm (see forms.ts isParsedForm) for form requests.
 * Skip it entirely for `raw_body: true`: forms then reach PHP unparsed through the '*' parser.
 * Both read the body with the limit's one check (limits.ts bodyTooLarge, 413).
 */
export function registerFormParsers(app: FastifyInstance, options: FormParserOptions): void {
  const bodyLimit = options.bodyLimit ?? app.initialConfig.bodyLimit ?? 1024 * 1024;
  const formLimit = Math.min(bodyLimit, MAX_URLENCODED_BYTES);
  app.addContentTypeParser('application/x-www-form-urlencoded', (request, payload, done) => {
    readRawBody(
      request,
      payload,
      formLimit,
      (error, body) => {
        if (error !== null) {
          if (bodyWasCut(request.raw)) return; // answered 408 already
          done(formLimit < bodyLimit && error instanceof BodyTooLargeError ? formTooLarge() : error, undefined);
          return;
        }
        try {
          // whole: a Buffer or Chunks, never a FileBody
          const bytes = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : (body as Chunks).join();
          done(null, createParsedForm('urlencoded', parseUrlencoded(bytes, options.uploads.maxFields), null));
        } catch (parseError) {
          done(parseError as Error, undefined);
        }
      },
      options.uploads.dir,
      true,
    );
  });
  registerMultipartParser(app, options.uploads, bodyLimit);
}

function formTooLarge(): BodyTooLargeError {
  return new BodyTooLargeError(
    `the urlencoded form is over ${MAX_URLENCODED_BYTES} bytes (the limit Go and RoadRunner parse forms to); send large data as a file (multipart/form-data) or with another Content-Type`,
    MAX_URLENCODED_BYTES,
  );
}
