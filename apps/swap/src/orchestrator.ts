// The supervisor's state machine. One child serves at a time, except during a swap:
//
//   idle ─swap→ checking (version, config check) → green-starting (spawned with the shared sockets and
//   its own private status socket) → green-ready (/ready 200 on the private socket) → handover (SIGTERM
//   to blue: it stops accepting, finishes in-flight requests, exits; SIGKILL of its process group after
//   the drain timeout) → idle with green active.
//
// Any failure before the hand-over kills green and leaves blue serving untouched (rollback); the swap
// answers with the reason. The shared listening sockets are never closed while the supervisor runs:
// an active server that exits on its own (a crash, kill -9) is started again on them, with a backoff,
// as nginx's master respawns a worker; connections meanwhile wait in the listen backlog.
import { createServer as createHttpServer, request as httpRequest, type Server as HttpServer } from 'node:http';
import {
  BootFailedError,
  BusyError,
  CheckFailedError,
  ListenFailedError,
  NoPreviousError,
  NotReadyError,
  StoppedError,
  SwapError,
} from './errors.js';
import { ServerChild, runCheck, type Colour } from './child.js';
import { bindSocket, parseAddress, type BoundSocket, type ListenerName } from './listeners.js';
import { probe, waitReady } from './readiness.js';
import { writeState, type SwapRecord, type SwapState } from './state-file.js';

export interface SwapOrchestratorOptions {
  binary: string;
  /** the server's arguments, e.g. ["serve", "-c", "warmpool.yaml"] */
  args: string[];
  /** public listener addresses; "status" is served by the supervisor (proxied to the active child) */
  listen: Map<ListenerName, string>;
  stateDir: string;
  readyTimeoutMs: number;
  drainTimeoutMs: number;
  /**
   * How long green must stay up once ready, with blue still serving beside it, before blue drains
   * (Kubernetes' minReadySeconds): a release that crashes just after its /ready is rolled back
   * with blue untouched, not found dead after blue is gone. 0 hands over at once.
   */
  settleMs?: number;
  env?: NodeJS.ProcessEnv;
  log: (line: string) => void;
  /**
   * The listener addresses the config gives now (read again at each swap), or null when they come
   * from --listen flags: a swap to a config whose listeners differ from the sockets held is refused
   */
  currentListen?: (() => Map<ListenerName, string>) | null;
  /** Restarts of an active server that exits on its own; default DEFAULT_RESTART. */
  restart?: RestartPolicy;
}

export interface RestartPolicy {
  /** restarts within `windowMs`; the next exit within it stops the supervisor */
  max: number;
  windowMs: number;
  /** the wait before the nth restart within the window (the last entry for any after) */
  backoffMs: readonly number[];
}

/** At once (a kill -9 costs a boot, not a gap), then slower; a release that crashes 6 times a minute is given up. */
export const DEFAULT_RESTART: RestartPolicy = { max: 5, windowMs: 60_000, backoffMs: [0, 1_000, 2_000, 4_000, 8_000] };

type Progress = (line: string) => void;

/** The warmpool-swap process's blue-green state machine: owns the shared sockets and one server child per colour. */
export class SwapOrchestrator {
  readonly options: SwapOrchestratorOptions;
  readonly startedAt = new Date();
  #shared: BoundSocket[] = [];
  #privateStatus = new Map<ServerChild, BoundSocket>();
  #statusServer: HttpServer | undefined;
  #active: ServerChild | undefined;
  #children = new Set<ServerChild>();
  #previous: string | null = null;
  readonly #stoppedBySwap = new WeakSet<ServerChild>();
  #history: SwapRecord[] = [];
  #phase = 'starting';
  #stopping = false;
  /** the signal that stopped the supervisor */
  #stoppedBy: string = 'SIGTERM';
  /** exits of the active server on its own, within the restart window */
  #crashes: number[] = [];
  #restartTimer: NodeJS.Timeout | undefined;
  /**
   * Called when the active child exited on its own more often than the restart policy allows: the
   * supervisor exits too. `code`: its exit code (1 when a signal ended it), `how`: "killed by SIGKILL".
   */
  onActiveExit: (code: number, how: string) => void = () => {};

  constructor(options: SwapOrchestratorOptions) {
    this.options = options;
  }

  get active(): ServerChild | undefined {
    return this.#active;
  }

