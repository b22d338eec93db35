// The CA's problem documents → errors that say what to do, with the codes of the README table.
import { executionAsyncId } from 'node:async_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as acme from 'acme-client';
import {
  explainFailure,
  installProblemRecorder,
  problemOf,
  recordProblems,
  takeProblem,
  type AcmeProblem,
  type FailureContext,
} from '../../src/acme/problems.js';
import { probeDirectory } from '../../src/acme/managed-certificate.js';

const context: FailureContext = {
  certificate: 'example.com',
  domains: ['example.com', 'www.example.com'],
  challengeType: 'http-01',
  directory: 'https://ca.test/dir',
  now: () => Date.parse('2026-01-01T00:00:00Z'),
};
const problem = (type: string, detail: string, extra = {}) => ({
  type: `urn:ietf:params:acme:error:${type}`,
  detail,
  ...extra,
});

describe('problemOf', () => {
  it('reads an error body, with Retry-After', () => {
    expect(
      problemOf({
        status: 429,
        headers: { 'retry-after': '3600' },
        data: { type: 'urn:ietf:params:acme:error:rateLimited', detail: 'too many certificates' },
      }),
    ).toEqual({
      type: 'urn:ietf:params:acme:error:rateLimited',
      detail: 'too many certificates',
      retryAfterMs: 3_600_000,
    });
  });

  it("reads an invalid challenge's error and finds the name in the URL the CA fetched", () => {
    expect(
      problemOf({
        status: 200,
        data: {
          type: 'http-01',
          status: 'invalid',
          error: {
            type: 'urn:ietf:params:acme:error:connection',
            detail: 'Get "http://b.test/.well-known/acme-challenge/x": refused',
          },
        },
      }),
    ).toMatchObject({ type: 'urn:ietf:params:acme:error:connection', domain: 'b.test' });
  });

  it('a CA answering 5xx with a page, not a problem document, is unavailable, with its Retry-After', () => {
    expect(problemOf({ status: 503, headers: { 'retry-after': '120' }, data: '<html>maintenance</html>' })).toEqual({
      type: 'urn:ietf:params:acme:error:serverInternal',
      detail: 'HTTP 503',
      retryAfterMs: 120_000,
    });
    expect(problemOf({ status: 502, data: { message: 'bad gateway' } })).toMatchObject({ detail: 'HTTP 502' });
    expect(problemOf({ status: 404, data: 'not found' })).toBeNull();
  });

  it('takes the name of the first subproblem, and ignores bodies that are not problems', () => {
    expect(
      problemOf({
        data: {
          type: 'urn:ietf:params:acme:error:rejectedIdentifier',
          detail: 'no',
          subproblems: [{ identifier: { value: 'x.test' } }],
        },
      }),
    ).toMatchObject({ domain: 'x.test' });
    expect(problemOf({ status: 200, data: { status: 'valid', identifier: { value: 'a.test' } } })).toBeNull();
    expect(problemOf({ status: 200, data: 'PEM' })).toBeNull();
  });
});

