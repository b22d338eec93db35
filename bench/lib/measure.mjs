// Measuring started contenders: readiness, a correctness check, a warm-up, and one wrk run at a
// time with the measured contender's process tree sampled for memory and CPU while wrk drives it.
// run.mjs decides the order of the runs (interleaved across contenders) and takes the medians.
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuTicks, machineTicks, processTree, rssBytes } from './processes.mjs';
import { runWrk } from './wrk.mjs';

const MB = 1024 * 1024;
const SAMPLE_EVERY_MS = 250;
/** USER_HZ: /proc/<pid>/stat counts CPU time in these (100 on Linux) */
const TICKS_PER_SECOND = 100;
const RETRY_PAUSE_MS = 2000;

function pssBytes(pid) {
  try {
    const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'));
    return match === null ? 0 : Number(match[1]) * 1024;
  } catch {
    return 0;
  }
}

/**
 * Samples the trees under `roots` until stop() is called; stop() returns the peak RSS sum and the
 * PSS sum right after the run.
 * RSS counts shared pages once per process (php-fpm children share one opcache segment; each CLI
 * worker has its own), PSS splits shared pages between their users: both are reported.
 *
 * It also measures background load: CPU the machine spent outside the bench's own processes (the
 * harness, wrk, and every contender's tree under `benchRoots` with its workers, measured or idle)
 * while wrk ran, in cores. Other jobs on a shared 2-core machine skew a figure; run.mjs marks such
 * figures.
 */
export function startSampler(roots, nodePid, benchRoots = roots) {
  // CPU of the contender's own tree (server + workers): per request, the cost of one request on
  // this stack, which other jobs on the machine disturb far less than the request rate.
  const treeTicks = () => processTree(roots).reduce((sum, pid) => sum + (cpuTicks(pid) ?? 0), 0);
  const treeAtStart = treeTicks();
  let peakRss = 0;
  let pssAfter = 0;
  let peakNode = 0;
  const ours = new Map(); // pid → last cpu ticks
  let oursTicks = 0;
  const firstMachine = machineTicks();
  let lastMachine = firstMachine;
  let oursAtLast = 0;
  const sample = (final) => {
    let rss = 0;
    let pss = 0;
    for (const pid of processTree(roots)) {
      rss += rssBytes(pid);
      // PSS only once wrk is done: smaps_rollup walks the process's page tables under its memory
      // lock (about 1 ms for a Node server, 0.1 ms for an nginx worker), which stalls a Node server
      // that maps memory meanwhile; read every 250 ms during a run it added about 3 ms to Node's
      // p99 at 32 connections and nothing measurable to nginx's. RSS (statm) is a counter read.
      if (final) pss += pssBytes(pid);
    }
    peakRss = Math.max(peakRss, rss);
    if (final) pssAfter = pss;
    if (nodePid !== null) peakNode = Math.max(peakNode, rssBytes(nodePid));
    if (final) return; // wrk has exited by now: its last ticks are gone, so the CPU window ends at the previous sample
    // The contenders are the harness's children, so its own tree already holds them: naming their
    // roots says so rather than relying on it.
    for (const pid of processTree([process.pid, ...benchRoots])) {
      const ticks = cpuTicks(pid);
      if (ticks === null) continue;
      const before = ours.get(pid);
      if (before !== undefined) oursTicks += ticks - before;
      else if (started) oursTicks += ticks; // born during the run (wrk): all its time is ours
      ours.set(pid, ticks);
    }
    lastMachine = machineTicks();
    oursAtLast = oursTicks;
  };
  let started = false;
  sample(false);
  started = true;
  const timer = setInterval(() => sample(false), SAMPLE_EVERY_MS);
  return () => {
    clearInterval(timer);
    sample(true);
    const elapsed = lastMachine.total - firstMachine.total;
    const cores = os.availableParallelism();
    const backgroundCores =
      elapsed > 0 ? Math.max(0, ((lastMachine.busy - firstMachine.busy - oursAtLast) / elapsed) * cores) : 0;
    const cpuMs = ((treeTicks() - treeAtStart) * 1000) / TICKS_PER_SECOND;
    return {
      rssMb: peakRss / MB,
      pssMb: pssAfter / MB,
      nodeRssMb: nodePid === null ? null : peakNode / MB,
      backgroundCores,
      cpuMs,
    };
  };
}

function requestInit(request) {
  const method = request.method ?? 'GET';
  const init = { method, signal: AbortSignal.timeout(10_000), headers: {} };
  if (request.bodyBytes) {
    init.body = Buffer.alloc(request.bodyBytes, 'x');
    init.headers['Content-Type'] = request.contentType ?? 'application/octet-stream';
  }
  // fetch decodes the body; its Content-Encoding header still says what was sent
  if (request.acceptEncoding) init.headers['Accept-Encoding'] = request.acceptEncoding;
  return init;
}

function anyExited(groups) {
  return groups.find((child) => child.exitCode !== null || child.signalCode !== null) ?? null;
}

function diedError(groups) {
  const dead = anyExited(groups);
  return dead === null ? null : new Error(`${dead.spawnfile} died (code ${dead.exitCode}, signal ${dead.signalCode})`);
}