  /** Binds the public sockets, starts blue and waits for it to be ready. */
  async start(): Promise<void> {
    const { listen } = this.options;
    try {
      for (const name of ['http', 'https', 'metrics'] as const) {
        const address = listen.get(name);
        if (address === undefined) continue;
        if (name === 'metrics' && address === listen.get('status')) continue; // one listener serves both
        this.#shared.push(bindSocket(name, address));
      }
      if (listen.get('status') !== undefined) this.#statusServer = await this.#serveStatus(listen.get('status')!);
    } catch (error) {
      this.close();
      throw error;
    }
    const blue = this.#spawn('blue', this.options.binary);
    this.#phase = 'blue-starting';
    this.#save();
    try {
      blue.version = await this.#version(this.options.binary);
      await this.#untilReady(blue, this.options.log);
    } catch (error) {
      await blue.stop(5_000);
      this.close();
      throw error;
    }
    this.#promote(blue);
    this.#phase = 'idle';
    this.#save();
  }

  /** Blue → green with `binary`; throws (after killing green, blue untouched) when green is not fit. */
  async swap(binary: string, progress: Progress = () => {}): Promise<void> {
    if (this.#phase !== 'idle' || this.#active === undefined) throw new BusyError();
    let blue = this.#active;
    const colour: Colour = blue.colour === 'blue' ? 'green' : 'blue';
    const started = Date.now();
    const record = (ok: boolean, reason?: string) => {
      this.#history.push({
        at: new Date(started).toISOString(),
        from: blue.binary,
        to: binary,
        ok,
        ...(reason === undefined ? {} : { reason }),
        ms: Date.now() - started,
      });
      if (this.#history.length > 50) this.#history.shift();
    };
    let green: ServerChild | undefined;
    // the file the running server came from, rebuilt in place: it works, but `rollback` would
    // "go back" to the same new files
    if (binary === blue.binary)
      progress(
        `▲ ${binary} is the binary ${blue.colour} runs: rollback will have no other release to go back to; give each release a folder of its own`,
      );
    try {
      this.#phase = 'checking';
      progress(`• checking ${binary}: version`);
      const version = await this.#version(binary, colour);
      progress(`• ${binary}: ${version}; config check`);
      this.#checkListeners();
      const check = this.#checkArgs();
      if (check !== null) {
        const { code, output } = await runCheck(binary, check, this.#childEnv(colour));
        if (code !== 0)
          throw new CheckFailedError(
            `\`${binary} ${check.join(' ')}\` failed (${code === null ? 'did not run' : `exit ${code}`})`,
            output,
          );
      }
      this.#phase = `${colour}-starting`;
      green = this.#spawn(colour, binary);
      green.version = version;
      this.#save();
      progress(
        `• ${colour} pid ${green.pid} starting on the shared sockets; waiting for /ready (${this.options.readyTimeoutMs} ms)`,
      );
      await this.#untilReady(green, progress);
      await this.#settle(green, blue, progress);
      this.#phase = `${colour}-ready`;
      // last look before blue stops accepting: green must still be alive and ready
      const status = await probe(this.#statusUrl(green)!, 2_000);
      if (!green.alive)
        throw new BootFailedError(`${colour} ${green.exitDescription} before the hand-over`, green.output);
      if (status !== 200)
        throw new NotReadyError(`${colour} /ready answered ${status || 'nothing'} right before the hand-over`);
    } catch (error) {
      const reason = summaryOf(error as Error);
      progress(`✗ ${reason}`);
      if (green !== undefined) {
        progress(`• stopping ${colour} pid ${green.pid}; ${blue.colour} pid ${blue.pid} keeps serving`);
        await this.#stopReported(green, 5_000, progress);
      }
      record(false, reason);
      this.#phase = 'idle';
      this.#save();
      throw error;
    }
    // hand-over: both accept now; blue stops accepting and drains (a blue restarted after a crash
    // while green booted is the one to stop)
    blue = this.#active ?? blue;
    this.#phase = 'handover';
    this.#promote(green);
    this.#previous = blue.binary;
    this.#save();
    progress(
      `• ${blue.colour} pid ${blue.pid} draining (SIGTERM, SIGKILL after ${this.options.drainTimeoutMs} ms); ${colour} pid ${green.pid} serves`,
    );
    const blueStopped = this.#stopReported(blue, this.options.drainTimeoutMs, progress);
    // green dying while blue drains: the old release is started again at once, under green's colour
    // (its admin socket is free; blue's is held until blue is gone); waiting for blue's drain left
    // nothing accepting connections for as long as the drain took (a request waited 16 s)
    const startOldAgain = (): ServerChild => {
      progress(`✗ ${colour} ${green.exitDescription} during the hand-over; starting ${blue.binary} again now`);
      const child = this.#spawn(colour, blue.binary);
      child.version = blue.version;
      this.#promote(child);
      this.#save();
      return child;
    };
    const greenDied = await Promise.race([blueStopped.then(() => false), green.exited.then(() => true)]);
    let again = greenDied && !this.#stopping ? startOldAgain() : null;
    await blueStopped;
    if (blue.exitDescription === 'killed by SIGKILL')
      progress(
        `▲ ${blue.colour}'s drain ran past --drain-timeout (${this.options.drainTimeoutMs} ms) and was cut: requests it still served were lost; raise --drain-timeout above the server's longest drain`,
      );
    if (this.#stopping) {
      // stopped during the hand-over: green was asked to stop too; restarting blue would start a
      // server nobody stops (the supervisor waited for it, then was killed)
      const reason = `the supervisor was stopped (${this.#stoppedBy}) during the hand-over`;
      progress(`✗ ${reason}`);
      record(false, reason);
      this.#phase = 'stopping';
      this.#save();
      throw new StoppedError(this.#stoppedBy);
    }
    // green died while blue drained (or as blue's drain ended): the old binary serves again
    if (again === null && !green.alive) again = startOldAgain();
    if (again !== null) {
      const reason = `${colour} ${green.exitDescription} during the hand-over; restarted ${blue.binary}`;
      this.#previous = null;
      record(false, reason);
      this.#phase = 'idle';
      this.#save();
      await this.#untilReady(again, progress).catch(() => {});
      throw new BootFailedError(reason, green.output);
    }
    record(true);
    this.#phase = 'idle';
    this.#save();
    progress(`✓ swapped to ${binary} (${colour} pid ${green.pid}) in ${Date.now() - started} ms`);
  }

  /**
   * The sockets are bound once, at start, and handed to every server: a config that now listens
   * elsewhere (http.address changed, https added) swapped "✓" on the old port, or had the new server
   * bind the new one itself, so that the next swap failed with EADDRINUSE (a blue-green probe).
   */
  #checkListeners(): void {
    const read = this.options.currentListen;
    if (read === undefined || read === null) return;
    let now: Map<ListenerName, string>;
    try {
      now = read();
    } catch {
      return; // the server's config check says what is wrong with the file
    }
    const held = this.options.listen;
    const changes: string[] = [];
    for (const name of new Set([...held.keys(), ...now.keys()])) {
      const before = held.get(name);
      const after = now.get(name);
      if (before === after) continue;
      changes.push(
        before === undefined
          ? `${name} ${after} added`
          : after === undefined
            ? `${name} ${before} removed`
            : `${name} ${before} → ${after}`,
      );
    }
    if (changes.length > 0)
      throw new CheckFailedError(
        `the config's listeners changed (${changes.join(', ')}): warmpool-swap holds the sockets it started with and hands them to every server; restart it to take the new ones (systemctl restart warmpool-swap: a short gap, or keep the addresses and swap)`,
        '',
      );
  }

  /** A swap back to the previous binary. */
  async rollback(progress: Progress = () => {}): Promise<void> {
    if (this.#previous === null) throw new NoPreviousError();
    await this.swap(this.#previous, progress);
  }

  /** A signal for every child (SIGUSR1: reopen logs). */
  signalAll(signal: NodeJS.Signals): void {
    for (const child of this.#children) child.signal(signal);
  }

  /** SIGTERM/SIGINT: forwarded to every child; resolves when they are gone. */
  async shutdown(signal: NodeJS.Signals): Promise<void> {
    this.#stopping = true;
    this.#stoppedBy = signal;
    clearTimeout(this.#restartTimer);
    this.#phase = 'stopping';
    this.#save();
    await Promise.all(
      [...this.#children].map(async (child) => {
        child.signal(signal);
        const timer = setTimeout(() => child.killGroup(), this.options.drainTimeoutMs);
        await child.exited;
        clearTimeout(timer);
      }),
    );
    this.close();
  }

  close(): void {
    for (const socket of this.#shared) socket.close();
    for (const socket of this.#privateStatus.values()) socket.close();
    this.#statusServer?.close();
    this.#statusServer?.closeAllConnections();
  }

  state(): SwapState {
    const a = this.#active;
    return {
      supervisorPid: process.pid,
      startedAt: this.startedAt.toISOString(),
      active:
        a === undefined
          ? null
          : {
              colour: a.colour,
              binary: a.binary,
              version: a.version,
              pid: a.pid ?? null,
              startedAt: new Date(a.startedAt).toISOString(),
              statusUrl: this.#statusUrl(a),
            },
      previous: this.#previous,
      phase: this.#phase,
      children: [...this.#children].map((c) => ({ colour: c.colour, pid: c.pid ?? null, binary: c.binary })),
      history: this.#history,
    };
  }

  #save(): void {
    try {
      writeState(this.options.stateDir, this.state());
    } catch (error) {
      this.options.log(`▲ cannot write the state file: ${(error as Error).message}`);
    }
  }

  #childEnv(colour: Colour): NodeJS.ProcessEnv {
    return { ...(this.options.env ?? process.env), WARMPOOL_SWAP_COLOUR: colour };
  }

  /** `serve -c x.yaml` → `config check -c x.yaml`; null when the args are not a serve command. */
  #checkArgs(): string[] | null {
    const [first, ...rest] = this.options.args;
    return first === 'serve' ? ['config', 'check', ...rest] : null;
  }

  async #version(binary: string, colour: Colour = 'blue'): Promise<string> {
    const { code, output } = await runCheck(binary, ['version'], this.#childEnv(colour));
    if (code !== 0)
      throw new CheckFailedError(
        `\`${binary} version\` failed (${code === null ? 'did not run' : `exit ${code}`})`,
        output,
      );
    const first = output.trim().split('\n')[0] ?? '';
    // a wrapper script or another program that exits 0: not a binary the swap can check or run
    if (first === '')
      throw new CheckFailedError(
        `\`${binary} version\` printed nothing: is it the warmpool binary (or a link to it)?`,
        output,
      );
    return first;
  }

  #spawn(colour: Colour, binary: string): ServerChild {
    const status = bindSocket('status', '127.0.0.1:0');
    const child = new ServerChild({
      colour,
      binary,
      args: this.options.args,
      sockets: [...this.#shared, status],
      env: this.#childEnv(colour),
      log: this.options.log,
    });
    this.#privateStatus.set(child, status);
    this.#children.add(child);
    void child.exited.then(() => {
      this.#children.delete(child);
      this.#privateStatus.get(child)?.close();
      this.#privateStatus.delete(child);
      // a child the swap stops is reported by the swap's progress (which the log has too)
      if (!this.#stoppedBySwap.has(child))
        this.options.log(`• ${child.colour} pid ${child.pid} ${child.exitDescription}`);
      this.#save();
      if (child === this.#active && !this.#stopping && this.#phase !== 'handover') this.#restartActive(child);
    });
    return child;
  }

  /**
   * The active server exited on its own: its binary is started again under its colour (its admin
   * socket is free) on the sockets held, after the policy's backoff; past the policy, onActiveExit.
   */
  #restartActive(dead: ServerChild): void {
    const policy = this.options.restart ?? DEFAULT_RESTART;
    const now = Date.now();
    this.#crashes = this.#crashes.filter((at) => now - at < policy.windowMs);
    const what = `the active server (${dead.colour} pid ${dead.pid}) ${dead.exitDescription}`;
    if (this.#crashes.length >= policy.max) {
      this.options.log(
        `✗ ${what}: ${this.#crashes.length + 1} exits within ${policy.windowMs} ms, more than the ${policy.max} restarts allowed; warmpool-swap stops`,
      );
      this.onActiveExit(dead.process.exitCode || 1, dead.exitDescription);
      return;
    }
    this.#crashes.push(now);
    const n = this.#crashes.length;
    const delay = policy.backoffMs[Math.min(n, policy.backoffMs.length) - 1] ?? 0;
    this.options.log(
      `✗ ${what}; starting ${dead.binary} again ${delay === 0 ? 'now' : `in ${delay} ms`} (restart ${n} of ${policy.max} within ${policy.windowMs} ms); the sockets stay open: connections wait in the backlog`,
    );
    this.#restartTimer = setTimeout(() => {
      // stopped, or a swap handed over meanwhile
      if (this.#stopping || this.#active !== dead) return;
      const again = this.#spawn(dead.colour, dead.binary);
      again.version = dead.version;
      this.#promote(again);
      this.#save();
      this.#untilReady(again, this.options.log).catch((error: unknown) => {
        // one that exited is reported (and restarted or given up) by its exit
        if (again.alive) this.options.log(`▲ ${summaryOf(error as Error)}`);
      });
    }, delay);
  }

  /** Stops a child for the swap and says how it ended (only here: the exit handler leaves it out). */
  async #stopReported(child: ServerChild, graceMs: number, progress: Progress): Promise<void> {
    this.#stoppedBySwap.add(child);
    await child.stop(graceMs);
    progress(`• ${child.colour} pid ${child.pid} ${child.exitDescription}`);
  }

  #promote(child: ServerChild): void {
    this.#active = child;
  }

  #statusUrl(child: ServerChild): string | null {
    const socket = this.#privateStatus.get(child);
    return socket === undefined ? null : `http://127.0.0.1:${socket.port}/ready`;
  }

