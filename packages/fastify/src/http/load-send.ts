// @fastify/send, loaded once for the two parts that use it (the static layer's Content-Type and
// the X-Accel-Redirect hand-over), and only when one of them is configured.
type Send = typeof import('@fastify/send')['default'];
let sendLoading: Promise<Send> | undefined;

/**
 * Loads @fastify/send once. Called when the routes or the static layer are registered, so that no
 * request has a module resolved: on Node 20 and 22 a resolution that follows a stat of a socket or
 * FIFO (a file asked of the static layer) can stop short of pnpm's symlinks and misload the module.
 */
export function loadSend(): Promise<Send> {
  sendLoading ??= import('@fastify/send').then((module) => module.default);
  return sendLoading;
}
