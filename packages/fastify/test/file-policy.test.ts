import { describe, expect, it } from 'vitest';
import {
  checkFileName,
  checkPath,
  checkRequestTarget,
  createFilePolicy,
  decodeRequestPath,
  extensionOf,
  locationOf,
  type FilePolicy,
} from '../src/static/file-policy.js';
import { DEFAULT_STATIC_FORBID } from '../src/static/static.js';

const policy: FilePolicy = createFilePolicy({ forbid: DEFAULT_STATIC_FORBID, allow: null });
const kind = (path: string, p: FilePolicy = policy) => checkPath(p, path).kind;
const reason = (path: string, p: FilePolicy = policy) => {
  const verdict = checkPath(p, path);
  return verdict.kind === 'invalid' || verdict.kind === 'forbidden' ? verdict.reason : verdict.kind;
};

describe('file policy: decoding the request target', () => {
  it('decodes once and cuts the query and fragment first', () => {
    expect(decodeRequestPath('/a/b.css?v=1')).toBe('/a/b.css');
    expect(decodeRequestPath('/a/b.css#top')).toBe('/a/b.css');
    expect(decodeRequestPath('/caf%C3%A9.txt')).toBe('/café.txt');
    expect(decodeRequestPath('/what%3F.txt?x')).toBe('/what?.txt');
    expect(decodeRequestPath('/%2e%2e/x')).toBe('/../x');
    expect(decodeRequestPath('/%252e%252e/x')).toBe('/%2e%2e/x'); // double encoding stays literal
  });

  it('normalises as nginx does before any check: slashes merged, "." segments dropped, ".." kept', () => {
    for (const [raw, path] of [
      ['//', '/'],
      ['//hello.html', '/hello.html'],
      ['/pretty//x', '/pretty/x'],
      ['/wp-json/wp/v2/posts//1', '/wp-json/wp/v2/posts/1'],
      ['/env.php//x//y/', '/env.php/x/y/'],
      ['/pretty/./x', '/pretty/x'],
      ['/pretty/%2e/x', '/pretty/x'],
      ['/a%2f%2fb', '/a/b'],
      ['/a/.', '/a/'],
      ['/.', '/'],
      ['/./.env', '/.env'],
      ['/.env', '/.env'],
      ['/a/../b', '/a/../b'],
      ['/a/%2e%2e/b', '/a/../b'],
      ['/.well-known//acme-challenge/./tok', '/.well-known/acme-challenge/tok'],
    ] as const) {
      expect(decodeRequestPath(raw), raw).toBe(path);
    }
    expect(checkRequestTarget(policy, '//.git//config')).toEqual({ kind: 'forbidden', reason: 'dotfile' });
    expect(checkRequestTarget(policy, '/a//../.env')).toEqual({ kind: 'invalid', reason: 'dot-segment' });
  });

  it('locationOf encodes each segment, so a Location stays on this host', () => {
    expect(locationOf('/docs')).toBe('/docs');
    expect(locationOf('/a\\b/c d/é')).toBe('/a%5Cb/c%20d/%C3%A9');
  });

  it('refuses what does not decode: bad escapes, overlong and invalid UTF-8', () => {
    for (const raw of ['/%', '/%zz', '/%c0%ae%c0%ae/x', '/%e0%80%ae', '/%c0%af', '/%ed%a0%80', '/%ff']) {
      expect(decodeRequestPath(raw), raw).toBeNull();
      expect(checkRequestTarget(policy, raw), raw).toEqual({ kind: 'invalid', reason: 'encoding' });
    }
  });
});

describe('file policy: paths that cannot name a file under the root', () => {
  it.each([
    ['/../etc/passwd', 'dot-segment'],
    ['/a/../../x', 'dot-segment'],
    ['/./style.css', 'dot-segment'],
    ['/a/..', 'dot-segment'],
    ['/a//b.css', 'empty-segment'],
    ['//etc/passwd', 'empty-segment'],
    ['/a\\..\\..\\x', 'backslash'],
    ['/style.css\\', 'backslash'],
    ['/secret.php\0.css', 'control-char'],
    ['/a\nb', 'control-char'],
    ['/a\x7fb', 'control-char'],
    ['/secret.php.', 'trailing-dot-or-space'],
    ['/secret.php ', 'trailing-dot-or-space'],
    ['/.../x', 'trailing-dot-or-space'],
    ['/secret.php::$DATA', 'colon'],
    ['/C:/Windows/win.ini', 'colon'],
    ['http://host/x', 'not-absolute'],
    ['*', 'not-absolute'],
    ['', 'not-absolute'],
    [`/${'a/'.repeat(3000)}`, 'too-long'],
  ])('%j is invalid (%s)', (path, why) => {
    expect(checkPath(policy, path)).toEqual({ kind: 'invalid', reason: why });
  });

  it('a backslash, colon or trailing dot/space is answered only once the whole path passed the hard checks', () => {
    expect(reason('/a\\b/../x')).toBe('dot-segment');
    expect(reason('/wiki:x/\0')).toBe('control-char');
    expect(reason('/search/Mr./..')).toBe('dot-segment');
    expect(reason('/search/Mr.')).toBe('trailing-dot-or-space');
    expect(reason('/.env.')).toBe('trailing-dot-or-space');
  });

  it('invalid beats forbidden: a traversal through a dot-folder is still a traversal', () => {
    expect(reason('/.git/../index.html')).toBe('dot-segment');
    expect(reason('/.hidden/./file.txt')).toBe('dot-segment');
    expect(reason('/.env\0')).toBe('control-char');
  });

  it('every encoding of a traversal decodes to an invalid path', () => {
    for (const raw of [
      '/..%2f..%2fetc/passwd',
      '/%2e%2e/%2e%2e/etc/passwd',
      '/%2E%2e%2fx',
      '/..%5c..%5cx',
      '/%2e%2e%5cx',
      '/x%00.css',
    ]) {
      expect(checkRequestTarget(policy, raw).kind, raw).toBe('invalid');
    }
  });
});

