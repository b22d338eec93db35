// auth_basic over real sockets: 401 with the realm without the right user and password, the files
// and routes under the prefix behind it, an open path under it, and a user file edited while serving.
import { execFileSync } from 'node:child_process';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import warmpool, { checkOptions, compileBasicAuth, type WarmpoolOptions } from '../src/index.js';
import { PasswordChecks } from '../src/network/basic-auth.js';
import { until } from '../../../test/helpers/until.js';

const SITES = fileURLToPath(new URL('../../../test/fixtures/sites/', import.meta.url));
let dir: string;
let pub: string;
let users: string;
let app: FastifyInstance;
let url: string;

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const line = (user: string, flag: string, password: string) =>
  `${user}:${execFileSync('openssl', ['passwd', flag, password]).toString().trim()}\n`;
/** A line as `htpasswd -B` writes it (cost 12: a quarter of a second of JavaScript to check). */
const bcryptLine = (user: string, password: string, cost: number) =>
  `${execFileSync('htpasswd', ['-nbB', '-C', String(cost), user, password])
    .toString()
    .trim()}\n`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'wp-basic-auth-'));
  cpSync(join(SITES, 'static-basic'), join(dir, 'site'), { recursive: true });
  pub = join(dir, 'site', 'public');
  users = join(dir, 'htpasswd');
  mkdirSync(join(pub, 'nested', 'open'), { recursive: true });
  writeFileSync(join(pub, 'nested', 'index.html'), 'STAFF-INDEX\n');
  writeFileSync(join(pub, 'nested', 'open', 'x.txt'), 'OPEN\n');
  writeFileSync(
    users,
    `# staff\n${line('alice', '-apr1', 'wonderland')}${line('bob', '-6', 'builder')}long:{PLAIN}${'y'.repeat(300)}\nedge:{PLAIN}${'z'.repeat(256)}\n${bcryptLine('dan', 'the-man', 12)}`,
  );
  app = Fastify();
  await app.register(warmpool, {
    php: false,
    static: { dir: pub },
    auth_basic: [
      { prefix: '/nested', realm: 'Staff only', user_file: users },
      { prefix: '/nested/open', off: true },
    ],
  });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await app?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('plugin: auth_basic', () => {
  it('answers 401 with the realm to no, a wrong, or a malformed Authorization; the right users get in', async () => {
    for (const authorization of [
      undefined,
      basic('alice', 'nope'),
      basic('carol', 'wonderland'),
      'Basic !!!',
      'Bearer x',
    ]) {
      const res = await request(`${url}/nested/`, { headers: authorization === undefined ? {} : { authorization } });
      expect({ authorization, status: res.statusCode }).toEqual({ authorization, status: 401 });
      expect(res.headers['www-authenticate']).toBe('Basic realm="Staff only", charset="UTF-8"');
      expect(await res.body.text()).toBe('Unauthorized\n');
    }
    for (const [user, password] of [
      ['alice', 'wonderland'],
      ['bob', 'builder'],
    ] as const) {
      const res = await request(`${url}/nested/`, { headers: { authorization: basic(user, password) } });
      expect({ user, status: res.statusCode }).toEqual({ user, status: 200 });
      expect(await res.body.text()).toBe('STAFF-INDEX\n');
    }
  });

  it('lets a bcrypt user (htpasswd -B) in, checked a slice at a time: the loop answers others meanwhile', async () => {
    const order: string[] = [];
    const dan = basic('dan', 'the-man');
    // a page and its assets at once, with one header: one check of the hash, shared
    const staff = Array.from({ length: 6 }, () =>
      request(`${url}/nested/`, { headers: { authorization: dan } }).then(async (res) => {
        order.push('staff');
        return { status: res.statusCode, body: await res.body.text() };
      }),
    );
    const other = request(`${url}/style.css`).then(async (res) => {
      order.push('other');
      await res.body.dump();
      return res.statusCode;
    });
    expect(await Promise.all(staff)).toEqual(Array(6).fill({ status: 200, body: 'STAFF-INDEX\n' }));
    expect(await other).toBe(200);
    // 1,024 x 4 key schedules of Blowfish run in slices: the static file did not wait behind them
    expect(order[0]).toBe('other');
    const wrong = await request(`${url}/nested/`, { headers: { authorization: basic('dan', 'the-woman') } });
    expect(wrong.statusCode).toBe(401);
    await wrong.body.dump();
  });

  it('refuses a password over 256 bytes before hashing it (SHA-crypt costs its square), even the right one', async () => {
    // "long" has a {PLAIN} password of 300 bytes: right, and still refused; 256 bytes get in
    for (const [user, password, status] of [
      ['long', 'y'.repeat(300), 401],
      ['edge', 'z'.repeat(256), 200],
    ] as const) {
      const res = await request(`${url}/nested/`, { headers: { authorization: basic(user, password) } });
      expect({ user, status: res.statusCode }).toEqual({ user, status });
      await res.body.dump();
    }
  });

  it('leaves other paths and an off: true path under the prefix open; an encoded or upper-case path meets its rule', async () => {
    const open = await request(`${url}/style.css`);
    expect(open.statusCode).toBe(200);
    await open.body.dump();
    const under = await request(`${url}/nested/open/x.txt`);
    expect(under.statusCode).toBe(200);
    expect(await under.body.text()).toBe('OPEN\n');
    // a protected prefix in any case (a case-insensitive router behind it); the open one as written
    for (const path of ['/%6eested/', '//nested/', '/x/../nested/', '/NESTED/', '/Nested/x', '/nested/OPEN/x.txt']) {
      const res = await request(`${url}${path}`);
      expect({ path, status: res.statusCode }).toEqual({ path, status: 401 });
      await res.body.dump();
    }
  });

  it('reads the user file again when it changes: a user added gets in, one removed does not', async () => {
    appendFileSync(users, line('carol', '-5', 'singer'));
    const carol = basic('carol', 'singer');
    await until(async () => {
      const res = await request(`${url}/nested/`, { headers: { authorization: carol } });
      await res.body.dump();
      return res.statusCode === 200;
    }, 'carol, added to the file, to get in');
    writeFileSync(users, line('carol', '-5', 'singer'));
    await until(async () => {
      const res = await request(`${url}/nested/`, { headers: { authorization: basic('alice', 'wonderland') } });
      await res.body.dump();
      return res.statusCode === 401;
    }, 'alice, removed from the file, to be refused');
  });

  it('refuses at register time, naming the key, a file it cannot use', () => {
    const bcrypt = join(dir, 'bcrypt');
    writeFileSync(bcrypt, 'dave:$2x$05$abcdefghijklmnopqrstuuikCxxInvs7uiEdDB6DodlywGDFqetIS\n');
    const cases: [WarmpoolOptions['auth_basic'], string, RegExp][] = [
      [[{ prefix: '/a', user_file: join(dir, 'missing') }], 'auth_basic[0].user_file', /cannot be read \(ENOENT\)/],
      [
        [{ prefix: '/a', user_file: bcrypt }],
        'auth_basic[0].user_file',
        /bcrypt:1 \(user dave\): a "\$2x\$" bcrypt hash/,
      ],
      [[{ prefix: '/a' }], 'auth_basic[0].user_file', /is required/],
      [[{ prefix: '/a', user_file: users, realm: 'say "hi"' }], 'auth_basic[0].realm', /without quotes/],
    ];
    for (const [rules, key, reason] of cases) {
      const problems = checkOptions({ php: false, auth_basic: rules });
      expect(problems.map((p) => p.details.key)).toEqual([key]);
      expect(problems[0]!.details.reason).toMatch(reason);
    }
  });
});

