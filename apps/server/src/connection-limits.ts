// How many connections the public listeners hold: at most `http.max_connections` in all, and at
// most `http.max_connections_per_ip` from one client address. Without them, one client opening
// sockets and sending nothing holds each for headers_timeout (60 s), and enough of them take every
// file descriptor (no one else is accepted) or the server's memory; nginx is bounded by its
// worker_connections, and `limit_conn` per address. A connection over a limit is closed as it is
// accepted: before TLS, before a byte of it is read. Peers in `http.trusted_subnets` (a proxy or a
// CDN in front, carrying many clients on its own connections) are not limited per address; an IPv6
// client is counted by its /64 (clientKey).
import type { Server as NetServer, Socket } from 'node:net';
import { clientKey, compileTrustedSubnets } from '@warmpool/fastify';
import { ThrottledCount } from '@warmpool/pool';
import type { Logger } from 'pino';

export interface ConnectionLimitOptions {
  /** open connections in all; 0 = no limit */
  maxConnections: number;
  /** open connections from one client address; 0 = no limit */
  maxPerAddress: number;
  /** addresses not limited per address (http.trusted_subnets) */
  exempt: (address: string) => boolean;
  logger: Logger;
}

type Limit = 'max_connections' | 'max_connections_per_ip';

/** "at most 32 per client address (IPv6: per /64; trusted_subnets not counted), 4096 in all"; null without any. */
export function describeConnectionLimits(http: {
  max_connections: number;
  max_connections_per_ip: number;
}): string | null {
  const parts: string[] = [];
  if (http.max_connections_per_ip > 0)
    parts.push(`${http.max_connections_per_ip} per client address (IPv6: per /64; trusted_subnets not counted)`);
  if (http.max_connections > 0) parts.push(`${http.max_connections} in all`);
  return parts.length === 0 ? null : `at most ${parts.join(', ')}`;
}

/** The limits `http` sets, or null when it sets none (nothing is counted then). */
export function createConnectionLimits(
  http: { max_connections: number; max_connections_per_ip: number },
  trustedSubnets: readonly string[] | undefined,
  logger: Logger,
): ConnectionLimits | null {
  if (http.max_connections === 0 && http.max_connections_per_ip === 0) return null;
  const trusted = compileTrustedSubnets(trustedSubnets ?? [], 'http.trusted_subnets');
  return new ConnectionLimits({
    maxConnections: http.max_connections,
    maxPerAddress: http.max_connections_per_ip,
    exempt: (address) => trusted.contains(address),
    logger,
  });
}

export class ConnectionLimits {
  readonly #options: ConnectionLimitOptions;
  #open = 0;
  readonly #byAddress = new Map<string, number>();
  /**
   * Sockets counted already: an Upgrade served as a plain request comes back through 'connection'
   * (upgrade.ts gives the socket a fresh parser), and counting it twice refused the client's own
   * request at its limit (curl --http2 http://… sends Upgrade: h2c).
   */
  readonly #admitted = new WeakSet<Socket>();
  readonly #refused: Record<Limit, number> = { max_connections: 0, max_connections_per_ip: 0 };
  /** one warning per limit at most every 10 s, with the count refused since */
  readonly #warnings: Record<Limit, ThrottledCount> = {
    max_connections: new ThrottledCount((refused) => this.#warn('max_connections', refused)),
    max_connections_per_ip: new ThrottledCount((refused) => this.#warn('max_connections_per_ip', refused)),
  };
  /** the last refusal's reason per limit, for its summary line */
  readonly #why: Record<Limit, string> = { max_connections: '', max_connections_per_ip: '' };

  constructor(options: ConnectionLimitOptions) {
    this.#options = options;
  }

  /** Counts, and limits, the connections a listener accepts (TLS ones included, before the handshake). */
  watch(server: NetServer): void {
    server.on('connection', (socket: Socket) => this.#admit(socket));
  }

  get open(): number {
    return this.#open;
  }

  /** Connections closed as they were accepted, by the limit they were over. */
  get refused(): Readonly<Record<Limit, number>> {
    return this.#refused;
  }

  /** Prometheus lines: the connections open now and those refused. */
  metrics(): string {
    return [
      '# HELP warmpool_connections_open Client connections the public listeners hold now.',
      '# TYPE warmpool_connections_open gauge',
      `warmpool_connections_open ${this.#open}`,
      '# HELP warmpool_connections_refused_total Client connections closed as they were accepted, by the limit they were over (http.max_connections, http.max_connections_per_ip).',
      '# TYPE warmpool_connections_refused_total counter',
      `warmpool_connections_refused_total{limit="max_connections"} ${this.#refused.max_connections}`,
      `warmpool_connections_refused_total{limit="max_connections_per_ip"} ${this.#refused.max_connections_per_ip}`,
      '',
    ].join('\n');
  }

  #admit(socket: Socket): void {
    if (this.#admitted.has(socket)) return;
    const { maxConnections, maxPerAddress } = this.#options;
    if (maxConnections > 0 && this.#open >= maxConnections) {
      this.#refuse(socket, 'max_connections', `the server holds ${this.#open} connections (http.max_connections)`);
      return;
    }
    const address = socket.remoteAddress;
    const key =
      address !== undefined && maxPerAddress > 0 && !this.#options.exempt(address) ? clientKey(address) : null;
    if (key !== null) {
      const held = this.#byAddress.get(key) ?? 0;
      if (held >= maxPerAddress) {
        this.#refuse(
          socket,
          'max_connections_per_ip',
          `${key} holds ${held} connections (http.max_connections_per_ip)`,
        );
        return;
      }
      this.#byAddress.set(key, held + 1);
    }
    this.#open++;
    this.#admitted.add(socket);
    socket.once('close', () => {
      this.#open--;
      if (key === null) return;
      const held = this.#byAddress.get(key)! - 1;
      if (held === 0) this.#byAddress.delete(key);
      else this.#byAddress.set(key, held);
    });
  }

  #refuse(socket: Socket, limit: Limit, why: string): void {
    socket.destroy();
    this.#refused[limit]++;
    this.#why[limit] = why;
    this.#warnings[limit].add();
  }

  #warn(limit: Limit, refused: number): void {
    this.#options.logger.warn(
      { limit, refused },
      `${this.#why[limit]}: closing new connections (${refused} refused since the last such line); raise http.${limit} if these clients are legitimate`,
    );
  }
}
