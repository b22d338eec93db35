// --v8-trace: what V8 itself says about a Node contender under load. Two pathologies cost warmpool
// classic mode a third of its speed on 2026-12-05 and showed in no CPU profile as such:
// - a hot function V8 never optimizes because one of its inline caches changes on every call
//   (`--trace-opt-verbose` prints "resetting ticks ... due to IC change" each time): parseHeaderBlock
//   filling an Object.create(null) dictionary;
// - per-request objects surviving scavenges (`--trace-gc-nvp`: new_space_survive_rate_) because
//   old-space garbage points at them: an object literal with getters per request.
// A healthy run shows no function with many resets, a survival rate of a few percent at most and
// hardly any Mark-Compact.
import { readFileSync } from 'node:fs';

/** The flags the Node contenders run with. */
export const V8_TRACE_ARGS = ['--trace-opt', '--trace-opt-verbose', '--trace-gc-nvp'];

/** A function whose counters were reset this many times over a run is one V8 keeps from optimizing. */
const STUCK_RESETS = 100;

/**
 * Reads a contender's output log (V8 writes its traces to stdout): the functions kept from being
 * optimized, and the garbage collector's figures over the run (warm-up included).
 */
export function summarizeV8Trace(logFile) {
  let text;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return null;
  }
  const resets = new Map();
  for (const match of text.matchAll(
    /resetting ticks for 0x[0-9a-f]+ <SharedFunctionInfo ([^>]*)> from \d+ due to IC change/g,
  )) {
    const name = match[1] || '(anonymous)';
    resets.set(name, (resets.get(name) ?? 0) + 1);
  }
  const stuck = [...resets]
    .filter(([, count]) => count >= STUCK_RESETS)
    .sort((a, b) => b[1] - a[1])
    .map(([name, count]) => ({ name, resets: count }));
  let scavenges = 0;
  let markCompacts = 0;
  let survival = 0;
  let scavengeMs = 0;
  for (const line of text.split('\n')) {
    if (line.includes('gc=s ')) {
      scavenges++;
      survival += Number(/new_space_survive_rate_=([\d.]+)%/.exec(line)?.[1] ?? 0);
      scavengeMs += Number(/pause=([\d.]+)/.exec(line)?.[1] ?? 0);
    } else if (line.includes('gc=mc ')) markCompacts++;
  }
  return {
    stuck,
    scavenges,
    markCompacts,
    meanSurvivalPercent: scavenges === 0 ? 0 : survival / scavenges,
    meanScavengeMs: scavenges === 0 ? 0 : scavengeMs / scavenges,
  };
}

/** Lines for the console. */
export function describeV8Trace(scenario, contender, summary) {
  const lines = [
    `\nV8 ${scenario} / ${contender}: ${summary.scavenges} scavenges (mean ${summary.meanScavengeMs.toFixed(2)} ms, ${summary.meanSurvivalPercent.toFixed(1)}% of the new space surviving), ${summary.markCompacts} Mark-Compacts`,
  ];
  if (summary.stuck.length === 0) lines.push('  no function kept from optimizing');
  for (const f of summary.stuck) lines.push(`  kept from optimizing (counters reset ${f.resets} times): ${f.name}`);
  return lines;
}
