#!/usr/bin/env node
// warmpool benchmarks against nginx + php-fpm (and php -S, and a node:http floor).
//
//   bash bench/run.sh [flags]     installs nginx, php-fpm, wrk, Lumen if missing, then runs this
//   node bench/run.mjs [flags]    the same, when everything is installed
//
// For each scenario (bench/scenarios/*.mjs), with all its contenders (lib/contenders.mjs) up at once:
//   1. start every contender on 127.0.0.1 (each its own port) with private config files under a
//      temp dir; wait until PHP answers GET /__bench/info (and record its opcache/JIT state), then
//      check one real answer of the scenario (status, body) — a wrong answer is never benchmarked,
//      and a contender that fails is reported and stopped while the others go on;
//   2. warm each one up with wrk at the highest connection count;
//   3. per connection count, `runs` rounds of one wrk run (-t1) per contender in turn, always in the
//      same order (nginx+php-fpm first), sampling the measured contender's process tree: the runs
//      are interleaved so that the machine's speed drift reaches every contender alike;
//   4. stop them all (each one's whole process tree), whatever happened.
// Then print one table (medians of the runs, ratios to nginx+php-fpm) and write it as Markdown
// with the machine's description to bench/results/<date>.md.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { CLASSIC_INFO_PATH, prepareClassicDocroot } from './lib/classic.mjs';
import { CONTENDERS } from './lib/contenders.mjs';
import { checkAnswer, measureRun, summarize, waitReady, warmUp } from './lib/measure.mjs';
import { phpVersionDir, writePhpIni } from './lib/php-ini.mjs';
import { describeV8Trace, summarizeV8Trace, V8_TRACE_ARGS } from './lib/v8-trace.mjs';
import { installCleanup, setPgidFile, stopGroup } from './lib/processes.mjs';
import {
  NOISY_CORES,
  checkTargets,
  describeMachine,
  markdownTable,
  summarizeCpuProfile,
  tableCells,
  textTable,
} from './lib/report.mjs';

const BENCH = fileURLToPath(new URL('./', import.meta.url));
const SCENARIO_ORDER = [
  'hello',
  'hello-static',
  'lumen',
  'io-20ms',
  'static-1k',
  'static-100k',
  'upload-1m',
  'response-1m',
  'classic-hello',
  'classic-pretty',
  'classic-app',
  'classic-cached',
];

const USAGE = `usage: node bench/run.mjs [flags]
  --quick               1 run of 3 s per figure, 1 s warm-up (iterate fast)
  --runs N              runs per figure; the figure is their median (default 3)
  --duration S          seconds per run (default 2; --quick: 3)
  --warmup S            seconds of warm-up per contender and scenario (default 1)
  --workers N           PHP workers for every contender (default 2)
  --workers-io N        PHP workers in the io-20ms scenario (default 16)
  --connections LIST    wrk connection counts (default 8,32)
  --scenarios LIST      subset of: ${SCENARIO_ORDER.join(',')}
  --contenders LIST     subset of: ${CONTENDERS.map((c) => c.key).join(',')}
  --noisy-retries N     repeat a run up to N times when other jobs used > 0.25 cores meanwhile (default 1)
  --retry-budget S      at most S seconds of such repeats in the whole bench (default 90)
  --relay R             pipes (default), fds or unix: how warmpool talks to its PHP workers
  --jit                 opcache JIT on (tracing) for every contender (default off for all)
  --cpu-prof            run the Node contenders under --cpu-prof; prints their top self-time functions
  --v8-trace            run the Node contenders with V8's optimizer and GC traces; prints the hot
                        functions V8 keeps from optimizing and how much of the new space survives
  --no-save             do not write bench/results/<date>.md
  --keep                keep the temp dir (configs, logs) afterwards
  -h, --help`;

