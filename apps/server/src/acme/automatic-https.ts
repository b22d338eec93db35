// http.ssl.acme as the server runs it: the certificates of the plan (one per site), the challenge
// responder on the listeners, status for `warmpool cert status`, and the certificate metrics.
//
// Boot (serve.ts):
// 1. load(): certs_dir is prepared; each certificate is served from the store, or a temporary one
//    stands in; nothing waits for a CA, so the sites boot and listen at once;
// 2. attachHttp() / attachHttps(): the HTTP listener (serving or redirecting) answers HTTP-01
//    challenges, the HTTPS listener TLS-ALPN-01 handshakes and HTTP-01 checks a CA followed a
//    redirect with;
// 3. start(), once listening: extra challenge listeners (alt ports), then each certificate's schedule
//    (missing ones are ordered now, each on its own: one site's failure never holds up another).
import type { Server as HttpServer } from 'node:http';
import type { Http2SecureServer } from 'node:http2';
import type { Server as NetServer } from 'node:net';
import type { Logger } from 'pino';
import type * as acme from 'acme-client';
import type { AcmeOptions } from '@warmpool/config';
import { ListenError } from '../errors.js';
import { parseAddress } from '../lifecycle.js';
import type { CliOutput } from '../output.js';
import type { TlsContexts } from '../tls.js';
import { ChallengeResponder, createHttpChallengeServer, interceptHttpChallenges } from './challenges.js';
import { type CertificateStatus, SERVED_STATES } from './certificate-status.js';
import { ManagedCertificate, type CertificateReporter } from './managed-certificate.js';
import { openAccount } from './order.js';
import { planCertificates, type SiteHosts, wildcardMatches } from './plan.js';
import { installProblemRecorder } from './problems.js';
import { CertificateStore } from './store.js';
import { createTlsAlpnServer, routeTlsAlpnChallenges } from './tls-alpn.js';

export interface AutomaticHttpsOptions {
  acme: AcmeOptions;
  sites: readonly SiteHosts[];
  contexts: TlsContexts;
  /** http.address and http.ssl.address: the alt ports are compared with theirs */
  httpAddress: string;
  httpsAddress: string;
  out: CliOutput;
  logger: Logger;
}

/** What serve and config check say of Let's Encrypt staging. */
export const STAGING_WARNING =
  "http.ssl.acme: Let's Encrypt staging (use_production_endpoint is false, as RoadRunner's default): browsers will not trust these certificates; set use_production_endpoint: true once the setup works";

export class AutomaticHttps {
  readonly responder: ChallengeResponder;
  readonly store: CertificateStore;
  readonly certificates: readonly ManagedCertificate[];
  readonly #options: AutomaticHttpsOptions;
  readonly #extraListeners: NetServer[] = [];
  #account: Promise<acme.Client> | null = null;

