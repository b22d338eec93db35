// `warmpool tune [--site NAME] [--window 10s] [--json]`: the running server measures its workers
// under the traffic it gets (busy vs CPU time, memory, machine limits) and recommends num_workers,
// next to the Passenger and NOW LMS rules of thumb. The measuring is server side (tuning.ts).
import {
  adminRequest,
  adminFailure,
  EXIT_OK,
  type AdminCommandArgs,
  type Output,
  type RunContext,
} from '../admin/client.js';
import { DEFAULT_TUNE_WINDOW_MS } from '../admin/protocol.js';
import type { TuneReport } from '../tuning.js';

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
    const advice = adviceOf(report);
    if (advice.measured) out.success(advice.text);
    else out.info(advice.text);
    return EXIT_OK;
  } catch (error) {
    return adminFailure(error, out, args.json, stdout);
  }
}

/**
 * The closing line: the key to set and what to do. A dynamic pool (min_workers/max_workers) is
 * sized by its max_workers: num_workers next to them is a config error.
 */
export function adviceOf(report: Pick<TuneReport, 'result' | 'currentWorkers' | 'dynamic'>): {
  measured: boolean;
  text: string;
} {
  const { numWorkers } = report.result;
  const { dynamic, currentWorkers } = report;
  const key = dynamic === undefined ? 'num_workers' : 'max_workers';
  const now =
    dynamic === undefined
      ? `the site runs ${currentWorkers}`
      : `the site's dynamic pool runs ${currentWorkers}, min_workers ${dynamic.minWorkers}, max_workers ${dynamic.maxWorkers}`;
  if (report.result.workload === 'unmeasured') {
    // too little traffic to measure: a figure from the CPU count alone, not a finding
    return {
      measured: false,
      text:
        `${key}: ${numWorkers} from the CPU count alone (${now}): nothing was measured; ` +
        'run warmpool tune again while the site has traffic, or with --window 60s',
    };
  }
  if (dynamic === undefined) {
    return {
      measured: true,
      text:
        numWorkers === currentWorkers
          ? `num_workers: ${numWorkers} — what the site runs now`
          : `num_workers: ${numWorkers} (${now} now); set http.pool.num_workers in warmpool.yaml and restart warmpool`,
    };
  }
  if (numWorkers === dynamic.maxWorkers)
    return { measured: true, text: `max_workers: ${numWorkers} — what the site's dynamic pool has now (${now})` };
  const min = numWorkers < dynamic.minWorkers ? ` and min_workers to ${numWorkers} or less` : '';
  return {
    measured: true,
    text: `max_workers: ${numWorkers} (${now}); set http.pool.max_workers in warmpool.yaml${min} and restart warmpool`,
  };
}
