// The CLI over rpc.listen: `warmpool reset | workers | tune` (and `rr reset`, Octane's reload) send
// one warmpool.Command call, JSON-encoded, and get the admin socket's answer back with its progress
// lines (rpc/methods.ts). Failures read like the admin socket's: not running → exit 3.
import { createConnection } from 'node:net';
import { parseRpcListen } from '@warmpool/config';
import { FrameDecoder } from '@warmpool/pool/protocol';
import {
  AdminDeniedError,
  AdminRemoteError,
  AdminUnreachableError,
  type AdminCommand,
  type AdminProgressData,
  type AdminRequest,
  type AdminResponseData,
  type WireError,
} from '../admin/protocol.js';
import { encodeRpcFrame, FLAG_CODEC_JSON, FLAG_ERROR, MAX_RPC_FRAME_BYTES, readRpcCall } from './protocol.js';

/** Whether an admin target is an RPC address (rpc.listen) rather than an admin socket path. */
export function isRpcTarget(target: string): boolean {
  return target.startsWith('tcp://') || target.startsWith('unix://');
}

const METHOD = 'warmpool.Command';

export function rpcAdminRequest<C extends AdminCommand>(
  target: string,
  request: Extract<AdminRequest, { cmd: C }>,
  onProgress?: (progress: AdminProgressData[C]) => void,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<AdminResponseData[C]> {
  const address = parseRpcListen(target);
  return new Promise((resolve, reject) => {
    const socket =
      address.kind === 'unix' ? createConnection(address.path) : createConnection(address.port, address.host);
    let connected = false;
    let settled = false;
    const settle = (error: Error | null, data?: unknown) => {
      if (settled) return;
      settled = true;
      options.signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      if (error === null) resolve(data as AdminResponseData[C]);
      else reject(error);
    };
    const onAbort = () => settle(new Error('RPC request aborted'));
    if (options.signal?.aborted === true) return onAbort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const decoder = new FrameDecoder(
      (frame) => {
        const call = readRpcCall(frame);
        if (typeof call === 'string') return settle(notWarmpool(target, call));
        if (frame.flags & FLAG_ERROR) {
          const text = call.body.toString('utf8');
          return settle(
            /can't find (method|service)/.test(text)
              ? notWarmpool(target, text)
              : new AdminRemoteError({ code: 'WP_SERVER_ADMIN_FAILED', message: text }),
          );
        }
        let answer: { progress?: unknown[]; ok?: boolean; data?: unknown; error?: WireError };
        try {
          answer = JSON.parse(call.body.toString('utf8')) as typeof answer;
        } catch {
          return settle(notWarmpool(target, 'the answer is not JSON'));
        }
        for (const progress of answer.progress ?? []) onProgress?.(progress as AdminProgressData[C]);
        if (answer.ok === true) settle(null, answer.data);
        else settle(new AdminRemoteError(answer.error ?? { code: 'WP_SERVER_ADMIN_FAILED', message: 'failed' }));
      },
      { maxFrameBytes: 64 * MAX_RPC_FRAME_BYTES },
    );
    socket.once('connect', () => {
      connected = true;
      socket.write(encodeRpcFrame(FLAG_CODEC_JSON, 1, METHOD, JSON.stringify(request)));
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk);
      } catch (error) {
        // a JSON line: warmpool's admin socket, named as rpc.listen
        if (chunk[0] === 0x7b /* { */ && address.kind === 'unix')
          return settle(
            new AdminUnreachableError(
              `${target} is warmpool's admin socket, not its RPC listener: pass it as --socket ${address.path}`,
              target,
            ),
          );
        // the frame decoder's advice is about PHP workers' stdout, not about this peer
        settle(notWarmpool(target, (error as Error).message.split('. Likely cause')[0]!));
      }
    });
    socket.on('error', (error: NodeJS.ErrnoException) => settle(connectError(target, error, connected)));
    socket.on('close', () =>
      settle(
        new AdminUnreachableError(
          `warmpool closed the RPC connection ${target} before answering "${request.cmd}" (did the server stop?)`,
          target,
        ),
      ),
    );
  });
}

function notWarmpool(target: string, why: string): AdminUnreachableError {
  return new AdminUnreachableError(
    `${target} does not answer as warmpool's RPC listener (${why}); is it RoadRunner's, or another program's?`,
    target,
  );
}

function connectError(target: string, error: NodeJS.ErrnoException, connected: boolean): Error {
  if (connected)
    return new AdminUnreachableError(`lost the RPC connection to ${target}: ${error.message}`, target, error);
  if (error.code === 'EACCES' || error.code === 'EPERM')
    return new AdminDeniedError(
      `permission denied on ${target}: it is mode 0600, so run this command as the user warmpool runs as`,
      target,
      error,
    );
  if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT')
    return new AdminUnreachableError(
      `is warmpool running? nothing answers on ${target} (rpc.listen of its config, or -o rpc.listen=…)`,
      target,
      error,
    );
  return new AdminUnreachableError(`cannot connect to ${target}: ${error.message}`, target, error);
}