  constructor(options: AutomaticHttpsOptions) {
    installProblemRecorder();
    this.#options = options;
    const { acme: settings, contexts } = options;
    this.store = new CertificateStore(settings.certs_dir);
    this.responder = new ChallengeResponder(this.store);
    const report = this.#reporter();
    const hasDefault = contexts.defaultCredentials !== null;
    this.certificates = planCertificates(settings.domains, options.sites).map(
      (plan, i) =>
        new ManagedCertificate(plan, {
          store: this.store,
          responder: this.responder,
          contexts,
          account: () => {
            this.#account ??= openAccount(this.store, {
              directory: settings.directory,
              ...(settings.email === undefined ? {} : { email: settings.email }),
              ...(settings.eab === undefined ? {} : { eab: settings.eab }),
              notice: (message) => {
                options.out.warn(message);
                options.logger.warn({ certsDir: settings.certs_dir }, 'acme account key replaced');
              },
            });
            return this.#account;
          },
          dropAccount: () => {
            this.#account = null;
          },
          directory: settings.directory,
          challengeType: settings.challenge_type,
          report,
          isDefault: !hasDefault && i === 0,
        }),
    );
  }

  /** Step 1 of boot: stored certificates (or temporary ones) are served. Throws AcmeStoreError. */
  async load(): Promise<void> {
    const { out, acme: settings } = this.#options;
    for (const warning of await this.store.prepare()) out.warn(warning);
    if (settings.staging) out.warn(STAGING_WARNING);
    for (const notice of wildcardNotices(settings.domains, this.#options.sites)) {
      if (notice.listed) out.info(notice.line);
      else out.warn(notice.line);
    }
    for (const certificate of this.certificates) {
      const from = await certificate.load();
      out.info(loadedLine(certificate, from, settings.directory));
    }
  }

  /** Step 2: the HTTP listener answers HTTP-01 challenges before anything else sees the request. */
  attachHttp(server: HttpServer): void {
    interceptHttpChallenges(server, this.responder);
  }

  /**
   * Step 2: the HTTPS listener hands TLS-ALPN-01 validation handshakes to the responder, and answers
   * HTTP-01 checks that arrive over HTTPS (a CA follows a redirect that something in front of port
   * 80 sends) before the sites see them.
   */
  attachHttps(server: Http2SecureServer): void {
    routeTlsAlpnChallenges(server, this.responder);
    interceptHttpChallenges(server, this.responder);
  }

  /**
   * Step 3, once the listeners listen: alt-port listeners (on every interface, where a port forward
   * or the CA reaches them, as RoadRunner's), then the schedules. Throws ListenError.
   */
  async start(): Promise<void> {
    const { acme: settings, httpAddress, httpsAddress, out } = this.#options;
    const http = parseAddress(httpAddress);
    const https = parseAddress(httpsAddress);
    if (settings.alt_http_port !== undefined && settings.alt_http_port !== http.port)
      await this.#listen(createHttpChallengeServer(this.responder), 'alt_http_port', settings.alt_http_port);
    if (settings.alt_tlsalpn_port !== undefined && settings.alt_tlsalpn_port !== https.port)
      await this.#listen(createTlsAlpnServer(this.responder), 'alt_tlsalpn_port', settings.alt_tlsalpn_port);
    for (const listener of this.#extraListeners) {
      const address = listener.address();
      if (address !== null && typeof address === 'object')
        out.info(`ACME challenges also answered on port ${address.port} (alt port)`);
    }
    for (const certificate of this.certificates) certificate.start();
  }

  status(): CertificateStatus[] {
    return this.certificates.map((certificate) => certificate.status());
  }

  /**
   * Prometheus lines, for every name whatever it is served (the temporary certificate included):
   * seconds until that certificate expires, and its state (1 for the one it is in, 0 for the others).
   */
  metrics(): string {
    const expiry = [
      '# HELP warmpool_cert_expiry_seconds Seconds until the certificate served for the domain expires (http.ssl.acme), the temporary self-signed one included; negative once expired.',
      '# TYPE warmpool_cert_expiry_seconds gauge',
    ];
    const states = [
      '# HELP warmpool_cert_state The state of the certificate served for the domain (http.ssl.acme): 1 for its state, 0 for the others. valid, partial (issued for only some of its certificate names), expired (still served; browsers refuse it), temporary (self-signed while the CA has not issued one; browsers warn).',
      '# TYPE warmpool_cert_state gauge',
    ];
    for (const certificate of this.certificates) {
      for (const { domain, expiresInSeconds, state } of certificate.servedByName()) {
        expiry.push(`warmpool_cert_expiry_seconds{domain="${domain}"} ${Math.round(expiresInSeconds)}`);
        for (const each of SERVED_STATES)
          states.push(`warmpool_cert_state{domain="${domain}",state="${each}"} ${each === state ? 1 : 0}`);
      }
    }
    return `${[...expiry, ...states].join('\n')}\n`;
  }

  /** Stops the schedules (an order in flight is not waited for) and the alt-port listeners. */
  async stop(): Promise<void> {
    for (const certificate of this.certificates) certificate.stop();
    await Promise.all(
      this.#extraListeners.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))),
    );
  }

  async #listen(server: NetServer, key: 'alt_http_port' | 'alt_tlsalpn_port', port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error) => reject(new ListenError(`http.ssl.acme.${key}`, `:${port}`, error)));
      server.listen({ port }, () => resolve());
    });
    this.#extraListeners.push(server);
  }

  #reporter(): CertificateReporter {
    const { out, logger } = this.#options;
    return {
      info: (event, message, fields) => {
        out.info(message);
        logger.info(fields, event);
      },
      success: (event, message, fields) => {
        out.success(message);
        logger.info(fields, event);
      },
      error: (event, message, fields) => {
        out.error(message);
        logger.error(fields, event);
      },
    };
  }
}

/**
 * A wildcard host (`*.example.com`) gets no certificate of its own: HTTP-01 and TLS-ALPN-01 cannot
 * prove a wildcard. Say so at start, with the names under it that are listed, so a name nobody
 * listed is not a surprise at its first TLS handshake.
 */
export function wildcardNotices(
  domains: readonly string[],
  sites: readonly SiteHosts[],
): Array<{ line: string; listed: boolean }> {
  const lines: Array<{ line: string; listed: boolean }> = [];
  for (const site of sites) {
    for (const host of site.hosts ?? []) {
      if (!host.startsWith('*.')) continue;
      const listed = domains.filter((domain) => wildcardMatches(host, domain));
      const line =
        `http.ssl.acme: ${host} (site ${site.name}) gets no certificate of its own (HTTP-01 and TLS-ALPN-01 cannot prove a wildcard); ` +
        (listed.length === 0
          ? 'names under it get the default certificate: list the ones you serve in http.ssl.acme.domains'
          : `listed under it: ${listed.join(', ')}; any other name under it gets the default certificate`);
      lines.push({ line, listed: listed.length > 0 });
    }
  }
  return lines;
}

/** What the start says of a certificate: what is served, and what waits for the CA. */
function loadedLine(certificate: ManagedCertificate, from: 'stored' | 'temporary', directory: string): string {
  const parts: string[] = [];
  if (from === 'stored') {
    const covered = certificate.coveredDomains;
    parts.push(
      certificate.olderVersionUsed === null
        ? `stored one in use (${covered.join(', ')}; expires ${certificate.status().notAfter})`
        : `${certificate.olderVersionUsed}; the version before it is in use (${covered.join(', ')}; expires ${certificate.status().notAfter})`,
    );
    const waiting = certificate.domains.filter((domain) => !covered.includes(domain));
    if (waiting.length > 0)
      parts.push(`${waiting.join(', ')} wait${waiting.length === 1 ? 's' : ''} for one (temporary meanwhile)`);
    if (certificate.servedFromOtherCa !== null)
      parts.push(
        `it is from ${certificate.servedFromOtherCa}, the CA configured before: served until ${directory} issues one`,
      );
  } else {
    parts.push(
      `${certificate.unusedStored ?? 'none stored yet'}; a temporary self-signed one is served until the CA issues it`,
    );
  }
  const carried = certificate.carriedFailure;
  if (carried !== null)
    parts.push(`its attempts failed before this start [${carried.code}]: the next one at ${carried.nextAttempt}`);
  return `certificate ${certificate.name}: ${parts.join('; ')}`;
}
