// The htpasswd hashes warmpool reads, checked against the ones real tools make (openssl passwd,
// htpasswd, PHP's crypt and password_hash), not against values computed here.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parsePasswordHash, type PasswordHash } from '../src/network/password-hashes.js';

const PASSWORDS = ['secret', 'x', 'a password longer than sixty-four bytes: ünïcode, spaces, and more, more, more!'];

function openssl(...args: string[]): string {
  return execFileSync('openssl', ['passwd', ...args])
    .toString()
    .trim();
}

function parsed(text: string): PasswordHash {
  const hash = parsePasswordHash(text);
  if ('problem' in hash) throw new Error(`${text}: ${hash.problem}`);
  return hash;
}

/** Runs a check to its end, as basic-auth.ts does a slice at a time; with how often it yielded. */
function run(hash: PasswordHash, password: string): { ok: boolean; slices: number } {
  const check = hash.check(Buffer.from(password));
  for (let slices = 1; ; slices++) {
    const step = check.next();
    if (step.done === true) return { ok: step.value, slices };
  }
}

const verify = (hash: PasswordHash, password: string) => run(hash, password).ok;

describe('password hashes of htpasswd files', () => {
  for (const [flag, name] of [
    ['-apr1', 'MD5-crypt, $apr1$ (htpasswd -m)'],
    ['-1', 'MD5-crypt, $1$'],
    ['-5', 'SHA-256 crypt, $5$'],
    ['-6', 'SHA-512 crypt, $6$'],
  ] as const) {
    it(`${name}: the right password only`, () => {
      for (const password of PASSWORDS) {
        const text = openssl(flag, password);
        const hash = parsed(text);
        expect({ text, ok: verify(hash, password) }).toEqual({ text, ok: true });
        expect(verify(hash, `${password}x`)).toBe(false);
        expect(verify(hash, password.slice(1))).toBe(false);
      }
    });
  }

  it('SHA-crypt with its own rounds, and a salt of 16 characters', () => {
    for (const flag of ['-5', '-6']) {
      const text = openssl(flag, '-salt', 'sixteencharsalt!', 'pw');
      expect(verify(parsed(text), 'pw')).toBe(true);
    }
    // rounds=N as mkpasswd and glibc write it (openssl passwd has no flag for it): PHP's crypt()
    for (const setting of ['$5$rounds=10000$saltstringsaltstring', '$6$rounds=1400$anotherlongsaltstring']) {
      const text = execFileSync('php', ['-r', 'echo crypt($argv[1], $argv[2]);', 'Hello world!', setting]).toString();
      expect(text).toMatch(/^\$[56]\$rounds=\d+\$/);
      expect(verify(parsed(text), 'Hello world!')).toBe(true);
      expect(verify(parsed(text), 'Hello world?')).toBe(false);
    }
  });

  it('{SHA}, {SSHA} and {PLAIN}', () => {
    const sha = `{SHA}${createHash('sha1').update('pw').digest('base64')}`;
    expect(verify(parsed(sha), 'pw')).toBe(true);
    expect(verify(parsed(sha), 'pw2')).toBe(false);
    const salt = Buffer.from('NaCl');
    const ssha = `{SSHA}${Buffer.concat([createHash('sha1').update('pw').update(salt).digest(), salt]).toString('base64')}`;
    expect(verify(parsed(ssha), 'pw')).toBe(true);
    expect(verify(parsed(ssha), 'px')).toBe(false);
    expect(verify(parsed('{PLAIN}pw'), 'pw')).toBe(true);
    expect(verify(parsed('{PLAIN}pw'), 'p')).toBe(false);
  });

  it('bcrypt as htpasswd -B makes it: the right password only, a slice at a time', () => {
    for (const password of PASSWORDS) {
      const text = execFileSync('htpasswd', ['-nbB', '-C', '6', 'u', password]).toString().trim().slice(2);
      expect(text).toMatch(/^\$2y\$06\$/);
      const hash = parsed(text);
      expect({ text, ok: verify(hash, password) }).toEqual({ text, ok: true });
      // (bcrypt reads 72 bytes: more is the same password, as everywhere)
      expect(verify(hash, `${password}x`)).toBe(Buffer.byteLength(password) >= 72);
      expect(verify(hash, password.slice(1))).toBe(false);
    }
    // cost 10: 1,024 key schedules, never all in one turn of the event loop
    const text = execFileSync('htpasswd', ['-nbB', '-C', '10', 'u', 'pw']).toString().trim().slice(2);
    const { ok, slices } = run(parsed(text), 'pw');
    expect(ok).toBe(true);
    expect(slices).toBeGreaterThanOrEqual(32);
  });

  it('bcrypt agrees with PHP on $2a$, $2b$ and $2y$, on empty, multibyte and 72-byte-cut passwords', () => {
    const cases = ['', 'ü', 'x'.repeat(71), 'x'.repeat(72), 'x'.repeat(73), `${'ü'.repeat(36)}tail`];
    for (const prefix of ['$2a$', '$2b$', '$2y$']) {
      const text = execFileSync('php', [
        '-r',
        'echo crypt($argv[1], $argv[2]);',
        'x'.repeat(72),
        `${prefix}04$abcdefghijklmnopqrstuu`,
      ]).toString();
      for (const candidate of cases) {
        const php = execFileSync('php', [
          '-r',
          'echo password_verify($argv[1], $argv[2]) ? "yes" : "no";',
          candidate,
          text,
        ]).toString();
        expect({ prefix, candidate, ok: verify(parsed(text), candidate) }).toEqual({
          prefix,
          candidate,
          ok: php === 'yes',
        });
      }
    }
    // the cut at 72 bytes is bcrypt's own: both 72 and 73 x's match, 71 does not
    const text = execFileSync('php', [
      '-r',
      'echo password_hash($argv[1], PASSWORD_BCRYPT, ["cost" => 4]);',
      'x'.repeat(72),
    ]).toString();
    expect([71, 72, 73].map((n) => verify(parsed(text), 'x'.repeat(n)))).toEqual([false, true, true]);
  });

  it("bcrypt base64-encoded, as Caddy's basicauth took it (JDJh…)", () => {
    const text = execFileSync('htpasswd', ['-nbB', '-C', '4', 'u', 'caddy pw']).toString().trim().slice(2);
    const encoded = Buffer.from(text).toString('base64');
    expect(encoded).toMatch(/^JDJ5JDA0/);
    expect(verify(parsed(encoded), 'caddy pw')).toBe(true);
    expect(verify(parsed(encoded), 'caddy pw?')).toBe(false);
  });

  it('refuses $2x$ bcrypt, a cost over 14, a malformed bcrypt and DES crypt, saying how to make a line it reads', () => {
    expect(parsePasswordHash('$2x$05$abcdefghijklmnopqrstuuikCxxInvs7uiEdDB6DodlywGDFqetIS')).toEqual({
      problem: expect.stringContaining('htpasswd -B'),
    });
    expect(parsePasswordHash('$2y$15$abcdefghijklmnopqrstuu0P7rK92u8Xj.FMrJooqd75Jam5uvlAS')).toEqual({
      problem: expect.stringContaining('cost of 14 or less (htpasswd -B -C 10)'),
    });
    expect(parsePasswordHash('$2y$05$tooshort')).toEqual({ problem: expect.stringContaining('wrong shape') });
    expect(parsePasswordHash('abJnggxhB/yWI')).toEqual({ problem: expect.stringContaining('openssl passwd -6') });
  });
});