function parseFlags() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      workers: { type: 'string', default: '2' },
      'workers-io': { type: 'string', default: '16' },
      connections: { type: 'string', default: '8,32' },
      scenarios: { type: 'string' },
      contenders: { type: 'string' },
      relay: { type: 'string', default: 'pipes' },
      'noisy-retries': { type: 'string', default: '1' },
      'retry-budget': { type: 'string', default: '90' },
      jit: { type: 'boolean', default: false },
      'cpu-prof': { type: 'boolean', default: false },
      'v8-trace': { type: 'boolean', default: false },
      'no-save': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name, value, min) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) {
      console.error(`--${name} must be an integer >= ${min}, got ${JSON.stringify(value)}\n\n${USAGE}`);
      process.exit(2);
    }
    return n;
  };
  const list = (name, value, known, single = false) => {
    if (value === undefined) return known;
    const items = value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (single && items.length !== 1) {
      console.error(`--${name} takes one of: ${known.join(', ')}`);
      process.exit(2);
    }
    const unknown = items.filter((s) => !known.includes(s));
    if (unknown.length > 0) {
      console.error(`--${name}: unknown ${unknown.join(', ')}; known: ${known.join(', ')}`);
      process.exit(2);
    }
    return known.filter((k) => items.includes(k));
  };
  return {
    quick: values.quick,
    runs: int('runs', values.runs ?? (values.quick ? '1' : '3'), 1),
    // The default (3 runs x 2 s, 1 s warm-up) keeps the whole table (7 scenarios x 5 contenders x
    // 2 connection counts) near 10 minutes on 2 cores; --runs 3 --duration 10 for a long run.
    seconds: int('duration', values.duration ?? (values.quick ? '3' : '2'), 1),
    warmupSeconds: int('warmup', values.warmup ?? '1', 0),
    workers: int('workers', values.workers, 1),
    workersIo: int('workers-io', values['workers-io'], 1),
    connections: values.connections.split(',').map((c) => int('connections', c, 1)),
    scenarios: list('scenarios', values.scenarios, SCENARIO_ORDER),
    contenders: list(
      'contenders',
      values.contenders,
      CONTENDERS.map((c) => c.key),
    ),
    relay: list('relay', values.relay, ['pipes', 'fds', 'unix'], true)[0],
    noisyRetries: int('noisy-retries', values['noisy-retries'], 0),
    retryBudgetSeconds: int('retry-budget', values['retry-budget'], 0),
    jit: values.jit,
    cpuProf: values['cpu-prof'],
    v8Trace: values['v8-trace'],
    save: !values['no-save'],
    keep: values.keep,
  };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function requireTools(fpmBin) {
  const missing = [
    ['nginx', '/usr/sbin/nginx'],
    ['php-fpm', fpmBin],
    ['wrk', '/usr/bin/wrk'],
    ['php-laravel-lumen-framework', '/usr/share/php/Laravel/Lumen/autoload.php'],
  ].filter(([, path]) => !existsSync(path));
  if (missing.length > 0) {
    console.error(
      `missing: ${missing.map(([name, path]) => `${name} (${path})`).join(', ')}\nrun bash bench/run.sh, which installs them with apt-get`,
    );
    process.exit(1);
  }
  for (const dir of [join(BENCH, '../packages/fastify/dist'), join(BENCH, '../packages/pool/dist')]) {
    if (!existsSync(dir)) {
      console.error(`${dir} is missing: run \`pnpm build\` at the repository root first`);
      process.exit(1);
    }
  }
}

/** docroot/index.php (the php-fpm and php -S front controller) and the static file, per scenario. */
function prepareDocroot(scenario, dir) {
  if (scenario.classic) return prepareClassicDocroot(scenario, dir);
  const docroot = join(dir, 'public');
  mkdirSync(docroot, { recursive: true });
  const front = scenario.front
    ? `<?php require ${JSON.stringify(join(BENCH, 'php', scenario.front))};\n`
    : `<?php define('BENCH_HANDLER', ${JSON.stringify(join(BENCH, 'php', scenario.handler))});\nrequire ${JSON.stringify(join(BENCH, 'php', 'front.php'))};\n`;
  writeFileSync(join(docroot, 'index.php'), front);
  if (scenario.static) writeFileSync(join(docroot, scenario.static.file), Buffer.alloc(scenario.static.bytes, 'a'));
  return docroot;
}