describe('explainFailure', () => {
  const failure = async (type: string, detail: string, extra = {}, error: unknown = new Error(detail)) =>
    explainFailure(error, [problem(type, detail, extra)], context);

  it('DNS: point the name here', async () => {
    const error = await failure('dns', 'NXDOMAIN looking up A for www.example.com', { domain: 'www.example.com' });
    expect(error.code).toBe('WP_SERVER_ACME_DNS');
    expect(error.message).toMatch(/^www\.example\.com: the CA could not find this name's address/);
    expect(error.message).toContain('Point its DNS A/AAAA records at this server');
    expect(error.message).toContain('`dig +short www.example.com`');
  });

  it('a connection problem that is a failed name lookup (as pebble says it) is DNS, not a closed port', async () => {
    const error = await failure(
      'connection',
      'Get "http://dns.test:5002/.well-known/acme-challenge/x": could not resolve URL "http://dns.test:5002/.well-known/acme-challenge/x"',
      { domain: 'dns.test' },
    );
    expect(error.code).toBe('WP_SERVER_ACME_DNS');
    expect(error.message).toMatch(/^dns\.test: the CA could not find this name's address/);
  });

  it('connection: open port 80 (HTTP-01) or 443 (TLS-ALPN-01)', async () => {
    const http = await failure('connection', 'dial tcp 1.2.3.4:80: i/o timeout', { domain: 'example.com' });
    expect(http.code).toBe('WP_SERVER_ACME_UNREACHABLE');
    expect(http.message).toContain('could not connect to port 80');
    expect(http.message).toContain('Open port 80 to the internet');
    const tls = await explainFailure(new Error('x'), [problem('connection', 'refused')], {
      ...context,
      challengeType: 'tlsalpn-01',
    });
    expect(tls.message).toContain('port 443');
  });

  it('the name failed on is the one its challenge was for, when the order knows it', async () => {
    const error = Object.assign(new Error('x'), { acmeDomain: 'www.example.com' });
    expect((await failure('connection', '1.2.3.4: refused', {}, error)).message).toMatch(/^www\.example\.com: /);
  });

  it('wrong answer: DNS points elsewhere or a proxy is in front', async () => {
    const error = await failure(
      'unauthorized',
      'Invalid response from http://example.com/.well-known/acme-challenge/x: 404',
    );
    expect(error.code).toBe('WP_SERVER_ACME_CHALLENGE');
    expect(error.message).toContain('does not pass /.well-known/acme-challenge/ through');
  });

  it('rate limit: until when, from Retry-After', async () => {
    const error = await failure('rateLimited', 'too many certificates already issued', { retryAfterMs: 7_200_000 });
    expect(error.code).toBe('WP_SERVER_ACME_RATE_LIMITED');
    expect(error.message).toContain('warmpool tries again after 2026-01-01T02:00:00Z');
    expect(error.message).toContain("use Let's Encrypt staging");
    expect(error.details.retryAfterMs).toBe(7_200_000);
  });

  it('the CA unavailable (5xx, a lost nonce): not the names, retried after its Retry-After', async () => {
    const error = await failure('serverInternal', 'HTTP 503', { retryAfterMs: 120_000 });
    expect(error.code).toBe('WP_SERVER_ACME_CA_UNREACHABLE');
    expect(error.message).toContain('it is unavailable or failing, not refusing the names');
    expect(error.message).toContain('tries again after 2026-01-01T00:02:00Z (its Retry-After)');
    expect(error.details.retryAfterMs).toBe(120_000);
    expect((await failure('badNonce', 'JWS has an invalid anti-replay nonce')).code).toBe(
      'WP_SERVER_ACME_CA_UNREACHABLE',
    );
  });

  it('a CA that wants External Account Binding: says to set http.ssl.acme.eab', async () => {
    const error = await failure('externalAccountRequired', 'an external account binding is required');
    expect(error.code).toBe('WP_SERVER_ACME_ORDER');
    expect(error.message).toContain('requires External Account Binding');
    expect(error.message).toContain("set http.ssl.acme.eab's key_id and mac_key");
  });

  it('no problem from the CA and its directory does not answer: the CA is unreachable', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as { port: number };
    await new Promise((resolve) => closed.close(resolve));
    const error = await explainFailure(new TypeError("Cannot read properties of undefined (reading 'config')"), [], {
      ...context,
      probeDirectory: () => probeDirectory(`https://127.0.0.1:${port}/dir`),
    });
    expect(error.code).toBe('WP_SERVER_ACME_CA_UNREACHABLE');
    expect(error.message).toMatch(/^cannot reach the CA at https:\/\/ca\.test\/dir: .*ECONNREFUSED/);
    expect(error.message).toContain("Check this server's outbound HTTPS");
    // acme-client's TypeError is not its cause: the log appends a cause's message (pino), and it said nothing
    expect(error.cause).toBeUndefined();
  });

  it('no problem and the directory answers: the error as it came', async () => {
    const directory = createServer((_req, res) => res.end('{}'));
    await new Promise<void>((resolve) => directory.listen(0, '127.0.0.1', resolve));
    const { port } = directory.address() as { port: number };
    const error = await explainFailure(new Error('boom'), [], {
      ...context,
      probeDirectory: () => probeDirectory(`http://127.0.0.1:${port}/dir`),
    });
    directory.close();
    expect(error.code).toBe('WP_SERVER_ACME_ORDER');
    expect(error.message).toBe('ordering the certificate for example.com, www.example.com failed: boom');
  });
});

describe('explainFailure: faults of this machine', () => {
  it('a filesystem error during the order (certs_dir full or read-only) is WP_SERVER_ACME_STORE with its path, not the CA refusing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wp-problems-'));
    let fsError: unknown;
    try {
      // a real one: a write into a folder that is not there (ENOSPC and EROFS carry a path the same way)
      await writeFile(join(dir, 'http-01', 'token'), 'x');
    } catch (error) {
      fsError = error;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const wrapped = new Error('challenge failed', { cause: fsError });
    for (const error of [fsError, wrapped]) {
      const explained = await explainFailure(error, [], { ...context, probeDirectory: async () => null });
      expect(explained.code).toBe('WP_SERVER_ACME_STORE');
      expect(explained.message).toContain(join(dir, 'http-01', 'token'));
    }
    // a socket's errno error names no path: the CA unreachable, not the disk
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), {
      code: 'ECONNREFUSED',
      syscall: 'connect',
    });
    const explained = await explainFailure(refused, [], { ...context, probeDirectory: async () => 'ECONNREFUSED' });
    expect(explained.code).toBe('WP_SERVER_ACME_CA_UNREACHABLE');
  });
});

