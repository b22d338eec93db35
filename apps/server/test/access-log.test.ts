import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  basicAuthUser,
  createAccessLog,
  createSiteAccessLogs,
  escapeNginx,
  formatCombined,
  formatJson,
  formatTimeLocal,
  refusedHeadRecord,
  type AccessRecord,
} from '../src/access-log.js';

const RECORD: AccessRecord = {
  time: Date.UTC(2026, 11, 4, 18, 0, 1, 123),
  remoteAddr: '203.0.113.7',
  peerAddr: '10.0.0.2',
  remoteUser: 'alice',
  method: 'GET',
  uri: '/a?b=1',
  protocol: 'HTTP/1.1',
  host: 'example.com',
  status: 200,
  bodyBytes: 1234,
  referer: 'https://ref.example/',
  userAgent: 'curl/8.5.0',
  durationMs: 12.4,
  requestId: '9f0c1b2a-0000-4000-8000-000000000001',
  site: 'default',
  cache: 'HIT',
};

describe('access log lines', () => {
  it("combined: nginx's line, then the request id", () => {
    const line = formatCombined(RECORD);
    expect(line).toBe(
      `203.0.113.7 - alice [${formatTimeLocal(RECORD.time)}] "GET /a?b=1 HTTP/1.1" 200 1234 "https://ref.example/" "curl/8.5.0" "9f0c1b2a-0000-4000-8000-000000000001"\n`,
    );
    // the fields a combined-format parser reads
    const m = /^(\S+) - (\S+) \[([^\]]+)\] "([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" "([^"]*)"\n$/.exec(line);
    expect(m).not.toBeNull();
    expect(m![3]).toMatch(/^\d\d\/[A-Z][a-z]{2}\/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$/);
  });

  it('combined: dashes for what is missing; quotes, backslashes and control bytes escaped as \\xHH', () => {
    const line = formatCombined({ ...RECORD, remoteUser: null, referer: null, userAgent: 'evil"\n\\agent' });
    expect(line).toContain(' - - [');
    expect(line).toContain('"-" "evil\\x22\\x0A\\x5Cagent"');
    expect(line.split('\n')).toHaveLength(2);
    expect(escapeNginx('é')).toBe('\\xE9');
  });

  it('json: one object per line with nginx variable names', () => {
    expect(JSON.parse(formatJson(RECORD))).toEqual({
      time: '2026-12-04T18:00:01.123Z',
      remote_addr: '203.0.113.7',
      realip_remote_addr: '10.0.0.2',
      remote_user: 'alice',
      request: 'GET /a?b=1 HTTP/1.1',
      method: 'GET',
      uri: '/a?b=1',
      protocol: 'HTTP/1.1',
      host: 'example.com',
      status: 200,
      body_bytes_sent: 1234,
      http_referer: 'https://ref.example/',
      http_user_agent: 'curl/8.5.0',
      request_time: 0.012,
      request_id: '9f0c1b2a-0000-4000-8000-000000000001',
      site: 'default',
      cache: 'HIT',
    });
  });

  it('takes the Basic auth user name as remote_user', () => {
    expect(basicAuthUser(`Basic ${Buffer.from('alice:secret').toString('base64')}`)).toBe('alice');
    expect(basicAuthUser('Bearer abc')).toBeNull();
    expect(basicAuthUser(undefined)).toBeNull();
  });
});

describe('access log file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wp-access-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('appends to the file (folder created) and reopens it after logrotate renamed it', async () => {
    const log = createAccessLog({ format: 'combined', output: 'logs/access.log' }, dir);
    expect(log.describe()).toBe(`combined → ${join(dir, 'logs', 'access.log')}`);
    log.write({ ...RECORD, uri: '/before' });
    await rename(join(dir, 'logs', 'access.log'), join(dir, 'logs', 'access.log.1'));
    log.write({ ...RECORD, uri: '/still-old-file' });
    log.reopen();
    log.write({ ...RECORD, uri: '/after' });
    log.close();
    const rotated = await readFile(join(dir, 'logs', 'access.log.1'), 'utf8');
    const current = await readFile(join(dir, 'logs', 'access.log'), 'utf8');
    expect(rotated).toContain('"GET /before HTTP/1.1"');
    expect(rotated).toContain('"GET /still-old-file HTTP/1.1"');
    expect(current).toBe(formatCombined({ ...RECORD, uri: '/after' }));
  });

  it('a file it cannot open again is said, not thrown: lines go on to the old file, and a later reopen works', async () => {
    const log = createAccessLog({ format: 'combined', output: 'logs/access.log' }, dir);
    log.write({ ...RECORD, uri: '/before' });
    // logrotate moved the folder, and a file now stands where it was (as root: no EACCES to make)
    await rename(join(dir, 'logs'), join(dir, 'old-logs'));
    await writeFile(join(dir, 'logs'), 'in the way');
    const [failed] = log.reopen();
    expect(failed).toMatchObject({
      path: join(dir, 'logs', 'access.log'),
      error: { code: expect.stringMatching(/^E/) },
    });
    log.write({ ...RECORD, uri: '/still-old-file' });
    // fixed: the next SIGUSR1 opens the new file, and the old one is closed once
    await rm(join(dir, 'logs'));
    expect(log.reopen()).toEqual([{ path: join(dir, 'logs', 'access.log'), error: null }]);
    log.write({ ...RECORD, uri: '/after' });
    expect(log.reopen()).toEqual([{ path: join(dir, 'logs', 'access.log'), error: null }]);
    log.write({ ...RECORD, uri: '/after-again' });
    log.close();
    const uris = async (file: string) =>
      (await readFile(join(dir, file), 'utf8'))
        .trim()
        .split('\n')
        .map((line) => line.split('"')[1]);
    expect(await uris('old-logs/access.log')).toEqual(['GET /before HTTP/1.1', 'GET /still-old-file HTTP/1.1']);
    expect(await uris('logs/access.log')).toEqual(['GET /after HTTP/1.1', 'GET /after-again HTTP/1.1']);
  });
});

