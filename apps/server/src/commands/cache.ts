// `warmpool cache purge [--site NAME] [PREFIX] [--json]`: drops the running server's micro-cache
// entries whose path starts with PREFIX (all of them without one), on every site or on one; the
// next request for each goes to PHP. Like purging an nginx fastcgi_cache zone, without touching disk.
import {
  adminRequest,
  adminFailure,
  EXIT_OK,
  type AdminCommandArgs,
  type Output,
  type RunContext,
} from '../admin/client.js';

export interface CachePurgeArgs extends AdminCommandArgs {
  /** a path prefix such as /blog/; all entries without one */
  prefix?: string;
}

export async function run(args: CachePurgeArgs, out: Output, context: RunContext = {}): Promise<number> {
  const stdout = context.stdout ?? process.stdout;
  try {
    const result = await adminRequest(
      args.socket,
      {
        cmd: 'cache-purge',
        ...(args.site === undefined ? {} : { site: args.site }),
        ...(args.prefix === undefined ? {} : { prefix: args.prefix }),
      },
      undefined,
      { signal: context.signal },
    );
    if (args.json === true) stdout.write(`${JSON.stringify(result)}\n`);
    else
      out.success(
        `purged ${result.purged} cache entr${result.purged === 1 ? 'y' : 'ies'}${args.prefix === undefined ? '' : ` under ${args.prefix}`} (${result.sites.join(', ')})`,
      );
    return EXIT_OK;
  } catch (error) {
    return adminFailure(error, out, args.json, stdout);
  }
}
