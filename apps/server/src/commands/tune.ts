// `warmpool tune [--site NAME] [--window 10s] [--json]`: the running server measures its workers
// under the traffic it gets (busy vs CPU time, memory, machine limits) and recommends num_workers,
// next to the Passenger and NOW LMS rules of thumb. The measuring is server side (tuning.ts).
import {
  adminRequest,
  exitCodeOf,
  EXIT_OK,
  type AdminCommandArgs,
  type Output,
  type RunContext,
} from '../admin/client.js';
import { DEFAULT_TUNE_WINDOW_MS } from '../admin/protocol.js';

export async function run(args: AdminCommandArgs, out: Output, context: RunContext = {}): Promise<number> {
  const stdout = context.stdout ?? process.stdout;
  const windowMs = args.windowMs ?? DEFAULT_TUNE_WINDOW_MS;
  const request =
    args.site === undefined ? { cmd: 'tune' as const, windowMs } : { cmd: 'tune' as const, windowMs, site: args.site };
  try {
    const report = await adminRequest(
      args.socket,
      request,
      (progress) => {
        if (args.json !== true)
          out.info(`measuring site ${progress.site} for ${progress.windowMs / 1000}s: keep real traffic flowing…`);
      },
      { signal: context.signal },
    );
    if (args.json === true) {
      stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return EXIT_OK;
    }
    for (const line of report.lines) out.info(line);
    const { numWorkers } = report.result;
    if (report.result.workload === 'unmeasured') {
      // too little traffic to measure: a figure from the CPU count alone, not a finding
      out.info(
        `num_workers: ${numWorkers} from the CPU count alone (the site runs ${report.currentWorkers}): nothing was measured; ` +
          'run warmpool tune again while the site has traffic, or with --window 60s',
      );
      return EXIT_OK;
    }
    out.success(
      numWorkers === report.currentWorkers
        ? `num_workers: ${numWorkers} — what the site runs now`
        : `num_workers: ${numWorkers} (the site runs ${report.currentWorkers} now); set http.pool.num_workers in warmpool.yaml and restart warmpool`,
    );
    return EXIT_OK;
  } catch (error) {
    out.error((error as Error).message);
    return exitCodeOf(error);
  }
}