describe("the sites' own access logs", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wp-access-sites-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("a site's lines go to its own log only, the others to the top level's; one writer per output", async () => {
    const top = createAccessLog({ format: 'combined', output: 'access.log' }, dir);
    const logs = createSiteAccessLogs(
      top,
      [
        { name: 'a.test', access_log: { format: 'json', output: join(dir, 'a.log') } },
        { name: 'b.test', access_log: null },
        // two sites, one file: one writer, lines in order
        { name: 'c.test', access_log: { format: 'combined', output: 'shared.log' } },
        { name: 'd.test', access_log: { format: 'combined', output: join(dir, 'shared.log') } },
      ],
      dir,
    );
    for (const site of ['a.test', 'b.test', 'c.test', 'd.test', '-']) logs.write({ ...RECORD, site, uri: `/${site}` });
    expect(logs.describe()).toBe(
      `combined → ${join(dir, 'access.log')}; site a.test: json → ${join(dir, 'a.log')}; site c.test: combined → ${join(dir, 'shared.log')}; site d.test: combined → ${join(dir, 'shared.log')}`,
    );
    expect(logs.outputs()).toEqual([join(dir, 'access.log'), join(dir, 'a.log'), join(dir, 'shared.log')]);
    await rename(join(dir, 'a.log'), join(dir, 'a.log.1'));
    logs.reopen();
    logs.write({ ...RECORD, site: 'a.test', uri: '/after' });
    logs.close();
    const uris = async (file: string) =>
      (await readFile(join(dir, file), 'utf8'))
        .trim()
        .split('\n')
        .map((line) => (line.startsWith('{') ? (JSON.parse(line) as { uri: string }).uri : line.split('"')[1]!));
    expect(await uris('access.log')).toEqual(['GET /b.test HTTP/1.1', 'GET /- HTTP/1.1']);
    expect(await uris('a.log.1')).toEqual(['/a.test']);
    expect(await uris('a.log')).toEqual(['/after']);
    expect(await uris('shared.log')).toEqual(['GET /c.test HTTP/1.1', 'GET /d.test HTTP/1.1']);
  });

  it('with no top-level log, only the sites with their own have lines', async () => {
    const logs = createSiteAccessLogs(
      null,
      [{ name: 'a.test', access_log: { format: 'combined', output: 'a.log' } }],
      dir,
    );
    logs.write({ ...RECORD, site: 'b.test', uri: '/b' });
    logs.write({ ...RECORD, site: 'a.test', uri: '/a' });
    logs.close();
    expect(await readFile(join(dir, 'a.log'), 'utf8')).toBe(formatCombined({ ...RECORD, site: 'a.test', uri: '/a' }));
    expect(logs.describe()).toBe(`site a.test: combined → ${join(dir, 'a.log')}`);
  });
});

describe('refusedHeadRecord', () => {
  it('a refused head\'s first line as it came, its headers when they came, or nginx\'s "-"', () => {
    const parsed = refusedHeadRecord(
      Buffer.from('GET /x?y=1 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: scan/1\r\nX-Big: aaaa'),
      '203.0.113.5',
      431,
      32,
    );
    expect(formatCombined(parsed)).toMatch(
      /^203\.0\.113\.5 - - \[[^\]]+\] "GET \/x\?y=1 HTTP\/1\.1" 431 32 "-" "scan\/1" "-"\n$/,
    );
    expect(JSON.parse(formatJson(parsed))).toMatchObject({ host: 'a.test', request: 'GET /x?y=1 HTTP/1.1' });
    const garbage = refusedHeadRecord(Buffer.from('GARBAGE\r\n\r\n'), '203.0.113.5', 400, 76);
    expect(formatCombined(garbage)).toContain('"GARBAGE" 400 76');
    expect(formatCombined(refusedHeadRecord(undefined, undefined, 408, 16))).toMatch(/^- - - \[[^\]]+\] "-" 408 16 /);
  });
});
