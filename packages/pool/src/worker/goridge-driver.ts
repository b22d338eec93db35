// The driver of goridge workers (RoadRunner's protocol): one relay listener per pool when workers
// connect over a socket, the RR_* environment, and reply frames drained to their end.
import type { CancelSignal } from '../cancel.js';
import type { ResolvedPoolOptions } from '../options.js';
import { createWorkerSpec } from '../pool/allocator.js';
import { SocketRelayListener } from '../relay/socket.js';
import type { WorkerDriver } from './pool-worker.js';
import { Worker, type ExecReply, type ExecRequest, type WorkerSpec } from './worker.js';

export class GoridgeDriver implements WorkerDriver<ExecRequest, ExecReply> {
  readonly protocol = 'goridge';
  #listener: SocketRelayListener | null = null;
  #spec: WorkerSpec | null = null;

  async open(options: ResolvedPoolOptions<ExecRequest>): Promise<void> {
    const { relay } = options;
    if (relay.kind === 'unix' || relay.kind === 'tcp') {
      this.#listener = new SocketRelayListener(relay);
      await this.#listener.listen({ uid: options.uid, gid: options.gid });
    }
    this.#spec = createWorkerSpec(options, this.#listener);
  }

  spawn(signal?: CancelSignal): Promise<Worker> {
    return Worker.start(this.#spec!, signal);
  }

  async drain(reply: ExecReply): Promise<void> {
    if (reply.stream !== null) for await (const frame of reply.stream) void frame;
  }

  async close(): Promise<void> {
    await this.#listener?.close();
  }
}
