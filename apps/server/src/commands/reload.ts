// `warmpool reload [--json]`: what SIGHUP does, over the admin socket: the server re-reads its TLS
// pairs and its config file, applies the new log levels and names what needs a restart. One line
// per result: ✓ applied, ▲ needs a restart, ✗ refused (the running config or pair stays).
import {
  adminRequest,
  adminFailure,
  EXIT_OK,
  EXIT_USAGE,
  type AdminCommandArgs,
  type RunContext,
} from '../admin/client.js';
import type { CliOutput } from '../output.js';

/** How the CLI shows one line of the server's answer. */
export function reloadLineKind(line: string): 'applied' | 'restart' | 'refused' {
  if (/\bNOT (re-read|reloaded)\b/.test(line)) return 'refused';
  if (/needs a restart/.test(line)) return 'restart';
  return 'applied';
}

export async function run(
  args: AdminCommandArgs,
  out: Pick<CliOutput, 'info' | 'success' | 'warn' | 'error'>,
  context: RunContext = {},
): Promise<number> {
  const stdout = context.stdout ?? process.stdout;
  let changes: string[];
  try {
    ({ changes } = await adminRequest(args.socket, { cmd: 'reload' }, undefined, { signal: context.signal }));
  } catch (error) {
    return adminFailure(error, out, args.json, stdout);
  }
  const refused = changes.some((line) => reloadLineKind(line) === 'refused');
  if (args.json === true) {
    stdout.write(`${JSON.stringify({ changes })}\n`);
    return refused ? EXIT_USAGE : EXIT_OK;
  }
  for (const line of changes) {
    const kind = reloadLineKind(line);
    if (kind === 'applied') out.success(line);
    else if (kind === 'restart') out.warn(line);
    // the file's errors, one a line under it (the server joins them with " | " for its log)
    else out.error(line.split(' | ').join('\n'));
  }
  // the config (or a TLS pair) the server refused: the running one stays, fix the file (exit 2, as config check)
  return refused ? EXIT_USAGE : EXIT_OK;
}