  async #untilReady(child: ServerChild, progress: Progress): Promise<void> {
    try {
      await waitReady({ url: this.#statusUrl(child)!, timeoutMs: this.options.readyTimeoutMs, exited: child.exited });
    } catch (error) {
      // the child's own lines say what it waits for (workers booting, a php-fpm that does not answer)
      if (error instanceof NotReadyError) throw new NotReadyError(error.message, child.output);
      throw error;
    }
    if (!child.alive)
      throw new BootFailedError(
        `${child.colour} pid ${child.pid} ${child.exitDescription} while booting`,
        child.output,
      );
    progress(`• ${child.colour} pid ${child.pid} ready`);
  }

  /** Both serve for --settle; green exiting meanwhile fails the swap before blue is touched. */
  async #settle(green: ServerChild, blue: ServerChild, progress: Progress): Promise<void> {
    const settleMs = this.options.settleMs ?? 0;
    if (settleMs <= 0) return;
    this.#phase = `${green.colour}-settling`;
    this.#save();
    progress(`• ${green.colour} serves beside ${blue.colour} for --settle ${settleMs} ms before ${blue.colour} drains`);
    let timer: NodeJS.Timeout | undefined;
    const settled = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, settleMs);
    });
    await Promise.race([settled, green.exited]);
    clearTimeout(timer);
    if (!green.alive)
      throw new BootFailedError(
        `${green.colour} pid ${green.pid} ${green.exitDescription} within --settle (${settleMs} ms) of being ready`,
        green.output,
      );
  }

  /** The public status address: the supervisor answers it by forwarding to the active child's private status listener. */
  #serveStatus(address: string): Promise<HttpServer> {
    const server = createHttpServer((req, res) => {
      const active = this.#active;
      const url = active === undefined ? null : this.#statusUrl(active);
      if (url === null) {
        res.writeHead(503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status: 'starting' })}\n`);
        return;
      }
      const target = new URL(req.url ?? '/', url);
      const upstream = httpRequest(target, { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on('error', (error) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`status of the active server unreachable: ${error.message}\n`);
      });
      req.pipe(upstream);
    });
    const { host, port } = parseAddress(address);
    return new Promise((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new ListenFailedError('status', address, error.code ?? error.message)),
      );
      server.listen({ host, port }, () => resolve(server));
    });
  }
}

/**
 * One line for the progress and the history: the error's first line, and when output follows it
 * (it ends with ':'), the output's line that says most: a failed check's first error, a child's
 * last line (what it did or waited for last).
 */
export function summaryOf(error: Error): string {
  const first = error.message.split('\n')[0] ?? '';
  const output = error instanceof SwapError ? error.details.output : undefined;
  if (!first.endsWith(':') || typeof output !== 'string') return first;
  const lines = output
    .split('\n')
    .map((line) => line.trim().replace(/^[✗▲•✓]\s*/, ''))
    .filter((line) => line !== '' && !line.endsWith(':'));
  const cause = error instanceof CheckFailedError ? lines[0] : lines.at(-1);
  return cause === undefined ? first.slice(0, -1) : `${first} ${cause}`;
}
