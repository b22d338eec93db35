// The htpasswd hashes warmpool reads, checked against the ones a real tool makes (openssl passwd),
// not against values computed here.
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
        expect({ text, ok: hash.verify(Buffer.from(password)) }).toEqual({ text, ok: true });
        expect(hash.verify(Buffer.from(`${password}x`))).toBe(false);
        expect(hash.verify(Buffer.from(password.slice(1)))).toBe(false);
      }
    });
  }

  it('SHA-crypt with its own rounds, and a salt of 16 characters', () => {
    for (const flag of ['-5', '-6']) {
      const text = openssl(flag, '-salt', 'sixteencharsalt!', 'pw');
      expect(parsed(text).verify(Buffer.from('pw'))).toBe(true);
    }
    // rounds=N as mkpasswd and glibc write it (openssl passwd has no flag for it): PHP's crypt()
    for (const setting of ['$5$rounds=10000$saltstringsaltstring', '$6$rounds=1400$anotherlongsaltstring']) {
      const text = execFileSync('php', ['-r', 'echo crypt($argv[1], $argv[2]);', 'Hello world!', setting]).toString();
      expect(text).toMatch(/^\$[56]\$rounds=\d+\$/);
      expect(parsed(text).verify(Buffer.from('Hello world!'))).toBe(true);
      expect(parsed(text).verify(Buffer.from('Hello world?'))).toBe(false);
    }
  });

  it('{SHA}, {SSHA} and {PLAIN}', () => {
    const sha = `{SHA}${createHash('sha1').update('pw').digest('base64')}`;
    expect(parsed(sha).verify(Buffer.from('pw'))).toBe(true);
    expect(parsed(sha).verify(Buffer.from('pw2'))).toBe(false);
    const salt = Buffer.from('NaCl');
    const ssha = `{SSHA}${Buffer.concat([createHash('sha1').update('pw').update(salt).digest(), salt]).toString('base64')}`;
    expect(parsed(ssha).verify(Buffer.from('pw'))).toBe(true);
    expect(parsed(ssha).verify(Buffer.from('px'))).toBe(false);
    expect(parsed('{PLAIN}pw').verify(Buffer.from('pw'))).toBe(true);
    expect(parsed('{PLAIN}pw').verify(Buffer.from('p'))).toBe(false);
  });

  it('refuses bcrypt and DES crypt, saying how to make a line it reads', () => {
    expect(parsePasswordHash('$2y$05$abcdefghijklmnopqrstuuMr2x7m4w0nFl3bXBnhP6wqKQx3D7mbS')).toEqual({
      problem: expect.stringContaining('bcrypt hash (htpasswd -B)'),
    });
    expect(parsePasswordHash('abJnggxhB/yWI')).toEqual({ problem: expect.stringContaining('openssl passwd -6') });
  });
});