/** Polls GET /__bench/info (`infoPath`) until PHP answers (every contender routes it to PHP); returns it. */
export async function waitReady(baseUrl, groups, timeoutMs = 60_000, infoPath = '/__bench/info') {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const dead = anyExited(groups);
    if (dead !== null)
      throw new Error(`${dead.spawnfile} exited during start (code ${dead.exitCode}, signal ${dead.signalCode})`);
    try {
      const res = await fetch(`${baseUrl}${infoPath}`, { signal: AbortSignal.timeout(5000) });
      const text = await res.text();
      if (res.status === 200) return JSON.parse(text);
      last = `status ${res.status}: ${text.slice(0, 200)}`;
    } catch (error) {
      last = error.cause?.code ?? error.message;
    }
    await sleep(100);
  }
  throw new Error(`not ready within ${timeoutMs} ms (${last})`);
}

/** One request checked against the scenario's expectation: never benchmark a wrong answer. */
export async function checkAnswer(baseUrl, scenario) {
  const res = await fetch(`${baseUrl}${scenario.request.path}`, requestInit(scenario.request));
  const body = Buffer.from(await res.arrayBuffer());
  const { expect } = scenario;
  const text = body.toString('utf8');
  const problems = [];
  if (res.status !== expect.status) problems.push(`status ${res.status}, expected ${expect.status}`);
  if (expect.body !== undefined && text !== expect.body)
    problems.push(`body ${JSON.stringify(text.slice(0, 120))}, expected ${JSON.stringify(expect.body)}`);
  if (expect.includes !== undefined && !text.includes(expect.includes))
    problems.push(`body ${JSON.stringify(text.slice(0, 120))} lacks ${JSON.stringify(expect.includes)}`);
  if (expect.length !== undefined && body.length !== expect.length)
    problems.push(`${body.length} body bytes, expected ${expect.length}`);
  const encoding = res.headers.get('content-encoding') ?? undefined;
  if (expect.encoding !== undefined && encoding !== expect.encoding)
    problems.push(`Content-Encoding ${encoding ?? 'none'}, expected ${expect.encoding}`);
  if (problems.length > 0)
    throw new Error(
      `wrong answer for ${scenario.request.method ?? 'GET'} ${scenario.request.path}: ${problems.join('; ')}`,
    );
}

/** The median of a list of numbers (the mean of the middle two for an even count). */
export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Warm-up: one wrk run at the highest connection count, its figures thrown away. */
export async function warmUp({ baseUrl, scenario, connections, seconds }) {
  if (seconds > 0)
    await runWrk({
      url: `${baseUrl}${scenario.request.path}`,
      connections: Math.max(...connections),
      seconds,
      request: scenario.request,
    });
}

/**
 * One run of one started contender: a wrk run at `conns` connections while its process tree is
 * sampled (memory, CPU) and so is the machine's background load. `benchRoots` lists the process
 * trees of every contender the bench has up (the measured one included): their CPU is the bench's
 * own, never "other jobs". A run during which other jobs used more than `noisyCores` is repeated
 * (after a pause), up to noisyRetries times and while the whole bench's retry budget
 * (retryBudget.ms, shared) lasts; the quietest attempt is returned and still marked if it was noisy.
 * onRun(sample, attempt) is called after every attempt. Throws when wrk fails or the contender died.
 */
export async function measureRun({
  baseUrl,
  scenario,
  started,
  benchRoots,
  conns,
  seconds,
  noisyCores,
  noisyRetries,
  retryBudget,
  onRun,
}) {
  const url = `${baseUrl}${scenario.request.path}`;
  let best = null;
  for (let attempt = 0; attempt <= noisyRetries; attempt++) {
    if (attempt > 0) {
      const cost = RETRY_PAUSE_MS + seconds * 1000;
      if (retryBudget.ms < cost) break;
      retryBudget.ms -= cost;
      await sleep(RETRY_PAUSE_MS);
    }
    const stop = startSampler(started.roots, started.nodePid, benchRoots);
    let wrk;
    try {
      wrk = await runWrk({ url, connections: conns, seconds, request: scenario.request });
    } catch (error) {
      stop();
      throw diedError(started.groups) ?? error; // wrk fails when the contender is gone: say so
    }
    const memory = stop();
    const dead = diedError(started.groups);
    if (dead !== null) throw dead;
    const sample = {
      ...wrk,
      ...memory,
      cpuUsPerRequest: wrk.requests > 0 ? (memory.cpuMs * 1000) / wrk.requests : null,
    };
    onRun?.(sample, attempt);
    if (best === null || sample.backgroundCores < best.backgroundCores) best = sample;
    if (sample.backgroundCores <= noisyCores) break;
  }
  return best;
}

/** One figure from the runs at one connection count: medians, error counts summed (of the kept attempts). */
export function summarize(conns, samples, hasNode) {
  return {
    conns,
    rps: median(samples.map((s) => s.rps)),
    /** each round's rps, in round order: ratios pair runs of the same round (lib/report.mjs) */
    runRps: samples.map((s) => s.rps),
    runP99Ms: samples.map((s) => s.p99Ms),
    p50Ms: median(samples.map((s) => s.p50Ms)),
    p99Ms: median(samples.map((s) => s.p99Ms)),
    rssMb: median(samples.map((s) => s.rssMb)),
    pssMb: median(samples.map((s) => s.pssMb)),
    nodeRssMb: hasNode ? median(samples.map((s) => s.nodeRssMb)) : null,
    cpuUsPerRequest: median(samples.map((s) => s.cpuUsPerRequest ?? 0)),
    non2xx: samples.reduce((sum, s) => sum + s.non2xx, 0),
    socketErrors: samples.reduce((sum, s) => sum + s.socketErrors, 0),
    backgroundCores: Math.max(...samples.map((s) => s.backgroundCores)),
    requests: samples.reduce((sum, s) => sum + s.requests, 0),
  };
}
