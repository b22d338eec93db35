// The one results table (terminal and Markdown), the reference-target checks, the machine
// description, and the CPU-profile summary.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { median } from './measure.mjs';

export const COLUMNS = [
  ['scenario', 'scenario'],
  ['conns', 'conns'],
  ['contender', 'contender'],
  ['rps', 'rps'],
  ['p50', 'p50 ms'],
  ['p99', 'p99 ms'],
  ['cpu', 'CPU µs/req'],
  ['rss', 'RSS MB'],
  ['pss', 'PSS MB'],
  ['node', 'Node RSS MB'],
  ['non2xx', 'non-2xx'],
  ['sockerr', 'sock err'],
  ['ratio', 'vs nginx+php-fpm'],
];

/** background load (cores used outside the bench while wrk ran) above which a figure gets a '*' */
export const NOISY_CORES = 0.25;
const fixed = (n, digits) => (n === null || n === undefined ? '-' : n.toFixed(digits));
const ms = (n) => (n === null || n === undefined ? '-' : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0));

/**
 * A's rate over B's: the median of the per-round ratios when both ran every round (two runs of one
 * round are seconds apart, so the VM's drift cancels out better than between two medians), else
 * the ratio of the medians.
 */
export function rateRatio(a, b) {
  const rounds = roundRatios(a, b);
  if (rounds !== null) return median(rounds);
  return b.rps === 0 ? null : a.rps / b.rps;
}

/** A's rate over B's in each round, when both ran every round; else null. */
function roundRatios(a, b) {
  const ra = a.runRps ?? [];
  const rb = b.runRps ?? [];
  return ra.length > 0 && ra.length === rb.length && rb.every((r) => r > 0) ? ra.map((r, i) => r / rb[i]) : null;
}

/**
 * "A's p99 no worse than B's", judged on the medians. The detail also says in how many rounds A's
 * p99 was at or below B's (the two ran seconds apart): a median that passes in 6 rounds of 11 is a
 * coin flip, one that passes in 11 of 11 is not.
 */
function p99Check(label, a, b) {
  if (a === null || b === null) return { label, status: 'n/a', detail: 'not measured' };
  const ra = a.runP99Ms ?? [];
  const rb = b.runP99Ms ?? [];
  const rounds =
    ra.length >= 3 && ra.length === rb.length
      ? ` (at or below it in ${ra.filter((p99, i) => p99 <= rb[i]).length} of ${ra.length} rounds)`
      : '';
  return {
    label,
    status: a.p99Ms <= b.p99Ms ? 'PASS' : 'FAIL',
    detail: `${ms(a.p99Ms)} ms vs ${ms(b.p99Ms)} ms${rounds}`,
  };
}

/**
 * The ratio as printed: the median and, with 3 rounds or more, the lowest and highest round, so a
 * reader sees whether "0.98x" is below 1 or the same within this machine's noise ("0.98x
 * (0.93-1.02)").
 */
export function formatRatio(a, b) {
  if (a === b) return '1.00x';
  const value = rateRatio(a, b);
  if (value === null) return '-';
  const rounds = roundRatios(a, b);
  if (rounds === null || rounds.length < 3) return `${value.toFixed(2)}x`;
  return `${value.toFixed(2)}x (${Math.min(...rounds).toFixed(2)}-${Math.max(...rounds).toFixed(2)})`;
}

/**
 * rows: { scenario, conns, contender, key, result | null, note }. Within a scenario and connection
 * count, rows are sorted slowest first (undici's printResults order), rows without figures last,
 * and each rate is given as a ratio to nginx+php-fpm's.
 */
export function tableCells(rows) {
  const groups = new Map();
  for (const row of rows) {
    const id = `${row.scenario}\u0000${row.conns}`;
    if (!groups.has(id)) groups.set(id, []);
    groups.get(id).push(row);
  }
  const out = [];
  for (const group of groups.values()) {
    const base = group.find((r) => r.key === 'nginx-fpm' && r.result !== null)?.result ?? null;
    const measured = group.filter((r) => r.result !== null).sort((a, b) => a.result.rps - b.result.rps);
    const rest = group.filter((r) => r.result === null);
    for (const row of [...measured, ...rest]) {
      const r = row.result;
      out.push({
        scenario: row.scenario,
        conns: String(row.conns),
        contender: row.contender,
        rps: r === null ? 'n/a' : `${fixed(r.rps, 0)}${r.backgroundCores > NOISY_CORES ? '*' : ''}`,
        p50: r === null ? 'n/a' : ms(r.p50Ms),
        p99: r === null ? 'n/a' : ms(r.p99Ms),
        cpu: r === null ? 'n/a' : fixed(r.cpuUsPerRequest, 0),
        rss: r === null ? 'n/a' : fixed(r.rssMb, 0),
        pss: r === null ? 'n/a' : fixed(r.pssMb, 0),
        node: r === null ? 'n/a' : fixed(r.nodeRssMb, 0),
        non2xx: r === null ? 'n/a' : String(r.non2xx),
        sockerr: r === null ? 'n/a' : String(r.socketErrors),
        ratio: r === null ? `n/a: ${row.note}` : base === null ? '-' : formatRatio(r, base),
      });
    }
  }
  return out;
}