function logTail(path, lines = 15) {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The legend printed under the table (and written under the Markdown one). */
function notes(cells) {
  const out = [
    'php -S is one process serving one request at a time (a reference point); it answers "Connection: close", so wrk reconnects for every request and counts each close as a socket read error.',
  ];
  if (cells.some((c) => c.rps.endsWith('*'))) {
    out.push(
      `* = during at least one run, processes outside the bench used more than ${NOISY_CORES} cores (another job on the machine): that figure is skewed, run again.`,
    );
  }
  return out;
}

function todayFile() {
  const now = new Date();
  const date = now.toISOString().slice(0, 10);
  let path = join(BENCH, 'results', `${date}.md`);
  for (let i = 2; existsSync(path); i++) path = join(BENCH, 'results', `${date}-${i}.md`);
  return path;
}

async function main() {
  const flags = parseFlags();
  const fpmBin = `/usr/sbin/php-fpm${phpVersionDir()}`;
  requireTools(fpmBin);
  const tmp = process.env.BENCH_TMP ?? mkdtempSync(join(os.tmpdir(), 'warmpool-bench-'));
  mkdirSync(tmp, { recursive: true });
  setPgidFile(join(tmp, 'pgids'));
  installCleanup(() => {
    if (!flags.keep && process.env.BENCH_TMP === undefined) rmSync(tmp, { recursive: true, force: true });
  });
  const ini = writePhpIni(tmp, { jit: flags.jit });
  const contenders = CONTENDERS.filter((c) => flags.contenders.includes(c.key));
  const scenarios = [];
  for (const name of flags.scenarios)
    scenarios.push((await import(pathToFileURL(join(BENCH, 'scenarios', `${name}.mjs`)).href)).default);

  const starts = scenarios.reduce((n, s) => n + contenders.filter((c) => c.supports(s) === true).length, 0);
  const estimate = starts * (flags.warmupSeconds + flags.connections.length * flags.runs * (flags.seconds + 0.3) + 1);
  console.error(
    `warmpool bench: ${scenarios.length} scenarios x ${contenders.length} contenders, connections ${flags.connections.join('/')}, ` +
      `${flags.runs} run(s) x ${flags.seconds} s per figure, ${flags.warmupSeconds} s warm-up, ${flags.workers} PHP workers ` +
      `(io-20ms: ${flags.workersIo}), JIT ${flags.jit ? 'on' : 'off'}; about ${Math.ceil(estimate / 60)} min; temp dir ${tmp}`,
  );

  const rows = [];
  const retryBudget = { ms: flags.retryBudgetSeconds * 1000 };
  const phpInfos = new Map();
  const profiles = [];
  const v8Traces = [];
  const failures = [];
  for (const scenario of scenarios) {
    const scenarioDir = join(tmp, scenario.name);
    const docroot = prepareDocroot(scenario, scenarioDir);
    const workers = scenario.workers?.(flags) ?? flags.workers;
    // Every supported contender of the scenario, in CONTENDERS order (nginx+php-fpm first): the
    // order of their turns in each round.
    const entries = [];
    const stop = async (entry) => {
      if (entry.started === null || entry.stopped) return;
      entry.stopped = true;
      for (const child of entry.started.groups) await stopGroup(child);
    };
    const fail = async (entry, error, stage) => {
      const message = error.message.split('\n')[0];
      process.stderr.write(
        `${stage === 'start' ? '' : `${scenario.name} / ${entry.contender.label}: `}FAILED: ${message}\n--- last lines of ${entry.ctx.logFile}\n${logTail(entry.ctx.logFile)}\n---\n`,
      );
      failures.push(`${scenario.name} / ${entry.contender.label}: ${message}`);
      entry.failed = message;
      await stop(entry);
    };
    const measured = () => entries.filter((e) => e.failed === null);
    try {
      // 1. start them all, each on its own port with its own dir and log; check each one's answer
      for (const contender of contenders) {
        const supported = contender.supports(scenario);
        if (supported !== true) {
          for (const conns of flags.connections)
            rows.push({
              scenario: scenario.name,
              conns,
              contender: contender.label,
              key: contender.key,
              result: null,
              note: supported,
            });
          continue;
        }
        const dir = join(scenarioDir, contender.key);
        mkdirSync(dir, { recursive: true });
        const profDir = join(dir, 'cpu-profiles');
        const ctx = {
          scenario,
          dir,
          docroot,
          ini,
          workers,
          relay: flags.relay,
          port: await freePort(),
          logFile: join(dir, 'output.log'),
          nodeArgs: [
            ...(flags.cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : []),
            ...(flags.v8Trace ? V8_TRACE_ARGS : []),
          ],
        };
        const entry = {
          contender,
          ctx,
          profDir,
          baseUrl: `http://127.0.0.1:${ctx.port}`,
          started: null,
          stopped: false,
          failed: null,
          samples: new Map(),
        };
        entries.push(entry);
        process.stderr.write(`${scenario.name} / ${contender.label}: starting (${workers} workers)... `);
        try {
          entry.started = await contender.start(ctx);
          const info = await waitReady(
            entry.baseUrl,
            entry.started.groups,
            60_000,
            scenario.classic ? CLASSIC_INFO_PATH : '/__bench/info',
          );
          phpInfos.set(`${contender.label} (${info.sapi})`, info);
          if (!info.opcache)
            console.error(`\nWARNING: opcache is OFF in ${contender.label} (${info.sapi}); figures are not comparable`);
          await checkAnswer(entry.baseUrl, scenario);
          process.stderr.write('ok\n');
        } catch (error) {
          await fail(entry, error, 'start');
        }
      }
      // 2. warm each one up
      if (flags.warmupSeconds > 0 && measured().length > 0)
        process.stderr.write(`${scenario.name}: warm-up, ${flags.warmupSeconds} s each\n`);
      for (const entry of measured()) {
        try {
          await warmUp({
            baseUrl: entry.baseUrl,
            scenario,
            connections: flags.connections,
            seconds: flags.warmupSeconds,
          });
        } catch (error) {
          await fail(entry, error, 'warm-up');
        }
      }
      // 3. per connection count, `runs` rounds; in each round one run of every contender in turn,
      // so a drift of the machine's speed reaches all of them alike
      const width =
        Math.max(0, ...entries.map((e) => e.contender.label.length)) +
        (flags.noisyRetries > 0 ? ` (retry ${flags.noisyRetries})`.length : 0);
      for (const conns of flags.connections) {
        for (let i = 0; i < flags.runs; i++) {
          for (const entry of measured()) {
            try {
              const sample = await measureRun({
                baseUrl: entry.baseUrl,
                scenario,
                started: entry.started,
                benchRoots: entries.filter((e) => e.started !== null && !e.stopped).flatMap((e) => e.started.roots),
                conns,
                seconds: flags.seconds,
                noisyCores: NOISY_CORES,
                noisyRetries: flags.noisyRetries,
                retryBudget,
                onRun: (r, attempt) =>
                  process.stderr.write(
                    `  c=${String(conns).padStart(2)} run ${i + 1} ${`${entry.contender.label}${attempt > 0 ? ` (retry ${attempt})` : ''}`.padEnd(width)}: ${r.rps.toFixed(0).padStart(6)} rps  p50 ${r.p50Ms.toFixed(2)} ms  p99 ${r.p99Ms.toFixed(2)} ms  ` +
                      `RSS ${r.rssMb.toFixed(0)} MB  background ${r.backgroundCores.toFixed(2)} cores${r.non2xx + r.socketErrors > 0 ? `  non-2xx ${r.non2xx}  socket errors ${r.socketErrors}` : ''}\n`,
                  ),
              });
              if (!entry.samples.has(conns)) entry.samples.set(conns, []);
              entry.samples.get(conns).push(sample);
            } catch (error) {
              await fail(entry, error, 'run');
            }
          }
        }
      }
      for (const { contender, started, failed, samples } of entries) {
        for (const conns of flags.connections) {
          const row = { scenario: scenario.name, conns, contender: contender.label, key: contender.key };
          if (failed !== null) rows.push({ ...row, result: null, note: `failed: ${failed}` });
          else rows.push({ ...row, result: summarize(conns, samples.get(conns), started.nodePid !== null), note: '' });
        }
      }
    } finally {
      // 4. stop them all (each one's whole process tree), whatever happened
      await Promise.allSettled(entries.map(stop));
    }
    if (flags.v8Trace) {
      for (const { contender, ctx } of entries) {
        // nginx and php -S logs have no V8 lines: only the Node contenders are described
        const summary = summarizeV8Trace(ctx.logFile);
        if (summary !== null && summary.scavenges > 0)
          v8Traces.push(...describeV8Trace(scenario.name, contender.label, summary));
      }
    }
    if (flags.cpuProf) {
      for (const { contender, profDir } of entries) {
        if (!existsSync(profDir)) continue;
        for (const file of readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'))) {
          const kept = join(BENCH, 'results', 'profiles', `${scenario.name}-${contender.key}.cpuprofile`);
          mkdirSync(join(BENCH, 'results', 'profiles'), { recursive: true });
          copyFileSync(join(profDir, file), kept);
          profiles.push({
            scenario: scenario.name,
            contender: contender.label,
            path: kept,
            summary: summarizeCpuProfile(kept, 8),
          });
        }
      }
    }
  }

  const cells = tableCells(rows);
  const targets = checkTargets(rows);
  const machine = describeMachine({ ini, phpInfos, fpmBin });
  const settings = `${flags.runs} run(s) x ${flags.seconds} s per figure (median), ${flags.warmupSeconds} s warm-up, wrk -t1, connections ${flags.connections.join('/')}, ${flags.workers} PHP workers per contender (io-20ms: ${flags.workersIo}), JIT ${flags.jit ? 'on' : 'off'}, warmpool relay ${flags.relay}`;

  console.log(`\n${textTable(cells)}\n`);
  console.log(`settings: ${settings}${flags.quick ? ' (--quick: indicative only)' : ''}`);
  for (const note of notes(cells)) console.log(note);
  console.log('\nreference targets:');
  for (const t of targets) console.log(`  ${t.status.padEnd(4)}  ${t.label}: ${t.detail}`);
  for (const p of profiles) {
    console.log(
      `\nCPU profile ${p.scenario} / ${p.contender} (${p.summary.totalMs.toFixed(0)} ms, ${(p.summary.busyShare * 100).toFixed(0)}% busy): top self time`,
    );
    for (const f of p.summary.top) console.log(`  ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.name}  ${f.where}`);
  }
  for (const line of v8Traces) console.log(line);
  if (failures.length > 0) console.log(`\nfailed:\n  ${failures.join('\n  ')}`);

  if (flags.save) {
    const path = todayFile();
    mkdirSync(join(BENCH, 'results'), { recursive: true });
    const md = [
      `# warmpool bench — ${new Date().toISOString().replace('T', ' ').slice(0, 16)} UTC${flags.quick ? ' (--quick)' : ''}`,
      '',
      `Command: \`node bench/run.mjs ${process.argv.slice(2).join(' ')}\``.replace(/ `$/, '`'),
      '',
      '## Machine',
      '',
      ...Object.entries(machine).map(([k, v]) => `- **${k}**: ${v}`),
      '',
      `## Settings`,
      '',
      `${settings}. Every PHP (CLI workers, php-fpm, php -S) runs with the same generated php.ini and PHP_INI_SCAN_DIR="" (see bench/lib/php-ini.mjs).`,
      '',
      '## Results',
      '',
      "Sorted slowest first within each scenario and connection count. RSS: peak sum over the contender's whole process tree (server + PHP workers) during the run; PSS: the same tree's sum right after the run; Node RSS: the Node process alone. Column meanings: bench/README.md.",
      '',
      markdownTable(cells),
      '',
      ...notes(cells).map((n) => `- ${n}`),
      '',
      '## Reference targets',
      '',
      ...targets.map((t) => `- **${t.status}** ${t.label}: ${t.detail}`),
      ...(profiles.length > 0
        ? [
            '',
            '## CPU profiles (self time)',
            '',
            ...profiles.flatMap((p) => [
              `### ${p.scenario} / ${p.contender}`,
              '',
              ...p.summary.top.map((f) => `- ${(f.share * 100).toFixed(1)}% \`${f.name}\` ${f.where}`),
              '',
            ]),
          ]
        : []),
      ...(failures.length > 0 ? ['', '## Failed', '', ...failures.map((f) => `- ${f}`)] : []),
      '',
    ].join('\n');
    writeFileSync(path, md);
    console.log(`\nresults written to ${path}`);
  }
  if (!flags.keep && process.env.BENCH_TMP === undefined) rmSync(tmp, { recursive: true, force: true });
  else if (flags.keep) console.error(`temp dir kept: ${tmp}`);
  return failures.length === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