describe('auth_basic: what it refuses, and its user file read again', () => {
  it('refuses a prefix with "*" (it would protect nothing) and a realm that is no ASCII header text', () => {
    for (const [rules, key, reason] of [
      [[{ prefix: '/admin/*', user_file: users }], 'auth_basic[0].prefix', /write "\/admin", not "\/admin\/\*"/],
      [[{ prefix: '/a', user_file: users, realm: 'Админка' }], 'auth_basic[0].realm', /must be ASCII text/],
    ] as const) {
      const problems = checkOptions({ php: false, auth_basic: rules as unknown as WarmpoolOptions['auth_basic'] });
      expect(problems.map((p) => [p.details.key, p.details.reason])).toEqual([[key, expect.stringMatching(reason)]]);
    }
  });

  it('a line it cannot use, added while serving, is skipped and logged: the other users keep their access', async () => {
    const file = join(dir, 'edited');
    writeFileSync(file, line('erin', '-6', 'pw'));
    const logged: string[] = [];
    const check = compileBasicAuth([{ prefix: '/p', user_file: file }], 'auth_basic', (m) => logged.push(m))!;
    expect(check('/p', basic('erin', 'pw'))).toEqual({ user: 'erin' });
    writeFileSync(
      file,
      `${line('erin', '-6', 'pw')}frank:$2x$05$abcdefghijklmnopqrstuuikCxxInvs7uiEdDB6DodlywGDFqetIS\n`,
    );
    // the file is looked at again as requests come (at most once a second)
    await until(
      async () => 'user' in (check('/p', basic('erin', 'pw')) ?? {}) && logged.length > 0,
      'the skipped line to be logged',
    );
    expect(logged).toEqual([
      expect.stringMatching(/edited:2 \(user frank\): a "\$2x\$" bcrypt hash .*; that user cannot get in$/),
    ]);
    expect(check('/p', basic('erin', 'pw'))).toEqual({ user: 'erin' });
    rmSync(file);
    await until(
      async () => !('user' in (check('/p', basic('erin', 'pw')) ?? {})) && logged.length > 1,
      'the missing file to be logged',
    );
    expect(logged[1]).toMatch(/cannot be read \(ENOENT\).*; nobody gets in until it is fixed$/);
    expect(check('/p', basic('erin', 'pw'))).toEqual({ realm: 'Restricted', busy: false });
  });

  it('runs bcrypt checks one at a time and queues 8 at most: more new guesses meanwhile are busy (429)', async () => {
    const file = join(dir, 'queued');
    writeFileSync(file, bcryptLine('q', 'right', 8));
    // a budget of its own: the other tests' checks have spent the process's
    const check = compileBasicAuth([{ prefix: '/', user_file: file }], 'auth_basic', () => {}, new PasswordChecks())!;
    const answers = Array.from({ length: 10 }, (_, n) => check('/', basic('q', `guess-${n}`)));
    expect(answers.map((a) => (a instanceof Promise ? 'checking' : a))).toEqual([
      ...Array(8).fill('checking'),
      { realm: 'Restricted', busy: true },
      { realm: 'Restricted', busy: true },
    ]);
    expect(await Promise.all(answers)).toEqual([
      ...Array(8).fill({ realm: 'Restricted', busy: false }),
      { realm: 'Restricted', busy: true },
      { realm: 'Restricted', busy: true },
    ]);
    expect(await check('/', basic('q', 'right'))).toEqual({ user: 'q' });
  });

  it('a flood of guesses cannot stall the queue nor make the users already in be checked again', async () => {
    const file = join(dir, 'flood');
    writeFileSync(file, `${bcryptLine('ops', 'right', 6)}${line('staff', '-1', 'pw')}`);
    // a budget of a minute: the queue's bound is what is tested here, not the budget's
    const check = compileBasicAuth(
      [{ prefix: '/', user_file: file }],
      'auth_basic',
      () => {},
      new PasswordChecks(60_000),
    )!;
    // both users in: their answers are remembered
    expect(await check('/', basic('ops', 'right'))).toEqual({ user: 'ops' });
    expect(check('/', basic('staff', 'pw'))).toEqual({ user: 'staff' });
    // 2,000 malformed headers and 1,100 wrong guesses of the cheap hash: never remembered the
    // first, the second in a map of their own (before, they cleared the one map of all answers)
    for (let i = 0; i < 2000; i++) check('/', `Basic ${Buffer.from(`nobody${i}`).toString('base64')}`);
    for (let i = 0; i < 1100; i++) check('/', basic('staff', `guess-${i}`));
    // 200 distinct bcrypt guesses at once: 8 queued, the others busy and never hashed
    const guesses = Array.from({ length: 200 }, (_, n) => check('/', basic('ops', `wrong-${n}`)));
    expect(guesses.filter((g) => g instanceof Promise)).toHaveLength(8);
    // the users already in get in at once, without a check, while the queue works
    expect(check('/', basic('ops', 'right'))).toEqual({ user: 'ops' });
    expect(check('/', basic('staff', 'pw'))).toEqual({ user: 'staff' });
    // and the queue moves: every queued guess is answered (before, thrown-away first slices spent
    // every refill of the budget and the queue hung for as long as the flood lasted)
    expect(
      new Set((await Promise.all(guesses.filter((g) => g instanceof Promise))).map((a) => JSON.stringify(a))),
    ).toEqual(new Set([JSON.stringify({ realm: 'Restricted', busy: false })]));
  });

  it('cheap guesses wait behind queued bcrypt checks; an unknown user costs what the costliest hash does', async () => {
    const file = join(dir, 'mixed');
    writeFileSync(file, `${line('staff', '-1', 'pw')}${bcryptLine('ops', 'right', 6)}`);
    const check = compileBasicAuth([{ prefix: '/', user_file: file }], 'auth_basic', () => {}, new PasswordChecks())!;
    const queued = check('/', basic('ops', 'right'));
    expect(queued).toBeInstanceOf(Promise);
    // while it waits, no guess of the cheap hash is checked ahead of it: queued, or busy
    const guesses = Array.from({ length: 300 }, (_, n) => check('/', basic('staff', `guess-${n}`)));
    expect(guesses.filter((g) => !(g instanceof Promise) && !(g as { busy?: boolean }).busy)).toEqual([]);
    expect(await queued).toEqual({ user: 'ops' });
    // an unknown user is checked against the bcrypt line, in the queue: its time tells nothing
    expect(check('/', basic('nobody', 'x'))).toBeInstanceOf(Promise);
  });

  it('an edit of the file keeps the users already in whose line did not change', async () => {
    const file = join(dir, 'edited-in');
    // alice's a bcrypt line: checked again, her answer would be a promise, not at once
    writeFileSync(file, `${bcryptLine('alice', 'a', 4)}${line('bob', '-1', 'b')}`);
    const check = compileBasicAuth([{ prefix: '/', user_file: file }], 'auth_basic', () => {}, new PasswordChecks())!;
    expect(await check('/', basic('alice', 'a'))).toEqual({ user: 'alice' });
    expect(check('/', basic('bob', 'b'))).toEqual({ user: 'bob' });
    // a user added, bob's password changed: alice stays in, bob's old password no longer lets him in
    const kept = readFileSync(file, 'utf8').split('\n')[0]!;
    writeFileSync(file, `${kept}\n${line('bob', '-1', 'new')}${line('carol', '-1', 'c')}`);
    await until(async () => 'user' in ((await check('/', basic('carol', 'c'))) ?? {}), 'carol to get in');
    expect(check('/', basic('bob', 'b'))).toEqual({ realm: 'Restricted', busy: false });
    expect(check('/', basic('alice', 'a'))).toEqual({ user: 'alice' });
  });

  it('bounds the time password checks take: past the budget, a new guess is refused unchecked (busy: 429)', () => {
    // a hash of 100,000 SHA-512 rounds (PHP's crypt) takes a tenth of a second: the whole of a
    // budget of 20 ms (the process's is a second)
    const file = join(dir, 'slow');
    const hash = execFileSync('php', ['-r', 'echo crypt("pw", \'$6$rounds=100000$salt\');']).toString();
    writeFileSync(file, `slow:${hash}\n`);
    const check = compileBasicAuth([{ prefix: '/', user_file: file }], 'auth_basic', () => {}, new PasswordChecks(20))!;
    expect(check('/', basic('slow', 'guess-1'))).toEqual({ realm: 'Restricted', busy: false });
    expect(check('/', basic('slow', 'guess-2'))).toEqual({ realm: 'Restricted', busy: true });
    // an answer already known costs nothing and is still given
    expect(check('/', basic('slow', 'guess-1'))).toEqual({ realm: 'Restricted', busy: false });
  });
});
