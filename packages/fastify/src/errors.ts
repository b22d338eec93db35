import { WarmpoolError } from '@warmpool/pool';

export class InvalidOptionError extends WarmpoolError<'WP_FASTIFY_INVALID_OPTION'> {
  constructor(key: string, message: string) {
    super('WP_FASTIFY_INVALID_OPTION', `warmpool option "${key}": ${message}`, { details: { key } });
  }
}

/** The worker's reply could not be turned into an HTTP response (bad status, undecodable context). */
export class BadReplyError extends WarmpoolError<'WP_FASTIFY_BAD_REPLY'> {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('WP_FASTIFY_BAD_REPLY', message, options);
  }
}

export const FASTIFY_ERROR_CODES = ['WP_FASTIFY_INVALID_OPTION', 'WP_FASTIFY_BAD_REPLY'] as const;