const RIGHT = new Set(['conns', 'rps', 'p50', 'p99', 'cpu', 'rss', 'pss', 'node', 'non2xx', 'sockerr']);

export function textTable(cells) {
  const widths = COLUMNS.map(([key, title]) => Math.max(title.length, ...cells.map((c) => c[key].length)));
  const line = (values) =>
    values
      .map((v, i) => (RIGHT.has(COLUMNS[i][0]) ? v.padStart(widths[i]) : v.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  const out = [line(COLUMNS.map(([, title]) => title)), widths.map((w) => '-'.repeat(w)).join('  ')];
  let previous = null;
  for (const c of cells) {
    if (previous !== null && previous !== `${c.scenario}/${c.conns}`) out.push('');
    previous = `${c.scenario}/${c.conns}`;
    out.push(line(COLUMNS.map(([key]) => c[key])));
  }
  return out.join('\n');
}

export function markdownTable(cells) {
  const head = `| ${COLUMNS.map(([, t]) => t).join(' | ')} |`;
  const sep = `|${COLUMNS.map(([key]) => (RIGHT.has(key) ? '---:' : '---')).join('|')}|`;
  return [head, sep, ...cells.map((c) => `| ${COLUMNS.map(([key]) => c[key]).join(' | ')} |`)].join('\n');
}

/** The reference targets, checked against this run (for the plugin, and the server once built). */
export function checkTargets(rows) {
  const get = (scenario, conns, key) =>
    rows.find((r) => r.scenario === scenario && r.conns === conns && r.key === key)?.result ?? null;
  const connSet = [...new Set(rows.map((r) => r.conns))].sort((a, b) => a - b);
  const maxConns = Math.max(...connSet);
  const checks = [];
  const ratio = (name, scenario, key, versus, min) => {
    for (const conns of connSet) {
      const a = get(scenario, conns, key);
      const b = get(scenario, conns, versus);
      const label = `${name} (${conns} conns)`;
      if (a === null || b === null) checks.push({ label, status: 'n/a', detail: 'not measured' });
      else {
        const value = rateRatio(a, b) ?? 0;
        checks.push({
          label,
          status: value >= min ? 'PASS' : 'FAIL',
          detail: `${formatRatio(a, b)}, target >= ${min}x`,
        });
      }
    }
  };
  for (const key of ['plugin', 'server']) {
    const who = key === 'plugin' ? 'plugin' : 'server';
    if (!rows.some((r) => r.key === key && r.result !== null)) {
      if (key === 'server' && rows.some((r) => r.key === 'server' && r.note.startsWith('not built')))
        checks.push({ label: 'warmpool server: every target', status: 'n/a', detail: 'not built yet' });
      continue;
    }
    ratio(`hello: ${who} >= 1.8x nginx+php-fpm rps`, 'hello', key, 'nginx-fpm', 1.8);
    ratio(`hello: ${who} >= 85% of the node:http floor`, 'hello', key, 'floor', 0.85);
    ratio(`lumen: ${who} >= 6x nginx+php-fpm rps`, 'lumen', key, 'nginx-fpm', 6);
    ratio(`static-1k: ${who} >= 50% of nginx rps`, 'static-1k', key, 'nginx-fpm', 0.5);
    for (const scenario of [...new Set(rows.map((r) => r.scenario))].filter((name) => !name.startsWith('classic-'))) {
      const a = get(scenario, maxConns, key);
      const b = get(scenario, maxConns, 'nginx-fpm');
      checks.push(p99Check(`${scenario}: ${who} p99 at ${maxConns} conns <= nginx+php-fpm's`, a, b));
    }
    const nodeRss = rows.filter((r) => r.key === key && r.result !== null).map((r) => r.result.nodeRssMb);
    if (nodeRss.length > 0) {
      const peak = Math.max(...nodeRss);
      checks.push({
        label: `${who}: the Node process's own RSS <= 80 MB under load`,
        status: peak <= 80 ? 'PASS' : 'FAIL',
        detail: `peak ${peak.toFixed(0)} MB over every scenario`,
      });
    }
  }
  // classic PHP (from the issue): warmpool in nginx's place against the same php-fpm, and warmpool
  // running php-cgi itself, each against nginx + php-fpm
  if (rows.some((r) => r.scenario.startsWith('classic-') && r.result !== null)) {
    ratio('classic-app: warmpool → php-fpm >= 0.9x nginx+php-fpm rps', 'classic-app', 'classic-pass', 'nginx-fpm', 0.9);
    ratio(
      'classic-hello: warmpool → php-fpm >= 0.7x nginx+php-fpm rps',
      'classic-hello',
      'classic-pass',
      'nginx-fpm',
      0.7,
    );
    ratio('classic-app: warmpool php-cgi >= 1.0x nginx+php-fpm rps', 'classic-app', 'classic-cgi', 'nginx-fpm', 1.0);
    for (const key of ['classic-pass', 'classic-cgi']) {
      for (const scenario of ['classic-hello', 'classic-app']) {
        const a = get(scenario, maxConns, key);
        const b = get(scenario, maxConns, 'nginx-fpm');
        const who = key === 'classic-pass' ? 'warmpool → php-fpm' : 'warmpool php-cgi';
        checks.push(p99Check(`${scenario}: ${who} p99 at ${maxConns} conns <= nginx+php-fpm's`, a, b));
      }
    }
  }
  return checks;
}

function firstLine(command, args) {
  // nginx -v writes to stderr, php -v to stdout: take whichever has text.
  const r = spawnSync(command, args, { encoding: 'utf8', env: { ...process.env, PHP_INI_SCAN_DIR: '' } });
  if (r.error) return 'not installed';
  return (
    `${r.stdout ?? ''}\n${r.stderr ?? ''}`
      .split('\n')
      .map((l) => l.trim())
      .find(Boolean) ?? 'unknown'
  );
}

export function describeMachine({ ini, phpInfos, fpmBin }) {
  const cpus = os.cpus();
  let memAvailable = '';
  try {
    memAvailable = `${Math.round(Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))[1]) / 1024)} MB available`;
  } catch {
    // not Linux
  }
  const opcache = [...phpInfos.entries()].map(
    ([sapi, info]) =>
      `${sapi}: opcache ${info.opcache ? 'on' : 'OFF'}, JIT ${info.jit ? 'on' : 'off'}, validate_timestamps=${info.validate_timestamps}`,
  );
  return {
    cores: `${os.availableParallelism()} (${cpus[0]?.model ?? 'unknown CPU'})`,
    memory: `${Math.round(os.totalmem() / 1024 / 1024)} MB total, ${memAvailable}`,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    php: firstLine('php', ['-c', ini, '-v']),
    'php-fpm': firstLine(fpmBin, ['-v']),
    node: process.version,
    nginx: firstLine('nginx', ['-v']),
    wrk: firstLine('wrk', ['-v']),
    opcache: opcache.length > 0 ? opcache.join('; ') : 'not checked',
  };
}

/**
 * Self time per function of a .cpuprofile: each sample is charged to the node on top of the stack,
 * so summing hitCount by function (name + url + line) gives where the CPU actually went. Shares are
 * of all samples; (idle) is left out of the list (busyShare says how much of the time was busy).
 * Native bindings show without a url: `writeBuffer` is a write to a worker's pipe, `writev` a
 * socket write, `stat`/`open`/`read`/`close`/`realpath` are fs calls handed to libuv's threadpool.
 */
export function summarizeCpuProfile(path, top = 10) {
  const profile = JSON.parse(readFileSync(path, 'utf8'));
  const totalSamples = profile.samples?.length ?? profile.nodes.reduce((s, n) => s + (n.hitCount ?? 0), 0);
  const totalMs = (profile.endTime - profile.startTime) / 1000;
  const byFunction = new Map();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url
      ? `${url.replace(/^file:\/\//, '').replace(/.*\/node_modules\/\.pnpm\//, 'pnpm:')}:${lineNumber + 1}`
      : '';
    const id = `${functionName || '(anonymous)'}\u0000${where}`;
    byFunction.set(id, (byFunction.get(id) ?? 0) + (node.hitCount ?? 0));
  }
  const idle = [...byFunction.entries()].filter(([id]) => id.startsWith('(idle)')).reduce((s, [, n]) => s + n, 0);
  // shares of the busy samples: a contender sits idle while the others of its scenario are measured
  const busySamples = totalSamples - idle;
  return {
    totalMs,
    busyShare: totalSamples > 0 ? 1 - idle / totalSamples : 0,
    top: [...byFunction.entries()]
      .filter(([id]) => !id.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([id, hits]) => {
        const [name, where] = id.split('\u0000');
        return {
          name,
          where,
          share: busySamples > 0 ? hits / busySamples : 0,
          ms: totalSamples > 0 ? (hits / totalSamples) * totalMs : 0,
        };
      }),
  };
}
