// `warmpool reset [--site NAME] [--json]`: rolling restart of the running server's workers, one
// progress line per replaced worker (capacity never drops: each old worker is replaced by a booted one).
import {
  adminRequest,
  adminFailure,
  EXIT_OK,
  type AdminCommandArgs,
  type Output,
  type RunContext,
} from '../admin/client.js';
import { describeResetProgress } from '../admin/protocol.js';

export async function run(args: AdminCommandArgs, out: Output, context: RunContext = {}): Promise<number> {
  const stdout = context.stdout ?? process.stdout;
  const request = args.site === undefined ? { cmd: 'reset' as const } : { cmd: 'reset' as const, site: args.site };
  if (args.json !== true)
    out.info(`rolling restart of ${args.site === undefined ? 'every site' : `site ${args.site}`}…`);
  try {
    const result = await adminRequest(
      args.socket,
      request,
      (progress) => {
        if (args.json === true) stdout.write(`${JSON.stringify({ progress })}\n`);
        else out.info(describeResetProgress(progress));
      },
      { signal: context.signal },
    );
    if (args.json === true) stdout.write(`${JSON.stringify(result)}\n`);
    else {
      out.success(
        `reset done: ${result.replaced} worker${result.replaced === 1 ? '' : 's'} replaced (${result.sites.join(', ') || 'no site runs PHP'})`,
      );
      if (result.skipped !== undefined)
        out.info(
          `not reset: ${result.skipped.join(', ')} (PHP runs in php-fpm there: reload php-fpm itself, e.g. systemctl reload php8.2-fpm)`,
        );
    }
    return EXIT_OK;
  } catch (error) {
    return adminFailure(error, out, args.json, stdout);
  }
}