describe('file policy: dotfiles, forbid and allow', () => {
  it('forbids every dotfile and dot-folder segment, whatever the extension lists say', () => {
    const open = createFilePolicy({ forbid: [], allow: null });
    for (const path of ['/.env', '/.git/config', '/.hidden/file.txt', '/a/.b/c.css', '/.htaccess', '/.user.ini']) {
      expect(reason(path, open), path).toBe('dotfile');
    }
  });

  it('allows the top-level /.well-known/ folder (RFC 8615) and nothing else with a dot', () => {
    for (const path of ['/.well-known/security.txt', '/.well-known/acme-challenge/tok', '/.well-known/carddav']) {
      expect(checkPath(policy, path), path).toEqual({ kind: 'file', path });
    }
    expect(checkPath(policy, '/.well-known/')).toEqual({ kind: 'directory', path: '/.well-known/' });
    expect(checkPath(policy, '/.well-known')).toEqual({ kind: 'file', path: '/.well-known' });
    for (const path of [
      '/.well-known/.hidden',
      '/.well-known/acme-challenge/.env',
      '/a/.well-known/x.txt',
      '/.WELL-KNOWN/x.txt',
      '/.well-known-x/y',
      '/.well-knownx',
    ]) {
      expect(reason(path), path).toBe('dotfile');
    }
    expect(reason('/.well-known/shell.php')).toBe('forbidden-extension');
    expect(reason('/.well-known/../.env')).toBe('dot-segment');
    // a policy that keeps it closed (the internal folder of X-Accel-Redirect)
    const closed = createFilePolicy({ forbid: [], allow: null, well_known: false });
    expect(reason('/.well-known/security.txt', closed)).toBe('dotfile');
  });

  it('forbids the default extensions case-insensitively, and copies of PHP source', () => {
    for (const path of [
      '/secret.php',
      '/SECRET.PHP',
      '/upper.PHP',
      '/a/b.PhP',
      '/x.phtml',
      '/x.phar',
      '/prod.env',
      '/x.git',
      '/backup.php.bak',
      '/secret.php.gz',
      '/index.php~',
      '/#index.php#',
    ]) {
      expect(reason(path), path).toBe('forbidden-extension');
    }
    expect(kind('/style.css')).toBe('file');
    expect(kind('/php.css')).toBe('file'); // a name, not an extension
    expect(kind('/phpinfo')).toBe('file');
    expect(kind('/index.php/route')).toBe('file'); // a directory named index.php: nothing to send, PHP decides
  });

  it('forbidden by name is decided before looking at the disk, and directories are not', () => {
    expect(checkPath(policy, '/docs/')).toEqual({ kind: 'directory', path: '/docs/' });
    expect(checkPath(policy, '/')).toEqual({ kind: 'directory', path: '/' });
    expect(reason('/.git/')).toBe('dotfile');
  });

  it('allow lets only the listed extensions through (the last one counts), and forbid still wins', () => {
    const p = createFilePolicy({ forbid: DEFAULT_STATIC_FORBID, allow: ['.CSS', '.js', '.php'] });
    expect(kind('/app.js', p)).toBe('file');
    expect(kind('/site.min.CSS', p)).toBe('file');
    expect(reason('/img.svg', p)).toBe('not-allowed-extension');
    expect(reason('/style.css.br', p)).toBe('not-allowed-extension');
    expect(reason('/LICENSE', p)).toBe('not-allowed-extension');
    expect(reason('/index.php', p)).toBe('forbidden-extension');
  });

  it('checkFileName and extensionOf work on bare names', () => {
    expect(checkFileName(policy, 'index.html')).toBeNull();
    expect(checkFileName(policy, 'index.PHP')).toBe('forbidden-extension');
    expect(checkFileName(policy, '.env')).toBe('dotfile');
    expect(extensionOf('/a/app.min.CSS')).toBe('.css');
    expect(extensionOf('/a.b/LICENSE')).toBe('');
    expect(extensionOf('/.env')).toBe('');
  });
});
