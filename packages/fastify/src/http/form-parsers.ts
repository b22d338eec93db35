import type { FastifyInstance } from 'fastify';
import { createParsedForm, parseUrlencoded } from './forms.js';
import { readRawBody } from './raw-body.js';
import { registerMultipartParser, type ResolvedUploadOptions } from './uploads.js';

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
  app.addContentTypeParser('application/x-www-form-urlencoded', (request, payload, done) => {
    readRawBody(request, payload, bodyLimit, (error, body) => {
      if (error !== null) {
        done(error, undefined);
        return;
      }
      try {
        const bytes = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : body.join();
        done(null, createParsedForm('urlencoded', parseUrlencoded(bytes, options.uploads.maxFields), null));
      } catch (parseError) {
        done(parseError as Error, undefined);
      }
    });
  });
  registerMultipartParser(app, options.uploads, bodyLimit);
}