describe('recordProblems', () => {
  /** A promise continuation's async id: 0 unless some async hook tracks every promise. */
  async function promiseContinuationId(): Promise<number> {
    await null;
    await new Promise((resolve) => setImmediate(resolve));
    return executionAsyncId();
  }

  it('keeps overlapping orders apart, and tracks no promise once every order has ended', async () => {
    // a CA whose every answer is the problem named in the path
    const ca = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ type: `urn:ietf:params:acme:error:${req.url?.slice(1)}`, detail: 'said' }));
    });
    await new Promise<void>((resolve) => ca.listen(0, '127.0.0.1', resolve));
    const { port } = ca.address() as { port: number };
    installProblemRecorder();
    const ask = (problem: string) => acme.axios.get(`http://127.0.0.1:${port}/${problem}`);
    const kinds = (problems: readonly AcmeProblem[]) => problems.map((p) => p.type.split(':').at(-1));

    // Node 20 and 22 run AsyncLocalStorage on a promise hook: once on, every promise of the process
    // (each request's) pays for it, about a sixth of a plain route's rps, until it is turned off
    expect(await promiseContinuationId()).toBe(0);
    let endFirst = () => {};
    const firstMayEnd = new Promise<void>((resolve) => {
      endFirst = resolve;
    });
    const first = recordProblems(async () => {
      await ask('badNonce');
      await firstMayEnd;
      await ask('rateLimited');
      return takeProblem('rateLimited');
    });
    const second = await recordProblems(async () => {
      await ask('dns');
      return takeProblem('badNonce');
    });
    endFirst();
    const firstEnded = await first;
    ca.close();
    expect(second.ok && second.value).toBe(false);
    expect(kinds(second.problems)).toEqual(['dns']);
    expect(firstEnded.ok && firstEnded.value).toBe(true);
    expect(kinds(firstEnded.problems)).toEqual(['badNonce']);
    expect(await promiseContinuationId()).toBe(0);
  });
});
